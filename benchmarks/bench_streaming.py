"""Streaming latency and throughput, and memory and speed on a long file (24 kHz, numba).

    python benchmarks/bench_streaming.py [--minutes 10] [--backend numba]

1. Per-chunk compute time of StreamingEncoder.push with 320-sample (one frame)
   and 480-sample (20 ms) chunks, and of StreamingDecoder.push one frame at a
   time, over 10 s of audio: median, 95th percentile and max, against the
   chunk's own duration (real time = the chunk must take less than that).
2. Throughput of streaming in 1 s chunks against one-shot encode/decode of 10 s.
3. A long input (default 10 minutes) through model.encode/decode, which stream
   it in 10 s chunks, in a fresh process: peak RSS and speed per second of
   audio against a 10 s input in the same process.
Weights are seeded random ones of the official 24 kHz structure (speed and
memory do not depend on the values).
"""
import argparse
import json
import subprocess
import sys
import time

import numpy as np

LONG = r"""
import json, sys, time
import numpy as np, encodec_np
from encodec_np.synthetic import random_model, test_signal
def mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
minutes, backend = float(sys.argv[1]), sys.argv[2]
model = random_model(encodec_np.encodec_24khz(), 0, backend=backend)
model.set_target_bandwidth(6.0)
sr = model.sample_rate
short = test_signal("noise", 1, 10 * sr, seed=1)[None]
model.decode(model.encode(short))  # warm-up
t = time.perf_counter(); model.decode(model.encode(short)); per_s_short = (time.perf_counter() - t) / 10
base = mb("VmRSS")
n = int(minutes * 60 * sr)
x = np.empty((1, 1, n), np.float32)
for i in range(0, n, 10 * sr):  # tile the seeded signal: no giant temporary
    x[..., i:i + 10 * sr] = short[..., :min(10 * sr, n - i)]
t = time.perf_counter(); frames = model.encode(x); t_enc = time.perf_counter() - t
t = time.perf_counter(); y = model.decode(frames); t_dec = time.perf_counter() - t
print(json.dumps({"minutes": minutes, "rss_before_input_mb": base, "peak_rss_mb": mb("VmHWM"),
                  "input_mb": x.nbytes / 2**20, "output_mb": y.nbytes / 2**20,
                  "seconds_per_audio_second_10s": per_s_short,
                  "seconds_per_audio_second_long": (t_enc + t_dec) / (n / sr),
                  "encode_rtf": n / sr / t_enc, "decode_rtf": n / sr / t_dec}))
"""


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
    args = p.parse_args()
    model = random_model(encodec_np.encodec_24khz(), 0, backend=args.backend)
    model.set_target_bandwidth(6.0)
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
    out = subprocess.run([sys.executable, "-c", LONG, str(args.minutes), args.backend], capture_output=True,
                         text=True, check=True)
    long = json.loads(out.stdout.strip().splitlines()[-1])
    results["long"] = long
    print(f"{args.minutes:g} min input: peak RSS {long['peak_rss_mb']:.0f} MB (input {long['input_mb']:.0f} MB, "
          f"output {long['output_mb']:.0f} MB, {long['rss_before_input_mb']:.0f} MB before the input), "
          f"encode {long['encode_rtf']:.1f}x / decode {long['decode_rtf']:.1f}x real time; "
          f"{long['seconds_per_audio_second_long'] / long['seconds_per_audio_second_10s']:.2f}x the time per "
          f"second of a 10 s input", flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
