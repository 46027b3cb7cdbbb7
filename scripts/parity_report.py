"""Measure parity with the official PyTorch encodec 0.1.1 and print the README table.

Needs torch and encodec (see README, "Parity"). For each model and bandwidth,
on seeded audio-like signals of awkward lengths (batch 2), it reports the
fraction of identical codes (float32) and the max abs error of our decoded
waveform relative to the official one's peak (float32 and float64). The
waveform is decoded from the official codes, so a near-tie in the encoder
cannot leak into the decoder figure; tests/test_parity.py checks that every
disagreeing code is a near-tie.

    python scripts/parity_report.py [--lengths 1 321 9999 53760]
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from oracle import official_model, save_th  # noqa: E402

import encodec_np  # noqa: E402


def signal(channels, length, seed):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal((2, channels, length)), axis=-1)
    x -= x.mean(axis=-1, keepdims=True)
    return (0.5 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def main():
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 319, 321, 9999, 47521, 53760])
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| model | kbps | codes identical | float32 max err / peak | float64 max err / peak |")
    print("|---|---|---|---|---|")
    for name in ("encodec_24khz", "encodec_48khz"):
        official = official_model(name, seed=0)
        path = os.path.join(tempfile.mkdtemp(), name + ".th")
        save_th(official, path)
        ours = {dt: encodec_np.load_model(path, backend="numpy", dtype=dt) for dt in ("float32", "float64")}
        official64 = official_model(name, seed=0).double()
        for bw in ours["float32"].target_bandwidths:
            same = total = 0
            err = {"float32": 0.0, "float64": 0.0}
            for length in args.lengths:
                x = signal(ours["float32"].channels, length, seed=length)
                for dt, ref in (("float32", official), ("float64", official64)):
                    model = ours[dt]
                    model.set_target_bandwidth(bw)
                    ref.set_target_bandwidth(bw)
                    with torch.no_grad():
                        theirs = ref.encode(torch.from_numpy(x.astype(dt)))
                        expected = ref.decode(theirs).numpy()
                    theirs = [(c.numpy(), None if s is None else s.numpy()) for c, s in theirs]
                    mine = model.encode(x)
                    if dt == "float32":
                        same += sum(int((a[0] == b[0]).sum()) for a, b in zip(mine, theirs))
                        total += sum(a[0].size for a in mine)
                    # Decode the official codes so a near-tie elsewhere cannot leak in.
                    got = model.decode(theirs)
                    err[dt] = max(err[dt], float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-9)))
            print(f"| {name} | {bw:g} | {same}/{total} ({100 * same / total:.2f} %) | "
                  f"{err['float32']:.1e} | {err['float64']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
