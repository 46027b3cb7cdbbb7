"""Modules that moved into ``format/`` and ``io/`` keep their old import paths.

``import encodec_np.ecdc`` or ``from encodec_np.checkpoint import read_checkpoint``
still work: a finder on ``sys.meta_path`` answers each old name with the module at
its new place (the same module object, loaded on first use), so code written for
the flat layout runs unchanged and nothing is defined twice. Names that moved
between modules are not covered: ``compress``/``decompress`` live in
:mod:`encodec_np.compression` (and on the package), ``load_model`` in
:mod:`encodec_np.model` (and on the package).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: Old module name (under the package) → its new place.
MOVED = {
    "ecdc": "format.ecdc", "lm": "format.lm", "arithmetic": "format.arithmetic",
    "codestream": "format.codestream", "audio": "io.audio", "checkpoint": "io.checkpoint",
    "torchfile": "io.torchfile", "hub": "io.hub", "tokenize": "dataset",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module):
        # The target ran when it was imported; the import system has just stamped the
        # old name's spec on it: give it back its own, so that it stays one module.
        module.__spec__ = self.own_spec


class MovedFinder(importlib.abc.MetaPathFinder):
    """Finds ``<package>.<old>`` as the module :data:`MOVED` names.

    Parameters
    ----------
    package : str
        The package's import name (``"encodec_np"``).
    """

    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        """The spec of an old module name, or None for any other name (see :class:`importlib.abc.MetaPathFinder`)."""
        head, _, old = fullname.rpartition(".")
        if head != self.package or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(f"{self.package}.{MOVED[old]}"))


def install(package: str) -> None:
    """Put a :class:`MovedFinder` for ``package`` on ``sys.meta_path`` (once).

    Parameters
    ----------
    package : str
    """
    if not any(isinstance(f, MovedFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(MovedFinder(package))
