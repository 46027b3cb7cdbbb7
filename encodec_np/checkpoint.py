"""Checkpoints without torch: Meta's ``.th``, Hugging Face folders, our safetensors.

All three end up as the same canonical parameter dict (official names, weight
norm folded, codebooks stacked under ``quantizer.codebooks``) plus an
:class:`~encodec_np.config.EncodecConfig`.

Meta's ``.th`` is a zip holding ``<root>/data.pkl`` and ``<root>/data/<key>``
storages. :class:`SafeUnpickler` resolves only the handful of globals a state
dict needs; any other global (``os.system``, ``builtins.eval`` ...) is refused
before it can run.
"""
from __future__ import annotations

import json
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import config as cfgmod
from .config import EncodecConfig, RVQConfig, SEANetConfig
from .errors import CheckpointError
from .quantization import CODEBOOKS
from .seanet import ConvTranspose, decoder_layers

FORMAT_KEY = "encodec_np_config"

# torch storage class name → NumPy dtype
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only its dtype matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not size:
        return storage[storage_offset:storage_offset + 1].reshape(()).copy()
    itemsize = storage.dtype.itemsize
    needed = storage_offset + 1 + sum((s - 1) * st for s, st in zip(size, stride))
    if min(size) > 0 and needed > storage.size:
        raise CheckpointError(f"tensor of size {tuple(size)} overruns its storage of {storage.size} items")
    return np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)).copy()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class SafeUnpickler(pickle.Unpickler):
    """Unpickler for torch state dicts that resolves an allow-list of globals only."""

    ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(f"refusing to load {module}.{name} from the checkpoint: only tensors "
                              "and ordered dicts are allowed (the file may be malicious or not a state dict)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent id in checkpoint: {pid!r:.80}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], pid[4]
        if not isinstance(storage_type, _StorageType) or storage_type.dtype is None:
            raise CheckpointError(f"unsupported tensor storage type {getattr(storage_type, 'name', storage_type)!r}")
        return self._storages(key, storage_type.dtype, numel)


def read_torch_state(path) -> dict[str, np.ndarray]:
    """Read a PyTorch zip checkpoint (``torch.save`` of a state dict) into NumPy arrays.

    Never executes code from the file: see :class:`SafeUnpickler`.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path} is not a PyTorch zip checkpoint ({exc}); "
                              "legacy (pre-1.6) torch files are not supported: re-save with torch.save") from exc
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise CheckpointError(f"{path}: expected one data.pkl in the archive, found {len(pkl)}")
        root = pkl[0][:-len("data.pkl")]
        byteorder = "little"
        if root + "byteorder" in names:
            byteorder = archive.read(root + "byteorder").decode().strip()
        cache: dict = {}

        def storage(key, dtype, numel):
            if key not in cache:
                entry = f"{root}data/{key}"
                if entry not in names:
                    raise CheckpointError(f"{path}: storage {key} is missing from the archive (truncated file?)")
                raw = archive.read(entry)
                dt = np.dtype(dtype).newbyteorder("<" if byteorder == "little" else ">")
                if len(raw) < numel * dt.itemsize:
                    raise CheckpointError(f"{path}: storage {key} holds {len(raw)} bytes, "
                                          f"needs {numel * dt.itemsize} (truncated file?)")
                cache[key] = np.frombuffer(raw, dtype=dt, count=numel).astype(dtype)
            return cache[key]

        import io
        try:
            state = SafeUnpickler(io.BytesIO(archive.read(pkl[0])), storage).load()
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{path}: corrupt checkpoint pickle ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, dict) and "best_state" in state and isinstance(state["best_state"], dict):
        state = state["best_state"]  # training checkpoints wrap the weights
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a flat state dict of tensors")
    return dict(state)


# --------------------------------------------------------------------------- weight norm & names
def fold_weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``w = g * v / ||v||`` with the norm over every axis but 0 (PyTorch ``weight_norm``, dim=0)."""
    v64 = v.astype(np.float64)
    norm = np.sqrt((v64 ** 2).sum(axis=tuple(range(1, v.ndim)), keepdims=True))
    return g.astype(np.float64) * v64 / norm  # kept in float64: the model casts to its dtype


_WN_SPELLINGS = ((".parametrizations.weight.original0", ".weight_g"),
                 (".parametrizations.weight.original1", ".weight_v"))
_UNUSED = re.compile(r"quantizer\.vq\.layers\.\d+\._codebook\.(inited|cluster_size|embed_avg)$")


def hf_to_official(key: str, convtr_prefixes: set[str]) -> str:
    """Rename a Hugging Face ``EncodecModel`` key to the official ``encodec`` name."""
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
    """Official-named state → canonical params: fold weight norm, stack codebooks, drop buffers."""
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


def config_from_hf(hf: dict) -> EncodecConfig:
    """Build a config from a Hugging Face ``EncodecConfig`` ``config.json``."""
    try:
        sr = int(hf["sampling_rate"])
        seanet = SEANetConfig(
            channels=int(hf.get("audio_channels", 1)), dimension=int(hf.get("hidden_size", 128)),
            n_filters=int(hf.get("num_filters", 32)), n_residual_layers=int(hf.get("num_residual_layers", 1)),
            ratios=tuple(int(r) for r in hf.get("upsampling_ratios", (8, 5, 4, 2))),
            norm=hf.get("norm_type", "weight_norm"), kernel_size=int(hf.get("kernel_size", 7)),
            last_kernel_size=int(hf.get("last_kernel_size", 7)),
            residual_kernel_size=int(hf.get("residual_kernel_size", 3)),
            dilation_base=int(hf.get("dilation_growth_rate", 2)), causal=bool(hf.get("use_causal_conv", True)),
            pad_mode=hf.get("pad_mode", "reflect"), true_skip=not hf.get("use_conv_shortcut", True),
            compress=int(hf.get("compress", 2)), lstm=int(hf.get("num_lstm_layers", 2)),
            trim_right_ratio=float(hf.get("trim_right_ratio", 1.0)))
        bandwidths = tuple(float(b) for b in hf["target_bandwidths"])
        frame_rate = -(-sr // seanet.hop_length)
        n_q = int(1000 * bandwidths[-1] // (frame_rate * 10))
        quantizer = RVQConfig(dimension=int(hf.get("codebook_dim") or seanet.dimension), n_q=n_q,
                              bins=int(hf.get("codebook_size", 1024)))
        chunk = hf.get("chunk_length_s")
        name = {24000: "encodec_24khz", 48000: "encodec_48khz", 32000: "encodec_32khz"}.get(sr, "hf_encodec")
        return EncodecConfig(name=name, sample_rate=sr, seanet=seanet, quantizer=quantizer,
                             target_bandwidths=bandwidths, normalize=bool(hf.get("normalize", False)),
                             segment=float(chunk) if chunk else None, overlap=float(hf.get("overlap") or 0.01))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"invalid Hugging Face config.json: {exc}") from exc


def read_hf(folder) -> tuple[EncodecConfig, dict[str, np.ndarray]]:
    """Read a Hugging Face ``facebook/encodec_*`` folder (``config.json`` + ``model.safetensors``)."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    try:
        config = config_from_hf(json.loads((folder / "config.json").read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder}/config.json is missing or not JSON ({exc})") from exc
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
    """Read our single-file format: canonical params + the config JSON in the metadata."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from exc
    params = _load_safetensors(path, load_file)
    if FORMAT_KEY in meta:
        try:
            return EncodecConfig.from_dict(json.loads(meta[FORMAT_KEY])), params
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: corrupt config metadata ({exc})") from exc
    # A bare official-named safetensors file (e.g. converted by other tools).
    canon = canonicalize(params)
    return infer_official_config(canon), canon


# --------------------------------------------------------------------------- public entry points
def read_checkpoint(path, config: EncodecConfig | None = None) -> tuple[EncodecConfig, dict[str, np.ndarray]]:
    """Read any supported checkpoint into ``(config, canonical params)``.

    ``path`` is a Meta ``.th`` file, a Hugging Face folder, or a ``.safetensors``
    file (ours or official-named). ``config`` overrides the inferred one.
    """
    path = Path(path)
    if path.is_dir():
        cfg, params = read_hf(path)
    elif not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    elif path.suffix == ".safetensors":
        cfg, params = read_ours(path)
    else:
        params = canonicalize(read_torch_state(path))
        cfg = config or infer_official_config(params)
    return (config or cfg), params


def load_model(path_or_name=None, *, backend: str = "auto", dtype="float32",
               config: EncodecConfig | None = None, cache_dir=None, threads: int | None = None):
    """Load an :class:`~encodec_np.model.EncodecModel`.

    Parameters
    ----------
    path_or_name : str or Path, optional
        A checkpoint path (Meta ``.th``, Hugging Face folder, ``.safetensors``)
        or a pretrained name (``"encodec_24khz"``, ``"encodec_48khz"``),
        downloaded and cached on first use. ``None`` (or
        ``"encodec_np_small_24khz"``): the small model shipped in the
        package, trained for this project (no download).
    backend : str
        ``"auto"``, ``"numpy"`` or another available backend.
    dtype : ``"float32"`` or ``"float64"``.
    config : EncodecConfig, optional
        Overrides the configuration inferred from the file.
    threads : int, optional
        Threads per call (default: all cores); see :class:`~encodec_np.model.EncodecModel`.
    """
    from .model import EncodecModel

    if path_or_name is None:
        from .hub import EMBEDDED
        path_or_name = EMBEDDED
    if isinstance(path_or_name, str) and path_or_name in cfgmod.PRESETS and not Path(path_or_name).exists():
        from .hub import pretrained_path
        path_or_name = pretrained_path(path_or_name, cache_dir=cache_dir)
    cfg, params = read_checkpoint(path_or_name, config)
    return EncodecModel(cfg, params, backend=backend, dtype=dtype, threads=threads)


def save_model(model, path, dtype=None) -> None:
    """Write ``model`` as one safetensors file with its config in the metadata.

    ``dtype`` is the storage type (default: the model's); ``"float16"``
    halves the file, and loading casts back to the model's dtype. A tensor
    whose values do not fit the storage type (beyond float16's ±65504) keeps
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
