"""``encodec_np.quantization``: the bandwidth rule, and RVQ encode/decode against plain loops."""
import naive
import numpy as np
import pytest

import encodec_np
from encodec_np import ops
from encodec_np.quantization import bandwidth_per_codebook, decode, encode, num_codebooks


@pytest.mark.parametrize("preset,expected", [
    (encodec_np.encodec_24khz, {1.5: 2, 3.0: 4, 6.0: 8, 12.0: 16, 24.0: 32}),
    (encodec_np.encodec_48khz, {3.0: 2, 6.0: 4, 12.0: 8, 24.0: 16}),
    (encodec_np.encodec_32khz, {2.2: 4}),
])
def test_codebooks_per_bandwidth_as_the_official_models(preset, expected):
    cfg = preset()
    assert {bw: num_codebooks(cfg.quantizer, cfg.frame_rate, bw) for bw in cfg.target_bandwidths} == expected
    assert num_codebooks(cfg.quantizer, cfg.frame_rate, None) == cfg.quantizer.n_q
    assert num_codebooks(cfg.quantizer, cfg.frame_rate, 0.01) == 1  # at least one
    assert bandwidth_per_codebook(cfg.quantizer, cfg.frame_rate) == np.log2(cfg.quantizer.bins) * cfg.frame_rate / 1000


def test_encode_is_the_greedy_residual_search_and_decode_its_sum():
    rng = np.random.default_rng(0)
    books = rng.standard_normal((3, 16, 4))
    emb = rng.standard_normal((2, 4, 5))
    codes = encode(emb, books, 3, ops)
    assert codes.shape == (2, 3, 5) and codes.dtype == np.int64
    residual = emb.transpose(0, 2, 1).reshape(-1, 4)
    for q in range(3):  # each layer takes the nearest code to what the layers before left over
        want = naive.nearest(residual, books[q])
        np.testing.assert_array_equal(codes[:, q, :].reshape(-1), want)
        residual = residual - books[q][want]
    summed = sum(books[q][codes[:, q, :]] for q in range(3)).transpose(0, 2, 1)  # [B, D, F]
    np.testing.assert_allclose(decode(codes, books, ops), summed, rtol=0, atol=1e-12)


def test_ties_go_to_the_first_code():
    books = np.zeros((1, 4, 2))
    books[0, 1] = books[0, 3] = [1.0, 0.0]  # codes 1 and 3 equally near
    emb = np.array([[[1.0], [0.0]]])          # [B=1, D=2, F=1]
    assert encode(emb, books, 1, ops)[0, 0, 0] == 1
