"""Every Numba CPU kernel against the NumPy reference (Hypothesis over shapes and edge cases)."""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from naive import check_rvq_codes

from encodec_np import ops

numba = pytest.importorskip("numba")
from strategies import dtypes, modes
from tolerances import tol

from encodec_np.kernels import cpu  # noqa: E402


@given(b=st.integers(1, 3), c_in=st.integers(1, 6), c_out=st.integers(1, 6), k=st.integers(1, 9),
       stride=st.integers(1, 9), dilation=st.integers(1, 3), length=st.integers(1, 70),
       left=st.integers(0, 12), right=st.integers(0, 12), mode=modes, dtype=dtypes, seed=st.integers(0, 2**31))
@example(b=1, c_in=1, c_out=1, k=7, stride=1, dilation=1, length=1, left=6, right=0, mode="reflect",
         dtype=np.float32, seed=0)  # one sample: the official zero-extend-then-reflect path
@example(b=1, c_in=2, c_out=3, k=4, stride=2, dilation=1, length=3, left=2, right=1, mode="reflect",
         dtype=np.float32, seed=0)  # length < kernel
@example(b=2, c_in=1, c_out=1, k=2, stride=8, dilation=1, length=16, left=0, right=0, mode="constant",
         dtype=np.float64, seed=0)  # stride > kernel
@pytest.mark.slow
def test_padded_conv1d(b, c_in, c_out, k, stride, dilation, length, left, right, mode, dtype, seed):
    span = (k - 1) * dilation + 1
    assume(length + left + right >= span)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c_in, length)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    expected = ops.padded_conv1d(x, w, bias, stride, dilation, (left, right), mode)
    got = cpu.padded_conv1d(x, w, bias, stride, dilation, (left, right), mode)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=tol(dtype, c_in * k), rtol=0)


def test_conv_on_long_input_spans_several_tiles():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 20011)).astype(np.float32)  # > one tile, ragged last tile
    w = rng.standard_normal((5, 3, 8)).astype(np.float32)
    for stride, pad in ((1, (7, 0)), (4, (2, 3))):
        np.testing.assert_allclose(cpu.padded_conv1d(x, w, None, stride, 1, pad, "reflect"),
                                   ops.padded_conv1d(x, w, None, stride, 1, pad, "reflect"), atol=2e-5)


def test_non_contiguous_inputs_compile_once():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8, 100)).astype(np.float32)[:, ::2]  # strided view
    w = rng.standard_normal((3, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(cpu.padded_conv1d(x, w, None, 1, 1, (2, 0), "reflect"),
                               ops.padded_conv1d(x, w, None, 1, 1, (2, 0), "reflect"), atol=1e-5)
    # float32 (and maybe float64 from other tests): no per-layout variants
    assert all(len(k.signatures) <= 2 for k in [*cpu._CORRELATE.values(), cpu._correlate_channels])


@given(b=st.integers(1, 3), c_in=st.integers(1, 6), c_out=st.integers(1, 6), k=st.integers(1, 17),
       stride=st.integers(1, 9), t=st.integers(1, 40), dtype=dtypes, seed=st.integers(0, 2**31))
@pytest.mark.slow
@example(b=1, c_in=1, c_out=1, k=2, stride=8, t=1, dtype=np.float32, seed=0)  # one frame, stride > kernel
def test_conv_transpose1d(b, c_in, c_out, k, stride, t, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c_in, t)).astype(dtype)
    w = rng.standard_normal((c_in, c_out, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    expected = ops.conv_transpose1d(x, w, bias, stride)
    got = cpu.conv_transpose1d(x, w, bias, stride)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=tol(dtype, c_in * k), rtol=0)


@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 300)), dtype=dtypes,
       scale=st.floats(0.01, 100), seed=st.integers(0, 2**31))
def test_elu(shape, dtype, scale, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    got = cpu.elu(x)
    assert got.dtype == dtype
    # exp(v) - 1 instead of expm1: absolute error within a few ulps of 1.
    np.testing.assert_allclose(got, ops.elu(x), atol=4 * np.finfo(dtype).eps, rtol=4 * np.finfo(dtype).eps)


@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 400)), dtype=dtypes,
       offset=st.floats(-10, 10), scale=st.floats(0.01, 100), seed=st.integers(0, 2**31))
@pytest.mark.slow
def test_group_norm(shape, dtype, offset, scale, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale + offset).astype(dtype)
    w = rng.standard_normal(shape[1]).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    got = cpu.group_norm(x, w, b)
    assert got.dtype == dtype
    # The statistics' rounding error is amplified by |mean| / std (the reference keeps
    # them in the input dtype, the kernel in float64).
    x64 = x.astype(np.float64)
    condition = 1 + np.abs(x64.mean()) / max(x64.std(), 1e-12)
    atol = (2e-5 if dtype == np.float32 else 1e-10) * condition
    np.testing.assert_allclose(got, ops.group_norm(x, w, b), atol=atol * (1 + np.abs(w).max() + np.abs(b).max()))


@given(b=st.integers(1, 3), c=st.integers(1, 6), hidden=st.integers(1, 9), t=st.integers(1, 25),
       layers=st.integers(1, 2), with_state=st.booleans(), dtype=dtypes, seed=st.integers(0, 2**31))
@pytest.mark.slow
def test_lstm(b, c, hidden, t, layers, with_state, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c, t)).astype(dtype)
    weights, dims = [], c
    for _ in range(layers):
        weights.append(tuple((rng.standard_normal(s) * 0.5).astype(dtype)
                             for s in [(4 * hidden, dims), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)]))
        dims = hidden
    state = ([(rng.standard_normal((b, hidden)).astype(dtype), rng.standard_normal((b, hidden)).astype(dtype))
              for _ in range(layers)] if with_state else None)
    expected, expected_state = ops.lstm(x, weights, state)
    got, got_state = cpu.lstm(x, weights, state)
    assert got.dtype == dtype
    atol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, atol=atol * np.sqrt(t), rtol=0)
    for (h1, c1), (h2, c2) in zip(got_state, expected_state):
        np.testing.assert_allclose(h1, h2, atol=atol * np.sqrt(t))
        np.testing.assert_allclose(c1, c2, atol=atol * np.sqrt(t) * 10)


@given(n=st.integers(1, 60), bins=st.integers(1, 40), d=st.integers(1, 12), q=st.integers(1, 4),
       near_duplicates=st.booleans(), dtype=dtypes, seed=st.integers(0, 2**31))
def test_rvq_encode(n, bins, d, q, near_duplicates, dtype, seed):
    rng = np.random.default_rng(seed)
    books = rng.standard_normal((q, bins, d)).astype(dtype)
    if near_duplicates and bins > 1:
        books[:, 1::2] = books[:, 0:-1:2] + 1e-6 * rng.standard_normal(books[:, 1::2].shape)
    x = rng.standard_normal((n, d)).astype(dtype)
    got = cpu.rvq_encode(x, books)
    expected = ops.rvq_encode(x, books)
    assert got.shape == expected.shape == (q, n) and got.dtype == np.int64
    check_rvq_codes(x, books, got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_rvq_exact_ties_pick_the_first_index():
    books = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]], np.float32)
    x = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 2.0]], np.float32)
    np.testing.assert_array_equal(cpu.rvq_encode(x, books)[0], [0, 0, 1])
    np.testing.assert_array_equal(cpu.nearest_code(x, books[0]), [0, 0, 1])


def test_threads_scope_limits_the_blas_numba_loads_later():
    """Numba's np.dot uses SciPy's OpenBLAS, loaded at the first kernel call: the scope must
    cap it even when it is entered before that load (a fresh process)."""
    code = """
import sys, numpy as np
from threadpoolctl import threadpool_info
from encodec_np.kernels import cpu
assert not any("scipy.libs" in p["filepath"] for p in threadpool_info()), "SciPy's BLAS loaded too early"
with cpu.threads(None):
    cpu.conv1d(np.ones((1, 2, 50), np.float32), np.ones((3, 2, 3), np.float32))
    libs = [(p["filepath"], p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]
assert any("scipy" in f for f, _ in libs), libs
assert all(n == 1 for _, n in libs), libs
"""
    import subprocess
    import sys
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_threads_scope_restores_and_limits_blas():
    from threadpoolctl import threadpool_info
    before = numba.get_num_threads()
    with cpu.threads(1):
        assert numba.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert numba.get_num_threads() == before


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["encodec_24khz", "encodec_48khz"])
def test_whole_model_numba_equals_numpy(preset):
    """Full-size models, every bandwidth: identical codes except near-ties, waveform within 1e-4 of peak."""
    import encodec_np
    from encodec_np.synthetic import random_params, test_signal
    config = getattr(encodec_np, preset)()
    params = random_params(config, seed=5)
    ref = encodec_np.EncodecModel(config, params, backend="numpy")
    fast = encodec_np.EncodecModel(config, params, backend="numba")
    x = np.stack([test_signal("chirp", config.channels, 30000, seed=s, sample_rate=config.sample_rate)
                  for s in (1, 2)])
    for bw in config.target_bandwidths:
        ref.set_target_bandwidth(bw)
        fast.set_target_bandwidth(bw)
        a, b = ref.encode(x), fast.encode(x)
        agree = np.mean([np.mean(fa[0] == fb[0]) for fa, fb in zip(a, b)])
        assert agree >= 0.99, f"{bw} kbps: {agree:.2%} codes agree"
        for fa, fb in zip(a, b):
            if fa[1] is not None:
                np.testing.assert_allclose(fa[1], fb[1], rtol=1e-5)
        # Decode the same codes on both sides.
        ya, yb = ref.decode(a), fast.decode(a)
        assert np.abs(ya - yb).max() <= 1e-4 * np.abs(ya).max()
