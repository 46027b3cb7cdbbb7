"""The entropy-coding language model of ``.ecdc`` files (``--lm``), in NumPy.

EnCodec can squeeze its codes further with a small transformer that predicts,
for every frame, a distribution over each codebook's next code given the
previous frames; an arithmetic coder (:mod:`encodec_np.format.arithmetic`) then
spends about ``-log2(p)`` bits per code. This module mirrors the official
``LMModel``:

* input at step ``t``: ``sum_k emb[k](1 + codes[k, t-1])``, row 0 at ``t = 0``;
* ``norm_in`` (LayerNorm), then a sinusoidal position embedding
  ``[cos(p / 10000**(i/(half-1))), sin(...)]`` for ``p = offset + t``;
* post-norm PyTorch ``TransformerEncoderLayer`` blocks (8-head self-attention,
  ``x = norm1(x + attn(x)); x = norm2(x + W2·gelu(W1·x))``, exact erf GELU);
* streaming memory: each layer remembers its last ``past_context`` *inputs*,
  starting from one zero vector that is attended to like any other entry; a
  query attends to that memory plus itself;
* one linear head per codebook and a softmax over the ``card`` codes.

:meth:`LMModel.step` is the fast path used for coding: it caches the projected
keys and values of the memory in a ring buffer, so a step costs a few
matrix-vector products. :meth:`LMModel.forward` mirrors the official
``forward(indices, states, offset)`` (layer-input states, any ``T``) for tests.

Everything runs in float32 like the official model (statistics, GELU, softmax
in float64, rounded once); probabilities match it to ~1e-6, not bit for bit,
which is what decides whether ``.ecdc`` LM files can be exchanged with the
official tool (see :func:`decode_codes`).

Decoding needs, at every step, the very probabilities the encoder saw, so
:meth:`LMModel.step` avoids everything whose last bits depend on the machine:
matrix-vector products use ``np.einsum`` (NumPy's own loops, built for the
wheel's baseline SIMD level, one thread) instead of BLAS (kernels chosen per
CPU, results that can change with the thread count), and exp/sin/cos are
polynomials of exactly rounded operations instead of libm/SVML. The same
NumPy and SciPy wheels on any x86-64 CPU therefore give identical bits.
"""
from __future__ import annotations

import io
import math
import os
import re
import typing as tp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

from ..errors import CheckpointError, EncodecError
from ..io.hub import pretrained_path
from ..io.torchfile import read_torch_state
from .arithmetic import (
    TOTAL_RANGE_BITS,
    ArithmeticCoder,
    ArithmeticDecoder,
    EntropyCodingError,
    build_stable_quantized_cdf,
    verify_stream,
)

__all__ = ["LMModel", "LMState", "load_lm", "lm_name_for", "encode_codes", "decode_codes",
           "LM_NAMES", "EntropyCodingError"]

#: Codec name → name of its pretrained LM (see :mod:`encodec_np.io.hub`).
LM_NAMES: dict[str, str] = {
    "encodec_24khz": "encodec_lm_24khz",
    "encodec_48khz": "encodec_lm_48khz",
}

# Frame rate of the codec an LM belongs to, by its number of codebooks: it sets
# past_context = int(3.5 * frame_rate) (262 steps at 24 kHz, 525 at 48 kHz).
_FRAME_RATE_BY_NQ = {32: 75, 16: 150}

_F32 = np.float32
_NOT_AN_LM = ("not an EnCodec LM state dict: expected emb.{k}.weight and transformer.layers.{i}.* "
              "tensors (is this the codec checkpoint instead of encodec_lm_*?)")


def lm_name_for(model_name: str) -> str:
    """Name of the pretrained LM for a codec: ``"encodec_24khz"`` → ``"encodec_lm_24khz"``.

    Parameters
    ----------
    model_name : str
        A codec's name.

    Raises
    ------
    EncodecError
        No LM exists for that codec (Meta trained LMs for the 24 and 48 kHz
        models only).
    """
    try:
        return LM_NAMES[model_name]
    except (KeyError, TypeError):
        raise EncodecError(f"no entropy-coding LM is available for model {model_name!r}; "
                           f"LMs exist for {', '.join(sorted(LM_NAMES))} only "
                           "(compress without the LM instead)") from None


# --------------------------------------------------------------------------- small ops
# The step path uses only these (see the module docstring on determinism).

def _mv(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``w @ x`` for ``w [M, N]``, ``x [N]`` without BLAS (see above)."""
    return np.einsum("ij,j->i", w, x)


_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01   # 32 significant bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_EXP_COEFFS = tuple(1.0 / math.factorial(n) for n in range(10, -1, -1))  # degree 10


def _exp(x: np.ndarray) -> np.ndarray:
    """``exp`` of float64 ``x <= 0`` to a relative 1e-12, the same bits on every IEEE machine.

    ``x = k·ln2 + r`` with ``|r| <= ln2/2``, a Taylor polynomial for ``e^r``,
    times ``2**k`` built from its bits: only exactly rounded operations.
    Inputs below -700 (``-inf`` included) give ``exp(-700) ≈ 1e-304``, which
    is 0 once a probability is rounded to float32.
    """
    x = np.maximum(x, -700.0)
    k = np.rint(x * _INV_LN2)
    r = x - k * _LN2_HI
    r -= k * _LN2_LO
    p = np.full_like(r, _EXP_COEFFS[0])
    for c in _EXP_COEFFS[1:]:
        p *= r
        p += c
    p *= ((k.astype(np.int64) + 1023) << 52).view(np.float64)   # exact: 2**k, k >= -1010
    return p


_PIO2_1 = 1.57079632673412561417e+00    # pi/2 in three parts (fdlibm): k * part is exact
_PIO2_2 = 6.07710050630396597660e-11    # for |k| < 2**20, i.e. phases below ~1.6e6
_PIO2_3 = 2.02226624879595063154e-21
_SIN_COEFFS = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(7, -1, -1))
_COS_COEFFS = tuple((-1) ** n / math.factorial(2 * n) for n in range(8, -1, -1))


def _sincos(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sin x, cos x)`` of float64 ``x`` to ~1e-15, from exactly rounded ops only."""
    k = np.rint(x * (2 / math.pi))
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3    # |r| <= pi/4
    r2 = r * r
    s = np.full_like(r, _SIN_COEFFS[0])
    for c in _SIN_COEFFS[1:]:
        s = s * r2 + c
    s = s * r
    c_ = np.full_like(r, _COS_COEFFS[0])
    for c in _COS_COEFFS[1:]:
        c_ = c_ * r2 + c
    quadrant = k.astype(np.int64) % 4
    sin = np.choose(quadrant, [s, c_, -s, -c_])
    cos = np.choose(quadrant, [c_, -s, -c_, s])
    return sin, cos


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis; statistics in float64, output float32."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=-1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=-1, keepdims=True)  # biased, as torch
    rstd = 1.0 / np.sqrt(var + eps)
    return ((x - mean.astype(_F32)) * rstd.astype(_F32)) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``x · Φ(x)`` (torch's default ``approximate='none'``)."""
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + erf(x64 / math.sqrt(2.0)))).astype(_F32)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax of float32 ``x`` computed in float64 (:func:`_exp`), returned as float32."""
    x = x.astype(np.float64)
    e = _exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(_F32)


# --------------------------------------------------------------------------- state
@dataclass
class LMState:
    """Streaming state of :meth:`LMModel.step` for one sequence (batch 1).

    ``keys[l]`` / ``values[l]`` are ring buffers ``[heads, past_context + 1,
    head_dim]`` of the projected memory of layer ``l``; ``count`` entries have
    been written so far (the initial zero vector included), the newest at slot
    ``(count - 1) % (past_context + 1)``. ``offset`` is the next position.
    """

    keys: list[np.ndarray]
    values: list[np.ndarray]
    count: int
    offset: int
    num_codebooks: int

    def copy(self) -> "LMState":
        """An independent copy (``step`` updates a state in place)."""
        return LMState([k.copy() for k in self.keys], [v.copy() for v in self.values],
                       self.count, self.offset, self.num_codebooks)


# --------------------------------------------------------------------------- model
class LMModel:
    """The official ``LMModel`` (EnCodec's entropy-coding transformer) in NumPy.

    Parameters
    ----------
    state : dict[str, np.ndarray]
        Official parameter names (``emb.{k}.weight``, ``transformer.*``,
        ``linears.{k}.*``), as in Meta's ``encodec_lm_*.th`` files.
    past_context : int
        Steps of memory per layer (``int(3.5 * frame_rate)`` for the official LMs).
    num_heads : int
        Attention heads (8; not recorded in the checkpoint).
    max_period : float
        Longest period of the position embedding (10000).
    eps : float
        LayerNorm epsilon (1e-5).

    Attributes
    ----------
    n_q, card, dim, num_layers, hidden, past_context, num_heads
    """

    def __init__(self, state: tp.Mapping[str, np.ndarray], *, past_context: int,
                 num_heads: int = 8, max_period: float = 10000.0, eps: float = 1e-5):
        state = {k: np.asarray(v) for k, v in state.items()}
        n_q = _count(state, r"emb\.(\d+)\.weight")
        num_layers = _count(state, r"transformer\.layers\.(\d+)\.self_attn\.in_proj_weight")
        if n_q == 0 or num_layers == 0:
            raise CheckpointError(_NOT_AN_LM)
        rows, dim = _get(state, "emb.0.weight").shape
        card = rows - 1
        if past_context < 1:
            raise EncodecError(f"past_context must be >= 1, got {past_context}")
        if dim % num_heads:
            raise EncodecError(f"model dimension {dim} is not divisible by {num_heads} heads")
        self.n_q, self.card, self.dim, self.num_layers = n_q, card, dim, num_layers
        self.past_context = int(past_context)
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.max_period = float(max_period)
        self.eps = float(eps)

        f32 = lambda name, shape: _get(state, name, shape).astype(_F32)  # noqa: E731
        self.emb = np.stack([f32(f"emb.{k}.weight", (card + 1, dim)) for k in range(n_q)])
        self.norm_in = (f32("transformer.norm_in.weight", (dim,)), f32("transformer.norm_in.bias", (dim,)))
        self.hidden = _get(state, "transformer.layers.0.linear1.weight").shape[0]
        self.layers = []
        for i in range(num_layers):
            p = f"transformer.layers.{i}."
            self.layers.append(dict(
                in_w=f32(p + "self_attn.in_proj_weight", (3 * dim, dim)),
                in_b=f32(p + "self_attn.in_proj_bias", (3 * dim,)),
                out_w=f32(p + "self_attn.out_proj.weight", (dim, dim)),
                out_b=f32(p + "self_attn.out_proj.bias", (dim,)),
                w1=f32(p + "linear1.weight", (self.hidden, dim)), b1=f32(p + "linear1.bias", (self.hidden,)),
                w2=f32(p + "linear2.weight", (dim, self.hidden)), b2=f32(p + "linear2.bias", (dim,)),
                n1=(f32(p + "norm1.weight", (dim,)), f32(p + "norm1.bias", (dim,))),
                n2=(f32(p + "norm2.weight", (dim,)), f32(p + "norm2.bias", (dim,))),
            ))
        # All heads as one [n_q * card, dim] matrix: the first K codebooks are a
        # contiguous row block, so a step is one matrix-vector product.
        self.head_w = np.concatenate([f32(f"linears.{k}.weight", (card, dim)) for k in range(n_q)])
        self.head_b = np.stack([f32(f"linears.{k}.bias", (card,)) for k in range(n_q)])
        expected = {f"emb.{k}.weight" for k in range(n_q)} | {f"linears.{k}.{s}" for k in range(n_q)
                                                                for s in ("weight", "bias")}
        expected |= {"transformer.norm_in.weight", "transformer.norm_in.bias"}
        expected |= {f"transformer.layers.{i}.{s}" for i in range(num_layers) for s in (
            "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
            "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
            "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")}
        unexpected = sorted(set(state) - expected)
        if unexpected:
            raise CheckpointError(f"unexpected tensors in the LM state dict: {', '.join(unexpected[:5])}"
                                  + (" ..." if len(unexpected) > 5 else ""))
        # Position embedding frequencies as torch computes them in float32:
        # max_period ** (i / (half - 1)) rounded to float32 once.
        half = dim // 2
        exponent = np.arange(half, dtype=_F32) / _F32(half - 1)
        self._periods = np.power(self.max_period, exponent.astype(np.float64)).astype(_F32)

    @classmethod
    def from_state(cls, state: tp.Mapping[str, np.ndarray], n_q: int | None = None,
                   frame_rate: float | None = None, **kwargs) -> "LMModel":
        """Build from an official state dict.

        Parameters
        ----------
        state : dict[str, np.ndarray]
        n_q : int, optional
            Codebooks; checked against the ``emb.*`` entries when given.
        frame_rate : float, optional
            Frames per second of the codec; sets ``past_context = int(3.5 *
            frame_rate)``. Default: 75 for 32 codebooks (24 kHz), 150 for 16
            (48 kHz); required otherwise.
        **kwargs
            ``num_heads``, ``max_period``, ``eps``, or ``past_context`` to set it directly.
        """
        found = _count(state, r"emb\.(\d+)\.weight")
        if found == 0:
            raise CheckpointError(_NOT_AN_LM)
        if n_q is not None and n_q != found:
            raise CheckpointError(f"the LM state dict has {found} codebook embeddings, expected n_q={n_q}")
        if "past_context" not in kwargs:
            if frame_rate is None:
                if found not in _FRAME_RATE_BY_NQ:
                    raise EncodecError(f"cannot infer the frame rate of an LM with {found} codebooks: "
                                       "pass frame_rate (the codec's frames per second)")
                frame_rate = _FRAME_RATE_BY_NQ[found]
            kwargs["past_context"] = int(3.5 * frame_rate)
        return cls(state, **kwargs)

    # ------------------------------------------------------------------ shared pieces
    def _positions(self, positions: np.ndarray) -> np.ndarray:
        """Sinusoidal embedding ``[..., dim]`` of integer positions ``[...]``.

        The phase is float32 as in torch (``position / period``); its cos and
        sin are evaluated in float64 and rounded once.
        """
        phase = positions.astype(_F32)[..., None] / self._periods
        sin, cos = _sincos(phase.astype(np.float64))
        return np.concatenate([cos, sin], axis=-1).astype(_F32)

    def _embed(self, indices: np.ndarray) -> np.ndarray:
        """``sum_k emb[k][indices[..., k, :]]``: indices ``[B, K, T]`` → ``[B, T, dim]``."""
        out = None
        for k in range(indices.shape[1]):
            e = self.emb[k][indices[:, k]]
            out = e if out is None else out + e  # in codebook order, as the official sum()
        return out

    def _feed_forward(self, layer: dict, x: np.ndarray) -> np.ndarray:
        """``W2 · gelu(W1 · x + b1) + b2`` for ``x [..., dim]`` (batched: BLAS, tests only)."""
        if x.ndim == 1:
            return _mv(layer["w2"], _gelu(_mv(layer["w1"], x) + layer["b1"])) + layer["b2"]
        h = _gelu(x @ layer["w1"].T + layer["b1"])
        return h @ layer["w2"].T + layer["b2"]

    def _check_indices(self, indices: np.ndarray, what: str) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise EncodecError(f"{what} must be integers, got dtype {indices.dtype}")
        if indices.size and (indices.min() < 0 or indices.max() > self.card):
            raise EncodecError(f"{what} must lie in [0, {self.card}]")
        return indices.astype(np.int64)

    # ------------------------------------------------------------------ streaming step
    def initial_state(self, num_codebooks: int | None = None) -> LMState:
        """Fresh state for a new segment: one zero vector in every layer's memory.

        Parameters
        ----------
        num_codebooks : int, optional
            Codebooks ``K <= n_q`` the segment uses (default ``n_q``); the first
            step predicts this many distributions.
        """
        k = self.n_q if num_codebooks is None else int(num_codebooks)
        if not 1 <= k <= self.n_q:
            raise EncodecError(f"num_codebooks must be in [1, {self.n_q}], got {num_codebooks}")
        cap = self.past_context + 1
        shape = (self.num_heads, cap, self.head_dim)
        keys, values = [], []
        d = self.dim
        for layer in self.layers:
            kb = np.zeros(shape, _F32)
            vb = np.zeros(shape, _F32)
            # The projection of the zero vector is the bias (0·W + b is exact).
            kb[:, 0] = layer["in_b"][d:2 * d].reshape(self.num_heads, self.head_dim)
            vb[:, 0] = layer["in_b"][2 * d:].reshape(self.num_heads, self.head_dim)
            keys.append(kb)
            values.append(vb)
        return LMState(keys, values, count=1, offset=0, num_codebooks=k)

    def step(self, prev_codes: np.ndarray | None, state: LMState) -> tuple[np.ndarray, LMState]:
        """Advance one frame: distributions of this frame's codes given the previous ones.

        Parameters
        ----------
        prev_codes : [K] int or None
            Codes of the previous frame (``0 <= code < card``), ``None`` at the
            first step of a segment.
        state : LMState
            From :meth:`initial_state` or the previous step. Updated **in
            place** and returned (use :meth:`LMState.copy` to branch).

        Returns
        -------
        probas : [K, card] float32
            Softmax over the codes of each codebook.
        state : LMState
        """
        K = state.num_codebooks
        if prev_codes is None:
            idx = np.zeros(K, np.int64)
        else:
            prev = np.asarray(prev_codes).reshape(-1)
            if prev.shape[0] != K:
                raise EncodecError(f"expected {K} previous codes, got {prev.shape[0]}")
            if prev.dtype.kind not in "iu" or prev.min() < 0 or prev.max() >= self.card:
                raise EncodecError(f"previous codes must be integers in [0, {self.card})")
            idx = prev.astype(np.int64) + 1
        # Rows summed in codebook order (a reduction over axis 0 adds row by row).
        x = self.emb[np.arange(K), idx].sum(axis=0)
        x = _layer_norm(x, *self.norm_in, self.eps) + self._positions(np.array(state.offset))

        d, H, hd = self.dim, self.num_heads, self.head_dim
        cap = self.past_context + 1
        slot = state.count % cap        # overwrites the entry that just left the context
        n = min(state.count + 1, cap)   # memory (<= past_context entries) + this step
        scale = _F32(1.0 / math.sqrt(hd))
        for layer, kbuf, vbuf in zip(self.layers, state.keys, state.values):
            qkv = _mv(layer["in_w"], x) + layer["in_b"]
            q = qkv[:d].reshape(H, hd)
            kbuf[:, slot] = qkv[d:2 * d].reshape(H, hd)
            vbuf[:, slot] = qkv[2 * d:].reshape(H, hd)
            # Attention over the n live slots; their order does not matter.
            scores = np.einsum("hnd,hd->hn", kbuf[:, :n], q * scale)
            weights = _softmax(scores)
            attn = np.einsum("hn,hnd->hd", weights, vbuf[:, :n]).reshape(d)
            x = _layer_norm(x + (_mv(layer["out_w"], attn) + layer["out_b"]), *layer["n1"], self.eps)
            x = _layer_norm(x + self._feed_forward(layer, x), *layer["n2"], self.eps)
        state.count += 1
        state.offset += 1
        logits = _mv(self.head_w[:K * self.card], x).reshape(K, self.card) + self.head_b[:K]
        return _softmax(logits), state

    # ------------------------------------------------------------------ official-style forward
    def forward(self, indices: np.ndarray, states: list[np.ndarray] | None = None,
                offset: int = 0) -> tuple[np.ndarray, list[np.ndarray], int]:
        """The official ``LMModel.forward``: any batch and number of steps.

        For tests and analysis: it uses BLAS, so its last bits differ from
        :meth:`step` (which the coder uses) by float rounding.

        Parameters
        ----------
        indices : [B, K, T] int
            ``1 + code`` of the previous frame (0 = no previous frame).
        states : list of [B, H, dim] float32, optional
            Per-layer memory of layer *inputs* (``None``: one zero vector each).
        offset : int
            Position of the first step.

        Returns
        -------
        probas : [B, card, K, T] float32
        states : list of [B, min(H + T, past_context), dim] float32
        offset : int
            ``offset + T``.
        """
        indices = self._check_indices(indices, "indices")
        if indices.ndim != 3 or not 1 <= indices.shape[1] <= self.n_q:
            raise EncodecError(f"indices must be [B, K <= {self.n_q}, T], got shape {indices.shape}")
        B, K, T = indices.shape
        x = self._embed(indices)                                   # [B, T, d]
        x = _layer_norm(x, *self.norm_in, self.eps) + self._positions(np.arange(T) + offset)
        if states is None:
            states = [np.zeros((B, 1, self.dim), _F32) for _ in self.layers]
        d, H, hd = self.dim, self.num_heads, self.head_dim
        new_states = []
        for layer, past in zip(self.layers, states):
            past = np.asarray(past, _F32)
            P = past.shape[1]
            mem = np.concatenate([past, x], axis=1)                # [B, P + T, d]
            q = x @ layer["in_w"][:d].T + layer["in_b"][:d]
            kv = mem @ layer["in_w"][d:].T + layer["in_b"][d:]
            q = q.reshape(B, T, H, hd).transpose(0, 2, 1, 3)
            k = kv[..., :d].reshape(B, P + T, H, hd).transpose(0, 2, 1, 3)
            v = kv[..., d:].reshape(B, P + T, H, hd).transpose(0, 2, 1, 3)
            # Query at position P + t sees keys at distance 0..past_context back.
            delta = (np.arange(P, P + T)[:, None] - np.arange(P + T)[None, :])
            valid = (delta >= 0) & (delta <= self.past_context)
            scores = (q * _F32(1.0 / math.sqrt(hd))) @ k.transpose(0, 1, 3, 2)   # [B, H, T, P+T]
            scores = np.where(valid, scores, _F32(-np.inf))
            attn = (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
            y = _layer_norm(x + (attn @ layer["out_w"].T + layer["out_b"]), *layer["n1"], self.eps)
            y = _layer_norm(y + self._feed_forward(layer, y), *layer["n2"], self.eps)
            new_states.append(mem[:, -self.past_context:])         # layer inputs, as official
            x = y
        logits = np.einsum("btd,kcd->bkct", x, self.head_w[:K * self.card].reshape(K, self.card, d))
        logits = logits + self.head_b[:K][None, :, :, None]
        probas = _softmax(logits, axis=2).transpose(0, 2, 1, 3)   # [B, card, K, T]
        return np.ascontiguousarray(probas), new_states, offset + T

    __call__ = forward

    def __repr__(self) -> str:
        return (f"LMModel(n_q={self.n_q}, card={self.card}, dim={self.dim}, layers={self.num_layers}, "
                f"heads={self.num_heads}, hidden={self.hidden}, past_context={self.past_context})")


def _count(state: tp.Mapping[str, np.ndarray], pattern: str) -> int:
    """How many indices ``pattern`` matches among the keys (0 if none); they must be 0..n-1."""
    found = {int(m.group(1)) for key in state if (m := re.fullmatch(pattern, key))}
    if found and found != set(range(max(found) + 1)):
        missing = min(set(range(max(found) + 1)) - found)
        raise CheckpointError(f"LM state dict is missing index {missing} of {pattern!r}")
    return len(found)


def _get(state: tp.Mapping[str, np.ndarray], name: str, shape: tuple | None = None) -> np.ndarray:
    if name not in state:
        raise CheckpointError(f"LM state dict is missing {name!r}")
    value = state[name]
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise CheckpointError(f"LM tensor {name!r} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    return value


# --------------------------------------------------------------------------- loading
def load_lm(path_or_name, *, cache_dir=None, frame_rate: float | None = None) -> LMModel:
    """Load an official EnCodec LM.

    Parameters
    ----------
    path_or_name : str or Path
        ``"encodec_lm_24khz"`` / ``"encodec_lm_48khz"`` (downloaded once and
        cached, see :func:`encodec_np.io.hub.pretrained_path`; the codec names
        ``"encodec_24khz"`` / ``"encodec_48khz"`` select their LM), or the path
        of a ``.th`` file saved with ``torch.save(lm.state_dict(), path)``.
    cache_dir : str or Path, optional
        Cache for pretrained downloads.
    frame_rate : float, optional
        Codec frame rate, for ``past_context``; inferred from the number of
        codebooks (32 → 75, 16 → 150) when omitted.

    Returns
    -------
    LMModel
    """
    if isinstance(path_or_name, str) and path_or_name in LM_NAMES:
        path_or_name = LM_NAMES[path_or_name]
    if isinstance(path_or_name, str) and path_or_name in LM_NAMES.values():
        path = pretrained_path(path_or_name, cache_dir)
    else:
        path = Path(os.fspath(path_or_name)).expanduser()
        if not path.is_file():
            raise EncodecError(f"no LM checkpoint at {path}; pass a .th file or one of "
                               f"{', '.join(sorted(LM_NAMES.values()))}")
    return LMModel.from_state(read_torch_state(path), frame_rate=frame_rate)


# --------------------------------------------------------------------------- coding
def _check_codes(codes, lm: LMModel) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise EncodecError(f"codes must be [K, T], got shape {codes.shape}")
    if codes.dtype.kind not in "iu":
        raise EncodecError(f"codes must be integers, got dtype {codes.dtype}")
    K = codes.shape[0]
    if not 1 <= K <= lm.n_q:
        raise EncodecError(f"the LM models 1 to {lm.n_q} codebooks, got {K}")
    if codes.size and (codes.min() < 0 or codes.max() >= lm.card):
        raise EncodecError(f"codes must lie in [0, {lm.card})")
    return codes.astype(np.int64)


def encode_codes(codes: np.ndarray, lm: LMModel, fo: tp.IO[bytes]) -> int:
    """Entropy-code one segment's codes into ``fo``, as the official ``compress`` does.

    A fresh LM state and arithmetic coder per call; codes are pushed time-major
    (all codebooks of frame ``t``, then ``t + 1``), and the coder is flushed at
    the end (the last byte zero-padded). The bytes are those the official coder
    writes for the same CDFs. Nothing is written to ``fo`` unless the whole
    segment codes: in the rare case where a CDF total overflowed (see
    :mod:`encodec_np.format.arithmetic`) the stream is checked to decode, and
    :class:`EntropyCodingError` is raised if it would not (or where the
    official coder would fail an assertion); write the segment without the LM then.

    Parameters
    ----------
    codes : [K, T] int
        ``0 <= code < lm.card``, ``K <= lm.n_q``.
    lm : LMModel
    fo : binary file object

    Returns
    -------
    int
        Bytes written.

    Raises
    ------
    EntropyCodingError
        (an :class:`~encodec_np.errors.EncodecError`) this segment cannot be
        coded by the official arithmetic coder.
    """
    codes = _check_codes(codes, lm)
    K, T = codes.shape
    buffer = io.BytesIO()
    coder = ArithmeticCoder(buffer, TOTAL_RANGE_BITS, record=True)
    state = lm.initial_state(K)
    prev = None
    for t in range(T):
        probas, state = lm.step(prev, state)
        cdfs = build_stable_quantized_cdf(probas, TOTAL_RANGE_BITS)
        column = codes[:, t]
        for k in range(K):
            coder.push(int(column[k]), cdfs[k])
        prev = column
    coder.flush()
    payload = buffer.getvalue()
    if coder.overflowed and not verify_stream(payload, coder.ranges, TOTAL_RANGE_BITS):
        raise EntropyCodingError("the official arithmetic coder mis-codes this segment (a quantized "
                                 "CDF total exceeded 2**24); write it without the LM")
    fo.write(payload)
    return len(payload)


def decode_codes(fo: tp.IO[bytes], lm: LMModel, num_codebooks: int, num_frames: int) -> np.ndarray:
    """Decode one segment written by :func:`encode_codes` (or the official tool).

    Reads only the bytes of this segment, leaving ``fo`` at the next one.

    Decoding is exact when the LM yields, at every step, the same quantized
    CDFs as it did when encoding: always the case for files we encoded on the
    same platform (same NumPy/BLAS and CPU kernels). A file encoded by the
    official PyTorch tool decodes only if its float32 probabilities land in
    the same ``1e-8`` buckets as ours everywhere, which is not guaranteed (and
    not usual: see the README); a mismatch shows up as an
    :class:`~encodec_np.errors.EncodecError` or as wrong codes.

    Parameters
    ----------
    fo : binary file object
    lm : LMModel
    num_codebooks : int
        ``K`` (the ``nc`` field of the ``.ecdc`` header).
    num_frames : int
        ``T`` of this segment.

    Returns
    -------
    codes : [K, T] int64

    Raises
    ------
    EncodecError
        Truncated stream, or bits that fit no symbol (corrupt data or an LM
        mismatch).
    """
    K, T = int(num_codebooks), int(num_frames)
    if T < 0:
        raise EncodecError(f"num_frames must be >= 0, got {num_frames}")
    state = lm.initial_state(K)
    if T == 0:
        return np.zeros((K, 0), np.int64)
    decoder = ArithmeticDecoder(fo, TOTAL_RANGE_BITS)
    # T comes from a header: the output grows with the frames actually decoded (a stream ends
    # at the end of its bytes), so a hostile length costs nothing before the payload backs it.
    columns, prev = [], None
    for _ in range(T):
        probas, state = lm.step(prev, state)
        cdfs = build_stable_quantized_cdf(probas, TOTAL_RANGE_BITS)
        prev = np.array([decoder.pull(cdfs[k]) for k in range(K)], np.int64)
        columns.append(prev)
    return np.stack(columns, axis=1)
