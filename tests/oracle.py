"""The official PyTorch ``encodec`` 0.1.1 as a test oracle (tests only; needs torch).

``official_model(name, seed)`` builds Meta's model with ``pretrained=False``,
perturbs every weight from ``seed`` and fills the codebooks with vectors drawn
from the encoder's own residuals, so codes are diverse (the untrained model's
codebooks are all zeros). ``save_th`` writes it with ``torch.save`` so our
``.th`` reader loads exactly the same weights.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# Meta's package is also the training framework (training/torch_model.py);
# one import shim serves both.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from torch_model import import_encodec  # noqa: E402


def official_model(name: str = "encodec_24khz", seed: int = 0):
    import torch

    encodec = import_encodec()
    ctor = {"encodec_24khz": encodec.EncodecModel.encodec_model_24khz,
            "encodec_48khz": encodec.EncodecModel.encodec_model_48khz}[name]
    torch.manual_seed(seed)
    model = ctor(pretrained=False)
    model.name = name
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):      # GroupNorm affine: around 1
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif pname.endswith("bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
        _fill_codebooks(model, gen)
    model.eval()
    return model


def _fill_codebooks(model, gen):
    """Codebook q = residual frames after q layers (+ noise): diverse, non-degenerate codes."""
    import torch

    x = 0.3 * torch.randn(2, model.channels, model.sample_rate // 2, generator=gen)
    x = torch.cumsum(x, dim=-1) / 30  # brown-ish noise: a more audio-like spectrum
    if model.normalize:
        x = x / x.pow(2).mean().sqrt()
    residual = model.encoder(x).permute(0, 2, 1).reshape(-1, model.quantizer.dimension)
    for layer in model.quantizer.vq.layers:
        book = layer._codebook
        idx = torch.randint(0, residual.shape[0], (book.codebook_size,), generator=gen)
        spread = residual.std() + 1e-3
        book.embed.copy_(residual[idx] + 0.3 * spread * torch.randn(book.embed.shape, generator=gen))
        book.inited.fill_(1)
        codes = book.quantize(residual)
        residual = residual - book.embed[codes]


def save_th(model, path) -> None:
    import torch

    torch.save(model.state_dict(), str(path))


def run_official(model, x: np.ndarray, bandwidth):
    """Official encode/decode of ``x [B, C, T]`` → (list of (codes, scale) as NumPy, decoded, forward)."""
    import torch

    model.set_target_bandwidth(bandwidth) if bandwidth is not None else setattr(model, "bandwidth", None)
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        frames = model.encode(xt)
        decoded = model.decode(frames)
    out = [(c.numpy(), None if s is None else s.numpy()) for c, s in frames]
    return out, decoded.numpy()
