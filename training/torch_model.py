"""The trainable model: Meta's own ``encodec`` modules, built from our config.

Using the official classes (SEANet, the EMA/k-means RVQ with dead-code
replacement) means training and export need no re-implementation, and the
parity test compares encodec_np with the very framework the weights came from.
"""
from __future__ import annotations

import sys
import types

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
