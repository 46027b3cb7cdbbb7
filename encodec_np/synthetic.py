"""Seeded, torch-free weights and test signals.

Everything here is a pure function of its arguments (config, seed, kind,
length): no network is run and no file is read, so two implementations that
agree on NumPy's ``Generator`` streams get bit-identical weights and inputs.

Weights (:func:`random_params`)
    Every tensor is drawn from its own stream,
    ``np.random.default_rng([seed, crc32(name)])``, so a tensor's values depend
    only on the seed and its (official) name, not on the order in which the
    parameter table is listed or on which other tensors exist. Values are
    drawn in float64 and stored as float32 (a float64 model sees the very same
    numbers, upcast).

    ===================================  ==========================================
    tensor                               draw
    ===================================  ==========================================
    conv weight ``[C_out, C_in, K]``      U(-b, b), b = sqrt(3 / fan_in), fan_in = C_in*K
    convtr weight ``[C_in, C_out, K]``    U(-b, b), b = sqrt(3 / fan_in), fan_in = C_out*K
                                          (PyTorch's fan-in of a transposed weight
                                          comes from its dim 1)
    conv / convtr bias                    0.02 * N(0, 1)
    GroupNorm weight / bias               1 + 0.1 * N(0, 1) / 0.02 * N(0, 1)
    LSTM weights and biases               U(-1/sqrt(H), 1/sqrt(H))  (PyTorch default)
    codebook ``q`` ``[bins, D]``          sigma_q * N(0, 1),  sigma_q = s0 * r**q
    ===================================  ==========================================

    The conv bound is PyTorch's fan-in uniform rule with unit variance gain
    (variance 1/fan_in, "LeCun uniform") rather than PyTorch's default
    1/sqrt(fan_in): the default shrinks the signal by sqrt(3) per conv, and
    after the ~15 convs of the encoder the embedding of a weight-norm model
    is 95 % bias-driven constant, which collapses the codes. With unit gain
    the time-varying part of the embedding is as large as the constant part
    and the decoder output has an audio-like RMS (~0.15 for 0.3-peak noise).

    The codebook schedule ``(s0, r)`` is a constant of the configuration (see
    :data:`CODEBOOK_SCALES` and :func:`codebook_schedule`), never computed from
    network outputs: the expected outputs of parity fixtures come from another
    implementation, and a last-bit difference there must not move a codebook.
    Gaussian codebooks at a quarter of the embedding scale give diverse codes
    and residuals that shrink slowly from layer to layer. Measured on 3 s of
    seeded noise / chirp (seeds 0 and 1): 24 kHz, 225 frames: 81-181
    distinct layer-0 codes, 170-197 in the later layers; 48 kHz, 455 frames:
    172-186 in layer 0, 250-320 in the last; sparse impulses (mostly
    silence) give fewer in the first layers, as they should.

Signals (:func:`test_signal`)
    ``"noise"`` (brown-ish noise, 0.3 peak), ``"chirp"`` (log sine sweep plus a
    little noise), ``"impulses"`` (sparse clicks) and ``"silence"``; channels
    differ from each other. float32 ``[channels, length]``.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from .config import EncodecConfig
from .errors import EncodecError
from .model import EncodecModel
from .quantization import CODEBOOKS
from .validate import expected_param_shapes

SIGNAL_KINDS = ("noise", "chirp", "impulses", "silence")

# Codebook schedule: codebook q ~ s0 * r**q * N(0, 1), per normalisation kind.
# s0 is a quarter of the encoder output's RMS per coordinate, measured once
# on test_signal("noise", seed 0, 1 s) with random_params(seed 0) and rounded
# to 2 significant digits:
#   encodec_24khz 0.22, encodec_32khz 0.20 (weight norm: no output norm)
#   encodec_48khz 1.0 (GroupNorm after the last conv, input RMS-normalised)
# A quarter of the embedding scale is close to the scale at which a random
# Gaussian codebook of 128-d vectors removes the most residual energy, while
# codes stay diverse (most frames get their own layer-0 code); r = 0.95 makes
# later codebooks smaller, as the residual shrinks, like a trained RVQ.
# These are constants: nothing here runs the network.
CODEBOOK_SCALES: dict[str, tuple[float, float]] = {
    "weight_norm": (0.055, 0.95),
    "none": (0.055, 0.95),
    "time_group_norm": (0.25, 0.95),
}


def codebook_schedule(config: EncodecConfig) -> tuple[float, float]:
    """``(s0, r)``: codebook ``q`` is ``s0 * r**q * N(0, 1)``. A constant of the configuration.

    Parameters
    ----------
    config : EncodecConfig
        Only its SEANet norm matters.
    """
    return CODEBOOK_SCALES[config.seanet.norm]


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def random_params(config: EncodecConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded float32 weights for every entry of :func:`~encodec_np.validate.expected_param_shapes`.

    Deterministic in ``(config, seed)`` only; see the module docstring for
    the distributions.

    Parameters
    ----------
    config : EncodecConfig
    seed : int
        Non-negative.

    Returns
    -------
    dict of str → float32 ndarray
    """
    if int(seed) < 0:
        raise EncodecError(f"seed must be a non-negative integer, got {seed}")
    params = {}
    for name, shape in expected_param_shapes(config).items():
        rng = _stream(seed, name)
        if name == CODEBOOKS:
            s0, r = codebook_schedule(config)
            sigma = s0 * r ** np.arange(shape[0], dtype=np.float64)
            value = rng.standard_normal(shape) * sigma[:, None, None]
        elif ".lstm." in name:
            bound = 1.0 / math.sqrt(shape[0] // 4)  # H: every LSTM tensor has 4H rows
            value = rng.uniform(-bound, bound, shape)
        elif name.endswith("norm.weight"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            value = 0.02 * rng.standard_normal(shape)
        elif name.endswith("convtr.weight"):
            _, c_out, k = shape
            bound = math.sqrt(3.0 / (c_out * k))
            value = rng.uniform(-bound, bound, shape)
        elif name.endswith("conv.weight"):
            _, c_in, k = shape
            bound = math.sqrt(3.0 / (c_in * k))
            value = rng.uniform(-bound, bound, shape)
        else:  # pragma: no cover - every parameter kind is listed above
            raise EncodecError(f"random_params: no rule for parameter {name!r}")
        params[name] = value.astype(np.float32)
    return params


def random_model(config: EncodecConfig, seed: int = 0, **kwargs):
    """:class:`~encodec_np.model.EncodecModel` with :func:`random_params` weights.

    Parameters
    ----------
    config : EncodecConfig
    seed : int
        As for :func:`random_params`.
    **kwargs
        For the model (``backend=``, ``dtype=``).
    """
    return EncodecModel(config, random_params(config, seed), **kwargs)


def test_signal(kind: str, channels: int, length: int, seed: int = 0,
                sample_rate: int = 24000) -> np.ndarray:
    """A seeded audio-like signal, float32 ``[channels, length]``.

    Parameters
    ----------
    kind : str
        ``"noise"`` brown-ish noise (white noise through a leaky integrator
        with its corner at 40 Hz, DC removed, 0.3 peak), ``"chirp"`` logarithmic sine sweep 50 Hz → 0.4·sample_rate
        with amplitude 0.5 plus 0.01 white noise, ``"impulses"`` sparse clicks
        (about 20 per second, random signs and heights up to 0.8),
        ``"silence"`` zeros. Channels differ (independent noise, sweep phase).
    channels, length : int
        At least 1.
    seed : int
    sample_rate : int
        Hz: sets the noise corner, the sweep and the click rate.
    """
    if kind not in SIGNAL_KINDS:
        raise EncodecError(f"unknown test signal {kind!r}; choose one of {SIGNAL_KINDS}")
    channels, length, sample_rate = int(channels), int(length), int(sample_rate)
    if channels < 1 or length < 1 or sample_rate < 1:
        raise EncodecError("test_signal needs channels >= 1, length >= 1 and sample_rate >= 1")
    rng = np.random.default_rng([int(seed), zlib.crc32(kind.encode())])
    if kind == "silence":
        return np.zeros((channels, length), dtype=np.float32)
    if kind == "noise":
        from scipy.signal import lfilter

        white = rng.standard_normal((channels, length))
        # leaky integrator: a 1/f^2 ("brown") spectrum above ~40 Hz, flat below,
        # so the signal does not drift like a pure random walk
        pole = math.exp(-2 * math.pi * 40.0 / sample_rate)
        x = lfilter([1.0], [1.0, -pole], white, axis=1)
        x -= x.mean(axis=1, keepdims=True)
        peak = np.abs(x).max()
        x = 0.3 * x / peak if peak > 0 else x
    elif kind == "chirp":
        t = np.arange(length) / sample_rate
        duration = max(length / sample_rate, 1.0 / sample_rate)
        f0, f1 = 50.0, 0.4 * sample_rate
        k = math.log(f1 / f0) / duration
        phase = 2 * np.pi * f0 * (np.exp(k * t) - 1) / k
        offsets = 0.5 * np.pi * np.arange(channels)[:, None]
        x = 0.5 * np.sin(phase[None, :] + offsets) + 0.01 * rng.standard_normal((channels, length))
    else:  # impulses
        x = np.zeros((channels, length))
        count = max(1, round(20 * length / sample_rate))
        for c in range(channels):
            pos = rng.integers(0, length, count)
            x[c, pos] = rng.choice([-1.0, 1.0], count) * rng.uniform(0.2, 0.8, count)
    return x.astype(np.float32)


test_signal.__test__ = False  # not a pytest test despite the name
