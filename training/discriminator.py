"""The multi-scale STFT discriminator of the EnCodec paper (§3.3), in torch for training.

Five sub-discriminators, one per STFT window (2048, 1024, 512, 256, 128; hop
a quarter of it). Each sees the complex spectrogram as two channels (real and
imaginary, time × frequency) through a 2-D conv stack: one ``(3, 9)`` conv,
three ``(3, 9)`` convs with stride 2 along frequency and dilation 1, 2, 4
along time, one ``(3, 3)`` conv, all with 32 filters (``filters``), weight norm and
LeakyReLU(0.2), then a ``(3, 3)`` conv to one logit map. Written here on
``torch.stft`` rather than imported from Meta's ``encodec.msstftd``, which
needs torchaudio.

Losses (§3.4): hinge for the discriminator, ``relu(1 - D(y))`` for the
generator, and the relative L1 feature-matching loss over every layer of every
scale.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

WINDOWS = (2048, 1024, 512, 256, 128)


def _conv(cin: int, cout: int, kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1)) -> nn.Module:
    padding = tuple((k - 1) * d // 2 for k, d in zip(kernel, dilation))
    return weight_norm(nn.Conv2d(cin, cout, kernel, stride=stride, dilation=dilation, padding=padding))


class STFTDiscriminator(nn.Module):
    """One scale: ``x [B, 1, T]`` → (logits ``[B, 1, frames, bins']``, feature maps)."""

    def __init__(self, window: int, filters: int = 32):
        super().__init__()
        self.window, self.hop = window, window // 4
        self.register_buffer("hann", torch.hann_window(window), persistent=False)
        self.convs = nn.ModuleList([_conv(2, filters, (3, 9))] +
                                   [_conv(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1)) for d in (1, 2, 4)] +
                                   [_conv(filters, filters, (3, 3))])
        self.post = _conv(filters, 1, (3, 3))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = torch.stft(x.reshape(-1, x.shape[-1]), self.window, self.hop, window=self.hann, center=False,
                       normalized=True, return_complex=True)          # [B, bins, frames]
        z = torch.stack([z.real, z.imag], dim=1).transpose(2, 3)     # [B, 2, frames, bins]
        features = []
        for conv in self.convs:
            z = self.act(conv(z))
            features.append(z)
        return self.post(z), features


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, windows=WINDOWS, filters: int = 32):
        super().__init__()
        self.scales = nn.ModuleList([STFTDiscriminator(w, filters) for w in windows])

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [scale(x) for scale in self.scales]


def discriminator_loss(disc: MultiScaleSTFTDiscriminator, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Hinge loss on real ``x`` and (detached) decoded ``y``, both ``[B, 1, T]``, averaged over scales."""
    real, fake = disc(x), disc(y.detach())
    total = sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean() for (r, _), (f, _) in zip(real, fake))
    return total / len(real)


def generator_losses(disc: MultiScaleSTFTDiscriminator, y: torch.Tensor,
                     x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarial, feature matching) for decoded ``y`` against real ``x``.

    Feature matching is ``|D_k(y) - D_k(x)|_1 / mean |D_k(x)|`` per layer,
    averaged over layers and scales (the paper's relative L1).
    """
    with torch.no_grad():  # the real side only gives targets
        real = disc(x)
    fake = disc(y)
    adv = sum(torch.relu(1 - f).mean() for f, _ in fake) / len(fake)
    feat, n = 0.0, 0
    for (_, fr), (_, ff) in zip(real, fake):
        for a, b in zip(ff, fr):
            feat = feat + (a - b).abs().mean() / (b.abs().mean() + 1e-8)
            n += 1
    return adv, feat / n
