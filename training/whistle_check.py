"""Steady whistles through a codec: the level and SI-SNR it keeps, per pitch and level.

The held-out set has one whistle (``librosa_nature_0000``, a robin); this
probe asks the same question at pitches and levels of our choosing. Each
probe is 3 s of a sine with 2 % vibrato at 5 Hz::

    python training/whistle_check.py --model M.safetensors --bandwidth 6

Loudness error is the output's RMS over the input's in dB (the collapse check
of ``evaluate.py`` allows 1.5 dB); an SI-SNR far below 0 dB means the output is
not the tone but noise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import SAMPLE_RATE  # noqa: E402
from evaluate import loudness_error  # noqa: E402

from encodec_np import load_model  # noqa: E402
from encodec_np.metrics import si_snr  # noqa: E402

PITCHES_HZ = (500, 1500, 3000, 5000)
LEVELS_DBFS = (-20, -35)


def whistle(pitch_hz: float, level_dbfs: float, seconds: float = 3.0) -> np.ndarray:
    """``[T]`` float32: a sine at ``pitch_hz`` with 2 % vibrato at 5 Hz, RMS ``level_dbfs``."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(pitch_hz * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / SAMPLE_RATE
    return (10 ** (level_dbfs / 20) * np.sqrt(2) * np.sin(phase)).astype(np.float32)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="weights (default: the shipped model)")
    p.add_argument("--bandwidth", type=float, default=6.0)
    args = p.parse_args(argv)
    model = load_model(args.model)
    model.set_target_bandwidth(args.bandwidth)
    print(f"| pitch Hz | level dBFS | loudness err. dB | SI-SNR dB |  ({args.model or 'shipped'}, {args.bandwidth:g} kbps)")
    for pitch in PITCHES_HZ:
        for level in LEVELS_DBFS:
            x = whistle(pitch, level)
            y = model.decode(model.encode(x[None, None]))[0, 0, :len(x)]
            print(f"| {pitch} | {level} | {loudness_error(x, y):+.2f} | {si_snr(x, y):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
