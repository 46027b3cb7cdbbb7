"""Checkpoints without torch: Meta's ``.th``, Hugging Face folders, our safetensors.

All three end up as the same canonical parameter dict (official names, weight
norm folded, codebooks stacked under ``quantizer.codebooks``) plus an
:class:`~encodec_np.config.EncodecConfig`.

Meta's ``.th`` files are read by :mod:`encodec_np.io.torchfile` (no code from
the file ever runs, no size in it is trusted). Every reader ends in
:func:`check_weights` (floating dtypes, finite values), and every config,
whatever its source, passes the range checks of :mod:`encodec_np.config`.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from .. import config as cfgmod
from ..config import EncodecConfig, RVQConfig, SEANetConfig
from ..errors import CheckpointError, EncodecError
from ..quantization import CODEBOOKS
from ..seanet import ConvTranspose, decoder_layers
from ..validate import check_weights
from . import hub
from .torchfile import SafeUnpickler, read_torch_state  # noqa: F401  (public here since 0.1)

FORMAT_KEY = "encodec_np_config"
#: Every name :func:`load_model` and ``EncodecModel.from_pretrained`` take besides a path.
PRETRAINED_NAMES = ("encodec_np_small_24khz", "encodec_24khz", "encodec_48khz",
                    "facebook/encodec_24khz", "facebook/encodec_32khz", "facebook/encodec_48khz")


# --------------------------------------------------------------------------- weight norm & names
def fold_weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``w = g * v / ||v||`` with the norm over every axis but 0 (PyTorch ``weight_norm``, dim=0).

    Parameters
    ----------
    g : [N, 1, ..., 1]
        ``weight_g``.
    v : [N, ...]
        ``weight_v``.

    Returns
    -------
    float64 ndarray of ``v``'s shape
    """
    v64 = v.astype(np.float64)
    norm = np.sqrt((v64 ** 2).sum(axis=tuple(range(1, v.ndim)), keepdims=True))
    return g.astype(np.float64) * v64 / norm  # kept in float64: the model casts to its dtype


_WN_SPELLINGS = ((".parametrizations.weight.original0", ".weight_g"),
                 (".parametrizations.weight.original1", ".weight_v"))
_UNUSED = re.compile(r"quantizer\.vq\.layers\.\d+\._codebook\.(inited|cluster_size|embed_avg)$")


def hf_to_official(key: str, convtr_prefixes: set[str]) -> str:
    """Rename a Hugging Face ``EncodecModel`` key to the official ``encodec`` name.

    Parameters
    ----------
    key : str
        A tensor name in ``model.safetensors``; names it does not know come back unchanged.
    convtr_prefixes : set of str
        The official prefixes (``decoder.model.N``) of the transposed convolutions.
    """
    for hf, official in _WN_SPELLINGS:
        key = key.replace(hf, official)
    m = re.match(r"quantizer\.layers\.(\d+)\.codebook\.(.+)$", key)
    if m:
        return f"quantizer.vq.layers.{m.group(1)}._codebook.{m.group(2)}"
    m = re.match(r"(encoder|decoder)\.layers\.(\d+)\.((?:block\.\d+\.|shortcut\.)?)(conv|norm|lstm)\.(.+)$", key)
    if not m:
        return key
    half, idx, sub, kind, rest = m.groups()
    prefix = f"{half}.model.{idx}"
    if kind == "lstm":
        return f"{prefix}.lstm.{rest}"
    wrapper = "convtr" if (not sub and prefix in convtr_prefixes) else "conv"
    inner = wrapper if kind == "conv" else "norm"
    return f"{prefix}.{sub}{wrapper}.{inner}.{rest}"


def canonicalize(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Official-named state → canonical params: fold weight norm, stack codebooks, drop buffers.

    Parameters
    ----------
    state : dict of str → ndarray
        An official ``encodec`` state dict (``weight_g``/``weight_v`` pairs,
        ``quantizer.vq.layers.{i}._codebook.embed``).

    Returns
    -------
    dict of str → ndarray
        Named as :func:`~encodec_np.validate.expected_param_shapes` names them.

    Raises
    ------
    CheckpointError
        A weight-norm half without the other, non-finite weights, or codebooks
        that are not numbered ``0..n-1`` or differ in shape.
    """
    check_weights({k: v for k, v in state.items() if not _UNUSED.search(k)})
    params, codebooks = {}, {}
    for key, value in state.items():
        if _UNUSED.search(key):
            continue
        m = re.match(r"quantizer\.vq\.layers\.(\d+)\._codebook\.embed$", key)
        if m:
            codebooks[int(m.group(1))] = value
        elif key.endswith(".weight_g"):
            v_key = key[:-len("_g")] + "_v"
            if v_key not in state:
                raise CheckpointError(f"weight-norm tensor {key} has no matching {v_key}")
            with np.errstate(divide="ignore", invalid="ignore"):
                folded = fold_weight_norm(value, state[v_key])
            if not np.isfinite(folded).all():
                raise CheckpointError(f"{key[:-len('_g')]}: weight norm gives non-finite weights "
                                      "(weight_v has a zero row, or the file holds NaN/Inf)")
            params[key[:-len("_g")]] = folded
        elif key.endswith(".weight_v"):
            if key[:-len("_v")] + "_g" not in state:
                raise CheckpointError(f"weight-norm tensor {key} has no matching weight_g")
        else:
            params[key] = value
    if codebooks:
        if sorted(codebooks) != list(range(len(codebooks))):
            raise CheckpointError(f"codebook layers are not numbered 0..n-1: {sorted(codebooks)}")
        shapes = {v.shape for v in codebooks.values()}
        if len(shapes) != 1:
            raise CheckpointError(f"codebooks have different shapes: {sorted(shapes)}")
        params[CODEBOOKS] = np.stack([codebooks[i] for i in range(len(codebooks))])
    return params


def infer_official_config(params: dict[str, np.ndarray]) -> EncodecConfig:
    """Recognise Meta's 24 kHz or 48 kHz structure from canonical params.

    The causal/non-causal choice is not visible in the weights; Meta's two
    published models tie it to the norm (weight norm: causal 24 kHz mono;
    GroupNorm: non-causal 48 kHz stereo), as their constructors do.

    Parameters
    ----------
    params : dict of str → ndarray
        Canonical params (:func:`canonicalize`).

    Raises
    ------
    CheckpointError
        Neither of Meta's structures.
    """
    first = params.get("encoder.model.0.conv.conv.weight")
    books = params.get(CODEBOOKS)
    if first is None or books is None:
        raise CheckpointError("not an EnCodec checkpoint: encoder.model.0 or the quantizer codebooks are missing")
    grouped = "encoder.model.0.conv.norm.weight" in params
    channels, n_q = first.shape[1], books.shape[0]
    for preset in (cfgmod.encodec_24khz(), cfgmod.encodec_48khz()):
        if (preset.channels, preset.quantizer.n_q, preset.seanet.norm == "time_group_norm") == (channels, n_q, grouped):
            return preset
    raise CheckpointError(f"unrecognised official structure ({channels} channel(s), {n_q} codebooks, "
                          f"{'group' if grouped else 'weight'} norm); pass config= to load_model")


def to_official_state(params: dict[str, np.ndarray], config: EncodecConfig) -> dict[str, np.ndarray]:
    """Canonical params → an official ``encodec`` state dict (inverse of :func:`canonicalize`).

    Weight-norm models get ``weight_v = w`` and ``weight_g = ||w||`` (over all
    axes but 0), which fold back to ``w``; codebooks are split per layer with
    the buffers the official ``load_state_dict`` expects.

    Parameters
    ----------
    params : dict of str → ndarray
        Canonical params.
    config : EncodecConfig
        Whether the model uses weight norm (``config.seanet.norm``).
    """
    state = {}
    for key, value in params.items():
        if key == CODEBOOKS:
            for i, book in enumerate(value):
                p = f"quantizer.vq.layers.{i}._codebook."
                state.update({p + "inited": np.ones(1, np.float32), p + "cluster_size": np.zeros(len(book), np.float32),
                              p + "embed": book, p + "embed_avg": book.copy()})
        elif config.seanet.norm == "weight_norm" and key.endswith(("conv.conv.weight", "convtr.convtr.weight")):
            norm = np.sqrt((value.astype(np.float64) ** 2).sum(axis=tuple(range(1, value.ndim)), keepdims=True))
            state[key + "_g"] = norm.astype(value.dtype)
            state[key + "_v"] = value
        else:
            state[key] = value
    return state


#: config.json files larger than this are refused (Meta's: ~2 kB).
MAX_CONFIG_BYTES = 1 << 20


def _hf_value(hf: dict, key: str, default, kind):
    """``hf[key]`` (or ``default``) checked to be a JSON value of ``kind`` (int, float, bool, str, list)."""
    value = hf.get(key, default)
    if value is None and default is None:
        return None
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is int:  # JSON writers sometimes spell 24000 as 24000.0
        ok = (isinstance(value, int) and not isinstance(value, bool)) or \
             (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise CheckpointError(f"invalid Hugging Face config.json: {key} must be {kind.__name__}, "
                              f"got {value!r:.60}")
    return int(value) if kind is int else value


def _hf_numbers(hf: dict, key: str, default, kind, most: int) -> tuple:
    values = _hf_value(hf, key, default, list) if key in hf else list(default)
    if len(values) > most:
        raise CheckpointError(f"invalid Hugging Face config.json: {key} has {len(values)} entries "
                              f"(at most {most})")
    return tuple(_hf_value({key: v}, key, 0, kind) for v in values)


def config_from_hf(hf: dict) -> EncodecConfig:
    """Build a config from a Hugging Face ``EncodecConfig`` ``config.json``.

    Every field is type-checked here and range-checked by the config classes
    before anything is sized from it. The number of codebooks follows from
    the largest bandwidth with ``log2(codebook_size)`` bits per code (11 for
    MusicGen's 2048-entry codebooks).

    Parameters
    ----------
    hf : dict
        The parsed ``config.json``.

    Raises
    ------
    CheckpointError
        A field is missing, of the wrong type or out of range.
    """
    if not isinstance(hf, dict):
        raise CheckpointError(f"invalid Hugging Face config.json: expected an object, got {type(hf).__name__}")
    try:
        sr = _hf_value(hf, "sampling_rate", 0, int) if "sampling_rate" in hf else None
        if sr is None:
            raise CheckpointError("invalid Hugging Face config.json: sampling_rate is missing")
        if not cfgmod.MIN_SAMPLE_RATE <= sr <= cfgmod.MAX_SAMPLE_RATE:
            raise CheckpointError(f"invalid Hugging Face config.json: sampling_rate {sr} is outside "
                                  f"{cfgmod.MIN_SAMPLE_RATE}..{cfgmod.MAX_SAMPLE_RATE} Hz")
        seanet = SEANetConfig(
            channels=_hf_value(hf, "audio_channels", 1, int), dimension=_hf_value(hf, "hidden_size", 128, int),
            n_filters=_hf_value(hf, "num_filters", 32, int),
            n_residual_layers=_hf_value(hf, "num_residual_layers", 1, int),
            ratios=_hf_numbers(hf, "upsampling_ratios", (8, 5, 4, 2), int, 16),
            norm=_hf_value(hf, "norm_type", "weight_norm", str), kernel_size=_hf_value(hf, "kernel_size", 7, int),
            last_kernel_size=_hf_value(hf, "last_kernel_size", 7, int),
            residual_kernel_size=_hf_value(hf, "residual_kernel_size", 3, int),
            dilation_base=_hf_value(hf, "dilation_growth_rate", 2, int),
            causal=_hf_value(hf, "use_causal_conv", True, bool),
            pad_mode=_hf_value(hf, "pad_mode", "reflect", str),
            true_skip=not _hf_value(hf, "use_conv_shortcut", True, bool),
            compress=_hf_value(hf, "compress", 2, int), lstm=_hf_value(hf, "num_lstm_layers", 2, int),
            trim_right_ratio=float(_hf_value(hf, "trim_right_ratio", 1.0, float)))
        if "target_bandwidths" not in hf:
            raise CheckpointError("invalid Hugging Face config.json: target_bandwidths is missing")
        bandwidths = tuple(float(b) for b in _hf_numbers(hf, "target_bandwidths", (), float, 64))
        if not bandwidths:
            raise CheckpointError("invalid Hugging Face config.json: target_bandwidths is empty")
        if not all(0 < b <= cfgmod.MAX_BANDWIDTH for b in bandwidths):  # before the codebook count is sized
            raise CheckpointError(f"invalid Hugging Face config.json: target_bandwidths {bandwidths!r:.80} must lie "
                                  f"in (0, {cfgmod.MAX_BANDWIDTH:g}] kbps")
        bins = _hf_value(hf, "codebook_size", 1024, int)
        if not 2 <= bins <= 1 << 16:
            raise CheckpointError(f"invalid Hugging Face config.json: codebook_size {bins} is outside 2..65536")
        frame_rate = -(-sr // seanet.hop_length)
        bits = math.ceil(math.log2(bins))
        n_q = int(1000 * bandwidths[-1] // (frame_rate * bits))
        quantizer = RVQConfig(dimension=_hf_value(hf, "codebook_dim", None, int) or seanet.dimension,
                              n_q=n_q, bins=bins)
        chunk = _hf_value(hf, "chunk_length_s", None, float)
        overlap = _hf_value(hf, "overlap", None, float)
        name = {24000: "encodec_24khz", 48000: "encodec_48khz", 32000: "encodec_32khz"}.get(sr, "hf_encodec")
        return EncodecConfig(name=name, sample_rate=sr, seanet=seanet, quantizer=quantizer,
                             target_bandwidths=bandwidths, normalize=_hf_value(hf, "normalize", False, bool),
                             segment=float(chunk) if chunk else None,
                             overlap=float(overlap) if overlap else 0.01)
    except CheckpointError:
        raise
    except EncodecError as exc:
        raise CheckpointError(f"invalid Hugging Face config.json: {exc}") from exc


def _read_json(path: Path, what: str):
    """A small JSON file, parsed, or :class:`CheckpointError` (size-capped, UTF-8, depth-safe)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CheckpointError(f"{path} is missing or unreadable ({exc})") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path}: {what} is larger than {MAX_CONFIG_BYTES} bytes; it is not a config")
    return _parse_json(raw, f"{path}: {what}")


def _parse_json(raw, what: str):
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{what} is not UTF-8 text ({exc})") from exc
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{what} is not valid JSON ({type(exc).__name__}: {exc!s:.100})") from exc


def read_hf(folder) -> tuple[EncodecConfig, dict[str, np.ndarray]]:
    """Read a Hugging Face ``facebook/encodec_*`` folder (``config.json`` + ``model.safetensors``).

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    (EncodecConfig, dict of str → ndarray)
        The config from ``config.json`` and the canonical params.
    """
    from safetensors.numpy import load_file

    folder = Path(folder)
    hf = _read_json(folder / "config.json", "config.json")
    try:
        config = config_from_hf(hf)
    except CheckpointError as exc:
        raise CheckpointError(f"{folder}: {exc}") from None
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise CheckpointError(f"{weights} is missing (only safetensors weights are read)")
    convtr = {layer.name for layer in decoder_layers(config.seanet) if isinstance(layer, ConvTranspose)}
    state = {hf_to_official(k, convtr): v for k, v in _load_safetensors(weights, load_file).items()}
    return config, canonicalize(state)


def _load_safetensors(path, loader):
    try:
        return loader(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc


def read_ours(path) -> tuple[EncodecConfig, dict[str, np.ndarray]]:
    """Read our single-file format: canonical params + the config JSON in the metadata.

    A ``.safetensors`` file without that metadata is read as official-named
    weights of one of Meta's structures (:func:`infer_official_config`).

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` file.

    Returns
    -------
    (EncodecConfig, dict of str → ndarray)
    """
    from safetensors import safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    params = _load_safetensors(path, load_file)
    if FORMAT_KEY in meta:
        config = _parse_json(meta[FORMAT_KEY], f"{path}: the config metadata")
        try:
            config = EncodecConfig.from_dict(config) if isinstance(config, dict) else None
        except EncodecError as exc:
            raise CheckpointError(f"{path}: corrupt config metadata ({exc})") from None
        if config is None:
            raise CheckpointError(f"{path}: corrupt config metadata (not a JSON object)")
        check_weights(params)
        return config, params
    # A bare official-named safetensors file (e.g. converted by other tools).
    canon = canonicalize(params)
    return infer_official_config(canon), canon


# --------------------------------------------------------------------------- public entry points
def read_checkpoint(path, config: EncodecConfig | None = None) -> tuple[EncodecConfig, dict[str, np.ndarray]]:
    """Read any supported checkpoint into ``(config, canonical params)``.

    Parameters
    ----------
    path : str or Path
        A Meta ``.th`` file, a Hugging Face folder, or a ``.safetensors`` file
        (ours or official-named).
    config : EncodecConfig, optional
        Overrides the config read or inferred from the file.

    Returns
    -------
    (EncodecConfig, dict of str → ndarray)
        The canonical params are not checked against the config here
        (:class:`~encodec_np.model.EncodecModel` does).
    """
    path = Path(path)
    if path.is_dir():
        cfg, params = read_hf(path)
    elif not path.exists():
        names = "" if path.suffix or len(path.parts) > 1 else f" (the model names are {', '.join(PRETRAINED_NAMES)})"
        raise CheckpointError(f"checkpoint {path} does not exist{names}")
    elif path.suffix == ".safetensors":
        cfg, params = read_ours(path)
    else:
        params = canonicalize(read_torch_state(path))
        cfg = config or infer_official_config(params)
    return (config or cfg), params


def resolve_checkpoint(path_or_name=None, cache_dir=None) -> Path:
    """The local checkpoint for a model name or path (names: :data:`PRETRAINED_NAMES`, see :func:`load_model`).

    Parameters
    ----------
    path_or_name : str or Path, optional
        ``None``: the shipped model.
    cache_dir : str or Path, optional
        Where Meta's files are cached (see :func:`encodec_np.io.hub.resolve_cache_dir`).

    Returns
    -------
    Path
        A file or a Hugging Face folder; Meta's files are downloaded on first use.
    """
    if path_or_name is None:
        path_or_name = hub.EMBEDDED
    if isinstance(path_or_name, str) and path_or_name in cfgmod.PRESETS and not Path(path_or_name).exists():
        return hub.pretrained_path(path_or_name, cache_dir=cache_dir)
    if hub.is_hf_repo_id(path_or_name):
        return hub.hf_snapshot(path_or_name)
    return Path(path_or_name)


def save_model(model, path, dtype=None) -> None:
    """Write ``model`` as one safetensors file with its config in the metadata.

    Parameters
    ----------
    model : EncodecModel
    path : str or Path
        The file to write, replaced as a whole (written as ``path.tmp``, then renamed).
    dtype : str, optional
        The storage type (default: the model's); ``"float16"`` halves the
        file, and loading casts back to the model's dtype. A tensor whose
        values do not fit the storage type (beyond float16's ±65504) keeps
        the model's dtype rather than turning into ``inf``.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    tensors = {}
    for key, value in model.params.items():
        with np.errstate(over="ignore"):  # overflow is detected below, not warned about
            stored = np.asarray(value, dtype=dtype or value.dtype)
        if not np.array_equal(np.isfinite(stored), np.isfinite(value)):
            stored = value
        tensors[key] = np.ascontiguousarray(stored)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={FORMAT_KEY: json.dumps(model.config.to_dict())})
    tmp.replace(path)
