"""Shared test set-up: a writable Numba cache, Hypothesis profiles, the torch oracle gate, tiny codecs."""
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import pytest

# A stable, writable cache: kernels compile once per machine, not once per run.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "encodec-np-numba-cache"))
sys.path.insert(0, str(Path(__file__).parent))  # tests/oracle.py, tests/helpers

from hypothesis import settings  # noqa: E402

settings.register_profile("default", deadline=None, max_examples=30)
settings.register_profile("ci", deadline=None, max_examples=60)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def torch_available() -> bool:
    try:
        import einops  # noqa: F401
        import torch  # noqa: F401
        from oracle import import_encodec
        import_encodec()
        return True
    except Exception:
        return False


requires_torch = pytest.mark.skipif(not torch_available(),
                                    reason="official encodec/torch not installed (see README: parity tests)")


def tiny_codec(preset, name=None):
    """The preset's structure (hop 320, segments, normalisation, 1024 bins) with tiny widths."""
    cfg = preset()
    return cfg.replace(name=name or cfg.name, seanet=dataclasses.replace(cfg.seanet, n_filters=4, dimension=16),
                       quantizer=dataclasses.replace(cfg.quantizer, dimension=16))


@pytest.fixture(scope="module")
def model24():
    """A tiny seeded 24 kHz codec on the numpy backend, at 6 kbps."""
    from encodec_np.config import encodec_24khz
    from encodec_np.synthetic import random_model

    model = random_model(tiny_codec(encodec_24khz), 1, backend="numpy")
    model.set_target_bandwidth(6.0)
    return model


@pytest.fixture(scope="module")
def model48():
    """A tiny seeded 48 kHz codec (segments, normalisation) on the numpy backend, at 6 kbps."""
    from encodec_np.config import encodec_48khz
    from encodec_np.synthetic import random_model

    model = random_model(tiny_codec(encodec_48khz), 2, backend="numpy")
    model.set_target_bandwidth(6.0)
    return model
