"""Pretrained checkpoints: download once, verify, cache. No torch.

Meta publishes its checkpoints under :data:`BASE_URL`; every file name ends in
``-<hex>.<ext>`` where ``<hex>`` is a prefix of the file's sha256 (the
``torch.hub`` ``check_hash`` convention), so the name alone is enough to verify
a download.

The cache directory is, in order: the ``cache_dir`` argument, ``$ENCODEC_NP_CACHE``,
``$XDG_CACHE_HOME/encodec_np``, ``~/.cache/encodec_np``. ``$ENCODEC_NP_BASE_URL``
replaces :data:`BASE_URL` (a mirror, or a local server in the tests).
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from ..errors import CheckpointError, EncodecError

BASE_URL = "https://dl.fbaipublicfiles.com/encodec/v0/"

#: Known pretrained names → file names under the base URL. Module level so that
#: tests (and mirrors of other files) can patch it.
CHECKPOINTS: dict[str, str] = {
    "encodec_24khz": "encodec_24khz-d7cc33bc.th",
    "encodec_48khz": "encodec_48khz-7e698e3e.th",
    "encodec_lm_24khz": "encodec_lm_24khz-1608e3c0.th",
    "encodec_lm_48khz": "encodec_lm_48khz-7add9fc3.th",
}

# Preset names that exist but are not hosted by Meta: say where to get them.
_ELSEWHERE = {
    "encodec_32khz": "it is published only on Hugging Face: download the facebook/encodec_32khz "
                     "folder (config.json + model.safetensors) and pass its path to encodec_np.load_model",
}

#: The model trained for this project (``training/``), shipped inside the package.
EMBEDDED = "encodec_np_small_24khz"
ASSETS = Path(__file__).resolve().parents[1] / "assets"

TIMEOUT = 30.0  # seconds per socket operation (connect, each read), not for the whole file
CHUNK = 1 << 20
CACHE_ENV = "ENCODEC_NP_CACHE"
BASE_URL_ENV = "ENCODEC_NP_BASE_URL"

# Cached files already hashed in this process, keyed by (path, size, mtime): a
# 90 MB sha256 costs ~0.3 s, worth paying once per process, not on every load.
_verified: set[tuple[str, int, int]] = set()


def resolve_cache_dir(cache_dir=None) -> Path:
    """The directory pretrained files are cached in (not created here).

    Parameters
    ----------
    cache_dir : str or Path, optional
        Wins when given; else ``$ENCODEC_NP_CACHE``, else
        ``$XDG_CACHE_HOME/encodec_np``, else ``~/.cache/encodec_np``.
        Empty environment variables count as unset.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "encodec_np"
    return Path.home() / ".cache" / "encodec_np"


def hash_prefix(filename: str) -> str:
    """The sha256 prefix in a checkpoint file name: ``"encodec_24khz-d7cc33bc.th"`` → ``"d7cc33bc"``.

    Parameters
    ----------
    filename : str
        Ending in ``-<at least 6 hex digits>.<ext>``; other names raise :class:`EncodecError`.
    """
    stem = filename.partition(".")[0]
    _, dash, prefix = stem.rpartition("-")
    if not dash or len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
        raise EncodecError(f"checkpoint file name {filename!r} does not end in '-<sha256 prefix>.<ext>'")
    return prefix


def sha256_file(path) -> str:
    """The hex sha256 of the file at ``path``, read in 1 MiB chunks.

    Parameters
    ----------
    path : str or Path
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path, prefix: str) -> bool:
    """Whether the sha256 of the file at ``path`` starts with ``prefix`` (hex, any case).

    Parameters
    ----------
    path : str or Path
    prefix : str
        As :func:`hash_prefix` gives it.
    """
    return sha256_file(path).startswith(prefix.lower())


def pretrained_path(name: str, cache_dir=None, *, progress: bool | None = None) -> Path:
    """Local path of a pretrained checkpoint, downloading it on first use.

    Parameters
    ----------
    name : str
        A key of :data:`CHECKPOINTS` (``"encodec_24khz"``, ``"encodec_48khz"``,
        ``"encodec_lm_24khz"``, ``"encodec_lm_48khz"``), or :data:`EMBEDDED`,
        whose weights ship in the package.
    cache_dir : str or Path, optional
        See :func:`resolve_cache_dir`.
    progress : bool, optional
        Show a download bar on stderr; ``None`` shows it when stderr is a terminal.

    Returns
    -------
    Path
        ``<cache_dir>/<file name>``; the name keeps its suffix, which tells
        :func:`~encodec_np.io.checkpoint.read_checkpoint` the format.

    Raises
    ------
    EncodecError
        Unknown name, or the download failed (offline, HTTP error): the message
        names the URL and how to use a local copy instead.
    CheckpointError
        The downloaded bytes do not match the checksum in the file name.
    """
    if name == EMBEDDED:
        return embedded_path()
    if name not in CHECKPOINTS:
        hint = f": {_ELSEWHERE[name]}" if name in _ELSEWHERE else ""
        raise EncodecError(f"no pretrained checkpoint named {name!r}{hint}; "
                           f"known names: {', '.join(sorted(CHECKPOINTS))}")
    filename = CHECKPOINTS[name]
    prefix = hash_prefix(filename)
    folder = resolve_cache_dir(cache_dir)
    dest = folder / filename
    if dest.is_file():
        if _is_verified(dest, prefix):
            return dest
        warnings.warn(f"cached checkpoint {dest} is corrupt (sha256 does not start with {prefix}); "
                      "downloading it again", RuntimeWarning, stacklevel=2)
        dest.unlink(missing_ok=True)
    url = os.environ.get(BASE_URL_ENV) or BASE_URL
    url = url.rstrip("/") + "/" + filename
    if progress is None:
        isatty = getattr(sys.stderr, "isatty", None)  # stderr may be None or a bare stream object
        progress = bool(isatty and isatty())
    _download(url, dest, prefix, progress)
    return dest


def embedded_path() -> Path:
    """The shipped weights of :data:`EMBEDDED` (no download)."""
    path = ASSETS / f"{EMBEDDED}.safetensors"
    if not path.is_file():
        raise CheckpointError(f"the package has no {path.name} (a build without its package data?); "
                              "reinstall encodec-np, or pass a checkpoint path")
    return path


def _is_verified(path: Path, prefix: str) -> bool:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        if not verify_checksum(path, prefix):
            return False
        _verified.add(key)
    return True


def _offline_hint(url: str, dest: Path, reason) -> EncodecError:
    return EncodecError(
        f"could not download {url} ({reason}). Offline? Use the model shipped in the package "
        f"(command line: --model {EMBEDDED}; Python: encodec_np.load_model()), or a local copy of the file "
        f"(--model /path/to/{dest.name}; encodec_np.load_model('/path/to/{dest.name}')), or place it into the "
        f"cache directory {dest.parent} (set by cache_dir=, ${CACHE_ENV} or $XDG_CACHE_HOME).")


# --------------------------------------------------------------------------- Hugging Face snapshots
#: Hugging Face repositories of EnCodec models (``transformers``' ``EncodecModel``).
HF_REPOS = ("facebook/encodec_24khz", "facebook/encodec_32khz", "facebook/encodec_48khz")
_HF_FILES = ("config.json", "model.safetensors")
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def is_hf_repo_id(name) -> bool:
    """Whether ``name`` reads as a Hugging Face repository id (``owner/name``) rather than a path.

    Parameters
    ----------
    name : str or Path
        Anything but a string is not an id; nor is an existing path.
    """
    return isinstance(name, str) and bool(_HF_ID.match(name)) and not Path(name).exists()


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def _cached_snapshot(repo_id: str) -> Path | None:
    """The snapshot of ``repo_id`` in the hub cache holding both files: ``refs/main``'s, else the newest."""
    repo = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    candidates = []
    with contextlib.suppress(OSError):
        ref = (repo / "refs" / "main").read_text().strip()
        candidates.append(snapshots / ref)
    with contextlib.suppress(OSError):
        candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in candidates:
        if all((folder / name).is_file() for name in _HF_FILES):
            return folder
    return None


def hf_snapshot(repo_id: str) -> Path:
    """A local folder holding ``repo_id``'s ``config.json`` and ``model.safetensors``.

    With ``huggingface_hub`` installed, its ``snapshot_download`` finds or
    fetches the files (offline it falls back to the cache); without it, the
    hub cache (:func:`hf_cache_dir`) is searched with the layout
    ``huggingface_hub`` writes.

    Parameters
    ----------
    repo_id : str
        ``"facebook/encodec_24khz"`` and the like.

    Returns
    -------
    Path

    Raises
    ------
    EncodecError
        Not in the cache and not downloadable here; the message says how to get it.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        snapshot_download = None
    if snapshot_download is not None:
        for offline in (False, True):
            with contextlib.suppress(Exception):  # offline, no such repo, ...: try the cache next
                folder = Path(snapshot_download(repo_id, allow_patterns=list(_HF_FILES), local_files_only=offline))
                if all((folder / name).is_file() for name in _HF_FILES):
                    return folder
    folder = _cached_snapshot(repo_id)
    if folder is not None:
        return folder
    how = ("huggingface_hub could not fetch it (offline?)" if snapshot_download is not None
           else "huggingface_hub, which would download it, is not installed (pip install huggingface_hub)")
    raise EncodecError(f"{repo_id} is not in the Hugging Face cache ({hf_cache_dir()}) and {how}; or download "
                       f"its config.json and model.safetensors into a folder and pass that folder's path")


def _download(url: str, dest: Path, prefix: str, progress: bool) -> None:
    """Stream ``url`` into a temp file beside ``dest``, check its sha256, then rename atomically.

    The temp file lives in the cache directory so that :func:`os.replace` is a
    rename on one file system: a crash or a concurrent reader never sees a
    half-written checkpoint under its final name.
    """
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "encodec-np"})
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _offline_hint(url, dest, f"HTTP error {exc.code}: {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _offline_hint(url, dest, getattr(exc, "reason", exc)) from exc
    with response:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        except OSError as exc:
            raise EncodecError(f"cannot write to the cache directory {dest.parent} ({exc}); "
                               f"choose another with cache_dir= or ${CACHE_ENV}") from exc
        tmp = Path(tmp_name)
        try:
            digest = _stream(response, fd, url, dest, progress)
            if not digest.startswith(prefix):
                raise CheckpointError(f"the download of {url} is corrupted (sha256 {digest[:16]}... does not "
                                      f"start with {prefix}); the partial file was deleted, please retry")
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _stream(response, fd: int, url: str, dest: Path, progress: bool) -> str:
    """Copy ``response`` into the open file ``fd`` in chunks; return the sha256 hex digest."""
    from tqdm import tqdm

    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    if progress:
        print(f"Downloading {url} to {dest}", file=sys.stderr)
    digest, received = hashlib.sha256(), 0
    with os.fdopen(fd, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc=dest.name, file=sys.stderr, disable=not progress) as bar:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (http.client.HTTPException, OSError) as exc:
                # A dropped connection or a timeout mid-file: same advice as offline.
                raise _offline_hint(url, dest, exc) from exc
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    # http.client returns short reads, not an error, when the server hangs up early.
    if total is not None and received != total:
        raise _offline_hint(url, dest, f"the connection closed after {received} of {total} bytes")
    return digest.hexdigest()
