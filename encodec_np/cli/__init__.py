"""The ``encodec-np`` command line.

One module per command (``codec``: encode, decode, roundtrip; ``info``,
``convert``, ``golden``, ``stream``, ``demo``, ``tokenize``: tokenize and
detokenize), each with a function adding the subcommand's arguments
(``add_<name>_parser``) and one running it (``cmd_<name>(args) -> exit code``);
:data:`COMMANDS` maps the names to both; :mod:`.options` holds what they
share. Nothing outside this package imports it. Exit codes: 0 success, 2
usage error (argparse), 1 failure, reported as one ``error: ...`` line on
stderr (the traceback too with ``--debug``).

    encodec-np demo [--out DIR] [--input AUDIO] [--model NAME|PATH]   (offline; the shipped model and clip)
    encodec-np encode IN OUT.ecdc      [-b KBPS] [--hq | --model NAME|PATH] [--lm] [--tokens T.npy] [-f] [-q]
    encodec-np decode IN.ecdc OUT.wav  [--model NAME|PATH] [-r] [--float] [--tokens T.npy] [-f] [-q]
    encodec-np roundtrip IN OUT.wav    [-b KBPS] [--hq | --model NAME|PATH] [--lm] [-r] [--float] [-f] [-q]
    encodec-np info FILE               (.ecdc, checkpoint or audio file)
    encodec-np convert CKPT OUT.safetensors [--config PRESET|JSON] [--float16] [-f]
    encodec-np golden OUT.npz [--model NAME|PATH] [--config NAME] [--seed N]
                              [-b KBPS] [--input WAV] [--length SAMPLES]
                              [--signal KIND] [--dtype float32|float64] [-f] [-q]
    encodec-np stream [--decode] [--raw] [--model NAME|PATH] [-b KBPS]   (stdin → stdout)
    encodec-np tokenize INPUT_DIR_OR_MANIFEST OUT_DIR [-b KBPS[,KBPS]] [--workers N] [--dask [ADDRESS]]
    encodec-np detokenize SHARD_OR_OUT_DIR OUT_AUDIO_DIR

Outputs are written under a temporary name and renamed when complete, so an
interrupted or failed run never leaves a partial file; an existing output is
only replaced with ``-f``; inputs are never modified.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from typing import Callable

from .. import __version__
from ..errors import EncodecError, describe_error
from . import codec, convert, demo, golden, info, stream, tokenize
from .options import UsageError

__all__ = ["COMMANDS", "UsageError", "build_parser", "flag_table", "main"]


#: name → (function adding the subparser, function running it)
COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "demo": (demo.add_demo_parser, demo.cmd_demo),
    "encode": (codec.add_encode_parser, codec.cmd_encode),
    "decode": (codec.add_decode_parser, codec.cmd_decode),
    "roundtrip": (codec.add_roundtrip_parser, codec.cmd_roundtrip),
    "info": (info.add_info_parser, info.cmd_info),
    "convert": (convert.add_convert_parser, convert.cmd_convert),
    "golden": (golden.add_golden_parser, golden.cmd_golden),
    "stream": (stream.add_stream_parser, stream.cmd_stream),
    "tokenize": (tokenize.add_tokenize_parser, tokenize.cmd_tokenize),
    "detokenize": (tokenize.add_detokenize_parser, tokenize.cmd_detokenize),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``encodec-np`` parser, with every subcommand of :data:`COMMANDS`."""
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
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
