"""PyTorch's zip checkpoints (``torch.save``) read without torch, and without trusting them.

A ``.th`` file is a zip archive holding ``<root>/data.pkl`` (a pickle of the
state dict) and one ``<root>/data/<key>`` entry per tensor storage. Every
number in it is checked before it is used:

* the zip: no encrypted entries, only stored or deflated ones, each read
  incrementally up to a cap (``data.pkl``: :data:`MAX_PICKLE_BYTES`; a
  storage: exactly the bytes its declared element count needs, and its
  central-directory size must agree), so a compression bomb costs nothing;
* the pickle: scanned opcode by opcode (:func:`scan_pickle`) before it is
  unpickled: memo indices, nesting depth and stack size are bounded, so a
  small file can never ask for a big allocation; then :class:`SafeUnpickler`
  resolves an allow-list of globals only (``os.system`` & co are refused
  before they can run);
* each tensor (:func:`_rebuild_tensor_v2`): non-negative offset and strides,
  a zero stride only on a size-1 axis, its whole extent inside its storage,
  before any strided view is taken.

Whatever goes wrong surfaces as :class:`~encodec_np.errors.CheckpointError`.
"""
from __future__ import annotations

import io
import math
import pickle
import pickletools
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

#: ``data.pkl`` larger than this is refused (Meta's 48 kHz model: ~30 kB).
MAX_PICKLE_BYTES = 16 << 20
#: All storages of one file together (Meta's largest checkpoint: ~90 MB).
MAX_TENSOR_BYTES = 4 << 30
#: Nesting (open marks) and stack depth of the pickle; a state dict needs < 10 and < 2,100.
MAX_PICKLE_MARKS = 64
MAX_PICKLE_STACK = 100_000
MAX_TENSOR_DIMS = 16
_READ_CHUNK = 1 << 20

# torch storage class name → NumPy dtype (None: known but not readable here)
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": None, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` & co: only its dtype matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """One storage's elements, read from the archive (a 1-D array)."""

    def __init__(self, array: np.ndarray):
        self.array = array


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2``, checked: a copy of the tensor's elements ``[*size]``."""
    if not isinstance(storage, _Storage):
        raise CheckpointError("corrupt checkpoint: a tensor's storage is not a storage record")
    data = storage.array
    if not isinstance(size, tuple) or not isinstance(stride, tuple) \
            or not all(_is_int(v) for v in size + stride) or not _is_int(storage_offset):
        raise CheckpointError("corrupt checkpoint: tensor size, stride and offset must be integers")
    if len(size) != len(stride) or len(size) > MAX_TENSOR_DIMS:
        raise CheckpointError(f"corrupt checkpoint: a tensor has size {size!r:.80} and stride {stride!r:.80}")
    if storage_offset < 0 or any(v < 0 for v in size + stride):
        raise CheckpointError(f"corrupt checkpoint: negative tensor offset or stride "
                              f"(offset {storage_offset}, stride {stride!r:.80})")
    if any(st == 0 and s > 1 for s, st in zip(size, stride)):
        raise CheckpointError(f"corrupt checkpoint: a tensor of size {size!r:.80} repeats elements "
                              f"(stride 0 on an axis longer than 1); state dicts never do")
    count = math.prod(size)
    if count == 0:
        return np.zeros(size, data.dtype)
    last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
    if count > data.size or last >= data.size:
        raise CheckpointError(f"corrupt checkpoint: a tensor of size {size!r:.80} (offset {storage_offset}, "
                              f"stride {stride!r:.80}) overruns its storage of {data.size} elements")
    view = np.lib.stride_tricks.as_strided(data[storage_offset:], shape=size,
                                           strides=tuple(st * data.itemsize for st in stride))
    return view.copy()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class SafeUnpickler(pickle.Unpickler):
    """Unpickler for torch state dicts that resolves an allow-list of globals only.

    ``storages(key, dtype, numel)`` returns the storage for a persistent id.
    Run it only on bytes that passed :func:`scan_pickle`.
    """

    ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, storages):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        """The allowed global ``module.name``; anything else raises :class:`CheckpointError`.

        Parameters
        ----------
        module, name : str
            As the pickle's ``GLOBAL`` / ``STACK_GLOBAL`` opcode names them.
        """
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(f"refusing to load {module!s:.80}.{name!s:.80} from the checkpoint: only tensors "
                              "and ordered dicts are allowed (the file may be malicious or not a state dict)")

    def persistent_load(self, pid):
        """The storage a tensor's persistent id names, from ``storages``.

        Parameters
        ----------
        pid : tuple
            ``("storage", storage type, key, location, numel)``; anything else
            raises :class:`CheckpointError`.
        """
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError("corrupt checkpoint: unsupported persistent id (not a tensor storage)")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType) or storage_type.dtype is None:
            raise CheckpointError(f"unsupported tensor storage type {getattr(storage_type, 'name', '?')!s:.40}")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise CheckpointError("corrupt checkpoint: a storage record has a bad key or element count")
        return self._storages(key, np.dtype(storage_type.dtype), numel)


def scan_pickle(data: bytes) -> None:
    """Check a pickle's opcodes before it is unpickled; raise :class:`CheckpointError` if unsafe.

    The C unpickler sizes its memo from the largest index it sees, so one
    11-byte ``LONG_BINPUT 2**26`` costs 1 GB: memo indices must be below the
    number of values memoised so far plus one. Marks (nesting) and the stack
    are bounded too, which also keeps the result shallow enough for ``repr``.
    Lengths of strings and bytes are read against the bytes present.

    Parameters
    ----------
    data : bytes
        The pickle (``data.pkl`` of the checkpoint's zip).
    """
    marks, stack, memo = [], 0, 0
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in _MEMO_PUTS or op.name == "MEMOIZE":
                index = memo if op.name == "MEMOIZE" else arg
                if not _is_int(index) or not 0 <= index <= memo:
                    raise CheckpointError(f"corrupt checkpoint pickle: memo index {index!r:.40} after "
                                          f"{memo} memoised values (a hostile file asks for a huge memo)")
                memo = max(memo, index + 1)
            before, after = op.stack_before, op.stack_after
            if op.name == "MARK":
                marks.append(stack)
                if len(marks) > MAX_PICKLE_MARKS:
                    raise CheckpointError(f"corrupt checkpoint pickle: nested deeper than {MAX_PICKLE_MARKS}")
                continue
            if pickletools.markobject in before:
                if not marks:
                    raise CheckpointError("corrupt checkpoint pickle: an opcode pops a mark that is not there")
                stack = marks.pop() - before.index(pickletools.markobject)
            else:
                stack -= len(before)
            stack += len(after)
            if stack < 0 or stack > MAX_PICKLE_STACK:
                raise CheckpointError(f"corrupt checkpoint pickle: stack depth {stack} at {op.name}")
    except CheckpointError:
        raise
    except Exception as exc:  # pickletools raises ValueError for bad opcodes and short data
        raise CheckpointError(f"corrupt checkpoint pickle ({type(exc).__name__}: {exc})") from exc


def _entry(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{name} is encrypted; checkpoints are plain zip archives")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(f"{name} uses zip compression method {info.compress_type}; "
                              "only stored and deflated entries are read")
    return info


def _read_entry(archive: zipfile.ZipFile, name: str, cap: int, what: str) -> bytes:
    """All of entry ``name``, read in chunks; more than ``cap`` bytes is an error."""
    info = _entry(archive, name)
    if info.file_size > cap:
        raise CheckpointError(f"{what} ({name}) claims {info.file_size} bytes, more than the {cap} it may hold")
    parts, got = [], 0
    with archive.open(info) as f:
        while True:
            chunk = f.read(min(_READ_CHUNK, cap + 1 - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
            if got > cap:
                raise CheckpointError(f"{what} ({name}) holds more than the {cap} bytes it may hold")
    return b"".join(parts)


def _load(archive: zipfile.ZipFile):
    """The unpickled state of an open archive (errors without the path: the caller adds it)."""
    names = archive.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise CheckpointError(f"expected one data.pkl in the archive, found {len(pkl)}")
    root = pkl[0][:-len("data.pkl")]
    order = "<"
    if root + "byteorder" in names:
        raw = _read_entry(archive, root + "byteorder", 16, "the byte order record").strip()
        if raw not in (b"little", b"big"):
            raise CheckpointError(f"the byte order record is {raw[:16]!r}, not b'little' or b'big'")
        order = "<" if raw == b"little" else ">"
    cache: dict = {}
    budget = [MAX_TENSOR_BYTES]

    def storage(key, dtype, numel):
        if key in cache:
            stored = cache[key]
            if stored.array.dtype != dtype or stored.array.size != numel:
                raise CheckpointError(f"storage {key!s:.40} is declared twice with different types or sizes")
            return stored
        entry = f"{root}data/{key}"
        if entry not in names:
            raise CheckpointError(f"storage {key!s:.40} is missing from the archive (truncated file?)")
        need = numel * dtype.itemsize
        if need > budget[0]:
            raise CheckpointError(f"the tensors declare more than {MAX_TENSOR_BYTES} bytes in all; "
                                  "no EnCodec checkpoint is that large")
        budget[0] -= need
        raw = _read_entry(archive, entry, need, f"storage {key}")
        if len(raw) != need:
            raise CheckpointError(f"storage {key} holds {len(raw)} bytes, needs {need} (truncated file?)")
        array = np.frombuffer(raw, dtype=dtype.newbyteorder(order)).astype(dtype)
        cache[key] = _Storage(array)
        return cache[key]

    data = _read_entry(archive, pkl[0], MAX_PICKLE_BYTES, "the pickle")
    scan_pickle(data)
    return SafeUnpickler(io.BytesIO(data), storage).load()


def read_torch_state(path) -> dict[str, np.ndarray]:
    """Read a PyTorch zip checkpoint (``torch.save`` of a state dict) into NumPy arrays.

    Never executes code from the file and never allocates more than the
    bytes its tensors need (see the module docstring).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of str to ndarray
        Name → tensor, each a NumPy copy in the storage's dtype. A training
        checkpoint's ``best_state`` is unwrapped.

    Raises
    ------
    CheckpointError
        Not a zip checkpoint, unsafe, truncated or corrupt.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            state = _load(archive)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise CheckpointError(f"{path} is not a PyTorch zip checkpoint ({exc}); legacy (pre-1.6) torch "
                              "files are not supported: re-save with torch.save") from exc
    except MemoryError as exc:
        raise CheckpointError(f"{path}: out of memory while reading; the file is corrupt or hostile") from exc
    except Exception as exc:  # zlib, EOF, OS and pickle errors of a corrupt archive
        raise CheckpointError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc!s:.200})") from exc
    if isinstance(state, dict) and isinstance(state.get("best_state"), dict):
        state = state["best_state"]  # training checkpoints wrap the weights
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray)
                                              for k, v in state.items()):
        raise CheckpointError(f"{path} does not hold a flat state dict of tensors")
    return dict(state)
