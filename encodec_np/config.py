"""Model configuration: frozen dataclasses and the published presets.

The field names follow the official ``encodec`` constructors
(``SEANetEncoder``, ``ResidualVectorQuantizer``, ``EncodecModel``) so a
porter can read them side by side.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

from .errors import BandwidthError, EncodecError

NORMS = ("weight_norm", "time_group_norm", "none")
PAD_MODES = ("reflect", "constant", "replicate")

# Ranges every field is checked against, whatever the source (a preset, config=, a
# checkpoint's metadata, a Hugging Face config.json): wide enough for every published
# model and plausible custom ones, narrow enough that no value can ask for an absurd
# allocation or loop before the weights are matched against it.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 1_000_000
#: The bandwidth (kbps) used where none is given: the command line's -b, tokenize_dataset's None.
DEFAULT_BANDWIDTH = 6.0
MAX_WIDTH = 4096      # channels of any layer's input (n_filters, dimension)
MAX_KERNEL = 255
MAX_HOP = 1 << 16     # samples per frame (Meta's: 320)
MAX_DILATION = 1024   # of the last residual unit
MAX_BANDWIDTH = 10_000.0  # kbps


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _check_int(obj, name: str, lo: int, hi: int) -> None:
    value = getattr(obj, name)
    if not _is_int(value) or not lo <= value <= hi:
        raise EncodecError(f"{type(obj).__name__}.{name} must be an integer in {lo}..{hi}, got {value!r:.60}")


def _check_real(obj, name: str, lo: float, hi: float) -> None:
    value = getattr(obj, name)
    if not _is_real(value) or not lo <= value <= hi:
        raise EncodecError(f"{type(obj).__name__}.{name} must be a number in [{lo}, {hi}], got {value!r:.60}")


def _check_bool(obj, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, (bool, np.bool_)):
        raise EncodecError(f"{type(obj).__name__}.{name} must be true or false, got {value!r:.60}")


def _check_choice(obj, name: str, choices: tuple) -> None:
    value = getattr(obj, name)
    if not isinstance(value, str) or value not in choices:
        raise EncodecError(f"{type(obj).__name__}.{name} must be one of {choices}, got {value!r:.60}")


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
        for name, lo, hi in (("channels", 1, 64), ("dimension", 1, MAX_WIDTH), ("n_filters", 1, MAX_WIDTH),
                             ("n_residual_layers", 0, 32), ("kernel_size", 1, MAX_KERNEL),
                             ("last_kernel_size", 1, MAX_KERNEL), ("residual_kernel_size", 1, MAX_KERNEL),
                             ("dilation_base", 1, 16), ("compress", 1, 64), ("lstm", 0, 16)):
            _check_int(self, name, lo, hi)
        for name in ("causal", "true_skip"):
            _check_bool(self, name)
        _check_choice(self, "norm", NORMS)
        _check_choice(self, "pad_mode", PAD_MODES)
        ratios = self.ratios
        if not isinstance(ratios, tuple) or not 1 <= len(ratios) <= 16 \
                or not all(_is_int(r) and 1 <= r <= 1024 for r in ratios):
            raise EncodecError(f"ratios must be a tuple of 1 to 16 integers in 1..1024, got {ratios!r:.100}")
        if math.prod(ratios) > MAX_HOP:
            raise EncodecError(f"ratios {ratios} give a hop of {math.prod(ratios)} samples; the limit is {MAX_HOP}")
        if self.dilation_base ** max(0, self.n_residual_layers - 1) > MAX_DILATION:
            raise EncodecError(f"dilation_base {self.dilation_base} over {self.n_residual_layers} residual layers "
                               f"dilates beyond {MAX_DILATION}; use fewer layers or a smaller base")
        _check_real(self, "trim_right_ratio", 0.0, 1.0)
        if self.causal and self.norm == "time_group_norm":
            raise EncodecError("time_group_norm is not causal; use causal=False or weight_norm")
        if not self.causal and self.trim_right_ratio != 1.0:
            raise EncodecError("trim_right_ratio != 1 only makes sense for causal models")

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
        _check_int(self, "dimension", 1, MAX_WIDTH)
        _check_int(self, "n_q", 1, 1024)
        _check_int(self, "bins", 2, 1 << 16)
        if self.bins & (self.bins - 1):
            raise EncodecError(f"quantizer bins must be a power of 2, got {self.bins}")

    @property
    def bits_per_codebook(self) -> int:
        """Bits of one code: ``log2(bins)``."""
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
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 200:
            raise EncodecError(f"name must be a string of 1 to 200 characters, got {self.name!r:.100}")
        if not isinstance(self.seanet, SEANetConfig) or not isinstance(self.quantizer, RVQConfig):
            raise EncodecError("seanet and quantizer must be a SEANetConfig and an RVQConfig")
        _check_int(self, "sample_rate", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
        bandwidths = self.target_bandwidths
        if not isinstance(bandwidths, tuple) or not 1 <= len(bandwidths) <= 64 \
                or not all(_is_real(b) and 0 < b <= MAX_BANDWIDTH for b in bandwidths):
            raise EncodecError("target_bandwidths must be a tuple of 1 to 64 bandwidths in kbps, each in "
                               f"(0, {MAX_BANDWIDTH:g}], got {bandwidths!r:.100}")
        _check_bool(self, "normalize")
        if self.segment is not None:
            _check_real(self, "segment", 0.0, 3600.0)
            if self.segment * self.sample_rate < 1:
                raise EncodecError(f"segment {self.segment} s is shorter than one sample")
        _check_real(self, "overlap", 0.0, 0.99)
        if self.seanet.dimension != self.quantizer.dimension:
            raise EncodecError("SEANet dimension and quantizer dimension differ "
                               f"({self.seanet.dimension} vs {self.quantizer.dimension})")

    @property
    def channels(self) -> int:
        """Audio channels: the SEANet's."""
        return self.seanet.channels

    @property
    def frame_rate(self) -> int:
        """Code frames per second, ``ceil(sample_rate / hop_length)`` as official."""
        return math.ceil(self.sample_rate / self.seanet.hop_length)

    @property
    def segment_length(self) -> int | None:
        """Samples per segment, ``int(segment * sample_rate)``; None without segments."""
        return None if self.segment is None else int(self.segment * self.sample_rate)

    @property
    def segment_stride(self) -> int | None:
        """Samples between segment starts, ``max(1, int((1 - overlap) * segment_length))``; None without segments."""
        length = self.segment_length
        return None if length is None else max(1, int((1 - self.overlap) * length))

    def checked_bandwidth(self, bandwidth: float | None = None) -> float:
        """``bandwidth`` (``None``: :data:`DEFAULT_BANDWIDTH`) if the model has it, else :class:`BandwidthError`.

        Parameters
        ----------
        bandwidth : float, optional
            kbps, one of :attr:`target_bandwidths`.

        Returns
        -------
        float
        """
        choices = ", ".join(f"{b:g}" for b in self.target_bandwidths)
        if bandwidth is None:
            if DEFAULT_BANDWIDTH not in self.target_bandwidths:
                raise BandwidthError(f"{self.name} has no {DEFAULT_BANDWIDTH:g} kbps; choose from {choices}")
            return DEFAULT_BANDWIDTH
        if bandwidth not in self.target_bandwidths:
            raise BandwidthError(f"{self.name} supports {choices} kbps", bandwidth)
        return bandwidth

    def replace(self, **changes) -> "EncodecConfig":
        """A copy with some fields changed (``dataclasses.replace``), checked again.

        Parameters
        ----------
        **changes
            Field names and their new values.
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as plain nested dicts, for JSON (checkpoint metadata); see :meth:`from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EncodecConfig":
        """Inverse of :meth:`to_dict` (lists become tuples).

        Parameters
        ----------
        d : dict
            As :meth:`to_dict` gives it (or as read back from JSON).

        Raises
        ------
        EncodecError
            A missing, unknown or invalid field.
        """
        try:
            d = dict(d)
            seanet = dict(d.pop("seanet"))
            ratios, bandwidths = seanet.get("ratios"), d.pop("target_bandwidths")
            if not isinstance(ratios, (list, tuple)) or not isinstance(bandwidths, (list, tuple)):
                raise TypeError("ratios and target_bandwidths must be lists")
            seanet["ratios"] = tuple(ratios)
            return cls(seanet=SEANetConfig(**seanet), quantizer=RVQConfig(**d.pop("quantizer")),
                       target_bandwidths=tuple(float(b) if _is_real(b) else b for b in bandwidths), **d)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
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
