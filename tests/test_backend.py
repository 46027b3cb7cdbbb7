"""Every available CPU backend provides the contract of encodec_np.backend (cuda: tests/test_cuda.py)."""
import pytest

from encodec_np import ops
from encodec_np.backend import OPS, contract_violations
from encodec_np.kernels import available_backends, get_backend


def test_the_contract_names_what_the_model_calls():
    assert {"conv1d", "padded_conv1d", "conv_transpose1d", "lstm", "rvq_encode", "rvq_decode", "to_host"} <= set(OPS)
    assert contract_violations(ops) == []


@pytest.mark.parametrize("name", [n for n in available_backends() if n != "cuda"])
def test_backend_conforms(name):
    assert contract_violations(get_backend(name)) == []


def test_a_backend_missing_an_op_is_reported():
    import types
    partial = types.SimpleNamespace(**{n: getattr(ops, n) for n in OPS if n != "lstm"}, ON_DEVICE=False)
    partial.elu = lambda x: x
    assert contract_violations(partial) == ["elu: parameters ['x'], the reference has ['x', 'alpha']",
                                            "lstm: missing"]


def test_keep_freed_memory_is_applied_once_and_can_be_turned_off(monkeypatch):
    from encodec_np import kernels

    if "numba" in kernels.available_backends():
        kernels.get_backend("numba")  # loading it applies the setting
    applied = kernels.keep_freed_memory()
    assert isinstance(applied, bool)
    assert kernels.keep_freed_memory() is applied  # cached: mallopt runs once per process
    monkeypatch.setenv("ENCODEC_NP_KEEP_FREED_MEMORY", "0")
    kernels.keep_freed_memory.cache_clear()
    try:
        assert kernels.keep_freed_memory() is False
    finally:
        monkeypatch.delenv("ENCODEC_NP_KEEP_FREED_MEMORY")
        kernels.keep_freed_memory.cache_clear()
        assert kernels.keep_freed_memory() is applied
