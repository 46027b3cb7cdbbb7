"""The code stream of ``encodec-np stream``: int16 codes frame by frame, framed by a header and an end record.

Layout, little-endian::

    header   b"ECST", version (u8, 1), codebooks K (u16), name length (u16), model name (UTF-8)
    frames   K int16 codes per frame, written as each frame becomes final
    end      int16 -1 (never a code), then the input's length in samples (u64)

The header lets the decoder refuse codes made by another model or at another
bandwidth (instead of decoding them into wrong audio); the end record lets it
trim the output to the input's length (the decoder otherwise gives whole
frames: ``ceil(T / hop) * hop`` samples). ``--raw`` streams have neither:
just the frames, for pipes that add their own framing.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Optional

import numpy as np

from ..errors import EncodecError

MAGIC = b"ECST"
VERSION = 1
HEADER = struct.Struct("<4sBHH")
END_MARK = -1
END = struct.Struct("<hQ")


def header_bytes(name: str, codebooks: int) -> bytes:
    """The header of a stream of ``codebooks`` codes per frame from the model ``name``.

    Parameters
    ----------
    name : str
        The model's name, under 65536 bytes of UTF-8.
    codebooks : int
        ``K``, from 1 to 65535.
    """
    raw = name.encode("utf-8")
    if not 1 <= codebooks < 1 << 16 or len(raw) >= 1 << 16:
        raise EncodecError(f"cannot frame {codebooks} codebooks of the model {name!r:.60}")
    return HEADER.pack(MAGIC, VERSION, codebooks, len(raw)) + raw


def end_bytes(samples: int) -> bytes:
    """The end record: the input held ``samples`` samples per channel.

    Parameters
    ----------
    samples : int
        Non-negative, below ``2 ** 64``.
    """
    return END.pack(END_MARK, samples)


def _read(fo: BinaryIO, n: int, what: str) -> bytes:
    data = b""
    while len(data) < n:
        chunk = fo.read(n - len(data))
        if not chunk:
            raise EncodecError(f"the code stream ended inside its {what} ({len(data)} of {n} bytes); "
                               "is it a code stream from encodec-np stream (headerless ones need --raw)?")
        data += chunk
    return data


def read_header(fo: BinaryIO) -> tuple[str, int]:
    """Read a stream's header from ``fo``: ``(model name, codebooks)``.

    Parameters
    ----------
    fo : binary file object
        Positioned at the start of the stream; left just after the header.

    Raises
    ------
    EncodecError
        Not a code stream, another version, or a truncated or corrupt header.
    """
    magic, version, codebooks, size = HEADER.unpack(_read(fo, HEADER.size, "header"))
    if magic != MAGIC:
        raise EncodecError(f"not an encodec-np code stream: it starts with {magic!r}, not {MAGIC!r} "
                           "(for headerless codes, pass --raw and the -b they were made with)")
    if version != VERSION:
        raise EncodecError(f"code stream version {version}; this reader knows version {VERSION}")
    try:
        name = _read(fo, size, "header").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EncodecError(f"corrupt code stream header: the model name is not UTF-8 ({exc})") from exc
    if not codebooks:
        raise EncodecError("corrupt code stream header: zero codebooks")
    return name, codebooks


class FrameReader:
    """Cut the bytes after the header into ``[K, n]`` code blocks; notice the end record.

    Parameters
    ----------
    codebooks : int
        ``K``, codes per frame.
    framed : bool
        Whether an end record may come (false for ``--raw`` streams).
    """

    def __init__(self, codebooks: int, framed: bool = True):
        self.codebooks = codebooks
        self.framed = framed
        self.length: Optional[int] = None  # the input's samples, once the end record is read
        self._pending = b""

    def feed(self, data: bytes) -> np.ndarray:
        """The whole frames in ``pending + data``: int64 ``[K, n]`` (``n`` may be 0).

        Parameters
        ----------
        data : bytes
            The stream's next bytes, cut anywhere; a partial frame waits for the next call.
        """
        if self.length is not None and data:
            raise EncodecError("the code stream goes on after its end record")
        buf = self._pending + data
        unit = 2 * self.codebooks
        whole = len(buf) // unit
        codes = np.frombuffer(buf[:whole * unit], dtype="<i2").reshape(whole, self.codebooks)
        stop = whole
        if self.framed:
            marks = np.flatnonzero(codes[:, 0] == END_MARK)
            stop = int(marks[0]) if marks.size else whole
        rest = buf[stop * unit:]  # starts at a frame boundary: the only place the end record can start
        if self.framed and len(rest) >= 2 and int.from_bytes(rest[:2], "little", signed=True) == END_MARK \
                and len(rest) >= END.size:
            if len(rest) > END.size:
                raise EncodecError("the code stream goes on after its end record")
            _, self.length = END.unpack(rest)
            rest = b""
        self._pending = rest
        return codes[:stop].T.astype(np.int64)

    def close(self) -> None:
        """Check the stream did not end inside a frame or inside the end record."""
        if self._pending:
            raise EncodecError(f"the code stream ended inside a frame ({len(self._pending)} stray bytes)")
