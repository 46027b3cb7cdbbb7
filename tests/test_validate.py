"""The checks at the public boundary (encodec_np.validate): arrays, dtypes, parameters, weights."""
from __future__ import annotations

import numpy as np
import pytest

from encodec_np.config import encodec_24khz
from encodec_np.errors import CheckpointError, EncodecError
from encodec_np.synthetic import random_params
from encodec_np.validate import (
    check_params,
    check_weights,
    expected_param_shapes,
    float_array,
    layout_of,
    param_mismatch,
    resolve_dtype,
)


def test_float_array_passes_a_good_array_through_uncopied():
    x = np.zeros((1, 2, 3), np.float32)
    assert float_array(x, "audio", (2, 3)) is x
    assert float_array([[0.5, 1.0]], "audio", 2).dtype == np.float64


@pytest.mark.parametrize("value, match", [
    (np.zeros((2, 3, 4, 5), np.float32), r"shape \[C, T\] or \[B, C, T\], got 4 dims"),
    (np.zeros((1, 4), np.int16), "floating point, got dtype int16"),
    (np.zeros((1, 0), np.float32), "empty"),
    (np.array([[0.0, np.nan]], np.float32), "NaN or Inf"),
    (np.array([[np.inf]], np.float64), "NaN or Inf"),
    ([[0.0], [1.0, 2.0]], "must be an array"),
    ("a string", "got 0 dims"),
    (np.array([["a"]]), "floating point, got dtype <U1"),
])
def test_float_array_says_what_is_wrong(value, match):
    with pytest.raises(EncodecError, match=match):
        float_array(value, "audio", (2, 3))


def test_float_array_array_only_refuses_lists():
    with pytest.raises(EncodecError, match="must be a NumPy array"):
        float_array([[0.0]], "codebooks", 2, "[K, D]", array_only=True)


def test_layout_of():
    assert layout_of((1, 3)) == "[T] or [B, C, T]"


@pytest.mark.parametrize("given, expected", [("float32", np.float32), (np.float64, np.float64),
                                             (np.dtype("float32"), np.float32)])
def test_resolve_dtype(given, expected):
    assert resolve_dtype(given) == np.dtype(expected)


@pytest.mark.parametrize("bad", ["float16", np.int32, "double precision"])
def test_resolve_dtype_refuses_others(bad):
    with pytest.raises(EncodecError, match="dtype must be 'float32' or 'float64'"):
        resolve_dtype(bad)


def test_param_mismatch_lists_each_kind_and_caps_the_names():
    expected = {f"w{i}": (2, 3) for i in range(12)}
    assert param_mismatch(expected, {k: np.zeros(s) for k, s in expected.items()}) == ""
    given = {"w0": np.zeros((3, 2)), "extra": np.zeros(1)}
    text = param_mismatch(expected, given)
    assert text.startswith("missing: w1, w10, w11, w2, w3, w4, w5, w6 ... (11 in all)")
    assert "; unexpected: extra" in text and "; wrong shape: w0: expected (2, 3), got (3, 2)" in text


def test_check_params_against_a_real_configuration():
    config = encodec_24khz()
    params = random_params(config, 0)
    assert set(params) == set(expected_param_shapes(config))
    check_params(config, params)
    key = next(iter(params))
    with pytest.raises(CheckpointError, match=f"'encodec_24khz' configuration; missing: {key}"):
        check_params(config, {k: v for k, v in params.items() if k != key})


@pytest.mark.parametrize("value, match", [(np.zeros(3, np.int64), "stored as int64"),
                                          ([0.0, 1.0], "stored as list"),
                                          (np.array([0.0, np.nan], np.float16), "NaN or Inf")])
def test_check_weights_refuses_non_float_and_non_finite(value, match):
    with pytest.raises(CheckpointError, match=match):
        check_weights({"encoder.model.0.conv.conv.weight": value})
    check_weights({"ok": np.zeros(3, np.float16)})
