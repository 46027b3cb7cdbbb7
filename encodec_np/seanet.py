"""SEANet encoder and decoder as explicit layer lists over a flat parameter dict.

Each layer knows its official parameter prefix (``encoder.model.N`` ...), its
shapes, and how to run itself with a backend's ops. The layer lists mirror
``encodec.modules.seanet`` index for index, so ``encoder.model.13`` is the
encoder LSTM here as in Meta's checkpoint::

    encoder: conv k7 ─ [ResBlock ─ ELU ─ conv k=2r, stride r] x 4 ─ LSTM ─ ELU ─ conv k7
    decoder: conv k7 ─ LSTM ─ [ELU ─ convtr k=2r, stride r ─ ResBlock] x 4 ─ ELU ─ conv k7
    ResBlock(x) = shortcut(x) + conv1x1(ELU(conv_k3(ELU(x))))

Parameters are stored with weight norm already folded:
``{prefix}.conv.conv.weight`` ``[C_out, C_in, K]``, ``{prefix}.conv.conv.bias``,
``{prefix}.conv.norm.weight|bias`` (GroupNorm), ``{prefix}.convtr.convtr.weight``
``[C_in, C_out, K]``, ``{prefix}.lstm.weight_ih_l{i}`` ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import SEANetConfig

Trace = Callable[[str, np.ndarray], None]


@dataclass(frozen=True)
class Conv:
    """Official ``SConv1d``: padding rule, conv, optional GroupNorm."""

    name: str
    c_in: int
    c_out: int
    kernel_size: int
    stride: int = 1
    dilation: int = 1
    causal: bool = True
    pad_mode: str = "reflect"
    group_norm: bool = False

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter name this layer reads, with its expected shape."""
        p = f"{self.name}.conv."
        shapes = {p + "conv.weight": (self.c_out, self.c_in, self.kernel_size), p + "conv.bias": (self.c_out,)}
        if self.group_norm:
            shapes.update({p + "norm.weight": (self.c_out,), p + "norm.bias": (self.c_out,)})
        return shapes

    def __call__(self, x, params, ops):
        """``x [B, c_in, T]`` → ``[B, c_out, ceil(T / stride)]`` (see :func:`run_layers`)."""
        p = f"{self.name}.conv."
        padding = ops.conv_padding(x.shape[2], self.kernel_size, self.stride, self.dilation, self.causal)
        y = ops.padded_conv1d(x, params[p + "conv.weight"], params[p + "conv.bias"], self.stride,
                              self.dilation, padding, self.pad_mode)
        if self.group_norm:
            y = ops.group_norm(y, params[p + "norm.weight"], params[p + "norm.bias"])
        return y


@dataclass(frozen=True)
class ConvTranspose:
    """Official ``SConvTranspose1d``: transposed conv, optional GroupNorm, then trim.

    The norm sees the untrimmed output, as in the official model.
    """

    name: str
    c_in: int
    c_out: int
    kernel_size: int
    stride: int
    causal: bool = True
    trim_right_ratio: float = 1.0
    group_norm: bool = False

    def param_shapes(self):
        """Every parameter name this layer reads, with its expected shape."""
        p = f"{self.name}.convtr."
        shapes = {p + "convtr.weight": (self.c_in, self.c_out, self.kernel_size), p + "convtr.bias": (self.c_out,)}
        if self.group_norm:
            shapes.update({p + "norm.weight": (self.c_out,), p + "norm.bias": (self.c_out,)})
        return shapes

    def trim(self) -> tuple[int, int]:
        """(left, right) samples removed after the transposed conv."""
        padding_total = self.kernel_size - self.stride
        if self.causal:
            right = int(np.ceil(padding_total * self.trim_right_ratio))
        else:
            right = padding_total // 2
        return padding_total - right, right

    def __call__(self, x, params, ops):
        """``x [B, c_in, T]`` → ``[B, c_out, T * stride]`` (see :func:`run_layers`)."""
        p = f"{self.name}.convtr."
        y = ops.conv_transpose1d(x, params[p + "convtr.weight"], params[p + "convtr.bias"], self.stride)
        if self.group_norm:
            y = ops.group_norm(y, params[p + "norm.weight"], params[p + "norm.bias"])
        return ops.unpad1d(y, *self.trim())


@dataclass(frozen=True)
class ELU:
    """ELU activation (no parameters)."""

    name: str
    alpha: float = 1.0

    def param_shapes(self):
        """No parameters: an empty dict."""
        return {}

    def __call__(self, x, params, ops):
        """``ops.elu(x, alpha)``: any shape, the same shape out (see :func:`run_layers`)."""
        return ops.elu(x, self.alpha)


@dataclass(frozen=True)
class LSTM:
    """Official ``SLSTM``: ``y = lstm(x) + x`` in convolution layout, zero initial state."""

    name: str
    dim: int
    num_layers: int = 2

    def param_shapes(self):
        """Every parameter name this layer reads, with its expected shape."""
        shapes = {}
        for i in range(self.num_layers):
            p = f"{self.name}.lstm."
            shapes[p + f"weight_ih_l{i}"] = (4 * self.dim, self.dim)
            shapes[p + f"weight_hh_l{i}"] = (4 * self.dim, self.dim)
            shapes[p + f"bias_ih_l{i}"] = (4 * self.dim,)
            shapes[p + f"bias_hh_l{i}"] = (4 * self.dim,)
        return shapes

    def weights(self, params):
        """The ``layers`` argument of the backend's ``lstm``.

        Parameters
        ----------
        params : dict of str → ndarray
            The model's parameters, by official name.

        Returns
        -------
        list of (w_ih [4H, H], w_hh [4H, H], b_ih [4H], b_hh [4H])
            One tuple per layer, ``H = dim``.
        """
        p = f"{self.name}.lstm."
        return [(params[p + f"weight_ih_l{i}"], params[p + f"weight_hh_l{i}"],
                 params[p + f"bias_ih_l{i}"], params[p + f"bias_hh_l{i}"]) for i in range(self.num_layers)]

    def __call__(self, x, params, ops):
        """``x [B, dim, T]`` → ``lstm(x) + x`` ``[B, dim, T]`` (see :func:`run_layers`)."""
        y, _ = ops.lstm(x, self.weights(params))
        return ops.add(y, x)


@dataclass(frozen=True)
class ResBlock:
    """``SEANetResnetBlock``: ``shortcut(x) + block(x)``; ``shortcut`` is None for identity."""

    name: str
    block: tuple
    shortcut: Conv | None

    def param_shapes(self):
        """Every parameter name the block and the shortcut read, with its expected shape."""
        shapes = {}
        for layer in self.block + ((self.shortcut,) if self.shortcut else ()):
            shapes.update(layer.param_shapes())
        return shapes

    def __call__(self, x, params, ops, trace=None):
        """``x [B, dim, T]`` → ``[B, dim, T]``; ``trace`` also sees each layer of the block (see :func:`run_layers`)."""
        y = x
        for layer in self.block:
            y = layer(y, params, ops)
            if trace is not None:
                trace(layer.name, y)
        skip = x if self.shortcut is None else self.shortcut(x, params, ops)
        return ops.add(skip, y)


def _res_block(cfg: SEANetConfig, name: str, dim: int, dilation: int) -> ResBlock:
    hidden = dim // cfg.compress
    conv = dict(causal=cfg.causal, pad_mode=cfg.pad_mode, group_norm=cfg.norm == "time_group_norm")
    block = (ELU(f"{name}.block.0"),
             Conv(f"{name}.block.1", dim, hidden, cfg.residual_kernel_size, dilation=dilation, **conv),
             ELU(f"{name}.block.2"),
             Conv(f"{name}.block.3", hidden, dim, 1, **conv))
    shortcut = None if cfg.true_skip else Conv(f"{name}.shortcut", dim, dim, 1, **conv)
    return ResBlock(name, block, shortcut)


def encoder_layers(cfg: SEANetConfig) -> list:
    """The encoder as the official ``SEANetEncoder.model`` sequence.

    Maps audio ``[B, channels, T]`` to embeddings ``[B, dimension, ceil(T / hop)]``.

    Parameters
    ----------
    cfg : SEANetConfig

    Returns
    -------
    list
        The layers for :func:`run_layers`, each named ``encoder.model.{i}`` as in Meta's checkpoint.
    """
    conv = dict(causal=cfg.causal, pad_mode=cfg.pad_mode, group_norm=cfg.norm == "time_group_norm")
    layers: list = []

    def name():
        return f"encoder.model.{len(layers)}"

    mult = 1
    layers.append(Conv(name(), cfg.channels, cfg.n_filters, cfg.kernel_size, **conv))
    for ratio in reversed(cfg.ratios):
        dim = mult * cfg.n_filters
        for j in range(cfg.n_residual_layers):
            layers.append(_res_block(cfg, name(), dim, cfg.dilation_base ** j))
        layers.append(ELU(name()))
        layers.append(Conv(name(), dim, 2 * dim, 2 * ratio, stride=ratio, **conv))
        mult *= 2
    if cfg.lstm:
        layers.append(LSTM(name(), mult * cfg.n_filters, cfg.lstm))
    layers.append(ELU(name()))
    layers.append(Conv(name(), mult * cfg.n_filters, cfg.dimension, cfg.last_kernel_size, **conv))
    return layers


def decoder_layers(cfg: SEANetConfig) -> list:
    """The decoder as the official ``SEANetDecoder.model`` sequence.

    Maps embeddings ``[B, dimension, F]`` to audio ``[B, channels, F * hop]``.

    Parameters
    ----------
    cfg : SEANetConfig
        The encoder's.

    Returns
    -------
    list
        Named ``decoder.model.{i}``.
    """
    group_norm = cfg.norm == "time_group_norm"
    conv = dict(causal=cfg.causal, pad_mode=cfg.pad_mode, group_norm=group_norm)
    layers: list = []

    def name():
        return f"decoder.model.{len(layers)}"

    mult = 2 ** len(cfg.ratios)
    layers.append(Conv(name(), cfg.dimension, mult * cfg.n_filters, cfg.kernel_size, **conv))
    if cfg.lstm:
        layers.append(LSTM(name(), mult * cfg.n_filters, cfg.lstm))
    for ratio in cfg.ratios:
        dim = mult * cfg.n_filters
        layers.append(ELU(name()))
        layers.append(ConvTranspose(name(), dim, dim // 2, 2 * ratio, ratio, causal=cfg.causal,
                                    trim_right_ratio=cfg.trim_right_ratio, group_norm=group_norm))
        for j in range(cfg.n_residual_layers):
            layers.append(_res_block(cfg, name(), dim // 2, cfg.dilation_base ** j))
        mult //= 2
    layers.append(ELU(name()))
    layers.append(Conv(name(), cfg.n_filters, cfg.channels, cfg.last_kernel_size, **conv))
    return layers


def run_layers(layers: list, x: np.ndarray, params: dict, ops, trace: Trace | None = None) -> np.ndarray:
    """Apply ``layers`` in order; ``trace(name, activation)`` sees every output.

    Parameters
    ----------
    layers : list
        From :func:`encoder_layers` or :func:`decoder_layers`; each is called as
        ``layer(x, params, ops)`` (a :class:`ResBlock` also gets ``trace``).
    x : [B, C, T]
        The first layer's input, a backend array.
    params : dict of str → ndarray
        The model's parameters, by official name (see :func:`param_shapes`).
    ops : Backend
        The backend's ops (:class:`encodec_np.backend.Backend`).
    trace : callable, optional
        ``trace(layer_name, activation)`` after each layer (residual blocks: each inner layer too).

    Returns
    -------
    The last layer's output, a backend array.
    """
    for layer in layers:
        # A residual block also reports the layers of its branch; the others have nothing inside.
        x = layer(x, params, ops, trace) if isinstance(layer, ResBlock) else layer(x, params, ops)
        if trace is not None:
            trace(layer.name, x)
    return x


def param_shapes(layers: list) -> dict[str, tuple[int, ...]]:
    """Every parameter name the layers read, with its expected shape.

    Parameters
    ----------
    layers : list
        From :func:`encoder_layers` or :func:`decoder_layers`.

    Returns
    -------
    dict of str → tuple of int
    """
    shapes = {}
    for layer in layers:
        shapes.update(layer.param_shapes())
    return shapes
