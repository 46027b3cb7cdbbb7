"""Model configuration: frozen dataclasses and the published presets.

The field names follow the official ``encodec`` constructors
(``SEANetEncoder``, ``ResidualVectorQuantizer``, ``EncodecModel``) so a
porter can read them side by side.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .errors import EncodecError

NORMS = ("weight_norm", "time_group_norm", "none")
PAD_MODES = ("reflect", "constant", "replicate")


@dataclass(frozen=True)
class SEANetConfig:
    """SEANet encoder/decoder hyper-parameters (shared by both halves).

    ``ratios`` is in decoder order (upsampling); the encoder uses it reversed.
    """

    channels: int = 1
    dimension: int = 128
    n_filters: int = 32
    n_residual_layers: int = 1
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    norm: str = "weight_norm"
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    causal: bool = True
    pad_mode: str = "reflect"
    true_skip: bool = False
    compress: int = 2
    lstm: int = 2
    trim_right_ratio: float = 1.0

    def __post_init__(self):
        if self.norm not in NORMS:
            raise EncodecError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.pad_mode not in PAD_MODES:
            raise EncodecError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.causal and self.norm == "time_group_norm":
            raise EncodecError("time_group_norm is not causal; use causal=False or weight_norm")
        if not self.causal and self.trim_right_ratio != 1.0:
            raise EncodecError("trim_right_ratio != 1 only makes sense for causal models")
        if not 0.0 <= self.trim_right_ratio <= 1.0:
            raise EncodecError("trim_right_ratio must lie in [0, 1]")
        if self.channels < 1 or self.n_filters < 1 or self.dimension < 1:
            raise EncodecError("channels, n_filters and dimension must be positive")
        if not self.ratios or any(r < 1 for r in self.ratios):
            raise EncodecError(f"ratios must be positive integers, got {self.ratios}")

    @property
    def hop_length(self) -> int:
        """Samples per code frame: the product of the ratios."""
        return math.prod(self.ratios)


@dataclass(frozen=True)
class RVQConfig:
    """Residual vector quantizer: ``n_q`` codebooks of ``bins`` vectors of ``dimension``."""

    dimension: int = 128
    n_q: int = 32
    bins: int = 1024

    def __post_init__(self):
        if self.bins < 2 or self.bins & (self.bins - 1):
            raise EncodecError(f"quantizer bins must be a power of 2, got {self.bins}")
        if self.n_q < 1:
            raise EncodecError(f"n_q must be >= 1, got {self.n_q}")

    @property
    def bits_per_codebook(self) -> int:
        return int(math.log2(self.bins))


@dataclass(frozen=True)
class EncodecConfig:
    """A whole EnCodec model.

    ``segment`` is in seconds (``None``: the whole signal in one pass);
    ``overlap`` is the fraction of a segment shared by neighbours.
    """

    name: str
    sample_rate: int
    seanet: SEANetConfig
    quantizer: RVQConfig
    target_bandwidths: tuple[float, ...]
    normalize: bool = False
    segment: float | None = None
    overlap: float = 0.01

    def __post_init__(self):
        if self.seanet.dimension != self.quantizer.dimension:
            raise EncodecError("SEANet dimension and quantizer dimension differ "
                               f"({self.seanet.dimension} vs {self.quantizer.dimension})")
        if self.sample_rate < 1:
            raise EncodecError(f"sample_rate must be positive, got {self.sample_rate}")

    @property
    def channels(self) -> int:
        return self.seanet.channels

    @property
    def frame_rate(self) -> int:
        """Code frames per second, ``ceil(sample_rate / hop_length)`` as official."""
        return math.ceil(self.sample_rate / self.seanet.hop_length)

    @property
    def segment_length(self) -> int | None:
        return None if self.segment is None else int(self.segment * self.sample_rate)

    @property
    def segment_stride(self) -> int | None:
        length = self.segment_length
        return None if length is None else max(1, int((1 - self.overlap) * length))

    def replace(self, **changes) -> "EncodecConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EncodecConfig":
        """Inverse of :meth:`to_dict` (lists become tuples)."""
        try:
            d = dict(d)
            seanet = dict(d.pop("seanet"))
            seanet["ratios"] = tuple(seanet["ratios"])
            return cls(seanet=SEANetConfig(**seanet), quantizer=RVQConfig(**d.pop("quantizer")),
                       target_bandwidths=tuple(float(b) for b in d.pop("target_bandwidths")), **d)
        except (KeyError, TypeError) as exc:
            raise EncodecError(f"invalid model configuration: {exc}") from exc


def encodec_24khz() -> EncodecConfig:
    """Meta's causal 24 kHz mono model (``encodec_24khz-d7cc33bc.th``)."""
    return EncodecConfig(
        name="encodec_24khz", sample_rate=24_000,
        seanet=SEANetConfig(channels=1, causal=True, norm="weight_norm"),
        quantizer=RVQConfig(n_q=32, bins=1024),
        target_bandwidths=(1.5, 3.0, 6.0, 12.0, 24.0))


def encodec_48khz() -> EncodecConfig:
    """Meta's non-causal 48 kHz stereo model (``encodec_48khz-7e698e3e.th``)."""
    return EncodecConfig(
        name="encodec_48khz", sample_rate=48_000,
        seanet=SEANetConfig(channels=2, causal=False, norm="time_group_norm"),
        quantizer=RVQConfig(n_q=16, bins=1024),
        target_bandwidths=(3.0, 6.0, 12.0, 24.0),
        normalize=True, segment=1.0, overlap=0.01)


def encodec_32khz() -> EncodecConfig:
    """MusicGen's 32 kHz mono model (Hugging Face ``facebook/encodec_32khz``)."""
    return EncodecConfig(
        name="encodec_32khz", sample_rate=32_000,
        seanet=SEANetConfig(channels=1, n_filters=64, ratios=(8, 5, 4, 4), causal=False,
                            norm="weight_norm", true_skip=True),
        quantizer=RVQConfig(n_q=4, bins=2048),
        target_bandwidths=(2.2,))


def encodec_np_small_24khz() -> EncodecConfig:
    """The compact causal 24 kHz mono model trained for this project (``training/``).

    Meta's architecture at a quarter of the width (16 filters, 64-dim latent),
    16 codebooks of 1024 at 75 frames/s: 1.5, 3, 6 and 12 kbps. Its weights
    ship inside the package; ``load_model()`` returns it.
    """
    return EncodecConfig(
        name="encodec_np_small_24khz", sample_rate=24_000,
        seanet=SEANetConfig(channels=1, dimension=64, n_filters=16, causal=True, norm="weight_norm"),
        quantizer=RVQConfig(dimension=64, n_q=16, bins=1024),
        target_bandwidths=(1.5, 3.0, 6.0, 12.0))


#: Model structures by name: Meta's two, MusicGen's, and ours (shipped in the package).
PRESETS = {"encodec_24khz": encodec_24khz, "encodec_48khz": encodec_48khz,
           "encodec_32khz": encodec_32khz, "encodec_np_small_24khz": encodec_np_small_24khz}
