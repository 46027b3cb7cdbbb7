"""Mel spectrograms as the official training code computes them (torchaudio's HTK filterbank, audiocraft's padding).

Used by the spectral loss of :mod:`encodec_np.functional`, the log-mel
distance of :mod:`encodec_np.metrics` and the training losses in ``training/``.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import ops

#: Mel bins of every spectral-loss scale (paper §3.4).
N_MELS = 64


def _hz_to_mel(f):
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular HTK mel filterbank, unnormalised: ``[n_fft // 2 + 1, n_mels]``.

    The construction of ``torchaudio.functional.melscale_fbanks`` with its
    defaults (``mel_scale="htk"``, ``norm=None``, ``f_min=0``,
    ``f_max=sample_rate / 2``), which torchaudio's ``MelSpectrogram`` — and
    so the official training code — uses: ``n_mels + 2`` points equally
    spaced in mel, triangles of peak 1 between neighbours, sampled at the
    STFT bin frequencies ``linspace(0, sample_rate // 2, n_fft // 2 + 1)``.
    With small FFTs (32 samples: 17 bins) many of the 64 triangles fall
    between bins and are all zero, as in torchaudio.

    Parameters
    ----------
    sample_rate : int
    n_fft : int
        The STFT's size.
    n_mels : int
        Mel bands.
    """
    n_freqs = n_fft // 2 + 1
    all_freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    f_pts = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def mel_spectrogram(x: np.ndarray, sample_rate: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """Mel magnitude spectrogram of one loss scale: ``x [N, S]`` → ``[N, n_mels, frames]``.

    Window and FFT size ``n_fft``, hop ``n_fft // 4``, periodic Hann window,
    normalized STFT (divided by ``sqrt(sum(window**2))``, torchaudio's
    ``normalized=True``), magnitude (power 1), then :func:`mel_filterbank`.

    Padding follows audiocraft's ``MelSpectrogramWrapper`` (non-centred STFT):
    reflect-pad ``(n_fft - hop) // 2`` samples on both sides, then zero-pad the
    right until the last window is full, giving ``ceil(S / hop)`` frames for
    ``S >= hop``. Signals no longer than the reflect pad (any ``S``, down to
    one sample) are first extended with zeros, reflected, and the zeros
    dropped again (:func:`encodec_np.ops.pad1d`), and at least one full window
    is always taken, so short inputs never fail.

    Parameters
    ----------
    x : [N, S] float
        ``N`` signals of ``S`` samples.
    sample_rate : int
    n_fft : int
        Window and FFT size.
    n_mels : int
        Mel bands.

    Returns
    -------
    [N, n_mels, frames] float64
    """
    hop = n_fft // 4
    p = (n_fft - hop) // 2
    x = ops.pad1d(x, p, p, "reflect")
    n_frames = max(1, math.ceil((x.shape[-1] - n_fft) / hop) + 1)
    x = ops.pad1d(x, 0, (n_frames - 1) * hop + n_fft - x.shape[-1], "constant")
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic, as torch.hann_window
    frames = sliding_window_view(x, n_fft, axis=-1)[:, ::hop]  # [N, frames, n_fft]
    spec = np.abs(np.fft.rfft(frames * window, axis=-1)) / np.sqrt(np.sum(window ** 2))
    return np.einsum("nfk,km->nmf", spec, mel_filterbank(sample_rate, n_fft, n_mels))
