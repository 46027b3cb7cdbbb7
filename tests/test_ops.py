"""The reference ops against naive loops and (when installed) PyTorch's functional ops."""
import naive
import numpy as np
import pytest
from conftest import requires_torch
from hypothesis import assume, example, given
from hypothesis import strategies as st
from strategies import dtypes
from tolerances import tol

from encodec_np import ops


@given(b=st.integers(1, 3), c_in=st.integers(1, 5), c_out=st.integers(1, 5), k=st.integers(1, 8),
       stride=st.integers(1, 9), dilation=st.integers(1, 4), extra=st.integers(0, 40), dtype=dtypes,
       seed=st.integers(0, 2**31))
@example(b=1, c_in=1, c_out=1, k=7, stride=1, dilation=1, extra=0, dtype=np.float32, seed=0)  # one frame
@example(b=1, c_in=2, c_out=1, k=2, stride=8, dilation=1, extra=0, dtype=np.float32, seed=0)  # stride > kernel
def test_conv1d_matches_naive(b, c_in, c_out, k, stride, dilation, extra, dtype, seed):
    rng = np.random.default_rng(seed)
    length = (k - 1) * dilation + 1 + extra
    x = rng.standard_normal((b, c_in, length)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    y = ops.conv1d(x, w, bias, stride, dilation)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, naive.conv1d(x, w, bias, stride, dilation), atol=tol(dtype, c_in * k), rtol=0)


def test_conv1d_rejects_input_shorter_than_kernel():
    with pytest.raises(ValueError, match="shorter than the kernel"):
        ops.conv1d(np.zeros((1, 1, 3)), np.zeros((1, 1, 4)))


@given(b=st.integers(1, 3), c_in=st.integers(1, 5), c_out=st.integers(1, 5), k=st.integers(1, 16),
       stride=st.integers(1, 8), t=st.integers(1, 20), dtype=dtypes, seed=st.integers(0, 2**31))
def test_conv_transpose1d_matches_naive(b, c_in, c_out, k, stride, t, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c_in, t)).astype(dtype)
    w = rng.standard_normal((c_in, c_out, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    y = ops.conv_transpose1d(x, w, bias, stride)
    assert y.dtype == dtype and y.shape == (b, c_out, (t - 1) * stride + k)
    np.testing.assert_allclose(y, naive.conv_transpose1d(x, w, bias, stride), atol=tol(dtype, c_in * k), rtol=0)


@given(length=st.integers(1, 30), k=st.integers(1, 16), stride=st.integers(1, 8), dilation=st.integers(1, 3),
       causal=st.booleans())
def test_conv_padding_gives_whole_frames(length, k, stride, dilation, causal):
    assume((k - 1) * dilation + 1 >= stride)  # as official SConv1d: a stride never skips input
    assume(stride == 1 or dilation == 1)  # the official rule is exact only there (see ops.conv_padding)
    left, right = ops.conv_padding(length, k, stride, dilation, causal)
    padded = length + left + right
    span = (k - 1) * dilation + 1
    frames = (padded - span) // stride + 1
    assert left >= 0 and right >= 0
    assert frames == int(np.ceil(length / stride))  # the official rule: ceil(L / stride) outputs
    assert (padded - span) % stride == 0  # the last window is full: nothing is dropped


@given(length=st.integers(1, 12), left=st.integers(0, 10), right=st.integers(0, 10))
@example(length=1, left=6, right=0)  # input shorter than the pad: zero-extended then reflected
def test_reflect_pad_small_inputs(length, left, right):
    x = np.arange(1, length + 1, dtype=np.float32)[None, None]
    y = ops.pad1d(x, left, right, "reflect")
    assert y.shape[-1] == length + left + right
    np.testing.assert_array_equal(y[..., left:left + length], x)
    if length > max(left, right):
        np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (0, 0), (left, right)], mode="reflect"))


def test_elu_and_group_norm():
    x = np.array([[[-2.0, -0.5, 0.0, 0.5, 3.0]]])
    np.testing.assert_allclose(ops.elu(x), np.where(x > 0, x, np.exp(x) - 1))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 50)) * 5 + 2
    y = ops.group_norm(x, np.ones(3), np.zeros(3))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1, atol=1e-5)  # eps = 1e-5


@given(n=st.integers(1, 40), bins=st.integers(1, 64), d=st.integers(1, 16), dtype=dtypes, seed=st.integers(0, 2**31))
def test_nearest_code(n, bins, d, dtype, seed):
    rng = np.random.default_rng(seed)
    books = rng.standard_normal((bins, d)).astype(dtype)
    x = rng.standard_normal((n, d)).astype(dtype)
    idx = ops.nearest_code(x, books)
    ref = naive.nearest(x, books)
    # Compare distances at the chosen indices, not the indices: near-ties may go either way.
    d_idx = ((x - books[idx]) ** 2).sum(-1)
    d_ref = ((x - books[ref]) ** 2).sum(-1)
    np.testing.assert_allclose(d_idx, d_ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_nearest_code_first_index_on_exact_ties():
    books = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    x = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 2.0]], np.float32)
    np.testing.assert_array_equal(ops.nearest_code(x, books), [0, 0, 1])


def test_rvq_roundtrip_on_exact_sums():
    rng = np.random.default_rng(1)
    books = rng.standard_normal((3, 8, 4)) * np.array([1.0, 0.1, 0.01])[:, None, None]
    codes = rng.integers(0, 8, size=(3, 10))
    x = sum(books[q][codes[q]] for q in range(3))
    np.testing.assert_array_equal(ops.rvq_encode(x, books), codes)
    np.testing.assert_allclose(ops.rvq_decode(codes, books), x, atol=1e-12)


# --------------------------------------------------------------------------- against PyTorch
@requires_torch
@given(b=st.integers(1, 2), c_in=st.integers(1, 4), c_out=st.integers(1, 4), k=st.integers(1, 8),
       stride=st.integers(1, 6), dilation=st.integers(1, 3), extra=st.integers(0, 30), seed=st.integers(0, 2**31))
def test_convs_match_torch(b, c_in, c_out, k, stride, dilation, extra, seed):
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c_in, (k - 1) * dilation + 1 + extra))
    w = rng.standard_normal((c_out, c_in, k))
    bias = rng.standard_normal(c_out)
    expected = F.conv1d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias), stride, 0, dilation).numpy()
    np.testing.assert_allclose(ops.conv1d(x, w, bias, stride, dilation), expected, atol=1e-10)
    wt = rng.standard_normal((c_in, c_out, k))
    expected = F.conv_transpose1d(torch.from_numpy(x), torch.from_numpy(wt), torch.from_numpy(bias), stride).numpy()
    np.testing.assert_allclose(ops.conv_transpose1d(x, wt, bias, stride), expected, atol=1e-10)


@requires_torch
@given(length=st.integers(1, 40), k=st.integers(1, 12), stride=st.integers(1, 8), dilation=st.integers(1, 3),
       causal=st.booleans(), mode=st.sampled_from(["reflect", "constant", "replicate"]))
def test_padding_matches_official(length, k, stride, dilation, causal, mode):
    import torch
    from oracle import import_encodec
    conv = import_encodec().modules.conv
    x = np.arange(1.0, length + 1.0)[None, None]
    padding_total = (k - 1) * dilation - (stride - 1)
    assume(padding_total >= 0)  # the official SConv1d does not support stride > dilated kernel span
    extra = conv.get_extra_padding_for_conv1d(torch.from_numpy(x), k, stride, padding_total)
    left, right = ops.conv_padding(length, k, stride, dilation, causal)
    assert (left, right) == ((padding_total, extra) if causal
                             else (padding_total - padding_total // 2, padding_total // 2 + extra))
    expected = conv.pad1d(torch.from_numpy(x), (left, right), mode=mode).numpy()
    np.testing.assert_array_equal(ops.pad1d(x, left, right, mode), expected)


@requires_torch
def test_lstm_group_norm_elu_match_torch():
    import torch
    rng = np.random.default_rng(0)
    lstm = torch.nn.LSTM(6, 6, 2).double()
    x = rng.standard_normal((2, 6, 17))
    with torch.no_grad():
        expected, _ = lstm(torch.from_numpy(x).permute(2, 0, 1))
    layers = [tuple(getattr(lstm, f"{n}_l{i}").detach().numpy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
              for i in range(2)]
    got, state = ops.lstm(x, layers)
    np.testing.assert_allclose(got, expected.permute(1, 2, 0).numpy(), atol=1e-12)
    gn = torch.nn.GroupNorm(1, 6).double()
    with torch.no_grad():
        gn.weight.uniform_(); gn.bias.uniform_()
        expected = gn(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ops.group_norm(x, gn.weight.detach().numpy(), gn.bias.detach().numpy()), expected,
                               atol=1e-12)
    np.testing.assert_allclose(ops.elu(x), torch.nn.functional.elu(torch.from_numpy(x)).numpy(), atol=1e-15)


# --------------------------------------------------------------------------- the other ops against plain loops
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 30)), dtype=dtypes,
       scale=st.sampled_from([0.01, 1.0, 30.0]), seed=st.integers(0, 2**31))
def test_elu_against_loops(shape, dtype, scale, seed):
    x = (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)
    np.testing.assert_allclose(ops.elu(x), naive.elu(x), rtol=1e-6 if dtype == np.float32 else 1e-14,
                               atol=1e-7 if dtype == np.float32 else 1e-15)


@given(b=st.integers(1, 2), c=st.integers(1, 5), t=st.integers(1, 25), dtype=dtypes,
       offset=st.floats(-5, 5), seed=st.integers(0, 2**31))
def test_group_norm_against_loops(b, c, t, dtype, offset, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((b, c, t)) + offset).astype(dtype)
    w, bias = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    got = ops.group_norm(x, w, bias)
    np.testing.assert_allclose(got, naive.group_norm(x, w, bias), atol=tol(dtype, c * t) * 10, rtol=0)


@given(b=st.integers(1, 2), c=st.integers(1, 4), hidden=st.integers(1, 4), t=st.integers(1, 8),
       layers=st.integers(1, 2), dtype=dtypes, seed=st.integers(0, 2**31))
def test_lstm_against_loops(b, c, hidden, t, layers, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c, t)).astype(dtype)
    weights, width = [], c
    for _ in range(layers):
        weights.append(tuple((rng.standard_normal(shape) * 0.5).astype(dtype)
                             for shape in ((4 * hidden, width), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,))))
        width = hidden
    y, _ = ops.lstm(x, weights)
    np.testing.assert_allclose(y, naive.lstm(x, weights), atol=tol(dtype, c + hidden) * 10, rtol=0)


@given(t=st.integers(1, 12), left=st.integers(0, 15), right=st.integers(0, 15),
       mode=st.sampled_from(["reflect", "constant", "replicate"]), seed=st.integers(0, 2**31))
def test_pad1d_against_loops(t, left, right, mode, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, t))
    np.testing.assert_array_equal(ops.pad1d(x, left, right, mode), naive.pad1d(x, left, right, mode))
