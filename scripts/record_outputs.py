"""Record what the library produces on a fixed seeded corpus, to prove a refactoring changed nothing.

    python scripts/record_outputs.py record before.json     # on the old code
    python scripts/record_outputs.py check before.json      # on the new code: exit 1 on any difference

Recorded, as sha256 digests: the ``.ecdc`` bytes (plain and LM-coded, 24 kHz
and segmented 48 kHz, tiny seeded models and the shipped one), the decoded
WAV bytes (16-bit; float WAVs: their samples, as libsndfile stamps the time into them), every array of the golden ``.npz`` files, and
the ``tokenize`` shards (every array) and manifests (every field but the
volatile ones: wall-clock figures, process ids, memory). ``.npz`` files are
zip archives with timestamps, so their arrays are hashed rather than their
bytes. Runs on the numpy backend (the reference) unless ``--backend`` says
otherwise; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # test_lm's random LM weights
VOLATILE = {"pid", "rss", "wall", "seconds", "elapsed", "hours_per_hour", "started", "finished", "path"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _array_digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return _sha(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())


def _npz_digests(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {key: _array_digest(data[key]) for key in sorted(data.files)}


def _tiny(preset):
    cfg = preset()
    return cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=4, dimension=16),
                       quantizer=dataclasses.replace(cfg.quantizer, dimension=16))


def record(backend: str) -> dict:
    from test_lm import random_lm_state

    import encodec_np
    from encodec_np.dataset import tokenize_dataset
    from encodec_np.format.lm import LMModel
    from encodec_np.golden import export_golden
    from encodec_np.synthetic import random_model, test_signal

    out: dict = {}
    models = {"tiny24": random_model(_tiny(encodec_np.encodec_24khz), 1, backend=backend),
              "tiny48": random_model(_tiny(encodec_np.encodec_48khz), 2, backend=backend),
              "shipped": encodec_np.load_model(backend=backend)}
    lm = LMModel.from_state(random_lm_state(32, dim=32, layers=1, hidden=64, seed=3))
    signals = {"chirp": ("chirp", 0), "noise": ("noise", 1)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for mname, model in models.items():
            for sname, (kind, seed) in signals.items():
                length = model.sample_rate * 3 // 2 + 77  # not a whole number of frames or segments
                x = test_signal(kind, model.channels, length, seed=seed, sample_rate=model.sample_rate)
                for bw in model.target_bandwidths[:2]:
                    model.set_target_bandwidth(bw)
                    key = f"{mname}/{sname}/{bw:g}kbps"
                    data = encodec_np.compress(model, x)
                    out[f"{key}/ecdc"] = _sha(data)
                    if mname == "tiny24":
                        out[f"{key}/ecdc-lm"] = _sha(encodec_np.compress(model, x, use_lm=True, lm=lm))
                    wav, sr = encodec_np.decompress(data, model=model)
                    for subtype in ("PCM_16", "FLOAT"):
                        path = tmp / f"{mname}-{sname}-{subtype}.wav"
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")  # random weights overshoot: clipping warnings
                            encodec_np.write_audio(path, wav, sr, subtype=subtype)
                        if subtype == "FLOAT":  # libsndfile's PEAK chunk holds a timestamp: hash the samples
                            out[f"{key}/wav-{subtype}"] = _array_digest(sf.read(str(path), dtype="float32")[0])
                        else:
                            out[f"{key}/wav-{subtype}"] = _sha(path.read_bytes())
            model.set_target_bandwidth(None)
            golden = export_golden(model, test_signal("noise", model.channels, 700, seed=5,
                                                      sample_rate=model.sample_rate)[None], tmp / f"{mname}.npz", 6.0)
            out.update({f"{mname}/golden/{k}": v for k, v in _npz_digests(Path(golden)).items()})
        corpus = tmp / "corpus"
        for i, (rate, channels) in enumerate(((16000, 1), (24000, 2), (44100, 1), (48000, 2))):
            (corpus / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
            x = test_signal("noise" if i % 2 else "chirp", channels, rate // 3 + 11 * i, seed=10 + i, sample_rate=rate)
            encodec_np.write_audio(corpus / f"d{i % 2}" / f"clip{i}.wav", x, rate)
        path24 = tmp / "tiny24.safetensors"
        encodec_np.save_model(models["tiny24"], path24)
        tokenize_dataset(corpus, tmp / "tokens", model=str(path24), bandwidths=[1.5, 6.0], workers=1,
                         shard_size=3, backend=backend)
        for shard in sorted((tmp / "tokens").rglob("*.npz")):
            rel = shard.relative_to(tmp / "tokens").as_posix()
            name = rel.rsplit("-", 1)[0]  # the shard's content hash suffix is checked by its arrays
            out.update({f"tokens/{name}/{k}": v for k, v in _npz_digests(shard).items()})
        for manifest in sorted((tmp / "tokens").glob("*.jsonl")):
            rows = [json.loads(line) for line in manifest.read_text().splitlines()]
            rows = [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]
            for row in rows:
                row.pop("model_sha256", None)  # the safetensors file embeds nothing volatile, but be safe
            out[f"tokens/{manifest.name}"] = _sha(json.dumps(rows, sort_keys=True).encode())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("record", "check"))
    p.add_argument("file", type=Path)
    p.add_argument("--backend", default="numpy")
    args = p.parse_args()
    os.environ.setdefault("ENCODEC_NP_BASE_URL", "http://127.0.0.1:9/")  # nothing is downloaded
    now = record(args.backend)
    if args.mode == "record":
        args.file.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(now)} outputs in {args.file}")
        return 0
    before = json.loads(args.file.read_text())
    changed = sorted(k for k in before.keys() & now.keys() if before[k] != now[k])
    missing, new = sorted(before.keys() - now.keys()), sorted(now.keys() - before.keys())
    for title, keys in (("changed", changed), ("missing", missing), ("new", new)):
        for key in keys[:20]:
            print(f"{title}: {key}")
    same = len(before.keys() & now.keys()) - len(changed)
    print(f"{same} of {len(before)} recorded outputs byte-identical; {len(changed)} changed, "
          f"{len(missing)} missing, {len(new)} new")
    return 1 if changed or missing or new else 0


if __name__ == "__main__":
    sys.exit(main())
