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
