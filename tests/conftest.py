"""Shared test set-up: a writable Numba cache, Hypothesis profiles, the torch oracle gate."""
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
