"""Reference operators in plain NumPy: the specification the kernels must meet.

Every function here is written for clarity, not speed; ``encodec_np.kernels``
provides faster twins with the same signatures. Shapes use ``B`` batch,
``C`` channels, ``T`` time, ``K`` kernel size, ``D`` code dimension.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


# --------------------------------------------------------------------------- padding
def extra_padding_for_conv1d(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Right padding that makes the last window of a strided conv full (official rule).

    Parameters
    ----------
    length : int
        Samples of the input.
    kernel_size, stride : int
    padding_total : int
        The conv's own padding, ``(K - 1) * dilation - (stride - 1)``.

    Returns
    -------
    int
        Samples to append on the right, beyond ``padding_total``.
    """
    n_frames = (length - kernel_size + padding_total) / stride + 1
    ideal_length = (math.ceil(n_frames) - 1) * stride + (kernel_size - padding_total)
    return ideal_length - length


def conv_padding(length: int, kernel_size: int, stride: int, dilation: int,
                 causal: bool) -> tuple[int, int]:
    """(left, right) padding of an official ``SConv1d`` for an input of ``length``.

    ``padding_total = (k - 1) * d - (s - 1)``; causal convs put it all on the
    left, others split it with the extra sample on the left; the extra
    padding that completes the last window always goes right.

    Parameters
    ----------
    length : int
        Samples of the input.
    kernel_size, stride, dilation : int
    causal : bool

    Returns
    -------
    (left, right) : tuple of int
    """
    padding_total = (kernel_size - 1) * dilation - (stride - 1)
    # The official SConv1d passes the undilated kernel size here; it only
    # matters for stride > 1 with dilation > 1, which no EnCodec model uses.
    extra = extra_padding_for_conv1d(length, kernel_size, stride, padding_total)
    if causal:
        return padding_total, extra
    right = padding_total // 2
    return padding_total - right, right + extra


def pad1d(x: np.ndarray, left: int, right: int, mode: str = "constant") -> np.ndarray:
    """Pad the last axis of ``x [..., T]`` by ``left``/``right`` samples.

    Reflect padding of an input no longer than the pad first appends zeros
    (``max_pad - T + 1``) and drops them again afterwards, as the official
    ``pad1d`` does, so tiny inputs never fail.

    Parameters
    ----------
    x : [..., T]
    left, right : int
        Non-negative; a negative one raises ``ValueError``.
    mode : str
        ``"reflect"``, ``"constant"`` (zeros; ``"zero"`` too) or ``"replicate"``.

    Returns
    -------
    [..., left + T + right]
    """
    if left < 0 or right < 0:
        raise ValueError(f"padding must be non-negative, got ({left}, {right})")
    widths = [(0, 0)] * (x.ndim - 1)
    if mode == "reflect":
        length = x.shape[-1]
        max_pad = max(left, right)
        extra = max_pad - length + 1 if length <= max_pad else 0
        if extra:
            x = np.pad(x, widths + [(0, extra)])
        padded = np.pad(x, widths + [(left, right)], mode="reflect")
        return padded[..., :padded.shape[-1] - extra]
    np_mode = {"constant": "constant", "zero": "constant", "replicate": "edge"}[mode]
    return np.pad(x, widths + [(left, right)], mode=np_mode)


def unpad1d(x: np.ndarray, left: int, right: int) -> np.ndarray:
    """Drop ``left``/``right`` samples from the last axis.

    Parameters
    ----------
    x : [..., T]
    left, right : int

    Returns
    -------
    [..., T - left - right]
        A view of ``x``.
    """
    return x[..., left:x.shape[-1] - right]


# --------------------------------------------------------------------------- convolutions
def conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
           stride: int = 1, dilation: int = 1) -> np.ndarray:
    """Unpadded 1-d convolution (cross-correlation, as ``torch.nn.functional.conv1d``).

    Parameters
    ----------
    x : [B, C_in, T]
    weight : [C_out, C_in, K]
    bias : [C_out] or None

    Returns
    -------
    y : [B, C_out, (T - (K - 1) * dilation - 1) // stride + 1]
    """
    c_out, c_in, k = weight.shape
    span = (k - 1) * dilation + 1
    if x.shape[-1] < span:
        raise ValueError(f"input of length {x.shape[-1]} is shorter than the kernel span {span}")
    # windows[b, c, t, j] = x[b, c, t * stride + j * dilation]
    windows = sliding_window_view(x, span, axis=-1)[:, :, ::stride, ::dilation]
    y = np.einsum("bctk,ock->bot", windows, weight, optimize=True)
    if bias is not None:
        y += bias[None, :, None]
    return y


def padded_conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int = 1,
                  dilation: int = 1, padding: tuple[int, int] = (0, 0), pad_mode: str = "constant") -> np.ndarray:
    """:func:`pad1d` then :func:`conv1d`: one op so that fast backends can fuse the padding.

    Parameters
    ----------
    x : [B, C_in, T]
    weight, bias, stride, dilation
        As for :func:`conv1d`.
    padding : (left, right)
        Samples added on each side of the time axis, by :func:`pad1d` with ``pad_mode``.
    pad_mode : str

    Returns
    -------
    y : [B, C_out, T']
        With ``T' = (left + T + right - (K - 1) * dilation - 1) // stride + 1``.
    """
    return conv1d(pad1d(x, padding[0], padding[1], pad_mode), weight, bias, stride, dilation)


def conv_transpose1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                     stride: int = 1) -> np.ndarray:
    """Unpadded transposed 1-d convolution (as ``torch.nn.functional.conv_transpose1d``).

    Parameters
    ----------
    x : [B, C_in, T]
    weight : [C_in, C_out, K]
    bias : [C_out] or None

    Returns
    -------
    y : [B, C_out, (T - 1) * stride + K]
    """
    c_in, c_out, k = weight.shape
    b, _, t = x.shape
    # contributions[b, o, j, t] = sum_i x[b, i, t] * w[i, o, j] lands on y[b, o, t * stride + j]
    contributions = np.einsum("bit,ioj->bojt", x, weight, optimize=True)
    y = np.zeros((b, c_out, (t - 1) * stride + k), dtype=x.dtype)
    for j in range(k):
        y[:, :, j:j + (t - 1) * stride + 1:stride] += contributions[:, :, j, :]
    if bias is not None:
        y += bias[None, :, None]
    return y


# --------------------------------------------------------------------------- pointwise & norms
def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """ELU: ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``, elementwise.

    Parameters
    ----------
    x : ndarray of any shape
    alpha : float

    Returns
    -------
    ndarray of ``x``'s shape
    """
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def group_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """``GroupNorm(1, C)``: normalise each item over channels and time together.

    Parameters
    ----------
    x : [B, C, T]
    weight, bias : [C]
        Per-channel affine transform after the normalisation.
    eps : float
        Added to the variance (biased, as PyTorch's).

    Returns
    -------
    [B, C, T]
    """
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    return y * weight[None, :, None] + bias[None, :, None]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` elementwise (the LSTM's gates).

    Parameters
    ----------
    x : ndarray
    """
    return 1.0 / (1.0 + np.exp(-x))


def lstm(x: np.ndarray, layers: list[tuple[np.ndarray, ...]],
         state: list[tuple[np.ndarray, np.ndarray]] | None = None
         ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Multi-layer unidirectional LSTM over the time axis (PyTorch ``nn.LSTM`` semantics).

    Parameters
    ----------
    x : [B, C, T]
        Input in convolution layout.
    layers : list of (w_ih [4H, C], w_hh [4H, H], b_ih [4H], b_hh [4H])
        Gate order i, f, g, o as PyTorch.
    state : list of (h [B, H], c [B, H]) per layer, or None for zeros.

    Returns
    -------
    y : [B, H, T]
        Output of the last layer (no skip connection).
    state : the final (h, c) of each layer.
    """
    seq = x.transpose(2, 0, 1)  # [T, B, C]
    new_state = []
    for li, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        hidden = w_hh.shape[1]
        if state is None:
            h = np.zeros((seq.shape[1], hidden), dtype=x.dtype)
            c = np.zeros_like(h)
        else:
            h, c = state[li]
        # Input projection for all steps at once, as one 2-d product (a 3-d matmul
        # would run T separate matrix-vector products).
        steps, batch = seq.shape[:2]
        gates_x = (seq.reshape(steps * batch, -1) @ w_ih.T + (b_ih + b_hh)).reshape(steps, batch, -1)
        out = np.empty((seq.shape[0], seq.shape[1], hidden), dtype=x.dtype)
        for t in range(seq.shape[0]):
            gates = gates_x[t] + h @ w_hh.T
            i, f, g, o = np.split(gates, 4, axis=-1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            out[t] = h
        new_state.append((h, c))
        seq = out
    return seq.transpose(1, 2, 0), new_state


# --------------------------------------------------------------------------- vector quantization
def code_distances(x: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Official RVQ score ``-(|x|^2 - 2 x.e + |e|^2)``; larger is nearer.

    Parameters
    ----------
    x : [N, D]
        Rows to quantize.
    codebook : [bins, D]

    Returns
    -------
    [N, bins]
        The score of every code ``e`` for every row.
    """
    return -((x ** 2).sum(1, keepdims=True) - 2 * (x @ codebook.T)
             + (codebook ** 2).sum(1)[None, :])


def nearest_code(x: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest codebook row for each row of ``x`` (first index on ties).

    Parameters
    ----------
    x : [N, D]
    codebook : [bins, D]

    Returns
    -------
    [N] int64
        The largest :func:`code_distances` score of each row.
    """
    return code_distances(x, codebook).argmax(axis=1).astype(np.int64)


def rvq_encode(x: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Residual vector quantization of ``x [N, D]`` with ``codebooks [Q, bins, D]``.

    Parameters
    ----------
    x : [N, D]
    codebooks : [Q, bins, D]

    Returns
    -------
    codes : [Q, N] int64
        Layer ``q`` quantizes what layers ``< q`` left (:func:`nearest_code`).
    """
    residual = x.copy()
    codes = np.empty((codebooks.shape[0], x.shape[0]), dtype=np.int64)
    for q, codebook in enumerate(codebooks):
        codes[q] = nearest_code(residual, codebook)
        residual = residual - codebook[codes[q]]
    return codes


def rvq_decode(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Sum of the selected codebook vectors in layer order.

    Parameters
    ----------
    codes : [Q, N] int
        As from :func:`rvq_encode`.
    codebooks : [>= Q, bins, D]
        Only the first ``Q`` are read.

    Returns
    -------
    [N, D]
        In the codebooks' dtype.
    """
    out = np.zeros((codes.shape[1], codebooks.shape[2]), dtype=codebooks.dtype)
    for q in range(codes.shape[0]):
        out = out + codebooks[q][codes[q]]
    return out


# --------------------------------------------------------------------------- array plumbing
# A device backend (``cuda``) keeps activations in accelerator memory between ops;
# the model crosses the boundary through these hooks. On the host they cost nothing.
#: Whether this backend's arrays live on a device (the model then skips the NumPy-only streaming path).
ON_DEVICE = False


def to_device(x: np.ndarray) -> np.ndarray:
    """The backend's array for ``x``: here ``x`` itself.

    Parameters
    ----------
    x : ndarray
    """
    return x


def to_host(x: np.ndarray) -> np.ndarray:
    """A NumPy array of a backend array: here ``x`` itself.

    Parameters
    ----------
    x : ndarray
        What :func:`to_device` or another op returned.
    """
    return x


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b``: the residual connections.

    Parameters
    ----------
    a, b : ndarray
        Of one shape.
    """
    return a + b


def swap_last_axes(x: np.ndarray) -> np.ndarray:
    """``[A, M, N]`` → contiguous ``[A, N, M]`` (conv layout ``[B, D, F]`` ↔ RVQ rows ``[B, F, D]``).

    Parameters
    ----------
    x : [A, M, N]
    """
    return np.ascontiguousarray(x.transpose(0, 2, 1))
