"""The seed's functional EnCodec API: build, RVQ, encode/decode and losses.

The seed document (an Elixir/Axon ``EnCodec`` module) offers a small
functional surface; this module gives it in Python with the same names,
defaults and shapes, built on the layers of the official model::

    waveform [B, 1, S] ─ encoder ─ z_e [B, T, D] ─ rvq_quantize ─ tokens [B, Q, T]
    tokens [B, Q, T] ─ rvq_dequantize ─ z_q [B, T, D] ─ decoder ─ [B, 1, 320 T]

with ``T = ceil(S / 320)`` and ``D = output_size(hidden_dim) = 16 * hidden_dim``.

The encoder and decoder are the official SEANet layer lists
(:func:`encodec_np.seanet.encoder_layers` / :func:`~encodec_np.seanet.decoder_layers`)
with ``n_filters = hidden_dim``: causal, weight-norm convolutions, strides
2, 4, 5, 8 with channel doubling, a two-layer LSTM and ELUs. Their weights are
freshly initialised (untrained); load trained weights by constructing
:class:`Encoder` / :class:`Decoder` with your own ``params``. Unlike the
seed's Axon models, which take ``params`` separately, each object here holds
its parameters, so ``encode(encoder, codebooks, waveform)`` drops the
seed's ``params`` argument.

Everything is NumPy: nothing here computes gradients. The losses are the
forward values a training loop would report.

>>> import numpy as np, encodec_np.functional as F
>>> encoder, decoder = F.build(hidden_dim=4)
>>> codebooks = F.init_codebooks(8, 1024, F.output_size(hidden_dim=4))
>>> tokens = F.encode(encoder, codebooks, np.zeros((1, 1, 640), np.float32))
>>> tokens.shape
(1, 8, 2)
>>> F.decode(decoder, codebooks, tokens).shape
(1, 1, 640)
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from . import ops
from .config import SEANetConfig
from .errors import EncodecError
from .mel import mel_filterbank, mel_spectrogram  # noqa: F401  (part of the functional API, see __all__)
from .seanet import LSTM, Conv, ConvTranspose, decoder_layers, encoder_layers, param_shapes, run_layers
from .validate import float_array, param_mismatch

#: Decoder-order upsampling ratios; the encoder strides are 2, 4, 5, 8.
RATIOS = (8, 5, 4, 2)
#: Samples per code frame (the product of the ratios).
HOP_LENGTH = math.prod(RATIOS)
#: ``log2`` of the spectral loss window sizes: 32 ... 2048 samples (paper §3.4).
SPECTRAL_SCALES = tuple(range(5, 12))

__all__ = [
    "Encoder", "Decoder", "build", "build_encoder", "build_decoder", "build_rvq", "init_codebooks",
    "rvq_quantize", "rvq_dequantize", "encode", "decode", "output_size", "commitment_loss",
    "spectral_loss", "loss", "seanet_config", "mel_filterbank", "mel_spectrogram",
]


# --------------------------------------------------------------------------- validation helpers
def _positive_int(value, name: str, minimum: int = 1) -> int:
    # bool is an int subclass; True as a size is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise EncodecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_codebooks(codebooks, dim: int | None = None) -> np.ndarray:
    books = float_array(codebooks, "codebooks", 3, "[num_codebooks, codebook_size, dim]")
    if dim is not None and books.shape[2] != dim:
        raise EncodecError(f"codebooks have dimension {books.shape[2]} but the embeddings have {dim}; "
                           f"build them with init_codebooks(..., embedding_dim={dim})")
    return books


def _check_tokens(tokens, codebooks: np.ndarray, name: str = "indices") -> np.ndarray:
    idx = np.asarray(tokens)
    if idx.ndim != 3:
        raise EncodecError(f"{name} must have shape [B, num_codebooks, T], got {idx.ndim} dims {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise EncodecError(f"{name} must be integers, got dtype {idx.dtype}; "
                           "pass the indices returned by rvq_quantize / encode")
    if idx.size == 0:
        raise EncodecError(f"{name} is empty (shape {idx.shape}); pass at least one token")
    q, k = codebooks.shape[:2]
    if idx.shape[1] > q:
        raise EncodecError(f"{name} use {idx.shape[1]} codebooks but only {q} were given; "
                           "pass the codebooks the tokens were made with")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= k:
        raise EncodecError(f"{name} must lie in [0, {k}) (codebook_size), found [{lo}, {hi}]")
    return idx.astype(np.int64, copy=False)


# --------------------------------------------------------------------------- configuration
def output_size(hidden_dim: int = 128) -> int:
    """Embedding dimension of the encoder output: ``16 * hidden_dim``.

    Four stride stages each double the channels of the first convolution's
    ``hidden_dim`` filters, so ``D = hidden_dim * 2**4``.

    Parameters
    ----------
    hidden_dim : int
        Filters of the first convolution, positive.
    """
    return 16 * _positive_int(hidden_dim, "hidden_dim")


def seanet_config(hidden_dim: int = 128) -> SEANetConfig:
    """The :class:`~encodec_np.config.SEANetConfig` behind :func:`build_encoder` / :func:`build_decoder`.

    The official 24 kHz layout (causal, weight norm, reflect padding, kernel 7,
    ratios 8, 5, 4, 2, two LSTM layers) with ``n_filters = hidden_dim`` and an
    output ``dimension = 16 * hidden_dim``, the seed's ``final_dim``.

    Parameters
    ----------
    hidden_dim : int
        Filters of the first convolution, at least 2.
    """
    # compress=2 halves the residual width: hidden_dim 1 would give 0-channel convs.
    hidden_dim = _positive_int(hidden_dim, "hidden_dim", minimum=2)
    return SEANetConfig(channels=1, dimension=output_size(hidden_dim), n_filters=hidden_dim,
                        ratios=RATIOS, causal=True, norm="weight_norm", pad_mode="reflect",
                        true_skip=False, compress=2, lstm=2)


def build_rvq(num_codebooks: int = 8, codebook_size: int = 1024, hidden_dim: int = 128) -> dict:
    """Configuration of the residual vector quantizer (the seed's ``build_rvq``).

    RVQ is not a network but a set of codebooks; this only describes them.
    Create the codebooks with :func:`init_codebooks`::

        cfg = build_rvq()
        codebooks = init_codebooks(cfg["num_codebooks"], cfg["codebook_size"], cfg["embedding_dim"])

    Parameters
    ----------
    num_codebooks : int
        Quantization levels ``Q`` (default 8: 6 kbps at 24 kHz).
    codebook_size : int
        Entries ``K`` per codebook (default 1024).
    hidden_dim : int
        Encoder base width; the embedding dimension is ``output_size(hidden_dim)``.

    Returns
    -------
    dict
        ``{"num_codebooks": Q, "codebook_size": K, "embedding_dim": 16 * hidden_dim}``.
    """
    return {"num_codebooks": _positive_int(num_codebooks, "num_codebooks"),
            "codebook_size": _positive_int(codebook_size, "codebook_size"),
            "embedding_dim": output_size(hidden_dim)}


# --------------------------------------------------------------------------- networks
def _init_params(layers: list, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """PyTorch-default initialisation of every parameter the layers read.

    Conv weights and biases: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, which is
    what ``kaiming_uniform_(a=sqrt(5))`` reduces to. ``fan_in`` is
    ``C_in * K`` for a conv ``[C_out, C_in, K]`` and, as PyTorch computes it
    from dimension 1, ``C_out * K`` for a transposed conv ``[C_in, C_out, K]``.
    Weight norm starts with ``g = ||v||``, so the folded weight equals ``v``.
    LSTM weights and biases: ``U(-1/sqrt(H), 1/sqrt(H))``. GroupNorm (unused
    with weight norm): ones and zeros. Parameters are drawn in layer order
    from one generator, so the result depends only on the seed and shapes.
    """
    def uniform(shape, bound):
        # float32 draws: the default model would need GBs of float64 temporaries.
        return (rng.random(shape, dtype=np.float32) * np.float32(2 * bound) - np.float32(bound))

    def leaves(layer):
        for sub in getattr(layer, "block", ()) + ((layer.shortcut,) if getattr(layer, "shortcut", None) else ()):
            yield from leaves(sub)
        if not hasattr(layer, "block"):
            yield layer

    params: dict[str, np.ndarray] = {}
    for layer in (leaf for top in layers for leaf in leaves(top)):
        for name, shape in layer.param_shapes().items():
            if name.endswith("norm.weight"):
                params[name] = np.ones(shape, np.float32)
            elif name.endswith("norm.bias"):
                params[name] = np.zeros(shape, np.float32)
            elif isinstance(layer, LSTM):
                params[name] = uniform(shape, 1.0 / math.sqrt(layer.dim))
            elif isinstance(layer, Conv):
                params[name] = uniform(shape, 1.0 / math.sqrt(layer.c_in * layer.kernel_size))
            elif isinstance(layer, ConvTranspose):
                params[name] = uniform(shape, 1.0 / math.sqrt(layer.c_out * layer.kernel_size))
            else:  # a new layer type must say how it is initialised
                raise EncodecError(f"no initialiser for parameter {name} of {type(layer).__name__}")
    return params


def _check_params(params, layers: list, what: str) -> dict[str, np.ndarray]:
    if not isinstance(params, dict):
        raise EncodecError(f"{what} params must be a dict of name -> array, got {type(params).__name__}")
    mismatch = param_mismatch(param_shapes(layers), params)
    if mismatch:
        raise EncodecError(f"{what} params do not match its configuration; {mismatch}; "
                           "build them with build_encoder / build_decoder or seanet.param_shapes")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}


@dataclass(frozen=True, eq=False)
class _Network:
    """Shared state of :class:`Encoder` and :class:`Decoder`.

    ``params`` hold folded float32 weights named as in
    :func:`encodec_np.seanet.param_shapes`; ``backend`` names the ops table
    (``"numpy"`` is the reference, ``"auto"`` the fastest available).
    ``sample_rate`` and ``bandwidth`` record the :func:`build` settings.
    """

    config: SEANetConfig
    params: dict = field(repr=False)
    sample_rate: int = 24_000
    bandwidth: float = 6.0
    backend: str = "numpy"
    layers: list = field(init=False, repr=False)

    def _layers(self) -> list:
        raise NotImplementedError

    def __post_init__(self):
        if not isinstance(self.config, SEANetConfig):
            raise EncodecError(f"config must be a SEANetConfig, got {type(self.config).__name__}")
        if self.config.channels != 1:
            raise EncodecError(f"the functional model is mono; config.channels must be 1, got {self.config.channels}")
        layers = self._layers()
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "params", _check_params(self.params, layers, type(self).__name__))

    @property
    def hidden_dim(self) -> int:
        return self.config.n_filters

    @property
    def dim(self) -> int:
        """Embedding dimension ``D``."""
        return self.config.dimension

    @property
    def hop_length(self) -> int:
        """Waveform samples per embedding frame (320)."""
        return self.config.hop_length

    def _ops(self):
        from encodec_np.kernels import get_backend

        return get_backend(self.backend)


class Encoder(_Network):
    """SEANet encoder as a callable: waveform ``[B, 1, S]`` → embeddings ``[B, T, D]``.

    ``T = ceil(S / 320)`` (causal padding completes the last frame) and
    ``D = 16 * hidden_dim``. Computes in float32.
    """

    def _layers(self):
        return encoder_layers(self.config)

    def __call__(self, waveform) -> np.ndarray:
        """Encode ``waveform [B, 1, S]`` (float, finite, non-empty) to ``[B, T, D]`` float32."""
        x = float_array(waveform, "waveform", 3, "[B, 1, S]")
        if x.shape[1] != 1:
            raise EncodecError(f"waveform must be mono [B, 1, S], got {x.shape[1]} channels; "
                               "mix down with x.mean(axis=1, keepdims=True)")
        x = np.ascontiguousarray(x, dtype=np.float32)
        emb = run_layers(self.layers, x, self.params, self._ops())  # [B, D, T]
        return np.ascontiguousarray(emb.transpose(0, 2, 1))


class Decoder(_Network):
    """SEANet decoder as a callable: embeddings ``[B, T, D]`` → waveform ``[B, 1, 320 T]``.

    Transposed convolutions upsample by 8, 5, 4, 2. Computes in float32.
    """

    def _layers(self):
        return decoder_layers(self.config)

    def __call__(self, embeddings) -> np.ndarray:
        """Decode ``embeddings [B, T, D]`` (float, finite, non-empty) to ``[B, 1, 320 T]`` float32."""
        z = float_array(embeddings, "embeddings", 3, "[B, T, D]")
        if z.shape[2] != self.dim:
            raise EncodecError(f"embeddings must have D = {self.dim} (16 * hidden_dim) on the last axis, "
                               f"got shape {z.shape}; the layout is [B, T, D], not [B, D, T]")
        z = np.ascontiguousarray(z.transpose(0, 2, 1), dtype=np.float32)  # layers want [B, D, T]
        return run_layers(self.layers, z, self.params, self._ops())


def _network_rng(seed, stream: int) -> np.random.Generator:
    # Separate streams keep the encoder and decoder weights independent even
    # though build() passes them the same seed.
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise EncodecError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), stream])


def build_encoder(hidden_dim: int = 128, *, seed: int = 0) -> Encoder:
    """Build the EnCodec encoder with freshly initialised weights.

    Conv k7 → [ResBlock, ELU, strided conv] with strides 2, 4, 5, 8 (channels
    ``hidden_dim`` → ``16 * hidden_dim``) → LSTM → ELU → conv k7, as the
    official SEANet encoder (see :func:`seanet_config`).

    Parameters
    ----------
    hidden_dim : int
        Base width (filters of the first convolution), at least 2. The
        default 128 gives D = 2048 and about 140 M parameters (0.6 GB).
    seed : int
        Initialisation seed; the same seed gives the same weights.

    Returns
    -------
    Encoder
        Callable: ``[B, 1, S]`` → ``[B, ceil(S / 320), 16 * hidden_dim]``.
    """
    cfg = seanet_config(hidden_dim)
    return Encoder(cfg, _init_params(encoder_layers(cfg), _network_rng(seed, 0)))


def build_decoder(hidden_dim: int = 128, *, seed: int = 0) -> Decoder:
    """Build the EnCodec decoder with freshly initialised weights.

    Conv k7 → LSTM → [ELU, transposed conv, ResBlock] with strides 8, 5, 4, 2
    → ELU → conv k7 to one channel: the official SEANet decoder, mirroring
    :func:`build_encoder`.

    Parameters
    ----------
    hidden_dim : int
        Base width, at least 2; the input dimension is ``16 * hidden_dim``.
    seed : int
        Initialisation seed (a stream independent of the encoder's).

    Returns
    -------
    Decoder
        Callable: ``[B, T, 16 * hidden_dim]`` → ``[B, 1, 320 T]``.
    """
    cfg = seanet_config(hidden_dim)
    return Decoder(cfg, _init_params(decoder_layers(cfg), _network_rng(seed, 1)))


def build(num_codebooks: int = 8, codebook_size: int = 1024, hidden_dim: int = 128,
          sample_rate: int = 24000, bandwidth: float = 6.0, *, seed: int = 0) -> tuple[Encoder, Decoder]:
    """Build a complete EnCodec model: ``(encoder, decoder)``.

    As in the seed, the RVQ is not part of the result: make its codebooks
    with :func:`init_codebooks` (``build_rvq`` gives their sizes). The
    quantizer arguments are validated and kept for parity with the seed.

    Parameters
    ----------
    num_codebooks : int
        RVQ codebooks (default 8).
    codebook_size : int
        Entries per codebook (default 1024).
    hidden_dim : int
        Base hidden dimension (default 128; embeddings have ``16 * hidden_dim``).
    sample_rate : int
        Audio sample rate in Hz (default 24000), stored on both networks.
    bandwidth : float
        Target bandwidth in kbps (default 6.0), stored on both networks. At
        24 kHz each 1024-entry codebook carries 0.75 kbps (75 frames/s x 10
        bits), so 1.5 / 3 / 6 / 12 kbps use the first 2 / 4 / 8 / 16
        codebooks: pass ``codebooks[:n]`` to :func:`encode` for fewer.
    seed : int
        Initialisation seed; the encoder and decoder draw independent streams.

    Returns
    -------
    encoder : Encoder
        ``[B, 1, S]`` → ``[B, T, D]``, ``T = ceil(S / 320)``, ``D = 16 * hidden_dim``.
    decoder : Decoder
        ``[B, T, D]`` → ``[B, 1, 320 T]``.
    """
    build_rvq(num_codebooks, codebook_size, hidden_dim)  # validates the quantizer sizes
    sample_rate = _positive_int(sample_rate, "sample_rate")
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real) \
            or not math.isfinite(bandwidth) or bandwidth <= 0:
        raise EncodecError(f"bandwidth must be a positive number of kbps, got {bandwidth!r}")
    settings = dict(sample_rate=sample_rate, bandwidth=float(bandwidth))
    return (dataclasses.replace(build_encoder(hidden_dim, seed=seed), **settings),
            dataclasses.replace(build_decoder(hidden_dim, seed=seed), **settings))


# --------------------------------------------------------------------------- residual vector quantization
def init_codebooks(num_codebooks: int, codebook_size: int, embedding_dim: int, key=42) -> np.ndarray:
    """Random RVQ codebooks: standard normal entries scaled by ``1 / sqrt(D)``.

    The scaling gives each entry an expected squared norm of 1 whatever ``D``.

    Parameters
    ----------
    num_codebooks, codebook_size, embedding_dim : int
        ``Q``, ``K`` and ``D``.
    key : int or numpy.random.Generator
        Seed passed to :func:`numpy.random.default_rng` (default 42, as the
        seed's ``Nx.Random.key(42)``; the values differ from Nx's).

    Returns
    -------
    codebooks : ndarray, float32, [Q, K, D]
    """
    shape = (_positive_int(num_codebooks, "num_codebooks"), _positive_int(codebook_size, "codebook_size"),
             _positive_int(embedding_dim, "embedding_dim"))
    try:
        rng = np.random.default_rng(key)
    except (TypeError, ValueError) as exc:
        raise EncodecError(f"key must be a non-negative integer or a numpy Generator, got {key!r}") from exc
    return rng.standard_normal(shape, dtype=np.float32) / np.float32(math.sqrt(shape[2]))


def rvq_quantize(z_e, codebooks) -> tuple[np.ndarray, np.ndarray]:
    """Residual vector quantization of encoder output.

    Codebook ``q`` picks, for every frame, the entry nearest to what codebooks
    ``0 .. q-1`` left unexplained, by the official score
    ``-(|r|^2 - 2 r.e + |e|^2)`` (first index on ties); the residual then
    loses that entry. Codebook 0 is the coarsest.

    Parameters
    ----------
    z_e : ndarray, float, [B, T, D]
    codebooks : ndarray, float, [Q, K, D]

    Returns
    -------
    z_q : ndarray, [B, T, D]
        Sum of the chosen entries of every codebook, in the dtype common to
        ``z_e`` and ``codebooks`` (float32 for float32 inputs).
    indices : ndarray, int64, [B, Q, T]
    """
    z = float_array(z_e, "z_e", 3, "[B, T, D]")
    books = _check_codebooks(codebooks, z.shape[2])
    dtype = np.result_type(z.dtype, books.dtype)
    b, t, d = z.shape
    flat = np.ascontiguousarray(z.reshape(b * t, d), dtype=dtype)
    books = np.ascontiguousarray(books, dtype=dtype)
    codes = ops.rvq_encode(flat, books)  # [Q, B*T], row n = (batch n // T, frame n % T)
    z_q = ops.rvq_decode(codes, books).reshape(b, t, d)
    return z_q, np.ascontiguousarray(codes.reshape(-1, b, t).transpose(1, 0, 2))


def rvq_dequantize(indices, codebooks) -> np.ndarray:
    """Embeddings from RVQ tokens: the ordered sum of the selected codebook entries.

    Parameters
    ----------
    indices : ndarray, int, [B, Q', T]
        Values in ``[0, K)``. ``Q'`` may be smaller than ``Q``: the first
        ``Q'`` codebooks give a coarser (lower-bandwidth) reconstruction.
    codebooks : ndarray, float, [Q, K, D]

    Returns
    -------
    z_q : ndarray, [B, T, D], dtype of ``codebooks``
    """
    books = _check_codebooks(codebooks)
    idx = _check_tokens(indices, books)
    b, q, t = idx.shape
    flat = idx.transpose(1, 0, 2).reshape(q, b * t)
    return ops.rvq_decode(flat, books).reshape(b, t, books.shape[2])


def encode(encoder: Encoder, codebooks, waveform) -> np.ndarray:
    """Encode a waveform to discrete tokens.

    Parameters
    ----------
    encoder : Encoder
        From :func:`build` or :func:`build_encoder` (holds its params).
    codebooks : ndarray, float, [Q, K, D]
    waveform : ndarray, float, [B, 1, S]

    Returns
    -------
    tokens : ndarray, int64, [B, Q, ceil(S / 320)]
    """
    if not isinstance(encoder, Encoder):
        raise EncodecError(f"encoder must be an Encoder from build()/build_encoder(), got {type(encoder).__name__}")
    _check_codebooks(codebooks, encoder.dim)  # fail before the expensive forward pass
    return rvq_quantize(encoder(waveform), codebooks)[1]


def decode(decoder: Decoder, codebooks, tokens) -> np.ndarray:
    """Decode discrete tokens back to a waveform.

    Parameters
    ----------
    decoder : Decoder
        From :func:`build` or :func:`build_decoder`.
    codebooks : ndarray, float, [Q, K, D]
    tokens : ndarray, int, [B, Q', T] with ``Q' <= Q``

    Returns
    -------
    waveform : ndarray, float32, [B, 1, 320 T]
        Whole frames: trim to the original length if needed.
    """
    if not isinstance(decoder, Decoder):
        raise EncodecError(f"decoder must be a Decoder from build()/build_decoder(), got {type(decoder).__name__}")
    _check_codebooks(codebooks, decoder.dim)
    return decoder(rvq_dequantize(tokens, codebooks))


# --------------------------------------------------------------------------- losses
def _pair(a, b, names: tuple[str, str], layout: str, ndim) -> tuple[np.ndarray, np.ndarray]:
    x = float_array(a, names[0], ndim, layout)
    y = float_array(b, names[1], ndim, layout)
    if x.shape != y.shape:
        raise EncodecError(f"{names[0]} and {names[1]} must have the same shape, got {x.shape} and {y.shape}; "
                           f"trim the longer one (e.g. {names[0]}[..., :{names[1]}.shape[-1]])")
    # float64 keeps the reductions accurate and the losses exactly symmetric.
    return x.astype(np.float64), y.astype(np.float64)


def commitment_loss(z_e, z_q) -> float:
    """RVQ commitment loss: the mean squared error ``mean((z_e - z_q)**2)``.

    In training the gradient flows only into ``z_e`` (``z_q`` is held
    constant), pulling encoder outputs towards their codebook entries; here
    only its value is computed.

    Parameters
    ----------
    z_e : ndarray, float, [B, T, D]
        Encoder output.
    z_q : ndarray, float, [B, T, D]
        Quantized output.

    Returns
    -------
    float
    """
    x, y = _pair(z_e, z_q, ("z_e", "z_q"), "[B, T, D]", 3)
    return float(np.mean((x - y) ** 2))


def spectral_loss(reconstruction, target, *, sample_rate: int = 24000) -> float:
    """Multi-scale mel-spectrogram loss of the EnCodec paper.

    Défossez et al., "High Fidelity Neural Audio Compression" (arXiv
    2210.13438), §3.4, frequency-domain loss::

        l_f(x, x̂) = 1 / (|α| · |s|) · Σ_{α_i ∈ α} Σ_{i ∈ e} ‖S_i(x) − S_i(x̂)‖_1 + α_i ‖S_i(x) − S_i(x̂)‖_2

    with ``S_i`` a 64-bin mel spectrogram of a normalized STFT with window
    ``2**i`` and hop ``2**i / 4``, scales ``e = {5, ..., 11}`` and
    ``α_i = 1``. We read the normalisation as a mean over elements per scale
    (``|s|``) and over the seven scales (``|α|``), and the L2 term as the mean
    squared difference (as audiocraft's ``F.mse_loss``)::

        loss = mean_i [ mean|S_i(x) − S_i(x̂)| + α_i · mean (S_i(x) − S_i(x̂))² ]

    Both terms act on linear mel magnitudes, as the formula states
    (audiocraft's implementation instead squares the STFT and takes
    ``log10`` for the L2 term). See :func:`mel_spectrogram` for the
    window, normalisation and padding, :func:`mel_filterbank` for the mel
    scale (HTK, as torchaudio's default).

    The seed simplifies this to a time-domain MSE; this is the paper's loss.

    Parameters
    ----------
    reconstruction, target : ndarray, float, [B, C, S] or [B, S]
        Same shape. Any ``S >= 1`` works: short signals are padded (see
        :func:`mel_spectrogram`). Channels are treated as separate signals.
    sample_rate : int
        Hz, sets the mel scale (default 24000).

    Returns
    -------
    float
        0 for identical inputs, positive otherwise, symmetric.
    """
    sample_rate = _positive_int(sample_rate, "sample_rate")
    x, y = _pair(reconstruction, target, ("reconstruction", "target"), "[B, C, S] or [B, S]", (2, 3))
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    alpha = 1.0
    per_scale = []
    for i in SPECTRAL_SCALES:
        diff = mel_spectrogram(x, sample_rate, 2 ** i) - mel_spectrogram(y, sample_rate, 2 ** i)
        per_scale.append(np.mean(np.abs(diff)) + alpha * np.mean(diff ** 2))
    return float(np.mean(per_scale))


def loss(reconstruction, target, z_e, z_q, commitment_weight: float = 0.25, *,
         sample_rate: int = 24000) -> float:
    """Combined EnCodec loss (the seed's ``loss``), as a value.

    ::

        loss = mean|x̂ − x|  +  spectral_loss(x̂, x)  +  commitment_weight · commitment_loss(z_e, z_q)

    The first term is the paper's time-domain L1 reconstruction loss ``l_t``,
    the second its multi-scale mel loss ``l_f`` (:func:`spectral_loss`), the
    third the RVQ commitment loss. The paper also weights these terms and adds
    adversarial and feature-matching losses from its discriminators; like the
    seed, this combines only the three, unweighted apart from
    ``commitment_weight``.

    Parameters
    ----------
    reconstruction, target : ndarray, float, [B, 1, S] (or [B, C, S], [B, S])
        Same shape; trim the decoder output to the target length first.
    z_e, z_q : ndarray, float, [B, T, D]
        Encoder output and its quantized version.
    commitment_weight : float
        Weight of the commitment loss (default 0.25).
    sample_rate : int
        Hz, for the mel scale of :func:`spectral_loss` (default 24000).

    Returns
    -------
    float
    """
    if isinstance(commitment_weight, bool) or not isinstance(commitment_weight, numbers.Real) \
            or not math.isfinite(commitment_weight):
        raise EncodecError(f"commitment_weight must be a finite number, got {commitment_weight!r}")
    commit = commitment_loss(z_e, z_q)  # cheap: fail fast before the spectral loss
    x, y = _pair(reconstruction, target, ("reconstruction", "target"), "[B, C, S] or [B, S]", (2, 3))
    time_l1 = float(np.mean(np.abs(x - y)))
    return time_l1 + spectral_loss(x, y, sample_rate=sample_rate) + float(commitment_weight) * commit
