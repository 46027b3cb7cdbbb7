"""Arithmetic coder of the official ``.ecdc`` LM mode, bit for bit.

The coder keeps an integer range ``[low, high]``; each symbol narrows it to the
symbol's share of a quantized CDF whose total is ``2 ** total_range_bits``
(24 bits in ``.ecdc`` files). Whenever the range is narrower than that total it
is widened by appending bits (``low`` gains a 0, ``high`` a 1), and the leading
bits ``low`` and ``high`` agree on are final and go to the stream. Bits are
packed least-significant first into bytes, the last byte zero-padded, exactly
as the official ``BitPacker(bits=1)`` writes them.

All range arithmetic uses Python integers: the official coder's
``ceil(range_low * (delta / 2 ** 24))`` is exact in double precision (a 24-bit
by 25-bit product), so the integer forms used here give the same numbers.

A flaw kept for compatibility: for peaked float32 pdfs the official CDF total
can exceed ``2 ** 24`` by a unit or two (``floor(p / 1e-8) * 1e-8`` rounds up in
float32), so the top symbol's range then sticks out of the current range by
one. The official coder carries on, which can make a stream decode wrongly
(the ranges are no longer nested), or stops on an assertion when ``high``
outgrows its pending bits. We write the same bytes, raise
:class:`EntropyCodingError` where the official coder asserts, and record
whether any push stuck out (:attr:`ArithmeticCoder.overflowed`) so that a
caller can check the stream with :func:`verify_stream`, which needs only the
ranges the coder recorded (``record=True``), not the CDFs.

The decoder reads bytes from the file object only when it needs a bit, like
the official one, so after a segment it leaves the file positioned at the
start of whatever follows (the next segment of an ``.ecdc`` file).
"""
from __future__ import annotations

import array
import io
import typing as tp

import numpy as np

from ..errors import EncodecError

TOTAL_RANGE_BITS = 24
ROUNDOFF = 1e-8
MIN_RANGE = 2


def build_stable_quantized_cdf(pdf: np.ndarray, total_range_bits: int = TOTAL_RANGE_BITS,
                               roundoff: float = ROUNDOFF, min_range: int = MIN_RANGE,
                               check: bool = False) -> np.ndarray:
    """Quantized CDF of ``pdf`` that splits ``[0, 2 ** total_range_bits)`` (official rule).

    ``pdf`` is first floored to a multiple of ``roundoff``, then every symbol
    gets ``floor((1 - alpha) * 2 ** bits * pdf) + min_range`` integer units,
    with ``alpha = min_range * N / 2 ** bits`` reserving room for the minimum
    ranges. All float steps run in the dtype of ``pdf`` (float32 for the LM),
    with the Python constants rounded to that dtype first, as torch does for a
    float32 tensor times a Python float; the result is therefore identical to
    the official function for identical input values.

    Parameters
    ----------
    pdf : [..., N] float32 (or float64)
        Probabilities along the last axis; leading axes are independent CDFs.
    total_range_bits, roundoff, min_range
        As in the official coder (24, 1e-8, 2 in ``.ecdc`` files).
    check : bool
        Verify that the CDF fits the range and every symbol keeps ``min_range``
        units (the official ``check=True``); ``.ecdc`` coding runs without it.

    Returns
    -------
    cdf : [..., N] int64
        Inclusive cumulative ends: symbol ``s`` owns ``[cdf[s-1], cdf[s])``.
    """
    pdf = np.asarray(pdf)
    if pdf.dtype not in (np.float32, np.float64):
        pdf = pdf.astype(np.float32)
    if min_range < 2:
        raise EncodecError(f"min_range must be at least 2, got {min_range}")
    dt = pdf.dtype.type
    total_range = 2 ** total_range_bits
    cardinality = pdf.shape[-1]
    alpha = min_range * cardinality / total_range
    if alpha > 1:
        raise EncodecError(f"{cardinality} symbols do not fit {total_range_bits} bits with "
                           f"min_range={min_range}: reduce min_range or use more bits")
    if roundoff:
        # Flooring to a grid absorbs tiny float differences between machines
        # (the official intent; it cannot absorb all of them).
        step = dt(roundoff)
        pdf = np.floor(pdf / step) * step
    ranges = np.floor(dt((1 - alpha) * total_range) * pdf).astype(np.int64)
    ranges += min_range
    cdf = np.cumsum(ranges, axis=-1)
    if check:
        if (cdf[..., -1] > total_range).any():
            raise EncodecError(f"quantized CDF exceeds 2**{total_range_bits}: the pdf sums to more than 1")
        if (ranges < min_range).any():
            raise EncodecError("a symbol range fell below min_range: increase total_range_bits")
    return cdf


def _reverse_bits(value: int, n: int) -> int:
    """``value`` as ``n`` bits read backwards: MSB-first prefixes → LSB-first stream order."""
    return int(format(value, f"0{n}b")[::-1], 2) if n else 0


class EntropyCodingError(EncodecError):
    """The official arithmetic coder cannot represent this symbol sequence (see module docs)."""


class ArithmeticCoder:
    """Encode symbols under a sequence of quantized CDFs into a binary file object.

    Produces exactly the bytes of the official ``ArithmeticCoder`` for the same
    CDFs and symbols. Call :meth:`flush` once at the end of a segment.

    Parameters
    ----------
    fo : binary file object
        Receives the bytes (in chunks as they become final, the rest on flush).
    total_range_bits : int
        Bits of the CDF total (24 in ``.ecdc`` files).
    record : bool
        Keep each push's ``(range_low, range_high)`` in :attr:`ranges` for
        :func:`verify_stream` (16 bytes per symbol).

    Attributes
    ----------
    overflowed : bool
        Some push used a range reaching past ``2 ** total_range_bits`` (a CDF
        total above it): only then can the stream fail to decode.
    ranges : array of int64, flattened pairs (when ``record``)
    bytes_written : int
    """

    _CHUNK_BITS = 4096  # write whole bytes to fo once this many bits are pending

    def __init__(self, fo: tp.IO[bytes], total_range_bits: int = TOTAL_RANGE_BITS, *,
                 record: bool = False):
        if not 1 <= total_range_bits <= 30:
            raise EncodecError(f"total_range_bits must be in [1, 30], got {total_range_bits}")
        self.fo = fo
        self.total_range_bits = total_range_bits
        self.low = 0
        self.high = 0
        self.max_bit = -1          # low and high hold max_bit + 1 pending (unflushed) bits
        self._bits = 0             # pending output bits, stream order from bit 0 up
        self._nbits = 0
        self.bytes_written = 0
        self.overflowed = False
        self.ranges = array.array("q") if record else None

    @property
    def delta(self) -> int:
        """Width of the current range."""
        return self.high - self.low + 1

    def _emit(self, prefix: int, n: int) -> None:
        """Append the ``n``-bit value ``prefix`` (MSB first) to the stream."""
        self._bits |= _reverse_bits(prefix, n) << self._nbits
        self._nbits += n
        if self._nbits >= self._CHUNK_BITS:
            nbytes = self._nbits // 8
            self.fo.write((self._bits & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little"))
            self.bytes_written += nbytes
            self._bits >>= 8 * nbytes
            self._nbits -= 8 * nbytes

    def _flush_common_prefix(self) -> None:
        # Leading bits shared by low and high can no longer change: emit them.
        if self.high >> (self.max_bit + 1):
            # Where the official coder fails an assertion (module docstring).
            raise EntropyCodingError(
                "the official arithmetic coder cannot code this sequence: a quantized CDF "
                f"total above 2**{self.total_range_bits} overflowed the range (code this "
                "segment without the LM)")
        keep = (self.low ^ self.high).bit_length()
        n = self.max_bit + 1 - keep
        if n > 0:
            self._emit(self.low >> keep, n)
            mask = (1 << keep) - 1
            self.low &= mask
            self.high &= mask
            self.max_bit = keep - 1

    def push(self, symbol: int, quantized_cdf: np.ndarray) -> None:
        """Encode ``symbol`` with the CDF from :func:`build_stable_quantized_cdf`.

        Parameters
        ----------
        symbol : int in [0, N)
        quantized_cdf : [N] int64

        Raises
        ------
        EntropyCodingError
            Where the official coder fails its range assertion.
        """
        n_symbols = len(quantized_cdf)
        if not 0 <= symbol < n_symbols:
            raise EncodecError(f"symbol {symbol} is outside [0, {n_symbols})")
        range_low = int(quantized_cdf[symbol - 1]) if symbol else 0
        range_high = int(quantized_cdf[symbol]) - 1
        if range_high >> self.total_range_bits:
            self.overflowed = True
        if self.ranges is not None:
            self.ranges.append(range_low)
            self.ranges.append(range_high)
        self.push_range(range_low, range_high)

    def push_range(self, range_low: int, range_high: int) -> None:
        """Narrow to the CDF units ``[range_low, range_high]`` (what :meth:`push` does).

        Parameters
        ----------
        range_low, range_high : int
            A symbol's first and last unit of the ``2 ** total_range_bits`` a CDF splits.
        """
        bits = self.total_range_bits
        delta = self.high - self.low + 1
        if delta < (1 << bits):
            # Widen until the range holds at least 2**bits values.
            n = bits + 1 - delta.bit_length()
            self.low <<= n
            self.high = (self.high << n) | ((1 << n) - 1)
            self.max_bit += n
            delta <<= n
        # ceil / floor of range * delta / 2**bits, in exact integer arithmetic.
        effective_low = -((-range_low * delta) >> bits)
        effective_high = (range_high * delta) >> bits
        self.high = self.low + effective_high
        self.low = self.low + effective_low
        self._flush_common_prefix()

    def flush(self) -> None:
        """Emit the pending bits of ``low``, pad the last byte with zeros, write everything."""
        if self.max_bit >= 0:
            self._emit(self.low & ((1 << (self.max_bit + 1)) - 1), self.max_bit + 1)
            self.max_bit = -1
        nbytes = (self._nbits + 7) // 8
        if nbytes:
            self.fo.write(self._bits.to_bytes(nbytes, "little"))
            self.bytes_written += nbytes
        self._bits = 0
        self._nbits = 0
        flush = getattr(self.fo, "flush", None)
        if flush is not None:
            flush()


class _BitReader:
    """Bits of a file object, least-significant first within each byte, read lazily."""

    def __init__(self, fo: tp.IO[bytes]):
        self.fo = fo
        self._bits = 0
        self._nbits = 0
        self.bytes_read = 0

    def read(self, n: int) -> int:
        """The next ``n`` stream bits as an integer, the first bit most significant."""
        if self._nbits < n:
            # Exactly the bytes a bit-at-a-time reader would have fetched by now.
            need = (n - self._nbits + 7) // 8
            data = b""
            while len(data) < need:
                chunk = self.fo.read(need - len(data))
                if not chunk:
                    raise EncodecError("the arithmetic-coded stream ended sooner than expected "
                                       "(truncated file)")
                data += chunk
            self._bits |= int.from_bytes(data, "little") << self._nbits
            self._nbits += 8 * need
            self.bytes_read += need
        value = self._bits & ((1 << n) - 1)
        self._bits >>= n
        self._nbits -= n
        return _reverse_bits(value, n)


class ArithmeticDecoder:
    """Decode symbols written by :class:`ArithmeticCoder` (or the official coder).

    Must be given exactly the same sequence of quantized CDFs as the encoder.
    Unlike the official decoder, which returns ``None`` at the end of the
    stream and raises ``RuntimeError`` when no symbol fits, both cases raise
    :class:`~encodec_np.errors.EncodecError`.

    Parameters
    ----------
    fo : binary file object
        Read one byte at a time, only as far as needed.
    total_range_bits : int
        Must match the encoder (24 in ``.ecdc`` files).
    """

    def __init__(self, fo: tp.IO[bytes], total_range_bits: int = TOTAL_RANGE_BITS):
        if not 1 <= total_range_bits <= 30:
            raise EncodecError(f"total_range_bits must be in [1, 30], got {total_range_bits}")
        self.total_range_bits = total_range_bits
        self.low = 0
        self.high = 0
        self.current = 0       # the stream bits read so far that are still pending
        self.max_bit = -1
        self._reader = _BitReader(fo)

    @property
    def bytes_read(self) -> int:
        """Bytes taken from the file object so far."""
        return self._reader.bytes_read

    def pull(self, quantized_cdf: np.ndarray) -> int:
        """Decode one symbol.

        Parameters
        ----------
        quantized_cdf : [N] int64, strictly increasing (as built by
            :func:`build_stable_quantized_cdf`)

        Returns
        -------
        symbol : int in [0, N)

        Raises
        ------
        EncodecError
            The stream ended, or its bits fit no symbol (corrupt data, or CDFs
            that differ from the encoder's).
        """
        bits = self.total_range_bits
        delta = self._widen()
        offset = self.current - self.low
        scaled = offset << bits
        # Symbol s owns offsets [ceil(cdf[s-1]·δ/2^b), floor((cdf[s]-1)·δ/2^b)]; these
        # intervals are disjoint and sorted, so the only candidate is the last s
        # whose lower end is <= offset, i.e. the count of cdf entries <= offset·2^b/δ
        # (the official binary search finds the same one).
        symbol = int(np.searchsorted(quantized_cdf, scaled // delta, side="right"))
        if symbol >= len(quantized_cdf) or (int(quantized_cdf[symbol]) - 1) * delta < scaled:
            raise EncodecError("corrupt arithmetic-coded stream: the bits fit no symbol "
                               "(damaged file, or an LM whose probabilities differ from the encoder's)")
        range_low = int(quantized_cdf[symbol - 1]) if symbol else 0
        self._narrow(range_low, int(quantized_cdf[symbol]) - 1, delta)
        return symbol

    def pull_range(self, range_low: int, range_high: int) -> bool:
        """Whether the next symbol is the one owning CDF units ``[range_low, range_high]``.

        Advances the decoder as :meth:`pull` would if it were; used by
        :func:`verify_stream` to check a stream without the CDFs.

        Parameters
        ----------
        range_low, range_high : int
            The pushed symbol's first and last CDF unit, as :attr:`ArithmeticCoder.ranges` recorded them.
        """
        bits = self.total_range_bits
        delta = self._widen()
        offset = self.current - self.low
        ok = -((-range_low * delta) >> bits) <= offset <= (range_high * delta) >> bits
        self._narrow(range_low, range_high, delta)
        return ok

    def _widen(self) -> int:
        """Read bits until the range holds ``2 ** bits`` values; returns its width."""
        bits = self.total_range_bits
        delta = self.high - self.low + 1
        if delta < (1 << bits):
            n = bits + 1 - delta.bit_length()
            self.current = (self.current << n) | self._reader.read(n)
            self.low <<= n
            self.high = (self.high << n) | ((1 << n) - 1)
            self.max_bit += n
            delta <<= n
        return delta

    def _narrow(self, range_low: int, range_high: int, delta: int) -> None:
        bits = self.total_range_bits
        self.high = self.low + ((range_high * delta) >> bits)
        self.low = self.low + -((-range_low * delta) >> bits)
        if self.high >> (self.max_bit + 1):
            # The encoder stops here (EntropyCodingError): no valid stream gets here.
            raise EncodecError("corrupt arithmetic-coded stream: range overflow")
        keep = (self.low ^ self.high).bit_length()
        if self.max_bit + 1 > keep:
            mask = (1 << keep) - 1
            self.low &= mask
            self.high &= mask
            self.current &= mask
            self.max_bit = keep - 1


def verify_stream(payload: bytes, ranges: tp.Sequence[int],
                  total_range_bits: int = TOTAL_RANGE_BITS) -> bool:
    """Whether ``payload`` decodes back to the symbols an :class:`ArithmeticCoder` pushed.

    Parameters
    ----------
    payload : bytes
        The coder's output for one segment.
    ranges : flattened ``(range_low, range_high)`` pairs
        :attr:`ArithmeticCoder.ranges` (``record=True``).

    A decoder given the same CDFs picks, at each step, the unique symbol whose
    interval holds the stream value, so checking that value against the pushed
    symbol's interval is enough. Always true unless the coder ``overflowed``.
    """
    decoder = ArithmeticDecoder(io.BytesIO(payload), total_range_bits)
    try:
        return all(decoder.pull_range(ranges[i], ranges[i + 1]) for i in range(0, len(ranges), 2))
    except EncodecError:
        return False
