"""``encodec-np convert``: any supported checkpoint → our single-file safetensors format."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import PRESETS, EncodecConfig
from ..io.checkpoint import save_model
from ..model import load_model
from .options import UsageError, add_force_option, add_quiet_option, check_io, say


def add_convert_parser(sub, common) -> None:
    """Add ``convert`` to the subparsers ``sub`` (``common``: the options every command takes)."""
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
    add_force_option(p)
    add_quiet_option(p)


def _config_arg(spec: str):
    """``--config``: a preset name or a JSON file holding ``EncodecConfig.to_dict()``."""
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
    """Run ``encodec-np convert``: a checkpoint → one ``.safetensors`` file; returns the exit code."""
    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise UsageError(f"the output name must end in .safetensors, got {out.name!r}")
    src = Path(args.checkpoint)
    is_name = args.checkpoint in PRESETS and not src.exists()
    check_io(args, [] if is_name else [src], [out])
    config = _config_arg(args.config) if args.config else None
    model = load_model(args.checkpoint, backend="numpy", config=config)
    save_model(model, out, dtype="float16" if args.float16 else None)  # a temporary file, renamed
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)  # safetensors creates private (0600) files; give the usual permissions
    count = sum(int(v.size) for v in model.params.values())
    say(args, f"wrote {out}: {model.name}, {count:,} parameters, {out.stat().st_size:,} bytes")
    return 0
