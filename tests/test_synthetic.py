"""Seeded weights and signals (encodec_np.synthetic): pure functions of their arguments."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from encodec_np.config import encodec_24khz, encodec_48khz
from encodec_np.errors import EncodecError
from encodec_np.synthetic import SIGNAL_KINDS, random_model, random_params, test_signal
from encodec_np.validate import expected_param_shapes


def test_random_params_cover_the_configuration_in_float32():
    config = encodec_48khz()
    params = random_params(config, 3)
    shapes = expected_param_shapes(config)
    assert {k: v.shape for k, v in params.items()} == shapes
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in params.values())


def test_a_tensor_depends_only_on_the_seed_and_its_name():
    a, b = random_params(encodec_24khz(), 0), random_params(encodec_24khz(), 0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = random_params(encodec_24khz(), 1)
    assert not any(np.array_equal(a[k], other[k]) for k in a if a[k].size > 8)
    # the documented stream: default_rng([seed, crc32(name)]), LSTM weights U(-1/sqrt(H), 1/sqrt(H))
    name = next(k for k in a if "lstm" in k and k.endswith("weight_hh_l0"))
    hidden = a[name].shape[1]
    bound = 1 / np.sqrt(hidden)
    expected = np.random.default_rng([0, zlib.crc32(name.encode())]).uniform(-bound, bound, a[name].shape)
    assert np.array_equal(a[name], expected.astype(np.float32))


def test_random_params_refuses_a_negative_seed():
    with pytest.raises(EncodecError):
        random_params(encodec_24khz(), -1)


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
def test_signals_are_seeded_float32_and_bounded(kind):
    x = test_signal(kind, 2, 4000, seed=5, sample_rate=24000)
    assert x.shape == (2, 4000) and x.dtype == np.float32 and np.isfinite(x).all()
    assert np.array_equal(x, test_signal(kind, 2, 4000, seed=5, sample_rate=24000))
    assert np.abs(x).max() <= 1.0
    if kind == "silence":
        assert not x.any()
    else:
        assert not np.array_equal(x[0], x[1])  # channels differ
        assert not np.array_equal(x, test_signal(kind, 2, 4000, seed=6, sample_rate=24000))


@pytest.mark.parametrize("args", [("hum", 1, 10), ("noise", 0, 10), ("noise", 1, 0)])
def test_signal_arguments_are_checked(args):
    with pytest.raises(EncodecError):
        test_signal(*args)


def test_random_model_runs_the_seeded_weights():
    model = random_model(encodec_24khz(), 2, backend="numpy")
    params = random_params(encodec_24khz(), 2)
    assert all(np.array_equal(model.params[k], params[k]) for k in params)
