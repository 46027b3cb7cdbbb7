"""Residual vector quantization: bandwidth rules, encode and decode.

Codebooks are stored as one array ``[n_q, bins, D]`` under the parameter name
``quantizer.codebooks`` (the official checkpoint's
``quantizer.vq.layers.{i}._codebook.embed``, stacked).
"""
from __future__ import annotations

import math

import numpy as np

from .config import RVQConfig

CODEBOOKS = "quantizer.codebooks"


def bandwidth_per_codebook(cfg: RVQConfig, frame_rate: int) -> float:
    """kbps carried by one codebook: ``log2(bins) * frame_rate / 1000``.

    Parameters
    ----------
    cfg : RVQConfig
    frame_rate : int
        Code frames per second.
    """
    return math.log2(cfg.bins) * frame_rate / 1000


def num_codebooks(cfg: RVQConfig, frame_rate: int, bandwidth: float | None) -> int:
    """Codebooks used at ``bandwidth`` kbps, exactly as the official model.

    Parameters
    ----------
    cfg : RVQConfig
    frame_rate : int
        Code frames per second.
    bandwidth : float or None
        kbps; ``None`` (or a non-positive bandwidth) means all ``n_q``
        codebooks, otherwise ``max(1, floor(bandwidth / bandwidth_per_codebook))``.
    """
    if bandwidth and bandwidth > 0.0:
        return int(max(1, math.floor(bandwidth / bandwidth_per_codebook(cfg, frame_rate))))
    return cfg.n_q


def encode(emb: np.ndarray, codebooks: np.ndarray, n_q: int, ops) -> np.ndarray:
    """Quantize embeddings ``[B, D, F]`` with the first ``n_q`` codebooks → codes ``[B, n_q, F]`` int64.

    Parameters
    ----------
    emb : [B, D, F]
        A NumPy or backend array.
    codebooks : [>= n_q, bins, D]
    n_q : int
    ops : Backend

    Returns
    -------
    codes : [B, n_q, F] int64
        A NumPy array.
    """
    b, d, f = emb.shape
    flat = ops.swap_last_axes(emb).reshape(b * f, d)
    codes = ops.to_host(ops.rvq_encode(flat, codebooks[:n_q]))  # [n_q, B*F]
    return codes.reshape(n_q, b, f).transpose(1, 0, 2)


def decode(codes: np.ndarray, codebooks: np.ndarray, ops) -> np.ndarray:
    """Codes ``[B, K, F]`` → embeddings ``[B, D, F]`` (ordered sum of codebook vectors), a backend array.

    Parameters
    ----------
    codes : [B, K, F] int
    codebooks : [>= K, bins, D]
    ops : Backend
    """
    b, k, f = codes.shape
    flat = codes.transpose(1, 0, 2).reshape(k, b * f)
    emb = ops.rvq_decode(flat, codebooks)  # [B*F, D]
    return ops.swap_last_axes(emb.reshape(b, f, -1))
