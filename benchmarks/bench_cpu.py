"""CPU speed: our numba and numpy backends against the official PyTorch model, same weights.

One run measures every cell of the matrix (model x bandwidth x input length x
threads); backends are alternated within each repetition and the median of
``--repeats`` runs after a warm-up is reported as a real-time factor (seconds
of audio per second of compute) and as our/PyTorch ratios. PyTorch runs twice:
as shipped (weight norm recomputed on every call) and with weight norm removed
(folded), which is what we run. Peak memory, JIT cold-compile and cached
start-up times are measured in fresh subprocesses.

    python benchmarks/bench_cpu.py                       # the full matrix (slow: ~1 h here)
    python benchmarks/bench_cpu.py --quick               # 24 kHz 6 kbps and 48 kHz 6 kbps, 10 s
    python benchmarks/bench_cpu.py --json out.json --png out.png

Needs ``torch`` and ``encodec`` for the PyTorch columns (see README); without
them only our backends are timed. The PNG needs matplotlib.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # tests/oracle.py: the official model


def machine() -> dict:
    import numba
    from threadpoolctl import threadpool_info

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = [f"{p['internal_api']} {p.get('version')} ({p.get('architecture')})" for p in threadpool_info()
            if p["user_api"] == "blas"]
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "numba_threading_layer": None, "blas": blas}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def build(name: str, seed: int = 0):
    """Our model on every backend plus the official one (as shipped and folded), same weights."""
    import encodec_np
    from encodec_np.checkpoint import to_official_state
    from encodec_np.synthetic import random_params

    config = getattr(encodec_np, name)()
    params = random_params(config, seed)
    ours = {b: encodec_np.EncodecModel(config, params, backend=b) for b in ("numba", "numpy")}
    official = {}
    try:
        import torch
        from oracle import import_encodec
        enc = import_encodec()
        ctor = {"encodec_24khz": enc.EncodecModel.encodec_model_24khz,
                "encodec_48khz": enc.EncodecModel.encodec_model_48khz}[name]
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in to_official_state(params, config).items()}
        for variant in ("torch", "torch_folded"):
            model = ctor(pretrained=False)
            model.load_state_dict(state)
            if variant == "torch_folded":
                for module in model.modules():
                    if hasattr(module, "weight_g"):
                        torch.nn.utils.remove_weight_norm(module)
            official[variant] = model.eval()
    except ImportError:
        pass
    return config, ours, official


def run_ours(model, x, bw):
    model.set_target_bandwidth(bw)
    t0 = time.perf_counter()
    frames = model.encode(x)
    t1 = time.perf_counter()
    model.decode(frames)
    return t1 - t0, time.perf_counter() - t1


def run_torch(model, x, bw, threads):
    import torch
    torch.set_num_threads(threads)
    model.set_target_bandwidth(bw)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        t0 = time.perf_counter()
        frames = model.encode(xt)
        t1 = time.perf_counter()
        model.decode(frames)
    return t1 - t0, time.perf_counter() - t1


def time_cell(name, ours, official, bw, seconds, threads, repeats, backends):
    from encodec_np.synthetic import test_signal

    sr = ours["numba"].sample_rate
    x = test_signal("noise", ours["numba"].channels, int(seconds * sr), seed=1, sample_rate=sr)[None]
    runners = {}
    for b in backends:
        if b in ours:
            model = ours[b]
            model.threads = threads
            runners[b] = lambda m=model: run_ours(m, x, bw)
        elif b in official:
            runners[b] = lambda m=official[b]: run_torch(m, x, bw, threads)
    warm = x[..., :sr]
    for b, run in runners.items():  # warm-up (JIT, caches) on one second
        if b in ours:
            ours[b].set_target_bandwidth(bw)
            ours[b].decode(ours[b].encode(warm))
        run()
    samples = {b: ([], []) for b in runners}
    for _ in range(repeats):
        for b, run in runners.items():  # alternated: drift hits every backend alike
            enc, dec = run()
            samples[b][0].append(enc)
            samples[b][1].append(dec)
    cell = {"model": name, "kbps": bw, "seconds": seconds, "threads": threads, "repeats": repeats}
    for b, (enc, dec) in samples.items():
        cell[b] = {"encode_s": statistics.median(enc), "decode_s": statistics.median(dec),
                   "encode_rtf": seconds / statistics.median(enc), "decode_rtf": seconds / statistics.median(dec)}
    return cell


# --------------------------------------------------------------------------- subprocess probes
_HWM = """
def rss_mb(field):  # VmHWM (peak) / VmRSS (now) of this process, in MB; both reset at exec
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
"""

_PROBE = _HWM + r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np, encodec_np
t_import = time.perf_counter() - t0
from encodec_np.synthetic import random_model, test_signal
name, backend, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
model = random_model(getattr(encodec_np, name)(), 0, backend=backend)
model.set_target_bandwidth(6.0)
sr = model.sample_rate
short = test_signal("noise", model.channels, sr // 10, sample_rate=sr)[None]
t1 = time.perf_counter()
model.decode(model.encode(short))
first_call = time.perf_counter() - t1
rss = rss_mb("VmRSS")
if seconds:
    x = test_signal("noise", model.channels, int(seconds * sr), seed=1, sample_rate=sr)[None]
    model.decode(model.encode(x))
print(json.dumps({"import_s": t_import, "first_call_s": first_call, "startup_s": t_import + first_call,
                  "rss_before_mb": rss, "peak_rss_mb": rss_mb("VmHWM")}))
"""

_TORCH_PROBE = _HWM + r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[4])
import numpy as np, torch
from oracle import import_encodec
enc = import_encodec()
name, seconds = sys.argv[1], float(sys.argv[3])
ctor = {"encodec_24khz": enc.EncodecModel.encodec_model_24khz, "encodec_48khz": enc.EncodecModel.encodec_model_48khz}[name]
model = ctor(pretrained=False).eval(); model.set_target_bandwidth(6.0)
sr = model.sample_rate
with torch.no_grad():
    model.decode(model.encode(torch.zeros(1, model.channels, sr // 10)))
    rss = rss_mb("VmRSS")
    x = torch.from_numpy((0.1 * np.random.default_rng(1).standard_normal((1, model.channels, int(seconds * sr)))).astype(np.float32))
    model.decode(model.encode(x))
print(json.dumps({"rss_before_mb": rss, "peak_rss_mb": rss_mb("VmHWM")}))
"""


def probe(code, *args, env=None):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def startup_and_memory(names, seconds, have_torch):
    results = {}
    cache = tempfile.mkdtemp(prefix="bench-numba-cache-")
    cold = probe(_PROBE, "encodec_24khz", "numba", 0, env={"NUMBA_CACHE_DIR": cache})
    warm = probe(_PROBE, "encodec_24khz", "numba", 0, env={"NUMBA_CACHE_DIR": cache})
    results["jit"] = {"cold": cold, "cached": warm,
                      "what": "import encodec_np, then the first 0.1 s encode+decode (24 kHz, numba); "
                              "model construction from seeded weights is not counted"}
    for name in names:
        for backend in ("numba", "numpy"):
            r = probe(_PROBE, name, backend, seconds, env={"NUMBA_CACHE_DIR": cache})
            results[f"{name}/{backend}"] = {"peak_rss_mb": r["peak_rss_mb"],
                                            "added_mb": r["peak_rss_mb"] - r["rss_before_mb"]}
        if have_torch:
            r = probe(_TORCH_PROBE, name, "torch", seconds, os.path.join(HERE, "..", "tests"))
            results[f"{name}/torch"] = {"peak_rss_mb": r["peak_rss_mb"], "added_mb": r["peak_rss_mb"] - r["rss_before_mb"]}
    results["input_seconds"] = seconds
    return results


# --------------------------------------------------------------------------- report
def print_cell(cell):
    head = f"{cell['model']:14s} {cell['kbps']:>5g} kbps {cell['seconds']:>4g} s {cell['threads']} thr"
    base = cell.get("torch")
    folded = cell.get("torch_folded")
    for b in ("numba", "numpy", "torch", "torch_folded"):
        if b not in cell:
            continue
        r = cell[b]
        line = f"{head} | {b:12s} encode {r['encode_rtf']:6.1f}x  decode {r['decode_rtf']:6.1f}x"
        if base and b in ("numba", "numpy"):
            line += (f" | vs torch {base['encode_s'] / r['encode_s']:.2f}x / {base['decode_s'] / r['decode_s']:.2f}x")
            if folded:
                line += f" | vs folded {folded['encode_s'] / r['encode_s']:.2f}x / {folded['decode_s'] / r['decode_s']:.2f}x"
        print(line, flush=True)


def chart(cells, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no PNG: pip install matplotlib to draw the chart)")
        return
    labels, series = [], {}
    for c in cells:
        labels.append(f"{c['model'][8:]}\n{c['kbps']:g}k {c['seconds']:g}s\n{c['threads']}t")
        for b in ("numba", "numpy", "torch", "torch_folded"):
            for phase in ("encode", "decode"):
                series.setdefault(f"{b} {phase}", []).append(c.get(b, {}).get(f"{phase}_rtf", np.nan))
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(cells)), 5))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(cells)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(cells)) + 0.4 - width / 2)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("real-time factor (higher is faster)")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="10 s inputs, 6 kbps, 2 threads only")
    p.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--numpy-max-seconds", type=float, default=10,
                   help="skip the (slow) numpy reference on longer inputs (default 10)")
    p.add_argument("--json", default="benchmarks/results_cpu.json")
    p.add_argument("--png", default="benchmarks/results_cpu.png")
    args = p.parse_args(argv)
    cells_spec = [("encodec_24khz", 1.5), ("encodec_24khz", 6.0), ("encodec_24khz", 24.0), ("encodec_48khz", 6.0)]
    if args.quick:
        cells_spec = [("encodec_24khz", 6.0), ("encodec_48khz", 6.0)]
        args.seconds, args.threads = [10], [2]
    info = machine()
    print("machine:", json.dumps(info))
    cells = []
    built = {}
    for name, bw in cells_spec:
        if name not in built:
            built[name] = build(name)
        _, ours, official = built[name]
        for seconds in args.seconds:
            for threads in args.threads:
                backends = ["numba"] + (["numpy"] if seconds <= args.numpy_max_seconds else []) + list(official)
                cell = time_cell(name, ours, official, bw, seconds, threads, args.repeats, backends)
                cells.append(cell)
                print_cell(cell)
                save(args.json, info, cells, None, argv)  # a partial run keeps what it measured
    import numba
    info["numba_threading_layer"] = numba.threading_layer()
    extra = startup_and_memory(sorted({n for n, _ in cells_spec}), max(args.seconds), bool(built and built[cells_spec[0][0]][2]))
    print("start-up and memory:", json.dumps(extra, indent=1))
    save(args.json, info, cells, extra, argv)
    print(f"wrote {args.json}")
    chart(cells, args.png)


def save(path, info, cells, extra, argv):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": info, "cells": cells, "startup_memory": extra,
                   "command": " ".join([os.path.basename(sys.argv[0])] + (argv or sys.argv[1:]))}, f, indent=1)


if __name__ == "__main__":
    main()
