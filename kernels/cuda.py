"""numba.cuda kernels: the ``cuda`` backend.

The op names and signatures of :mod:`encodec_np.ops`, with one difference:
every op returns a *device* array, and accepts NumPy or device arrays, so
activations stay in GPU memory from layer to layer. The model uploads the
audio once (:func:`to_device`) and downloads the codes or the audio once
(:func:`to_host`); weights are NumPy arrays, uploaded on first use and cached
while the host array lives (replace a weight array, don't modify it in place).

Every kernel is a grid-stride loop in which one thread owns each output
element (no atomics, no two threads writing one address), so any launch
configuration computes the same result; :data:`THREADS` and
:data:`MAX_BLOCKS` only set the parallelism. GroupNorm and the RVQ search
reduce within one block per row. Float32 data is computed in float32
(constants are cast to the array's dtype: a bare ``1.0`` would promote to
float64); GroupNorm accumulates its statistics in float64, as the CPU
backend does. Kernels are written for clarity first: one thread per output
sample, not tiled for shared memory.

``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) runs the same
kernels in numba's CUDA simulator, Python threads standing for GPU threads:
that is how the tests check them on machines without a GPU.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64, int64
from numba.core import config as _numba_config

from encodec_np import geometry
from encodec_np.backend import reference_fallback as __getattr__  # noqa: F401  the ops not specialised here
from encodec_np.kernels.memo import memoised as _cached

#: True when numba runs the CUDA simulator instead of a GPU.
SIMULATED = bool(_numba_config.ENABLE_CUDASIM)
#: Activations live on the device: the model keeps them there between ops.
ON_DEVICE = True
#: Threads per block: a power of two (the block reductions halve it) up to _MAX_THREADS.
#: The simulator spawns a Python thread per GPU thread, so it gets few.
THREADS = 32 if SIMULATED else 256
#: Blocks per launch at most; grid-stride loops cover any remaining work.
MAX_BLOCKS = 2 if SIMULATED else 1 << 15
_MAX_THREADS = 1024  # size of the shared arrays of the reductions

# The padding rule, compiled for the GPU from its one source (numba's cache=True
# watches this file only: after changing encodec_np/geometry.py, clear the kernel cache).
_MODES = geometry.MODES
_source_index = cuda.jit(device=True)(geometry.source_index)


@cuda.jit(device=True)
def _unravel(i, rows, cols):
    """(a, r, c) of flat index ``i`` into a C-ordered [A, rows, cols] array."""
    return i // (rows * cols), (i // cols) % rows, i % cols


def _launch(kernel, work: int, *args) -> None:
    """Run ``kernel`` with enough threads for ``work`` items (at most MAX_BLOCKS blocks)."""
    blocks = max(1, min(-(-work // THREADS), MAX_BLOCKS))
    kernel[blocks, THREADS](*args)


# --------------------------------------------------------------------------- host <-> device
def to_device(x):
    """``x`` as a C-contiguous device array: NumPy arrays are uploaded, device arrays pass through."""
    if isinstance(x, np.ndarray) or not hasattr(x, "copy_to_host"):
        return _upload(x)
    if not x.is_c_contiguous():
        raise ValueError(f"device array of shape {x.shape} is not C-contiguous; this backend's ops "
                         "take and return contiguous arrays (copy it to the host and back)")
    return x


def to_host(x) -> np.ndarray:
    """A NumPy copy of a device array (NumPy arrays are returned as they are)."""
    return x if isinstance(x, np.ndarray) else x.copy_to_host()


def _upload(a, dtype=None):
    """``a`` (as ``dtype``) on the device, with the standard C strides of its shape.

    NumPy calls an array C-contiguous whatever the strides of its size-1 axes
    (``w[:, :, None]``, a transpose with one bin), and ``cuda.to_device`` keeps them;
    numba-cuda on a real GPU then sees a non-contiguous array (seen on an H200).
    """
    a = np.asarray(a, dtype)
    standard = tuple(a.itemsize * math.prod(a.shape[i + 1:]) for i in range(a.ndim))
    if a.strides != standard:
        a = np.array(a, order="C", copy=True)
    return cuda.to_device(a)


@cuda.jit(cache=True)
def _fill(out, value):
    """out[:] = value over a flat array [N]."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


def _zeros(shape: tuple, dtype):
    """A zero device array, made on the device (no transfer)."""
    out = cuda.device_array(shape, dtype)
    _launch(_fill, out.size, out.reshape(out.size), np.dtype(dtype).type(0))
    return out


def _bias(bias, c_out: int, dtype):
    """The bias on the device; zeros for None."""
    return _zeros((c_out,), dtype) if bias is None else _cached(_upload, dtype, bias)


# --------------------------------------------------------------------------- padding
@cuda.jit(cache=True)
def _pad(x, left, extended, mode, out):
    """out[r, t] = padded(x)[r, t]: ``left`` samples of padding first (a negative ``left`` trims).

    x : [R, T]; out : [R, T']; ``mode`` 0 constant, 1 reflect, 2 replicate
    (see ``_source_index``; ``extended`` is the length reflect padding reflects over).
    """
    rows, length = x.shape
    n_out = out.shape[1]
    zero = x.dtype.type(0)
    for i in range(cuda.grid(1), rows * n_out, cuda.gridsize(1)):
        r = i // n_out
        src = _source_index(i - r * n_out, length, left, extended, mode)
        out[r, i - r * n_out] = x[r, src] if src >= 0 else zero


def _gather_time(x, left: int, n_out: int, mode: str):
    """[..., T] → [..., n_out] via :func:`_pad` on the rows view."""
    x, left = to_device(x), int(left)
    shape = tuple(x.shape)  # the simulator's shapes refuse negative indices
    length = shape[-1]
    rows = x.size // length if length else 0
    out = cuda.device_array(shape[:-1] + (n_out,), x.dtype)
    m = _MODES[mode]
    if out.size:
        _launch(_pad, out.size, x.reshape(rows, length), left,
                geometry.reflect_extent(length, left, n_out - length - left, m), m, out.reshape(rows, n_out))
    return out


def pad1d(x, left: int, right: int, mode: str = "constant"):
    """Pad the last axis (see :func:`encodec_np.ops.pad1d`): x [..., T] → [..., left + T + right]."""
    if left < 0 or right < 0:
        raise ValueError(f"padding must be non-negative, got ({left}, {right})")
    return _gather_time(x, left, tuple(x.shape)[-1] + left + right, mode)


def unpad1d(x, left: int, right: int):
    """Drop ``left``/``right`` samples of the last axis, as a contiguous copy: x [..., T] → [..., T']."""
    return _gather_time(x, -left, tuple(x.shape)[-1] - left - right, "constant")


# --------------------------------------------------------------------------- convolutions
@cuda.jit(cache=True)
def _conv(x, w, bias, stride, dilation, left, extended, mode, out):
    """out[b, o, t] = bias[o] + sum over c, k of w[o, c, k] * padded(x)[b, c, t * stride + k * dilation].

    x : [B, C_in, T]; w : [C_out, C_in, K]; out : [B, C_out, T']. The padding is
    read through ``_source_index``: no padded copy. Neighbouring threads take
    neighbouring t, so they share each weight and read x contiguously (stride 1).
    """
    c_in, length, kernel_size = x.shape[1], x.shape[2], w.shape[2]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        b, o, t = _unravel(i, out.shape[1], out.shape[2])
        acc = x.dtype.type(0)
        for k in range(kernel_size):
            src = _source_index(t * stride + k * dilation, length, left, extended, mode)
            if src >= 0:
                for c in range(c_in):
                    acc += w[o, c, k] * x[b, c, src]
        out[b, o, t] = acc + bias[o]


def _conv_on_device(x, w, bias, stride: int, dilation: int, left: int, right: int, mode: str):
    """Launch :func:`_conv` with device weights ``w`` [C_out, C_in, K] and ``bias`` [C_out]."""
    batch, _, length = x.shape
    span = (w.shape[2] - 1) * dilation + 1
    padded = length + left + right
    if padded < span:
        raise ValueError(f"input of length {padded} (padded) is shorter than the kernel span {span}")
    out = cuda.device_array((batch, w.shape[0], (padded - span) // stride + 1), x.dtype)
    m = _MODES[mode]
    _launch(_conv, out.size, x, w, bias, stride, dilation, left, geometry.reflect_extent(length, left, right, m), m, out)
    return out


def padded_conv1d(x, weight, bias=None, stride=1, dilation=1, padding=(0, 0), pad_mode="constant"):
    """Padded conv (see :func:`encodec_np.ops.padded_conv1d`): x [B, C_in, T] → [B, C_out, T'].

    weight : [C_out, C_in, K] and bias : [C_out] (NumPy, cached on the device).
    """
    x = to_device(x)
    return _conv_on_device(x, _cached(_upload, x.dtype, weight), _bias(bias, weight.shape[0], x.dtype),
                           int(stride), int(dilation), int(padding[0]), int(padding[1]), pad_mode)


def conv1d(x, weight, bias=None, stride=1, dilation=1):
    """Unpadded conv (see :func:`encodec_np.ops.conv1d`): x [B, C_in, T] → [B, C_out, T']."""
    return padded_conv1d(x, weight, bias, stride, dilation)


@cuda.jit(cache=True)
def _conv_transpose(x, w, bias, stride, out):
    """Transposed conv as a gather: out[b, o, p] = bias[o] + sum of x[b, c, t] * w[c, o, k] over p = t * stride + k.

    x : [B, C_in, T]; w : [C_in, C_out, K]; out : [B, C_out, (T - 1) * stride + K].
    Output p collects the taps k = p mod stride, + stride, ... with t = (p - k) / stride,
    so each thread sums its own contributions: no atomics.
    """
    c_in, t_in, kernel_size = x.shape[1], x.shape[2], w.shape[2]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        b, o, p = _unravel(i, out.shape[1], out.shape[2])
        acc = x.dtype.type(0)
        k, t = p % stride, p // stride
        while k < kernel_size and t >= 0:
            if t < t_in:
                for c in range(c_in):
                    acc += x[b, c, t] * w[c, o, k]
            k += stride
            t -= 1
        out[b, o, p] = acc + bias[o]


def conv_transpose1d(x, weight, bias=None, stride=1):
    """Transposed conv (see :func:`encodec_np.ops.conv_transpose1d`).

    x : [B, C_in, T]; weight : [C_in, C_out, K] → [B, C_out, (T - 1) * stride + K]
    """
    x = to_device(x)
    c_out, k = weight.shape[1], weight.shape[2]
    out = cuda.device_array((x.shape[0], c_out, (x.shape[2] - 1) * stride + k), x.dtype)
    _launch(_conv_transpose, out.size, x, _cached(_upload, x.dtype, weight), _bias(bias, c_out, x.dtype),
            int(stride), out)
    return out


# --------------------------------------------------------------------------- pointwise
@cuda.jit(cache=True)
def _elu(x, alpha, out):
    """out = x if x > 0 else alpha * expm1(x), over flat arrays [N]."""
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        out[i] = v if v > 0 else alpha * math.expm1(v)


def elu(x, alpha=1.0):
    """ELU (see :func:`encodec_np.ops.elu`): any shape, same shape out."""
    x = to_device(x)
    out = cuda.device_array(x.shape, x.dtype)
    _launch(_elu, x.size, x.reshape(x.size), x.dtype.type(alpha), out.reshape(x.size))
    return out


@cuda.jit(cache=True)
def _add(a, b, out):
    """out = a + b over flat arrays [N]."""
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        out[i] = a[i] + b[i]


def add(a, b):
    """Element-wise ``a + b`` of equal shapes (the residual connections)."""
    a, b = to_device(a), to_device(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"add needs equal shapes and dtypes, got {a.shape} {a.dtype} and {b.shape} {b.dtype}")
    out = cuda.device_array(a.shape, a.dtype)
    _launch(_add, a.size, a.reshape(a.size), b.reshape(b.size), out.reshape(a.size))
    return out


@cuda.jit(cache=True)
def _swap(x, out):
    """out[a, n, m] = x[a, m, n]."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        a, n, m = _unravel(i, out.shape[1], out.shape[2])
        out[a, n, m] = x[a, m, n]


def swap_last_axes(x):
    """[A, M, N] → contiguous [A, N, M]: the conv layout [B, D, F] to the RVQ's rows [B, F, D] and back."""
    x = to_device(x)
    out = cuda.device_array((x.shape[0], x.shape[2], x.shape[1]), x.dtype)
    _launch(_swap, out.size, x, out)
    return out


# --------------------------------------------------------------------------- GroupNorm(1, C)
@cuda.jit(device=True)
def _block_sum(shared, value):
    """Sum of ``value`` over the block's threads (a power of two of them), returned to all."""
    tid = cuda.threadIdx.x
    shared[tid] = value
    cuda.syncthreads()
    half = cuda.blockDim.x // 2
    while half > 0:
        if tid < half:
            shared[tid] += shared[tid + half]
        cuda.syncthreads()
        half //= 2
    total = shared[0]
    cuda.syncthreads()  # every thread has read the total before the array is reused
    return total


@cuda.jit(cache=True)
def _group_norm(x, weight, bias, eps, out):
    """``GroupNorm(1, C)``, one block per item: mean, then variance, over (C, T) in float64; then the affine map.

    x, out : [B, C, T]; weight, bias : [C].
    """
    shared = cuda.shared.array(_MAX_THREADS, float64)
    channels, length = x.shape[1], x.shape[2]
    n = channels * length
    tid, step = cuda.threadIdx.x, cuda.blockDim.x
    for b in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
        acc = 0.0
        for e in range(tid, n, step):
            acc += x[b, e // length, e % length]
        mean = _block_sum(shared, acc) / n
        acc = 0.0
        for e in range(tid, n, step):
            d = x[b, e // length, e % length] - mean
            acc += d * d
        inv = 1.0 / math.sqrt(_block_sum(shared, acc) / n + eps)
        for e in range(tid, n, step):
            c = e // length
            scale = weight[c] * inv
            out[b, c, e % length] = x[b, c, e % length] * scale + (bias[c] - mean * scale)


def group_norm(x, weight, bias, eps=1e-5):
    """``GroupNorm(1, C)`` (see :func:`encodec_np.ops.group_norm`): x [B, C, T] → [B, C, T]."""
    x = to_device(x)
    out = cuda.device_array(x.shape, x.dtype)
    _launch(_group_norm, x.shape[0] * THREADS, x, _cached(_upload, x.dtype, weight),
            _cached(_upload, x.dtype, bias), float(eps), out)
    return out


# --------------------------------------------------------------------------- LSTM
@cuda.jit(device=True)
def _sigmoid(v, one):
    return one / (one + math.exp(-v))


@cuda.jit(cache=True)
def _lstm_step(gates, w_hh_t, t, h_prev, h_next, c, out):
    """Step ``t`` of one LSTM layer; thread (b, j) owns hidden unit j of item b.

    gates : [B, 4H, T] input projection plus both biases (gate order i, f, g, o);
    w_hh_t : [H, 4H], the recurrent matrix transposed so that threads j, j + 1
    read neighbouring weights; h_prev : [B, H] → h_next : [B, H] (two buffers:
    no thread reads a value another is writing); c : [B, H] in place;
    out : [B, H, T] receives h at step t.
    """
    batch, hidden = h_prev.shape
    zero = h_prev.dtype.type(0)
    one = h_prev.dtype.type(1)
    for i in range(cuda.grid(1), batch * hidden, cuda.gridsize(1)):
        b = i // hidden
        j = i - b * hidden
        di = zero
        df = zero
        dg = zero
        do = zero
        for k in range(hidden):
            hk = h_prev[b, k]
            di += w_hh_t[k, j] * hk
            df += w_hh_t[k, hidden + j] * hk
            dg += w_hh_t[k, 2 * hidden + j] * hk
            do += w_hh_t[k, 3 * hidden + j] * hk
        c_new = (_sigmoid(gates[b, hidden + j, t] + df, one) * c[b, j]
                 + _sigmoid(gates[b, j, t] + di, one) * math.tanh(gates[b, 2 * hidden + j, t] + dg))
        h = _sigmoid(gates[b, 3 * hidden + j, t] + do, one) * math.tanh(c_new)
        c[b, j] = c_new
        h_next[b, j] = h
        out[b, j, t] = h


def _lstm_weights(w_ih, w_hh, b_ih, b_hh):
    """Device (w_ih as a 1x1 conv [4H, C, 1], b_ih + b_hh [4H], w_hh transposed [H, 4H])."""
    return _upload(w_ih[:, :, None]), _upload(b_ih + b_hh), _upload(w_hh.T)


def lstm(x, layers, state=None):
    """Multi-layer LSTM (see :func:`encodec_np.ops.lstm`), one kernel launch per time step.

    x : [B, C, T]; layers : list of (w_ih [4H, C], w_hh [4H, H], b_ih [4H], b_hh [4H]);
    state : list of (h [B, H], c [B, H]) or None for zeros.
    Returns y [B, H, T] and the final (h, c) of each layer, all on the device.
    """
    seq = to_device(x)
    batch, _, steps = seq.shape
    new_state = []
    for li, weights in enumerate(layers):
        w_in, b_in, w_rec_t = _cached(_lstm_weights, seq.dtype, *weights)
        hidden = w_rec_t.shape[0]
        # The input projection of every step at once: a 1x1 conv in the [B, C, T] layout.
        gates = _conv_on_device(seq, w_in, b_in, 1, 1, 0, 0, "constant")
        if state is None:
            h, c = _zeros((batch, hidden), seq.dtype), _zeros((batch, hidden), seq.dtype)
        else:  # copies: the caller's state is not modified
            h, c = (_upload(to_host(s), seq.dtype) for s in state[li])
        h_next = cuda.device_array_like(h)
        out = cuda.device_array((batch, hidden, steps), seq.dtype)
        for t in range(steps):
            _launch(_lstm_step, batch * hidden, gates, w_rec_t, t, h, h_next, c, out)
            h, h_next = h_next, h
        new_state.append((h, c))
        seq = out
    return seq, new_state


# --------------------------------------------------------------------------- RVQ
@cuda.jit(cache=True)
def _rvq_encode(residual, books_t, e_sq, codes):
    """Residual VQ, one block per row: for each layer the arg-min, then the residual update.

    residual : [N, D], the input, updated in place; books_t : [Q, D, bins] (transposed so
    that threads scanning bins j, j + 1 read neighbouring values); e_sq : [Q, bins] the
    codebook norms |e|^2 (computed by NumPy as in the reference); codes : [Q, N] int64.
    The score is the official ``(|x|^2 - 2 x.e) + |e|^2`` in the input dtype (``dot + dot``
    is ``2 * dot`` exactly, without a float64 constant); the first index wins a tie.
    """
    scores = cuda.shared.array(_MAX_THREADS, float64)
    best = cuda.shared.array(_MAX_THREADS, int64)
    tid, step = cuda.threadIdx.x, cuda.blockDim.x
    n_q, dim, bins = books_t.shape
    zero = residual.dtype.type(0)
    for row in range(cuda.blockIdx.x, residual.shape[0], cuda.gridDim.x):
        for q in range(n_q):
            x_sq = zero
            for d in range(dim):
                x_sq += residual[row, d] * residual[row, d]
            my_score = math.inf
            my_best = -1
            for j in range(tid, bins, step):  # ascending j and a strict < : the first index on ties
                dot = zero
                for d in range(dim):
                    dot += residual[row, d] * books_t[q, d, j]
                score = (x_sq - (dot + dot)) + e_sq[q, j]
                if my_best < 0 or score < my_score:
                    my_score = score
                    my_best = j
            scores[tid] = my_score
            best[tid] = my_best
            cuda.syncthreads()
            half = step // 2
            while half > 0:
                if tid < half:
                    other = best[tid + half]
                    if other >= 0 and (best[tid] < 0 or scores[tid + half] < scores[tid]
                                       or (scores[tid + half] == scores[tid] and other < best[tid])):
                        scores[tid] = scores[tid + half]
                        best[tid] = other
                cuda.syncthreads()
                half //= 2
            code = best[0]
            for d in range(tid, dim, step):
                residual[row, d] -= books_t[q, d, code]
            if tid == 0:
                codes[q, row] = code
            cuda.syncthreads()  # the residual is updated and best[0] read before the next layer


def _codebook_tables(codebooks):
    """Device (codebooks [Q, bins, D], transposed [Q, D, bins], norms [Q, bins] exactly as the reference)."""
    norms = np.stack([(book ** 2).sum(1) for book in codebooks])
    return _upload(codebooks), _upload(codebooks.transpose(0, 2, 1)), _upload(norms)


def rvq_encode(x, codebooks):
    """Residual VQ (see :func:`encodec_np.ops.rvq_encode`): x [N, D] → codes [Q, N] int64 (device).

    codebooks : [Q, bins, D] NumPy (cached on the device, per view).
    """
    x = to_device(x)
    _, books_t, e_sq = _cached(_codebook_tables, x.dtype, codebooks)
    residual = cuda.device_array_like(x)
    residual.copy_to_device(x)
    codes = cuda.device_array((codebooks.shape[0], x.shape[0]), np.int64)
    if x.shape[0]:
        _launch(_rvq_encode, x.shape[0] * THREADS, residual, books_t, e_sq, codes)
    return codes


def nearest_code(x, codebook):
    """Nearest codebook row per row (see :func:`encodec_np.ops.nearest_code`): x [N, D] → [N] (device)."""
    return rvq_encode(x, codebook[None])[0]


@cuda.jit(cache=True)
def _rvq_decode(codes, books, out):
    """out[n, d] = sum over q, in layer order from zero, of books[q, codes[q, n], d].

    codes : [Q, N] int64; books : [>= Q, bins, D]; out : [N, D]. The reference's
    order of additions, so the sums are identical.
    """
    dim = out.shape[1]
    zero = out.dtype.type(0)
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        n = i // dim
        d = i - n * dim
        acc = zero
        for q in range(codes.shape[0]):
            acc += books[q, codes[q, n], d]
        out[n, d] = acc


def rvq_decode(codes, codebooks):
    """Sum of the selected codebook vectors (see :func:`encodec_np.ops.rvq_decode`).

    codes : [Q, N] (NumPy or device); codebooks : [>= Q, bins, D] NumPy → [N, D] (device).
    """
    books = _cached(_codebook_tables, codebooks.dtype, codebooks)[0]
    codes = _upload(codes, np.int64) if isinstance(codes, np.ndarray) else codes
    out = cuda.device_array((codes.shape[1], codebooks.shape[2]), codebooks.dtype)
    _launch(_rvq_decode, out.size, codes, books, out)
    return out
