"""``encodec-np stream``: raw PCM ↔ a code stream (:mod:`encodec_np.format.codestream`) through pipes."""
from __future__ import annotations

import sys

import numpy as np

from .. import quantization as rvq
from ..errors import EncodecError
from ..format import codestream
from ..format.codestream import FrameReader
from ..streaming import StreamingDecoder, StreamingEncoder
from .options import (
    DEFAULT_BANDWIDTH,
    add_backend_options,
    add_model_option,
    add_quiet_option,
    encoder_model,
    positive_int,
)


def add_stream_parser(sub, common) -> None:
    """Add ``stream`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "stream", parents=[common], help="encode raw PCM from stdin to codes on stdout (or back with --decode)",
        description="Streaming codec for pipes (causal models such as encodec_24khz): reads raw "
                    "little-endian 16-bit PCM at the model's rate and channels (interleaved) from stdin "
                    "and writes a code stream: a header (b'ECST', version, codebooks, model name), int16 "
                    "codes frame by frame (the K codes of each frame in turn) as they become final, and an "
                    "end record (int16 -1, then the input's length in samples as u64). With --decode, reads "
                    "such a stream and writes 16-bit PCM; the header says the model and bandwidth (a "
                    "mismatch is an error) and the end record trims the output to the input's length. "
                    "With --raw, codes only, no header or end record; then the output is whole frames "
                    "(ceil(T / hop) * hop samples, longer than the input) and --decode needs the same -b. "
                    "Example: sox in.wav -t raw -r 24000 -c 1 -e signed -b 16 - | encodec-np stream -b 6 > codes.ecst")
    p.add_argument("--decode", action="store_true", help="codes on stdin → PCM on stdout")
    p.add_argument("--raw", action="store_true",
                   help="codes only: no header and no end record (the format before 0.2)")
    add_model_option(p)
    p.add_argument("-b", "--bandwidth", type=float, default=None, metavar="KBPS",
                   help=f"target bandwidth in kbps (default {DEFAULT_BANDWIDTH:g}); --decode takes it from the "
                        "stream's header (--raw: give the same -b)")
    p.add_argument("--chunk", type=positive_int, default=4800, metavar="SAMPLES",
                   help="samples (or frames with --decode) read per step (default 4800)")
    add_backend_options(p)
    add_quiet_option(p)


def _stream_bandwidth(model, name: str, codebooks: int, asked) -> None:
    """Set ``model``'s bandwidth from a code stream's header, checking it against the model and ``-b``."""
    if name != model.name:
        raise EncodecError(f"the code stream was made by the model {name!r}, not {model.name!r}; "
                           f"pass --model {name}")
    by_books = {_books(model, bw): bw for bw in model.target_bandwidths}
    if codebooks not in by_books:
        raise EncodecError(f"the code stream has {codebooks} codebooks per frame, which no bandwidth of "
                           f"{model.name} gives ({', '.join(f'{b:g}' for b in model.target_bandwidths)} kbps)")
    if asked is not None and _books(model, asked) != codebooks:
        raise EncodecError(f"the code stream was made at {by_books[codebooks]:g} kbps ({codebooks} codebooks), "
                           f"not -b {asked:g}; leave -b out to use the stream's")
    model.set_target_bandwidth(by_books[codebooks])


def _books(model, bandwidth: float) -> int:

    return rvq.num_codebooks(model.config.quantizer, model.frame_rate, bandwidth)


def cmd_stream(args) -> int:
    """Run ``encodec-np stream``: PCM on stdin → a code stream on stdout, or back with ``--decode``; returns 0."""
    asked = args.bandwidth
    if args.decode and not args.raw:
        args.bandwidth = None  # known once the header is read
    model = encoder_model(args)
    if model.segment_length is not None:
        raise EncodecError(f"{model.name} uses segments with scales; stream supports causal models "
                           "(encode whole files with `encodec-np encode` instead)")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    if args.decode:
        if not args.raw:
            name, books = codestream.read_header(stdin)
            _stream_bandwidth(model, name, books, asked)
        return _stream_decode(args, model, StreamingDecoder(model), stdin, write)
    k, unit = model.num_codebooks, 2 * model.channels
    if not args.raw:
        write(codestream.header_bytes(model.name, k))
    stream, pending, samples = StreamingEncoder(model), b"", 0
    while data := stdin.read(args.chunk * unit):
        data = pending + data
        usable = len(data) - len(data) % unit
        pending = data[usable:]
        if usable:
            pcm = np.frombuffer(data[:usable], dtype="<i2").reshape(-1, model.channels)
            samples += pcm.shape[0]
            write(stream.push((pcm.T[None] / 32768.0).astype(np.float32))[0].T.astype("<i2").tobytes())
    if pending:
        raise EncodecError(f"stdin ended inside a sample ({len(pending)} stray bytes)")
    if samples:
        write(stream.flush()[0].T.astype("<i2").tobytes())
    if not args.raw:
        write(codestream.end_bytes(samples))
    return 0


def _stream_decode(args, model, stream, stdin, write) -> int:
    """Codes → 16-bit PCM; the last frame's samples wait for the end record, which says where to cut."""
    reader = FrameReader(model.num_codebooks, framed=not args.raw)
    hop = 0 if args.raw else model.config.seanet.hop_length
    held = np.zeros((model.channels, 0), np.float32)
    written, pushed = 0, False

    def emit(audio: np.ndarray, final: bool = False) -> None:
        nonlocal held, written
        audio = np.concatenate([held, audio], axis=-1)
        keep = 0 if final else min(hop, audio.shape[-1])
        out, held = audio[:, :audio.shape[-1] - keep], audio[:, audio.shape[-1] - keep:]
        if final and reader.length is not None:
            out = out[:, :max(0, reader.length - written)]
        written += out.shape[-1]
        write(np.clip(np.round(out.T * 32767), -32768, 32767).astype("<i2").tobytes())

    while data := stdin.read(args.chunk * 2 * model.num_codebooks):
        codes = reader.feed(data)
        if codes.shape[-1]:
            emit(stream.push(codes[None])[0])
            pushed = True
    reader.close()
    if pushed:
        emit(stream.flush()[0], final=True)
    return 0
