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


def check_rvq_codes(x, books, got, expected, rtol):
    """Codes ``got`` [Q, N] of a fast RVQ of ``x`` [N, D] against the reference's ``expected``.

    A distance summed in another order may take the other side of a near-tie,
    so distances are compared, not indices: layer 0 (same residual on both
    sides) against the reference's choices, every layer against the best code
    along ``got``'s own residual path.
    """
    def dist(r, book, idx):
        return ((r.astype(np.float64) - book[idx].astype(np.float64)) ** 2).sum(-1)

    np.testing.assert_allclose(dist(x, books[0], got[0]), dist(x, books[0], expected[0]), rtol=rtol, atol=rtol)
    residual = x.astype(np.float64)
    for layer, book in enumerate(books):
        best = ((residual[:, None, :] - book[None].astype(np.float64)) ** 2).sum(-1).min(axis=1)
        np.testing.assert_allclose(dist(residual, book, got[layer]), best, rtol=rtol * 10, atol=rtol * 10)
        residual = residual - book[got[layer]]
