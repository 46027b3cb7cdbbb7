"""Golden vectors, seeded synthetic weights/signals, and the ``encodec-np golden`` command."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encodec_np import ops
from encodec_np.config import EncodecConfig, RVQConfig, SEANetConfig, encodec_24khz, encodec_48khz
from encodec_np.errors import EncodecError
from encodec_np.golden import export_golden, golden_vectors
from encodec_np.quantization import CODEBOOKS
from encodec_np.seanet import ResBlock
from encodec_np.synthetic import SIGNAL_KINDS, random_model, random_params, test_signal
from encodec_np.validate import expected_param_shapes

REPO = Path(__file__).resolve().parents[1]


def small_causal() -> EncodecConfig:
    """24 kHz-like structure, tiny: hop 4, 8 codebooks of 16 bins (8 kbps each at 2000 frames/s)."""
    return EncodecConfig(
        name="tiny_causal", sample_rate=8000,
        seanet=SEANetConfig(channels=1, dimension=16, n_filters=4, ratios=(2, 2), lstm=1),
        quantizer=RVQConfig(dimension=16, n_q=8, bins=16), target_bandwidths=(8.0, 16.0, 64.0))


def small_segmented() -> EncodecConfig:
    """48 kHz-like structure, tiny: stereo, GroupNorm, normalized 400-sample segments."""
    return EncodecConfig(
        name="tiny_segmented", sample_rate=8000,
        seanet=SEANetConfig(channels=2, dimension=16, n_filters=4, ratios=(2, 2), lstm=1, causal=False,
                            norm="time_group_norm"),
        quantizer=RVQConfig(dimension=16, n_q=4, bins=16), target_bandwidths=(8.0, 32.0),
        normalize=True, segment=0.05, overlap=0.01)


def layer_names(layers) -> list[str]:
    names = []
    for layer in layers:
        if isinstance(layer, ResBlock):
            names += [sub.name for sub in layer.block]
        names.append(layer.name)
    return names


# --------------------------------------------------------------------------- synthetic
def test_random_params_cover_shapes_and_are_deterministic():
    for config in (small_causal(), small_segmented(), encodec_24khz()):
        a, b = random_params(config, seed=3), random_params(config, seed=3)
        shapes = expected_param_shapes(config)
        assert set(a) == set(shapes)
        for k, shape in shapes.items():
            assert a[k].shape == shape and a[k].dtype == np.float32, k
            assert np.array_equal(a[k], b[k]), k
            assert np.isfinite(a[k]).all()
        c = random_params(config, seed=4)
        assert not np.array_equal(a[CODEBOOKS], c[CODEBOOKS])
    p = random_params(encodec_48khz(), 0)
    w = p["encoder.model.0.conv.conv.weight"]          # [32, 2, 7]: fan-in 14
    assert np.abs(w).max() <= np.sqrt(3 / 14)
    t = p["decoder.model.3.convtr.convtr.weight"]      # [512, 256, 16]: fan-in from dim 1
    assert t.shape == (512, 256, 16) and np.abs(t).max() <= np.sqrt(3 / (256 * 16))
    assert abs(float(p["encoder.model.0.conv.norm.weight"].mean()) - 1) < 0.05
    books = p[CODEBOOKS]
    stds = books.reshape(books.shape[0], -1).std(axis=1)
    assert np.all(np.diff(stds) < 0)                   # geometric schedule


def test_random_params_do_not_depend_on_table_order():
    config = small_causal()
    full = random_params(config, 0)
    # each tensor has its own stream: other tensors (here fewer codebooks, fewer
    # bandwidths) do not shift the values of the rest
    other = random_params(config.replace(quantizer=RVQConfig(dimension=16, n_q=4, bins=16),
                                         target_bandwidths=(8.0,)), 0)
    for key, value in other.items():
        if key != CODEBOOKS:
            assert np.array_equal(full[key], value), key
    assert np.array_equal(full[CODEBOOKS][:4], other[CODEBOOKS])


def test_test_signal_kinds():
    for kind in SIGNAL_KINDS:
        for length in (1, 7, 4000):
            x = test_signal(kind, 2, length, seed=5, sample_rate=8000)
            assert x.shape == (2, length) and x.dtype == np.float32
            assert np.array_equal(x, test_signal(kind, 2, length, seed=5, sample_rate=8000))
            assert np.abs(x).max() <= 1.0
    noise = test_signal("noise", 2, 24000, seed=0)
    assert np.isclose(np.abs(noise).max(), 0.3, rtol=1e-6)
    assert not np.array_equal(noise[0], noise[1])
    assert not np.array_equal(noise, test_signal("noise", 2, 24000, seed=1))
    assert not test_signal("silence", 1, 100).any()
    assert np.count_nonzero(test_signal("impulses", 1, 24000)) <= 20
    with pytest.raises(EncodecError):
        test_signal("pink", 1, 10)


def test_synthetic_codebooks_give_diverse_codes():
    config = encodec_24khz()
    model = random_model(config, 0, backend="numpy")
    x = np.stack([test_signal(kind, 1, 24000, seed=0) for kind in ("noise", "chirp")])
    codes = model.encode(x)[0][0]                      # [2, 32, 75]
    for item in codes:
        distinct = [len(np.unique(layer)) for layer in item]
        assert distinct[0] >= 30, distinct             # of 75 frames
        assert min(distinct[1:]) >= 30, distinct
    assert len(np.unique(codes[:, 0])) >= 80


# --------------------------------------------------------------------------- golden vectors
@pytest.fixture(scope="module")
def causal_model():
    return random_model(small_causal(), 1, backend="numpy")


@pytest.fixture(scope="module")
def segmented_model():
    return random_model(small_segmented(), 2, backend="numpy")


def audio(channels, length, batch=2, seed=0):
    return np.stack([test_signal(k, channels, length, seed=seed, sample_rate=8000)
                     for k in ("noise", "chirp", "impulses")[:batch]])


def test_golden_keys_and_shapes(causal_model):
    model = causal_model
    x = audio(1, 203)
    g = golden_vectors(model, x, 16.0)
    b, f, k, hop = 2, 51, 2, 4
    for name in layer_names(model.encoder_layers) + layer_names(model.decoder_layers):
        assert f"act/{name}" in g, name
    assert "act/encoder.model.1.block.1" in g and "act/decoder.model.1" in g
    assert g["input"].shape == (b, 1, 203)
    assert g["embeddings"].shape == (b, 16, f)
    assert g["codes"].shape == (b, k, f) and g["codes"].dtype == np.int64
    assert g["residual_norms"].shape == g["code_margin"].shape == (b, k, f)
    assert g["quantized"].shape == (b, 16, f)
    assert g["decoded"].shape == (b, 1, f * hop)
    assert "scale" not in g
    assert str(g["meta/model_name"]) == "tiny_causal" and g["meta/model_name"].ndim == 0
    assert g["meta/model_name"].dtype.kind == "U"
    assert int(g["meta/sample_rate"]) == 8000 and float(g["meta/bandwidth"]) == 16.0
    assert int(g["meta/num_codebooks"]) == k and int(g["meta/hop_length"]) == hop
    assert not bool(g["meta/segment_only"]) and int(g["meta/input_length"]) == 203
    all_books = golden_vectors(model, x, None)
    assert all_books["codes"].shape[1] == 8 and float(all_books["meta/bandwidth"]) == 0.0


def test_golden_consistency(causal_model):
    model = causal_model
    model.set_target_bandwidth(8.0)
    x = audio(1, 150)
    g = golden_vectors(model, x, 64.0)
    assert model.bandwidth == 8.0                       # restored
    model.set_target_bandwidth(64.0)
    try:
        frames = model.encode(x)
        assert np.array_equal(g["codes"], frames[0][0])
        assert np.array_equal(g["decoded"], model.decode(frames))
    finally:
        model.set_target_bandwidth(None)
    assert np.array_equal(g["embeddings"], g["act/" + model.encoder_layers[-1].name])
    assert np.array_equal(g["decoded"], g["act/" + model.decoder_layers[-1].name])
    assert np.array_equal(g["embeddings"], model.encode_embeddings(x.astype(np.float32)))
    assert np.array_equal(g["quantized"], model.dequantize(g["codes"]))
    assert (g["code_margin"] >= 0).all() and (g["code_margin"] > 0).any()
    assert np.allclose(g["residual_norms"][:, 0], np.linalg.norm(g["embeddings"], axis=1), rtol=1e-5)
    # brute force: margin and residual norm of layer q along the chosen path
    books = model.params[CODEBOOKS]
    bi, fi = 1, 17
    residual = g["embeddings"][bi, :, fi].copy()
    for q in range(g["codes"].shape[1]):
        scores = ops.code_distances(residual[None], books[q])[0]
        top = np.sort(scores)[-2:]
        # The margin is a difference of two scores: its error is a few ulps of the scores, not of the margin
        # (BLAS rounds one row and all rows differently, by machine).
        ulps = 8 * np.finfo(np.float32).eps * np.abs(top).max()
        assert np.isclose(g["code_margin"][bi, q, fi], top[1] - top[0], rtol=1e-5, atol=ulps)
        assert np.isclose(g["residual_norms"][bi, q, fi], np.linalg.norm(residual), rtol=1e-5)
        assert g["codes"][bi, q, fi] == np.argmax(scores)
        residual = residual - books[q][g["codes"][bi, q, fi]]


def test_golden_first_segment_only(segmented_model):
    model = segmented_model
    seg = model.segment_length
    x = audio(2, 2 * seg + 37)
    g = golden_vectors(model, x, 32.0)
    assert bool(g["meta/segment_only"]) and int(g["meta/segment_length"]) == seg
    assert int(g["meta/input_length"]) == x.shape[-1]
    assert np.array_equal(g["input"], x[:, :, :seg])
    model.set_target_bandwidth(32.0)
    try:
        frames = model.encode(x)
    finally:
        model.set_target_bandwidth(None)
    assert len(frames) == 3
    codes, scale = frames[0]
    assert np.array_equal(g["codes"], codes)
    assert np.array_equal(g["scale"], scale)
    assert np.allclose(g["encoder_input"], g["input"] / g["scale"][:, :, None])
    # one segment through overlap-add: w * y / w, equal up to rounding
    assert np.allclose(g["decoded"], model.decode([frames[0]]), rtol=1e-5, atol=1e-6)
    # the scale applies to the decoded audio, not to the traced decoder activations
    last = g["act/" + model.decoder_layers[-1].name]
    assert np.allclose(g["decoded"], last * g["scale"][:, :, None])


def test_golden_rejects_bad_input(causal_model):
    with pytest.raises(EncodecError):
        golden_vectors(causal_model, np.zeros((1, 2, 100), np.float32), None)   # wrong channels
    with pytest.raises(EncodecError):
        golden_vectors(causal_model, audio(1, 100), 5.0)                      # unknown bandwidth
    assert causal_model.bandwidth is None


def test_golden_full_size_layer_names():
    model = random_model(encodec_24khz(), 0, backend="numpy")
    g = golden_vectors(model, test_signal("chirp", 1, 700)[None], 6.0)
    for name in ("encoder.model.0", "encoder.model.1.block.0", "encoder.model.1.block.3", "encoder.model.1",
                 "encoder.model.13", "encoder.model.15", "decoder.model.1", "decoder.model.3",
                 "decoder.model.4.block.1", "decoder.model.15"):
        assert f"act/{name}" in g, name
    assert g["act/encoder.model.13"].shape == (1, 512, 3)
    assert g["codes"].shape == (1, 8, 3) and g["decoded"].shape == (1, 1, 960)


def test_export_round_trip(tmp_path, causal_model, segmented_model):
    for model, channels in ((causal_model, 1), (segmented_model, 2)):
        x = audio(channels, 450)
        path = tmp_path / f"{model.name}.golden"               # no .npz suffix: kept as given
        assert export_golden(model, x, path, None) == path
        assert path.exists() and not Path(str(path) + ".npz").exists()
        want = golden_vectors(model, x, None)
        with np.load(path) as data:                             # allow_pickle=False
            assert set(data.files) == set(want)
            for key, value in want.items():
                assert data[key].dtype == value.dtype, key
                assert np.array_equal(data[key], value), key
            assert str(data["meta/model_name"]) == model.name
    assert not list(tmp_path.glob("*.tmp"))


# --------------------------------------------------------------------------- command line
def run_cli(*args, exe=None):
    cmd = [exe] if exe else [sys.executable, "-m", "encodec_np.cli"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_cli_golden_subprocess(tmp_path):
    out = tmp_path / "g.npz"
    r = run_cli("golden", out, "--length", 500, "--seed", 3, "--bandwidth", 3.0, "--signal", "chirp")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    with np.load(out) as data:
        assert data["input"].shape == (1, 1, 500)
        assert data["codes"].shape == (1, 4, 2)
        assert str(data["meta/model_name"]) == "encodec_24khz"
        want = test_signal("chirp", 1, 500, seed=3)
        assert np.array_equal(data["input"][0], want)
        model = random_model(encodec_24khz(), 3, backend="numpy")
        model.set_target_bandwidth(3.0)
        assert np.array_equal(data["codes"], model.encode(want[None])[0][0])


@pytest.mark.slow
def test_cli_usage_and_failures(tmp_path):
    r = run_cli("golden", tmp_path / "g.npz", "--dtype", "float16")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    assert run_cli().returncode == 2
    assert run_cli("frobnicate").returncode == 2
    r = run_cli("golden", tmp_path / "g.npz", "--input", tmp_path / "missing.wav")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "missing.wav" in lines[0], r.stderr
    r = run_cli("golden", tmp_path / "g.npz", "--input", tmp_path / "missing.wav", "--debug")
    assert r.returncode == 1 and "Traceback" in r.stderr
    r = run_cli("golden", tmp_path / "g.npz", "--bandwidth", "5", "--length", 320)
    assert r.returncode == 1 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "g.npz").exists()


def test_cli_main_in_process_with_wav(tmp_path, capsys):
    import soundfile as sf

    from encodec_np.cli import main

    wav = tmp_path / "in.wav"
    x = test_signal("noise", 2, 800, seed=9, sample_rate=48000)
    sf.write(str(wav), x.T, 48000, subtype="PCM_16")
    out = tmp_path / "g48.npz"
    assert main(["golden", str(out), "--config", "encodec_48khz", "--input", str(wav), "--length", "700"]) == 0
    with np.load(out) as data:
        assert data["input"].shape == (1, 2, 700)
        assert np.allclose(data["input"][0], x[:, :700], atol=1 / 32768)
        assert "scale" in data.files and bool(data["meta/segment_only"])
    assert main(["golden", str(out), "--input", str(wav)]) == 1      # exists: golden never overwrites silently
    assert "-f/--force" in capsys.readouterr().err
    assert main(["golden", str(out), "--input", str(wav), "-f"]) == 1      # 48 kHz file, 24 kHz model
    assert "resample" in capsys.readouterr().err
    assert main(["golden", str(out), "--length", "0"]) == 1
    assert main(["--version"]) == 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("encodec-np") is None, reason="console script not installed")
def test_console_script(tmp_path):
    out = tmp_path / "g.npz"
    r = run_cli("golden", out, "--length", 320, exe=shutil.which("encodec-np"))
    assert r.returncode == 0, r.stderr
    assert out.exists()
    assert run_cli("golden", exe=shutil.which("encodec-np")).returncode == 2
