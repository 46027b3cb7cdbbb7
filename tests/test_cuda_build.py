"""The CUDA backend where it cannot run: every kernel compiles for a real GPU; no GPU, clear refusal.

The PTX check compiles each kernel with its launch signatures; it needs a
CUDA toolkit's libNVVM (a CUDA 12 or 13 toolkit, or the wheels of
``pip install "encodec-np[cuda]"``) and skips where none is found. The module
skips under the simulator, which compiles nothing.
"""
import sys
from types import SimpleNamespace

import numba
import pytest
from cuda_signatures import USES_FLOAT64, kernel_signatures

if numba.config.ENABLE_CUDASIM:
    pytest.skip("NUMBA_ENABLE_CUDASIM is set: the simulator does not compile kernels", allow_module_level=True)

from numba import cuda  # noqa: E402
from numba.cuda.dispatcher import CUDADispatcher  # noqa: E402

from encodec_np import EncodecError, available_backends, ops  # noqa: E402
from encodec_np.backend import OPS, contract_violations  # noqa: E402
from encodec_np.kernels import backend_name, get_backend  # noqa: E402
from encodec_np.kernels import cuda as gpu  # noqa: E402

# The oldest GPUs both CUDA 12 and CUDA 13 compile for (Turing); PTX runs on newer ones too.
CC = (7, 5)


@pytest.fixture
def target_cc(monkeypatch):
    """The compute capability to compile for; skips where no libNVVM is found."""
    try:
        cuda.compile_ptx(lambda a: None, (numba.types.float32[::1],), cc=CC)
    except Exception as exc:  # NvvmSupportError and friends: no usable toolkit here
        pytest.skip(f"no usable CUDA toolkit (libNVVM, NVRTC) found ({type(exc).__name__}: {str(exc)[:200]}); "
                    'install one, or pip install "encodec-np[cuda]"')
    if cuda.is_available():
        return cuda.get_current_device().compute_capability
    # numba compiles the device functions a kernel calls for "the current device";
    # without a GPU, one with the target's compute capability stands in.
    monkeypatch.setattr(sys.modules[CUDADispatcher.__module__], "get_current_device",
                        lambda: SimpleNamespace(compute_capability=CC), raising=False)
    return CC


def test_every_kernel_has_a_signature():
    kernels = {name for name, obj in vars(gpu).items()
               if isinstance(obj, CUDADispatcher) and not obj.targetoptions.get("device")}
    assert kernels == set(kernel_signatures(numba.float32))


@pytest.mark.parametrize("dtype", [numba.float32, numba.float64], ids=str)
@pytest.mark.parametrize("name", sorted(kernel_signatures(numba.float32)))
def test_kernel_compiles_to_ptx(name, dtype, target_cc):
    ptx, _ = cuda.compile_ptx(getattr(gpu, name).py_func, kernel_signatures(dtype)[name], cc=target_cc)
    assert ".entry" in ptx
    if dtype == numba.float32 and name not in USES_FLOAT64:
        assert ".f64" not in ptx, f"{name}: float32 data computed in float64 (a float64 constant?)"


def test_without_a_gpu_cuda_is_refused_and_auto_stays_on_the_cpu(monkeypatch):
    if cuda.is_available():
        pytest.skip("a GPU is present")
    monkeypatch.delenv("ENCODEC_NP_BACKEND", raising=False)
    with pytest.raises(EncodecError, match=r'no usable CUDA GPU.*pip install "encodec-np\[cuda\]"'):
        get_backend("cuda")
    assert "cuda" not in available_backends()
    assert backend_name(get_backend("auto")) == available_backends()[0]


def test_cuda_namespace_meets_the_backend_contract():
    """Every op of the contract is reachable (its own, or the reference's through ``reference_fallback``)."""
    assert contract_violations(gpu) == []
    specialised = {name for name in OPS if name in vars(gpu)}
    # Only host-side arithmetic falls back: everything that touches activations runs on the device.
    assert set(OPS) - specialised <= {"conv_padding", "code_distances"}
    assert gpu.conv_padding is ops.conv_padding
    assert gpu.ON_DEVICE and not ops.ON_DEVICE
