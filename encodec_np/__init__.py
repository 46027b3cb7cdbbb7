"""encodec-np: Meta's EnCodec neural audio codec in NumPy, without PyTorch.

>>> import encodec_np
>>> model = encodec_np.load_model("encodec_24khz-d7cc33bc.th")   # doctest: +SKIP
>>> model.set_target_bandwidth(6.0)                               # doctest: +SKIP
>>> frames = model.encode(x)          # x [B, C, T] float32        # doctest: +SKIP
>>> y = model.decode(frames)                                      # doctest: +SKIP
"""
from . import functional, moved
from .compression import compress, decompress
from .config import EncodecConfig, RVQConfig, SEANetConfig, encodec_24khz, encodec_32khz, encodec_48khz
from .errors import CheckpointError, EncodecError
from .functional import (
    Decoder,
    Encoder,
    build,
    build_decoder,
    build_encoder,
    build_rvq,
    commitment_loss,
    decode,
    encode,
    init_codebooks,
    loss,
    output_size,
    rvq_dequantize,
    rvq_quantize,
    spectral_loss,
)
from .io.audio import convert_audio, read_audio, write_audio
from .io.checkpoint import read_checkpoint, save_model
from .model import EncodecModel, load_model
from .streaming import StreamingDecoder, StreamingEncoder

__version__ = "0.1.0"
moved.install(__name__)


def __getattr__(name):
    # The LM needs scipy.special (~0.5 s to import): load it only when asked for.
    if name == "load_lm":
        from .format.lm import load_lm
        return load_lm
    if name in moved.MOVED:  # encodec_np.ecdc and the other old module paths, as attributes
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'encodec_np' has no attribute {name!r}")


def available_backends() -> list[str]:
    """Backends that load on this machine, best first (``"numpy"`` is always there)."""
    from encodec_np.kernels import available_backends as _available

    return _available()


__all__ = [
    "EncodecModel", "EncodecConfig", "SEANetConfig", "RVQConfig", "encodec_24khz", "encodec_48khz",
    "encodec_32khz", "load_model", "save_model", "read_checkpoint", "available_backends",
    "EncodecError", "CheckpointError", "__version__",
    "compress", "decompress", "load_lm", "read_audio", "write_audio", "convert_audio",
    "StreamingEncoder", "StreamingDecoder",
    # the seed's functional API
    "functional", "build", "build_encoder", "build_decoder", "build_rvq", "init_codebooks",
    "rvq_quantize", "rvq_dequantize", "encode", "decode", "output_size", "commitment_loss",
    "spectral_loss", "loss", "Encoder", "Decoder",
]
