"""Tolerances shared by the op, kernel and CUDA tests (one definition: they compare the same quantities)."""
import numpy as np


def tol(dtype, reduction):
    """Absolute tolerance for O(1) data: float32 summation error grows ~ sqrt(reduction)."""
    return (3e-6 if dtype == np.float32 else 1e-13) * max(1.0, np.sqrt(reduction)) * 4
