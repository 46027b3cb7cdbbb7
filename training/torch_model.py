"""The trainable model: Meta's own ``encodec`` modules, built from our config.

Using the official classes (SEANet, the EMA/k-means RVQ with dead-code
replacement) means training and export need no re-implementation, and the
parity test compares encodec_np with the very framework the weights came from.
"""
from __future__ import annotations

import sys
import types

import torch

from encodec_np.config import EncodecConfig


def import_encodec():
    """Import Meta's package; its utils import torchaudio, which a stub satisfies."""
    if "torchaudio" not in sys.modules:
        stub = types.ModuleType("torchaudio")
        stub.transforms = types.SimpleNamespace(Resample=None)
        sys.modules["torchaudio"] = stub
        sys.modules["torchaudio.transforms"] = stub.transforms
    import encodec
    return encodec


def build_torch_model(config: EncodecConfig):
    """An official ``encodec.EncodecModel`` with the structure of ``config`` (untrained)."""
    encodec = import_encodec()
    from encodec.modules import SEANetDecoder, SEANetEncoder
    from encodec.quantization import ResidualVectorQuantizer

    s = config.seanet
    common = dict(channels=s.channels, dimension=s.dimension, n_filters=s.n_filters,
                  n_residual_layers=s.n_residual_layers, ratios=list(s.ratios), norm=s.norm,
                  kernel_size=s.kernel_size, last_kernel_size=s.last_kernel_size,
                  residual_kernel_size=s.residual_kernel_size, dilation_base=s.dilation_base,
                  causal=s.causal, pad_mode=s.pad_mode, true_skip=s.true_skip,
                  compress=s.compress, lstm=s.lstm)
    encoder = SEANetEncoder(**common)
    decoder = SEANetDecoder(**common, trim_right_ratio=s.trim_right_ratio)
    q = config.quantizer
    quantizer = ResidualVectorQuantizer(dimension=q.dimension, n_q=q.n_q, bins=q.bins,
                                        kmeans_init=True, kmeans_iters=50, threshold_ema_dead_code=2)
    return encodec.EncodecModel(encoder, decoder, quantizer, list(config.target_bandwidths),
                                config.sample_rate, config.channels, normalize=config.normalize,
                                segment=config.segment, overlap=config.overlap, name=config.name)


def signal_preserving_init(model, gain: float = 1.0, last_gain: float = 0.1) -> None:
    """Re-initialise the weight-normed convolutions so the input reaches the output.

    PyTorch's default init shrinks activations about 2x per layer while the
    biases stay, so an untrained SEANet passes the input to the output with a
    gain near 1e-5 (doubling the input moved the output by 8e-8, measured): the
    decoder sees a constant and settles on silence. Unit row norms (``weight_g``)
    and zero biases keep the signal through all 32 convolutions; the output conv
    starts small so the first reconstructions are not loud.
    """
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "weight_g"):
                module.weight_g.fill_(gain)
                if module.bias is not None:
                    module.bias.zero_()
        model.decoder.model[-1].conv.conv.weight_g.fill_(last_gain)
