"""``encodec-np info``: describe an ``.ecdc`` file, a checkpoint (or a model name) or an audio file."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from .. import geometry
from ..config import PRESETS
from ..errors import EncodecError
from ..format import ecdc
from ..format.ecdc import MAGIC
from ..io.checkpoint import PRETRAINED_NAMES, read_checkpoint, resolve_checkpoint
from .options import add_model_option, kbps


def add_info_parser(sub, common) -> None:
    """Add ``info`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "info", parents=[common], help="describe an .ecdc file, a checkpoint or an audio file",
        description="For an .ecdc file: its header, sizes and per-codebook code statistics (read without "
                    "running the model). For a checkpoint (.th, .safetensors, Hugging Face folder): its "
                    "configuration. For an audio file: rate, channels, length.")
    p.add_argument("file", metavar="FILE")
    add_model_option(p)


def cmd_info(args) -> int:
    """Run ``encodec-np info``: describe an ``.ecdc`` file, a checkpoint or name, or an audio file; returns 0."""
    path = Path(args.file)
    if not path.exists() and args.file in PRETRAINED_NAMES:
        return _info_checkpoint(resolve_checkpoint(args.file))
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    if path.is_dir() or path.suffix.lower() in (".th", ".safetensors", ".pt", ".pth"):
        return _info_checkpoint(path)
    with open(path, "rb") as f:
        magic = f.read(4)

    if magic == MAGIC:
        return _info_ecdc(args, path)
    return _info_audio(path)


def _info_ecdc(args, path) -> int:

    data = path.read_bytes()
    fo = io.BytesIO(data)
    meta = ecdc.read_header(fo)
    header_size = fo.tell()
    if args.model:

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
             ("bitrate", f"{kbps(len(data), meta['al'], config.sample_rate):.3f} kbps for the whole file"),
             ("entropy coded", "yes (language model)" if meta["lm"] else "no (codes packed "
                               f"{config.quantizer.bits_per_codebook} bits each)")]
    layout = list(geometry.segments(config, meta["al"]))
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

    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.SoundFileError, ValueError) as exc:
        raise EncodecError(f"{path} is not an .ecdc file, a checkpoint or a readable audio file ({exc})") from exc
    _print_rows([("file", f"{path} (audio: {info.format}, {info.subtype})"),
                 ("audio", f"{info.samplerate} Hz, {info.channels} channel(s), {info.frames:,} samples = "
                           f"{info.frames / info.samplerate:.3f} s")])
    return 0
