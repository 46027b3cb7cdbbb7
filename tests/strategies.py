"""Hypothesis strategies shared by the op, kernel and CUDA tests."""
import numpy as np
from hypothesis import strategies as st

#: The float types every op supports.
dtypes = st.sampled_from([np.float32, np.float64])
#: The padding modes of the official convs (``pad1d``).
modes = st.sampled_from(["constant", "reflect", "replicate"])
