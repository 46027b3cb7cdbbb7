"""Write PyTorch-format ``.th`` state dicts without torch (tests only).

Produces the zip layout of ``torch.save`` (``archive/data.pkl`` +
``archive/data/<key>`` storages) so the torch-free suite can exercise the
``.th`` reader; ``test_checkpoint.py`` checks with torch, when present, that
``torch.load`` reads these files too.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

_STORAGE = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
            np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
            np.dtype(np.int32): "IntStorage", np.dtype(np.bool_): "BoolStorage", np.dtype(np.uint8): "ByteStorage",
            np.dtype(np.int8): "CharStorage", np.dtype(np.int16): "ShortStorage"}


class Global:
    """A named global (``module.name``) pickled with the GLOBAL opcode."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that reduce functions are callable
        raise TypeError("placeholder")


class Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class Tensor:
    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def __reduce__(self):
        return (Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, self.shape, self.strides, False, OrderedDict()))


class _Pickler(pickle._Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", Global("torch", _STORAGE[obj.array.dtype]), obj.key, "cpu", obj.array.size)
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, Global):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        super().save(obj, save_persistent_id)


def write_th(path, state: dict, *, extra_objects: dict | None = None) -> None:
    """Write ``state`` (name → ndarray) like ``torch.save(state_dict)``, one storage per tensor.

    ``extra_objects`` are pickled into the dict as they are (to build hostile files).
    """
    storages, entries = [], OrderedDict()
    for i, (name, array) in enumerate(state.items()):
        array = np.asarray(array)
        flat = np.ascontiguousarray(array).reshape(-1)
        storage = Storage(str(i), flat)
        storages.append(storage)
        strides = tuple(s // array.itemsize for s in np.ascontiguousarray(array).strides)
        entries[name] = Tensor(storage, 0, tuple(array.shape), strides)
    if extra_objects:
        entries.update(extra_objects)
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(entries)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", buf.getvalue())
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
        for storage in storages:
            zf.writestr(f"archive/data/{storage.key}", storage.array.astype(storage.array.dtype.newbyteorder("<")).tobytes())
