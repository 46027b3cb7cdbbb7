"""``encodec-np encode``, ``decode`` and ``roundtrip``: audio files ↔ ``.ecdc`` files."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .. import compression
from ..errors import EncodecError
from ..fileutil import write_bytes_atomic
from ..format import ecdc
from ..io.audio import audio_format
from ..longfile import encode_file
from .options import (
    add_audio_output_options,
    add_encoder_options,
    add_lm_model_option,
    add_model_option,
    add_run_options,
    add_tokens_option,
    check_io,
    decode_into,
    describe_codes,
    encoder_model,
    kbps,
    load_codec,
    pretrained_codecs,
    progress_bar,
    say,
    write_tokens,
)


def _encode(args, model, path):
    """Encode the audio file ``path`` and serialise it: ``(frames, samples, .ecdc bytes, the LM or None)``.

    Long files at the model's rate stream from the file in bounded memory (see :mod:`encodec_np.longfile`).
    """
    progress = progress_bar(args)
    lm = ecdc.resolve_lm(args.lm_model, model.name) if args.lm else None  # before the slow part
    frames, length = encode_file(model, path, progress)
    buf = io.BytesIO()
    ecdc.write_frames(buf, model.name, model.config, frames, length, use_lm=args.lm, lm=lm, progress=progress)
    return frames, length, buf.getvalue(), lm


def add_encode_parser(sub, common) -> None:
    """Add ``encode`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "encode", parents=[common], help="compress an audio file to .ecdc (Meta's format)",
        description="Compress an audio file (WAV, FLAC, OGG, ...) into an .ecdc file that Meta's "
                    "encodec tool also reads. The audio is converted to the model's sample rate and "
                    "channels first (mono: mean of the channels; stereo: mono duplicated).")
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("output", metavar="OUT.ecdc", help="compressed output")
    add_encoder_options(p)
    add_tokens_option(p)
    add_run_options(p)


def cmd_encode(args) -> int:
    """Run ``encodec-np encode``: an audio file → ``.ecdc`` (and ``--tokens``); returns the exit code."""
    inp, out = Path(args.input), Path(args.output)
    tokens = Path(args.tokens) if args.tokens else None
    check_io(args, [inp], [out] + ([tokens] if tokens else []))
    model = encoder_model(args)
    frames, length, data, _ = _encode(args, model, inp)
    write_bytes_atomic(out, data)
    if tokens:
        write_tokens(tokens, frames, model.config.quantizer.bins)
    k = np.asarray(frames[0][0]).shape[1]
    say(args, f"wrote {out}: {len(data):,} bytes for {length / model.sample_rate:.2f} s of audio "
               f"({kbps(len(data), length, model.sample_rate):.2f} kbps{', LM-coded' if args.lm else ''}); "
               f"{describe_codes(model, k, frames)}" + (f"; codes in {tokens}" if tokens else ""))
    return 0


def add_decode_parser(sub, common) -> None:
    """Add ``decode`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "decode", parents=[common], help="decompress an .ecdc file to audio",
        description="Decompress an .ecdc file (written by encodec-np or Meta's encodec) to an audio file; "
                    "the format follows the output name (.wav, .flac, .ogg, .mp3). The model is the one named in "
                    "the file (pretrained models are downloaded once and cached) unless --model is given.")
    p.add_argument("input", metavar="IN.ecdc", help="compressed input")
    p.add_argument("output", metavar="OUT.wav", help="audio output (.wav, .flac, .ogg, .mp3)")
    add_model_option(p)
    add_lm_model_option(p)
    p.add_argument("--trust-lm", action="store_true",
                   help="decode LM-coded files that carry no code checksum (written by Meta's tool); "
                        "the codes may come back wrong without an error")
    add_audio_output_options(p)
    add_tokens_option(p)
    add_run_options(p)


def cmd_decode(args) -> int:
    """Run ``encodec-np decode``: ``.ecdc`` → an audio file (and ``--tokens``); returns the exit code."""
    inp, out = Path(args.input), Path(args.output)
    tokens = Path(args.tokens) if args.tokens else None
    check_io(args, [inp], [out] + ([tokens] if tokens else []))

    audio_format(out)  # an unknown audio suffix fails before the work
    data = inp.read_bytes()
    meta = ecdc.read_header(data)
    if args.model is None and meta["m"] not in pretrained_codecs():
        raise EncodecError(f"{inp} was compressed with the model {meta['m']!r}, which is not a pretrained "
                           "name; pass its checkpoint with --model PATH")
    model = compression.resolve_model(load_codec(args, args.model or meta["m"]), meta["m"])
    progress = progress_bar(args)
    meta, frames = ecdc.read_frames(io.BytesIO(data), model.config, lm=args.lm_model, progress=progress,
                                    trust_lm=args.trust_lm)
    samples, subtype = decode_into(args, model, frames, meta["al"], out, progress)
    if tokens:
        write_tokens(tokens, frames, model.config.quantizer.bins)
    say(args, f"wrote {out}: {samples / model.sample_rate:.2f} s, {model.sample_rate} Hz, "
               f"{model.channels} channel(s), {subtype}; from {describe_codes(model, meta['nc'], frames)}"
               + (f"; codes in {tokens}" if tokens else ""))
    return 0


def add_roundtrip_parser(sub, common) -> None:
    """Add ``roundtrip`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "roundtrip", parents=[common], help="encode and decode an audio file (hear the codec)",
        description="Compress an audio file to .ecdc bytes in memory and decompress them again, writing "
                    "the decoded audio: exactly what encode followed by decode gives, without the file.")
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("output", metavar="OUT.wav", help="decoded audio output (.wav, .flac, .ogg, .mp3)")
    add_encoder_options(p)
    add_audio_output_options(p)
    add_tokens_option(p)
    add_run_options(p)


def cmd_roundtrip(args) -> int:
    """Run ``encodec-np roundtrip``: an audio file → ``.ecdc`` bytes → an audio file; returns the exit code."""
    inp, out = Path(args.input), Path(args.output)
    tokens = Path(args.tokens) if args.tokens else None
    check_io(args, [inp], [out] + ([tokens] if tokens else []))
    audio_format(out)
    model = encoder_model(args)
    frames, length, data, lm = _encode(args, model, inp)
    meta, decoded_frames = ecdc.read_frames(io.BytesIO(data), model.config, lm=lm)
    samples, subtype = decode_into(args, model, decoded_frames, meta["al"], out, progress_bar(args))
    if tokens:
        write_tokens(tokens, frames, model.config.quantizer.bins)
    say(args, f"wrote {out}: {samples / model.sample_rate:.2f} s, {model.sample_rate} Hz, {model.channels} "
               f"channel(s), {subtype}; via {len(data):,} bytes of .ecdc "
               f"({kbps(len(data), length, model.sample_rate):.2f} kbps); "
               f"{describe_codes(model, meta['nc'], frames)}")
    return 0
