"""Copy a random part of the training split, of about a given size, into a new data root.

For training on a machine the whole corpus cannot travel to (the lent GPU
machine takes 64 MiB with the code). Every source keeps the same share of its
files, chosen with a fixed seed, so the subset has the corpus's mix of speech,
music and sounds. Example::

    python training/subset.py .gpu/data --megabytes 46
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import DEFAULT_ROOT, manifest  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="new data root (gets manifest.csv and the copied files)")
    p.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--megabytes", type=float, required=True,
                   help="about this many MB of audio (each source keeps at least one file, so small values overshoot)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rows = manifest(args.data, "train")
    fields = list(rows[0])
    size = {r["file"]: (args.data / r["file"]).stat().st_size for r in rows}
    share = min(1.0, args.megabytes * 1e6 / sum(size.values()))
    by_source = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    rng = np.random.default_rng(args.seed)
    chosen = []
    for source in sorted(by_source):
        group = by_source[source]
        # At least one file per source, so no kind of sound disappears from a small subset.
        n = max(1, round(share * len(group)))
        chosen += [group[i] for i in sorted(rng.choice(len(group), n, replace=False))]

    args.out.mkdir(parents=True, exist_ok=True)
    for r in chosen:
        (args.out / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.data / r["file"], args.out / r["file"])
    with open(args.out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(chosen)
    hours = sum(float(r["duration_s"]) for r in chosen) / 3600
    print(f"{len(chosen)} of {len(rows)} files, {hours:.2f} h, "
          f"{sum(size[r['file']] for r in chosen) / 1e6:.1f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
