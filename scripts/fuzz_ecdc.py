"""Fuzz the ``.ecdc`` reader and decoder: plain and LM-coded 24 kHz files, segmented 48 kHz files.

    python scripts/fuzz_ecdc.py --cases 100000 --workers 2

Each case is a seeded byte-level mutation (bit flips, hostile integers,
truncation, insertions) of one of three small valid files, made with tiny
random models and a tiny random LM; loading means ``decompress`` with the
matching model and LM (nothing is ever downloaded), and accepted files must
decode to finite audio. See ``fuzzlib``.
"""
from __future__ import annotations

import dataclasses
import os
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # fuzzlib; test_lm's random LM weights

import fuzzlib  # noqa: E402

FORMATS = ("ecdc",)
FORMAT = FORMATS[0]
os.environ["ENCODEC_NP_BASE_URL"] = "http://127.0.0.1:9/"  # a stray download fails at once


def _tiny(preset):
    cfg = preset()
    return cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=2, dimension=8),
                       quantizer=dataclasses.replace(cfg.quantizer, dimension=8))


def prepare(tmp: Path) -> dict:
    from test_lm import random_lm_state

    import encodec_np
    from encodec_np.format.lm import LMModel
    from encodec_np.synthetic import random_model, test_signal

    lm = LMModel.from_state(random_lm_state(32, dim=16, layers=1, hidden=32, seed=0))
    m24 = random_model(_tiny(encodec_np.encodec_24khz), 1, backend="numpy")
    m48 = random_model(_tiny(encodec_np.encodec_48khz), 2, backend="numpy")
    m24.set_target_bandwidth(6.0)
    m48.set_target_bandwidth(6.0)
    x24 = test_signal("chirp", 1, 2400, seed=0, sample_rate=24000)
    x48 = test_signal("noise", 2, 49000, seed=1, sample_rate=48000)  # two segments
    seeds = [(encodec_np.compress(m24, x24), m24), (encodec_np.compress(m24, x24, use_lm=True, lm=lm), m24),
             (encodec_np.compress(m48, x48), m48)]
    return {"seeds": seeds, "lm": lm}


def make_case(state: dict, rng: random.Random) -> tuple[bytes, str]:
    which = rng.randrange(len(state["seeds"]))
    return fuzzlib.mutate_bytes(state["seeds"][which][0], rng), f"seed{which}.ecdc"


def load(state: dict, data: bytes, name: str, tmp: Path) -> None:
    import numpy as np

    import encodec_np

    model = state["seeds"][int(name[4])][1]
    audio, _ = encodec_np.decompress(data, model=model, lm=state["lm"])
    if not np.isfinite(audio).all():  # accepted, but decoded to inf/NaN: a defect, not an "ok"
        raise ArithmeticError("the decoded audio is not finite")


if __name__ == "__main__":
    sys.exit(fuzzlib.main(sys.modules[__name__], __doc__.splitlines()[0]))
