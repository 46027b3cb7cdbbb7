"""Audio ↔ ``.ecdc`` through a model: :func:`compress` / :func:`decompress` and their file forms.

:mod:`encodec_np.format.ecdc` holds the bytes (header, packing, segments);
this module runs the model between them: the waveform is checked, encoded
(with progress per segment or chunk), written; read back, decoded and trimmed
to its length. The long-file path (:mod:`encodec_np.longfile`) calls
:func:`encode_frames` / :func:`decode_frames` for what fits in memory.
"""
from __future__ import annotations

import io
import warnings
from typing import BinaryIO, List, Tuple

import numpy as np

from .config import PRESETS
from .errors import EncodecError
from .format.arithmetic import EntropyCodingError
from .format.ecdc import MAX_AUDIO_LENGTH, Frame, read_frames, read_header, resolve_lm, write_frames
from .model import EncodecModel
from .progress import Progress, staged


def _check_waveform(model, wav) -> np.ndarray:
    if not isinstance(wav, np.ndarray):
        raise EncodecError(f"wav must be a NumPy array [C, T], got {type(wav).__name__}")
    if wav.ndim != 2:
        raise EncodecError(f"compress encodes one waveform [C, T], got shape {wav.shape}; "
                           "compress each item of a batch separately")
    if wav.shape[-1] > MAX_AUDIO_LENGTH:
        raise EncodecError(f"an .ecdc file holds at most {MAX_AUDIO_LENGTH} samples, got {wav.shape[-1]}")
    return model.check_audio(wav[None])


def encode_frames(model, wav, progress: Progress = None) -> List[Frame]:
    """``model.encode(wav[None])`` for one waveform ``[C, T]``, reporting progress per segment or chunk.

    Parameters
    ----------
    model : EncodecModel
    wav : [C, T] float ndarray
        At most :data:`MAX_AUDIO_LENGTH` samples.
    progress : callable, optional
        ``progress("encoding", done, total)``.

    Returns
    -------
    list of (codes [1, K, F] int64, scale [1, 1] or None)
    """
    return model.encode(_check_waveform(model, wav), progress=staged(progress, "encoding"))


def decode_frames(model, frames: List[Frame], audio_length: int, progress: Progress = None) -> np.ndarray:
    """``model.decode(frames)`` trimmed to ``audio_length``: ``[C, audio_length]`` float32.

    Parameters
    ----------
    model : EncodecModel
    frames : list of (codes [1, K, F] int, scale [1, 1] or None)
        As :func:`read_frames` returns them.
    audio_length : int
    progress : callable, optional
        ``progress("decoding", done, total)``.

    Raises
    ------
    EncodecError
        The decoded samples are not finite.
    """
    out = model.decode(frames, progress=staged(progress, "decoding"))
    out = np.ascontiguousarray(out[0, :, :int(audio_length)], dtype=np.float32)
    if not np.isfinite(out).all():
        raise EncodecError("decoding gave NaN or Inf samples: the scales in the file are corrupt or absurd")
    return out


def resolve_model(model, name: str):
    """``model`` if its name is ``name``; with ``model=None``, the shipped or pretrained model ``name``.

    Parameters
    ----------
    model : EncodecModel or None
    name : str
        The model named in a file's header; another model's name raises :class:`EncodecError`.
    """
    if model is None:
        if name not in PRESETS:
            raise EncodecError(f"the audio was compressed with the model {name!r}, which cannot be fetched by "
                               f"name (known: encodec_np_small_24khz, shipped; encodec_24khz, encodec_48khz, downloaded); "
                               "pass that model: "
                               "decompress(data, model=encodec_np.load_model(path)) or --model PATH")
        return EncodecModel.from_pretrained(name)
    if getattr(model, "name", None) != name:
        raise EncodecError(f"the audio was compressed with the model {name!r}, but the model given is "
                           f"{getattr(model, 'name', type(model).__name__)!r}; decode with {name!r}")
    return model


# --------------------------------------------------------------------------- public API
def compress_to_file(model, wav, fo: BinaryIO, use_lm: bool = False, lm=None, *,
                     progress: Progress = None) -> None:
    """Compress ``wav [C, T]`` (at ``model.sample_rate``, ``model.channels``) into the file object ``fo``.

    Uses the model's current bandwidth (:meth:`EncodecModel.set_target_bandwidth`).
    A file the LM cannot code is written without it, with a warning.

    Parameters
    ----------
    model : EncodecModel
    wav : [C, T] float ndarray
        At ``model.sample_rate`` with ``model.channels``.
    fo : binary file object
    use_lm : bool
        Entropy code the codes with the language model (smaller, much slower).
    lm : LMModel, str or PathLike, optional
        A loaded LM, a name or a path; default: the LM matching the model, downloaded once.
    progress : callable, optional
        ``progress(stage, done, total)``, called after each segment.
    """
    if use_lm:
        lm = resolve_lm(lm, model.name)  # before the slow encode: fail fast
    frames = encode_frames(model, wav, progress)
    if not use_lm:
        write_frames(fo, model.name, model.config, frames, wav.shape[-1], progress=progress)
        return
    # Meta's coder cannot represent a few (rare) segments; the "lm" flag covers the
    # whole file, so such a file is written without the LM rather than half-written.
    buffer = io.BytesIO()
    try:
        write_frames(buffer, model.name, model.config, frames, wav.shape[-1], use_lm=True, lm=lm, progress=progress)
    except EntropyCodingError as exc:
        warnings.warn(f"entropy coding failed ({exc}); writing the file without the LM instead", stacklevel=2)
        buffer = io.BytesIO()
        write_frames(buffer, model.name, model.config, frames, wav.shape[-1], progress=progress)
    fo.write(buffer.getvalue())


def compress(model, wav, use_lm: bool = False, lm=None, *, progress: Progress = None) -> bytes:
    """Compress ``wav [C, T]`` to ``.ecdc`` bytes; see :func:`compress_to_file`.

    Parameters
    ----------
    model, wav, use_lm, lm, progress
        As for :func:`compress_to_file`.

    Returns
    -------
    bytes
    """
    fo = io.BytesIO()
    compress_to_file(model, wav, fo, use_lm=use_lm, lm=lm, progress=progress)
    return fo.getvalue()


def decompress_from_file(fo: BinaryIO, model=None, lm=None, *, progress: Progress = None,
                         trust_lm: bool = False) -> Tuple[np.ndarray, int]:
    """Decompress an ``.ecdc`` stream: ``(wav [C, al] float32, sample_rate)``.

    Parameters
    ----------
    fo : binary file object
        Read from its current position.
    model : EncodecModel, optional
        Must carry the name in the header; ``None`` loads the model of that
        name (:func:`resolve_model`).
    lm : LMModel, str or PathLike, optional
        For LM-coded files (default: the LM matching the model); their codes
        are checked against the code checksum.
    progress : callable, optional
        ``progress(stage, done, total)`` after each segment.
    trust_lm : bool
        Accept LM-coded files without a checksum (see :func:`read_frames`).

    Returns
    -------
    wav : [C, al] float32
    sample_rate : int
    """
    meta = read_header(fo)
    model = resolve_model(model, meta["m"])
    meta, frames = read_frames(fo, model.config, header=meta, lm=lm, progress=progress, trust_lm=trust_lm)
    return decode_frames(model, frames, meta["al"], progress), model.sample_rate


def decompress(data, model=None, lm=None, *, progress: Progress = None,
               trust_lm: bool = False) -> Tuple[np.ndarray, int]:
    """Decompress ``.ecdc`` bytes: ``(wav [C, al] float32, sample_rate)``; see :func:`decompress_from_file`.

    Parameters
    ----------
    data : bytes-like
        A whole ``.ecdc`` file.
    model, lm, progress, trust_lm
        As for :func:`decompress_from_file`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EncodecError(f"decompress takes bytes, got {type(data).__name__}; "
                           "use decompress_from_file for file objects")
    return decompress_from_file(io.BytesIO(bytes(data)), model=model, lm=lm, progress=progress, trust_lm=trust_lm)
