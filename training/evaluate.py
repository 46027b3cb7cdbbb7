"""Quality of a codec on the held-out set, at every bandwidth, against Opus.

For each eval clip (``../shared/data/eval``, 24 kHz mono FLAC) and each
condition (our model at each bandwidth; Opus at 6 and 12 kbps through
Debian's ``opusenc`` / ``opusdec``), measures SI-SNR and the log-mel distance
(:mod:`encodec_np.metrics`), plus PESQ-WB (``pesq`` package, speech clips
resampled to 16 kHz) and STOI where those packages are installed. Prints a
Markdown table (mean per condition; PESQ/STOI over speech only). Example::

    python training/evaluate.py --model encodec_np/assets/encodec_np_small_24khz.safetensors
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import DEFAULT_ROOT, SAMPLE_RATE, manifest, read_clip  # noqa: E402

import encodec_np  # noqa: E402
from encodec_np.metrics import mel_distance, si_snr  # noqa: E402


def opus_roundtrip(x: np.ndarray, kbps: float, tmp: Path) -> np.ndarray:
    """``x [T]`` through opusenc at ``kbps`` (VBR, its default) and opusdec back to 24 kHz."""
    wav, opus, out = tmp / "in.wav", tmp / "x.opus", tmp / "out.wav"
    sf.write(wav, x, SAMPLE_RATE, subtype="PCM_16")
    subprocess.run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(wav), str(opus)], check=True)
    subprocess.run(["opusdec", "--quiet", "--rate", str(SAMPLE_RATE), str(opus), str(out)], check=True)
    y, _ = sf.read(out, dtype="float32", always_2d=True)
    y = y[:len(x), 0]
    return np.pad(y, (0, len(x) - len(y))), opus.stat().st_size * 8 / (len(x) / SAMPLE_RATE) / 1000


def perceptual(ref: np.ndarray, est: np.ndarray) -> dict:
    """PESQ-WB and STOI at 16 kHz, when their packages are installed."""
    out = {}
    r16, e16 = resample_poly(ref, 2, 3), resample_poly(est, 2, 3)
    try:
        from pesq import pesq
        out["pesq_wb"] = pesq(16000, r16, e16, "wb")
    except ImportError:
        pass
    except Exception as exc:  # pesq raises on clips without detectable speech
        print(f"  pesq failed: {exc}", file=sys.stderr)
    try:
        from pystoi import stoi
        out["stoi"] = stoi(r16, e16, 16000)
    except ImportError:
        pass
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--opus", type=float, nargs="*", default=[6.0, 12.0], help="Opus bitrates (kbps)")
    p.add_argument("--every", type=int, default=1, help="every N-th eval clip only (a quicker, still mixed subset)")
    args = p.parse_args(argv)

    model = encodec_np.load_model(args.model)
    model.decode(model.encode(np.zeros((1, 1, SAMPLE_RATE), np.float32)))  # JIT warm-up, out of the timings
    rows = manifest(args.data, "eval")[::args.every]
    scores = defaultdict(lambda: defaultdict(list))  # condition -> metric -> values
    has_opus = shutil.which("opusenc") and shutil.which("opusdec")
    if not has_opus:
        print("opusenc/opusdec not found (Debian: apt install opus-tools): no Opus anchor", file=sys.stderr)
    timing = defaultdict(float)
    seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            x = read_clip(args.data, row)
            seconds += len(x) / SAMPLE_RATE
            outputs = {}
            for bw in model.target_bandwidths:
                model.set_target_bandwidth(bw)
                t0 = time.perf_counter()
                frames = model.encode(x[None, None])
                t1 = time.perf_counter()
                outputs[f"{model.name} {bw:g} kbps"] = (model.decode(frames)[0, 0, :len(x)], bw)
                timing[f"enc {bw:g}"] += t1 - t0
                timing[f"dec {bw:g}"] += time.perf_counter() - t1
            if has_opus:
                for kbps in args.opus:
                    y, real = opus_roundtrip(x, kbps, Path(tmp))
                    outputs[f"Opus {kbps:g} kbps"] = (y, real)
            for name, (y, kbps) in outputs.items():
                s = scores[name]
                s["kbps"].append(kbps)
                s["si_snr"].append(si_snr(x, y))
                s["mel_db"].append(mel_distance(x, y, SAMPLE_RATE))
                if row["kind"] == "speech":
                    for k, v in perceptual(x, y).items():
                        s[k].append(v)
            print(f"  {row['file']}", file=sys.stderr, flush=True)
    metrics = ["kbps", "si_snr", "mel_db", "pesq_wb", "stoi"]
    n_speech = sum(r["kind"] == "speech" for r in rows)
    print(f"\n{len(rows)} held-out clips, {seconds / 60:.1f} min ({n_speech} speech clips for PESQ-WB/STOI)\n")
    print("| condition | kbps | SI-SNR dB | log-mel dist. dB | PESQ-WB | STOI |")
    print("|---|---|---|---|---|---|")
    for name, s in scores.items():
        cells = [f"{np.nanmean(s[m]):.2f}" if s.get(m) else "–" for m in metrics]
        print(f"| {name} | " + " | ".join(cells) + " |")
    rtf = {k: seconds / v for k, v in timing.items() if v > 0}
    print("\nspeed (x real time): " + ", ".join(f"{k} {v:.0f}x" for k, v in rtf.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
