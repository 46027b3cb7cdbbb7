"""Fuzz the checkpoint readers: ``.th`` (zip + pickle), our safetensors, Hugging Face ``config.json``.

    python scripts/fuzz_checkpoint.py --format th --cases 100000 --workers 2

Each case is a seeded mutation of a small valid file (a tiny model of Meta's
24 kHz structure): raw byte mutations of the whole file, or structure-aware
ones (one zip entry mutated and re-zipped; one safetensors header or config
field replaced by a hostile value). Loading means ``read_checkpoint`` and
building the model, as ``load_model`` does. See ``fuzzlib`` for the outcomes.
"""
from __future__ import annotations

import dataclasses
import io
import json
import random
import struct
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # fuzzlib; th_writer (a test helper)

import fuzzlib  # noqa: E402

FORMATS = ("th", "safetensors", "config")
FORMAT = FORMATS[0]


def tiny_config():
    import encodec_np

    cfg = encodec_np.encodec_24khz()
    return cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=2, dimension=8),
                       quantizer=encodec_np.RVQConfig(dimension=8, n_q=4, bins=16), target_bandwidths=(0.6,))


def prepare(tmp: Path) -> dict:
    """The seed files, as bytes."""
    from safetensors.numpy import save_file
    from th_writer import write_th

    import encodec_np
    from encodec_np.io.checkpoint import to_official_state
    from encodec_np.synthetic import random_params

    cfg = tiny_config()
    params = random_params(cfg, seed=0)
    write_th(tmp / "seed.th", to_official_state(params, cfg))
    encodec_np.save_model(encodec_np.EncodecModel(cfg, params, backend="numpy"), tmp / "seed.safetensors")
    s = cfg.seanet
    hf = {"model_type": "encodec", "sampling_rate": cfg.sample_rate, "audio_channels": s.channels,
          "hidden_size": s.dimension, "num_filters": s.n_filters, "num_residual_layers": s.n_residual_layers,
          "upsampling_ratios": list(s.ratios), "norm_type": s.norm, "kernel_size": s.kernel_size,
          "last_kernel_size": s.last_kernel_size, "residual_kernel_size": s.residual_kernel_size,
          "dilation_growth_rate": s.dilation_base, "use_causal_conv": s.causal, "pad_mode": s.pad_mode,
          "compress": s.compress, "num_lstm_layers": s.lstm, "trim_right_ratio": s.trim_right_ratio,
          "codebook_size": 16, "codebook_dim": 8, "use_conv_shortcut": True,
          "target_bandwidths": [1.2], "normalize": False, "chunk_length_s": None, "overlap": None}
    folder = tmp / "hf"
    folder.mkdir(exist_ok=True)
    state = to_official_state(params, cfg)
    from test_checkpoint import hf_state
    save_file(hf_state(state), str(folder / "model.safetensors"))
    return {"th": (tmp / "seed.th").read_bytes(), "safetensors": (tmp / "seed.safetensors").read_bytes(),
            "config": json.dumps(hf).encode(), "hf": folder}


def _rezip(data: bytes, rng: random.Random) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        entries = [(name, z.read(name)) for name in z.namelist()]
    pick = 0 if rng.random() < 0.6 else rng.randrange(len(entries))  # mostly data.pkl
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for i, (name, payload) in enumerate(entries):
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)),
                       fuzzlib.mutate_bytes(payload, rng) if i == pick else payload)
    return out.getvalue()


def _safetensors(data: bytes, rng: random.Random) -> bytes:
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    if rng.random() < 0.4 and "__metadata__" in header:  # our config, inside the metadata
        meta = dict(header["__metadata__"])
        key = rng.choice(sorted(meta))
        meta[key] = json.dumps(fuzzlib.mutate_json(json.loads(meta[key]), rng))
        header["__metadata__"] = meta
    else:
        header = fuzzlib.mutate_json(header, rng)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + size:]


def make_case(state: dict, rng: random.Random) -> tuple[bytes, str]:
    seed = state[FORMAT]
    structured = rng.random() < 0.6
    if FORMAT == "th":
        return (_rezip(seed, rng) if structured else fuzzlib.mutate_bytes(seed, rng)), "case.th"
    if FORMAT == "safetensors":
        return (_safetensors(seed, rng) if structured else fuzzlib.mutate_bytes(seed, rng)), "case.safetensors"
    if structured:
        return json.dumps(fuzzlib.mutate_json(json.loads(seed), rng)).encode(), "config.json"
    return fuzzlib.mutate_bytes(seed, rng), "config.json"


def load(state: dict, data: bytes, name: str, tmp: Path) -> None:
    import encodec_np
    from encodec_np.io.checkpoint import read_checkpoint

    if FORMAT == "config":
        (state["hf"] / "config.json").write_bytes(data)
        path = state["hf"]
    else:
        path = tmp / name
        path.write_bytes(data)
    config, params = read_checkpoint(path, tiny_config() if FORMAT == "th" else None)
    encodec_np.EncodecModel(config, params, backend="numpy")


if __name__ == "__main__":
    sys.exit(fuzzlib.main(sys.modules[__name__], __doc__.splitlines()[0]))
