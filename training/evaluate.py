"""Quality of a codec on the held-out set, per category and bandwidth, against Opus.

For each eval clip (``../shared/data/eval``: 25 speech, 8 music, 6 general
sounds; 24 kHz mono FLAC) and each condition (our model at each bandwidth;
Opus at 6 and 12 kbps through Debian's ``opusenc`` / ``opusdec``), measures
SI-SNR and the log-mel distance (:mod:`encodec_np.metrics`), the loudness
error (output RMS over input RMS, dB) and, on speech, PESQ-WB and STOI at
16 kHz where the ``pesq`` / ``pystoi`` packages are installed. Prints one
Markdown table per category (means), the worst clip of each category, and the
collapse check of the model at ``--check`` kbps: every clip's loudness within
1.5 dB of its input and its log-mel distance below Opus 6 kbps's on that
clip. Example::

    python training/evaluate.py --json eval.json      # the shipped model, all 39 clips
"""
from __future__ import annotations

import argparse
import json
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

KINDS = ("speech", "music", "general")
METRICS = ("kbps", "si_snr", "mel_db", "loud_db", "pesq_wb", "stoi")
HEADER = "| condition | kbps | SI-SNR dB | log-mel dist. dB | loudness err. dB | PESQ-WB | STOI |"
LOUDNESS_LIMIT_DB = 1.5


def opus_roundtrip(x: np.ndarray, kbps: float, tmp: Path) -> tuple[np.ndarray, float]:
    """``x [T]`` through opusenc at ``kbps`` (VBR, its default) and opusdec back; also the real kbps."""
    wav, opus, out = tmp / "in.wav", tmp / "x.opus", tmp / "out.wav"
    sf.write(wav, x, SAMPLE_RATE, subtype="PCM_16")
    subprocess.run(["opusenc", "--quiet", "--bitrate", f"{kbps:g}", str(wav), str(opus)], check=True)
    subprocess.run(["opusdec", "--quiet", "--rate", str(SAMPLE_RATE), str(opus), str(out)], check=True)
    y, _ = sf.read(out, dtype="float32", always_2d=True)
    y = y[:len(x), 0]
    return np.pad(y, (0, len(x) - len(y))), opus.stat().st_size * 8 / (len(x) / SAMPLE_RATE) / 1000


def loudness_error(ref: np.ndarray, est: np.ndarray) -> float:
    """Output RMS over input RMS in dB (0 = same loudness; -11 = 11 dB quieter)."""
    tiny = np.finfo(np.float64).tiny
    rms = [np.sqrt(np.mean(np.asarray(a, np.float64) ** 2)) + tiny for a in (ref, est)]
    return float(20 * np.log10(rms[1] / rms[0]))


def perceptual(ref: np.ndarray, est: np.ndarray) -> dict:
    """PESQ-WB and STOI at 16 kHz, when their packages are installed."""
    out = {}
    r16, e16 = resample_poly(ref, 2, 3), resample_poly(est, 2, 3)
    try:
        from pesq import pesq
        out["pesq_wb"] = float(pesq(16000, r16, e16, "wb"))
    except ImportError:
        pass
    except Exception as exc:  # pesq raises on clips without detectable speech
        print(f"  pesq failed: {exc}", file=sys.stderr)
    try:
        from pystoi import stoi
        out["stoi"] = float(stoi(r16, e16, 16000))
    except ImportError:
        pass
    return out


def measure(model, rows, data: Path, opus_rates, bandwidths) -> tuple[list[dict], dict]:
    """One record per clip and condition, plus the model's total encode/decode seconds."""
    records, timing = [], defaultdict(float)
    has_opus = shutil.which("opusenc") and shutil.which("opusdec")
    if not has_opus:
        print("opusenc/opusdec not found (Debian: apt install opus-tools): no Opus anchor", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            x = read_clip(data, row)
            outputs = {}
            for bw in bandwidths:
                model.set_target_bandwidth(bw)
                t0 = time.perf_counter()
                frames = model.encode(x[None, None])
                t1 = time.perf_counter()
                outputs[f"{model.name} {bw:g} kbps"] = (model.decode(frames)[0, 0, :len(x)], bw)
                timing[f"enc {bw:g}"] += t1 - t0
                timing[f"dec {bw:g}"] += time.perf_counter() - t1
            if has_opus:
                for kbps in opus_rates:
                    outputs[f"Opus {kbps:g} kbps"] = opus_roundtrip(x, kbps, Path(tmp))
            for name, (y, kbps) in outputs.items():
                rec = {"file": row["file"], "kind": row["kind"], "seconds": len(x) / SAMPLE_RATE,
                       "condition": name, "kbps": float(kbps), "si_snr": si_snr(x, y),
                       "mel_db": mel_distance(x, y, SAMPLE_RATE), "loud_db": loudness_error(x, y)}
                if row["kind"] == "speech":
                    rec.update(perceptual(x, y))
                records.append(rec)
            print(f"  {row['file']}", file=sys.stderr, flush=True)
    return records, timing


def table(records: list[dict]) -> list[str]:
    """Markdown rows: the mean of each metric per condition (``–`` where none was measured)."""
    by_condition = defaultdict(lambda: defaultdict(list))
    for r in records:
        for m in METRICS:
            if m in r and np.isfinite(r[m]):
                by_condition[r["condition"]][m].append(r[m])
    lines = [HEADER, "|---|---|---|---|---|---|---|"]
    for name, s in by_condition.items():
        cells = [f"{np.mean(s[m]):.2f}" if s.get(m) else "–" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def collapse_check(records: list[dict], condition: str, anchor: str) -> list[str]:
    """Clips of ``condition`` off in loudness by over 1.5 dB or with a log-mel distance not below ``anchor``'s."""
    anchor_mel = {r["file"]: r["mel_db"] for r in records if r["condition"] == anchor}
    failures = []
    for r in records:
        if r["condition"] != condition:
            continue
        why = []
        if abs(r["loud_db"]) > LOUDNESS_LIMIT_DB:
            why.append(f"loudness {r['loud_db']:+.1f} dB")
        if r["file"] in anchor_mel and r["mel_db"] >= anchor_mel[r["file"]]:
            why.append(f"log-mel {r['mel_db']:.2f} dB, {anchor} {anchor_mel[r['file']]:.2f}")
        if why:
            failures.append(f"- {r['file']}: " + "; ".join(why))
    return failures


def report(records: list[dict], model_name: str, check_kbps: float) -> None:
    """Print the per-category tables, the worst clips and the collapse check."""
    condition, anchor = f"{model_name} {check_kbps:g} kbps", "Opus 6 kbps"
    files = {r["file"]: r for r in records}
    minutes = sum(r["seconds"] for r in files.values()) / 60
    counts = {k: sum(r["kind"] == k for r in files.values()) for k in KINDS}
    print(f"\n{len(files)} held-out clips, {minutes:.1f} min: "
          + ", ".join(f"{n} {k}" for k, n in counts.items()) + " (PESQ-WB/STOI on speech only)")
    for kind in ("all",) + KINDS:
        subset = [r for r in records if kind == "all" or r["kind"] == kind]
        if subset:
            print(f"\n**{kind}** ({len({r['file'] for r in subset})} clips)\n")
            print("\n".join(table(subset)))
    print(f"\nworst clip per category ({condition}, largest log-mel distance):")
    for kind in KINDS:
        mine = [r for r in records if r["condition"] == condition and r["kind"] == kind]
        if mine:
            w = max(mine, key=lambda r: r["mel_db"])
            print(f"- {kind}: {w['file']}: SI-SNR {w['si_snr']:.1f} dB, log-mel {w['mel_db']:.2f} dB, "
                  f"loudness {w['loud_db']:+.1f} dB")
    failures = collapse_check(records, condition, anchor)
    print(f"\ncollapse check ({condition}: loudness within {LOUDNESS_LIMIT_DB} dB, log-mel below {anchor}): "
          + (f"{len(failures)} clip(s) fail" if failures else "every clip passes"))
    print("\n".join(failures))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--opus", type=float, nargs="*", default=[6.0, 12.0], help="Opus bitrates (kbps)")
    p.add_argument("--bandwidths", type=float, nargs="*", default=None,
                   help="the model's bandwidths to test (default: all of its targets)")
    p.add_argument("--check", type=float, default=6.0, help="bandwidth of the collapse check")
    p.add_argument("--every", type=int, default=1, help="every N-th eval clip only (a quicker, still mixed subset)")
    p.add_argument("--json", type=Path, default=None, help="also write every per-clip record here")
    p.add_argument("--from-json", type=Path, default=None, help="report on records written by --json, measure nothing")
    args = p.parse_args(argv)

    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        report(saved["records"], saved["model"], args.check)
        return 0
    model = encodec_np.load_model(args.model)
    model.decode(model.encode(np.zeros((1, 1, SAMPLE_RATE), np.float32)))  # JIT warm-up, out of the timings
    rows = manifest(args.data, "eval")[::args.every]
    records, timing = measure(model, rows, args.data, args.opus, args.bandwidths or model.target_bandwidths)
    report(records, model.name, args.check)
    seconds = sum({r["file"]: r["seconds"] for r in records}.values())  # each clip once, as measured
    print("\nspeed (x real time): " + ", ".join(f"{k} {seconds / v:.0f}x" for k, v in timing.items() if v > 0))
    if args.json is not None:
        args.json.write_text(json.dumps({"model": model.name, "checkpoint": str(args.model or "shipped"),
                                         "records": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
