"""Average the weights of two models of one config (a "model soup").

Fine-tuning from the shipped weights with a new objective moves the model
towards that objective and, in the few hundred CPU steps we can afford, away
from some of what the earlier stages reached; the weighted mean of the start
and the fine-tuned weights keeps most of both (measured in training/DATA.md).
Both files must hold the same config and tensor names; the mean is taken in
float32, tensor by tensor, codebooks included. Example::

    python training/average.py encodec_np/assets/encodec_np_small_24khz.safetensors \\
        /tmp/f3l.safetensors /tmp/soup.safetensors --weight 0.5 --float16
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from encodec_np import EncodecError, EncodecModel, load_model, save_model


def average(a: EncodecModel, b: EncodecModel, weight: float) -> EncodecModel:
    """``(1 - weight) * a + weight * b``, parameter by parameter, as a new float32 model."""
    if not 0.0 <= weight <= 1.0:
        raise EncodecError(f"weight must be within [0, 1], got {weight}")
    if a.config != b.config:
        raise EncodecError(f"the two models differ in config ({a.config.name} vs {b.config.name}); "
                           "only fine-tunes of one architecture can be averaged")
    if a.params.keys() != b.params.keys():
        raise EncodecError(f"the two models differ in tensors: {sorted(a.params.keys() ^ b.params.keys())[:5]}")
    # load_model gives float32 parameters, so the mean is taken in float32
    params = {k: (1.0 - weight) * a.params[k] + weight * b.params[k] for k in a.params}
    return EncodecModel(a.config, params, backend="numpy", dtype="float32")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="first model (.safetensors or any file load_model reads)")
    p.add_argument("b", type=Path, help="second model, same config")
    p.add_argument("output", type=Path, help="OUT.safetensors")
    p.add_argument("--weight", type=float, default=0.5, help="share of the second model (default 0.5)")
    p.add_argument("--float16", action="store_true", help="store weights as float16 (half the size)")
    args = p.parse_args(argv)
    a, b = (load_model(path, backend="numpy") for path in (args.a, args.b))
    save_model(average(a, b, args.weight), args.output, dtype="float16" if args.float16 else None)
    print(f"wrote {args.output}: {1 - args.weight:g} x {args.a.name} + {args.weight:g} x {args.b.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
