"""Slow, obviously-right loop versions of the reference ops (tests only)."""
import numpy as np


def conv1d(x, w, b, stride, dilation):
    B, C, T = x.shape
    O, _, K = w.shape
    n = (T - (K - 1) * dilation - 1) // stride + 1
    y = np.zeros((B, O, n), dtype=np.float64)
    for t in range(n):
        for k in range(K):
            y[:, :, t] += x[:, :, t * stride + k * dilation].astype(np.float64) @ w[:, :, k].T.astype(np.float64)
    return y + (0 if b is None else b[None, :, None])


def conv_transpose1d(x, w, b, stride):
    B, C, T = x.shape
    _, O, K = w.shape
    y = np.zeros((B, O, (T - 1) * stride + K), dtype=np.float64)
    for t in range(T):
        for k in range(K):
            y[:, :, t * stride + k] += x[:, :, t].astype(np.float64) @ w[:, :, k].astype(np.float64)
    return y + (0 if b is None else b[None, :, None])


def nearest(x, codebook):
    """Index of the nearest row by exact squared distance, first on ties."""
    d = ((x[:, None, :].astype(np.float64) - codebook[None].astype(np.float64)) ** 2).sum(-1)
    return d.argmin(axis=1)
