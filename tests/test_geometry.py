"""The padding index rule (encodec_np.geometry) against the reference pad1d, every mode and size."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from encodec_np import geometry, ops


@given(length=st.integers(1, 20), left=st.integers(0, 25), right=st.integers(0, 25),
       mode=st.sampled_from(["constant", "reflect", "replicate"]))
def test_source_index_reads_what_pad1d_writes(length, left, right, mode):
    """Including reflect pads longer than the signal (the official zero-extension)."""
    x = np.arange(1, length + 1, dtype=np.float64)
    expected = ops.pad1d(x[None], left, right, mode)[0]
    m = geometry.MODES[mode]
    extended = geometry.reflect_extent(length, left, right, m)
    got = []
    for p in range(length + left + right):
        i = geometry.source_index(p, length, left, extended, m)
        got.append(x[i] if i >= 0 else 0.0)
    np.testing.assert_array_equal(np.array(got), expected)


def test_reflect_extent_only_grows_for_a_reflect_pad_longer_than_the_signal():
    assert geometry.reflect_extent(10, 3, 9, geometry.MODES["reflect"]) == 10
    assert geometry.reflect_extent(3, 1, 5, geometry.MODES["reflect"]) == 6
    assert geometry.reflect_extent(3, 1, 5, geometry.MODES["constant"]) == 3
