"""The argument types each CUDA kernel of ``encodec_np.kernels.cuda`` is launched with (tests only).

``tests/test_cuda_build.py`` compiles every kernel for a real GPU with these
signatures; ``tests/test_cuda.py`` checks, under the simulator or on a GPU,
that the wrappers launch the kernels with exactly these types.
"""
from numba import types


def kernel_signatures(dtype) -> dict[str, tuple]:
    """Kernel name → argument types, for float data of numba type ``dtype`` (float32 or float64)."""
    a1, a2, a3 = (types.Array(dtype, n, "C") for n in (1, 2, 3))
    codes = types.Array(types.int64, 2, "C")
    i = types.int64
    return {
        "_fill": (a1, dtype),
        "_pad": (a2, i, i, i, a2),
        "_conv": (a3, a3, a1, i, i, i, i, i, a3),
        "_conv_transpose": (a3, a3, a1, i, a3),
        "_elu": (a1, dtype, a1),
        "_add": (a1, a1, a1),
        "_swap": (a3, a3),
        "_group_norm": (a3, a1, a1, types.float64, a3),
        "_lstm_step": (a3, a2, i, a2, a2, a2, a3),
        "_rvq_encode": (a2, a3, a2, codes),
        "_rvq_decode": (codes, a3, a2),
    }


#: Kernels that compute in float64 on purpose (GroupNorm statistics, the RVQ's shared scores).
USES_FLOAT64 = {"_group_norm", "_rvq_encode"}
