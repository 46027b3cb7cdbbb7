"""The backend contract: what a model calls on ``model.ops``, with the reference's signatures.

A backend (``numpy``: :mod:`encodec_np.ops` itself; ``numba``:
``encodec_np.kernels.cpu``; ``cuda``: ``encodec_np.kernels.cuda``) is a
namespace providing every name of :class:`Backend` with the parameters of the
reference function of that name; ``tests/test_backend.py`` (and
``tests/test_cuda.py`` for ``cuda``) check each available backend against it.
Arrays a backend returns may live on its device (``ON_DEVICE``); ``to_host``
brings them back.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from . import ops


class Backend(Protocol):
    """The ops of :mod:`encodec_np.ops`, by name, with the reference's parameters.

    Shapes use ``B`` batch, ``C`` channels, ``T`` time, ``K`` kernel size,
    ``N`` rows, ``D`` code dimension, ``Q`` codebooks. The reference
    functions spell out the semantics; the arrays returned are the backend's
    (on its device when ``ON_DEVICE``).
    """

    #: Whether the arrays this backend returns live on a device (``to_host`` fetches them).
    ON_DEVICE: bool

    def conv1d(self, x: np.ndarray, weight: np.ndarray, bias=None, stride: int = 1,
               dilation: int = 1) -> np.ndarray:
        """Unpadded 1-d convolution (cross-correlation); shapes as :func:`encodec_np.ops.conv1d`."""

    def padded_conv1d(self, x: np.ndarray, weight: np.ndarray, bias, stride: int = 1, dilation: int = 1,
                      padding: tuple = (0, 0), pad_mode: str = "constant") -> np.ndarray:
        """:meth:`pad1d` then :meth:`conv1d` in one call, so that a backend may fuse the padding; shapes as :func:`encodec_np.ops.padded_conv1d`."""

    def conv_transpose1d(self, x: np.ndarray, weight: np.ndarray, bias=None, stride: int = 1) -> np.ndarray:
        """Unpadded transposed 1-d convolution; shapes as :func:`encodec_np.ops.conv_transpose1d`."""

    def conv_padding(self, length: int, kernel_size: int, stride: int, dilation: int, causal: bool) -> tuple:
        """The padding of an official ``SConv1d``; shapes as :func:`encodec_np.ops.conv_padding`."""

    def pad1d(self, x: np.ndarray, left: int, right: int, mode: str = "constant") -> np.ndarray:
        """Pad the last axis; shapes as :func:`encodec_np.ops.pad1d`."""

    def unpad1d(self, x: np.ndarray, left: int, right: int) -> np.ndarray:
        """Drop samples from both ends of the last axis; shapes as :func:`encodec_np.ops.unpad1d`."""

    def elu(self, x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
        """ELU, ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``; shapes as :func:`encodec_np.ops.elu`."""

    def group_norm(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
        """``GroupNorm(1, C)`` over channels and time together; shapes as :func:`encodec_np.ops.group_norm`."""

    def lstm(self, x: np.ndarray, layers: list, state=None) -> tuple:
        """Multi-layer unidirectional LSTM over time; shapes as :func:`encodec_np.ops.lstm`."""

    def code_distances(self, x: np.ndarray, codebook: np.ndarray) -> np.ndarray:
        """The official RVQ scores, larger for nearer codes; shapes as :func:`encodec_np.ops.code_distances`."""

    def rvq_encode(self, x: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
        """Residual vector quantization; shapes as :func:`encodec_np.ops.rvq_encode`."""

    def rvq_decode(self, codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
        """The sum of the selected codebook vectors; shapes as :func:`encodec_np.ops.rvq_decode`."""

    def to_device(self, x: np.ndarray) -> np.ndarray:
        """The backend's array for ``x`` (``x`` itself on the host); shapes as :func:`encodec_np.ops.to_device`."""

    def to_host(self, x: np.ndarray) -> np.ndarray:
        """A NumPy array of ``x`` (``x`` itself on the host); shapes as :func:`encodec_np.ops.to_host`."""

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a + b``: the residual connections; shapes as :func:`encodec_np.ops.add`."""

    def swap_last_axes(self, x: np.ndarray) -> np.ndarray:
        """Transpose the last two axes; shapes as :func:`encodec_np.ops.swap_last_axes`."""


#: The names every backend provides.
OPS = tuple(name for name in Backend.__dict__ if not name.startswith("_") and callable(Backend.__dict__[name]))


def reference_fallback(name: str):
    """The reference's ``name`` for a backend that does not specialise it.

    A backend module sets ``__getattr__ = reference_fallback`` (PEP 562), so the
    ops it leaves alone (padding arithmetic, plumbing) are :mod:`encodec_np.ops`'s
    own objects, not copies under a second name.

    Parameters
    ----------
    name : str
        An attribute looked up on the backend module and not defined there.

    Returns
    -------
    The reference's function (or ``ON_DEVICE``) of that name.

    Raises
    ------
    AttributeError
        For a name that is not part of the contract.
    """
    if name in OPS or name == "ON_DEVICE":
        return getattr(ops, name)
    raise AttributeError(f"this backend has no {name!r} (the contract: encodec_np.backend.OPS)")


def contract_violations(backend) -> list[str]:
    """What ``backend`` lacks or spells differently from the reference: ``[]`` when it conforms.

    Parameters
    ----------
    backend : module or namespace

    Returns
    -------
    list of str
        One line per missing name, or per function whose parameter names
        (in order) differ from :mod:`encodec_np.ops`'s.
    """
    import inspect

    problems = [] if isinstance(getattr(backend, "ON_DEVICE", None), bool) else ["ON_DEVICE is not a bool"]
    for name in OPS:
        fn = getattr(backend, name, None)
        if not callable(fn):
            problems.append(f"{name}: missing")
            continue
        want = list(inspect.signature(getattr(ops, name)).parameters)
        got = list(inspect.signature(fn).parameters)
        if got != want:
            problems.append(f"{name}: parameters {got}, the reference has {want}")
    return problems
