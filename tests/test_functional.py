"""The seed's functional API (encodec_np.functional): shapes, RVQ, determinism, losses, errors.

Networks are built with hidden_dim 4 (D = 64) and signals of a few frames so
the whole file runs in seconds.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import encodec_np.functional as F
from encodec_np.errors import EncodecError
from encodec_np.seanet import LSTM, Conv, ConvTranspose, decoder_layers, encoder_layers, param_shapes

HIDDEN = 4
DIM = 16 * HIDDEN


@pytest.fixture(scope="module")
def model():
    return F.build(hidden_dim=HIDDEN, seed=0)


@pytest.fixture(scope="module")
def codebooks():
    return F.init_codebooks(8, 32, DIM)


def noise(shape, seed=0, scale=0.1):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# --------------------------------------------------------------------------- signatures and config
def test_signatures_mirror_the_seed():
    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty}

    assert defaults(F.build) == dict(num_codebooks=8, codebook_size=1024, hidden_dim=128,
                                     sample_rate=24000, bandwidth=6.0, seed=0)
    assert defaults(F.build_encoder) == dict(hidden_dim=128, seed=0)
    assert defaults(F.build_decoder) == dict(hidden_dim=128, seed=0)
    assert defaults(F.build_rvq) == dict(num_codebooks=8, codebook_size=1024, hidden_dim=128)
    assert defaults(F.init_codebooks) == dict(key=42)
    assert defaults(F.output_size) == dict(hidden_dim=128)
    assert defaults(F.loss)["commitment_weight"] == 0.25
    assert defaults(F.spectral_loss) == dict(sample_rate=24000)


def test_output_size_and_rvq_config():
    assert F.output_size() == 2048
    assert F.output_size(hidden_dim=4) == 64
    assert F.build_rvq() == {"num_codebooks": 8, "codebook_size": 1024, "embedding_dim": 2048}
    assert F.build_rvq(4, 256, hidden_dim=8) == {"num_codebooks": 4, "codebook_size": 256, "embedding_dim": 128}


def test_default_architecture_without_allocating():
    cfg = F.seanet_config()
    enc, dec = encoder_layers(cfg), decoder_layers(cfg)
    strided = [l for l in enc if isinstance(l, Conv) and l.stride > 1]
    assert [l.stride for l in strided] == [2, 4, 5, 8]
    assert [(l.c_in, l.c_out) for l in strided] == [(128, 256), (256, 512), (512, 1024), (1024, 2048)]
    assert enc[0].c_in == 1 and enc[0].c_out == 128 and enc[-1].c_out == 2048
    assert [l.dim for l in enc if isinstance(l, LSTM)] == [2048]
    assert [l.stride for l in dec if isinstance(l, ConvTranspose)] == [8, 5, 4, 2]
    assert dec[0].c_in == 2048 and dec[-1].c_out == 1
    assert cfg.causal and cfg.norm == "weight_norm" and cfg.hop_length == 320


# --------------------------------------------------------------------------- networks
def test_params_match_layers_and_init_bounds(model):
    encoder, decoder = model
    for net, layers in ((encoder, encoder_layers(encoder.config)), (decoder, decoder_layers(decoder.config))):
        expected = param_shapes(layers)
        assert {k: v.shape for k, v in net.params.items()} == expected
        assert all(v.dtype == np.float32 for v in net.params.values())
    # PyTorch-like fan-in bounds, and the draws actually use most of the range.
    w = encoder.params["encoder.model.0.conv.conv.weight"]  # [4, 1, 7]: fan_in 7
    assert np.abs(w).max() <= 1 / math.sqrt(7)
    lstm = encoder.params["encoder.model.13.lstm.weight_hh_l0"]  # H = 64
    assert np.abs(lstm).max() <= 1 / math.sqrt(DIM) and np.abs(lstm).max() > 0.9 / math.sqrt(DIM)
    tr = decoder.params["decoder.model.3.convtr.convtr.weight"]  # [64, 32, 16]: fan_in 32 * 16
    assert tr.shape == (64, 32, 16) and np.abs(tr).max() <= 1 / math.sqrt(32 * 16)


def test_build_stores_settings():
    enc, dec = F.build(hidden_dim=2, sample_rate=16000, bandwidth=3.0, seed=3)
    assert (enc.sample_rate, enc.bandwidth, dec.sample_rate, dec.bandwidth) == (16000, 3.0, 16000, 3.0)
    assert enc.dim == dec.dim == 32 and enc.hop_length == 320
    same = F.build_encoder(2, seed=3)
    assert all(np.array_equal(same.params[k], v) for k, v in enc.params.items())


@settings(deadline=None, max_examples=12)
@given(batch=st.integers(1, 2), samples=st.integers(1, 1000))
def test_encoder_shape(model, batch, samples):
    z = model[0](noise((batch, 1, samples), samples))
    assert z.shape == (batch, math.ceil(samples / 320), DIM) and z.dtype == np.float32
    assert np.isfinite(z).all()


@settings(deadline=None, max_examples=8)
@given(batch=st.integers(1, 2), frames=st.integers(1, 3))
def test_decoder_shape(model, batch, frames):
    y = model[1](noise((batch, frames, DIM), frames, scale=1.0))
    assert y.shape == (batch, 1, 320 * frames) and y.dtype == np.float32 and np.isfinite(y).all()


def test_determinism_and_seed_dependence():
    a_enc, a_dec = F.build(hidden_dim=HIDDEN, seed=0)
    b_enc, b_dec = F.build(hidden_dim=HIDDEN, seed=0)
    c_enc, c_dec = F.build(hidden_dim=HIDDEN, seed=1)
    for a, b, c in ((a_enc, b_enc, c_enc), (a_dec, b_dec, c_dec)):
        assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
        assert not any(np.array_equal(a.params[k], c.params[k]) for k in a.params if a.params[k].size > 1)
    x = noise((1, 1, 700))
    np.testing.assert_array_equal(a_enc(x), b_enc(x))
    assert not np.allclose(a_enc(x), c_enc(x))
    # encoder and decoder draw independent streams from the same seed
    assert not np.array_equal(a_enc.params["encoder.model.0.conv.conv.bias"],
                              a_dec.params["decoder.model.0.conv.conv.bias"][:HIDDEN])


def test_encoder_is_causal(model):
    # Causal convs and a forward LSTM: frame t ignores samples >= 320 (t + 1).
    # (Reflect padding at the *start* lets early frames see the next few
    # frames, as in the official model, so the change is placed well after.)
    x = noise((1, 1, 16 * 320))
    y = x.copy()
    y[..., 12 * 320:] += 1.0
    zx, zy = model[0](x), model[0](y)
    np.testing.assert_array_equal(zx[:, :12], zy[:, :12])
    assert not np.allclose(zx[:, 12:], zy[:, 12:])


def test_custom_params_are_validated(model):
    enc = model[0]
    params = dict(enc.params)
    params.pop("encoder.model.0.conv.conv.bias")
    with pytest.raises(EncodecError, match="missing: encoder.model.0.conv.conv.bias"):
        F.Encoder(enc.config, params)
    params = dict(enc.params, **{"encoder.model.0.conv.conv.bias": np.zeros(5, np.float32)})
    with pytest.raises(EncodecError, match="wrong shape"):
        F.Encoder(enc.config, params)


# --------------------------------------------------------------------------- RVQ
def test_init_codebooks():
    books = F.init_codebooks(3, 512, 16)
    assert books.shape == (3, 512, 16) and books.dtype == np.float32
    np.testing.assert_array_equal(books, F.init_codebooks(3, 512, 16, key=42))
    assert not np.array_equal(books, F.init_codebooks(3, 512, 16, key=7))
    # normal / sqrt(D): entries have variance 1 / D
    assert abs(books.var() - 1 / 16) < 0.01 and abs(books.mean()) < 0.01


def brute_force_rvq(z, books):
    """Plain Euclidean nearest neighbour per frame and level, in float64."""
    b, t, d = z.shape
    residual = z.reshape(-1, d).astype(np.float64)
    best = []
    for book in books.astype(np.float64):
        dist = np.linalg.norm(residual[:, None, :] - book[None], axis=-1)  # [N, K]
        best.append(dist)
        residual = residual - book[dist.argmin(axis=1)]
    return best


@settings(deadline=None, max_examples=30)
@given(b=st.integers(1, 3), t=st.integers(1, 5), d=st.integers(1, 8), q=st.integers(1, 4),
       k=st.integers(1, 16), seed=st.integers(0, 2**16))
def test_rvq_quantize_picks_nearest(b, t, d, q, k, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((b, t, d)).astype(np.float32)
    books = F.init_codebooks(q, k, d, key=seed)
    z_q, idx = F.rvq_quantize(z, books)
    assert z_q.shape == (b, t, d) and z_q.dtype == np.float32
    assert idx.shape == (b, q, t) and idx.dtype == np.int64
    # Each level's choice is nearest to its residual (distances compared, not
    # indices: ties and float32 rounding may pick an equally near entry).
    residual = z.reshape(-1, d).astype(np.float64)
    flat_idx = idx.transpose(1, 0, 2).reshape(q, -1)
    for level in range(q):
        dist = np.linalg.norm(residual[:, None, :] - books[level].astype(np.float64)[None], axis=-1)
        chosen = dist[np.arange(len(residual)), flat_idx[level]]
        np.testing.assert_allclose(chosen, dist.min(axis=1), rtol=1e-4, atol=1e-4)
        residual = residual - books[level][flat_idx[level]]
    # z_q is the ordered sum of the chosen entries, and dequantize reproduces it exactly
    expected = sum(books[level][idx[:, level, :]] for level in range(q))
    np.testing.assert_allclose(z_q, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(F.rvq_dequantize(idx, books), z_q)


def test_rvq_quantize_exact_on_codebook_sums():
    books = F.init_codebooks(2, 64, 8, key=1).astype(np.float64)
    books[1] *= 1e-3  # fine level much smaller: the coarse choice is unambiguous
    idx = np.random.default_rng(0).integers(0, 64, size=(2, 2, 5))
    z = F.rvq_dequantize(idx, books)
    z_q, got = F.rvq_quantize(z, books)
    np.testing.assert_array_equal(got, idx)
    np.testing.assert_allclose(z_q, z, atol=1e-12)
    assert brute_force_rvq(z, books)[0].min(axis=1).max() < 1e-2


def test_rvq_dequantize_fewer_levels(codebooks):
    # The first Q' token rows decode to the partial sum of the first Q' levels
    # (a lower bandwidth); all rows give z_q back.
    z = noise((2, 6, DIM), scale=0.2)
    z_q, idx = F.rvq_quantize(z, codebooks)
    coarse = F.rvq_dequantize(idx[:, :2], codebooks)
    assert coarse.shape == z.shape
    np.testing.assert_allclose(coarse, codebooks[0][idx[:, 0]] + codebooks[1][idx[:, 1]], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(F.rvq_dequantize(idx, codebooks), z_q)


# --------------------------------------------------------------------------- encode / decode
@settings(deadline=None, max_examples=6)
@given(batch=st.integers(1, 2), samples=st.integers(1, 1300))
def test_encode_decode_shapes(model, codebooks, batch, samples):
    encoder, decoder = model
    x = noise((batch, 1, samples), samples)
    tokens = F.encode(encoder, codebooks, x)
    frames = math.ceil(samples / 320)
    assert tokens.shape == (batch, 8, frames) and tokens.dtype == np.int64
    assert tokens.min() >= 0 and tokens.max() < 32
    np.testing.assert_array_equal(tokens, F.rvq_quantize(encoder(x), codebooks)[1])
    y = F.decode(decoder, codebooks, tokens)
    assert y.shape == (batch, 1, 320 * frames) and np.isfinite(y).all()
    np.testing.assert_array_equal(y, decoder(F.rvq_dequantize(tokens, codebooks)))


# --------------------------------------------------------------------------- losses
def test_commitment_loss_hand_example():
    z_e = np.zeros((1, 2, 2))
    z_q = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    assert F.commitment_loss(z_e, z_q) == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert F.commitment_loss(z_q, z_q) == 0.0


def test_spectral_loss_zero_positive_symmetric_monotone():
    x = noise((2, 1, 4000), 1)
    n = noise((2, 1, 4000), 2)
    assert F.spectral_loss(x, x) == 0.0
    near, far = F.spectral_loss(x + 0.05 * n, x), F.spectral_loss(x + 2.0 * n, x)
    assert 0 < near < far
    assert F.spectral_loss(x, x + 0.05 * n) == pytest.approx(near, rel=1e-12)
    assert isinstance(near, float)


@settings(deadline=None, max_examples=15)
@given(samples=st.integers(1, 3000), seed=st.integers(0, 1000))
def test_spectral_loss_any_length(samples, seed):
    x = noise((1, 1, samples), seed)
    y = noise((1, 1, samples), seed + 1)
    assert F.spectral_loss(x, x) == 0.0
    value = F.spectral_loss(x, y)
    assert math.isfinite(value) and value > 0
    assert F.spectral_loss(y, x) == pytest.approx(value, rel=1e-12)
    # [B, S] is the same signal as [B, 1, S]
    assert F.spectral_loss(x[:, 0], y[:, 0]) == value


def test_spectral_loss_is_mean_over_seven_scales():
    x, y = noise((1, 1, 2500), 3), noise((1, 1, 2500), 4)
    per_scale = []
    for i in range(5, 12):
        d = F.mel_spectrogram(x[:, 0].astype(np.float64), 24000, 2 ** i) \
            - F.mel_spectrogram(y[:, 0].astype(np.float64), 24000, 2 ** i)
        assert d.shape[:2] == (1, 64)
        per_scale.append(np.abs(d).mean() + (d ** 2).mean())
    assert F.spectral_loss(x, y) == pytest.approx(np.mean(per_scale), rel=1e-12)


def test_loss_combines_parts():
    x, y = noise((2, 1, 1000), 6), noise((2, 1, 1000), 7)
    z_e, z_q = noise((2, 4, 8), 8), noise((2, 4, 8), 9)
    l1 = float(np.mean(np.abs(x.astype(np.float64) - y)))
    spec = F.spectral_loss(x, y)
    commit = F.commitment_loss(z_e, z_q)
    assert F.loss(x, y, z_e, z_q) == pytest.approx(l1 + spec + 0.25 * commit, rel=1e-12)
    assert F.loss(x, y, z_e, z_q, commitment_weight=2.0) - F.loss(x, y, z_e, z_q, commitment_weight=0.0) \
        == pytest.approx(2.0 * commit, rel=1e-9)
    assert F.loss(x, x, z_e, z_e) == 0.0


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("waveform, message", [
    (np.zeros((1, 640), np.float32), "shape \\[B, 1, S\\]"),
    (np.zeros((1, 2, 640), np.float32), "mono"),
    (np.zeros((1, 1, 640), np.int16), "floating point"),
    (np.full((1, 1, 640), np.nan, np.float32), "NaN"),
    (np.zeros((1, 1, 0), np.float32), "empty"),
])
def test_encoder_rejects_bad_waveforms(model, codebooks, waveform, message):
    with pytest.raises(EncodecError, match=message):
        model[0](waveform)
    with pytest.raises(EncodecError, match=message):
        F.encode(model[0], codebooks, waveform)


def test_bad_arguments_raise(model, codebooks):
    encoder, decoder = model
    with pytest.raises(EncodecError, match="D = 64"):
        decoder(np.zeros((1, DIM, 2), np.float32))  # [B, D, T] instead of [B, T, D]
    with pytest.raises(EncodecError, match="dimension"):
        F.encode(encoder, F.init_codebooks(2, 8, 10), np.zeros((1, 1, 320), np.float32))
    with pytest.raises(EncodecError, match="Encoder"):
        F.encode(decoder, codebooks, np.zeros((1, 1, 320), np.float32))
    with pytest.raises(EncodecError, match="dimension"):
        F.rvq_quantize(np.zeros((1, 2, 5), np.float32), codebooks)
    with pytest.raises(EncodecError, match=r"\[0, 32\)"):
        F.rvq_dequantize(np.full((1, 2, 3), 32), codebooks)
    with pytest.raises(EncodecError, match="integers"):
        F.decode(decoder, codebooks, np.zeros((1, 2, 3), np.float32))
    with pytest.raises(EncodecError, match="only 8"):
        F.rvq_dequantize(np.zeros((1, 9, 3), np.int64), codebooks)
    with pytest.raises(EncodecError, match="same shape"):
        F.spectral_loss(np.zeros((1, 1, 10)), np.zeros((1, 1, 11)))
    with pytest.raises(EncodecError, match="same shape"):
        F.commitment_loss(np.zeros((1, 2, 3)), np.zeros((1, 2, 4)))
    with pytest.raises(EncodecError, match="hidden_dim"):
        F.build(hidden_dim=1)
    with pytest.raises(EncodecError, match="hidden_dim"):
        F.build_encoder(hidden_dim=0)
    with pytest.raises(EncodecError, match="num_codebooks"):
        F.build(num_codebooks=0, hidden_dim=2)
    with pytest.raises(EncodecError, match="bandwidth"):
        F.build(hidden_dim=2, bandwidth=-1.0)
    with pytest.raises(EncodecError, match="seed"):
        F.build_decoder(2, seed=-1)
    with pytest.raises(EncodecError, match="codebook_size"):
        F.init_codebooks(2, 0, 4)
    with pytest.raises(EncodecError, match="commitment_weight"):
        F.loss(np.zeros((1, 1, 4)), np.zeros((1, 1, 4)), np.zeros((1, 1, 2)), np.zeros((1, 1, 2)),
               commitment_weight=float("nan"))
