"""Dataset tokenizing throughput: hours of audio per hour of wall time against the number of workers.

    python benchmarks/bench_tokenize.py [--files 40] [--seconds 10] [--workers 1,2] [--dask 2] [--quick]

Writes a seeded corpus (mono WAVs at 16, 24 and 44.1 kHz, so resampling is
part of the work) and a seeded random model of the official 24 kHz structure
(speed and memory do not depend on the weights; ``--model`` takes a real
checkpoint), then tokenizes the corpus from scratch with ``tokenize_dataset``
once per configuration: local process pools of each ``--workers`` count (each
worker gets cores // workers threads) and a Dask ``LocalCluster`` of ``--dask``
workers. Prints, per run: wall time (start-up included), hours of audio per
hour (= the real-time factor), the largest peak RSS of a worker process, and whether
its shards are byte-identical to the first run's. A one-file run first fills
the Numba cache, so no run pays for compilation.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import soundfile as sf

import encodec_np
from encodec_np.dataset import tokenize_dataset
from encodec_np.kernels import available_cores
from encodec_np.synthetic import random_model, test_signal

RATES = (16000, 24000, 44100)


def make_corpus(folder: Path, files: int, seconds: float) -> float:
    """``files`` seeded clips of ``seconds`` each; returns the total seconds of audio."""
    folder.mkdir(parents=True)
    for i in range(files):
        sr = RATES[i % len(RATES)]
        x = test_signal(("noise", "chirp", "impulses")[i % 3], 1, int(seconds * sr), seed=i, sample_rate=sr)
        sf.write(str(folder / f"clip{i:04d}.wav"), x.T, sr, subtype="PCM_16")
    return files * seconds


def shards(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in (out / "shards").rglob("*.npz")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=40, help="clips in the corpus (default 40)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per clip (default 10)")
    p.add_argument("--workers", default="1,2", help="local worker counts, comma-separated (default 1,2)")
    p.add_argument("--dask", type=int, default=2, help="LocalCluster workers; 0 skips Dask (default 2)")
    p.add_argument("--model", default=None, help="checkpoint (default: seeded random encodec_24khz weights)")
    p.add_argument("-b", "--bandwidth", type=float, default=6.0)
    p.add_argument("--backend", default="auto")
    p.add_argument("--quick", action="store_true", help="6 clips of 2 s, 1 and 2 workers, Dask with 2: a smoke run")
    args = p.parse_args()
    from bench_cpu import machine  # this folder is on sys.path when run as a script
    print("machine:", json.dumps(machine()), flush=True)
    if args.quick:
        args.files, args.seconds, args.workers = 6, 2.0, "1,2"
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("dask.distributed is not installed: the Dask run is skipped", file=sys.stderr)
        args.dask = 0

    with tempfile.TemporaryDirectory(prefix="bench_tokenize_") as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            model = tmp / "random_24khz.safetensors"
            encodec_np.save_model(random_model(encodec_np.encodec_24khz(), 0, backend="numpy"), model)
        total = make_corpus(tmp / "corpus", args.files, args.seconds)
        make_corpus(tmp / "warm", 1, 0.5)
        common = dict(model=model, bandwidths=[args.bandwidth], backend=args.backend)
        tokenize_dataset(tmp / "warm", tmp / "warm_out", workers=1, **common)  # fills the Numba cache

        runs = [(f"local, {n} worker(s)", dict(workers=n)) for n in map(int, args.workers.split(","))]
        if args.dask:
            runs.append((f"Dask LocalCluster, {args.dask} worker(s)", dict(workers=args.dask, dask="local")))
        print(f"{args.files} clips x {args.seconds:g} s = {total / 3600:.3f} h of audio; {args.bandwidth:g} kbps, "
              f"backend {args.backend}, {available_cores()} cores\n")
        header = f"{'run':<34} {'workers x threads':>26} {'wall s':>8} {'h audio / h':>12} " \
                 f"{'peak RSS/worker MB':>19} {'same shards':>12}"
        print(header)
        print("-" * len(header))
        first = None
        for i, (name, options) in enumerate(runs):
            out = tmp / f"out{i}"
            summary = tokenize_dataset(tmp / "corpus", out, **common, **options)
            if summary.encoded != args.files:
                raise SystemExit(f"{name}: {summary.encoded} of {args.files} clips encoded: {summary.failed}")
            first = first or shards(out)
            rss = max(summary.peak_rss.values()) / 2**20 if summary.peak_rss else float("nan")
            print(f"{name:<34} {summary.workers:>26} {summary.wall:>8.1f} {summary.hours_per_hour:>12.1f} "
                  f"{rss:>19.0f} {'yes' if shards(out) == first else 'NO':>12}")


if __name__ == "__main__":
    main()
