"""Mel spectrograms (encodec_np.mel): the HTK filterbank and the padded, normalized STFT."""
import math

import numpy as np
import pytest

from encodec_np import mel as M
from encodec_np import ops


def test_mel_filterbank():
    assert M._hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.05)  # HTK scale anchor
    assert M._mel_to_hz(M._hz_to_mel(3000.0)) == pytest.approx(3000.0)
    fb = M.mel_filterbank(24000, 2048)
    assert fb.shape == (1025, 64) and fb.min() >= 0 and fb.max() <= 1
    assert (fb.max(axis=0) > 0.5).all()  # every triangle hits bins at this resolution
    peaks = fb.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()  # triangles ordered by frequency
    small = M.mel_filterbank(24000, 32)
    assert small.shape == (17, 64) and (small.max(axis=0) == 0).any()  # empty triangles, as torchaudio


def test_mel_spectrogram_frames_and_stft():
    x = 0.1 * np.random.default_rng(5).standard_normal((1, 3000)).astype(np.float32).astype(np.float64)
    for n_fft in (32, 256, 2048):
        assert M.mel_spectrogram(x, 24000, n_fft).shape[-1] == math.ceil(3000 / (n_fft // 4))
    torch = pytest.importorskip("torch")
    # our magnitude STFT equals torch.stft(center=False) / sqrt(sum(w^2)) on the same padded signal
    n_fft, hop = 256, 64
    padded = ops.pad1d(x, (n_fft - hop) // 2, (n_fft - hop) // 2, "reflect")
    window = torch.hann_window(n_fft, dtype=torch.float64)
    ref = torch.stft(torch.from_numpy(padded), n_fft, hop, window=window, center=False,
                     return_complex=True).abs() / window.pow(2).sum().sqrt()
    fb = M.mel_filterbank(24000, n_fft)
    ours = M.mel_spectrogram(x, 24000, n_fft)
    n = ref.shape[-1]
    np.testing.assert_allclose(ours[..., :n], np.einsum("nkf,km->nmf", ref.numpy(), fb), rtol=1e-9, atol=1e-12)
