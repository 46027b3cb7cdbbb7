"""Make the demo clip shipped in the package (``encodec_np/assets/demo_speech_24k.flac``).

Synthesised speech, so the package carries no recording: Flite (Debian
package ``flite``) with its built-in ``slt`` voice (CMU ARCTIC, BSD-style
licence), reading a text written for this project; 16 kHz resampled to
24 kHz mono with ``resample_poly``, peak at -3 dBFS, 20 ms fades, 16-bit FLAC.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

TEXT = ("Hello. This is the demo clip of encodec n p, a neural audio codec in NumPy. "
        "It turns speech into a few hundred tokens per second, and back into sound.")
OUT = Path(__file__).resolve().parents[1] / "encodec_np" / "assets" / "demo_speech_24k.flac"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "flite.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", TEXT, "-o", str(raw)], check=True)
        x, sr = sf.read(raw, dtype="float64")
    if sr != 16000:
        raise SystemExit(f"expected Flite's 16 kHz output, got {sr} Hz")
    y = resample_poly(x, 3, 2)
    y *= 10 ** (-3 / 20) / np.max(np.abs(y))
    fade = np.linspace(0.0, 1.0, 480)  # 20 ms at 24 kHz
    y[:480] *= fade
    y[-480:] *= fade[::-1]
    sf.write(OUT, y, 24000, subtype="PCM_16")
    print(f"wrote {OUT}: {len(y) / 24000:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
