"""Export a training checkpoint to encodec-np's safetensors format.

The trained weights go out as an official ``encodec`` state dict (``.th``,
exactly what Meta's tool saves) and then through our own converter
(``encodec-np convert``), so the shipped file takes the same path as any
Meta checkpoint. Example::

    python training/export.py training/runs/small/checkpoint.pt \\
        encodec_np/assets/encodec_np_small_24khz.safetensors --float16
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_model import build_torch_model  # noqa: E402

from encodec_np.config import EncodecConfig, encodec_np_small_24khz  # noqa: E402


def load_trained(checkpoint, config: EncodecConfig | None = None):
    """The official ``EncodecModel`` of a training checkpoint, in eval mode."""
    model = build_torch_model(config or encodec_np_small_24khz())
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    return model.eval()


def export(model, config: EncodecConfig, out: Path, float16: bool = False) -> None:
    """Write ``model`` (official ``EncodecModel``) to ``out`` with ``encodec-np convert``."""
    with tempfile.TemporaryDirectory() as tmp:
        th = Path(tmp) / "model.th"
        cfg = Path(tmp) / "config.json"
        torch.save(model.state_dict(), th)
        cfg.write_text(json.dumps(config.to_dict()))
        cmd = [sys.executable, "-m", "encodec_np.cli", "convert", str(th), str(out), "--config", str(cfg), "-f"]
        subprocess.run(cmd + (["--float16"] if float16 else []), check=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="training checkpoint (RUN/checkpoint.pt)")
    p.add_argument("output", type=Path, help="OUT.safetensors")
    p.add_argument("--float16", action="store_true", help="store weights as float16 (half the size)")
    args = p.parse_args(argv)
    config = encodec_np_small_24khz()
    export(load_trained(args.checkpoint, config), config, args.output, args.float16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
