"""The ``encodec-np`` command line.

One function adds each subcommand's arguments (``add_<name>_parser``) and one
runs it (``cmd_<name>(args) -> exit code``); :data:`COMMANDS` maps the names
to both. Exit codes: 0 success, 2 usage error (argparse), 1 failure, reported
as one ``error: ...`` line on stderr (the traceback too with ``--debug``).

    encodec-np golden OUT.npz [--model PATH|NAME] [--config PRESET] [--seed N]
                              [--bandwidth BW] [--input WAV] [--length SAMPLES]
                              [--signal KIND] [--dtype float32|float64]
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import EncodecError


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
    p.add_argument("--model", metavar="PATH|NAME",
                   help="checkpoint (.th, .safetensors, Hugging Face folder) or pretrained name; "
                        "default: seeded random weights for --config")
    p.add_argument("--config", choices=sorted(PRESETS),
                   help="model structure (default encodec_24khz; with --model it overrides the inferred one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and test signal (default 0)")
    p.add_argument("--bandwidth", type=float, default=None,
                   help="target bandwidth in kbps, one of the model's (default: all codebooks)")
    p.add_argument("--input", metavar="WAV", help="audio file at the model's sample rate (default: a test signal)")
    p.add_argument("--length", type=int, default=None,
                   help="samples of test signal (default: 0.2 s; golden files hold every activation, "
                        "about 4 MB per 1000 samples at 24 kHz); with --input, keep only the first SAMPLES")
    p.add_argument("--signal", choices=SIGNAL_KINDS, default="noise", help="test signal kind (default noise)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--backend", default="numpy", help="ops backend (default numpy, the reference)")


def cmd_golden(args) -> int:
    from .config import PRESETS
    from .golden import export_golden

    if args.length is not None and args.length < 1:
        raise EncodecError(f"--length must be at least 1, got {args.length}")
    if args.model is not None:
        from .checkpoint import load_model

        config = PRESETS[args.config]() if args.config else None
        model = load_model(args.model, backend=args.backend, dtype=args.dtype, config=config)
    else:
        from .synthetic import random_model

        model = random_model(PRESETS[args.config or "encodec_24khz"](), args.seed,
                             backend=args.backend, dtype=args.dtype)
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
        print(f"wrote {path}: {len(data.files)} arrays; {model.name}, {codes.shape[1]} codebooks x "
              f"{codes.shape[2]} frames, input {tuple(data['input'].shape)}, {model.dtype.name}")
    return 0


def read_audio_for(model, path) -> np.ndarray:
    """Read an audio file as ``[1, model.channels, T]`` float32 (mono↔stereo as official, no resampling)."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError) as exc:
        raise EncodecError(f"{path}: unreadable audio file ({exc})") from exc
    if sample_rate != model.sample_rate:
        raise EncodecError(f"{path} is sampled at {sample_rate} Hz but {model.name} needs "
                           f"{model.sample_rate} Hz; resample it first")
    x = data.T  # [C, T]
    if x.shape[0] != model.channels:
        if model.channels == 1:
            x = x.mean(axis=0, keepdims=True)
        elif x.shape[0] == 1:
            x = np.repeat(x, model.channels, axis=0)
        else:
            raise EncodecError(f"{path} has {x.shape[0]} channels; {model.name} needs {model.channels}")
    if x.shape[1] == 0:
        raise EncodecError(f"{path} holds no samples")
    return np.ascontiguousarray(x[None], dtype=np.float32)


# --------------------------------------------------------------------------- dispatch
# name → (function adding the subparser, function running it)
COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "golden": (add_golden_parser, cmd_golden),
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


def _format_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: a command is required ({', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    _, run = COMMANDS[args.command]
    try:
        return int(run(args) or 0)
    except (EncodecError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {_format_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
