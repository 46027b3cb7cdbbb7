"""The ``encodec-np`` command line.

One function adds each subcommand's arguments (``add_<name>_parser``) and one
runs it (``cmd_<name>(args) -> exit code``); :data:`COMMANDS` maps the names
to both. Exit codes: 0 success, 2 usage error (argparse), 1 failure, reported
as one ``error: ...`` line on stderr (the traceback too with ``--debug``).

    encodec-np demo [--out DIR] [--input AUDIO] [--model NAME|PATH]   (offline; the shipped model and clip)
    encodec-np encode IN OUT.ecdc      [-b KBPS] [--hq | --model NAME|PATH] [--lm] [--tokens T.npy] [-f] [-q]
    encodec-np decode IN.ecdc OUT.wav  [--model NAME|PATH] [-r] [--float] [--tokens T.npy] [-f] [-q]
    encodec-np roundtrip IN OUT.wav    [-b KBPS] [--hq | --model NAME|PATH] [--lm] [-r] [--float] [-f] [-q]
    encodec-np info FILE               (.ecdc, checkpoint or audio file)
    encodec-np convert CKPT OUT.safetensors [--config PRESET|JSON] [--float16] [-f]
    encodec-np golden OUT.npz [--model PATH|NAME] [--config PRESET] [--seed N]
                              [--bandwidth BW] [--input WAV] [--length SAMPLES]
                              [--signal KIND] [--dtype float32|float64]
    encodec-np tokenize INPUT_DIR_OR_MANIFEST OUT_DIR [-b KBPS[,KBPS]] [--workers N] [--dask [ADDRESS]]
    encodec-np detokenize SHARD_OR_OUT_DIR OUT_AUDIO_DIR            (both in encodec_np.tokenize)

Outputs are written under a temporary name and renamed when complete, so an
interrupted or failed run never leaves a partial file; an existing output is
only replaced with ``-f``; inputs are never modified.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import EncodecError
from .hub import EMBEDDED


class UsageError(EncodecError):
    """A bad combination of arguments found after parsing: exit code 2, like argparse's errors."""


# --------------------------------------------------------------------------- golden
def add_golden_parser(sub, common) -> None:
    from .config import PRESETS
    from .synthetic import SIGNAL_KINDS

    p = sub.add_parser(
        "golden", parents=[common], help="write golden vectors (every layer's activations) to an .npz",
        description="Run one encode/decode pass and write its inputs, every layer's activation, "
                    "codes, margins and output to a compressed .npz. Without --model the weights "
                    "are seeded random ones (encodec_np.synthetic), so this works offline.")
    p.add_argument("out", metavar="OUT.npz", help="output file (written exactly under this name)")
    _add_model_option(p)
    p.add_argument("--config", choices=sorted(PRESETS), metavar="NAME",
                   help=f"model structure: {', '.join(sorted(PRESETS))} (default encodec_24khz; with --model it "
                        "overrides the inferred one)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random weights and test signal (default 0)")
    p.add_argument("-b", "--bandwidth", type=float, default=None, metavar="KBPS",
                   help="target bandwidth in kbps, one of the model's (default: all codebooks)")
    p.add_argument("--input", metavar="WAV", help="audio file at the model's sample rate (default: a test signal)")
    p.add_argument("--length", type=int, default=None, metavar="SAMPLES",
                   help="samples of test signal (default: 0.2 s; golden files hold every activation, "
                        "about 4 MB per 1000 samples at 24 kHz); with --input, keep only the first SAMPLES")
    p.add_argument("--signal", choices=SIGNAL_KINDS, default="noise", metavar="KIND",
                   help=f"test signal kind: {', '.join(SIGNAL_KINDS)} (default noise)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    _add_run_options(p, backend="numpy")


def cmd_golden(args) -> int:
    from .config import PRESETS
    from .golden import export_golden

    if args.length is not None and args.length < 1:
        raise EncodecError(f"--length must be at least 1, got {args.length}")
    _check_io(args, [Path(args.input)] if args.input else [], [Path(args.out)])
    if args.model is not None:
        from .checkpoint import load_model

        config = PRESETS[args.config]() if args.config else None
        model = load_model(args.model, backend=args.backend, dtype=args.dtype, config=config,
                           threads=args.threads)
    else:
        from .synthetic import random_model

        model = random_model(PRESETS[args.config or "encodec_24khz"](), args.seed,
                             backend=args.backend, dtype=args.dtype)
        model.threads = args.threads
    if args.input is not None:
        x = read_audio_for(model, args.input)
        if args.length is not None:
            x = x[:, :, :args.length]
    else:
        from .synthetic import test_signal

        length = args.length or max(1, model.sample_rate // 5)
        x = test_signal(args.signal, model.channels, length, seed=args.seed,
                        sample_rate=model.sample_rate)[None]
    path = export_golden(model, x, args.out, args.bandwidth)
    with np.load(path) as data:
        codes = data["codes"]
        _say(args, f"wrote {path}: {len(data.files)} arrays; {model.name}, {codes.shape[1]} codebooks x "
              f"{codes.shape[2]} frames, input {tuple(data['input'].shape)}, {model.dtype.name}")
    return 0


def read_audio_for(model, path) -> np.ndarray:
    """Read an audio file as ``[1, model.channels, T]`` float32 (mono↔stereo as official, no resampling)."""
    from .audio import convert_audio, read_audio, warn_if_over_range

    wav, sample_rate = read_audio(path)
    warn_if_over_range(wav, path)
    if sample_rate != model.sample_rate:
        raise EncodecError(f"{path} is sampled at {sample_rate} Hz but {model.name} needs "
                           f"{model.sample_rate} Hz; resample it first")
    return convert_audio(wav, sample_rate, sample_rate, model.channels)[None].astype(np.float32, copy=False)


# --------------------------------------------------------------------------- codec commands: shared parts
DEFAULT_BANDWIDTH = 6.0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# Each option shared by several commands is defined once, here, so every command spells it alike.
def _add_backend_options(p, *, backend: str = "auto") -> None:
    """``--backend`` and ``--threads``."""
    p.add_argument("--backend", default=backend, metavar="NAME",
                   help="ops backend: auto (numba when it imports, else numpy), numba, numpy, cuda (a GPU with "
                        "numba-cuda); default auto (golden: numpy, the reference)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads per model call (default: all cores)")


def _add_quiet_option(p) -> None:
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no summary line (warnings and errors still show)")


def _add_force_option(p) -> None:
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing output files")


def _add_run_options(p, *, backend: str = "auto") -> None:
    """``--backend``, ``--threads``, ``-f/--force`` and ``-q/--quiet``: what every command that writes files takes."""
    _add_backend_options(p, backend=backend)
    _add_force_option(p)
    _add_quiet_option(p)


def _add_model_option(p, *, group=None) -> None:
    """``--model NAME|PATH``, the same for every command (what its absence means is in the help)."""
    (group or p).add_argument(
        "--model", metavar="NAME|PATH",
        help="codec: a name (encodec_np_small_24khz, shipped in the package; Meta's encodec_24khz, "
             "encodec_48khz, downloaded once and cached; facebook/encodec_24khz and the other Hugging Face "
             "ids, from the Hugging Face cache) or a checkpoint (.th, .safetensors, Hugging Face folder). "
             "Default: encode, roundtrip, stream, tokenize: encodec_24khz (as Meta's tool); decode, "
             "detokenize, info: the model named in the file; demo: encodec_np_small_24khz; golden: seeded "
             "random weights")


def _bandwidth_list(text: str) -> list[float]:
    """``"6"`` or ``"1.5,6"`` → kbps values (``-b`` of tokenize, which may also be repeated)."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected kbps values such as 6 or 1.5,6, got {text!r}")
    return values


def _add_encoder_options(p, *, lm=True, several=False) -> None:
    """``--model``/``--hq`` and ``-b``; ``--lm`` unless ``lm=False``; ``several``: ``-b`` repeatable, comma lists."""
    group = p.add_mutually_exclusive_group()
    _add_model_option(p, group=group)
    group.add_argument("--hq", action="store_true", help="use the 48 kHz stereo model encodec_48khz")
    p.add_argument("-b", "--bandwidth", type=_bandwidth_list if several else float, default=None, metavar="KBPS",
                   action="extend" if several else "store",
                   help=f"target bandwidth in kbps, one of the model's (encodec_np_small_24khz: 1.5, 3, 6, 12; "
                        f"encodec_24khz: 1.5, 3, 6, 12, 24; encodec_48khz: 3, 6, 12, 24); default {DEFAULT_BANDWIDTH:g}"
                        + ("; repeat it or give a comma list for several" if several else ""))
    if not lm:
        return
    p.add_argument("-l", "--lm", action="store_true",
                   help="entropy-code the codes with the model's language model (smaller, much slower)")
    _add_lm_model_option(p)


def _add_lm_model_option(p) -> None:
    p.add_argument("--lm-model", metavar="NAME|PATH", default=None,
                   help="language model for --lm and for decoding LM-coded files (default: the one matching the codec)")


def _add_audio_output_options(p) -> None:
    p.add_argument("-r", "--rescale", action="store_true",
                   help="scale the output down so its peak is 0.99 instead of clamping it (clamping warns)")
    p.add_argument("--float", action="store_true",
                   help="write 32-bit float samples (WAV) instead of 16-bit PCM")


def _add_tokens_option(p) -> None:
    p.add_argument("--tokens", metavar="OUT.npy", default=None,
                   help="also save the codes as an int16 array [K, T] (K codebooks, T frames) for audio-LM "
                        "pipelines; for segmented models (encodec_48khz: 1 s segments with 1%% overlap) the "
                        "segments' frames are concatenated along T, so T is the sum over segments")


def _check_io(args, inputs, outputs) -> None:
    """Fail early: inputs exist, outputs are new (or -f), distinct, not an input, in existing folders."""
    for path in inputs:
        if not path.exists():
            raise FileNotFoundError(2, "no such file", str(path))
    seen = set()
    for out in outputs:
        key = os.path.abspath(out)
        if key in seen:
            raise UsageError(f"{out} is given as two outputs")
        seen.add(key)
        if not out.parent.is_dir():
            raise EncodecError(f"the output folder {out.parent} does not exist; create it first")
        if out.is_dir():
            raise EncodecError(f"{out} is a folder; give an output file name")
        for inp in inputs:
            if os.path.abspath(inp) == key or (out.exists() and os.path.samefile(inp, out)):
                raise EncodecError(f"the output {out} is the input file; choose another name "
                                   "(inputs are never modified)")
        if out.exists() and not args.force:
            raise EncodecError(f"{out} already exists; use -f/--force to overwrite it")


def _wants_bars(args) -> bool:
    """Progress bars go to stderr unless ``-q`` or stderr is not a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)  # stderr may be None or a bare stream object
    return not getattr(args, "quiet", False) and bool(isatty and isatty())


def _progress(args):
    """A ``progress(stage, done, total)`` drawing tqdm bars on stderr, or None (see :func:`_wants_bars`)."""
    if not _wants_bars(args):
        return None
    from tqdm import tqdm

    bars: dict = {}

    def update(stage: str, done: int, total: int) -> None:
        if total <= 1:  # one segment: nothing to show progress over
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="segment", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message)


def _load_codec(args, spec):
    from .checkpoint import load_model

    return load_model(spec, backend=args.backend, threads=args.threads)


def _encoder_model(args):
    """The codec for encode/roundtrip, at the requested bandwidth."""
    model = _load_codec(args, _model_spec(args))
    model.set_target_bandwidth(_checked_bandwidth(model.config, args.bandwidth))
    return model


def _model_spec(args) -> str:
    """The ``--model`` / ``--hq`` choice as a name or path."""
    return args.model or ("encodec_48khz" if args.hq else "encodec_24khz")


def _checked_bandwidth(config, bandwidth) -> float:
    """``bandwidth`` (None: the default) if ``config`` has it, else :class:`UsageError`."""
    choices = ", ".join(f"{b:g}" for b in config.target_bandwidths)
    if bandwidth is None:
        if DEFAULT_BANDWIDTH not in config.target_bandwidths:
            raise UsageError(f"{config.name} has no {DEFAULT_BANDWIDTH:g} kbps; choose -b from {choices}")
        return DEFAULT_BANDWIDTH
    if bandwidth not in config.target_bandwidths:
        raise UsageError(f"-b {bandwidth:g}: {config.name} supports {choices} kbps")
    return bandwidth


def _encode(args, model, path):
    """Encode the audio file ``path`` and serialise it: ``(frames, samples, .ecdc bytes, the LM or None)``.

    Long files at the model's rate stream from the file in bounded memory (see :mod:`encodec_np.longfile`).
    """
    from . import ecdc
    from .longfile import encode_file

    progress = _progress(args)
    lm = ecdc.resolve_lm(args.lm_model, model.name) if args.lm else None  # before the slow part
    frames, length = encode_file(model, path, progress)
    buf = io.BytesIO()
    ecdc.write_frames(buf, model.name, model.config, frames, length, use_lm=args.lm, lm=lm, progress=progress)
    return frames, length, buf.getvalue(), lm


def tokens_array(frames, bins: int) -> np.ndarray:
    """Codes of all segments ``[K, sum of frames]``: int16 (int32 for codebooks over 32768 entries)."""
    codes = np.concatenate([np.asarray(c)[0] for c, _ in frames], axis=-1)
    return codes.astype(np.int16 if bins <= 1 << 15 else np.int32)


def _write_tokens(path, frames, bins: int) -> None:
    from .fileutil import atomic_output

    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, tokens_array(frames, bins))


def _subtype(args, path) -> str:
    """The subtype the output file gets (the format's own for .ogg and .mp3): checked before the work."""
    from .audio import output_subtype

    return output_subtype(path, "FLOAT" if args.float else "PCM_16")


def _write_wav(args, path, wav, sample_rate) -> str:
    from .audio import write_audio

    subtype = _subtype(args, path)
    write_audio(path, wav, sample_rate, rescale=args.rescale, subtype=subtype)
    return subtype


def _decode_to_file(args, model, frames, audio_length: int, path, progress) -> tuple[int, str]:
    """Decode into ``path`` (long outputs chunk by chunk): ``(samples written, subtype)``."""
    from .longfile import decode_to_file

    subtype = _subtype(args, path)
    return decode_to_file(model, frames, audio_length, path, subtype=subtype, rescale=args.rescale,
                          progress=progress), subtype


def _kbps(nbytes: int, samples: int, sample_rate: int) -> float:
    return 8 * nbytes / 1000 / (samples / sample_rate)


def _describe_codes(model, num_codebooks: int, frames) -> str:
    total = sum(np.asarray(c).shape[-1] for c, _ in frames)
    nominal = num_codebooks * model.bits_per_codebook * model.frame_rate / 1000
    segs = f" in {len(frames)} segments" if len(frames) > 1 else ""
    return f"{model.name}, {nominal:g} kbps: {num_codebooks} codebooks x {total} frames{segs}"


# --------------------------------------------------------------------------- encode
def add_encode_parser(sub, common) -> None:
    p = sub.add_parser(
        "encode", parents=[common], help="compress an audio file to .ecdc (Meta's format)",
        description="Compress an audio file (WAV, FLAC, OGG, ...) into an .ecdc file that Meta's "
                    "encodec tool also reads. The audio is converted to the model's sample rate and "
                    "channels first (mono: mean of the channels; stereo: mono duplicated).")
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("output", metavar="OUT.ecdc", help="compressed output")
    _add_encoder_options(p)
    _add_tokens_option(p)
    _add_run_options(p)


def cmd_encode(args) -> int:
    from .fileutil import write_bytes_atomic

    inp, out = Path(args.input), Path(args.output)
    tokens = Path(args.tokens) if args.tokens else None
    _check_io(args, [inp], [out] + ([tokens] if tokens else []))
    model = _encoder_model(args)
    frames, length, data, _ = _encode(args, model, inp)
    write_bytes_atomic(out, data)
    if tokens:
        _write_tokens(tokens, frames, model.config.quantizer.bins)
    k = np.asarray(frames[0][0]).shape[1]
    _say(args, f"wrote {out}: {len(data):,} bytes for {length / model.sample_rate:.2f} s of audio "
               f"({_kbps(len(data), length, model.sample_rate):.2f} kbps{', LM-coded' if args.lm else ''}); "
               f"{_describe_codes(model, k, frames)}" + (f"; codes in {tokens}" if tokens else ""))
    return 0


# --------------------------------------------------------------------------- decode
def add_decode_parser(sub, common) -> None:
    p = sub.add_parser(
        "decode", parents=[common], help="decompress an .ecdc file to audio",
        description="Decompress an .ecdc file (written by encodec-np or Meta's encodec) to an audio file; "
                    "the format follows the output name (.wav, .flac, .ogg, .mp3). The model is the one named in "
                    "the file (pretrained models are downloaded once and cached) unless --model is given.")
    p.add_argument("input", metavar="IN.ecdc", help="compressed input")
    p.add_argument("output", metavar="OUT.wav", help="audio output (.wav, .flac, .ogg, .mp3)")
    _add_model_option(p)
    _add_lm_model_option(p)
    p.add_argument("--trust-lm", action="store_true",
                   help="decode LM-coded files that carry no code checksum (written by Meta's tool); "
                        "the codes may come back wrong without an error")
    _add_audio_output_options(p)
    _add_tokens_option(p)
    _add_run_options(p)


def cmd_decode(args) -> int:
    from . import ecdc

    inp, out = Path(args.input), Path(args.output)
    tokens = Path(args.tokens) if args.tokens else None
    _check_io(args, [inp], [out] + ([tokens] if tokens else []))
    from .audio import audio_format

    audio_format(out)  # an unknown audio suffix fails before the work
    data = inp.read_bytes()
    meta = ecdc.read_header(data)
    if args.model is None and meta["m"] not in _pretrained_codecs():
        raise EncodecError(f"{inp} was compressed with the model {meta['m']!r}, which is not a pretrained "
                           "name; pass its checkpoint with --model PATH")
    model = ecdc.resolve_model(_load_codec(args, args.model or meta["m"]), meta["m"])
    progress = _progress(args)
    meta, frames = ecdc.read_frames(io.BytesIO(data), model.config, lm=args.lm_model, progress=progress,
                                    trust_lm=args.trust_lm)
    samples, subtype = _decode_to_file(args, model, frames, meta["al"], out, progress)
    if tokens:
        _write_tokens(tokens, frames, model.config.quantizer.bins)
    _say(args, f"wrote {out}: {samples / model.sample_rate:.2f} s, {model.sample_rate} Hz, "
               f"{model.channels} channel(s), {subtype}; from {_describe_codes(model, meta['nc'], frames)}"
               + (f"; codes in {tokens}" if tokens else ""))
    return 0


def _pretrained_codecs() -> tuple:
    return ("encodec_24khz", "encodec_48khz", EMBEDDED)


# --------------------------------------------------------------------------- roundtrip
def add_roundtrip_parser(sub, common) -> None:
    p = sub.add_parser(
        "roundtrip", parents=[common], help="encode and decode an audio file (hear the codec)",
        description="Compress an audio file to .ecdc bytes in memory and decompress them again, writing "
                    "the decoded audio: exactly what encode followed by decode gives, without the file.")
    p.add_argument("input", metavar="IN", help="audio file")
    p.add_argument("output", metavar="OUT.wav", help="decoded audio output (.wav, .flac, .ogg, .mp3)")
    _add_encoder_options(p)
    _add_audio_output_options(p)
    _add_tokens_option(p)
    _add_run_options(p)


def cmd_roundtrip(args) -> int:
    from . import ecdc
    from .audio import audio_format

    inp, out = Path(args.input), Path(args.output)
    tokens = Path(args.tokens) if args.tokens else None
    _check_io(args, [inp], [out] + ([tokens] if tokens else []))
    audio_format(out)
    model = _encoder_model(args)
    frames, length, data, lm = _encode(args, model, inp)
    meta, decoded_frames = ecdc.read_frames(io.BytesIO(data), model.config, lm=lm)
    samples, subtype = _decode_to_file(args, model, decoded_frames, meta["al"], out, _progress(args))
    if tokens:
        _write_tokens(tokens, frames, model.config.quantizer.bins)
    _say(args, f"wrote {out}: {samples / model.sample_rate:.2f} s, {model.sample_rate} Hz, {model.channels} "
               f"channel(s), {subtype}; via {len(data):,} bytes of .ecdc "
               f"({_kbps(len(data), length, model.sample_rate):.2f} kbps); "
               f"{_describe_codes(model, meta['nc'], frames)}")
    return 0


# --------------------------------------------------------------------------- info
def add_info_parser(sub, common) -> None:
    p = sub.add_parser(
        "info", parents=[common], help="describe an .ecdc file, a checkpoint or an audio file",
        description="For an .ecdc file: its header, sizes and per-codebook code statistics (read without "
                    "running the model). For a checkpoint (.th, .safetensors, Hugging Face folder): its "
                    "configuration. For an audio file: rate, channels, length.")
    p.add_argument("file", metavar="FILE")
    _add_model_option(p)


def cmd_info(args) -> int:
    from .checkpoint import PRETRAINED_NAMES, resolve_checkpoint

    path = Path(args.file)
    if not path.exists() and args.file in PRETRAINED_NAMES:
        return _info_checkpoint(resolve_checkpoint(args.file))
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    if path.is_dir() or path.suffix.lower() in (".th", ".safetensors", ".pt", ".pth"):
        return _info_checkpoint(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    from .ecdc import MAGIC

    if magic == MAGIC:
        return _info_ecdc(args, path)
    return _info_audio(path)


def _info_ecdc(args, path) -> int:
    from . import ecdc
    from .config import PRESETS

    data = path.read_bytes()
    fo = io.BytesIO(data)
    meta = ecdc.read_header(fo)
    header_size = fo.tell()
    if args.model:
        from .checkpoint import read_checkpoint, resolve_checkpoint

        config, _ = read_checkpoint(resolve_checkpoint(args.model))
    elif meta["m"] in PRESETS:
        config = PRESETS[meta["m"]]()
    else:
        config = None
    rows = [("file", f"{path} ({len(data):,} bytes: header {header_size}, payload {len(data) - header_size:,})"),
            ("format", f".ecdc version {ecdc.VERSION}, header {json.dumps(meta)}")]
    if config is None:
        rows.append(("model", f"{meta['m']} (unknown: pass --model NAME|PATH to read the codes)"))
        _print_rows(rows)
        return 0
    if config.name != meta["m"]:
        raise EncodecError(f"{path} was written by {meta['m']!r}, but --model is {config.name!r}")
    seconds = meta["al"] / config.sample_rate
    nominal = meta["nc"] * config.quantizer.bits_per_codebook * config.frame_rate / 1000
    rows += [("model", f"{config.name}: {config.sample_rate} Hz, {config.channels} channel(s), "
                       f"{config.frame_rate} frames/s, {config.quantizer.bins} codes per codebook"),
             ("audio", f"{meta['al']:,} samples = {seconds:.3f} s"),
             ("codebooks", f"{meta['nc']} of {config.quantizer.n_q} ({nominal:g} kbps nominal)"),
             ("bitrate", f"{_kbps(len(data), meta['al'], config.sample_rate):.3f} kbps for the whole file"),
             ("entropy coded", "yes (language model)" if meta["lm"] else "no (codes packed "
                               f"{config.quantizer.bits_per_codebook} bits each)")]
    layout = list(ecdc.segments(config, meta["al"]))
    rows.append(("segments", f"{len(layout)}, frames per segment: "
                 + _summarise([f for _, _, f in layout])
                 + (", each with a float32 scale" if config.normalize else "")))
    if meta["lm"]:
        rows.append(("codes", "LM-coded: decode the file (encodec-np decode --tokens) to see them"))
        _print_rows(rows)
        return 0
    meta, frames = ecdc.read_frames(fo, config, header=meta)
    trailing = len(data) - fo.tell()
    if trailing:
        rows.append(("trailing", f"{trailing:,} bytes after the last segment (ignored)"))
    if config.normalize:
        scales = np.array([float(s.reshape(-1)[0]) for _, s in frames])
        rows.append(("scales", f"min {scales.min():.4g}, max {scales.max():.4g}"))
    _print_rows(rows)
    codes = np.concatenate([c[0] for c, _ in frames], axis=-1)
    print(f"\n{'codebook':>8} {'distinct':>8} {'min':>5} {'max':>5} {'most common':>14} {'entropy bits':>12}")
    for k, row in enumerate(codes):
        values, counts = np.unique(row, return_counts=True)
        p = counts / counts.sum()
        top = int(np.argmax(counts))
        entropy = float(-(p * np.log2(p)).sum())
        print(f"{k:>8} {len(values):>8} {row.min():>5} {row.max():>5} "
              f"{f'{values[top]} ({100 * p[top]:.0f}%)':>14} {entropy:>12.2f}")
    return 0


def _summarise(values) -> str:
    if len(set(values)) == 1:
        return str(values[0])
    if len(values) <= 4:
        return ", ".join(map(str, values))
    return f"{values[0]}, {values[1]}, ..., {values[-1]}"


def _print_rows(rows) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _info_checkpoint(path) -> int:
    from .checkpoint import read_checkpoint

    config, params = read_checkpoint(path)
    kind = ("Hugging Face folder" if path.is_dir() else
            "safetensors" if path.suffix.lower() == ".safetensors" else "PyTorch (Meta .th)")
    count = sum(int(np.prod(v.shape)) for v in params.values())
    dtypes = sorted({np.asarray(v).dtype.name for v in params.values()})
    s, q = config.seanet, config.quantizer
    rows = [("file", f"{path} ({kind})"),
            ("model", config.name),
            ("audio", f"{config.sample_rate} Hz, {config.channels} channel(s)"),
            ("frames", f"{config.frame_rate} per second (hop {s.hop_length} samples, ratios {list(s.ratios)})"),
            ("bandwidths", ", ".join(f"{b:g}" for b in config.target_bandwidths) + " kbps"),
            ("quantizer", f"{q.n_q} codebooks x {q.bins} codes ({q.bits_per_codebook} bits), dimension {q.dimension}"),
            ("seanet", f"n_filters {s.n_filters}, dimension {s.dimension}, {s.lstm} LSTM layer(s), "
                       f"{'causal' if s.causal else 'non-causal'}, norm {s.norm}, pad {s.pad_mode}"),
            ("segments", "none" if config.segment is None else
             f"{config.segment:g} s with {config.overlap:g} overlap"
             + (", RMS-normalized" if config.normalize else "")),
            ("parameters", f"{count:,} in {len(params)} tensors ({', '.join(dtypes)}; weight norm folded)")]
    _print_rows(rows)
    return 0


def _info_audio(path) -> int:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.SoundFileError, ValueError) as exc:
        raise EncodecError(f"{path} is not an .ecdc file, a checkpoint or a readable audio file ({exc})") from exc
    _print_rows([("file", f"{path} (audio: {info.format}, {info.subtype})"),
                 ("audio", f"{info.samplerate} Hz, {info.channels} channel(s), {info.frames:,} samples = "
                           f"{info.frames / info.samplerate:.3f} s")])
    return 0


# --------------------------------------------------------------------------- convert
def add_convert_parser(sub, common) -> None:
    from .config import PRESETS

    p = sub.add_parser(
        "convert", parents=[common], help="convert a checkpoint to encodec-np's .safetensors",
        description="Read a Meta .th checkpoint, a Hugging Face folder or a pretrained name and write it as "
                    "one .safetensors file (weight norm folded, configuration in the metadata), loadable "
                    "without torch by encodec_np.load_model and --model.")
    p.add_argument("checkpoint", metavar="CKPT", help=".th file, Hugging Face folder, .safetensors, or pretrained name")
    p.add_argument("output", metavar="OUT.safetensors")
    p.add_argument("--config", metavar="NAME|JSON",
                   help="model structure, for checkpoints whose structure is not recognised: a preset "
                        f"({', '.join(sorted(PRESETS))}) or a JSON file of EncodecConfig.to_dict()")
    p.add_argument("--float16", action="store_true",
                   help="store the weights as float16 (half the size; loaded back as float32)")
    _add_force_option(p)
    _add_quiet_option(p)


def _config_arg(spec: str):
    """``--config``: a preset name or a JSON file holding ``EncodecConfig.to_dict()``."""
    from .config import PRESETS, EncodecConfig

    if spec in PRESETS:
        return PRESETS[spec]()
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--config {spec!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a JSON file")
    try:
        return EncodecConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"--config {path}: not a model configuration ({exc})") from exc


def cmd_convert(args) -> int:
    from .checkpoint import load_model, save_model
    from .config import PRESETS

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise UsageError(f"the output name must end in .safetensors, got {out.name!r}")
    src = Path(args.checkpoint)
    is_name = args.checkpoint in PRESETS and not src.exists()
    _check_io(args, [] if is_name else [src], [out])
    config = _config_arg(args.config) if args.config else None
    model = load_model(args.checkpoint, backend="numpy", config=config)
    save_model(model, out, dtype="float16" if args.float16 else None)  # a temporary file, renamed
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)  # safetensors creates private (0600) files; give the usual permissions
    count = sum(int(v.size) for v in model.params.values())
    _say(args, f"wrote {out}: {model.name}, {count:,} parameters, {out.stat().st_size:,} bytes")
    return 0


# --------------------------------------------------------------------------- dispatch
# name → (function adding the subparser, function running it)
# --------------------------------------------------------------------------- stream
def add_stream_parser(sub, common) -> None:
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
    _add_model_option(p)
    p.add_argument("-b", "--bandwidth", type=float, default=None, metavar="KBPS",
                   help=f"target bandwidth in kbps (default {DEFAULT_BANDWIDTH:g}); --decode takes it from the "
                        "stream's header (--raw: give the same -b)")
    p.add_argument("--chunk", type=_positive_int, default=4800, metavar="SAMPLES",
                   help="samples (or frames with --decode) read per step (default 4800)")
    _add_backend_options(p)
    _add_quiet_option(p)


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
    from . import quantization as rvq

    return rvq.num_codebooks(model.config.quantizer, model.frame_rate, bandwidth)


def cmd_stream(args) -> int:
    from . import codestream
    from .streaming import StreamingDecoder, StreamingEncoder

    args.hq = False
    asked = args.bandwidth
    if args.decode and not args.raw:
        args.bandwidth = None  # known once the header is read
    model = _encoder_model(args)
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
    from .codestream import FrameReader

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


def _lazy(module: str, name: str) -> Callable:
    """``encodec_np.<module>.<name>``, imported when called (such modules import this one's helpers)."""
    def call(*args):
        return getattr(importlib.import_module(f"encodec_np.{module}"), name)(*args)
    return call


COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "demo": (_lazy("demo", "add_demo_parser"), _lazy("demo", "cmd_demo")),
    "encode": (add_encode_parser, cmd_encode),
    "decode": (add_decode_parser, cmd_decode),
    "roundtrip": (add_roundtrip_parser, cmd_roundtrip),
    "info": (add_info_parser, cmd_info),
    "convert": (add_convert_parser, cmd_convert),
    "golden": (add_golden_parser, cmd_golden),
    "stream": (add_stream_parser, cmd_stream),
    "tokenize": (_lazy("tokenize", "add_tokenize_parser"), _lazy("tokenize", "cmd_tokenize")),
    "detokenize": (_lazy("tokenize", "add_detokenize_parser"), _lazy("tokenize", "cmd_detokenize")),
}


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="encodec-np",
                                     description="EnCodec neural audio codec in NumPy, without PyTorch.")
    parser.add_argument("--version", action="version", version=f"encodec-np {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    # --debug is accepted after the subcommand too; SUPPRESS keeps the top-level value otherwise
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub, common)
    return parser


def flag_table() -> str:
    """The README's flag table, generated from the parser: one row per option and help text.

    Returns
    -------
    str
        A Markdown table: ``| flag | commands | meaning |``.
    """
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    rows: dict[tuple[str, str], list[str]] = {}
    for name, sub in commands.items():
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction) or action.help is None \
                    or action.help == argparse.SUPPRESS:
                continue
            flag = "/".join(action.option_strings)
            if action.nargs != 0:
                flag += f" {action.metavar or action.dest.upper()}"
            rows.setdefault((flag, action.help % {"default": action.default}), []).append(name)
    lines = ["| flag | commands | meaning |", "|---|---|---|"]
    for (flag, text), names in rows.items():
        where = "all" if len(names) == len(commands) else ", ".join(names)
        lines.append(f"| `{flag.replace('|', chr(92) + '|')}` | {where} | {text} |")
    return "\n".join(lines)


def _format_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if extra:  # argparse would name only the top-level program; say which command refused them
        name = f"{parser.prog} {args.command}" if args.command else parser.prog
        print(f"usage: {name} ... (see {name} --help)\n{name}: error: unrecognized arguments: {' '.join(extra)}",
              file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: a command is required ({', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    _, run = COMMANDS[args.command]
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(run(args) or 0)
    except UsageError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `encodec-np info x.ecdc | head`: stop quietly, as the Python docs advise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (EncodecError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {_format_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run the importable module, not this ``__main__`` copy, so that UsageError raised by
    # modules that import encodec_np.cli (tokenize) is the class main() catches (exit 2).
    from encodec_np.cli import main as _main

    sys.exit(_main())
