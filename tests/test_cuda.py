"""Every CUDA kernel against the NumPy reference, on a GPU or in numba's CUDA simulator.

Without a GPU, run it in the simulator; the variable must be set before numba
is imported, so it is a pytest run of its own (``.ci/run`` does this)::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda.py

The simulator runs each GPU thread as a Python thread (~10^4 times slower than a
GPU), so the shapes are tiny and the examples few; on a GPU the same tests run
more examples.
"""
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

cuda = pytest.importorskip("numba.cuda")
if not cuda.is_available():
    pytest.skip("neither a CUDA GPU nor the CUDA simulator is active; run "
                "NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda.py", allow_module_level=True)

import numba  # noqa: E402
from cuda_signatures import kernel_signatures  # noqa: E402
from naive import check_rvq_codes  # noqa: E402
from strategies import dtypes, modes
from tolerances import tol

import encodec_np  # noqa: E402
from encodec_np import ops  # noqa: E402
from encodec_np.kernels import backend_name, get_backend  # noqa: E402
from encodec_np.kernels import cuda as gpu  # noqa: E402
from encodec_np.synthetic import random_params  # noqa: E402

# The autouse launch check below is function-scoped; it holds nothing per example.
few = settings(max_examples=8 if gpu.SIMULATED else 60, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
host = gpu.to_host



def normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def c_strides(shape, itemsize):
    """The strides of a freshly allocated C-ordered array of ``shape``."""
    return tuple(int(itemsize * np.prod(shape[i + 1:])) for i in range(len(shape)))


# --------------------------------------------------------------------------- launches
@pytest.fixture(autouse=True)
def launch_types(monkeypatch):
    """Every launch's argument types must be those ``tests/test_cuda_build.py`` compiles."""
    launch = gpu._launch

    def checked(kernel, work, *args):
        name = getattr(kernel, "py_func", getattr(kernel, "fn", None)).__name__  # GPU / simulator
        dtype = next(numba.typeof(np.empty(0, a.dtype)).dtype for a in args
                     if hasattr(a, "dtype") and np.issubdtype(a.dtype, np.floating))
        got = tuple(numba.typeof(np.empty((0,) * a.ndim, a.dtype)) if hasattr(a, "copy_to_host")
                    else numba.typeof(a) for a in args)
        # Standard C strides, not just is_c_contiguous(): the simulator asks NumPy, which ignores
        # the strides of size-1 axes; a real GPU's numba-cuda does not (seen on an H200).
        assert all(a.strides == c_strides(a.shape, a.dtype.itemsize) for a in args if hasattr(a, "copy_to_host"))
        assert got == kernel_signatures(dtype)[name], f"{name} launched with {got}"
        launch(kernel, work, *args)

    monkeypatch.setattr(gpu, "_launch", checked)


@pytest.fixture(params=[(1, 1), (4, 3), (64, 1)], ids=lambda p: f"{p[0]}threads-{p[1]}blocks")
def launch_config(request, monkeypatch):
    """Grid-stride loops and block reductions give the same results under any launch configuration."""
    monkeypatch.setattr(gpu, "THREADS", request.param[0])
    monkeypatch.setattr(gpu, "MAX_BLOCKS", request.param[1])


# --------------------------------------------------------------------------- padding and convolutions
@few
@given(b=st.integers(1, 3), c_in=st.integers(1, 4), c_out=st.integers(1, 4), k=st.integers(1, 7),
       stride=st.integers(1, 5), dilation=st.integers(1, 3), length=st.integers(1, 24),
       left=st.integers(0, 8), right=st.integers(0, 8), mode=modes, dtype=dtypes, seed=st.integers(0, 2**31))
@example(b=1, c_in=1, c_out=1, k=7, stride=1, dilation=1, length=1, left=6, right=0, mode="reflect",
         dtype=np.float32, seed=0)  # one sample: the official zero-extend-then-reflect path
@example(b=2, c_in=2, c_out=3, k=4, stride=2, dilation=1, length=3, left=2, right=1, mode="reflect",
         dtype=np.float32, seed=0)  # length < kernel, batch > 1
@example(b=1, c_in=1, c_out=1, k=2, stride=5, dilation=1, length=10, left=0, right=0, mode="constant",
         dtype=np.float64, seed=0)  # stride > kernel
def test_padded_conv1d(b, c_in, c_out, k, stride, dilation, length, left, right, mode, dtype, seed):
    assume(length + left + right >= (k - 1) * dilation + 1)
    rng = np.random.default_rng(seed)
    x, w, bias = normal(rng, (b, c_in, length), dtype), normal(rng, (c_out, c_in, k), dtype), normal(rng, c_out, dtype)
    expected = ops.padded_conv1d(x, w, bias, stride, dilation, (left, right), mode)
    got = host(gpu.padded_conv1d(x, w, bias, stride, dilation, (left, right), mode))
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=tol(dtype, c_in * k), rtol=0)


def test_conv1d_without_bias_and_too_short_input():
    rng = np.random.default_rng(0)
    x, w = normal(rng, (1, 2, 5), np.float32), normal(rng, (3, 2, 3), np.float32)
    np.testing.assert_allclose(host(gpu.conv1d(x, w, None, 2)), ops.conv1d(x, w, None, 2), atol=1e-5)
    with pytest.raises(ValueError, match="shorter than the kernel"):
        gpu.conv1d(x, w, None, 1, 3)


@few
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 12)), left=st.integers(0, 14),
       right=st.integers(0, 14), mode=modes, dtype=dtypes, seed=st.integers(0, 2**31))
def test_pad1d_and_unpad1d(shape, left, right, mode, dtype, seed):
    x = normal(np.random.default_rng(seed), shape, dtype)
    padded = host(gpu.pad1d(x, left, right, mode))
    np.testing.assert_array_equal(padded, ops.pad1d(x, left, right, mode))
    np.testing.assert_array_equal(host(gpu.unpad1d(padded, left, right)), x)


def test_pad1d_rejects_negative_padding():
    with pytest.raises(ValueError, match="non-negative"):
        gpu.pad1d(np.zeros((1, 1, 4), np.float32), -1, 0)


@few
@given(b=st.integers(1, 3), c_in=st.integers(1, 4), c_out=st.integers(1, 4), k=st.integers(1, 10),
       stride=st.integers(1, 6), t=st.integers(1, 12), dtype=dtypes, seed=st.integers(0, 2**31))
@example(b=1, c_in=1, c_out=1, k=2, stride=6, t=1, dtype=np.float32, seed=0)  # one frame, stride > kernel
def test_conv_transpose1d(b, c_in, c_out, k, stride, t, dtype, seed):
    rng = np.random.default_rng(seed)
    x, w, bias = normal(rng, (b, c_in, t), dtype), normal(rng, (c_in, c_out, k), dtype), normal(rng, c_out, dtype)
    expected = ops.conv_transpose1d(x, w, bias, stride)
    got = host(gpu.conv_transpose1d(x, w, bias, stride))
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=tol(dtype, c_in * k), rtol=0)


# --------------------------------------------------------------------------- pointwise and norms
@few
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 20)), dtype=dtypes,
       scale=st.floats(0.01, 100), alpha=st.floats(0.1, 2), seed=st.integers(0, 2**31))
def test_elu_and_add(shape, dtype, scale, alpha, seed):
    rng = np.random.default_rng(seed)
    x, y = normal(rng, shape, dtype, scale), normal(rng, shape, dtype)
    x.flat[:4] = [np.inf, -np.inf, np.nan, 0.0][:x.size]
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(host(gpu.elu(x, alpha)), ops.elu(x, alpha), rtol=4 * eps, atol=4 * eps)
    np.testing.assert_array_equal(host(gpu.add(x, y)), x + y)
    np.testing.assert_array_equal(host(gpu.swap_last_axes(x)), ops.swap_last_axes(x))


def test_add_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="equal shapes"):
        gpu.add(np.zeros((1, 2, 3), np.float32), np.zeros((1, 3, 2), np.float32))


@few
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 30)), dtype=dtypes,
       offset=st.floats(-10, 10), scale=st.floats(0.01, 100), seed=st.integers(0, 2**31))
def test_group_norm(shape, dtype, offset, scale, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale + offset).astype(dtype)
    w, b = normal(rng, shape[1], dtype), normal(rng, shape[1], dtype)
    got = host(gpu.group_norm(x, w, b))
    assert got.dtype == dtype
    # Statistics in float64 here, in the input dtype in the reference: the difference
    # grows with |mean| / std.
    x64 = x.astype(np.float64)
    condition = 1 + np.abs(x64.mean()) / max(x64.std(), 1e-12)
    atol = (2e-5 if dtype == np.float32 else 1e-10) * condition
    np.testing.assert_allclose(got, ops.group_norm(x, w, b), atol=atol * (1 + np.abs(w).max() + np.abs(b).max()))


# --------------------------------------------------------------------------- LSTM
def lstm_weights(rng, layers, c, hidden, dtype):
    weights, dims = [], c
    for _ in range(layers):
        weights.append(tuple(normal(rng, s, dtype, 0.5)
                             for s in [(4 * hidden, dims), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)]))
        dims = hidden
    return weights


@few
@given(b=st.integers(1, 3), c=st.integers(1, 4), hidden=st.integers(1, 6), t=st.integers(1, 6),
       layers=st.integers(1, 2), with_state=st.booleans(), dtype=dtypes, seed=st.integers(0, 2**31))
def test_lstm(b, c, hidden, t, layers, with_state, dtype, seed):
    rng = np.random.default_rng(seed)
    x = normal(rng, (b, c, t), dtype)
    weights = lstm_weights(rng, layers, c, hidden, dtype)
    state = ([(normal(rng, (b, hidden), dtype), normal(rng, (b, hidden), dtype)) for _ in range(layers)]
             if with_state else None)
    given_state = None if state is None else [(h.copy(), c_.copy()) for h, c_ in state]
    expected, expected_state = ops.lstm(x, weights, state)
    got, got_state = gpu.lstm(x, weights, given_state)
    atol = (2e-6 if dtype == np.float32 else 1e-12) * np.sqrt(t)
    np.testing.assert_allclose(host(got), expected, atol=atol, rtol=0)
    for (h1, c1), (h2, c2) in zip(got_state, expected_state):
        np.testing.assert_allclose(host(h1), h2, atol=atol)
        np.testing.assert_allclose(host(c1), c2, atol=atol * 10)
    if state is not None:  # the caller's state is left alone
        for (h, c_), (h0, c0) in zip(given_state, state):
            np.testing.assert_array_equal(h, h0)
            np.testing.assert_array_equal(c_, c0)


# --------------------------------------------------------------------------- RVQ
@few
@given(n=st.integers(1, 6), bins=st.integers(1, 40), d=st.integers(1, 6), q=st.integers(1, 3),
       near_duplicates=st.booleans(), dtype=dtypes, seed=st.integers(0, 2**31))
def test_rvq_encode_and_decode(n, bins, d, q, near_duplicates, dtype, seed):
    rng = np.random.default_rng(seed)
    books = normal(rng, (q, bins, d), dtype)
    if near_duplicates and bins > 1:
        books[:, 1::2] = books[:, 0:-1:2] + 1e-6 * rng.standard_normal(books[:, 1::2].shape)
    x = normal(rng, (n, d), dtype)
    got = host(gpu.rvq_encode(x, books))
    expected = ops.rvq_encode(x, books)
    assert got.shape == expected.shape == (q, n) and got.dtype == np.int64
    check_rvq_codes(x, books, got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # Decoding is the ordered sum, as the reference: identical.
    np.testing.assert_array_equal(host(gpu.rvq_decode(expected, books)), ops.rvq_decode(expected, books))


def test_rvq_exact_ties_pick_the_first_index(launch_config):
    books = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]], np.float32)
    x = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 2.0]], np.float32)
    np.testing.assert_array_equal(host(gpu.rvq_encode(x, books))[0], [0, 0, 1])
    np.testing.assert_array_equal(host(gpu.nearest_code(x, books[0])), [0, 0, 1])


def test_launch_configuration_does_not_change_results(launch_config):
    rng = np.random.default_rng(1)
    x = normal(rng, (2, 3, 9), np.float32)
    w = normal(rng, (4, 3, 3), np.float32)
    np.testing.assert_allclose(host(gpu.padded_conv1d(x, w, None, 2, 1, (2, 1), "reflect")),
                               ops.padded_conv1d(x, w, None, 2, 1, (2, 1), "reflect"), atol=1e-5)
    np.testing.assert_allclose(host(gpu.group_norm(x, w[:3, 0, 0], w[:3, 0, 1])),
                               ops.group_norm(x, w[:3, 0, 0], w[:3, 0, 1]), atol=1e-5)
    books = normal(rng, (3, 37, 4), np.float32)
    rows = normal(rng, (5, 4), np.float32)
    np.testing.assert_array_equal(host(gpu.rvq_encode(rows, books)), ops.rvq_encode(rows, books))


def test_weights_are_uploaded_once_per_host_array(monkeypatch):
    rng = np.random.default_rng(2)
    x, w = normal(rng, (1, 2, 6), np.float32), normal(rng, (3, 2, 3), np.float32)
    rows, books = normal(rng, (5, 3), np.float32), normal(rng, (4, 8, 3), np.float32)
    gpu.conv1d(x, w)
    gpu.rvq_encode(rows, books[:2])
    uploads = []
    to_device = gpu.cuda.to_device
    monkeypatch.setattr(gpu.cuda, "to_device", lambda a, *args: uploads.append(a.shape) or to_device(a, *args))
    gpu.conv1d(x, w)
    gpu.rvq_encode(rows, books[:2])  # a new view of the same codebooks
    assert uploads == [x.shape, rows.shape]
    w2 = w.copy()  # another array: its own upload
    gpu.conv1d(x, w2)
    assert uploads[-1] == w2.shape


# --------------------------------------------------------------------------- the backend and whole models
def test_backend_registration():
    assert "cuda" in encodec_np.available_backends()
    assert backend_name(get_backend("cuda")) == "cuda"
    if gpu.SIMULATED:  # the simulator is never a default
        assert backend_name(get_backend("auto")) != "cuda"
    else:
        assert backend_name(get_backend("auto")) == "cuda"


def tiny(preset, **changes):
    """The preset's structure at toy size: 4-sample hop, 16-code books, 2 filters."""
    cfg = preset()
    seanet = dataclasses.replace(cfg.seanet, n_filters=2, dimension=4, ratios=(2, 2))
    quantizer = dataclasses.replace(cfg.quantizer, dimension=4, bins=16, n_q=4)
    return cfg.replace(seanet=seanet, quantizer=quantizer, target_bandwidths=(24.0,), **changes)


@pytest.mark.parametrize("preset,length,changes,bandwidths", [
    (encodec_np.encodec_24khz, 19, {}, (24.0, None)),             # causal, weight norm, LSTM; 1 and 4 codebooks
    (encodec_np.encodec_48khz, 30, {"segment": 0.0005}, (None,)),  # non-causal, GroupNorm, normalize, 2 segments
])
def test_whole_model_equals_numpy(preset, length, changes, bandwidths):
    config = tiny(preset, **changes)
    params = random_params(config, seed=1)
    ref = encodec_np.EncodecModel(config, params, backend="numpy")
    model = encodec_np.EncodecModel(config, params, backend="cuda")
    assert model.backend == "cuda"
    x = normal(np.random.default_rng(0), (2, config.channels, length), np.float32, 0.3)
    for bandwidth in bandwidths:
        ref.set_target_bandwidth(bandwidth)
        model.set_target_bandwidth(bandwidth)
        expected, got = ref.encode(x), model.encode(x)
        assert len(got) == len(expected)
        for (codes, scale), (ref_codes, ref_scale) in zip(got, expected):
            np.testing.assert_array_equal(codes, ref_codes)
            if ref_scale is not None:
                np.testing.assert_array_equal(scale, ref_scale)
        y, y_ref = model.decode(expected), ref.decode(expected)
        assert y.shape == y_ref.shape and isinstance(y, np.ndarray)
        assert np.abs(y - y_ref).max() <= 1e-5 * np.abs(y_ref).max()


def test_one_upload_and_one_download_per_call(monkeypatch):
    config = tiny(encodec_np.encodec_24khz)
    model = encodec_np.EncodecModel(config, random_params(config, seed=2), backend="cuda")
    x = normal(np.random.default_rng(1), (1, 1, 9), np.float32, 0.3)
    model.decode(model.encode(x))  # weights go up once, on first use
    moves = []
    to_device, to_host = gpu.cuda.to_device, gpu.to_host
    monkeypatch.setattr(gpu.cuda, "to_device", lambda a, *args: moves.append("up") or to_device(a, *args))
    monkeypatch.setattr(gpu, "to_host", lambda a: moves.append("down") or to_host(a))
    frames = model.encode(x)
    assert moves == ["up", "down"]
    model.decode(frames)
    assert moves == ["up", "down"] * 2


def test_cuda_backend_conforms_to_the_contract():
    from encodec_np.backend import contract_violations
    assert contract_violations(gpu) == []
