"""Hiss in quiet bins: how much of each held-out clip's log-mel distance is noise where the input is quiet.

The held-out log-mel distance (``evaluate.py``, :func:`encodec_np.metrics.mel_distance`)
floors magnitudes at -100 dB; the training's mel loss at ``--mel-floor 1e-3``
stops seeing at -60 dB. This prints, per clip, the distance, the same distance
with the output's excess over the input taken out of every bin where the input
is below ``--quiet-db`` (what is left if the decoder added no hiss there), and
the loudness error; then the level of what the codec returns for 2 s of digital
silence::

    python training/hiss_check.py --model M.safetensors --clips rtvc_samples klettres_0002
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import DEFAULT_ROOT, SAMPLE_RATE, manifest, read_clip  # noqa: E402
from evaluate import loudness_error  # noqa: E402

from encodec_np import load_model  # noqa: E402
from encodec_np.metrics import log_mel_db, mel_gap  # noqa: E402


def distances(x: np.ndarray, y: np.ndarray, quiet_db: float) -> tuple[float, float]:
    """``x, y [T]`` → the log-mel distance, and the same without ``y``'s excess in bins where ``x`` < ``quiet_db``."""
    ref, est = (log_mel_db(a[None].astype(np.float64), SAMPLE_RATE)[0] for a in (x, y))
    diff = est - ref
    kept = np.where((ref < quiet_db) & (diff > 0), 0.0, diff)
    return mel_gap(diff), mel_gap(kept)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="weights (default: the shipped model)")
    p.add_argument("--bandwidth", type=float, default=6.0)
    p.add_argument("--quiet-db", type=float, default=-60.0,
                   help="input bins below this level (dB, log_mel_db's scale) count as quiet")
    p.add_argument("--clips", nargs="*", default=(), help="only eval clips whose path contains one of these")
    p.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    args = p.parse_args(argv)
    model = load_model(args.model)
    model.set_target_bandwidth(args.bandwidth)
    print(f"| clip | log-mel dB | without hiss below {args.quiet_db:g} dB | loudness err. dB |"
          f"  ({args.model or 'shipped'}, {args.bandwidth:g} kbps)")
    for row in manifest(args.data, "eval"):
        if args.clips and not any(c in row["file"] for c in args.clips):
            continue
        x = read_clip(args.data, row)
        y = model.decode(model.encode(x[None, None]))[0, 0, :len(x)]
        full, kept = distances(x, y, args.quiet_db)
        print(f"| {Path(row['file']).stem} | {full:.2f} | {kept:.2f} | {loudness_error(x, y):+.1f} |")
    silence = np.zeros(2 * SAMPLE_RATE, np.float32)
    y = model.decode(model.encode(silence[None, None]))[0, 0, SAMPLE_RATE // 2:3 * SAMPLE_RATE // 2]
    level = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) + 1e-20)
    print(f"digital silence in (2 s), the middle second out: {level:.1f} dBFS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
