"""Numba CPU kernels: the ``numba`` backend.

Same signatures as :mod:`encodec_np.ops`. Every product that decides codes or
audio runs in a kernel of ours, never in BLAS: BLAS picks its blocking (and so
each sum's order) from the problem size, so the same sample would round
differently when the audio is cut differently. Here each output element
accumulates its ``channel x tap`` products in one fixed order,
``bias + w[0] x[0] + w[1] x[1] + ...`` (fused multiply-adds), whatever the
length, the batch, the chunking or the thread count: results are bit-identical
for any of them (``tests/test_determinism.py``). The tiled kernels
(:func:`_make_correlate`) vectorise along time; :func:`_correlate_channels`,
for calls with few outputs (a stream's push), across output channels, with
the same sums.

How the ops map onto them: a strided conv becomes a unit-stride one over the
input split into its ``stride`` phases (polyphase); a transposed conv becomes
``stride`` unit-stride convs, one per output phase, interleaved; the LSTM's
input projection and the RVQ distance products are 1-tap convs. Weights are
laid out for the kernels once per weight array (memoised). The LSTM
recurrence runs one group of items per parallel job (no parallel region per
time step), and the codebook arg-min is fused with the residual update.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from functools import lru_cache

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from encodec_np import geometry
from encodec_np.backend import reference_fallback as __getattr__  # noqa: F401  the ops not specialised here
from encodec_np.kernels import available_cores, blas_limits
from encodec_np.kernels.memo import memoised

#: Output samples per kernel tile: 256 for long outputs, 32 for short ones (fewer
#: than ``FEW_OUTPUTS`` go to :func:`_correlate_channels`). Literal trip counts,
#: so every output sample goes through the same vector code with no scalar
#: remainder loop; all give the same bits (each sample's sum does not see the tile).
TILES = (256, 32)
#: Output channels per parallel job (more jobs when the time axis is short).
CHANNEL_GROUP = 64


# --------------------------------------------------------------------------- the one product kernel
def _make_correlate(tile: int):
    """The kernel for one tile length (a closure constant: numba caches each separately)."""

    @njit(parallel=True, cache=True, fastmath={"contract"})
    def correlate(src, weight, bias, rows, shifts, n_out, out):
        """``out[b, o, t] = bias[o] + sum_g weight[o, g] * src[b, rows[g], t + shifts[g]]``, g in order.

        src : [B, R, L], zero past the signal, ``L >= ceil(n_out / tile) * tile + max(shifts)``;
        weight : [O, G]; bias : [O]; rows, shifts : [G] int64; out : [B, O, n_out].
        Jobs own (item, time tile, channel group) triples, so no two write the
        same output. A pass covers 4 output channels x 4 taps, which keeps the
        accumulators' loads and stores at a quarter of the multiply-adds without
        changing any sum's order. ``contract`` only fuses each ``acc + w * x``
        into one rounding (no reordering).
        """
        n_items = src.shape[0]
        n_ch, n_taps = weight.shape
        n_tiles = (n_out + tile - 1) // tile
        n_groups = (n_ch + CHANNEL_GROUP - 1) // CHANNEL_GROUP
        grouped = n_taps - n_taps % 4
        for job in prange(n_items * n_tiles * n_groups):
            b = job // (n_tiles * n_groups)
            t0 = (job // n_groups % n_tiles) * tile
            first = (job % n_groups) * CHANNEL_GROUP
            last = min(n_ch, first + CHANNEL_GROUP)
            n = min(tile, n_out - t0)
            xb = src[b]
            acc0 = np.empty(tile, src.dtype)
            acc1 = np.empty(tile, src.dtype)
            acc2 = np.empty(tile, src.dtype)
            acc3 = np.empty(tile, src.dtype)
            for o0 in range(first, last, 4):
                # A last block of fewer than 4 channels repeats its last one (not stored twice).
                o1, o2, o3 = min(o0 + 1, last - 1), min(o0 + 2, last - 1), min(o0 + 3, last - 1)
                for t in range(tile):
                    acc0[t] = bias[o0]
                    acc1[t] = bias[o1]
                    acc2[t] = bias[o2]
                    acc3[t] = bias[o3]
                for g in range(0, grouped, 4):
                    xa = xb[rows[g], t0 + shifts[g]:t0 + shifts[g] + tile]
                    xq = xb[rows[g + 1], t0 + shifts[g + 1]:t0 + shifts[g + 1] + tile]
                    xr = xb[rows[g + 2], t0 + shifts[g + 2]:t0 + shifts[g + 2] + tile]
                    xs = xb[rows[g + 3], t0 + shifts[g + 3]:t0 + shifts[g + 3] + tile]
                    a0, a1, a2, a3 = weight[o0, g], weight[o0, g + 1], weight[o0, g + 2], weight[o0, g + 3]
                    b0, b1, b2, b3 = weight[o1, g], weight[o1, g + 1], weight[o1, g + 2], weight[o1, g + 3]
                    c0, c1, c2, c3 = weight[o2, g], weight[o2, g + 1], weight[o2, g + 2], weight[o2, g + 3]
                    d0, d1, d2, d3 = weight[o3, g], weight[o3, g + 1], weight[o3, g + 2], weight[o3, g + 3]
                    for t in range(tile):
                        va, vb, vc, vd = xa[t], xq[t], xr[t], xs[t]
                        acc0[t] = acc0[t] + a0 * va + a1 * vb + a2 * vc + a3 * vd
                        acc1[t] = acc1[t] + b0 * va + b1 * vb + b2 * vc + b3 * vd
                        acc2[t] = acc2[t] + c0 * va + c1 * vb + c2 * vc + c3 * vd
                        acc3[t] = acc3[t] + d0 * va + d1 * vb + d2 * vc + d3 * vd
                for g in range(grouped, n_taps):
                    xa = xb[rows[g], t0 + shifts[g]:t0 + shifts[g] + tile]
                    a0, b0, c0, d0 = weight[o0, g], weight[o1, g], weight[o2, g], weight[o3, g]
                    for t in range(tile):
                        va = xa[t]
                        acc0[t] = acc0[t] + a0 * va
                        acc1[t] = acc1[t] + b0 * va
                        acc2[t] = acc2[t] + c0 * va
                        acc3[t] = acc3[t] + d0 * va
                out[b, o0, t0:t0 + n] = acc0[:n]
                if o0 + 1 < last:
                    out[b, o1, t0:t0 + n] = acc1[:n]
                if o0 + 2 < last:
                    out[b, o2, t0:t0 + n] = acc2[:n]
                if o0 + 3 < last:
                    out[b, o3, t0:t0 + n] = acc3[:n]

    return correlate


_CORRELATE = {tile: _make_correlate(tile) for tile in TILES}

#: Below this many outputs per row the products run across output channels instead.
FEW_OUTPUTS = 64
#: Output channels per parallel job of :func:`_correlate_channels` (its accumulators stay in L1).
CHANNEL_SPAN = 128


@njit(parallel=True, cache=True, fastmath={"contract"})
def _correlate_channels(src, weight_t, bias, rows, shifts, n_out, out):
    """The tiled kernel's sums, vectorised across output channels: for a few outputs (a stream's push).

    ``weight_t`` is the weight transposed, ``[G, O]``; every output takes the same
    products in the same order and grouping as in the tiled kernel
    (``acc + w[g] x[g] + ... + w[g + 3] x[g + 3]`` per 4 taps), so both give the
    same bits. Jobs own (item, channel span) pairs and read each weight row
    once for all their outputs: with one output per row, the weights are
    what costs.
    """
    n_items = src.shape[0]
    n_taps, n_ch = weight_t.shape
    n_spans = (n_ch + CHANNEL_SPAN - 1) // CHANNEL_SPAN
    grouped = n_taps - n_taps % 4
    for job in prange(n_items * n_spans):
        b = job // n_spans
        lo = (job % n_spans) * CHANNEL_SPAN
        hi = min(n_ch, lo + CHANNEL_SPAN)
        acc = np.empty((n_out, hi - lo), src.dtype)
        for t in range(n_out):
            acc[t] = bias[lo:hi]
        for g in range(0, grouped, 4):
            w0, w1 = weight_t[g, lo:hi], weight_t[g + 1, lo:hi]
            w2, w3 = weight_t[g + 2, lo:hi], weight_t[g + 3, lo:hi]
            for t in range(n_out):
                va, vb = src[b, rows[g], t + shifts[g]], src[b, rows[g + 1], t + shifts[g + 1]]
                vc, vd = src[b, rows[g + 2], t + shifts[g + 2]], src[b, rows[g + 3], t + shifts[g + 3]]
                row = acc[t]
                for o in range(hi - lo):
                    row[o] = row[o] + w0[o] * va + w1[o] * vb + w2[o] * vc + w3[o] * vd
        for g in range(grouped, n_taps):
            w0 = weight_t[g, lo:hi]
            for t in range(n_out):
                va = src[b, rows[g], t + shifts[g]]
                row = acc[t]
                for o in range(hi - lo):
                    row[o] = row[o] + w0[o] * va
        for t in range(n_out):
            out[b, lo:hi, t] = acc[t]


def _tile(n_out: int) -> int:
    """The longest tile that wastes little: at least two tiles' worth of outputs, else the shortest."""
    return next((tile for tile in TILES if n_out >= 2 * tile), TILES[-1])


def _matrix(weight, pack, few, *extra):
    """``pack(weight, *extra)`` as the ``[O, G]`` matrix the tiled kernels take, or its transpose (``few``)."""
    matrix = pack(weight, *extra)
    return np.ascontiguousarray(matrix.T if few else matrix)


def _as_is(weight):
    """A weight that is already the ``[O, G]`` matrix (the LSTM's input weights)."""
    return weight


def _rows(weight):
    """A conv weight ``[C_out, C_in, K]`` as ``[C_out, C_in * K]`` (tap ``g = c * K + k``)."""
    return weight.reshape(weight.shape[0], -1)


def _run(src, weight, bias, rows, shifts, n_out, pack=None, extra=()):
    """One of the product kernels into a new ``[B, O, n_out]`` array (zero bias when None).

    ``pack(weight, *extra)`` (a module-level function) gives the ``[O, G]``
    matrix, made once per model weight (:mod:`encodec_np.kernels.memo`);
    without ``pack``, ``weight`` is that matrix, a temporary used as it is.
    """
    dtype = src.dtype
    few = n_out < FEW_OUTPUTS
    if pack is None:
        matrix = _matrix(np.asarray(weight, dtype), _as_is, few)
    else:
        matrix = memoised(_matrix, dtype, weight, extra=(pack, few) + tuple(extra))
    n_ch = matrix.shape[1] if few else matrix.shape[0]
    bias = np.zeros(n_ch, dtype) if bias is None else np.ascontiguousarray(bias, dtype=dtype)
    out = np.empty((src.shape[0], n_ch, n_out), dtype)
    kernel = _correlate_channels if few else _CORRELATE[_tile(n_out)]
    kernel(src, matrix, bias, rows, shifts, n_out, out)
    return out


def _source_length(n_out: int, max_shift: int) -> int:
    """Samples the correlate kernel reads per source row for ``n_out`` outputs."""
    tile = _tile(n_out)
    return -(-n_out // tile) * tile + max_shift


@lru_cache(maxsize=None)
def _conv_taps(channels: int, kernel_size: int, stride: int, dilation: int):
    """Source (row, shift) of tap ``g = c * K + k`` over the input split into ``stride`` phases.

    ``x[c, t * stride + k * dilation]`` is phase ``(k * dilation) % stride`` of
    channel ``c`` at ``t + (k * dilation) // stride``.
    """
    offset = np.arange(kernel_size) * dilation
    rows = (np.arange(channels)[:, None] * stride + offset % stride).reshape(-1).astype(np.int64)
    shifts = np.tile(offset // stride, channels).astype(np.int64)
    return rows, shifts  # shared by every call (lru_cache): never written to


_source_index = njit(cache=True, inline="always")(geometry.source_index)


@njit(parallel=True, cache=True)
def _fill_source(x, left, padded, extended, mode, stride, src):
    """``src[b, c * stride + r, u] = padded(x)[b, c, u * stride + r]``: padding and phase split in one pass.

    x : [B, C, T]; src : [B, C * stride, W]. ``padded`` is the padded length
    (positions past it are 0); the padding follows :mod:`encodec_np.geometry`.
    Each parallel job owns one source row.
    """
    n_items, channels, length = x.shape
    width = src.shape[-1]
    for job in prange(n_items * channels * stride):
        b = job // (channels * stride)
        c = job // stride % channels
        r = job % stride
        row = src[b, c * stride + r]
        # u whose position u * stride + r lies inside the signal: a plain strided copy.
        lo = min(width, max(0, -((r - left) // stride)))
        hi = min(width, max(lo, -((r - left - length) // stride)))
        first = lo * stride + r - left
        if stride == 1:  # a contiguous copy (a step, even of 1, makes numba index each sample)
            row[lo:hi] = x[b, c, first:first + hi - lo]
        elif hi > lo:
            row[lo:hi] = x[b, c, first:first + (hi - lo - 1) * stride + 1:stride]
        for u in range(lo):
            i = _source_index(u * stride + r, length, left, extended, mode)
            row[u] = x[b, c, i] if i >= 0 else 0
        for u in range(hi, width):
            p = u * stride + r
            i = _source_index(p, length, left, extended, mode) if p < padded else -1
            row[u] = x[b, c, i] if i >= 0 else 0


# --------------------------------------------------------------------------- convolutions
def padded_conv1d(x, weight, bias=None, stride=1, dilation=1, padding=(0, 0), pad_mode="constant"):
    """Padded conv (see :func:`encodec_np.ops.padded_conv1d`): x [B, C_in, T] → [B, C_out, T'].

    The padding is read through :func:`encodec_np.geometry.source_index` while
    the input is split into its stride phases: one pass, no padded copy.
    """
    c_out, c_in, k = weight.shape
    left, right = int(padding[0]), int(padding[1])
    if left < 0 or right < 0:
        raise ValueError(f"padding must be non-negative, got ({left}, {right})")
    x = np.ascontiguousarray(x)
    length = x.shape[-1]
    padded = length + left + right
    span = (k - 1) * dilation + 1
    if padded < span:
        raise ValueError(f"input of length {padded} (padded) is shorter than the kernel span {span}")
    n_out = (padded - span) // stride + 1
    rows, shifts = _conv_taps(c_in, k, stride, dilation)
    src = np.empty((x.shape[0], c_in * stride, max(-(-padded // stride), _source_length(n_out, int(shifts[-1])))),
                   x.dtype)
    mode = geometry.MODES[pad_mode]
    _fill_source(x, left, padded, geometry.reflect_extent(length, left, right, mode), mode, stride, src)
    return _run(src, weight, bias, rows, shifts, n_out, _rows)


def conv1d(x, weight, bias=None, stride=1, dilation=1):
    """Unpadded conv (see :func:`encodec_np.ops.conv1d`)."""
    return padded_conv1d(x, weight, bias, stride, dilation)


def _transposed_weight(weight, stride: int):
    """``[C_in, C_out, K]`` → ``[stride * C_out, C_in * J]``, ``J = ceil(K / stride)``.

    Row ``r * C_out + o`` (output phase ``r``), column ``c * J + i``: the weight
    of input frame ``q - (J - 1 - i)`` on output ``q * stride + r``, i.e.
    ``w[c, o, r + (J - 1 - i) * stride]`` (zero past the kernel).
    """
    c_in, c_out, k = weight.shape
    taps = -(-k // stride)
    padded = np.zeros((c_in, c_out, taps * stride), weight.dtype)
    padded[..., :k] = weight
    # [C_in, C_out, J, stride] (tap j = J - 1 - i) → [stride, C_out, C_in, J]
    per_phase = padded.reshape(c_in, c_out, taps, stride)[:, :, ::-1, :].transpose(3, 1, 0, 2)
    return np.ascontiguousarray(per_phase).reshape(stride * c_out, c_in * taps)


def conv_transpose1d(x, weight, bias=None, stride=1):
    """Transposed conv as ``stride`` unit-stride convs, one per output phase, interleaved.

    x : [B, C_in, T]; weight : [C_in, C_out, K] → [B, C_out, (T - 1) * stride + K].
    Output ``q * stride + r`` sums its frames ``q, q - 1, ...`` in one fixed
    order, so a stream that keeps the last ``J - 1`` input frames
    (``J = ceil(K / stride)``) computes every sample exactly as one pass does.
    """
    c_in, c_out, k = weight.shape
    b, _, t = x.shape
    taps = -(-k // stride)
    n_q = t + taps - 1  # output frames per phase
    src = np.zeros((b, c_in, _source_length(n_q, taps - 1)), x.dtype)
    src[:, :, taps - 1:taps - 1 + t] = x  # J - 1 zero frames before the signal
    rows = np.repeat(np.arange(c_in, dtype=np.int64), taps)
    shifts = np.tile(np.arange(taps, dtype=np.int64), c_in)
    phase_bias = None if bias is None else np.tile(bias, stride)
    y = _run(src, weight, phase_bias, rows, shifts, n_q, _transposed_weight, (stride,))
    y = y.reshape(b, stride, c_out, n_q).transpose(0, 2, 3, 1).reshape(b, c_out, n_q * stride)
    return y[..., :(t - 1) * stride + k]


# --------------------------------------------------------------------------- pointwise
@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the low 32 of the integer ``bits`` (a vectorisable bit cast)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        word = args[0] if bits.bitwidth == 32 else builder.trunc(args[0], ir.IntType(32))
        return builder.bitcast(word, context.get_value_type(types.float32))

    return types.float32(bits), codegen


@intrinsic
def _select(typingctx, condition, if_true, if_false):
    """``if_true if condition else if_false`` as one LLVM ``select``: no branch, so it inlines and vectorises."""
    if not (isinstance(condition, types.Boolean) and if_true == if_false):
        return None

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])

    return if_true(condition, if_true, if_false), codegen


def _float32_fast(fast32, exact):
    """A function that numba compiles to ``fast32`` for float32 and to ``exact`` for float64.

    The float32 forms are arithmetic LLVM vectorises (libm's are one call per
    sample); float64, the oracle's type, keeps libm's. Called from Python, it is ``exact``.
    """
    def dispatch(v):
        return exact(v)

    @overload(dispatch, inline="always")
    def _dispatch_impl(v):
        return (lambda v: fast32(v)) if v == types.float32 else (lambda v: exact(v))

    return dispatch


@njit(cache=True, inline="always")
def _exp_nonpositive_f32(v):
    """``exp(v)`` for float32 ``v <= 0`` in arithmetic LLVM vectorises (libm's ``exp`` is one call a sample).

    Cephes ``expf``: ``v = n ln2 + r`` with ``|r| <= ln2 / 2`` (ln2 in two parts,
    so ``r`` is exact), a degree-7 polynomial for ``exp(r)``, and ``2^n`` built
    from its exponent bits. Within 2 ulp of ``exp`` on ``[-87, 0]``; below -87
    it gives ``exp(-87)``, which ELU cannot tell from 0 (``alpha * (e - 1)``
    rounds to ``-alpha`` either way).
    """
    x = max(v, np.float32(-87.0))
    n = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))  # float32 (math.floor: an int)
    r = x - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    return p * _float32_from_bits((int(n) + 127) << 23)


_exp_nonpositive = _float32_fast(_exp_nonpositive_f32, math.exp)


@njit(parallel=True, cache=True)
def _elu(x, alpha, out):
    """Branch-free ``max(v, 0) + alpha * (exp(min(v, 0)) - 1)``: LLVM vectorizes it.

    ``exp(v) - 1`` instead of ``expm1`` costs at most ~1 ulp of 1 in absolute
    terms near 0 and runs 2.5x faster here. Float32 takes the polynomial
    ``exp`` (vectorised); float64, the oracle's type, libm's.
    """
    flat_in, flat_out = x.reshape(-1), out.reshape(-1)
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    for i in prange(flat_in.size):
        v = flat_in[i]
        neg = min(v, zero)
        y = max(v, zero) + alpha * (_exp_nonpositive(neg) - one)
        flat_out[i] = v if v != v else y  # NaN stays NaN (the polynomial would not promise it)


def elu(x, alpha=1.0):
    """ELU in one parallel pass (see :func:`encodec_np.ops.elu`)."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    _elu(x, x.dtype.type(alpha), out)
    return out


# --------------------------------------------------------------------------- GroupNorm(1, C)
@njit(cache=True, fastmath={"reassoc"})
def _moments(row, shift):
    """``(sum_t d, sum_t d^2)`` of ``d = row[t] - shift`` in float64, in one pass.

    Reassociation lets LLVM keep one partial sum per vector lane: the order
    then depends on the length alone (and on the CPU's vector width), the same
    for every batch, chunking and thread count. No NaN is assumed away.
    """
    s = 0.0
    q = 0.0
    for t in range(row.size):
        d = np.float64(row[t]) - shift
        s += d
        q += d * d
    return s, q


@njit(parallel=True, cache=True)
def _group_norm(x, weight, bias, eps, out):
    """Per item: mean and variance over (C, T) in float64, then the affine map.

    The moments are taken about an estimate of the mean (that of the item's
    first 256 samples), so ``E[d^2] - E[d]^2`` does not cancel: a signal's
    offset goes into the shift, not into the squares. One pass over the data
    instead of two.
    """
    b_size, channels, length = x.shape
    centres = np.empty(b_size)
    for b in range(b_size):
        head = x[b, 0, :min(length, 256)]
        centres[b] = 0.0
        for t in range(head.size):
            centres[b] += np.float64(head[t])
        centres[b] /= head.size
    sums = np.zeros((b_size, channels))
    squares = np.zeros((b_size, channels))
    for row in prange(b_size * channels):
        b, c = row // channels, row % channels
        sums[b, c], squares[b, c] = _moments(x[b, c], centres[b])
    n = channels * length
    for row in prange(b_size * channels):
        b, c = row // channels, row % channels
        offset = sums[b].sum() / n
        var = max(squares[b].sum() / n - offset * offset, 0.0)
        inv = 1.0 / math.sqrt(var + eps)
        scale = weight[c] * inv
        shift = bias[c] - (centres[b] + offset) * scale
        for t in range(length):
            out[b, c, t] = x[b, c, t] * scale + shift


def group_norm(x, weight, bias, eps=1e-5):
    """``GroupNorm(1, C)`` (see :func:`encodec_np.ops.group_norm`): x [B, C, T] → [B, C, T]."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    if x.size == 0:
        return out
    _group_norm(x, np.ascontiguousarray(weight, dtype=x.dtype), np.ascontiguousarray(bias, dtype=x.dtype),
                eps, out)
    return out


# --------------------------------------------------------------------------- LSTM
@njit(cache=True, inline="always")
def _sigmoid_f32(v):
    """exp of ``-|v|`` only: ``1 / (1 + e)`` and ``e / (1 + e)`` are both accurate and never overflow."""
    e = _exp_nonpositive_f32(-abs(v))
    r = np.float32(1.0) / (np.float32(1.0) + e)
    return _select(v >= 0, r, e * r)


@njit(cache=True, inline="always")
def _tanh_f32(v):
    """Cephes ``tanhf`` (within 2 ulp) over :func:`_exp_nonpositive_f32`.

    An odd polynomial below 0.625, where ``1 - 2e / (1 + e)`` would cancel;
    that, with ``e = exp(-2|v|)``, above.
    """
    a = abs(v)
    z = a * a
    small = ((((np.float32(-5.70498872745e-3) * z + np.float32(2.06390887954e-2)) * z
               - np.float32(5.37397155531e-2)) * z + np.float32(1.33314422036e-1)) * z
             - np.float32(3.33332819422e-1)) * z * a + a
    e = _exp_nonpositive_f32(np.float32(-2.0) * a)
    large = np.float32(1.0) - np.float32(2.0) * e / (np.float32(1.0) + e)
    t = _select(a < np.float32(0.625), small, large)
    return _select(v >= 0, t, -t)


@njit(cache=True, inline="always")
def _sigmoid_f64(v):
    return 1.0 / (1.0 + math.exp(-v))


#: The LSTM's gate functions (float32: the two above; float64: libm).
_sigmoid = _float32_fast(_sigmoid_f32, _sigmoid_f64)
_tanh = _float32_fast(_tanh_f32, math.tanh)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _gate_dots(w, j, hidden, h):
    """The four gate rows ``j, H + j, 2H + j, 3H + j`` of ``w [4H, H]`` dotted with ``h [H]``, in one pass.

    Reassociation lets LLVM vectorize the sums; their order then depends on
    ``H`` alone, the same at every step and for every item (no NaN checks here).
    """
    zero = h.dtype.type(0)
    s0 = s1 = s2 = s3 = zero
    for k in range(hidden):
        v = h[k]
        s0 += w[j, k] * v
        s1 += w[hidden + j, k] * v
        s2 += w[2 * hidden + j, k] * v
        s3 += w[3 * hidden + j, k] * v
    return s0, s1, s2, s3


@intrinsic
def _fetch_add(typingctx, counters, index):
    """``counters[index] += 1`` atomically (sequentially consistent); returns the value before."""
    if not _is_counter(counters, index):
        return None

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature, args)
        return builder.atomic_rmw("add", ptr, ir.Constant(ir.IntType(64), 1), "seq_cst")

    return types.int64(counters, index), codegen


@intrinsic
def _load_acquire(typingctx, counters, index):
    """``counters[index]``, read atomically with acquire order (what its last writer wrote before is visible)."""
    if not _is_counter(counters, index):
        return None

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_element_pointer(context, builder, signature, args), "acquire", 8)

    return types.int64(counters, index), codegen


def _is_counter(counters, index) -> bool:
    """Whether the intrinsics below accept these numba types: an int64 array and an integer index."""
    return isinstance(counters, types.Array) and counters.dtype == types.int64 and isinstance(index, types.Integer)


def _element_pointer(context, builder, signature, args):
    array_type, index_type = signature.args
    array = context.make_array(array_type)(context, builder, args[0])
    index = context.cast(builder, args[1], index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, array_type, array, [index])


@njit(parallel=True, cache=True)
def _lstm_recurrence(gates, w_hh, h, c, out, n_workers, chunk, claims, done):
    """Recurrence of one layer, its steps inside one parallel region (not a region per step).

    gates : [B, T, 4H] input projection plus both biases; w_hh : [4H, H];
    h, c : [B, H] initial state, updated in place; out : [B, T, H];
    claims : [T * n_workers] and done : [T] int64 zeros.

    Each step's hidden units are cut into chunks of ``chunk`` units, computed
    for every item (a unit's four weight rows are read once per step for the
    whole batch). Worker ``p`` first claims the chunks of its own share (so on
    each core the same weight rows stay in cache from step to step), then
    helps with the others. Odd steps walk a share backwards, so they begin on
    the rows the step before ended on, still in cache when a share's weights do
    not fit. A step starts once every chunk of the step before is
    done. Claims are atomic counters, so a worker that never gets a thread of
    its own (fewer threads than workers) costs no deadlock: whoever runs does
    the work. A unit's arithmetic does not depend on who computes it: the bits
    are the same for any worker count.
    """
    n_items, steps, four_h = gates.shape
    hidden = four_h // 4
    n_chunks = (hidden + chunk - 1) // chunk
    share_size = (n_chunks + n_workers - 1) // n_workers
    for p in prange(n_workers):
        pre = np.empty((n_items, 4, chunk), gates.dtype)  # one piece's pre-activations, per worker
        for t in range(steps):
            if t > 0:
                while _load_acquire(done, t - 1) < n_chunks:
                    pass
            for s in range(n_workers):
                share = (p + s) % n_workers
                first = share * share_size
                count = min(share_size, n_chunks - first)
                while True:
                    k = _fetch_add(claims, t * n_workers + share)
                    if k >= count:
                        break
                    piece = first + (k if t % 2 == 0 else count - 1 - k)
                    lo = piece * chunk
                    n = min(hidden, lo + chunk) - lo
                    for u in range(n):
                        for b in range(n_items):
                            g = gates[b, t]
                            s_i, s_f, s_g, s_o = _gate_dots(w_hh, lo + u, hidden, h[b] if t == 0 else out[b, t - 1])
                            pre[b, 0, u] = g[lo + u] + s_i
                            pre[b, 1, u] = g[hidden + lo + u] + s_f
                            pre[b, 2, u] = g[2 * hidden + lo + u] + s_g
                            pre[b, 3, u] = g[3 * hidden + lo + u] + s_o
                    # The gates of the whole piece in one loop without calls, so LLVM vectorises it.
                    for b in range(n_items):
                        cb, ob, pb = c[b, lo:lo + n], out[b, t, lo:lo + n], pre[b]
                        for u in range(n):
                            cb[u] = _sigmoid(pb[1, u]) * cb[u] + _sigmoid(pb[0, u]) * _tanh(pb[2, u])
                            ob[u] = _sigmoid(pb[3, u]) * _tanh(cb[u])
                    _fetch_add(done, t)
    if steps > 0:
        h[:] = out[:, steps - 1]


#: Hidden units per claimed piece of a step (32 units of a 512-wide LSTM: 256 KiB of weights).
LSTM_CHUNK = 32


def lstm(x, layers, state=None):
    """Multi-layer LSTM (see :func:`encodec_np.ops.lstm`): x [B, C, T] → ([B, H, T], state)."""
    dtype = x.dtype
    seq = x
    batch, _, steps = x.shape
    new_state = []
    for li, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        hidden = w_hh.shape[1]
        if state is None:
            h = np.zeros((batch, hidden), dtype=dtype)
            c = np.zeros_like(h)
        else:
            h, c = (np.array(s, dtype=dtype) for s in state[li])
        # The input projection of every step: a 1-tap conv, [B, 4H, T].
        channels = seq.shape[1]
        src = np.zeros((batch, channels, _source_length(steps, 0)), dtype)
        src[..., :steps] = seq
        gates = _run(src, w_ih, (b_ih + b_hh).astype(dtype), np.arange(channels, dtype=np.int64),
                     np.zeros(channels, np.int64), steps, _as_is)
        out = np.empty((batch, steps, hidden), dtype=dtype)
        n_chunks = -(-hidden // LSTM_CHUNK)
        # Workers spin while they wait for a step: never more of them than cores.
        workers = max(1, min(numba.get_num_threads(), available_cores(), n_chunks))
        _lstm_recurrence(np.ascontiguousarray(gates.transpose(0, 2, 1)), np.ascontiguousarray(w_hh, dtype=dtype),
                         h, c, out, workers, LSTM_CHUNK, np.zeros(steps * workers, np.int64),
                         np.zeros(steps, np.int64))
        new_state.append((h, c))
        seq = out.transpose(0, 2, 1)
    return np.ascontiguousarray(seq), new_state


# --------------------------------------------------------------------------- RVQ
@njit(cache=True)
def _squared_norms(rows):
    """``sum_d rows[n, d] ** 2`` per row, summed in ``d`` order."""
    out = np.empty(rows.shape[0], rows.dtype)
    for n in range(rows.shape[0]):
        acc = rows.dtype.type(0)
        for d in range(rows.shape[1]):
            acc += rows[n, d] * rows[n, d]
        out[n] = acc
    return out


@njit(parallel=True, cache=True)
def _assign(residual, products, x_sq, e_sq, codebook, codes):
    """Per row: first index minimising ``(|x|^2 - 2 x.e) + |e|^2`` (the official score), then subtract that code."""
    n, bins = products.shape
    for row in prange(n):
        best = 0
        best_score = (x_sq[row] - 2 * products[row, 0]) + e_sq[0]
        for j in range(1, bins):
            score = (x_sq[row] - 2 * products[row, j]) + e_sq[j]
            if score < best_score:
                best_score = score
                best = j
        codes[row] = best
        for d in range(residual.shape[1]):
            residual[row, d] -= codebook[best, d]


def _codebook_tables(codebooks):
    """Per codebook of ``codebooks [Q, bins, D]``: ``(book^T as a kernel source [1, D, L], |e|^2 [bins])``."""
    bins, dim = codebooks.shape[1:]
    tables = []
    for book in codebooks:
        src = np.zeros((1, dim, _source_length(bins, 0)), codebooks.dtype)
        src[0, :, :bins] = book.T
        tables.append((src, _squared_norms(np.ascontiguousarray(book))))
    return tables


def rvq_encode(x, codebooks):
    """Residual VQ (see :func:`encodec_np.ops.rvq_encode`): x [N, D] → codes [Q, N] int64.

    The products ``x . e`` are a 1-tap conv with the frames as output channels
    and the codes as time: each sums over ``D`` in order, whatever ``N``.
    """
    residual = np.array(x, copy=True, order="C")
    n, dim = residual.shape
    bins = codebooks.shape[1]
    codes = np.empty((codebooks.shape[0], n), dtype=np.int64)
    rows, shifts = np.arange(dim, dtype=np.int64), np.zeros(dim, np.int64)
    for q, (src, e_sq) in enumerate(memoised(_codebook_tables, residual.dtype, codebooks)):
        products = _run(src, residual, None, rows, shifts, bins)[0]
        book = np.ascontiguousarray(codebooks[q], dtype=residual.dtype)
        _assign(residual, products, _squared_norms(residual), e_sq, book, codes[q])
    return codes


def nearest_code(x, codebook):
    """Nearest codebook row per row of x (see :func:`encodec_np.ops.nearest_code`)."""
    return rvq_encode(x, codebook[None])[0]


# --------------------------------------------------------------------------- threads
@contextmanager
def threads(count: int | None = None):
    """Run with ``count`` Numba threads (default: all) and single-threaded BLAS.

    No kernel here calls BLAS; the cap keeps NumPy's own products (outside the
    kernels) from spinning a second thread pool against Numba's.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(min(count or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS))
    try:
        with blas_limits(1):
            yield
    finally:
        numba.set_num_threads(previous)
