"""Objective quality measures for decoded audio (used by ``encodec-np demo`` and ``training/evaluate.py``)."""
from __future__ import annotations

import numpy as np

from .errors import EncodecError
from .mel import mel_spectrogram


def _pair(reference, estimate) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if ref.shape != est.shape or ref.size == 0:
        raise EncodecError(f"reference and estimate must have the same non-empty shape, got {ref.shape} and {est.shape}")
    if not (np.isfinite(ref).all() and np.isfinite(est).all()):
        raise EncodecError("reference and estimate must be finite (no NaN or Inf)")
    return ref.reshape(-1, ref.shape[-1]), est.reshape(-1, est.shape[-1])


def si_snr(reference, estimate) -> float:
    """Scale-invariant signal-to-noise ratio in dB (Le Roux et al. 2019), averaged over channels.

    Parameters
    ----------
    reference, estimate : ndarray, [..., T]
        Same shape; each row is zero-meaned, then ``estimate`` is split into
        its projection on ``reference`` (target) and the rest (noise):
        ``10 log10(|target|^2 / |noise|^2)``. Higher is better; a silent
        reference has no defined value (``nan``).
    """
    ref, est = _pair(reference, estimate)
    ref = ref - ref.mean(axis=-1, keepdims=True)
    est = est - est.mean(axis=-1, keepdims=True)
    energy = np.sum(ref ** 2, axis=-1, keepdims=True)
    if np.any(energy == 0):
        return float("nan")
    target = np.sum(est * ref, axis=-1, keepdims=True) / energy * ref
    noise = est - target
    eps = np.finfo(np.float64).tiny
    return float(np.mean(10 * np.log10((np.sum(target ** 2, -1) + eps) / (np.sum(noise ** 2, -1) + eps))))


def log_mel_db(x: np.ndarray, sample_rate: int, n_fft: int = 1024, n_mels: int = 64) -> np.ndarray:
    """The log-mel spectrogram :func:`mel_distance` compares, in dB.

    Parameters
    ----------
    x : [N, T] float64
    sample_rate, n_fft, n_mels : int
        As :func:`encodec_np.mel.mel_spectrogram`. Magnitudes are floored at
        1e-5, so digital silence reads -100 dB.

    Returns
    -------
    [N, n_mels, frames] float64
    """
    return 20 * np.log10(np.maximum(mel_spectrogram(x, sample_rate, n_fft, n_mels), 1e-5))


def mel_gap(diff_db: np.ndarray) -> float:
    """RMS over mel bins of a log-mel dB difference, averaged over frames (and items).

    Parameters
    ----------
    diff_db : [..., n_mels, frames] float64
        Estimate minus reference, as :func:`log_mel_db` gives them.
    """
    return float(np.mean(np.sqrt(np.mean(diff_db ** 2, axis=-2))))


def mel_distance(reference, estimate, sample_rate: int, n_fft: int = 1024, n_mels: int = 64) -> float:
    """Log-mel spectral distance in dB: RMS over mel bins of the dB difference, averaged over frames.

    Parameters
    ----------
    reference, estimate : ndarray, [..., T]
        Same shape, at ``sample_rate`` Hz.
    n_fft, n_mels : int
        STFT window (hop ``n_fft // 4``) and mel bins, as
        :func:`encodec_np.mel.mel_spectrogram`, in dB by :func:`log_mel_db`
        (floored at -100 dB so silence does not dominate). Lower is better, 0
        for identical signals.
    """
    ref, est = _pair(reference, estimate)
    db = [log_mel_db(a, sample_rate, n_fft, n_mels) for a in (ref, est)]
    return mel_gap(db[0] - db[1])
