"""The numba LSTM alone: a seeded 2-layer, 512-wide LSTM over 750 steps (10 s of 24 kHz frames).

    python benchmarks/bench_lstm.py                  # batch 1 and 2, 1 and 2 threads

Prints the best of 5 per cell and the largest deviation from the float64
reference. Run it alone on the machine.
"""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from encodec_np import ops
from encodec_np.kernels import cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--steps", type=int, default=750)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    h = args.hidden
    layers = [tuple((rng.standard_normal(shape) * 0.05).astype(np.float32)
                    for shape in ((4 * h, h), (4 * h, h), (4 * h,), (4 * h,))) for _ in range(2)]
    layers64 = [tuple(a.astype(np.float64) for a in layer) for layer in layers]
    for batch in args.batches:
        x = rng.standard_normal((batch, h, args.steps)).astype(np.float32)
        ref, _ = ops.lstm(x.astype(np.float64), layers64)
        for threads in args.threads:
            numba.set_num_threads(threads)
            y, _ = cpu.lstm(x, layers)
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                cpu.lstm(x, layers)
                times.append(time.perf_counter() - t0)
            print(f"batch {batch}, {threads} thread(s): {min(times) * 1e3:.1f} ms, "
                  f"max abs diff to float64 {np.abs(y - ref).max():.2e}")


if __name__ == "__main__":
    main()
