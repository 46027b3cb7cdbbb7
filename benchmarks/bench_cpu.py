"""CPU speed: our numba backend vs the official PyTorch model and its ONNX export, same weights.

One run measures every cell of a matrix (model x bandwidth x input length x
threads). Each runtime runs in its own fresh worker process per thread count
(``OMP_NUM_THREADS`` / ``NUMBA_NUM_THREADS`` set to it), and the workers are
alternated run by run, ``PAUSE_S`` apart, so that drift hits every runtime
alike and no runtime shares a process or a spinning thread pool with another.
The median of ``--repeats`` runs after a warm-up is reported as a real-time
factor (seconds of audio per second of compute) and as numba's ratio to every
other runtime. PyTorch runs twice: as shipped (weight norm recomputed on
every call) and with weight norm removed (folded), which is what we run. The
folded official model is also exported with ``torch.onnx.export`` (opset 17,
fixed-shape encode and decode graphs per bandwidth and frame length: the
whole input at 24 kHz, the 1 s segment and the last one at 48 kHz, see
:func:`export_onnx`) and run by ONNX Runtime and by OpenVINO (forced to f32).
Every runtime's codes and decoded audio are checked against PyTorch's
(fraction of equal codes, max abs difference). Peak memory, JIT cold-compile
and cached start-up times are measured in further fresh subprocesses.

    python benchmarks/bench_cpu.py            # standard: 24 kHz + 48 kHz 6 kbps 10 s at 1/2 threads, 24 kHz 60 s at 2
    python benchmarks/bench_cpu.py --quick    # 24 kHz and 48 kHz at 6 kbps, 10 s, 2 threads
    python benchmarks/bench_cpu.py --full     # the goal matrix: 24 kHz 1.5 / 6 / 24 kbps and 48 kHz 6 kbps, 10 + 60 s
    python benchmarks/bench_cpu.py --json out.json --png out.png
    python benchmarks/bench_cpu.py --quick --seconds 2 --repeats 1    # a smoke run

Wall times measured on the project's 2-vCPU VM are in the README's speed
section; the first run adds the ONNX export (cached after).

Needs ``torch`` and ``encodec`` for the PyTorch columns (see README); without
them only our backends are timed. ONNX Runtime and OpenVINO columns need
``onnxruntime`` / ``openvino`` (and torch, ``onnx``, ``onnxscript`` to export):
``pip install -e .[bench]``; a runtime that does not import is skipped with a
note. The PNG needs matplotlib. Exported graphs are cached under the system
temp directory (``encodec-np-bench-onnx``), keyed by the weights' digest.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set machine-wide on some of the
project's VMs) are removed for this script's own process and its probes: run
as a script it re-executes itself without them before NumPy loads OpenBLAS.
"""
from __future__ import annotations

import os
import sys

# Variables that pin OpenBLAS to a kernel or cache size other than the one it detects.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def clean_env(env=None) -> dict:
    """``env`` (default ``os.environ``) without :data:`OPENBLAS_OVERRIDES`: for this script's own runs only."""
    return {k: v for k, v in (os.environ if env is None else env).items() if k not in OPENBLAS_OVERRIDES}


if __name__ == "__main__" and any(k in os.environ for k in OPENBLAS_OVERRIDES):
    # OpenBLAS reads them once, when NumPy loads it: restart before that, without them.
    _removed = " ".join(f"{k}={os.environ[k]}" for k in OPENBLAS_OVERRIDES if k in os.environ)
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
              {**clean_env(), "BENCH_CPU_UNSET": _removed})

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # tests/oracle.py: the official model

OURS = ("numba", "numpy")
TORCH = ("torch", "torch_folded")
GRAPH_RUNTIMES = ("onnxruntime", "openvino")  # run the exported ONNX graphs
RUNTIMES = OURS + TORCH + GRAPH_RUNTIMES
OTHERS = TORCH + GRAPH_RUNTIMES  # what numba is compared with
ONNX_OPSET = 17
EXPORT_LAYOUT = "per-frame-1"  # in the graph cache key: bump when export_onnx's graphs change
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(line.split(":", 1)[1].split() for line in f if line.startswith("flags")))
    except (OSError, StopIteration):
        return set()


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
    flags = cpu_flags()
    info = {"cpu": cpu, "cores": os.cpu_count(), "isa": {f: f in flags for f in ISA_FLAGS},
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "numba_threading_layer": None, "blas": blas,
            "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_OVERRIDES},
            "openblas_env_unset_by_script": os.environ.get("BENCH_CPU_UNSET")}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    info.update(graph_runtime_versions())
    return info


def graph_runtime_versions() -> dict:
    """``{runtime: version or None}`` for ONNX Runtime and OpenVINO (None: not importable)."""
    out = {}
    for name in GRAPH_RUNTIMES:
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def build(name: str, runtime: str, seed: int = 0):
    """One runtime's model (ours on a backend, or the official one as shipped / folded), seeded weights.

    Every worker process builds its own from the same seed, so all runtimes
    run the same weights.
    """
    import encodec_np
    from encodec_np.io.checkpoint import to_official_state
    from encodec_np.synthetic import random_params

    config = getattr(encodec_np, name)()
    params = random_params(config, seed)
    if runtime in OURS:
        return encodec_np.EncodecModel(config, params, backend=runtime)
    import torch
    from oracle import import_encodec

    enc = import_encodec()
    ctor = {"encodec_24khz": enc.EncodecModel.encodec_model_24khz,
            "encodec_48khz": enc.EncodecModel.encodec_model_48khz}[name]
    model = ctor(pretrained=False)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                           for k, v in to_official_state(params, config).items()})
    if runtime == "torch_folded":
        for module in model.modules():
            if hasattr(module, "weight_g"):
                torch.nn.utils.remove_weight_norm(module)
    return model.eval()


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
        from oracle import import_encodec
        import_encodec()
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- ONNX export
def onnx_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "encodec-np-bench-onnx")


def state_digest(model) -> str:
    """Digest of a torch model's weights (and of what the export depends on): the graph cache key."""
    import torch
    h = hashlib.sha1(f"{torch.__version__} opset{ONNX_OPSET} {EXPORT_LAYOUT} {type(model).__name__}".encode())
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def segments(model, length: int) -> list:
    """``[(offset, samples)]`` of each frame the official ``model.encode`` cuts from ``length`` samples."""
    seg, stride = model.segment_length, model.segment_stride
    if seg is None:
        return [(0, length)]
    return [(offset, min(seg, length - offset)) for offset in range(0, length, stride)]


def export_onnx(name: str, model, bw: float, length: int, digest: str) -> dict:
    """Export ``model`` (the official model, weight norm folded) at ``bw`` for inputs of ``length`` samples.

    Per frame the official ``model.encode`` cuts (24 kHz: the whole input;
    48 kHz: 1 s segments with 1 % overlap, the last one shorter), two
    fixed-shape graphs: ``encode`` = ``model._encode_frame`` (waveform
    [1, C, n] -> codes [1, K, F] int64, plus the segment's RMS scale [1, 1] when
    the model normalizes; the RVQ is ``quantizer.encode`` at ``bw``, so K is a
    constant of the graph) and ``decode`` = ``model._decode_frame`` (codes
    [, scale] -> waveform). :class:`SegmentedGraphs` loops over the segments
    and overlap-adds in Python, as the official ``encode`` / ``decode`` do. A
    48 kHz plan is thus two graph pairs (the full 1 s segment, shared by every
    length, and the last one).

    Why not the whole 48 kHz ``model.encode`` / ``decode`` as one graph: it
    does export (the segment loop and the overlap-add unrolled, 11 segments at
    10 s, 61 at 60 s, ~0.7 s of export per segment), and ONNX Runtime gets it
    right, but OpenVINO 2026.4 (f32) returns wrong samples in every overlap
    region (max abs diff 0.24 at 1 s, 0.17 at 2 s, with all codes equal; each
    frame's decoder output, a graph output of the same model, is right, and
    the overlap-add alone on graph inputs is right: only the two fused fail).
    ONNX Runtime also ran that unrolled graph 3-4x slower than per segment (2 s, 2 threads).

    The TorchScript exporter (``dynamo=False``) is used: the dynamo exporter
    (torch 2.13's default) emits opset 18 and its down-conversion to 17 fails
    ("No Adapter To Version $17 for Pad"). Graphs are cached by weights digest,
    model, bandwidth and segment length; ``export_s`` is 0 when all were cached.
    """
    import torch

    folder = os.path.join(onnx_cache_dir(), f"{name}-{digest}")
    os.makedirs(folder, exist_ok=True)
    model.set_target_bandwidth(bw)
    scaled = bool(model.normalize)
    plan = segments(model, length)
    codes_out = ["codes", "scale"] if scaled else ["codes"]

    class EncodeGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, wav):
            codes, scale = self.model._encode_frame(wav)
            return (codes, scale) if scaled else codes

    class DecodeGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, codes, scale=None):
            return self.model._decode_frame((codes, scale))

    graphs, spent = [], 0.0
    for n in sorted({n for _, n in plan}, reverse=True):
        stem = os.path.join(folder, f"{bw:g}kbps-{n}")
        entry = {"length": n, "encode": stem + "-encode.onnx", "decode": stem + "-decode.onnx"}
        graphs.append(entry)
        if os.path.exists(entry["encode"]) and os.path.exists(entry["decode"]):
            continue
        t0 = time.perf_counter()
        x = torch.zeros(1, model.channels, n)
        x[..., ::7] = 0.1  # any input: the traced graph does not depend on the values
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings on the asserts: shapes are fixed here
            codes, scale = model._encode_frame(x)
            for graph, args, inputs, outputs, path in (
                    (EncodeGraph(), (x,), ["waveform"], codes_out, entry["encode"]),
                    (DecodeGraph(), (codes, scale) if scaled else (codes,), codes_out, ["waveform"], entry["decode"])):
                tmp = path + f".tmp{os.getpid()}"
                torch.onnx.export(graph.eval(), args, tmp, opset_version=ONNX_OPSET, dynamo=False,
                                  input_names=inputs, output_names=outputs, do_constant_folding=True)
                os.replace(tmp, path)
        spent += time.perf_counter() - t0
    codebooks = model.quantizer.get_num_quantizers_for_bandwidth(model.frame_rate, bw)
    return {"model": name, "kbps": bw, "length": length, "channels": model.channels, "scaled": scaled,
            "segments": plan, "stride": model.segment_stride, "graphs": graphs, "codebooks": int(codebooks),
            "opset": ONNX_OPSET, "export_s": spent}


def linear_overlap_add(frames: list, stride: int) -> np.ndarray:
    """``encodec.utils._linear_overlap_add`` in NumPy: triangle-weighted sum of ``frames``, ``stride`` apart."""
    frame_length = frames[0].shape[-1]
    t = np.linspace(0, 1, frame_length + 2, dtype=np.float32)[1:-1]
    weight = 0.5 - np.abs(t - 0.5)
    total = stride * (len(frames) - 1) + frames[-1].shape[-1]
    out = np.zeros(frames[0].shape[:-1] + (total,), dtype=frames[0].dtype)
    sum_weight = np.zeros(total, dtype=frames[0].dtype)
    for i, frame in enumerate(frames):
        n = frame.shape[-1]
        out[..., i * stride:i * stride + n] += weight[:n] * frame
        sum_weight[i * stride:i * stride + n] += weight[:n]
    return out / sum_weight


class SegmentedGraphs:
    """An exported plan (:func:`export_onnx`) run the way the official ``model.encode`` / ``decode`` run.

    ``encode(x [1, C, T])`` -> ``[(codes, scale or None)]``, one per segment;
    ``decode(frames)`` -> waveform (overlap-added when the model has segments).
    Subclasses load one graph pair per segment length and run one frame.
    """

    name = "?"

    def __init__(self, plan: dict, threads: int):
        self.plan, self.threads = plan, threads
        self.pairs = {g["length"]: self.load(g, threads) for g in plan["graphs"]}

    def encode(self, x):
        return [self.run_encode(self.pairs[n], np.ascontiguousarray(x[..., offset:offset + n]))
                for offset, n in self.plan["segments"]]

    def decode(self, frames):
        audio = [self.run_decode(self.pairs[n], np.ascontiguousarray(codes),
                                 None if scale is None else np.ascontiguousarray(scale))
                 for (_, n), (codes, scale) in zip(self.plan["segments"], frames)]
        return audio[0] if self.plan["stride"] is None else linear_overlap_add(audio, self.plan["stride"])


class OrtGraphs(SegmentedGraphs):
    """ONNX Runtime CPU sessions: ``threads`` intra-op threads, one inter-op thread, sequential execution."""

    name = "onnxruntime"

    def load(self, graphs, threads):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.settings = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
        return [ort.InferenceSession(graphs[k], opts, providers=["CPUExecutionProvider"]) for k in ("encode", "decode")]

    def run_encode(self, pair, x):
        out = pair[0].run(None, {"waveform": x})
        return out[0], (out[1] if self.plan["scaled"] else None)

    def run_decode(self, pair, codes, scale):
        feed = {"codes": codes} if scale is None else {"codes": codes, "scale": scale}
        return pair[1].run(None, feed)[0]


class OpenVinoGraphs(SegmentedGraphs):
    """OpenVINO compiled for the CPU: f32 (not the bf16 it picks on CPUs with bf16 units), ``threads`` threads."""

    name = "openvino"

    def load(self, graphs, threads):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        compiled = [core.compile_model(core.read_model(graphs[k]), "CPU", config) for k in ("encode", "decode")]
        self.settings = {k: compiled[0].get_property(k) for k in config}
        self.settings = {k: v.get_type_name() if isinstance(v, ov.Type) else str(v) for k, v in self.settings.items()}
        if self.settings["INFERENCE_PRECISION_HINT"] != "f32":
            raise RuntimeError(f"OpenVINO did not take f32: {self.settings}")
        return [c.create_infer_request() for c in compiled]

    def run_encode(self, pair, x):
        out = pair[0].infer({0: x}, share_inputs=True).to_tuple()
        return out[0], (out[1] if self.plan["scaled"] else None)

    def run_decode(self, pair, codes, scale):
        return pair[1].infer({0: codes} if scale is None else {0: codes, 1: scale}).to_tuple()[0]


GRAPH_CLASSES = {"onnxruntime": OrtGraphs, "openvino": OpenVinoGraphs}


# --------------------------------------------------------------------------- timing
#: Seconds between two runtimes' timed runs (longer than OpenMP's 200 ms and ONNX Runtime's spin-waits:
#: an idle worker's spinning pool would take the next runtime's cores).
PAUSE_S = 0.5


def _timed(encode, decode, x):
    """(encode seconds, decode seconds, frames, audio) of one round trip."""
    t0 = time.perf_counter()
    frames = encode(x)
    t1 = time.perf_counter()
    audio = decode(frames)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, frames, audio


class Runner:
    """One runtime in one worker process: its models, the current cell's input, one timed round trip.

    ``run()`` returns ``(encode_s, decode_s, {"codes": [...], "scales": [...], "audio": array})``.
    """

    def __init__(self, runtime: str, threads: int):
        self.runtime, self.threads = runtime, threads
        self.models, self.graphs, self.settings = {}, None, {}
        if runtime in TORCH:
            import torch
            torch.set_num_threads(threads)

    def prepare(self, name: str, bw: float, seconds: float, plan) -> dict:
        """Load what the cell needs and warm up; returns the load time and settings of graph runtimes.

        Warm-up: ours and PyTorch encode and decode the first second (JIT,
        thread pools, oneDNN); their first full-length call is then no slower
        than the next ones (measured at 60 s, numba and torch folded, 24 kHz).
        ONNX Runtime and OpenVINO get a new session / compiled model per cell
        whose first run at the graph's shape is up to ~2x slower (measured at
        60 s, 24 kHz, 2 threads: decode 4.3 s, then 1.6-2.7 s in ONNX Runtime),
        so they run the whole input once.
        """
        import encodec_np
        from encodec_np.synthetic import test_signal
        config = getattr(encodec_np, name)()
        sr = config.sample_rate
        self.x = test_signal("noise", config.channels, int(seconds * sr), seed=1, sample_rate=sr)[None]
        self.bw, out = bw, {}
        self.graphs = None
        if self.runtime in GRAPH_RUNTIMES:
            t0 = time.perf_counter()
            self.graphs = GRAPH_CLASSES[self.runtime](plan, self.threads)
            out = {"load_s": time.perf_counter() - t0, **self.graphs.settings}
            self.run()
            return out
        if name not in self.models:
            self.models[name] = build(name, self.runtime)
        self.model = self.models[name]
        if self.runtime in OURS:
            self.model.threads = self.threads
        self.model.set_target_bandwidth(bw)
        self.run(self.x[..., :sr])
        return out

    def run(self, x=None):
        x = self.x if x is None else x
        if self.graphs is not None:
            t_enc, t_dec, frames, audio = _timed(self.graphs.encode, self.graphs.decode, x)
        elif self.runtime in OURS:
            t_enc, t_dec, frames, audio = _timed(self.model.encode, self.model.decode, x)
        else:
            import torch
            with torch.no_grad():
                t_enc, t_dec, frames, audio = _timed(self.model.encode, self.model.decode, torch.from_numpy(x))
            frames = [(c.numpy(), None if s is None else s.numpy()) for c, s in frames]
            audio = audio.numpy()
        result = {"codes": [c for c, _ in frames], "scales": [s for _, s in frames if s is not None], "audio": audio}
        return t_enc, t_dec, result

    def decode(self, frames):
        """The graphs' decoder alone on given frames (PyTorch's, when the codes differ)."""
        return self.graphs.decode(frames)


def save_result(path: str, result: dict) -> None:
    arrays = {f"codes{i}": c for i, c in enumerate(result["codes"])}
    arrays.update({f"scale{i}": sc for i, sc in enumerate(result["scales"])})
    np.savez(path, audio=np.asarray(result["audio"]), **arrays)


def load_result(path: str) -> dict:
    with np.load(path) as f:
        n = sum(k.startswith("codes") for k in f.files)
        return {"codes": [f[f"codes{i}"] for i in range(n)],
                "scales": [f[f"scale{i}"] for i in range(n) if f"scale{i}" in f.files], "audio": f["audio"]}


def worker_main(runtime: str, threads: int) -> None:
    """A fresh process for one runtime at one thread count: JSON commands on stdin, one JSON reply each on stdout."""
    reply, sys.stdout = sys.stdout, sys.stderr  # libraries' prints must not mix with the replies
    runner = Runner(runtime, threads)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "prepare":
            out = runner.prepare(cmd["model"], cmd["kbps"], cmd["seconds"], cmd.get("plan"))
        elif cmd["op"] == "run":
            enc, dec, result = runner.run()
            if cmd.get("save"):
                save_result(cmd["save"], result)
            out = {"encode_s": enc, "decode_s": dec}
        elif cmd["op"] == "decode":
            ref = load_result(cmd["frames"])
            frames = list(zip(ref["codes"], ref["scales"] or [None] * len(ref["codes"])))
            save_result(cmd["save"], {"codes": [], "scales": [], "audio": runner.decode(frames)})
            out = {}
        elif cmd["op"] == "info":
            import numba
            out = {"numba_threading_layer": numba.threading_layer()}
        else:
            break
        reply.write(json.dumps(out) + "\n")
        reply.flush()


class Worker:
    """The parent's handle on a :func:`worker_main` process (fresh, without the OpenBLAS overrides).

    Each runtime lives in its own process, started once per thread count, so
    that no runtime shares a process (its thread pools, allocator, loaded
    libraries) with another; ``OMP_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` are
    set to the thread count, as a user would run one runtime at that count.
    """

    def __init__(self, runtime: str, threads: int):
        self.runtime = runtime
        env = clean_env({**os.environ, "OMP_NUM_THREADS": str(threads), "NUMBA_NUM_THREADS": str(threads),
                         "MKL_NUM_THREADS": str(threads)})
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", runtime, str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.runtime} worker died (exit {self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait()


def compare(ref: dict, got: dict, decode_ref=None) -> dict:
    """Codes equal to ``ref``'s (fraction over every frame, codebook and step) and the decoded audio's max abs diff."""
    same = [a.shape == b.shape for a, b in zip(ref["codes"], got["codes"])]
    if len(ref["codes"]) != len(got["codes"]) or not all(same):
        return {"codes_equal": 0.0, "error": "code shapes differ"}
    equal = np.concatenate([(a == b).ravel() for a, b in zip(ref["codes"], got["codes"])])
    out = {"codes_equal": float(equal.mean()), "codes": int(equal.size)}
    if ref["scales"]:
        out["scale_max_rel_diff"] = float(max(np.abs(a / b - 1).max() for a, b in zip(ref["scales"], got["scales"])))
    a, b = np.asarray(ref["audio"]), np.asarray(got["audio"])
    out["audio_max_abs_diff"] = float(np.abs(a - b).max()) if a.shape == b.shape else None
    if decode_ref is not None:  # the decoder alone, on the reference's codes and scales
        d = np.asarray(decode_ref)
        out["decode_max_abs_diff"] = float(np.abs(a - d).max()) if a.shape == d.shape else None
    return out


def time_cell(workers: dict, name, plan, bw, seconds, threads, repeats, backends):
    """Median encode/decode times of each backend on one cell: its worker processes alternated in each round.

    ``plan``: the export plan (:func:`export_onnx`) for this bandwidth and
    length (or None). Each worker prepares and warms up (:meth:`Runner.prepare`);
    then ``repeats`` rounds, each running every backend once in turn, so drift
    hits every backend alike. The first timed run of each backend is checked
    against PyTorch as shipped: codes and decoded audio.
    """
    loaded = {b: workers[b].ask(op="prepare", model=name, kbps=bw, seconds=seconds, plan=plan) for b in backends}
    samples = {b: ([], []) for b in backends}
    tmp = tempfile.mkdtemp(prefix="bench-cpu-")
    for r in range(repeats):
        for b in backends:
            time.sleep(PAUSE_S)
            got = workers[b].ask(op="run", save=os.path.join(tmp, f"{b}.npz") if r == 0 else None)
            samples[b][0].append(got["encode_s"])
            samples[b][1].append(got["decode_s"])
    cell = {"model": name, "kbps": bw, "seconds": seconds, "threads": threads, "repeats": repeats,
            "processes": "one fresh process per runtime and thread count, alternated run by run",
            "warm_up": "1 s (ours, torch); the whole input once (onnxruntime, openvino: new session)"}
    for b, (enc, dec) in samples.items():
        cell[b] = {"encode_s": statistics.median(enc), "decode_s": statistics.median(dec),
                   "encode_rtf": seconds / statistics.median(enc), "decode_rtf": seconds / statistics.median(dec),
                   **loaded[b]}
    if "torch" in backends:
        ref = load_result(os.path.join(tmp, "torch.npz"))
        checks = {}
        for b in (r for r in RUNTIMES if r in backends and r != "torch"):
            got = load_result(os.path.join(tmp, f"{b}.npz"))
            decode_ref = None
            if b in GRAPH_RUNTIMES and compare(ref, got)["codes_equal"] != 1.0:
                # codes differ: also the runtime's decoder alone, on PyTorch's codes and scales
                out = os.path.join(tmp, f"{b}-decode.npz")
                workers[b].ask(op="decode", frames=os.path.join(tmp, "torch.npz"), save=out)
                decode_ref = load_result(out)["audio"]
            checks[b] = compare(ref, got, decode_ref)
        cell["checks_vs_torch"] = checks
    cell["numba_vs"] = ratios(cell)
    return cell


def ratios(cell) -> dict:
    """numba's speed over each other runtime (their time / ours; above 1 = numba faster) and over the fastest."""
    if "numba" not in cell:
        return {}
    ours = cell["numba"]
    others = [b for b in OTHERS if b in cell]
    out = {b: {p: cell[b][f"{p}_s"] / ours[f"{p}_s"] for p in ("encode", "decode")} for b in others}
    if others:
        out["fastest_other"] = {}
        for p in ("encode", "decode"):
            best = min(others, key=lambda b: cell[b][f"{p}_s"])
            out["fastest_other"][p] = {"runtime": best, "ratio": cell[best][f"{p}_s"] / ours[f"{p}_s"]}
    return out


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

# ONNX Runtime / OpenVINO in a fresh process (no torch, no encodec_np): load the graphs, then one encode + decode.
_GRAPH_PROBE = _HWM + r"""
import json, sys
sys.path.insert(0, sys.argv[2])
import numpy as np
from bench_cpu import GRAPH_CLASSES
runtime, plan, threads = sys.argv[1], json.loads(sys.argv[3]), int(sys.argv[4])
graphs = GRAPH_CLASSES[runtime](plan, threads)
rss = rss_mb("VmRSS")
x = (0.1 * np.random.default_rng(1).standard_normal((1, plan["channels"], plan["length"]))).astype(np.float32)
graphs.decode(graphs.encode(x))
print(json.dumps({"rss_before_mb": rss, "peak_rss_mb": rss_mb("VmHWM")}))
"""


def probe(code, *args, env=None):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                         env=clean_env({**os.environ, **(env or {})}), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def startup_and_memory(names, seconds, have_torch, graph_plans=None, threads=None, jit=True, runtimes=RUNTIMES):
    """Fresh-process probes. ``graph_plans``: {(model, runtime): export plan at 6 kbps, ``seconds`` long}."""
    results = {}
    cache = tempfile.mkdtemp(prefix="bench-numba-cache-")
    if jit:
        cold = probe(_PROBE, "encodec_24khz", "numba", 0, env={"NUMBA_CACHE_DIR": cache})
        warm = probe(_PROBE, "encodec_24khz", "numba", 0, env={"NUMBA_CACHE_DIR": cache})
        results["jit"] = {"cold": cold, "cached": warm,
                          "what": "import encodec_np, then the first 0.1 s encode+decode (24 kHz, numba); "
                                  "model construction from seeded weights is not counted"}
    for name in names:
        for backend in (b for b in OURS if b in runtimes):
            # the package's own kernel cache, warm from the timed runs: compiling is a start-up cost
            # (the JIT probe above), not the memory a user's process needs
            r = probe(_PROBE, name, backend, seconds)
            results[f"{name}/{backend}"] = {"peak_rss_mb": r["peak_rss_mb"],
                                            "added_mb": r["peak_rss_mb"] - r["rss_before_mb"]}
        if have_torch:
            r = probe(_TORCH_PROBE, name, "torch", seconds, os.path.join(HERE, "..", "tests"))
            results[f"{name}/torch"] = {"peak_rss_mb": r["peak_rss_mb"], "added_mb": r["peak_rss_mb"] - r["rss_before_mb"]}
        for runtime in GRAPH_RUNTIMES:
            plan = (graph_plans or {}).get((name, runtime))
            if plan is None:
                continue
            r = probe(_GRAPH_PROBE, runtime, HERE, json.dumps(plan), threads or os.cpu_count())
            results[f"{name}/{runtime}"] = {"peak_rss_mb": r["peak_rss_mb"],
                                            "added_mb": r["peak_rss_mb"] - r["rss_before_mb"]}
    results["input_seconds"] = seconds
    results["what"] = ("peak RSS of a fresh process encoding and decoding one input at 6 kbps; added_mb: above "
                       "the loaded model (ours, torch: after a 0.1 s call; ONNX Runtime / OpenVINO: after "
                       "loading and compiling the fixed-length graphs, before their first run)")
    return results


# --------------------------------------------------------------------------- report
def print_cell(cell):
    head = f"{cell['model']:14s} {cell['kbps']:>5g} kbps {cell['seconds']:>4g} s {cell['threads']} thr"
    base = cell.get("torch")
    folded = cell.get("torch_folded")
    for b in RUNTIMES:
        if b not in cell:
            continue
        r = cell[b]
        line = f"{head} | {b:12s} encode {r['encode_rtf']:6.1f}x  decode {r['decode_rtf']:6.1f}x"
        if base and b == "numpy":
            line += (f" | vs torch {base['encode_s'] / r['encode_s']:.2f}x / {base['decode_s'] / r['decode_s']:.2f}x")
            if folded:
                line += f" | vs folded {folded['encode_s'] / r['encode_s']:.2f}x / {folded['decode_s'] / r['decode_s']:.2f}x"
        print(line, flush=True)
    vs = cell.get("numba_vs") or {}
    if vs:
        parts = [f"{b} {vs[b]['encode']:.2f}x / {vs[b]['decode']:.2f}x" for b in OTHERS if b in vs]
        fast = vs["fastest_other"]
        parts.append(f"fastest other {fast['encode']['ratio']:.2f}x ({fast['encode']['runtime']}) / "
                     f"{fast['decode']['ratio']:.2f}x ({fast['decode']['runtime']})")
        print(f"{head} | numba speed-up (enc / dec; >1 = numba faster) vs " + " | ".join(parts), flush=True)
    for b, c in (cell.get("checks_vs_torch") or {}).items():
        if "error" in c:
            print(f"{head} | check {b:12s} vs torch: {c['error']}", flush=True)
            continue
        line = (f"{head} | check {b:12s} vs torch: codes equal {100 * c['codes_equal']:7.3f} % of {c['codes']}, "
                f"audio max abs diff {c['audio_max_abs_diff']:.2e}")
        if "scale_max_rel_diff" in c:
            line += f", scales max rel diff {c['scale_max_rel_diff']:.1e}"
        if c.get("decode_max_abs_diff") is not None:
            line += f", decoder alone (torch's codes) {c['decode_max_abs_diff']:.2e}"
        print(line, flush=True)
    if "wall_s" in cell:
        print(f"{head} | {cell['repeats']} timed run(s); cell wall time {cell['wall_s']:.0f} s", flush=True)


def chart(cells, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no PNG: pip install matplotlib to draw the chart)")
        return
    labels, series = [], {}
    present = [b for b in RUNTIMES if any(b in c for c in cells)]
    for c in cells:
        labels.append(f"{c['model'][8:]}\n{c['kbps']:g}k {c['seconds']:g}s\n{c['threads']}t")
        for b in present:
            for phase in ("encode", "decode"):
                series.setdefault(f"{b} {phase}", []).append(c.get(b, {}).get(f"{phase}_rtf", np.nan))
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(cells)), 5))
    width = 0.8 / len(series)
    colors = {b: plt.get_cmap("tab10")(i) for i, b in enumerate(RUNTIMES)}
    for i, (name, values) in enumerate(series.items()):
        runtime, phase = name.split()
        ax.bar(np.arange(len(cells)) + i * width, values, width, label=name, color=colors[runtime],
               alpha=1.0 if phase == "encode" else 0.55, hatch=None if phase == "encode" else "//")
    ax.set_xticks(np.arange(len(cells)) + 0.4 - width / 2)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("real-time factor (higher is faster)")
    ax.legend(fontsize=7, ncol=len(present), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


#: The goal matrix of the speed issue: every configuration at 10 and 60 s (--full).
FULL = [(m, bw, s) for m, bw in (("encodec_24khz", 1.5), ("encodec_24khz", 6.0), ("encodec_24khz", 24.0),
                                  ("encodec_48khz", 6.0)) for s in (10, 60)]
#: The standard matrix (the default): 24 kHz and 48 kHz at 6 kbps, 10 s, and 24 kHz at 60 s, this last
#: at the highest thread count only (at 1 thread it alone took 380 s of a 17-minute run).
STANDARD = [("encodec_24khz", 6.0, 10), ("encodec_24khz", 6.0, 60), ("encodec_48khz", 6.0, 10)]
#: Inputs longer than this run only at the highest thread count in the standard matrix.
STANDARD_LONG_S = 10
QUICK = [("encodec_24khz", 6.0, 10), ("encodec_48khz", 6.0, 10)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="24 kHz and 48 kHz at 6 kbps, 10 s, 2 threads, no start-up probes")
    p.add_argument("--full", action="store_true",
                   help="the goal matrix: 24 kHz at 1.5 / 6 / 24 kbps and 48 kHz at 6 kbps, 10 and 60 s")
    p.add_argument("--seconds", type=float, nargs="+", default=None, help="only these input lengths")
    p.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default 1 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per cell, after a warm-up (default 5)")
    p.add_argument("--numpy", action="store_true", help="also time the (slow) numpy reference, on 10 s inputs")
    p.add_argument("--skip-jit", action="store_true", help="skip the JIT cold/cached start-up probes")
    # narrowing a run (debugging, smoke runs): the report covers only what ran
    p.add_argument("--skip-probes", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--models", nargs="+", default=None, help=argparse.SUPPRESS)
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=RUNTIMES, help=argparse.SUPPRESS)
    p.add_argument("--json", default="benchmarks/results_cpu.json")
    p.add_argument("--png", default="benchmarks/results_cpu.png")
    args = p.parse_args(argv)
    started = time.perf_counter()
    spec = FULL if args.full else QUICK if args.quick else STANDARD
    standard = spec is STANDARD and not args.seconds  # its long cell runs at the highest thread count only
    if args.quick:
        args.threads = args.threads or [2]
        args.skip_jit = True
    args.threads = args.threads or [1, 2]
    if args.seconds:
        spec = sorted({(m, bw, s) for m, bw, _ in spec for s in args.seconds})
    if args.models:
        spec = [c for c in spec if c[0] in args.models]
    info = machine()
    print("machine:", json.dumps(info))
    print(f"cpu: {info['cpu']}, {info['cores']} cores, ISA: "
          + ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in info["isa"].items()) + f"; BLAS: {info['blas']}")
    if info["openblas_env_unset_by_script"]:
        print(f"unset for this run (and its workers and probes): {info['openblas_env_unset_by_script']}")
    elif any(info["openblas_env"].values()):
        print(f"WARNING: {info['openblas_env']} still set in this process (main() called, not run as a script)")
    print(f"threads per cell: {args.threads}: each runtime in its own fresh process per thread count, with "
          "OMP_NUM_THREADS / NUMBA_NUM_THREADS / MKL_NUM_THREADS set to it (numba/numpy: model.threads; torch: "
          "torch.set_num_threads; ONNX Runtime: intra_op_num_threads, inter_op_num_threads 1; OpenVINO: "
          "INFERENCE_NUM_THREADS, INFERENCE_PRECISION_HINT f32, 1 stream)")
    print(f"timed runs per cell: median of {args.repeats}, the runtimes' processes alternated run by run with "
          f"{PAUSE_S:g} s between runs; warm-up: 1 s for ours and torch, the whole input once for ONNX Runtime / "
          "OpenVINO (new session per cell)", flush=True)
    graph_ok = [r for r in GRAPH_RUNTIMES if info[r] and r in args.runtimes]
    for r in GRAPH_RUNTIMES:
        if not info[r]:
            print(f"note: {r} does not import: its columns are skipped (pip install -e .[bench])")
    torch_ok = have_torch()
    if not torch_ok:
        print("note: torch/encodec do not import: no PyTorch columns, no graphs to export for ONNX Runtime / OpenVINO")
        graph_ok = []
    plans, folded, digests = {}, {}, {}
    for name, bw, seconds in spec:  # export first (in this process, which has torch): workers only load
        if not graph_ok:
            break
        if name not in folded:
            folded[name] = build(name, "torch_folded")
            digests[name] = state_digest(folded[name])
        plan = export_onnx(name, folded[name], bw, int(seconds * folded[name].sample_rate), digests[name])
        plans[(name, bw, seconds)] = {k: v for k, v in plan.items() if k != "export_s"}
        lengths = ", ".join(str(g["length"]) for g in plan["graphs"])
        print(f"{name} {bw:g} kbps {seconds:g} s: ONNX opset {ONNX_OPSET}, {len(plan['segments'])} segment(s), "
              f"encode/decode graphs for {lengths} samples, {plan['codebooks']} codebooks, "
              + (f"exported in {plan['export_s']:.1f} s" if plan["export_s"] else "cached")
              + f": {os.path.dirname(plan['graphs'][0]['encode'])}", flush=True)
    wanted = [b for b in ["numba"] + (["numpy"] if args.numpy else []) + (list(TORCH) if torch_ok else []) + graph_ok
              if b in args.runtimes]
    cells = []
    for threads in args.threads:
        t0 = time.perf_counter()
        workers = {b: Worker(b, threads) for b in wanted}
        try:
            for name, bw, seconds in spec:
                if standard and seconds > STANDARD_LONG_S and threads != max(args.threads):
                    continue
                backends = [b for b in wanted if (b != "numpy" or seconds <= 10)
                            and (b not in GRAPH_RUNTIMES or (name, bw, seconds) in plans)]
                t_cell = time.perf_counter()
                cell = time_cell(workers, name, plans.get((name, bw, seconds)), bw, seconds, threads,
                                 args.repeats, backends)
                cell["wall_s"] = time.perf_counter() - t_cell
                cells.append(cell)
                print_cell(cell)
                save(args.json, info, cells, None, argv)  # a partial run keeps what it measured
            if "numba" in workers:
                info.update(workers["numba"].ask(op="info"))
        finally:
            for w in workers.values():
                w.close()
        print(f"{threads} thread(s): {time.perf_counter() - t0:.0f} s with worker start-up", flush=True)
    extra = None
    if not args.skip_probes:
        t_probes = time.perf_counter()
        names = sorted({n for n, _, _ in spec})
        longest = max(s for _, _, s in spec)
        graph_plans = {}  # (model, runtime) -> the 6 kbps plan at the longest input, for the memory probe
        for name in names:
            if name in folded:
                plan = export_onnx(name, folded[name], 6.0, int(longest * folded[name].sample_rate), digests[name])
                graph_plans.update({(name, r): {k: v for k, v in plan.items() if k != "export_s"} for r in graph_ok})
        extra = startup_and_memory(names, longest, torch_ok and "torch" in args.runtimes, graph_plans,
                                   max(args.threads), jit=not args.skip_jit, runtimes=args.runtimes)
        print(f"start-up and memory probes: {time.perf_counter() - t_probes:.0f} s")
        print("start-up and memory:", json.dumps(extra, indent=1))
        print(f"peak RSS (fresh process, 6 kbps, {extra['input_seconds']:g} s; + above the loaded model): "
              + "; ".join(f"{k} {v['peak_rss_mb']:.0f} MB (+{v['added_mb']:.0f})" for k, v in extra.items()
                          if isinstance(v, dict) and "peak_rss_mb" in v))
    cells.sort(key=lambda c: (c["model"], c["kbps"], c["seconds"], c["threads"]))
    save(args.json, info, cells, extra, argv)
    print(f"wrote {args.json}")
    chart(cells, args.png)
    print(f"wall time {(time.perf_counter() - started) / 60:.1f} min")


def save(path, info, cells, extra, argv):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": info, "cells": cells, "startup_memory": extra,
                   "command": " ".join([os.path.basename(sys.argv[0])] + (argv or sys.argv[1:]))}, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
