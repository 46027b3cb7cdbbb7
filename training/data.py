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
from scipy.signal import resample_poly

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE_RATE = 24_000
# Source rates a user's file may have been band-limited by before reaching 24 kHz
# (telephone, old games, wideband speech corpora, half of CD): --bandlimit draws one.
SOURCE_RATES = (8_000, 11_025, 16_000, 22_050)


def band_limit(audio: np.ndarray, source_rate: int) -> np.ndarray:
    """``audio [T]`` at 24 kHz as it would be after a trip through ``source_rate``.

    Down and back up with ``resample_poly`` (the corpus's own resampler): from
    1.2 x ``source_rate / 2`` on, over 50 dB down (measured on white noise; the
    22.05 kHz trip leaves only 11-12 kHz above its cutoff, 16 dB down). The
    length is kept.
    """
    g = np.gcd(SAMPLE_RATE, source_rate)
    up, down = source_rate // g, SAMPLE_RATE // g
    back = resample_poly(resample_poly(audio, up, down), down, up)[:len(audio)]
    return np.pad(back, (0, len(audio) - len(back))).astype(np.float32)


def whistles(rng: np.random.Generator, length: int) -> np.ndarray:
    """A synthetic phrase of tonal notes, ``[length]`` float32 at 24 kHz.

    About 2.5 notes a second at random onsets (they may overlap): each a glide
    of up to ±35 % with vibrato (0-3 % at 3-9 Hz), its fundamental log-uniform
    in 150 Hz-7 kHz, one to five harmonics below 11 kHz with geometric
    amplitudes, attack and release ramps, at -35 to -10 dBFS. The corpus has
    little of this (whistles, birds, solo winds); the stage-8 model turns a
    steady whistle above 1.5 kHz into noise 5-9 dB quieter (6 kbps,
    ``training/whistle_check.py``).
    """
    out = np.zeros(length)
    for _ in range(1 + rng.poisson(2.5 * length / SAMPLE_RATE)):
        n = int(rng.uniform(0.08, 0.8) * SAMPLE_RATE)
        start = int(rng.integers(-n // 2, length))
        t = np.arange(n) / SAMPLE_RATE
        vibrato = 1 + rng.uniform(0, 0.03) * np.sin(2 * np.pi * rng.uniform(3, 9) * t + rng.uniform(0, 2 * np.pi))
        freq = np.exp(rng.uniform(np.log(150), np.log(7000))) * np.exp(rng.uniform(-0.35, 0.35) * t / t[-1]) * vibrato
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi)
        ratio = rng.uniform(0.1, 0.7)
        harmonics = [k for k in range(1, int(rng.integers(1, 6)) + 1) if k * freq.max() < 11_000] or [1]
        note = sum(ratio ** (k - 1) * np.sin(k * phase) for k in harmonics)
        note /= np.sqrt(sum(ratio ** (2 * (k - 1)) for k in harmonics) / 2)  # unit RMS while sustained
        attack, release = rng.uniform(0.005, 0.05), rng.uniform(0.02, 0.2)
        ramp = np.clip(np.minimum(t / attack, (t[-1] - t) / release), 0.0, 1.0)
        note *= np.sin(0.5 * np.pi * ramp) ** 2 * 10 ** (rng.uniform(-35, -10) / 20)
        lo, hi = max(start, 0), min(start + n, length)
        out[lo:hi] += note[lo - start:hi - start]
    return out.astype(np.float32)


def silent_gaps(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
    """``crop [T]`` with one to three spans of digital silence, 40-400 ms each, entered and left through 5 ms fades.

    Real files have exact zeros (pauses of gated speech, gaps between tracks); the
    corpus, packed and Vorbis-coded, has few. Given them, the stage-11 model makes a
    75 Hz buzz (the frame rate and its harmonics) at -82 dBFS, 13-38 dB above the
    held-out log-mel distance's -100 dB floor in 63 of its 64 bands (6 kbps).
    Measured: 870 steps with a share of 0.3 did not teach it silence (DATA.md).
    """
    out = crop.astype(np.float32)
    fade = int(0.005 * SAMPLE_RATE)
    ramp = np.sin(0.5 * np.pi * np.arange(fade) / fade) ** 2  # 0 → 1
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.uniform(0.04, 0.4) * SAMPLE_RATE)
        start = int(rng.integers(-n // 2, len(out)))
        lo, hi = max(start, 0), min(start + n, len(out))
        if hi <= lo:
            continue
        out[lo:hi] = 0.0
        k = lo - max(lo - fade, 0)  # the fades are cut where the crop ends
        out[lo - k:lo] *= ramp[::-1][fade - k:]
        k = min(hi + fade, len(out)) - hi
        out[hi:hi + k] *= ramp[:k]
    return out


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
    teach nothing); a random gain in ``gain_db`` varies the level. With
    ``bandlimit`` > 0, that share of the crops is band-limited through one of
    :data:`SOURCE_RATES` (:func:`band_limit`): most of the corpus is full-band,
    and a decoder that never saw an empty top octave fills it with noise
    (measured on 16 kHz-sourced held-out speech: 15-40 dB above the input in
    the top mel bands). With ``tones`` > 0, that share of the crops becomes
    :func:`whistles` over the drawn crop, which is turned down by 10-40 dB to
    a background. With ``gaps`` > 0, that share of the crops gets spans of
    digital silence (:func:`silent_gaps`), last, so they stay exact zeros.
    """

    def __init__(self, root=DEFAULT_ROOT, split: str = "train", seed: int = 0,
                 min_dbfs: float = -50.0, gain_db: tuple[float, float] = (-12.0, 3.0), balance: bool = False,
                 bandlimit: float = 0.0, tones: float = 0.0, gaps: float = 0.0):
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
        self.bandlimit = bandlimit
        self.tones = tones
        self.gaps = gaps

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
            # no draws for a share that is off: old runs replay
            if self.tones > 0 and self.rng.random() < self.tones:
                crop = whistles(self.rng, length) + crop * np.float32(10 ** (self.rng.uniform(-40, -10) / 20))
            if self.bandlimit > 0 and self.rng.random() < self.bandlimit:
                crop = band_limit(crop, int(self.rng.choice(SOURCE_RATES)))
            if self.gaps > 0 and self.rng.random() < self.gaps:
                crop = silent_gaps(self.rng, crop)
            out[i, 0] = np.clip(crop * gain, -1.0, 1.0)
        return out
