"""Hostile files: each row of the attacker's table, loaded in a fresh process.

Every case builds its file here (nothing hostile is committed), loads it in a
child process and asserts the error family, that nothing ran (a marker file a
payload would create), and that the load stayed under 1 s and 100 MB of
peak memory over the child's baseline (``resource``), with an address-space
limit so that a regression fails instead of exhausting the machine.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from th_writer import write_th

import encodec_np
from encodec_np import CheckpointError
from encodec_np.io.checkpoint import to_official_state
from encodec_np.synthetic import random_params

MARKER_ENV = "ENCODEC_NP_TEST_MARKER"
CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
import encodec_np, encodec_np.io.checkpoint
from encodec_np.errors import EncodecError
setup, case = sys.argv[1], sys.argv[2]
env = {"encodec_np": encodec_np}
exec(setup, env)
soft = resource.getrlimit(resource.RLIMIT_AS)[0]
vm = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 30), soft))  # 1 GiB over what is mapped now
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    exec(case, env)
    out = {"error": None}
except BaseException as exc:
    out = {"error": type(exc).__name__, "family": isinstance(exc, EncodecError), "message": str(exc)[:400]}
out["seconds"] = time.perf_counter() - t0
out["mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(out))
"""


def isolated(case: str, setup: str = "", marker: Path | None = None) -> dict:
    """Run ``case`` (after ``setup``) in a fresh interpreter; what it raised, how long, how much memory."""
    env = {**os.environ, MARKER_ENV: str(marker or "")}
    proc = subprocess.run([sys.executable, "-c", CHILD, textwrap.dedent(setup), textwrap.dedent(case)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"the child died ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def refused(case, setup="", *, match, marker=None, error="CheckpointError"):
    out = isolated(case, setup, marker)
    assert out["error"] == error and out["family"], out
    assert match in out["message"], out
    assert out["seconds"] < 1.0 and out["mb"] < 100, out
    assert marker is None or not marker.exists(), "a payload ran"
    return out


# --------------------------------------------------------------------------- .th builders
def _p(value) -> bytes:
    return pickle.dumps(value, 2)[2:-1]


def th_tensor(path: Path, offset, size, stride, numel, data: bytes, marker: Path | None = None) -> Path:
    """The issue's reproducer: one FloatStorage tensor, then (with ``marker``) an ``os.system`` payload
    that would create ``marker`` if the reader went on past the tensor and let the global through."""
    pkl = (b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\n"
           b"FloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpu" + _p(numel) + b"tQ" + _p(offset) + _p(size)
           + _p(stride) + b"tRs")
    if marker is not None:
        pkl += b"X\x01\x00\x00\x00ecposix\nsystem\n(" + _p(f"touch {marker}") + b"tRs"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl + b".")
        z.writestr("archive/data/0", data)
    return path


@pytest.mark.parametrize("offset,size,stride,numel,nbytes,match", [
    (0, (10,), (-100_000_000,), 4, 16, "negative"),                        # C1
    (0, (2, 2), (10 ** 9, -10 ** 9), 4, 16, "negative"),                   # C2
    (-1, (1001,), (1,), 1000, 4000, "negative"),                           # C3
    (0, (10 ** 6 + 1,), (1,), 1000, 4000, "overruns"),                     # C3, larger
    (0, (1000,), (2,), 1000, 4000, "overruns"),                            # extent past the end
    (0, (16384, 16384), (0, 0), 1, 4, "repeats elements"),                 # C4
    (0, (16384, 16384), (1, 16384), 1, 4, "overruns"),                     # C4 without zero strides
], ids=["C1", "C2", "C3", "C3-big", "extent", "C4", "C4-overlap"])
def test_tensor_geometry_is_checked_before_any_view(tmp_path, offset, size, stride, numel, nbytes, match):
    marker = tmp_path / "pwned"
    path = th_tensor(tmp_path / "x.th", offset, size, stride, numel, b"\0" * nbytes, marker)
    refused(f"encodec_np.io.checkpoint.read_torch_state({str(path)!r})", match=match, marker=marker)


def test_valid_views_still_load(tmp_path):
    data = np.arange(12, dtype="<f4").tobytes()
    path = th_tensor(tmp_path / "t.th", 1, (3, 2), (1, 3), 12, data)  # a transposed view at offset 1
    got = encodec_np.io.checkpoint.read_torch_state(path)["w"]
    np.testing.assert_array_equal(got, [[1, 4], [2, 5], [3, 6]])
    empty = th_tensor(tmp_path / "e.th", 0, (0, 5), (5, 1), 0, b"")
    assert encodec_np.io.checkpoint.read_torch_state(empty)["w"].shape == (0, 5)


@pytest.mark.parametrize("index", [2 ** 26, 2 ** 31 - 1])
def test_huge_memo_index_costs_nothing(tmp_path, index):  # C5
    path = tmp_path / "memo.th"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}r" + struct.pack("<I", index) + b".")
    refused(f"encodec_np.io.checkpoint.read_torch_state({str(path)!r})", match="memo index")


def test_deep_pickle_nesting_is_refused(tmp_path):
    path = tmp_path / "deep.th"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02" + b"(" * 100_000 + b"t" * 100_000 + b".")
    refused(f"encodec_np.io.checkpoint.read_torch_state({str(path)!r})", match="nested deeper")
    with zipfile.ZipFile(path, "w") as z:  # nesting without marks: ]]]]...aaaa
        z.writestr("archive/data.pkl", b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b".")
    refused(f"encodec_np.io.checkpoint.read_torch_state({str(path)!r})", match="stack depth")


def _bomb(path: Path, entry: str, pkl: bytes | None) -> Path:
    zero = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        if pkl is not None:
            z.writestr("archive/data.pkl", pkl)
        with z.open(entry, "w", force_zip64=True) as f:
            for _ in range(768):
                f.write(zero)
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    small = th_tensor(folder / "ok.th", 0, (4,), (1,), 4, b"\0" * 16)
    with zipfile.ZipFile(small) as z:
        pkl = z.read("archive/data.pkl")
    return {"storage": _bomb(folder / "storage.th", "archive/data/0", pkl),
            "pickle": _bomb(folder / "pickle.th", "archive/data.pkl", None)}


@pytest.mark.slow
@pytest.mark.parametrize("which,match", [("storage", "more than the 16"), ("pickle", "more than the")])
def test_deflate_bombs_are_read_with_a_cap(bombs, which, match):  # C6
    assert bombs[which].stat().st_size < 5 << 20
    refused(f"encodec_np.io.checkpoint.read_torch_state({str(bombs[which])!r})", match=match)


def _patch_zip(path: Path, *, method: int | None = None, flags: int | None = None) -> None:
    """Rewrite the compression method or the flag bits in every local and central header."""
    data = bytearray(path.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(sig)
        while at >= 0:
            if flags is not None:
                data[at + flag_at:at + flag_at + 2] = struct.pack("<H", flags)
            if method is not None:
                data[at + method_at:at + method_at + 2] = struct.pack("<H", method)
            at = data.find(sig, at + 4)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind,match", [("byteorder", "byte order"), ("method", "compression method"),
                                        ("encrypted", "encrypted")])
def test_zip_oddities_are_checkpoint_errors(tmp_path, kind, match):  # C7
    path = tmp_path / "m.th"
    write_th(path, {"w": np.zeros(3, np.float32)})
    if kind == "byteorder":
        with zipfile.ZipFile(path) as z, zipfile.ZipFile(tmp_path / "b.th", "w") as out:
            for name in z.namelist():
                out.writestr(name, b"\xff\xfe" if name.endswith("byteorder") else z.read(name))
        path = tmp_path / "b.th"
    else:
        _patch_zip(path, **({"method": 99} if kind == "method" else {"flags": 1}))
    refused(f"encodec_np.io.checkpoint.read_torch_state({str(path)!r})", match=match)


# --------------------------------------------------------------------------- configs
def hf_folder(folder: Path, **changes) -> Path:
    """A Hugging Face folder: a valid tiny-model config.json with ``changes``, and its weights."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": "encodec", "sampling_rate": 24000, "audio_channels": 1, "hidden_size": 8,
              "num_filters": 2, "num_residual_layers": 1, "upsampling_ratios": [8, 5, 4, 2],
              "norm_type": "weight_norm", "num_lstm_layers": 2, "codebook_size": 1024,
              "target_bandwidths": [1.5, 3.0], "use_causal_conv": True}
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    save_file({"x": np.zeros(1, np.float32)}, str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize("changes,match", [
    ({"num_residual_layers": 10 ** 6}, "n_residual_layers must be an integer in 0..32"),     # C8
    ({"num_lstm_layers": 10 ** 7}, "lstm must be an integer in 0..16"),
    ({"upsampling_ratios": [2] * 10 ** 5}, "upsampling_ratios has 100000 entries"),
    ({"sampling_rate": 0}, "sampling_rate 0 is outside"),                                    # C9
    ({"sampling_rate": float("inf")}, "sampling_rate must be int"),
    ({"target_bandwidths": []}, "target_bandwidths is empty"),
    ({"target_bandwidths": ["x"]}, "target_bandwidths must be float"),
    ({"target_bandwidths": [1e308]}, "must lie in (0, 10000] kbps"),  # found by the fuzzer: inf // x = nan
    ({"codebook_size": 3}, "power of 2"),
    ({"num_filters": True}, "num_filters must be int"),
], ids=["residual", "lstm", "ratios", "rate0", "rateinf", "nobw", "bwstr", "bwhuge", "bins3", "bool"])
def test_hf_config_fields_are_checked_first(tmp_path, changes, match):
    folder = hf_folder(tmp_path / "hf", **changes)
    refused(f"encodec_np.io.checkpoint.read_checkpoint({str(folder)!r})", match=match)


@pytest.mark.parametrize("text,match", [(b"\xff\xfe{}", "not UTF-8"), (b"[" * 100_000 + b"]" * 100_000, "JSON"),
                                        (b"{" * 3, "not valid JSON"), (b" " * (2 << 20), "larger than")],
                         ids=["utf8", "deep", "broken", "huge"])
def test_hf_config_json_itself(tmp_path, text, match):  # C9
    folder = hf_folder(tmp_path / "hf")
    (folder / "config.json").write_bytes(text)
    refused(f"encodec_np.io.checkpoint.read_checkpoint({str(folder)!r})", match=match)


def test_hf_codebook_bits_follow_the_codebook_size(tmp_path):  # C12
    from safetensors.numpy import save_file
    from test_checkpoint import hf_state

    cfg = encodec_np.EncodecConfig(
        name="hf_encodec", sample_rate=16000, target_bandwidths=(2.2, 6.6),
        seanet=encodec_np.SEANetConfig(dimension=8, n_filters=2),
        quantizer=encodec_np.RVQConfig(dimension=8, n_q=12, bins=2048))
    folder = hf_folder(tmp_path / "hf", sampling_rate=16000, codebook_size=2048, target_bandwidths=[2.2, 6.6])
    save_file(hf_state(to_official_state(random_params(cfg, seed=0), cfg)), str(folder / "model.safetensors"))
    model = encodec_np.load_model(folder, backend="numpy")
    assert model.config == cfg and model.num_codebooks == 12  # 6.6 kbps at 50 Hz x 11 bits


def tiny_cfg():
    cfg = encodec_np.encodec_24khz()
    import dataclasses
    return cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=2, dimension=8),
                       quantizer=encodec_np.RVQConfig(dimension=8, n_q=4, bins=16),
                       target_bandwidths=(1.5,))


@pytest.mark.parametrize("key,change,match", [
    ("target_bandwidths", ["x"], "target_bandwidths"),                                     # C11
    ("seanet", "ab", "invalid model configuration"),
    ("segment", -1, "segment must be a number in"),
    ("sample_rate", 10 ** 12, "sample_rate must be an integer"),
    ("quantizer", {"dimension": 8, "n_q": 10 ** 9, "bins": 16}, "n_q must be an integer"),
], ids=["bw", "seanet", "segment", "rate", "n_q"])
def test_our_metadata_is_checked(tmp_path, key, change, match):
    from safetensors.numpy import save_file

    from encodec_np.io.checkpoint import FORMAT_KEY

    cfg = tiny_cfg()
    meta = cfg.to_dict()
    meta[key] = change
    path = tmp_path / "m.safetensors"
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in random_params(cfg).items()}, str(path),
              metadata={FORMAT_KEY: json.dumps(meta)})
    refused(f"encodec_np.io.checkpoint.read_checkpoint({str(path)!r})", match=match)


@pytest.mark.parametrize("name,value,match", [
    ("encoder.model.0.conv.conv.bias", np.zeros(2, np.int8), "stored as int8"),             # C10
    ("encoder.model.0.conv.conv.bias", np.zeros(2, np.bool_), "stored as bool"),
    ("decoder.model.0.conv.conv.bias", np.zeros(8, np.int64), "stored as int64"),
    ("encoder.model.0.conv.conv.bias", np.array([0, np.nan], np.float32), "NaN or Inf"),
    ("quantizer.vq.layers.1._codebook.embed", np.full((16, 8), np.inf, np.float32), "NaN or Inf"),
    ("encoder.model.0.conv.conv.weight_g", np.full((2, 1, 1), np.nan, np.float32), "NaN or Inf"),
], ids=["int8", "bool", "int64", "nan-bias", "inf-codebook", "nan-weight"])
def test_weights_must_be_finite_floats(tmp_path, name, value, match):
    cfg = tiny_cfg()
    state = to_official_state(random_params(cfg, seed=0), cfg)
    assert name in state
    state[name] = value
    path = tmp_path / "m.th"
    write_th(path, state)
    out = refused(f"encodec_np.io.checkpoint.read_checkpoint({str(path)!r})", match=match)
    assert name in out["message"]


def test_weights_check_covers_our_format_and_direct_construction(tmp_path):
    cfg = tiny_cfg()
    params = random_params(cfg, seed=0)
    params["quantizer.codebooks"] = params["quantizer.codebooks"].copy()
    params["quantizer.codebooks"][0, 0, 0] = np.nan
    with pytest.raises(CheckpointError, match="quantizer.codebooks: holds NaN"):
        encodec_np.EncodecModel(cfg, params)
    from safetensors.numpy import save_file

    from encodec_np.io.checkpoint import FORMAT_KEY
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in params.items()}, str(tmp_path / "m.safetensors"),
              metadata={FORMAT_KEY: json.dumps(cfg.to_dict())})
    with pytest.raises(CheckpointError, match="quantizer.codebooks: holds NaN"):
        encodec_np.io.checkpoint.read_checkpoint(tmp_path / "m.safetensors")


# --------------------------------------------------------------------------- .ecdc with an LM
@pytest.mark.slow
def test_lm_header_length_is_not_allocated_up_front(tmp_path):  # E1
    setup = """
        import sys, numpy as np
        sys.path.insert(0, {tests!r})
        from test_lm import random_lm_state
        from encodec_np.format.lm import LMModel
        from encodec_np.format import ecdc
        from encodec_np.config import encodec_24khz
        lm = LMModel.from_state(random_lm_state(16, dim=16, layers=1, hidden=32, seed=0))
        import json
        meta = json.dumps({{"m": "encodec_24khz", "al": 4294967296, "nc": 16, "lm": True, "crc": 0}}).encode()
        data = ecdc.HEADER.pack(ecdc.MAGIC, ecdc.VERSION, len(meta)) + meta + bytes(64)
    """.format(tests=str(Path(__file__).parent))
    refused("ecdc.read_frames(data, encodec_24khz(), lm=lm)", setup, match="stream", error="EncodecError")


# --------------------------------------------------------------------------- audio files
def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "encodec_np.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def wav_header(n_samples: int, rate: int = 24000) -> bytes:
    return (b"RIFF" + struct.pack("<I", 36 + 2 * n_samples) + b"WAVE" + b"fmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16) + b"data" + struct.pack("<I", 2 * n_samples))


@pytest.mark.parametrize("command", ["encode", "roundtrip"])
def test_truncated_wav_is_an_error_with_both_numbers(tmp_path, command):  # A1
    src = tmp_path / "short.wav"
    src.write_bytes(wav_header(10 ** 8) + b"\x01\x00" * 500)
    out = tmp_path / ("o.ecdc" if command == "encode" else "o.wav")
    result = cli(command, src, out, "--model", "encodec_np_small_24khz", "--backend", "numpy")
    assert result.returncode == 1, result.stderr
    assert "100000000" in result.stderr and " 500 " in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    with pytest.raises(encodec_np.EncodecError, match="header says 100000000"):
        encodec_np.read_audio(src)
    with pytest.raises(encodec_np.EncodecError, match="header says 100000000"):
        list(encodec_np.io.audio.read_blocks(src, 100))


def test_streaming_placeholder_sizes_are_not_truncation(tmp_path):
    """A WAV written to a pipe leaves 0xFFFFFFFF for "unknown": all its samples are read."""
    data = (np.arange(500) % 100).astype("<i2").tobytes()
    head = bytearray(wav_header(500))
    head[4:8] = head[40:44] = b"\xff\xff\xff\xff"
    (tmp_path / "pipe.wav").write_bytes(bytes(head) + data)
    wav, sr = encodec_np.read_audio(tmp_path / "pipe.wav")
    assert wav.shape == (1, 500) and sr == 24000


def test_absurd_sample_rates_are_refused(tmp_path):  # A2
    src = tmp_path / "slow.wav"
    src.write_bytes(wav_header(2000, rate=1) + b"\x01\x00" * 2000)
    t0 = time.perf_counter()
    result = cli("encode", src, tmp_path / "o.ecdc", "--model", "encodec_np_small_24khz", "--backend", "numpy")
    assert result.returncode == 1 and "sample rate 1 Hz" in result.stderr, result.stderr
    assert time.perf_counter() - t0 < 30
    with pytest.raises(encodec_np.EncodecError, match="sample rate 1 Hz"):
        encodec_np.read_audio(src)


def test_input_beyond_full_scale_is_warned_about(tmp_path):
    import soundfile as sf

    src = tmp_path / "loud.wav"
    sf.write(str(src), (np.sin(np.arange(4800) / 10) * 28).astype(np.float32), 24000, subtype="FLOAT")
    result = cli("encode", src, tmp_path / "o.ecdc", "--model", "encodec_np_small_24khz", "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "peaks at 28" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "beyond [-1, 1]" in lines[0]


# --------------------------------------------------------------------------- temporary files
WRITER = r"""
import os, signal, sys
from encodec_np.fileutil import atomic_output
with atomic_output(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half")
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    print("ready", flush=True)
    sys.stdin.readline()
"""


@pytest.mark.slow
def test_dead_writers_leftovers_are_removed_live_ones_kept(tmp_path):  # T1
    out = tmp_path / "out.wav"
    dead = subprocess.run([sys.executable, "-c", WRITER, str(out), "die"], capture_output=True)
    assert dead.returncode == -signal.SIGKILL
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(leftovers) == 1
    live = subprocess.Popen([sys.executable, "-c", WRITER, str(out), "live"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "ready"
        # The next writer into the folder removed the dead one's file and made its own.
        parts = {p.name for p in tmp_path.iterdir() if p.name.endswith(".part")}
        assert len(parts) == 1 and leftovers[0].name not in parts
        # Another run into the folder (the CLI writing another output) keeps the live writer's file.
        ok = cli("golden", tmp_path / "g.npz", "--length", 400)
        assert ok.returncode == 0, ok.stderr
        assert {p.name for p in tmp_path.iterdir() if p.name.endswith(".part")} == parts
    finally:
        live.communicate("go\n", timeout=30)
    assert out.read_bytes() == b"half" and not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_ecdc_scale_that_would_overflow_is_refused():
    """Found by the fuzzer: a segment scale of 3e38 decoded to inf samples."""
    from conftest import tiny_codec

    from encodec_np.format import ecdc
    from encodec_np.synthetic import random_model, test_signal
    model = random_model(tiny_codec(encodec_np.encodec_48khz), 0, backend="numpy")
    model.set_target_bandwidth(6.0)
    data = bytearray(encodec_np.compress(model, test_signal("noise", 2, 4000, seed=0, sample_rate=48000)))
    at = len(ecdc.header_bytes(model.name, 4000, 2, False))
    data[at:at + 4] = struct.pack("!f", 3e38)
    with pytest.raises(encodec_np.EncodecError, match=r"scale 3\.0+\d*e\+38; scales are RMS values"):
        encodec_np.decompress(bytes(data), model=model)
