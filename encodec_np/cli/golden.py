"""``encodec-np golden``: golden vectors (every layer's activations) of one encode/decode pass."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import PRESETS
from ..errors import EncodecError
from ..golden import export_golden
from ..io.audio import read_for_model
from ..model import load_model
from ..synthetic import SIGNAL_KINDS, random_model, test_signal
from .options import add_model_option, add_run_options, check_io, say


def add_golden_parser(sub, common) -> None:
    """Add ``golden`` to the subparsers ``sub`` (``common``: the options every command takes)."""
    p = sub.add_parser(
        "golden", parents=[common], help="write golden vectors (every layer's activations) to an .npz",
        description="Run one encode/decode pass and write its inputs, every layer's activation, "
                    "codes, margins and output to a compressed .npz. Without --model the weights "
                    "are seeded random ones (encodec_np.synthetic), so this works offline.")
    p.add_argument("out", metavar="OUT.npz", help="output file (written exactly under this name)")
    add_model_option(p)
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
    add_run_options(p, backend="numpy")


def cmd_golden(args) -> int:
    """Run ``encodec-np golden``: one pass's activations → an ``.npz``; returns the exit code."""
    if args.length is not None and args.length < 1:
        raise EncodecError(f"--length must be at least 1, got {args.length}")
    check_io(args, [Path(args.input)] if args.input else [], [Path(args.out)])
    if args.model is not None:

        config = PRESETS[args.config]() if args.config else None
        model = load_model(args.model, backend=args.backend, dtype=args.dtype, config=config,
                           threads=args.threads)
    else:

        model = random_model(PRESETS[args.config or "encodec_24khz"](), args.seed,
                             backend=args.backend, dtype=args.dtype)
        model.threads = args.threads
    if args.input is not None:

        x = read_for_model(args.input, model, resample=False)[None]
        if args.length is not None:
            x = x[:, :, :args.length]
    else:

        length = args.length or max(1, model.sample_rate // 5)
        x = test_signal(args.signal, model.channels, length, seed=args.seed,
                        sample_rate=model.sample_rate)[None]
    path = export_golden(model, x, args.out, args.bandwidth)
    with np.load(path) as data:
        codes = data["codes"]
        say(args, f"wrote {path}: {len(data.files)} arrays; {model.name}, {codes.shape[1]} codebooks x "
              f"{codes.shape[2]} frames, input {tuple(data['input'].shape)}, {model.dtype.name}")
    return 0
