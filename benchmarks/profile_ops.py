"""Where the numba backend's time goes: seconds per op for one encode + decode.

Wraps each op of the backend with a timer (the calls are synchronous, so the
sums are wall time per op), runs a seeded model on seeded noise and prints the
real-time factors and the per-op seconds, at each thread count:

    python benchmarks/profile_ops.py                     # 24 kHz, 6 kbps, 10 s, 1 and 2 threads
    python benchmarks/profile_ops.py --model encodec_48khz --seconds 10 --threads 2
    python benchmarks/profile_ops.py --threads 1 --layers   # also each conv shape's time and GFLOP/s

Run it alone on the machine: a second busy process changes every figure.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import numpy as np

import encodec_np
from encodec_np.synthetic import random_model

OPS = ("padded_conv1d", "conv_transpose1d", "elu", "group_norm", "lstm", "rvq_encode")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="encodec_24khz", choices=["encodec_24khz", "encodec_48khz"])
    parser.add_argument("--bandwidth", type=float, default=6.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", action="store_true",
                        help="also print every conv / transposed conv shape's time and GFLOP/s")
    args = parser.parse_args()

    config = getattr(encodec_np, args.model)()
    model = random_model(config, seed=0, backend="numba")
    model.set_target_bandwidth(args.bandwidth)
    samples = int(args.seconds * config.sample_rate)
    x = (0.1 * np.random.default_rng(0).standard_normal((1, config.channels, samples))).astype(np.float32)

    spent: dict[str, float] = defaultdict(float)
    layers: dict[tuple, list] = defaultdict(lambda: [0.0, 0.0])  # shape -> [seconds, flops]
    originals = {name: getattr(model.ops, name) for name in OPS}

    def timed(name, fn):
        def run(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            dt = time.perf_counter() - t
            spent[name] += dt
            if name in ("padded_conv1d", "conv_transpose1d"):
                x_in, w = a[0], a[1]
                c_out, c_in = (w.shape[0], w.shape[1]) if name == "padded_conv1d" else (w.shape[1], w.shape[0])
                stride = a[3] if len(a) > 3 else k.get("stride", 1)
                key = (name, c_in, c_out, w.shape[2], stride, x_in.shape[-1])
                macs = w.size * (out.shape[-1] if name == "padded_conv1d" else x_in.shape[-1])
                layers[key][0] += dt
                layers[key][1] += 2 * macs * x_in.shape[0]
            return out
        return run

    for name, fn in originals.items():
        setattr(model.ops, name, timed(name, fn))
    try:
        print(f"{args.model}, {args.bandwidth} kbps, {args.seconds} s, median of {args.repeats}")
        for threads in args.threads:
            model.threads = threads
            model.decode(model.encode(x))  # warm-up (and compilation)
            spent.clear()
            layers.clear()
            enc, dec = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                frames = model.encode(x)
                t1 = time.perf_counter()
                model.decode(frames)
                enc.append(t1 - t0)
                dec.append(time.perf_counter() - t1)
            per_op = ", ".join(f"{name} {spent[name] / args.repeats:.3f} s" for name in OPS if spent[name])
            print(f"threads {threads}: encode {args.seconds / statistics.median(enc):.1f}x, "
                  f"decode {args.seconds / statistics.median(dec):.1f}x real time | encode + decode: {per_op}")
            if args.layers:
                print("  op, C_in, C_out, K, stride, input length: ms per encode + decode, GFLOP/s")
                for key, (sec, flops) in sorted(layers.items(), key=lambda kv: -kv[1][0]):
                    print(f"  {key}: {1000 * sec / args.repeats:.1f} ms, {flops / sec / 1e9:.1f} GFLOP/s")
    finally:
        for name, fn in originals.items():
            setattr(model.ops, name, fn)


if __name__ == "__main__":
    main()
