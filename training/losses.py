"""Reconstruction losses of the EnCodec paper (§3.4), in torch for training.

Time domain: L1. Frequency domain: over windows 2**5 .. 2**11 (hop w/4, 64
mel bins, normalized STFT), L1 on mel magnitudes plus L2 on ``log(mel + floor)``, after
audiocraft's ``MultiScaleMelSpectrogramLoss`` (whose floor is 1e-5). The mel filterbank is
encodec_np's (torchaudio's HTK construction), so no torchaudio is needed.
"""
from __future__ import annotations

import numpy as np
import torch

from encodec_np.mel import mel_filterbank

SCALES = range(5, 12)
FLOOR = 1e-2


def stft_magnitude(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """``x [B, T]`` → ``[B, n // 2 + 1, frames]``: the normalized STFT magnitude every term here uses (hop n/4)."""
    n = window.shape[0]
    return torch.stft(x, n, hop_length=n // 4, window=window, center=True, pad_mode="reflect",
                      normalized=True, return_complex=True).abs()


class MelBanks(torch.nn.Module):
    """Mel magnitudes at several window sizes: a Hann window and a filterbank buffer per size."""

    def __init__(self, sizes, sample_rate: int = 24_000, n_mels: int = 64):
        super().__init__()
        self.sizes = list(sizes)
        for n in self.sizes:
            self.register_buffer(f"fb{n}", torch.from_numpy(mel_filterbank(sample_rate, n, n_mels).astype(np.float32)))
            self.register_buffer(f"win{n}", torch.hann_window(n))

    def mel(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``x [B, T]`` → ``[B, frames, n_mels]``."""
        return stft_magnitude(x, getattr(self, f"win{n}")).transpose(1, 2) @ getattr(self, f"fb{n}")


class MelLoss(MelBanks):
    def __init__(self, sample_rate: int = 24_000, n_mels: int = 64, floor: float = FLOOR):
        super().__init__([2 ** i for i in SCALES], sample_rate, n_mels)
        self.floor = floor

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        total = 0.0
        for n in self.sizes:
            my, mx = self.mel(y, n), self.mel(x, n)
            # An additive floor, not a clamp (a clamp has no gradient below it). From scratch it
            # must be high: with 1e-5 most bins of speech sit near the floor, any noise there
            # costs more than silence, and an untrained decoder settles on silence (measured on
            # our data). But 1e-2 leaves a trained decoder free to fill empty bands with noise
            # at about -40 dB, which a low floor prices (see training/DATA.md).
            total = total + (my - mx).abs().mean() + (((my + self.floor).log() - (mx + self.floor).log()) ** 2).mean()
        return total / len(self.sizes)


class Balancer:
    """The paper's loss balancer (§3.4): each loss gets a fixed share of the gradient at the output.

    For losses ``l_i`` of the decoded ``y``, ``g_i = d l_i / d y`` is rescaled to
    ``weights[i] / sum(weights)`` times an exponential moving average of its norm's
    reciprocal, so a loss's influence no longer depends on its scale (an
    adversarial loss's gradients swing over orders of magnitude while the
    discriminator learns). The norm is that of each batch item's gradient,
    averaged over the batch; the moving average is bias-corrected.
    """

    def __init__(self, weights: dict[str, float], decay: float = 0.999, eps: float = 1e-12):
        self.weights = dict(weights)
        self.decay, self.eps = decay, eps
        self.sums = {k: 0.0 for k in weights}
        self.count = 0.0

    def gradient(self, losses: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """The combined gradient of ``losses`` at ``y``, for ``y.backward``; updates the moving averages."""
        self.count = self.decay * self.count + 1.0
        total = sum(self.weights.values())
        out = torch.zeros_like(y)
        for k, weight in self.weights.items():
            g = torch.autograd.grad(losses[k], y, retain_graph=True)[0]
            self.sums[k] = self.decay * self.sums[k] + g.reshape(g.shape[0], -1).norm(dim=1).mean().item()
            out = out + g * (weight / total / (self.sums[k] / self.count + self.eps))
        return out

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.sums.update(state["sums"])
        self.count = state["count"]


class EnvelopeLoss(torch.nn.Module):
    """One minus the short-time envelope correlation STOI measures (Taal et al. 2011), differentiable.

    STOI correlates the temporal envelopes of the reference and the decoded
    signal in 15 third-octave bands (centres 150 Hz to 3.8 kHz) over 384 ms
    segments, after dropping the frames more than 40 dB below the loudest. This
    is that intermediate measure at 24 kHz (512-sample frames, hop 256, 36-frame
    segments, every segment start), without STOI's clipping of the decoded
    envelope, which only bounds a score and would zero the gradient where it
    acts. The mel terms score each frame's spectrum; this term scores how each
    band's level moves over a third of a second, which is what the fine-tunes
    with the loudness term lost (held-out STOI, training/DATA.md).
    """

    def __init__(self, sample_rate: int = 24_000, n_fft: int = 512, segment: int = 36, dyn_range_db: float = 40.0):
        super().__init__()
        self.n_fft, self.segment, self.dyn_range_db = n_fft, segment, dyn_range_db
        freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
        centres = 150.0 * 2.0 ** (np.arange(15) / 3)
        bands = (freqs[:, None] >= centres * 2 ** (-1 / 6)) & (freqs[:, None] < centres * 2 ** (1 / 6))
        self.register_buffer("bands", torch.from_numpy(bands.astype(np.float32)))
        self.register_buffer("window", torch.hann_window(n_fft))

    def envelopes(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T]`` → band envelopes ``[B, frames, 15]`` (root of the band power)."""
        spec = torch.stft(x, self.n_fft, hop_length=self.n_fft // 2, window=self.window, center=False,
                          return_complex=True).abs().pow(2)
        return (spec.transpose(1, 2) @ self.bands + 1e-12).sqrt()

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        ex, ey = self.envelopes(x), self.envelopes(y)
        frame_db = 10 * torch.log10(ex.pow(2).sum(dim=-1) + 1e-12)  # [B, frames]
        # -80 dB in these units is about -120 dBFS: digital silence has no envelope to follow
        floor = (frame_db.amax(dim=1) - self.dyn_range_db).clamp(min=-80.0)
        keep = frame_db > floor[:, None]
        scores = []
        for i in range(x.shape[0]):  # each crop keeps its own number of frames
            sx, sy = ex[i][keep[i]], ey[i][keep[i]]  # [frames kept, 15]
            if sx.shape[0] < self.segment:
                continue  # STOI needs one whole segment of non-silent frames
            sx = sx.unfold(0, self.segment, 1)  # [segments, 15, segment]
            sy = sy.unfold(0, self.segment, 1)
            sx = sx - sx.mean(dim=-1, keepdim=True)
            sy = sy - sy.mean(dim=-1, keepdim=True)
            corr = (sx * sy).sum(-1) / ((sx.pow(2).sum(-1) * sy.pow(2).sum(-1)).sqrt() + 1e-8)
            scores.append(corr.mean())
        if not scores:
            return torch.zeros((), device=x.device)
        return 1.0 - torch.stack(scores).mean()


class STFTLoss(torch.nn.Module):
    """Multi-resolution linear-frequency STFT loss (Yamamoto et al. 2020): spectral convergence + log-magnitude L1.

    The mel terms pool the spectrum into 64 bands, about 1 kHz wide at the top
    of the range at 24 kHz, so a decoder that smears a harmonic above 1 kHz into
    band noise of the same energy costs them almost nothing (the steady-tone
    probe of ``whistle_check.py``). Linear bins of 11.7-47 Hz (windows 2048 to
    512) tell a harmonic from noise at every frequency. Magnitudes are those of
    a normalized STFT, as in :class:`MelLoss`, and the log takes the same
    additive floor. ``convergence`` weights the spectral convergence (an L2 of
    linear magnitudes). Both parts price a tone rendered as band noise about as
    high as silence or higher (on the test's 3 kHz probe: 1.01 of silence's cost
    with both, 1.49 with the log-magnitude part alone), so, measured, the term
    pushes sounds the decoder cannot match quieter (training/DATA.md).
    """

    def __init__(self, sizes: tuple[int, ...] = (512, 1024, 2048), floor: float = FLOOR, convergence: float = 1.0):
        super().__init__()
        self.sizes, self.floor, self.convergence = tuple(sizes), floor, convergence
        for n in self.sizes:
            self.register_buffer(f"win{n}", torch.hann_window(n))

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        total = 0.0
        for n in self.sizes:
            win = getattr(self, f"win{n}")
            my, mx = stft_magnitude(y, win), stft_magnitude(x, win)
            convergence = (my - mx).norm(dim=(1, 2)) / (mx.norm(dim=(1, 2)) + 1e-7)
            log_l1 = ((my + self.floor).log() - (mx + self.floor).log()).abs().mean(dim=(1, 2))
            total = total + (self.convergence * convergence + log_l1).mean()
        return total / len(self.sizes)


class BandLevelLoss(torch.nn.Module):
    """Mean absolute error in dB of each mel band's level over the whole crop (its long-term spectrum).

    The loudness term prices the broadband level only. The two ways the model
    fails the held-out collapse check are band levels: a whistle or a quiet
    ambience comes back as quieter noise in its band (every per-frame loss
    prices noise that cannot match the waveform about as high as silence), and
    speech recorded at 16 kHz comes back with noise in its empty band above
    8 kHz. Averaged over a crop, noise of the right level in the right bands
    costs nothing here, whatever its fine structure. The floor is relative, 60 dB
    below the crop's loudest band, so a band the input leaves empty is priced
    down to that depth at any input level.
    """

    def __init__(self, sample_rate: int = 24_000, n_fft: int = 2048, n_mels: int = 64, depth_db: float = 60.0):
        super().__init__()
        self.depth = 10.0 ** (-depth_db / 10)
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels).astype(np.float32)))
        self.register_buffer("window", torch.hann_window(n_fft))

    def levels(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, T]`` → mean power per mel band ``[B, n_mels]``."""
        return (stft_magnitude(x, self.window).pow(2).transpose(1, 2) @ self.fb).mean(dim=1)

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        px, py = self.levels(x), self.levels(y)
        # 1e-12: digital silence still has a finite floor (and no term, as px = py = 0 there)
        floor = (px.amax(dim=1, keepdim=True) * self.depth).detach() + 1e-12
        return (10 * torch.log10(py + floor) - 10 * torch.log10(px + floor)).abs().mean()


class NoiseFloorLoss(MelBanks):
    """Mean excess, in natural-log units, of the decoded mel magnitudes over the input's where the input is quiet.

    The mel loss's additive floor (``--mel-floor``, 1e-3 for a trained model)
    hides everything below it: a decoder may put hiss at -60 to -80 dB into the
    bins the input leaves quieter than that (the empty band above 8 kHz of
    16 kHz-sourced speech, the pauses between words, a quiet ambience). The
    held-out log-mel distance floors at 1e-5 (-100 dB) and that hiss is most of
    it on every clip that fails the collapse check for its log-mel distance
    (measured on the shipped weights at 6 kbps: rtvc_samples_0000 14.4 dB, 5.3
    without it). This term prices only that part: both magnitudes are capped at
    ``ceiling`` (where the mel loss takes over), floored at ``floor`` (the
    metric's), and only the output's excess counts, so a decoder is never
    pushed to match quiet detail, only to leave quiet bins quiet. With
    ``spread`` k, each input bin is first raised to the loudest input bin
    within k mel bands and k frames of it: noise next to a sound it cannot
    match (a tone the decoder renders as band noise, a soft consonant) is
    then not priced, which is where a hearing system would not hear it
    either, and empty octaves and pauses still are.
    """

    def __init__(self, sample_rate: int = 24_000, sizes: tuple[int, ...] = (512, 1024, 2048), n_mels: int = 64,
                 ceiling: float = 1e-3, floor: float = 1e-5, spread: int = 0):
        super().__init__(sizes, sample_rate, n_mels)
        self.ceiling, self.floor, self.spread = ceiling, floor, spread

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        total = 0.0
        for n in self.sizes:
            my, mx = (self.mel(a, n).clamp(max=self.ceiling) for a in (y, x))
            if self.spread:
                k = 2 * self.spread + 1
                mx = torch.nn.functional.max_pool2d(mx[:, None], k, stride=1, padding=self.spread)[:, 0]
            total = total + torch.relu((my + self.floor).log() - (mx + self.floor).log()).mean()
        return total / len(self.sizes)


class SISNRLoss(torch.nn.Module):
    """Minus the mean scale-invariant SNR in dB (the held-out table's SI-SNR), over crops with sound.

    The time-domain L1 prices the waveform and the level together: where the
    decoder cannot tell the waveform, the L1 optimum is a quieter copy, and the
    loudness term then buys the level back with energy the waveform does not
    have (the decoder-only runs at ``--loudness`` 0.1 / 0.3 / 0.5: 6 kbps SI-SNR
    3.26 / 2.95 / 2.80 dB, training/DATA.md). This term prices the waveform's
    shape alone, so a level term can set the scale without fighting it.
    Crops whose input RMS is below ``min_rms`` (digital silence, a gap) have no
    shape to match and are left out.
    """

    def __init__(self, min_rms: float = 1e-4, eps: float = 1e-8):
        super().__init__()
        self.min_rms, self.eps = min_rms, eps

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])
        x = x - x.mean(dim=-1, keepdim=True)
        y = y - y.mean(dim=-1, keepdim=True)
        energy = x.pow(2).sum(dim=-1)
        keep = energy > self.min_rms ** 2 * x.shape[-1]
        if not keep.any():
            return y.sum() * 0.0  # keeps the graph: a batch of silence gives a zero gradient
        x, y, energy = x[keep], y[keep], energy[keep]
        target = ((y * x).sum(dim=-1) / energy)[:, None] * x
        noise = y - target
        ratio = (target.pow(2).sum(dim=-1) + self.eps) / (noise.pow(2).sum(dim=-1) + self.eps)
        return -(10 * torch.log10(ratio)).mean()
