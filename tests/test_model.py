"""EncodecModel API: shapes, bandwidths, segments, and clear errors on bad input."""
import dataclasses

import numpy as np
import pytest

import encodec_np
from encodec_np import EncodecError, EncodecModel, RVQConfig
from encodec_np.geometry import linear_overlap_add, torch_linspace
from encodec_np.quantization import num_codebooks
from encodec_np.synthetic import random_params


def tiny(preset=encodec_np.encodec_24khz):
    cfg = preset()
    seanet = dataclasses.replace(cfg.seanet, n_filters=2, dimension=8)
    return cfg.replace(seanet=seanet, quantizer=dataclasses.replace(cfg.quantizer, dimension=8))


@pytest.fixture(scope="module")
def m24():
    cfg = tiny()
    return EncodecModel(cfg, random_params(cfg, seed=0), backend="numpy")


@pytest.fixture(scope="module")
def m48():
    cfg = tiny(encodec_np.encodec_48khz)
    return EncodecModel(cfg, random_params(cfg, seed=0), backend="numpy")


def test_official_attributes():
    for preset, rate, ch, fr, bws in [(encodec_np.encodec_24khz, 24000, 1, 75, [1.5, 3, 6, 12, 24]),
                                       (encodec_np.encodec_48khz, 48000, 2, 150, [3, 6, 12, 24]),
                                       (encodec_np.encodec_32khz, 32000, 1, 50, [2.2])]:
        cfg = preset()
        assert (cfg.sample_rate, cfg.channels, cfg.frame_rate, list(cfg.target_bandwidths)) == (rate, ch, fr, bws)


@pytest.mark.parametrize("preset,expected", [
    (encodec_np.encodec_24khz, {1.5: 2, 3.0: 4, 6.0: 8, 12.0: 16, 24.0: 32, None: 32}),
    (encodec_np.encodec_48khz, {3.0: 2, 6.0: 4, 12.0: 8, 24.0: 16, None: 16}),
    (encodec_np.encodec_32khz, {2.2: 4, None: 4}),
])
def test_bandwidth_to_codebooks(preset, expected):
    cfg = preset()
    for bw, k in expected.items():
        assert num_codebooks(cfg.quantizer, cfg.frame_rate, bw) == k


@pytest.mark.parametrize("length", [1, 319, 320, 321, 1000])
def test_shapes_24khz(m24, length):
    x = np.random.default_rng(length).standard_normal((3, 1, length)).astype(np.float32) * 0.1
    m24.set_target_bandwidth(6.0)
    frames = m24.encode(x)
    assert len(frames) == 1
    codes, scale = frames[0]
    frames_expected = -(-length // 320)
    assert codes.shape == (3, 8, frames_expected) and codes.dtype == np.int64 and scale is None
    y = m24.decode(frames)
    assert y.shape == (3, 1, frames_expected * 320) and y.dtype == np.float32
    assert m24(x).shape == x.shape
    m24.set_target_bandwidth(None)
    assert m24.encode(x)[0][0].shape[1] == 32


def test_segments_48khz(m48):
    length = 2 * 47520 + 490  # offsets 0, 47520, 95040: the last segment holds 490 samples
    x = np.random.default_rng(0).standard_normal((2, 2, length)).astype(np.float32) * 0.1
    m48.set_target_bandwidth(6.0)
    frames = m48.encode(x)
    assert [f[0].shape for f in frames] == [(2, 4, 150), (2, 4, 150), (2, 4, 2)]
    assert all(f[1].shape == (2, 1) and (f[1] > 0).all() for f in frames)
    y = m48.decode(frames)
    assert y.shape == (2, 2, 2 * 47520 + 2 * 320)
    assert m48(x).shape == x.shape


def test_normalization_makes_encoding_scale_invariant(m48):
    x = np.random.default_rng(1).standard_normal((1, 2, 5000)).astype(np.float64)
    a = m48.encode(x.astype(np.float32) * 0.01)
    b = m48.encode(x.astype(np.float32) * 0.5)
    np.testing.assert_allclose(b[0][1] / a[0][1], 50, rtol=1e-5)
    assert (a[0][0] == b[0][0]).mean() > 0.9  # same codes up to float32 rounding near ties


def test_overlap_add_is_identity_on_consistent_frames():
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((2, 1, 250)).astype(np.float32)
    frames = [signal[..., o:o + 100] for o in range(0, 250, 75)]
    np.testing.assert_allclose(linear_overlap_add(frames, 75), signal[..., :75 * (len(frames) - 1) + frames[-1].shape[-1]],
                               rtol=1e-6, atol=1e-6)


def test_torch_linspace_is_symmetric():
    t = torch_linspace(0.0, 1.0, 1001, np.float32)
    assert t[0] == 0 and t[-1] == 1 and t.dtype == np.float32
    assert np.abs(t + t[::-1] - 1).max() <= np.finfo(np.float32).eps  # built from both ends
    np.testing.assert_allclose(t, np.linspace(0, 1, 1001), atol=1e-7)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((1, 100), np.float32), r"\[B, C, T\]"),
    (np.zeros((1, 2, 100), np.float32), "1 channel"),
    (np.zeros((1, 1, 100), np.int16), "floating point"),
    (np.zeros((1, 1, 0), np.float32), "empty"),
    (np.full((1, 1, 10), np.nan, np.float32), "NaN or Inf"),
    (np.full((1, 1, 10), np.inf, np.float32), "NaN or Inf"),
    ([[[0.0, 0.1]]], "NumPy array"),
])
def test_bad_audio(m24, bad, match):
    with pytest.raises(EncodecError, match=match):
        m24.encode(bad)
    with pytest.raises(ValueError):  # EncodecError is a ValueError
        m24(bad)


def test_bad_bandwidth(m24):
    with pytest.raises(EncodecError, match="select one of"):
        m24.set_target_bandwidth(5.0)


def test_bad_codes(m24, m48):
    good = np.zeros((1, 4, 3), np.int64)
    cases = [
        ([], "non-empty list"),
        ([(np.zeros((4, 3), np.int64), None)], r"\[B, K, F\]"),
        ([(good.astype(np.float32), None)], "integers"),
        ([(np.full((1, 4, 3), 1024), None)], r"\[0, 1024\)"),
        ([(np.full((1, 4, 3), -1), None)], r"\[0, 1024\)"),
        ([(np.zeros((1, 33, 3), np.int64), None)], "codebooks"),
        ([(good, np.ones((1, 1), np.float32))], "does not normalize"),
        ([(good, None), (good, None)], "expected 1 frame"),
        ([good], r"\(codes, scale\) pair"),
    ]
    for frames, match in cases:
        with pytest.raises(EncodecError, match=match):
            m24.decode(frames)
    with pytest.raises(EncodecError, match="needs its scale"):
        m48.decode([(good, None)])
    with pytest.raises(EncodecError, match="positive finite"):
        m48.decode([(good, np.array([[np.nan]], np.float32))])
    with pytest.raises(EncodecError, match="up to 10000"):  # would overflow float32 into inf
        m48.decode([(good, np.array([[3e38]], np.float32))])
    with pytest.raises(EncodecError, match="differs from frame 0"):
        m48.decode([(good, np.ones((1, 1))), (np.zeros((1, 2, 3), np.int64), np.ones((1, 1)))])


def test_dtype_and_backend_validation():
    cfg = tiny()
    with pytest.raises(EncodecError, match="dtype"):
        EncodecModel(cfg, random_params(cfg), dtype="int8")
    with pytest.raises(EncodecError, match="unknown backend"):
        EncodecModel(cfg, random_params(cfg), backend="fortran")
    model = EncodecModel(cfg, random_params(cfg), dtype="float64")
    y = model(np.zeros((1, 1, 400), np.float32))
    assert y.dtype == np.float64
    assert "numpy" in encodec_np.available_backends()


def test_config_validation():
    with pytest.raises(EncodecError, match="power of 2"):
        RVQConfig(bins=1000)
    with pytest.raises(EncodecError, match="not causal"):
        encodec_np.SEANetConfig(causal=True, norm="time_group_norm")
    cfg = encodec_np.encodec_48khz()
    assert encodec_np.EncodecConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(EncodecError, match="invalid model configuration"):
        encodec_np.EncodecConfig.from_dict({"name": "x"})
