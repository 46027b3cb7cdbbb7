"""Optional dependencies (Dask, pyarrow): imported only when a run asks for them."""
from __future__ import annotations

import importlib

from ..errors import EncodecError


def import_extra(module: str, flag: str, extra: str):
    """Import an optional dependency, or say which extra of encodec-np installs it.

    Parameters
    ----------
    module : str
        Dotted module name (``"distributed.scheduler"``).
    flag : str
        The command-line flag that needs it, for the message (``"--dask"``).
    extra : str
        The ``pip install 'encodec-np[extra]'`` that provides it.

    Returns
    -------
    module

    Raises
    ------
    EncodecError
        The module does not import.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EncodecError(f"{flag} needs {module.split('.')[0]} ({exc}); install it with "
                           f"pip install 'encodec-np[{extra}]'") from exc
