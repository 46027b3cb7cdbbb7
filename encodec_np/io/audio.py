"""Audio files and conversion, without torch.

* :func:`read_audio` — any file libsndfile reads (WAV, FLAC, OGG/Vorbis, ...)
  as float32 ``[C, T]``.
* :func:`write_audio` — as Meta's ``save_audio``: peaks above 0.99 are clamped
  (with a warning) or, with ``rescale=True``, the whole signal is scaled down so
  the peak is 0.99; written to a temporary file and renamed (atomic).
* :func:`convert_audio` — as Meta's ``convert_audio``: channels first (mono =
  mean over channels, stereo = the mono channel duplicated), then resampling.
  Meta resamples with ``torchaudio.transforms.Resample`` (windowed sinc); we
  use :func:`scipy.signal.resample_poly` (polyphase, Kaiser window) with the
  reduced ratio, so resampled samples differ slightly from Meta's; lengths are
  the same, ``ceil(T * target_sr / sr)``.
"""
from __future__ import annotations

import math
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from ..config import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from ..errors import EncodecError
from ..fileutil import atomic_output
from ..validate import float_array

#: Peak amplitude written files are limited to (Meta's ``save_audio``).
LIMIT = 0.99

_SUBTYPES = {"pcm_16": "PCM_16", "pcm16": "PCM_16", "float": "FLOAT", "float32": "FLOAT",
             "pcm_24": "PCM_24", "pcm_32": "PCM_32", "double": "DOUBLE"}


def _check_waveform(wav, what: str = "audio", ndims=(2,)) -> np.ndarray:
    return float_array(wav, what, ndims, array_only=True)


def _check_rate(rate, what: str) -> int:
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, np.integer)) \
            or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise EncodecError(f"{what} must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, "
                           f"got {rate!r:.40}")
    return int(rate)


# libsndfile logs a chunk whose size runs past the end of the file as "data : 200 (should be 100)".
_SHORT_CHUNK = re.compile(r"^\s*(data|SSND|RIFF|riff|FORM)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
_PLACEHOLDER = 0xFFFFFF00  # sizes a streaming writer leaves for "unknown" (0xFFFFFFFF and near)


def _check_complete(path, info, frames_read: int | None = None) -> None:
    """Raise if the file holds fewer samples than its header says (a truncated file).

    libsndfile clamps a too-large data chunk to the bytes present and logs it;
    FLAC and others report the declared count in ``frames``, so fewer samples
    read than that is the other sign.
    """
    declared, present = int(info.frames), int(info.frames) if frames_read is None else frames_read
    sizes = {name: (int(claimed), int(actual)) for name, claimed, actual in _SHORT_CHUNK.findall(info.extra_info)}
    for name in ("data", "SSND", "RIFF", "riff", "FORM"):
        if name in sizes:
            claimed, actual = sizes[name]
            if claimed > actual and claimed < _PLACEHOLDER and actual > 0:
                declared = max(declared, round(int(info.frames) * claimed / actual))
            break
    if declared > present:
        raise EncodecError(f"{path}: the header says {declared} samples per channel but the file holds only "
                           f"{present} (truncated or damaged); repair it (e.g. sox in.wav out.wav keeps the "
                           "samples present) and try again")


def _checked_info(path):
    """``soundfile.info`` of ``path`` once every reader's checks passed: a sane rate, a complete file."""
    import soundfile as sf

    with _readable(path):
        info = sf.info(str(path))
    _check_file_rate(path, info.samplerate)
    _check_complete(path, info)
    return info


def _check_file_rate(path, sample_rate: int) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise EncodecError(f"{path}: sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz "
                           "(a damaged header?); resample it to a common rate first")


def warn_if_over_range(wav: np.ndarray, what) -> None:
    """One :class:`UserWarning` when input audio peaks above 1.0 (the model expects [-1, 1]).

    Parameters
    ----------
    wav : ndarray
        Audio of any shape.
    what
        Names the audio in the message (a path, ``"input"``).
    """
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak > 1.0:
        warnings.warn(f"{what} peaks at {peak:.3g}, beyond [-1, 1]: the codec expects full scale at 1.0, "
                      "so the result will be distorted; scale the input down first", UserWarning, stacklevel=2)


def _existing_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    if path.is_dir():
        raise EncodecError(f"{path} is a folder, not an audio file")
    return path


@contextmanager
def _readable(path):
    """Turn libsndfile's errors while reading ``path`` into one :class:`EncodecError`."""
    import soundfile as sf

    try:
        yield
    except (RuntimeError, sf.SoundFileError, ValueError, TypeError) as exc:
        raise EncodecError(f"{path}: unreadable audio file ({exc}); "
                           "formats read: WAV, FLAC, OGG and the others libsndfile supports") from exc


def read_audio(path) -> tuple[np.ndarray, int]:
    """Read an audio file as ``(wav [C, T] float32, sample_rate)``.

    Any format libsndfile reads (WAV, FLAC, OGG/Vorbis, AIFF, and MP3 with
    libsndfile >= 1.1). Integer PCM is scaled to [-1, 1).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    wav : [C, T] float32
    sample_rate : int

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    EncodecError
        Not a readable audio file, fewer samples than its header says,
        a sample rate outside 1 kHz..1 MHz, no samples, or NaN/Inf samples.
    """
    import soundfile as sf

    path = _existing_file(path)
    info = _checked_info(path)
    with _readable(path):
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    _check_complete(path, info, data.shape[0])
    if data.shape[0] == 0:
        raise EncodecError(f"{path} holds no samples")
    if not np.isfinite(data).all():
        raise EncodecError(f"{path} contains NaN or Inf samples; clean the file first")
    return np.ascontiguousarray(data.T), int(sample_rate)


def audio_format(path) -> str:
    """The libsndfile format (``"WAV"``, ``"FLAC"``, ``"OGG"``, ...) for an output file name.

    Parameters
    ----------
    path : str or Path
        Only its suffix is read; one libsndfile cannot write raises :class:`EncodecError`.
    """
    import soundfile as sf

    path = Path(path)
    ext = path.suffix.lstrip(".").upper()
    ext = {"OGA": "OGG", "AIF": "AIFF"}.get(ext, ext)
    if ext not in sf.available_formats():
        raise EncodecError(f"cannot tell the audio format from the name {path.name!r}; "
                           "end it in .wav, .flac, .ogg or .mp3")
    return ext


def output_subtype(path, subtype: str = "PCM_16") -> str:
    """The libsndfile subtype a file named ``path`` is written with when ``subtype`` is asked for.

    Formats that cannot hold 16-bit PCM take their own default for ``"PCM_16"``
    (``.ogg``: ``VORBIS``; ``.mp3``: ``MPEG_LAYER_III``); any other subtype
    they cannot hold is an :class:`EncodecError`.

    Parameters
    ----------
    path : str or Path
        The output's name (its suffix gives the format, :func:`audio_format`).
    subtype : str
        A libsndfile subtype, or an alias such as ``"float"`` or ``"pcm_24"``.
    """
    return _subtype_for(audio_format(path), subtype)


def _subtype_for(fmt: str, subtype: str) -> str:
    import soundfile as sf

    requested = _SUBTYPES.get(str(subtype).lower(), str(subtype).upper())
    if not sf.check_format(fmt, requested):
        if requested != "PCM_16":
            raise EncodecError(f"{fmt} files cannot hold {requested} samples; use a .wav or .flac name")
        requested = sf.default_subtype(fmt)
    return requested


class AudioWriter:
    """Write ``[C, n]`` blocks to an audio file as they come, atomically (see :func:`write_audio`).

    Samples beyond ±0.99 are clamped, with one :class:`UserWarning` when the
    file is closed. Use as a context manager; the file appears under its name
    only if the block exits without an error::

        with AudioWriter("out.wav", 24000, channels=1) as w:
            for block in blocks:
                w.write(block)
    """

    def __init__(self, path, sample_rate: int, channels: int, *, subtype: str = "PCM_16"):
        self.path = Path(path)
        self.sample_rate = _check_rate(sample_rate, "sample_rate")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            raise EncodecError(f"channels must be a positive integer, got {channels!r}")
        self.channels = int(channels)
        self.format = audio_format(self.path)
        self.subtype = _subtype_for(self.format, subtype)
        self.peak = 0.0  # the highest peak clamped so far
        self.frames = 0
        self._atomic = self._file = None

    def __enter__(self) -> "AudioWriter":
        import soundfile as sf

        self._atomic = atomic_output(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._file = sf.SoundFile(str(tmp), "w", samplerate=self.sample_rate, channels=self.channels,
                                      subtype=self.subtype, format=self.format)
        except (RuntimeError, sf.SoundFileError, ValueError, TypeError) as exc:
            self._atomic.__exit__(type(exc), exc, None)
            raise EncodecError(f"cannot write {self.path} as {self.format}/{self.subtype} with {self.channels} "
                               f"channel(s) at {self.sample_rate} Hz ({exc})") from exc
        return self

    def write(self, block: np.ndarray) -> None:
        """Append ``block [C, n]`` (float, finite).

        Parameters
        ----------
        block : [C, n] float ndarray
            ``C`` the file's channels; samples beyond ±0.99 are clamped.
        """
        block = _check_waveform(block, "audio to write")
        if block.shape[0] != self.channels:
            raise EncodecError(f"this file has {self.channels} channel(s); got a block of shape {block.shape}")
        peak = float(np.abs(block).max())
        if peak > float(block.dtype.type(LIMIT)):  # 0.99 rounded to the block's dtype is within the limit
            self.peak = max(self.peak, peak)
            block = np.clip(block, -LIMIT, LIMIT)
        self._file.write(np.ascontiguousarray(block.T, dtype=np.float64 if self.subtype == "DOUBLE" else np.float32))
        self.frames += block.shape[-1]

    def __exit__(self, *exc_info) -> None:
        self._file.close()
        self._atomic.__exit__(*exc_info)
        if exc_info[0] is None and self.peak:
            warnings.warn(f"clipping: the audio peaks at {self.peak:.3g}, above the limit {LIMIT}; it was "
                          "clamped. Use rescale=True (-r/--rescale on the command line) to scale it down instead.",
                          UserWarning, stacklevel=2)


def write_audio(path, wav, sample_rate: int, *, rescale: bool = False, subtype: str = "PCM_16") -> Path:
    """Write ``wav [C, T]`` (or ``[T]``) to ``path``; the format follows the file name's suffix.

    As Meta's ``save_audio``: samples beyond ±0.99 are clamped, with a
    :class:`UserWarning`, unless ``rescale`` is true, in which case the whole
    signal is multiplied by ``0.99 / peak`` (quiet audio is never amplified).
    This applies to float output too.

    Parameters
    ----------
    path : str or Path
        The output file; its suffix gives the format (``.wav``, ``.flac``, ``.ogg``, ...).
    wav : [C, T] or [T] float ndarray
    sample_rate : int
    rescale : bool
        Scale a signal that peaks above 0.99 down instead of clamping it.
    subtype : str
        ``"PCM_16"`` (default, as Meta) or ``"FLOAT"`` (32-bit float WAV), or
        any libsndfile subtype the format supports. Formats without PCM_16
        (OGG/Vorbis) get their default subtype.

    The file is written under a temporary name in the same folder and renamed
    when complete: an interrupted call never leaves a partial file at ``path``.
    """
    wav = np.asarray(wav) if not isinstance(wav, np.ndarray) else wav
    wav = _check_waveform(wav, "audio to write", ndims=(1, 2))
    if wav.ndim == 1:
        wav = wav[None]
    peak = float(np.abs(wav).max())
    if rescale and peak > LIMIT:
        wav = np.clip(wav * (LIMIT / peak), -LIMIT, LIMIT)  # the clip only absorbs rounding: no warning
    with AudioWriter(path, sample_rate, wav.shape[0], subtype=subtype) as writer:
        writer.write(wav)
    return Path(path)


def audio_info(path) -> tuple[int, int, int]:
    """``(sample_rate, channels, frames)`` of an audio file, with :func:`read_audio`'s errors.

    Parameters
    ----------
    path : str or Path
        Only the header is read.
    """
    path = _existing_file(path)
    info = _checked_info(path)
    if info.frames <= 0:
        raise EncodecError(f"{path} holds no samples")
    return int(info.samplerate), int(info.channels), int(info.frames)


def read_blocks(path, block: int) -> Iterator[np.ndarray]:
    """Read an audio file ``block`` samples at a time: float32 ``[C, n]`` blocks (the last may be shorter).

    The memory is that of one block, whatever the file's length; errors as :func:`read_audio`.

    Parameters
    ----------
    path : str or Path
    block : int
        Samples per channel in each block.

    Yields
    ------
    [C, n] float32
    """
    import soundfile as sf

    path = _existing_file(path)
    done = 0
    info = _checked_info(path)
    with _readable(path):
        f = sf.SoundFile(str(path))
    with f:
        while True:
            with _readable(path):  # a file can be corrupt past its header
                data = f.read(block, dtype="float32", always_2d=True)
            if data.shape[0] == 0:
                _check_complete(path, info, done)
                break
            if not np.isfinite(data).all():
                raise EncodecError(f"{path} contains NaN or Inf samples (after {done} samples); clean the file first")
            done += data.shape[0]
            yield np.ascontiguousarray(data.T)


def convert_audio(wav, sr: int, target_sr: int, target_channels: int) -> np.ndarray:
    """Convert ``wav [C, T]`` or ``[B, C, T]`` to ``target_channels`` and ``target_sr``.

    As Meta's ``convert_audio``: to mono, the mean over channels; from mono to
    several channels, the mono channel repeated; other channel counts cannot be
    converted (:class:`EncodecError`). Then, if the rates differ, resampling
    with :func:`scipy.signal.resample_poly` by ``target_sr / sr`` reduced to
    lowest terms (44100 → 48000 is up 160, down 147); the output has
    ``ceil(T * target_sr / sr)`` samples.

    Parameters
    ----------
    wav : [C, T] or [B, C, T] float ndarray
    sr : int
        The sample rate of ``wav``.
    target_sr, target_channels : int

    Returns
    -------
    [target_channels, T'] or [B, target_channels, T']
        Contiguous, in the input's float dtype.
    """
    if not isinstance(wav, np.ndarray):
        wav = np.asarray(wav)
    wav = _check_waveform(wav, "audio", ndims=(2, 3))
    sr = _check_rate(sr, "sample rate")
    target_sr = _check_rate(target_sr, "target sample rate")
    if isinstance(target_channels, bool) or not isinstance(target_channels, (int, np.integer)) \
            or target_channels < 1:
        raise EncodecError(f"target_channels must be a positive integer, got {target_channels!r}")
    channels = wav.shape[-2]
    if channels != target_channels:
        if target_channels == 1:
            wav = wav.mean(axis=-2, keepdims=True, dtype=wav.dtype)
        elif channels == 1:
            wav = np.repeat(wav, target_channels, axis=-2)
        else:
            raise EncodecError(f"cannot convert {channels}-channel audio to {target_channels} channels: "
                               "only mixing down to mono and duplicating mono are defined; "
                               "select or mix the channels yourself first")
    if sr != target_sr:
        from scipy.signal import resample_poly

        g = math.gcd(sr, target_sr)
        up, down = target_sr // g, sr // g
        if max(up, down) > 1_000_000:
            raise EncodecError(f"cannot resample {sr} Hz to {target_sr} Hz: the ratio {up}/{down} "
                               "is too complex; resample to a common rate first")
        out = resample_poly(wav, up, down, axis=-1)
        wav = out.astype(wav.dtype, copy=False)
    return np.ascontiguousarray(wav)


def read_for_model(path, model, *, resample: bool = True) -> np.ndarray:
    """A whole audio file as ``model``'s input.

    Parameters
    ----------
    path : str or Path
        Any file :func:`read_audio` reads.
    model : EncodecModel
        Gives the sample rate and channel count.
    resample : bool
        Convert another sample rate to the model's (as the official code does);
        when False, a file at another rate is an error (the golden vectors keep
        the file's samples exactly).

    Returns
    -------
    [C, T] float32
        Channels converted as the official ``convert_audio`` does.
    """
    wav, sample_rate = read_audio(path)
    warn_if_over_range(wav, path)
    if not resample and sample_rate != model.sample_rate:
        raise EncodecError(f"{path} is sampled at {sample_rate} Hz but {model.name} needs "
                           f"{model.sample_rate} Hz; resample it first")
    return convert_audio(wav, sample_rate, model.sample_rate, model.channels).astype(np.float32, copy=False)
