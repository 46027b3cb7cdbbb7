"""Streaming latency and throughput, and memory and speed on a long file (24 kHz, numba).

    python benchmarks/bench_streaming.py [--minutes 10] [--backend numba] [--threads 1]

1. Per-chunk compute time of StreamingEncoder.push with 320-sample (one frame)
   and 480-sample (20 ms) chunks, and of StreamingDecoder.push one frame at a
   time, over 10 s of audio: median, 95th percentile and max, against the
   chunk's own duration (real time = the chunk must take less than that).
2. Throughput of streaming in 1 s chunks against one-shot encode/decode of 10 s.
3. Speed on a long input (default 10 minutes) through model.encode/decode
   (which stream it in 1 s chunks) against a 10 s input (one pass), per second
   of audio, median of 3 for the 10 s input.
4. Memory: peak RSS of ``encodec-np encode`` of a 10-minute WAV and of
   ``encodec-np decode`` back to WAV, each a fresh process (what a user runs),
   and of a fresh process calling model.encode + model.decode on the
   10-minute array in memory.
Weights are seeded random ones of the official 24 kHz structure (speed and
memory do not depend on the values), saved to a checkpoint for the command line.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPEED = r"""
import json, sys, time
import numpy as np, encodec_np
from encodec_np.synthetic import test_signal
minutes, backend, ckpt = float(sys.argv[1]), sys.argv[2], sys.argv[3]
model = encodec_np.load_model(ckpt, backend=backend)
model.set_target_bandwidth(6.0)
sr = model.sample_rate
short = test_signal("noise", 1, 10 * sr, seed=1)[None]
model.decode(model.encode(short))  # warm-up
runs = []
for _ in range(3):
    t = time.perf_counter(); model.decode(model.encode(short)); runs.append((time.perf_counter() - t) / 10)
n = int(minutes * 60 * sr)
x = np.resize(short, (1, 1, n))  # the seeded signal, tiled
t = time.perf_counter(); frames = model.encode(x); t_enc = time.perf_counter() - t
t = time.perf_counter(); y = model.decode(frames); t_dec = time.perf_counter() - t
print(json.dumps({"per_s_10s": sorted(runs)[1], "per_s_long": (t_enc + t_dec) / (n / sr),
                  "encode_rtf": n / sr / t_enc, "decode_rtf": n / sr / t_dec}))
"""

ARRAY = r"""
import sys
import numpy as np, encodec_np
from encodec_np.synthetic import test_signal
minutes, backend, ckpt = float(sys.argv[1]), sys.argv[2], sys.argv[3]
model = encodec_np.load_model(ckpt, backend=backend)
model.set_target_bandwidth(6.0)
x = np.resize(test_signal("noise", 1, 10 * model.sample_rate, seed=1)[None], (1, 1, int(minutes * 60 * model.sample_rate)))
y = model.decode(model.encode(x))
"""


PEAK = r"""
import runpy, sys
argv, sys.argv = sys.argv[1:], sys.argv[1:]
try:
    if argv[0] == "-c":
        sys.argv = ["-c"] + argv[2:]
        exec(compile(argv[1], "<bench>", "exec"), {"__name__": "__main__"})
    else:
        runpy.run_module(argv[0], run_name="__main__")
except SystemExit as exc:
    if exc.code:
        raise
finally:
    print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")), file=sys.stderr)
"""


def peak_rss_mb(args) -> float:
    """Peak resident set size (MB) of ``python -m MODULE ...`` or ``python -c CODE ...``, read from
    VmHWM in the process itself (a child's ru_maxrss would include the parent's RSS at fork)."""
    out = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {out.stderr[-2000:]}")
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def long_file(minutes: float, backend: str, model, folder: Path) -> dict:
    import soundfile as sf

    import encodec_np
    from encodec_np.synthetic import test_signal

    ckpt = folder / "model.safetensors"
    encodec_np.save_model(model, ckpt)
    speed = json.loads(subprocess.run([sys.executable, "-c", SPEED, str(minutes), backend, str(ckpt)],
                                      capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    wav = folder / "long.wav"
    sr = model.sample_rate
    block = test_signal("noise", 1, 10 * sr, seed=1).T
    with sf.SoundFile(str(wav), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for _ in range(int(minutes * 6)):
            f.write(block)
    cli = ["encodec_np.cli"]
    common = ["--model", str(ckpt), "--backend", backend, "-q", "-f"]
    encode = peak_rss_mb(cli + ["encode", str(wav), str(folder / "long.ecdc"), "-b", "6"] + common)
    decode = peak_rss_mb(cli + ["decode", str(folder / "long.ecdc"), str(folder / "out.wav")] + common)
    roundtrip = peak_rss_mb(cli + ["roundtrip", str(wav), str(folder / "round.wav"), "-b", "6"] + common)
    array = peak_rss_mb(["-c", ARRAY, str(minutes), backend, str(ckpt)])
    return {**speed, "cli_encode_peak_mb": encode, "cli_decode_peak_mb": decode, "cli_roundtrip_peak_mb": roundtrip,
            "array_peak_mb": array}


def percentiles(times, duration):
    t = np.array(times) * 1000
    return (f"median {np.median(t):.2f} ms, p95 {np.percentile(t, 95):.2f} ms, max {t.max():.2f} ms "
            f"for {duration * 1000:.1f} ms of audio (median {duration * 1000 / np.median(t):.1f}x real time)")


def main():
    import encodec_np
    from encodec_np import StreamingDecoder, StreamingEncoder
    from encodec_np.synthetic import random_model, test_signal

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--backend", default="numba")
    p.add_argument("--threads", type=int, default=1, help="threads of the in-process model (default 1)")
    args = p.parse_args()
    from bench_cpu import machine  # this folder is on sys.path when run as a script
    print("machine:", json.dumps(machine()), flush=True)
    model = random_model(encodec_np.encodec_24khz(), 0, backend=args.backend, threads=args.threads)
    model.set_target_bandwidth(6.0)
    print(f"threads: {args.threads} (streaming and throughput); the long-file processes use all cores", flush=True)
    sr = model.sample_rate
    x = test_signal("noise", 1, 10 * sr, seed=1)[None]
    model.decode(model.encode(x[..., :sr]))  # JIT warm-up
    results = {}
    for chunk in (320, 480):
        enc = StreamingEncoder(model)
        times, parts = [], []
        for i in range(0, x.shape[-1], chunk):
            t = time.perf_counter()
            parts.append(enc.push(x[..., i:i + chunk]))
            times.append(time.perf_counter() - t)
        codes = np.concatenate(parts + [enc.flush()], axis=-1)
        line = percentiles(times[10:], chunk / sr)
        results[f"encoder_push_{chunk}"] = line
        print(f"encoder, {chunk}-sample chunks: {line}", flush=True)
    dec = StreamingDecoder(model)
    times = []
    for f in range(codes.shape[-1]):
        t = time.perf_counter()
        dec.push(codes[..., f:f + 1])
        times.append(time.perf_counter() - t)
    line = percentiles(times[10:], 320 / sr)
    results["decoder_push_1_frame"] = line
    print(f"decoder, one frame (320 samples) per push: {line}", flush=True)
    # Throughput: 1 s chunks against one pass.
    t = time.perf_counter(); model.encode(x); one_enc = time.perf_counter() - t
    t = time.perf_counter(); model.decode([(codes, None)]); one_dec = time.perf_counter() - t
    t = time.perf_counter()
    enc = StreamingEncoder(model)
    parts = [enc.push(x[..., i:i + sr]) for i in range(0, x.shape[-1], sr)] + [enc.flush()]
    st_enc = time.perf_counter() - t
    t = time.perf_counter()
    dec = StreamingDecoder(model)
    [dec.push(codes[..., i:i + 75]) for i in range(0, codes.shape[-1], 75)] + [dec.flush()]
    st_dec = time.perf_counter() - t
    line = (f"10 s: one-shot encode {10 / one_enc:.1f}x / decode {10 / one_dec:.1f}x real time; "
            f"1 s chunks encode {10 / st_enc:.1f}x / decode {10 / st_dec:.1f}x")
    results["throughput"] = line
    print(line, flush=True)
    with tempfile.TemporaryDirectory() as folder:
        long = long_file(args.minutes, args.backend, model, Path(folder))
    results["long"] = long
    print(f"{args.minutes:g} min input through model.encode/decode: encode {long['encode_rtf']:.1f}x / decode "
          f"{long['decode_rtf']:.1f}x real time, {long['per_s_long'] / long['per_s_10s']:.2f}x the time per "
          f"second of a 10 s input", flush=True)
    print(f"peak RSS: encodec-np encode {long['cli_encode_peak_mb']:.0f} MB, decode {long['cli_decode_peak_mb']:.0f} MB, "
          f"roundtrip {long['cli_roundtrip_peak_mb']:.0f} MB; "
          f"model.encode + decode of the array in memory {long['array_peak_mb']:.0f} MB", flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
