"""Training and evaluation audio from ``../shared/data`` (24 kHz mono; see DATA.md).

The whole training split (6.4 h) is decoded once into memory as float32
(about 2.2 GB); random crops are then free, which matters more on 2 cores
than the memory.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE_RATE = 24_000


def manifest(root=DEFAULT_ROOT, split: str = "train") -> list[dict]:
    """Rows of ``manifest.csv`` for one split (``train`` or ``eval``)."""
    with open(Path(root) / "manifest.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row["split"] == split]


def read_clip(root, row: dict) -> np.ndarray:
    """One file as float32 mono ``[T]`` (checks the 24 kHz mono promise of the corpus)."""
    audio, sr = sf.read(str(Path(root) / row["file"]), dtype="float32", always_2d=True)
    if sr != SAMPLE_RATE or audio.shape[1] != 1:
        raise ValueError(f"{row['file']}: expected 24 kHz mono, got {sr} Hz x {audio.shape[1]}")
    return audio[:, 0]


class Crops:
    """Random fixed-length crops of the training split, weighted by duration.

    With ``balance``, each kind (speech, music, general) gets the same share
    of the crops and files within a kind are weighted by duration; otherwise
    speech, two thirds of the hours, gets two thirds of the crops. Crops
    quieter than ``min_dbfs`` are redrawn (packed clips have silent gaps that
    teach nothing); a random gain in ``gain_db`` varies the level.
    """

    def __init__(self, root=DEFAULT_ROOT, split: str = "train", seed: int = 0,
                 min_dbfs: float = -50.0, gain_db: tuple[float, float] = (-12.0, 3.0), balance: bool = False):
        rows = manifest(root, split)
        self.clips = [read_clip(root, r) for r in rows]
        lengths = np.array([len(c) for c in self.clips], dtype=np.float64)
        weights = lengths.copy()
        if balance:
            kinds = np.array([r["kind"] for r in rows])
            for kind in np.unique(kinds):
                weights[kinds == kind] /= weights[kinds == kind].sum()
        self.weights = weights / weights.sum()
        self.hours = lengths.sum() / SAMPLE_RATE / 3600
        self.rng = np.random.default_rng(seed)
        self.min_rms = 10 ** (min_dbfs / 20)
        self.gain_db = gain_db

    def batch(self, batch_size: int, length: int) -> np.ndarray:
        """``[batch_size, 1, length]`` float32."""
        out = np.empty((batch_size, 1, length), np.float32)
        for i in range(batch_size):
            for _ in range(20):
                clip = self.clips[self.rng.choice(len(self.clips), p=self.weights)]
                start = self.rng.integers(0, max(1, len(clip) - length))
                crop = np.zeros(length, np.float32)
                piece = clip[start:start + length]
                crop[:len(piece)] = piece
                if np.sqrt(np.mean(crop ** 2)) >= self.min_rms:
                    break
            gain = 10 ** (self.rng.uniform(*self.gain_db) / 20)
            out[i, 0] = np.clip(crop * gain, -1.0, 1.0)
        return out
