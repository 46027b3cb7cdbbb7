"""``encodec-np tokenize`` / ``detokenize`` on a generated corpus, run as a user runs them (subprocesses).

One reference run (2 local workers) is compared byte for byte with a serial run, a Dask
LocalCluster run, a re-run, a run whose worker dies on one file, and a run killed mid-way.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_cli import REPO, fail, models, ok, write_wav  # noqa: F401 (models: the tiny models fixture)

import encodec_np
from encodec_np import dataset
from encodec_np.dataset.outdir import load_jsonl
from encodec_np.synthetic import test_signal

SHARD_SIZE = 8
BANDWIDTHS = ("-b", "6", "-b", "1.5,3")
# inputs that cannot be tokenized, and why (the start of the reason)
BROKEN = {"bad.wav": "unreadable audio file", "empty.flac": "unreadable audio file",
          "sub/silent_header.wav": "holds no samples", "sub/nan.wav": "contains NaN",
          "sub/truncated.wav": "the header says 4000 samples per channel but the file holds only 300"}


def run(*args, env=None, timeout=300):
    """The command line in a fresh process, numpy backend (no Numba start-up)."""
    args = [str(a) for a in args]
    if "--help" not in args:
        args += ["--backend", "numpy"]
    return subprocess.run([sys.executable, "-m", "encodec_np.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env={**os.environ, **(env or {})})


def make_corpus(folder: Path) -> list[str]:
    """72 seeded clips of 0.05-0.5 s (8, 16, 24, 44.1 kHz; mono/stereo; WAV/FLAC; subfolders), the
    :data:`BROKEN` inputs and a text file; returns the keys of the good clips."""
    rng = np.random.default_rng(7)
    keys = []
    for i in range(72):
        sr = (8000, 16000, 24000, 44100)[i % 4]
        channels = 1 + (i // 4) % 2
        x = test_signal(("noise", "chirp")[i % 2], channels, int(sr * rng.uniform(0.05, 0.5)), seed=i,
                        sample_rate=sr)
        key = ("", "sub/", "sub/deeper/")[i % 3] + f"clip{i:02d}" + (".flac" if i % 5 == 0 else ".wav")
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        write_wav(folder / key, x, sr)
        keys.append(key)
    (folder / "bad.wav").write_text("not audio at all")
    (folder / "empty.flac").write_bytes(b"")
    write_wav(folder / "sub/silent_header.wav", np.zeros((1, 0), np.float32), 16000)
    nan = np.full((1, 800), 0.1, np.float32)
    nan[0, 400] = np.nan
    write_wav(folder / "sub/nan.wav", nan, 8000, subtype="FLOAT")
    truncated = write_wav(folder / "sub/truncated.wav", np.zeros((1, 4000), np.float32), 16000).read_bytes()
    (folder / "sub/truncated.wav").write_bytes(truncated[:44 + 600])  # the header still says 4000
    (folder / "notes.txt").write_text("not an audio file: ignored, and counted as such")
    return sorted(keys)


def snapshot(out: Path) -> dict:
    """Every file tokenize owns in ``out`` → its bytes (the lock file aside)."""
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    files.pop(".tokenize.lock", None)
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, models):  # noqa: F811 (the fixture imported from test_cli)
    """Model paths, the corpus, and the reference output (2 local workers)."""
    root = tmp_path_factory.mktemp("tokenize")
    models = {key: path for key, (_, path) in models.items()}
    keys = make_corpus(root / "corpus")
    common = ("--model", models["24"], *BANDWIDTHS, "--shard-size", SHARD_SIZE)
    result = ok(run("tokenize", root / "corpus", root / "ref", "--workers", 2, *common))
    return {"root": root, "models": models, "keys": keys, "ref": root / "ref", "common": common,
            "stdout": result.stdout, "stderr": result.stderr}


@pytest.mark.slow
def test_reference_output(corpus):
    """Layout, manifest fields, shard contents (plain NumPy), failures, summary."""
    out, keys = corpus["ref"], corpus["keys"]
    inputs = sorted(keys + list(BROKEN))   # shards hold runs of --shard-size inputs in this order
    rows = [json.loads(line) for line in (out / dataset.MANIFEST).read_text().splitlines()]
    assert [(r["bandwidth"], r["key"]) for r in rows] == [(bw, k) for bw in (1.5, 3.0, 6.0) for k in keys]
    model = encodec_np.load_model(corpus["models"]["24"], backend="numpy")
    by_key = {}
    for row in rows:
        info = sf.info(row["path"])
        assert row["sample_rate"] == info.samplerate and row["channels"] == info.channels
        assert row["duration"] == info.frames / info.samplerate
        assert row["samples"] == math.ceil(info.frames * 24000 / info.samplerate)
        assert row["frames"] == math.ceil(row["samples"] / 320)
        assert row["codebooks"] == {1.5: 2, 3.0: 4, 6.0: 8}[row["bandwidth"]]
        assert row["model"] == "encodec_24khz" and row["model_sha256"] == dataset.model_checksum(corpus["models"]["24"])
        assert row["sha256"] == dataset.model_checksum(row["path"]) and row["scales"] is None
        group = inputs.index(row["key"]) // SHARD_SIZE
        assert row["shard"].startswith(f"shards/{row['bandwidth']:g}kbps/shard-{group:05d}-")
        with np.load(out / row["shard"]) as shard:   # a shard is a plain .npz
            codes = shard[row["key"]]
        assert codes.dtype == np.int16 and codes.shape == (row["codebooks"], row["frames"])
        by_key.setdefault(row["key"], {})[row["bandwidth"]] = codes
    for key, codes in by_key.items():     # lower bandwidths are the first codebooks of higher ones
        assert np.array_equal(codes[1.5], codes[6.0][:2]) and np.array_equal(codes[3.0], codes[6.0][:4])
    for key in keys[::17]:                # the codes are the model's
        wav, sr = encodec_np.read_audio(corpus["root"] / "corpus" / key)
        model.set_target_bandwidth(3.0)
        frames = model.encode(encodec_np.convert_audio(wav, sr, 24000, 1)[None])
        assert np.array_equal(by_key[key][3.0], frames[0][0][0])
    shards = sorted((out / "shards/6kbps").iterdir())
    assert len(shards) == math.ceil(len(inputs) / SHARD_SIZE)
    with np.load(shards[0]) as first:
        assert list(first.keys()) == [k for k in inputs[:SHARD_SIZE] if k not in BROKEN]
    failed = [json.loads(line) for line in (out / dataset.FAILED).read_text().splitlines()]
    assert [f["key"] for f in failed] == sorted(BROKEN)
    for f in failed:
        assert BROKEN[f["key"]] in f["error"] and f["sha256"]
    bad = len(BROKEN)
    assert f"{len(keys) + bad} found: {len(keys)} encoded, 0 skipped (done before), {bad} failed, 1 other" \
        in corpus["stdout"]
    assert "h of audio per hour" in corpus["stdout"] and "tokens" in corpus["stdout"]
    assert f"warning: {bad} of {len(keys) + bad} files could not be tokenized" in corpus["stderr"]
    assert not [p for p in out.rglob("*.part")] and not (out / dataset.LOCK).exists()


@pytest.mark.slow
def test_serial_and_dask_give_identical_bytes(corpus, tmp_path):
    reference = snapshot(corpus["ref"])
    ok(run("tokenize", corpus["root"] / "corpus", tmp_path / "serial", "--workers", 1, "-q", *corpus["common"]))
    assert snapshot(tmp_path / "serial") == reference
    pytest.importorskip("distributed")
    ok(run("tokenize", corpus["root"] / "corpus", tmp_path / "dask", "--dask", "--workers", 2, "-q",
           *corpus["common"]))
    assert snapshot(tmp_path / "dask") == reference


@pytest.mark.slow
def test_rerun_skips_everything(corpus, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(corpus["ref"], out)
    times = {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}
    r = ok(run("tokenize", corpus["root"] / "corpus", out, *corpus["common"]))
    n = len(corpus["keys"])
    assert f"found: 0 encoded, {n} skipped (done before), {len(BROKEN)} failed" in r.stdout
    assert snapshot(out) == snapshot(corpus["ref"])
    assert times == {p: p.stat().st_mtime_ns for p in out.rglob("*.npz")}   # no shard rewritten
    # one changed input: its shard is redone under a new name, the old one removed at the end
    changed = corpus["root"] / "changed"
    shutil.copytree(corpus["root"] / "corpus", changed)
    key = corpus["keys"][3]
    write_wav(changed / key, test_signal("noise", 1, 4000, seed=99, sample_rate=16000), 16000)
    r = ok(run("tokenize", changed, out, *corpus["common"]))
    assert f"found: 1 encoded, {n - 1} skipped" in r.stdout
    rows = dataset.read_manifest(out)
    assert len(rows) == 3 * n and all(r["path"].startswith(str(changed)) for r in rows)
    names = {p.relative_to(out).as_posix() for p in out.rglob("*.npz")}
    assert names == {r["shard"] for r in rows} and len(names) == 3 * math.ceil((n + len(BROKEN)) / SHARD_SIZE)
    assert len(names - set(snapshot(corpus["ref"]))) == 3    # its group at each bandwidth


@pytest.mark.slow
def test_worker_death_is_reported_then_redone(corpus, tmp_path):
    out, victim = tmp_path / "out", corpus["keys"][10]
    r = ok(run("tokenize", corpus["root"] / "corpus", out, *corpus["common"], "--workers", 2,
               env={dataset.FAULT_ENV: victim}))
    assert "worker process died" in r.stdout
    failed = {f["key"]: f for f in map(json.loads, (out / dataset.FAILED).read_text().splitlines())}
    assert failed[victim]["sha256"] is None and set(failed) == set(BROKEN) | {victim}
    assert {r["key"] for r in dataset.read_manifest(out)} == set(corpus["keys"]) - {victim}  # the others are in
    r = ok(run("tokenize", corpus["root"] / "corpus", out, *corpus["common"], "-q"))
    assert snapshot(out) == snapshot(corpus["ref"])


@pytest.mark.slow
def test_killed_run_resumes_without_loss_or_duplicates(corpus, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "encodec_np.cli", "tokenize", corpus["root"] / "corpus", out,
           *corpus["common"], "--workers", 1, "--backend", "numpy", "-q"]
    proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / dataset.MANIFEST).exists() and (out / dataset.MANIFEST).read_text().count("\n") >= 3:
            break   # a group is journaled (3 bandwidths)
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    journal = dataset.read_manifest(out)
    assert 0 < len(journal) < 3 * len(corpus["keys"]), "the run was not killed mid-way"
    for row in journal:   # whatever the journal names exists, complete
        with np.load(out / row["shard"]) as shard:
            assert shard[row["key"]].shape == (row["codebooks"], row["frames"])
    ok(run("tokenize", corpus["root"] / "corpus", out, *corpus["common"], "-q"))
    assert snapshot(out) == snapshot(corpus["ref"])


@pytest.mark.slow
def test_manifest_inputs(corpus, tmp_path):
    """CSV and JSONL manifests: keys as written; the same codes as from the folder; missing files fail."""
    src = corpus["root"] / "corpus"
    chosen = corpus["keys"][:5]
    (tmp_path / "list.csv").write_text("path,speaker\n" + "".join(f"{src / k},s{i}\n" for i, k in enumerate(chosen))
                                       + "missing.wav,s9\n")
    shutil.copytree(src / "sub", tmp_path / "sub")
    relative = [k for k in corpus["keys"] if k.startswith("sub/")][:3]
    (tmp_path / "list.jsonl").write_text("".join(json.dumps({"path": k}) + "\n" for k in relative) + "\n")
    reference = {row["key"]: codes for row, codes in dataset.read_tokens(corpus["ref"], bandwidth=6.0)}
    for name, expected, failed in (("list.csv", {str(src / k).lstrip("/"): k for k in chosen}, ["missing.wav"]),
                                   ("list.jsonl", {k: k for k in relative}, [])):
        out = tmp_path / f"out_{name}"
        summary = dataset.tokenize_dataset(tmp_path / name, out, model=corpus["models"]["24"], bandwidths=[6.0],
                                      workers=1, backend="numpy")
        got = {row["key"]: codes for row, codes in dataset.read_tokens(out)}
        assert set(got) == set(expected) and summary.encoded == len(expected)
        for key, codes in got.items():
            assert np.array_equal(codes, reference[expected[key]])
        assert [key for key, _ in summary.failed] == failed
        assert all("no such file" in reason.lower() for _, reason in summary.failed)
    (tmp_path / "nopath.csv").write_text("file\nx.wav\n")
    assert "no 'path' column" in fail(run("tokenize", tmp_path / "nopath.csv", tmp_path / "o",
                                          "--model", corpus["models"]["24"]))


@pytest.mark.slow
def test_detokenize_round_trip(corpus, tmp_path):
    model = encodec_np.load_model(corpus["models"]["24"], backend="numpy")
    shard = sorted((corpus["ref"] / "shards/3kbps").iterdir())[1]
    r = ok(run("detokenize", shard, tmp_path / "audio", "--model", corpus["models"]["24"]))
    assert f"wrote {SHARD_SIZE} files" in r.stdout
    rows = [row for row, _ in dataset.read_tokens(shard)]
    with np.load(shard) as codes:
        for row in rows:
            y, sr = encodec_np.read_audio(tmp_path / "audio/3kbps" / dataset.audio_name(row["key"]))
            assert sr == 24000 and y.shape == (1, row["samples"])
            expected = model.decode([(codes[row["key"]][None].astype(np.int64), None)])[0, :, :row["samples"]]
            assert np.abs(y - np.clip(expected, -0.99, 0.99)).max() <= 2 / 32768
    assert "already exists" in fail(run("detokenize", shard, tmp_path / "audio", "--model", corpus["models"]["24"]))
    ok(run("detokenize", corpus["ref"], tmp_path / "some", "--model", corpus["models"]["24"], "-b", "6", "-n", 3))
    assert len(list((tmp_path / "some").rglob("*.wav"))) == 3


@pytest.mark.slow
def test_48khz_scales_and_round_trip(corpus, tmp_path):
    """Segmented stereo model: scales per segment in the manifest; a 3-channel file fails cleanly."""
    src = tmp_path / "in"
    src.mkdir()
    write_wav(src / "long.wav", test_signal("noise", 2, 60000, seed=1, sample_rate=48000), 48000)  # 2 segments
    write_wav(src / "mono.flac", test_signal("chirp", 1, 9000, seed=2, sample_rate=44100), 44100)
    write_wav(src / "three.wav", test_signal("noise", 3, 4000, seed=3, sample_rate=48000), 48000)
    ok(run("tokenize", src, tmp_path / "out", "--model", corpus["models"]["48"], "-b", "12", "--workers", 1, "-q"))
    rows = {r["key"]: r for r in dataset.read_manifest(tmp_path / "out")}
    assert set(rows) == {"long.wav", "mono.flac"} and len(rows["long.wav"]["scales"]) == 2
    assert "channels" in load_jsonl(tmp_path / "out" / dataset.FAILED)[0]["error"]
    ok(run("detokenize", tmp_path / "out", tmp_path / "audio", "--model", corpus["models"]["48"], "-q"))
    for key, row in rows.items():
        y, sr = encodec_np.read_audio(tmp_path / "audio/12kbps" / dataset.audio_name(key))
        assert sr == 48000 and y.shape == (2, row["samples"])


@pytest.mark.slow
def test_errors_and_exit_codes(corpus, tmp_path):
    model = corpus["models"]["24"]
    src = corpus["root"] / "corpus"
    assert "supports" in fail(run("tokenize", src, tmp_path / "o", "--model", model, "-b", "5"), code=2)
    fail(run("tokenize", src, tmp_path / "o", "--model", model, "--workers", 0), code=2)
    fail(run("tokenize", src, tmp_path / "o", "--model", model, "-b", "six"), code=2)
    assert "no such file" in fail(run("tokenize", tmp_path / "nothing", tmp_path / "o", "--model", model))
    (tmp_path / "empty").mkdir()
    assert "no audio files" in fail(run("tokenize", tmp_path / "empty", tmp_path / "o", "--model", model))
    out = tmp_path / "ref"
    shutil.copytree(corpus["ref"], out)
    assert "another checkpoint" in fail(run("tokenize", src, out, "--model", corpus["models"]["48"], "-b", "6"))
    assert "add -b 1.5" in fail(run("tokenize", src, out, "--model", model, "-b", "6"))
    assert snapshot(out) == snapshot(corpus["ref"])
    assert ok(run("tokenize", "--help")).stdout.startswith("usage:")


def test_write_shard_is_reproducible(tmp_path):
    arrays = {"b/x.wav": np.arange(12, dtype=np.int16).reshape(3, 4), "a.flac": np.zeros((2, 0), np.int16)}
    dataset.write_shard(tmp_path / "one.npz", arrays)
    dataset.write_shard(tmp_path / "two.npz", dict(reversed(arrays.items())))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.npz") as archive:   # no clock in the file (np.savez has one)
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(tmp_path / "one.npz") as data:
        assert list(data.keys()) == ["a.flac", "b/x.wav"]
        assert all(np.array_equal(data[k], v) and data[k].dtype == v.dtype for k, v in arrays.items())


def test_parquet_manifest(corpus, tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    shutil.copytree(corpus["ref"], out)
    ok(run("tokenize", corpus["root"] / "corpus", out, *corpus["common"], "--parquet", "-q"))
    assert pq.read_table(out / dataset.PARQUET).to_pylist() == dataset.read_manifest(out)
