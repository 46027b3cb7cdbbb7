"""Slow, obviously-right loop versions of the reference ops (tests only)."""
import math

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


def elu(x, alpha=1.0):
    """ELU element by element, in Python floats."""
    out = np.empty(x.shape, dtype=np.float64)
    for idx, v in np.ndenumerate(x):
        v = float(v)
        out[idx] = v if v > 0 else alpha * (math.exp(v) - 1.0)
    return out


def group_norm(x, weight, bias, eps=1e-5):
    """GroupNorm(1, C): mean and biased variance of each item over channels and time, by loops."""
    B, C, T = x.shape
    out = np.empty(x.shape, dtype=np.float64)
    for b in range(B):
        values = [float(x[b, c, t]) for c in range(C) for t in range(T)]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        for c in range(C):
            for t in range(T):
                out[b, c, t] = (float(x[b, c, t]) - mean) / math.sqrt(var + eps) * float(weight[c]) + float(bias[c])
    return out


def lstm(x, layers):
    """PyTorch nn.LSTM from zero state, one scalar at a time: gates i, f, g, o. ``x`` [B, C, T] -> [B, H, T]."""
    def sig(v):
        return 1.0 / (1.0 + math.exp(-v))

    B, _, T = x.shape
    seq = [[[float(x[b, c, t]) for c in range(x.shape[1])] for t in range(T)] for b in range(B)]
    for w_ih, w_hh, b_ih, b_hh in layers:
        H = w_hh.shape[1]
        out = []
        for b in range(B):
            h, c, rows = [0.0] * H, [0.0] * H, []
            for t in range(T):
                gate = [float(b_ih[j]) + float(b_hh[j])
                        + sum(float(w_ih[j, k]) * seq[b][t][k] for k in range(len(seq[b][t])))
                        + sum(float(w_hh[j, k]) * h[k] for k in range(H)) for j in range(4 * H)]
                c = [sig(gate[H + j]) * c[j] + sig(gate[j]) * math.tanh(gate[2 * H + j]) for j in range(H)]
                h = [sig(gate[3 * H + j]) * math.tanh(c[j]) for j in range(H)]
                rows.append(h)
            out.append(rows)
        seq = out
    return np.array([[[seq[b][t][j] for t in range(T)] for j in range(len(seq[b][0]))] for b in range(B)])


def pad1d(x, left, right, mode):
    """Pad the last axis sample by sample; reflect as the official pad1d (zeros appended for tiny inputs first)."""
    T = x.shape[-1]
    if mode == "reflect" and T <= max(left, right):
        extra = max(left, right) - T + 1
        return pad1d(np.concatenate([x, np.zeros(x.shape[:-1] + (extra,), x.dtype)], axis=-1), left, right,
                     mode)[..., :left + T + right]
    out = np.empty(x.shape[:-1] + (left + T + right,), dtype=x.dtype)
    for i in range(left + T + right):
        j = i - left
        if 0 <= j < T:
            out[..., i] = x[..., j]
        elif mode == "constant":
            out[..., i] = 0
        elif mode == "replicate":
            out[..., i] = x[..., 0] if j < 0 else x[..., T - 1]
        else:  # reflect about the first and last sample, not repeating them
            out[..., i] = x[..., -j] if j < 0 else x[..., 2 * (T - 1) - j]
    return out


def si_snr(reference, estimate):
    """SI-SNR in dB of one channel, by the definition: zero-mean, project, ratio of energies."""
    r = [float(v) for v in reference]
    e = [float(v) for v in estimate]
    mr, me = sum(r) / len(r), sum(e) / len(e)
    r, e = [v - mr for v in r], [v - me for v in e]
    scale = sum(a * b for a, b in zip(e, r)) / sum(a * a for a in r)
    target = [scale * v for v in r]
    noise = [a - b for a, b in zip(e, target)]
    return 10 * math.log10(sum(v * v for v in target) / sum(v * v for v in noise))
