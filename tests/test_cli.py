"""The codec command line, run as a user runs it: ``python -m encodec_np.cli ...`` in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tiny_codec

import encodec_np
from encodec_np import compression, geometry
from encodec_np.config import encodec_24khz, encodec_48khz
from encodec_np.format import ecdc
from encodec_np.io.audio import convert_audio, read_audio
from encodec_np.synthetic import random_model, test_signal

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models with the official names and structures, saved for --model PATH."""
    folder = tmp_path_factory.mktemp("models")
    out = {}
    for key, preset, seed in (("24", encodec_24khz, 1), ("48", encodec_48khz, 2)):
        model = random_model(tiny_codec(preset), seed, backend="numpy")
        path = folder / f"tiny{key}.safetensors"
        encodec_np.save_model(model, path)
        out[key] = (model, path)
    return out


def run(*args, timeout=300):
    """The command line in a fresh process; the numpy backend unless --backend is given (no numba start-up)."""
    args = [str(a) for a in args]
    if args and args[0] in ("encode", "decode", "roundtrip") and "--backend" not in args and "--help" not in args:
        args += ["--backend", "numpy"]
    env = dict(os.environ)
    env["ENCODEC_NP_BASE_URL"] = "http://127.0.0.1:9/"  # an accidental download fails at once
    return subprocess.run([sys.executable, "-m", "encodec_np.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, env=env)


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


def fail(result, code=1):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    if code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.stderr
    return lines[-1]


def write_wav(path, x, sr, subtype="PCM_16"):
    sf.write(str(path), x.T, sr, subtype=subtype)
    return path


def leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".") or p.suffix in (".part", ".tmp")]


# --------------------------------------------------------------------------- the happy paths
def api_roundtrip(model, wav, bandwidth):
    """What the in-memory API gives for an audio file: ``(.ecdc bytes, decoded [C, T])``."""
    x, sr = read_audio(wav)
    model.set_target_bandwidth(bandwidth)
    data = compression.compress(model, convert_audio(x, sr, model.sample_rate, model.channels))
    return data, compression.decompress(data, model=model)[0]


@pytest.mark.slow
def test_encode_decode_roundtrip_tokens_24(tmp_path, models):
    model, ckpt = models["24"]
    wav = write_wav(tmp_path / "in.wav", test_signal("chirp", 1, 12000, seed=1, sample_rate=24000), 24000)
    before = wav.read_bytes()
    common = ["--model", ckpt]
    r = ok(run("encode", wav, tmp_path / "a.ecdc", "-b", "3", "--tokens", tmp_path / "enc.npy", *common))
    assert "wrote" in r.stdout and "4 codebooks x 38 frames" in r.stdout
    r = ok(run("decode", tmp_path / "a.ecdc", tmp_path / "a.wav", "--tokens", tmp_path / "dec.npy", *common))
    assert "24000 Hz" in r.stdout
    ok(run("roundtrip", wav, tmp_path / "rt.wav", "-b", "3", "-q", *common))

    data, y = api_roundtrip(model, wav, 3.0)
    assert (tmp_path / "a.ecdc").read_bytes() == data
    decoded, sr_out = read_audio(tmp_path / "a.wav")
    assert sr_out == 24000 and decoded.shape == (1, 12000)
    assert np.abs(decoded - np.clip(y, -0.99, 0.99)).max() <= 2 / 32768
    assert (tmp_path / "rt.wav").read_bytes() == (tmp_path / "a.wav").read_bytes()

    enc, dec = np.load(tmp_path / "enc.npy"), np.load(tmp_path / "dec.npy")
    assert enc.dtype == np.int16 and enc.shape == (4, 38) and np.array_equal(enc, dec)
    assert np.array_equal(enc, ecdc.read_frames(data, model.config)[1][0][0][0])
    assert wav.read_bytes() == before
    assert not leftovers(tmp_path)


@pytest.mark.slow
def test_long_file_streams_through_encode_and_decode(tmp_path, models):
    """A file over the model's long_input_seconds (10 s) is read and written chunk by chunk:
    the same bytes as the in-memory API."""
    model, ckpt = models["24"]
    x = test_signal("noise", 2, 24000 * 12 + 77, seed=8, sample_rate=24000)  # stereo: mixed down per chunk
    wav = write_wav(tmp_path / "long.wav", x, 24000)
    ok(run("encode", wav, tmp_path / "long.ecdc", "-b", "6", "--model", ckpt))
    ok(run("decode", tmp_path / "long.ecdc", tmp_path / "long.wav.wav", "--model", ckpt, "--float"))
    data, y = api_roundtrip(model, wav, 6.0)
    assert (tmp_path / "long.ecdc").read_bytes() == data
    decoded, _ = read_audio(tmp_path / "long.wav.wav")
    np.testing.assert_array_equal(decoded, np.clip(y, -0.99, 0.99))
    assert not leftovers(tmp_path)


@pytest.mark.slow
def test_48_structured_resampled_stereo_float(tmp_path, models):
    model, ckpt = models["48"]
    x = test_signal("noise", 1, 52000, seed=3, sample_rate=44100)  # mono 44.1 kHz FLAC → stereo 48 kHz
    src = write_wav(tmp_path / "in.flac", x, 44100)
    r = ok(run("encode", src, tmp_path / "b.ecdc", "--model", ckpt, "-b", "12", "--tokens", tmp_path / "t.npy",
               "--backend", "auto", "--threads", "1"))   # the default backend, once
    length = -(-52000 * 48000 // 44100)
    layout = list(geometry.segments(model.config, length))
    assert len(layout) == 2 and f"in {len(layout)} segments" in r.stdout
    tokens = np.load(tmp_path / "t.npy")
    assert tokens.shape == (8, sum(f for _, _, f in layout))
    ok(run("decode", tmp_path / "b.ecdc", tmp_path / "b.wav", "--model", ckpt, "--float"))
    info = sf.info(str(tmp_path / "b.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (48000, 2, length, "FLOAT")


@pytest.mark.slow
def test_info(tmp_path, models):
    model, ckpt = models["48"]
    src = write_wav(tmp_path / "s.wav", test_signal("chirp", 2, 50000, seed=2, sample_rate=48000), 48000)
    ok(run("encode", src, tmp_path / "s.ecdc", "--model", ckpt, "-q"))
    r = ok(run("info", tmp_path / "s.ecdc"))  # a pretrained name: layout from the preset, no download
    for text in ('"m": "encodec_48khz"', "50,000 samples", "4 of 16 (6 kbps nominal)", "segments", "scales",
                 "entropy bits"):
        assert text in r.stdout, r.stdout
    assert len([ln for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]) == 4  # one row per codebook
    r = ok(run("info", ckpt))
    assert "n_filters 4, dimension 16" in r.stdout and "encodec_48khz" in r.stdout
    r = ok(run("info", src))
    assert "48000 Hz, 2 channel(s)" in r.stdout
    fail(run("info", tmp_path / "missing.ecdc"))
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 50)
    assert "not an .ecdc file" in fail(run("info", tmp_path / "junk.bin"))


@pytest.mark.slow
def test_convert_th_to_safetensors(tmp_path):
    from th_writer import write_th

    from encodec_np.io.checkpoint import read_checkpoint, to_official_state
    from encodec_np.synthetic import random_params

    cfg = encodec_24khz()
    params = random_params(cfg, 3)
    write_th(tmp_path / "m.th", to_official_state(params, cfg))
    r = ok(run("convert", tmp_path / "m.th", tmp_path / "m.safetensors"))
    assert "encodec_24khz" in r.stdout
    config, converted = read_checkpoint(tmp_path / "m.safetensors")
    _, original = read_checkpoint(tmp_path / "m.th")
    assert config == cfg and set(converted) == set(original)
    for key in original:
        assert np.allclose(converted[key], original[key], rtol=1e-6, atol=1e-7), key
    assert "exists" in fail(run("convert", tmp_path / "m.th", tmp_path / "m.safetensors"))
    fail(run("convert", tmp_path / "m.th", tmp_path / "m.bin"), code=2)


# --------------------------------------------------------------------------- edge inputs
@pytest.mark.parametrize("which, kind", [("24", "silent"), ("24", "one_sample"), ("24", "loud"),
                                         ("48", "silent"), ("48", "one_sample")])
@pytest.mark.slow
def test_edge_inputs(tmp_path, models, which, kind):
    model, ckpt = models[which]
    sr = model.sample_rate
    x = {"silent": np.zeros((1, 2400), np.float32),
         "one_sample": np.full((1, 1), 0.25, np.float32),
         "loud": 4.0 * test_signal("chirp", 1, 4800, seed=0, sample_rate=sr) / 0.51}[kind]
    src = write_wav(tmp_path / "in.wav", x, sr, subtype="FLOAT")
    r = ok(run("roundtrip", src, tmp_path / "out.wav", "--model", ckpt))
    assert "Traceback" not in r.stderr
    y, sr_out = read_audio(tmp_path / "out.wav")
    assert sr_out == sr and y.shape == (model.channels, x.shape[-1])
    assert np.isfinite(y).all() and np.abs(y).max() <= 0.99
    ok(run("encode", src, tmp_path / "e.ecdc", "--model", ckpt))
    assert ecdc.read_header((tmp_path / "e.ecdc").read_bytes())["al"] == x.shape[-1]
    ok(run("decode", tmp_path / "e.ecdc", tmp_path / "d.wav", "--model", ckpt, "-r"))
    assert read_audio(tmp_path / "d.wav")[0].shape == y.shape


@pytest.mark.slow
def test_clipping_warning_on_the_command_line(tmp_path, models):
    """A loud decoded signal warns (one line on stderr) unless -r; -r scales it to peak 0.99."""
    model, ckpt = models["24"]
    model.set_target_bandwidth(6.0)
    x = test_signal("chirp", 1, 4800, seed=0, sample_rate=24000)
    data = compression.compress(model, x)
    quiet_peak = float(np.abs(compression.decompress(data, model=model)[0]).max())
    # a model whose decoder output is scaled up 10x: multiply the last conv's weight and bias
    loud = random_model(model.config, 1, backend="numpy")
    import re

    last = max((k for k in loud.params if re.fullmatch(r"decoder\.model\.\d+\.conv\.conv\.weight", k)),
               key=lambda k: int(k.split(".")[2]))
    params = dict(loud.params)
    params[last] = params[last] * (10 / quiet_peak)
    params[last.replace("weight", "bias")] = params[last.replace("weight", "bias")] * (10 / quiet_peak)
    loud = encodec_np.EncodecModel(model.config, params, backend="numpy")
    loud_path = tmp_path / "loud.safetensors"
    encodec_np.save_model(loud, loud_path)
    (tmp_path / "x.ecdc").write_bytes(data)
    r = ok(run("decode", tmp_path / "x.ecdc", tmp_path / "clip.wav", "--model", loud_path))
    assert any(line.startswith("warning: clipping") for line in r.stderr.splitlines()), r.stderr
    assert np.abs(read_audio(tmp_path / "clip.wav")[0]).max() <= 0.99 + 1e-4
    r = ok(run("decode", tmp_path / "x.ecdc", tmp_path / "scaled.wav", "--model", loud_path, "-r"))
    assert "warning" not in r.stderr
    assert abs(np.abs(read_audio(tmp_path / "scaled.wav")[0]).max() - 0.99) < 1e-3


# --------------------------------------------------------------------------- failures and exit codes
@pytest.mark.slow
def test_usage_errors_exit_2(tmp_path, models):
    _, ckpt = models["24"]
    src = write_wav(tmp_path / "in.wav", np.zeros((1, 100), np.float32), 24000)
    assert "unrecognized arguments" in fail(run("encode", src, tmp_path / "o.ecdc", "--frobnicate"), code=2)
    fail(run("encode", src), code=2)                                       # missing OUT
    fail(run("encode", src, tmp_path / "o.ecdc", "--hq", "--model", ckpt), code=2)
    assert "supports" in fail(run("encode", src, tmp_path / "o.ecdc", "--model", ckpt, "-b", "5"), code=2)
    fail(run("encode", src, tmp_path / "o.ecdc", "--threads", "0"), code=2)
    assert ok(run("--help")).stdout.count("encode") >= 1
    for command in ("encode", "decode", "roundtrip", "info", "convert"):
        assert ok(run(command, "--help")).stdout.startswith("usage:")
    assert not (tmp_path / "o.ecdc").exists()


@pytest.mark.slow
def test_failures_exit_1_and_leave_nothing(tmp_path, models):
    _, ckpt = models["24"]
    src = write_wav(tmp_path / "in.wav", test_signal("noise", 1, 2000, seed=0, sample_rate=24000), 24000)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert "missing.wav: no such file" in fail(run("encode", tmp_path / "missing.wav", tmp_path / "o.ecdc",
                                                   "--model", ckpt))
    (tmp_path / "text.wav").write_text("not audio at all")
    assert "unreadable audio" in fail(run("encode", tmp_path / "text.wav", tmp_path / "o.ecdc", "--model", ckpt))
    (tmp_path / "bad.ecdc").write_bytes(b"ECDC\x00\x00\x00\x00\x05{\"m\":")
    assert "corrupt .ecdc header" in fail(run("decode", tmp_path / "bad.ecdc", tmp_path / "o.wav", "--model", ckpt))
    ok(run("encode", src, tmp_path / "good.ecdc", "--model", ckpt))
    data = (tmp_path / "good.ecdc").read_bytes()
    (tmp_path / "cut.ecdc").write_bytes(data[:-3])
    assert "truncated" in fail(run("decode", tmp_path / "cut.ecdc", tmp_path / "o.wav", "--model", ckpt))
    assert "encodec_48khz" in fail(run("decode", tmp_path / "good.ecdc", tmp_path / "o.wav",
                                       "--model", models["48"][1]))
    assert "format" in fail(run("decode", tmp_path / "good.ecdc", tmp_path / "o.xyz", "--model", ckpt))
    assert "does not exist" in fail(run("encode", src, tmp_path / "nofolder" / "o.ecdc", "--model", ckpt))
    assert "is the input" in fail(run("roundtrip", src, src, "--model", ckpt, "-f"))
    r = run("decode", tmp_path / "cut.ecdc", tmp_path / "o.wav", "--model", ckpt, "--debug")
    assert r.returncode == 1 and "Traceback" in r.stderr
    after = sorted(p.name for p in tmp_path.iterdir())
    assert sorted(set(after) - set(before)) == ["bad.ecdc", "cut.ecdc", "good.ecdc", "text.wav"]
    assert not leftovers(tmp_path)


@pytest.mark.slow
def test_existing_output_needs_force(tmp_path, models):
    _, ckpt = models["24"]
    src = write_wav(tmp_path / "in.wav", test_signal("noise", 1, 1000, seed=0, sample_rate=24000), 24000)
    out = tmp_path / "o.ecdc"
    out.write_bytes(b"keep me")
    assert "-f/--force" in fail(run("encode", src, out, "--model", ckpt))
    assert out.read_bytes() == b"keep me"
    (tmp_path / "t.npy").write_bytes(b"old")      # any existing output blocks the run before work starts
    out.unlink()
    fail(run("encode", src, out, "--model", ckpt, "--tokens", tmp_path / "t.npy"))
    assert not out.exists()
    ok(run("encode", src, out, "--model", ckpt, "--tokens", tmp_path / "t.npy", "-f", "-q"))
    assert out.read_bytes()[:4] == b"ECDC" and np.load(tmp_path / "t.npy").shape == (8, 4)
    assert not leftovers(tmp_path)


def test_decode_unknown_model_name_needs_model(tmp_path, models):
    header = ecdc.header_bytes("my_codec", 100, 2, False)
    (tmp_path / "u.ecdc").write_bytes(header + b"\x00" * 3)
    assert "--model PATH" in fail(run("decode", tmp_path / "u.ecdc", tmp_path / "u.wav"))
    r = ok(run("info", tmp_path / "u.ecdc"))
    assert "my_codec" in r.stdout and "--model" in r.stdout


@pytest.mark.slow
def test_lm_flag_with_a_local_lm(tmp_path, models):
    pytest.importorskip("encodec_np.format.lm")
    test_lm = pytest.importorskip("test_lm")
    from th_writer import write_th

    _, ckpt = models["24"]
    write_th(tmp_path / "lm.th", test_lm.random_lm_state(32, dim=32, layers=1, hidden=64, seed=3))
    src = write_wav(tmp_path / "in.wav", test_signal("noise", 1, 8000, seed=0, sample_rate=24000), 24000)
    ok(run("encode", src, tmp_path / "lm.ecdc", "--model", ckpt, "--lm", "--lm-model", tmp_path / "lm.th"))
    assert ecdc.read_header((tmp_path / "lm.ecdc").read_bytes())["lm"] is True
    ok(run("decode", tmp_path / "lm.ecdc", tmp_path / "lm.wav", "--model", ckpt, "--lm-model", tmp_path / "lm.th"))
    ok(run("roundtrip", src, tmp_path / "plain.wav", "--model", ckpt))
    assert read_audio(tmp_path / "lm.wav")[0].tobytes() == read_audio(tmp_path / "plain.wav")[0].tobytes()
    r = ok(run("info", tmp_path / "lm.ecdc"))
    assert "language model" in r.stdout


# --------------------------------------------------------------------------- a new user's first hour
def test_offline_default_model_error_names_both_ways_out(tmp_path):
    src = write_wav(tmp_path / "in.wav", test_signal("noise", 1, 2400, seed=0, sample_rate=24000), 24000)
    env_cache = {"ENCODEC_NP_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "encodec_np.cli", "encode", str(src), str(tmp_path / "o.ecdc")],
                            capture_output=True, text=True, cwd=REPO, timeout=300,
                            env={**os.environ, **env_cache, "ENCODEC_NP_BASE_URL": "http://127.0.0.1:9/"})
    line = fail(result)
    assert "--model encodec_np_small_24khz" in line and "--model /path/to/encodec_24khz-d7cc33bc.th" in line


@pytest.mark.slow
def test_mp3_output_reports_its_real_subtype(tmp_path, models):
    import soundfile as sf
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile writes no MP3")
    model, path = models["24"]
    src = write_wav(tmp_path / "in.wav", test_signal("chirp", 1, 4800, seed=0, sample_rate=24000), 24000)
    ok(run("encode", src, tmp_path / "a.ecdc", "--model", path))
    result = ok(run("decode", tmp_path / "a.ecdc", tmp_path / "a.mp3", "--model", path))
    assert "MPEG_LAYER_III" in result.stdout and "PCM_16" not in result.stdout
    info = sf.info(str(tmp_path / "a.mp3"))
    assert info.format == "MP3" and info.samplerate == 24000
    line = fail(run("decode", tmp_path / "a.ecdc", tmp_path / "b.mp3", "--model", path, "--float"))
    assert "MP3 files cannot hold FLOAT samples" in line
    ogg = ok(run("decode", tmp_path / "a.ecdc", tmp_path / "a.ogg", "--model", path))
    assert "VORBIS" in ogg.stdout


@pytest.mark.slow
def test_flags_are_spelled_alike_and_errors_name_the_command(tmp_path):
    out = tmp_path / "g.npz"
    ok(run("golden", out, "--length", 200, "-b", 6, "-q"))
    line = fail(run("golden", out, "--length", 200))
    assert "already exists; use -f/--force" in line
    ok(run("golden", out, "--length", 200, "-f"))
    bad = run("decode", "x.ecdc", "y.wav", "--bogus")
    assert bad.returncode == 2 and "encodec-np decode: error: unrecognized arguments: --bogus" in bad.stderr
    info = ok(run("info", "encodec_np_small_24khz"))
    assert "encodec_np_small_24khz" in info.stdout and "16 codebooks" in info.stdout
    for command in ("encode", "decode", "stream", "golden"):
        helptext = run(command, "--help").stdout
        assert "--backend NAME" in helptext and "cuda" in helptext and "--threads N" in helptext
        assert "-q, --quiet" in helptext


def test_detokenize_names_and_read_only_folders(tmp_path, monkeypatch):
    from encodec_np import fileutil
    from encodec_np.dataset import audio_name
    assert audio_name("sub/clip.flac") == "sub/clip.wav" and audio_name("../a/b.wav") == "a/b.wav"

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fileutil.os, "open", refuse)  # root ignores file modes: refuse the way a read-only folder does
    with pytest.raises(encodec_np.EncodecError) as info:
        encodec_np.write_audio(tmp_path / "out.wav", np.zeros((1, 10), np.float32), 24000)
    assert str(info.value) == f"cannot write {tmp_path / 'out.wav'}: permission denied in {tmp_path}"
