"""Audio files of any length in bounded memory: file → codes and codes → file.

For a causal model without segments (24 kHz) and a file longer than the
model's ``long_input_seconds``, :func:`encode_file` reads the file
``chunk_seconds`` at a time into :class:`~encodec_np.streaming.StreamingEncoder`
and :func:`decode_to_file` writes each chunk from
:class:`~encodec_np.streaming.StreamingDecoder` as it comes: only the codes
(a few kB per second) grow with the length, never the audio. The chunking is
the one ``model.encode`` / ``model.decode`` use for long arrays, so the codes
and samples are the same as reading the whole file into memory (tested).

The whole-array path remains where streaming cannot apply: files at another
sample rate (resampling reads the whole file), models with segments or
normalisation (48 kHz), short files, and ``rescale`` (the gain depends on the
peak of the whole output).
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from . import compression
from .errors import EncodecError
from .format.ecdc import MAX_AUDIO_LENGTH
from .io.audio import (
    AudioWriter,
    audio_info,
    convert_audio,
    read_blocks,
    read_for_model,
    warn_if_over_range,
    write_audio,
)
from .progress import report
from .streaming import StreamingDecoder, StreamingEncoder

Frame = Tuple[np.ndarray, object]


def streams_file(model, sample_rate: int, samples: int) -> bool:
    """Whether a file of ``samples`` at ``sample_rate`` goes through the streaming path.

    Parameters
    ----------
    model : EncodecModel
    sample_rate : int
        The file's; only a file at the model's rate streams (others are resampled whole).
    samples : int
        Per channel.
    """
    return sample_rate == model.sample_rate and model.chunks_input(samples)


def encode_file(model, path, progress=None) -> Tuple[List[Frame], int]:
    """Encode an audio file with ``model`` at its current bandwidth.

    Parameters
    ----------
    model : EncodecModel
    path : str or Path
        Any audio file :func:`~encodec_np.io.audio.read_audio` reads.
    progress : callable, optional
        ``progress(stage, done, total)``, called per chunk (or per segment).

    Returns
    -------
    frames : list of (codes [1, K, F] int64, scale [1, 1] or None)
        As :meth:`EncodecModel.encode` gives them for the file converted to
        the model's rate and channels.
    audio_length : int
        That converted length in samples.
    """
    sample_rate, _, frames = audio_info(path)
    if not streams_file(model, sample_rate, frames):
        wav = read_for_model(path, model)
        return compression.encode_frames(model, wav, progress), wav.shape[-1]

    block = max(1, int(model.chunk_seconds * sample_rate))
    total = -(-frames // block)
    enc = StreamingEncoder(model)
    parts, length, peak = [], 0, np.zeros(1, np.float32)
    for i, wav in enumerate(read_blocks(path, block)):
        peak = np.maximum(peak, np.abs(wav).max(initial=0.0))
        x = convert_audio(wav, sample_rate, sample_rate, model.channels).astype(np.float32, copy=False)
        parts.append(enc.push(x[None]))
        length += x.shape[-1]
        report(progress, "encoding", min(i + 1, total), total)
    parts.append(enc.flush())
    warn_if_over_range(peak, path)
    if length > MAX_AUDIO_LENGTH:
        raise EncodecError(f"an .ecdc file holds at most {MAX_AUDIO_LENGTH} samples, got {length}")
    return [(np.concatenate(parts, axis=-1), None)], length


def decode_to_file(model, frames: List[Frame], audio_length: int, path, *, subtype: str = "PCM_16",
                   rescale: bool = False, progress=None) -> int:
    """Decode ``frames`` (batch 1) and write the first ``audio_length`` samples to ``path``.

    As :func:`encodec_np.compression.decode_frames` followed by
    :func:`encodec_np.io.audio.write_audio` (same samples, same clamping and
    atomic write), chunk by chunk where the model streams.

    Parameters
    ----------
    model : EncodecModel
    frames : list of (codes [1, K, F] int, scale [1, 1] or None)
    audio_length : int
        Samples per channel to keep.
    path : str or Path
        The audio file to write; its suffix gives the format.
    subtype, rescale
        As for :func:`~encodec_np.io.audio.write_audio`.
    progress : callable, optional
        ``progress("decoding", done, total)``.

    Returns
    -------
    int
        Samples per channel written.
    """
    codes = model.check_frames(frames)[0][0]
    if rescale or codes.shape[0] != 1 or not model.chunks_input(codes.shape[-1] * model.config.seanet.hop_length):
        wav = compression.decode_frames(model, frames, audio_length, progress)
        write_audio(path, wav, model.sample_rate, rescale=rescale, subtype=subtype)
        return wav.shape[-1]

    step = max(1, int(model.chunk_seconds * model.frame_rate))
    total = -(-codes.shape[-1] // step)
    dec = StreamingDecoder(model)
    written = 0
    with AudioWriter(path, model.sample_rate, model.channels, subtype=subtype) as writer:
        for i, y in enumerate(dec.chunks(codes, step)):
            y = np.ascontiguousarray(y[0, :, :max(0, int(audio_length) - written)], dtype=np.float32)
            if y.shape[-1]:
                if not np.isfinite(y).all():
                    raise EncodecError("decoding gave NaN or Inf samples: the model's weights are corrupt or absurd")
                writer.write(y)
                written += y.shape[-1]
            if i < total:
                report(progress, "decoding", i + 1, total)
    return written
