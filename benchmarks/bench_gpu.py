"""GPU speed: our ``cuda`` backend against the official PyTorch model on CUDA, same weights.

For each model (24 and 48 kHz) and batch size, the median of ``--repeats``
runs after a warm-up, as a real-time factor (seconds of audio, all items of
the batch together, per second of compute) and as our / PyTorch speed ratio
(above 1: we are faster). Both sides are timed from host audio to host codes
(encode) and from host codes to host audio (decode), transfers included;
PyTorch runs with weight norm folded, as we do.

    python benchmarks/bench_gpu.py                            # 10 s, batch 1, 4, 16, 64, 6 kbps
    python benchmarks/bench_gpu.py --seconds 2 --batches 1 8 --repeats 3 --json gpu.json

Needs an NVIDIA GPU and numba-cuda (``pip install "encodec-np[cuda]"``); the
PyTorch columns need a CUDA build of torch and ``encodec`` 0.1.1 (see the
README's parity section). Exits with a message where no GPU is present.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # tests/oracle.py: the official model


def gpu_or_exit() -> str:
    """The GPU's name; exits with a message where numba.cuda has no real GPU."""
    from numba import cuda
    from numba.core import config

    from encodec_np.kernels import CUDA_INSTALL

    if config.ENABLE_CUDASIM:
        sys.exit("bench_gpu: NUMBA_ENABLE_CUDASIM is set; the simulator is no GPU to time. Unset it.")
    if not cuda.is_available():
        sys.exit(f"bench_gpu: no CUDA GPU available (numba.cuda.is_available() is False); {CUDA_INSTALL}")
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else name


def official_cuda(name: str, config, params):
    """The official model on the GPU with weight norm folded, or None without CUDA torch / encodec."""
    try:
        import torch
        from oracle import import_encodec
        enc = import_encodec()
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from encodec_np.io.checkpoint import to_official_state

    ctor = {"encodec_24khz": enc.EncodecModel.encodec_model_24khz,
            "encodec_48khz": enc.EncodecModel.encodec_model_48khz}[name]
    model = ctor(pretrained=False)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                           for k, v in to_official_state(params, config).items()})
    for module in model.modules():
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    return model.cuda().eval()


def run_ours(model, x):
    t0 = time.perf_counter()
    frames = model.encode(x)          # host audio -> host codes
    t1 = time.perf_counter()
    model.decode(frames)              # host codes -> host audio
    return t1 - t0, time.perf_counter() - t1


def run_torch(model, x):
    import torch

    with torch.no_grad():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        frames = model.encode(torch.from_numpy(x).cuda())
        codes = [(c.cpu(), None if s is None else s.cpu()) for c, s in frames]
        t1 = time.perf_counter()
        back = [(c.cuda(), None if s is None else s.cuda()) for c, s in codes]
        model.decode(back).cpu()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def time_cell(runners: dict, x: np.ndarray, repeats: int) -> dict:
    """Median (encode s, decode s) per runner; runners alternate so drift hits all alike."""
    for run in runners.values():  # warm-up: kernel compilation, weight upload, cuDNN autotuning
        run(x)
    samples = {name: ([], []) for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            enc, dec = run(x)
            samples[name][0].append(enc)
            samples[name][1].append(dec)
    return {name: (statistics.median(enc), statistics.median(dec)) for name, (enc, dec) in samples.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["encodec_24khz", "encodec_48khz"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 4, 16, 64])
    p.add_argument("--seconds", type=float, default=10.0, help="audio per batch item")
    p.add_argument("--bandwidth", type=float, default=6.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)

    device = gpu_or_exit()
    import numba

    import encodec_np
    from encodec_np.synthetic import random_params, test_signal

    print(f"device: {device}; numba {numba.__version__}; encodec_np backend cuda")
    try:
        import torch
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"device {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    except ImportError:
        print("torch not installed: only our backend is timed")
    rows = []
    print(f"{'model':14} {'batch':>5}  {'ours enc/dec (x real time)':>27}  {'PyTorch enc/dec':>19}  "
          f"{'ours/PyTorch enc/dec':>21}")
    for name in args.models:
        config = getattr(encodec_np, name)()
        params = random_params(config, seed=0)
        ours = encodec_np.EncodecModel(config, params, backend="cuda")
        ours.set_target_bandwidth(args.bandwidth)
        official = official_cuda(name, config, params)
        runners = {"ours": lambda x: run_ours(ours, x)}
        if official is not None:
            official.set_target_bandwidth(args.bandwidth)
            runners["torch"] = lambda x: run_torch(official, x)
        length = int(args.seconds * config.sample_rate)
        for batch in args.batches:
            x = np.stack([test_signal("noise", config.channels, length, seed=i, sample_rate=config.sample_rate)
                          for i in range(batch)]).astype(np.float32)
            cell = time_cell(runners, x, args.repeats)
            audio = batch * args.seconds
            rtf = {k: (audio / enc, audio / dec) for k, (enc, dec) in cell.items()}
            row = {"model": name, "batch": batch, "seconds": args.seconds, "kbps": args.bandwidth,
                   **{f"{k}_{part}_s": t for k, times in cell.items() for part, t in zip(("encode", "decode"), times)}}
            line = f"{name:14} {batch:5d}  {rtf['ours'][0]:12.1f} / {rtf['ours'][1]:12.1f}"
            if "torch" in rtf:
                ratio = (cell["torch"][0] / cell["ours"][0], cell["torch"][1] / cell["ours"][1])
                row["ours_over_torch_speed"] = ratio
                line += f"  {rtf['torch'][0]:8.1f} / {rtf['torch'][1]:8.1f}  {ratio[0]:9.2f} / {ratio[1]:9.2f}"
            print(line, flush=True)
            rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
