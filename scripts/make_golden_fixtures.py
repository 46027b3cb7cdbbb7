"""Make the golden parity fixtures ``tests/fixtures/golden_<model>.npz`` (needs torch + encodec 0.1.1).

For each of Meta's two models, the seeded weights of
:func:`encodec_np.synthetic.random_params` are loaded into the official PyTorch
``encodec.EncodecModel`` (built with ``pretrained=False``), which then encodes
and decodes seeded test signals of awkward lengths at every bandwidth. The
weights are not stored: ``tests/test_golden_fixtures.py`` regenerates them
from the seed, so the fixtures stay small and the test needs no torch.

Weight loading. Our canonical names are the official ones with weight norm
folded. For weight-norm models each ``...weight`` becomes ``weight_v = w`` and
``weight_g = ||w||`` (norm over every dim but 0); the state dict is loaded
with ``strict=True`` (so every official name is checked), and
:func:`encodec_np.io.checkpoint.canonicalize` of that state dict must give back
our weights (max difference printed and stored). Because ``g * v / ||v||``
may differ from ``w`` in the last bit, weight norm is then removed from the
official modules and ``weight`` is set to ``w`` exactly: the official
forward pass then runs on bit-identical weights. Codebooks go to
``quantizer.vq.layers.{i}._codebook.embed`` with ``inited = 1``.

Inputs. Batch of 2 (item 0: ``noise``, item 1: ``chirp``, each
``test_signal(kind, channels, L, seed=SIGNAL_SEED)``), rounded to the 16-bit
PCM grid (``round(x * 32767) / 32768``), stored as int16 ``pcm/L{L}``; the
model input is ``pcm / 32768`` in float32 (exact).

Stored per model (``golden_<name>.npz``, compressed):
    pcm/L{L}                  int16 [2, C, L]
    codes/L{L}/bw{BW}/s{i}    int16 [2, K, F]  official codes of segment i at BW kbps
    scale/L{L}/s{i}           float32 [2, 1]  (normalizing models)
    decoded/L{L}/bw{BW}       float32 [2, C, T']  official decode (only DECODED_BANDWIDTHS)
    meta/...                  model_name, weight_seed, signal_seed, signal_kinds, lengths,
                              bandwidths, decoded_bandwidths, torch_version, encodec_version,
                              numpy_version, fold_max_abs_diff, encodec_np_version

Usage: python scripts/make_golden_fixtures.py [--out tests/fixtures]
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from oracle import import_encodec, run_official  # noqa: E402

import encodec_np  # noqa: E402
from encodec_np.config import PRESETS  # noqa: E402
from encodec_np.io.checkpoint import canonicalize  # noqa: E402
from encodec_np.quantization import CODEBOOKS  # noqa: E402
from encodec_np.synthetic import random_params, test_signal  # noqa: E402

WEIGHT_SEED = 0
SIGNAL_SEED = 1
SIGNAL_KINDS = ("noise", "chirp")
PLAN = {
    "encodec_24khz": {"lengths": (1, 319, 321, 9999), "decoded_bandwidths": (1.5, 24.0)},
    "encodec_48khz": {"lengths": (1, 9999, 53760), "decoded_bandwidths": (6.0,)},
}


def official_state(model, params: dict) -> dict:
    """Our canonical params → a full official state dict for ``model``."""
    import torch

    state = {k: v.clone() for k, v in model.state_dict().items()}
    used = set()
    for key, value in params.items():
        if key == CODEBOOKS:
            for i, book in enumerate(value):
                prefix = f"quantizer.vq.layers.{i}._codebook."
                state[prefix + "embed"] = torch.from_numpy(book.copy())
                state[prefix + "embed_avg"] = torch.from_numpy(book.copy())
                state[prefix + "inited"] = torch.ones_like(state[prefix + "inited"])
                used.update(prefix + s for s in ("embed", "embed_avg", "inited", "cluster_size"))
            continue
        t = torch.from_numpy(np.ascontiguousarray(value))
        if key + "_v" in state:  # weight norm: v = w, g = ||w|| over all dims but 0
            state[key + "_v"] = t.clone()
            g = np.sqrt((value.astype(np.float64) ** 2).sum(axis=tuple(range(1, value.ndim)), keepdims=True))
            state[key + "_g"] = torch.from_numpy(g.astype(np.float32))
            used.update((key + "_v", key + "_g"))
        else:
            if key not in state:
                raise KeyError(f"{key} has no official counterpart")
            if tuple(state[key].shape) != value.shape:
                raise ValueError(f"{key}: official shape {tuple(state[key].shape)}, ours {value.shape}")
            state[key] = t.clone()
            used.add(key)
    missing = sorted(set(state) - used)
    if missing:
        raise KeyError(f"official tensors not set from our params: {missing[:10]}")
    return state


def load_into_official(name: str, params: dict):
    """Build the official model, load ``params``; return (model, max |canonicalize(state) - params|)."""
    import torch

    encodec = import_encodec()
    ctor = {"encodec_24khz": encodec.EncodecModel.encodec_model_24khz,
            "encodec_48khz": encodec.EncodecModel.encodec_model_48khz}[name]
    model = ctor(pretrained=False)
    state = official_state(model, params)
    model.load_state_dict(state, strict=True)
    # our checkpoint reader folds the official names back to exactly our weights?
    canon = canonicalize({k: v.numpy() for k, v in state.items()})
    assert set(canon) == set(params), sorted(set(canon) ^ set(params))[:10]
    fold_diff = max(float(np.abs(canon[k].astype(np.float64) - params[k]).max()) for k in params)
    # run the official forward on bit-identical weights (see module docstring)
    with torch.no_grad():
        for mod_name, module in model.named_modules():
            if hasattr(module, "weight_g"):
                torch.nn.utils.remove_weight_norm(module)
                key = f"{mod_name}.weight"
                module.weight = torch.nn.Parameter(torch.from_numpy(params[key].copy()))
        for key, value in model.state_dict().items():
            ours = params.get(key)
            if ours is not None:
                assert np.array_equal(value.numpy(), ours), key
    model.eval()
    return model, fold_diff


def make(name: str, out_dir: Path) -> Path:
    import torch

    torch.set_num_threads(1)  # one fixed summation order
    config = PRESETS[name]()
    plan = PLAN[name]
    params = random_params(config, WEIGHT_SEED)
    model, fold_diff = load_into_official(name, params)
    print(f"{name}: weight-norm fold round trip max |diff| = {fold_diff:.3g}")
    data = {}
    for length in plan["lengths"]:
        x = np.stack([test_signal(kind, config.channels, length, seed=SIGNAL_SEED,
                                  sample_rate=config.sample_rate) for kind in SIGNAL_KINDS])
        pcm = np.clip(np.round(x.astype(np.float64) * 32767), -32768, 32767).astype(np.int16)
        data[f"pcm/L{length}"] = pcm
        xin = (pcm.astype(np.float32) / np.float32(32768))
        scales = None
        for bw in config.target_bandwidths:
            frames, decoded = run_official(model, xin, bw)
            for i, (codes, scale) in enumerate(frames):
                assert codes.max() < 2 ** 15
                data[f"codes/L{length}/bw{bw}/s{i}"] = codes.astype(np.int16)
            these = [s for _, s in frames]
            if scales is None:
                scales = these
                for i, s in enumerate(scales):
                    if s is not None:
                        data[f"scale/L{length}/s{i}"] = s.astype(np.float32)
            if bw in plan["decoded_bandwidths"]:
                data[f"decoded/L{length}/bw{bw}"] = decoded.astype(np.float32)
            codes0 = frames[0][0]
            print(f"  L={length} bw={bw}: {len(frames)} segment(s), codes {codes0.shape}, "
                  f"distinct layer-0 codes {len(np.unique(codes0[:, 0]))}, "
                  f"decoded peak {np.abs(decoded).max():.3g}")
    data.update({
        "meta/model_name": np.array(name),
        "meta/weight_seed": np.array(WEIGHT_SEED),
        "meta/signal_seed": np.array(SIGNAL_SEED),
        "meta/signal_kinds": np.array(SIGNAL_KINDS),
        "meta/lengths": np.array(plan["lengths"]),
        "meta/bandwidths": np.array(config.target_bandwidths),
        "meta/decoded_bandwidths": np.array(plan["decoded_bandwidths"]),
        "meta/torch_version": np.array(torch.__version__),
        "meta/encodec_version": np.array(md.version("encodec")),
        "meta/numpy_version": np.array(np.__version__),
        "meta/encodec_np_version": np.array(encodec_np.__version__),
        "meta/fold_max_abs_diff": np.array(fold_diff),
    })
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"golden_{name}.npz"
    with open(path, "wb") as f:
        np.savez_compressed(f, **data)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures")
    parser.add_argument("--model", choices=sorted(PLAN), action="append",
                        help="only this model (repeatable; default both)")
    args = parser.parse_args(argv)
    for name in args.model or sorted(PLAN):
        make(name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
