"""The ``.ecdc`` compressed-audio format (version 0), interchangeable with Meta's ``encodec``.

Layout, all integers big-endian::

    b"ECDC"  uint8 version (0)  uint32 n          -- struct "!4sBI", 9 bytes
    n bytes of UTF-8 JSON: {"m": model name, "al": audio length in samples,
                            "nc": number of codebooks, "lm": entropy-coded?}
    then, for each segment of the audio (one segment for models without segments):
        float32 scale ("!f")                      -- only if the model normalizes (48 kHz)
        payload

Without the language model the payload holds the segment's codes ``[K, T]``
in time-major order (for each frame t, codebooks 0..K-1), each code
``log2(bins)`` bits wide (10 for Meta's models), concatenated
least-significant bit first into bytes, the last byte of each segment padded
with zero bits. A segment's payload therefore has exactly
``ceil(K * T * bits / 8)`` bytes. With the language model (``"lm": true``) the
payload is one arithmetic-coded stream per segment (:mod:`encodec_np.format.lm`).

LM-coded files carry one more header field, ``"crc"``: the CRC-32 of all
their codes (:func:`codes_crc32`). Arithmetic decoding with CDFs that differ
in one integer from the encoder's silently yields wrong codes, and our LM
cannot reproduce PyTorch's probabilities bit for bit, so the checksum turns
"wrong audio" into an error. Meta's reader ignores unknown header fields.
LM-coded files without it (written by Meta's tool) are refused unless the
caller accepts unverified decoding (``trust_lm=True``).

Segments follow the model: offsets ``range(0, al, stride)``, lengths
``min(al - offset, segment_length)``, and ``ceil(length / hop_length)`` frames
each (``hop_length`` = 320 for Meta's models). Meta's ``encodec`` 0.1.1 reader
computes ``ceil(length / sample_rate * frame_rate)`` instead, which rounds up
one frame too many when the float division lands just above an integer (for
example 53760 samples at 24 kHz: ``53760 / 24000 * 75 = 168.00000000000003``,
so it wants 169 frames where the encoder made 168 and fails with "The stream
ended sooner than expected", Meta's issue #35). We read and write the frame
count the encoder really produces, so such files, written by either tool,
decode here; the bytes we write are what Meta's writer writes for the same
codes.

Reading is defensive: a malformed file (wrong magic, unknown version,
truncated header or payload, implausible header size, invalid JSON or field
types, impossible lengths or codebook counts, non-positive scales, a model
name that cannot be resolved) raises :class:`~encodec_np.errors.EncodecError`
with a message; the reader never allocates more than the data it has read
justifies (payload bytes are read in chunks before codes are unpacked).
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import zlib
from typing import BinaryIO, List, Optional, Tuple, Union

import numpy as np

from ..config import EncodecConfig
from ..errors import EncodecError
from ..geometry import num_segments, segments
from ..progress import Progress, report
from ..validate import MAX_SCALE

MAGIC = b"ECDC"
VERSION = 0
HEADER = struct.Struct("!4sBI")
SCALE = struct.Struct("!f")

#: Upper bound for the JSON header (Meta's is ~60 bytes); larger claims are corruption.
MAX_HEADER_BYTES = 1 << 16
#: Upper bound for ``al`` (samples): about 24.8 hours at 48 kHz, 49.7 hours at 24 kHz.
MAX_AUDIO_LENGTH = 1 << 32
#: Upper bound for ``nc`` before the model is known (a model allows at most its ``n_q``).
MAX_CODEBOOKS = 1 << 12
_CHUNK = 1 << 20          # bytes read per call
_PACK_STEP = 1 << 16      # codes packed/unpacked per step (a multiple of 8: steps end on byte boundaries)

Frame = Tuple[np.ndarray, Optional[np.ndarray]]
Source = Union[bytes, bytearray, memoryview, BinaryIO, str, os.PathLike]


# --------------------------------------------------------------------------- bit packing
def packed_size(count: int, bits: int) -> int:
    """Bytes taken by ``count`` codes of ``bits`` bits: ``ceil(count * bits / 8)``.

    Parameters
    ----------
    count, bits : int
    """
    return -(-int(count) * int(bits) // 8)


def pack_codes(codes, bits: int) -> bytes:
    """Pack codes ``[K, T]`` time-major (for t: for k), ``bits`` each, LSB first, zero-padded.

    Byte-for-byte what Meta's ``binary.BitPacker`` writes when the codes are
    pushed in that order and the packer is flushed once at the end.

    Parameters
    ----------
    codes : [K, T] int
        Each in ``[0, 2 ** bits)``.
    bits : int
        Bits per code, 1 to 32.

    Returns
    -------
    bytes
        :func:`packed_size` ``(K * T, bits)`` of them.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise EncodecError(f"codes must have shape [K, T], got {codes.shape}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise EncodecError(f"codes must be integers, got dtype {codes.dtype}")
    bits = int(bits)
    if not 1 <= bits <= 32:
        raise EncodecError(f"bits per code must be in 1..32, got {bits}")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= 1 << bits):
        raise EncodecError(f"codes must lie in [0, {1 << bits}) to be packed in {bits} bits, "
                           f"found [{int(codes.min())}, {int(codes.max())}]")
    values = np.ascontiguousarray(codes.T).reshape(-1).astype(np.uint64)
    shifts = np.arange(bits, dtype=np.uint64)
    chunks = []
    for start in range(0, values.size, _PACK_STEP):
        bitmat = ((values[start:start + _PACK_STEP, None] >> shifts) & np.uint64(1)).astype(np.uint8)
        chunks.append(np.packbits(bitmat.reshape(-1), bitorder="little").tobytes())
    return b"".join(chunks)


def unpack_codes(data, bits: int, num_codebooks: int, num_frames: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: the first ``packed_size(K * T, bits)`` bytes → codes ``[K, T]`` int64.

    Parameters
    ----------
    data : bytes-like
        At least ``packed_size(K * T, bits)`` bytes; fewer raise :class:`EncodecError`.
    bits : int
    num_codebooks, num_frames : int
        ``K`` and ``T``.
    """
    bits, k, t = int(bits), int(num_codebooks), int(num_frames)
    count = k * t
    need = packed_size(count, bits)
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size < need:
        raise EncodecError(f"truncated .ecdc payload: {k} codebooks x {t} frames need {need} bytes, "
                           f"got {buf.size}")
    weights = np.left_shift(np.int64(1), np.arange(bits, dtype=np.int64))
    out = np.empty(count, dtype=np.int64)
    for start in range(0, count, _PACK_STEP):
        n = min(_PACK_STEP, count - start)
        first = start * bits // 8
        chunk = buf[first:first + packed_size(n, bits)]
        bitmat = np.unpackbits(chunk, bitorder="little", count=n * bits).reshape(n, bits)
        out[start:start + n] = bitmat.astype(np.int64) @ weights
    return np.ascontiguousarray(out.reshape(t, k).T)


# --------------------------------------------------------------------------- header
def _as_file(source: Source) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return io.BytesIO(f.read())
    if not hasattr(source, "read"):
        raise EncodecError(f"expected .ecdc bytes, a path or a binary file object, got {type(source).__name__}")
    return source


def _read_exactly(fo: BinaryIO, size: int, what: str) -> bytes:
    """Read exactly ``size`` bytes, in chunks (a bogus size costs nothing until data arrives)."""
    parts, got = [], 0
    while got < size:
        chunk = fo.read(min(_CHUNK, size - got))
        if not chunk:
            raise EncodecError(f"truncated .ecdc file: {what} needs {size} bytes, only {got} are left "
                               "(the file was cut short or is not an .ecdc file)")
        if not isinstance(chunk, (bytes, bytearray)):
            raise EncodecError("the .ecdc source must be opened in binary mode ('rb')")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def codes_crc32(codes_per_segment) -> int:
    """CRC-32 of a file's codes: each segment's ``[K, T]`` as little-endian int16, time-major, in order.

    Parameters
    ----------
    codes_per_segment : iterable of [K, T] int arrays
    """
    crc = 0
    for codes in codes_per_segment:
        crc = zlib.crc32(np.ascontiguousarray(np.asarray(codes).T, dtype="<i2").tobytes(), crc)
    return crc


def header_bytes(name: str, audio_length: int, num_codebooks: int, use_lm: bool,
                 crc: Optional[int] = None) -> bytes:
    """The 9-byte struct plus the JSON header, exactly as Meta's ``write_ecdc_header``.

    Parameters
    ----------
    name : str
        The model's name (``"m"``).
    audio_length : int
        Samples per channel (``"al"``).
    num_codebooks : int
        ``"nc"``.
    use_lm : bool
        Whether the payload is entropy coded (``"lm"``).
    crc : int, optional
        LM-coded files only (see :func:`codes_crc32`): appended as a fifth
        field, ``"crc"``; without it the bytes are Meta's.
    """
    meta = {"m": name, "al": int(audio_length), "nc": int(num_codebooks), "lm": bool(use_lm)}
    if crc is not None:
        meta["crc"] = int(crc)
    _validate_meta(meta)
    dumped = json.dumps(meta).encode("utf-8")
    if len(dumped) > MAX_HEADER_BYTES:
        raise EncodecError(f"the .ecdc header would be {len(dumped)} bytes; the model name is too long")
    return HEADER.pack(MAGIC, VERSION, len(dumped)) + dumped


def _validate_meta(meta) -> dict:
    if not isinstance(meta, dict):
        raise EncodecError(f"corrupt .ecdc header: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in ("m", "al", "nc", "lm") if k not in meta]
    if missing:
        raise EncodecError(f"corrupt .ecdc header: missing field(s) {', '.join(missing)} "
                           "(expected m, al, nc, lm)")
    name, length, books, lm = meta["m"], meta["al"], meta["nc"], meta["lm"]
    if not isinstance(name, str) or not name:
        raise EncodecError(f"corrupt .ecdc header: the model name 'm' must be a non-empty string, got {name!r:.60}")
    for key, value, hi, what in (("al", length, MAX_AUDIO_LENGTH, "the audio length"),
                                 ("nc", books, MAX_CODEBOOKS, "the number of codebooks")):
        if isinstance(value, bool) or not isinstance(value, int):
            raise EncodecError(f"corrupt .ecdc header: {what} {key!r} must be an integer, got {value!r:.60}")
        if not 1 <= value <= hi:
            raise EncodecError(f"corrupt .ecdc header: {what} {key!r} = {value} is outside 1..{hi}")
    if not isinstance(lm, bool):
        raise EncodecError(f"corrupt .ecdc header: 'lm' must be true or false, got {lm!r:.60}")
    crc = meta.get("crc")
    if crc is not None and (isinstance(crc, bool) or not isinstance(crc, int) or not 0 <= crc < 1 << 32):
        raise EncodecError(f"corrupt .ecdc header: 'crc' must be an integer in 0..2**32-1, got {crc!r:.60}")
    return meta


def _read_header(fo: BinaryIO) -> dict:
    raw = fo.read(HEADER.size)
    if not isinstance(raw, (bytes, bytearray)):
        raise EncodecError("the .ecdc source must be opened in binary mode ('rb')")
    if len(raw) < HEADER.size:
        if not raw:
            raise EncodecError("not an .ecdc file: it is empty")
        if raw == MAGIC[:len(raw)]:
            raise EncodecError(f"truncated .ecdc file: {len(raw)} bytes, the header alone needs {HEADER.size}")
        raise EncodecError(f"not an .ecdc file: it is {len(raw)} bytes long and does not start with b'ECDC'")
    magic, version, size = HEADER.unpack(raw)
    if magic != MAGIC:
        raise EncodecError(f"not an .ecdc file: it starts with {magic!r}, not b'ECDC'")
    if version != VERSION:
        raise EncodecError(f"unsupported .ecdc version {version}: this reader knows version {VERSION} "
                           "(Meta's encodec 0.1.1 format); was it written by a newer tool?")
    if size > MAX_HEADER_BYTES:
        raise EncodecError(f"corrupt .ecdc header: it claims {size} bytes of JSON (the limit is "
                           f"{MAX_HEADER_BYTES}; real headers are ~60)")
    text = _read_exactly(fo, size, "the JSON header")
    try:
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EncodecError(f"corrupt .ecdc header: invalid JSON ({exc})") from exc
    return _validate_meta(meta)


def read_header(source: Source) -> dict:
    """The JSON header of an ``.ecdc`` file: ``{"m": name, "al": samples, "nc": codebooks, "lm": bool}``.

    Checks the magic, version and field types; raises :class:`EncodecError` otherwise.

    Parameters
    ----------
    source : bytes, path or binary file object
        The file's bytes, its path, or a file object (read up to the end of the header).
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return _read_header(f)
    return _read_header(_as_file(source))


def _check_meta_for(meta: dict, config: EncodecConfig) -> None:
    n_q = config.quantizer.n_q
    if meta["nc"] > n_q:
        raise EncodecError(f"corrupt .ecdc header: {meta['nc']} codebooks, but {config.name} has 1 to {n_q}")


# --------------------------------------------------------------------------- language model hook
def _lm_module():
    try:
        from . import lm as lm_module
    except ModuleNotFoundError as exc:
        if exc.name not in ("encodec_np.format.lm",):
            raise
        raise EncodecError("entropy coding with the language model (lm) needs encodec_np.format.lm, "
                           "which this installation lacks; encode without the LM") from exc
    return lm_module


def resolve_lm(lm, model_name: str):
    """The LM to use: ``lm`` itself, loaded from a name/path, or the default LM of ``model_name``.

    Parameters
    ----------
    lm : LMModel, str, PathLike or None
        A loaded LM, a name or path for :func:`encodec_np.format.lm.load_lm`, or None.
    model_name : str
        The codec whose LM None stands for (:func:`encodec_np.format.lm.lm_name_for`).
    """
    mod = _lm_module()
    if lm is None:
        return mod.load_lm(mod.lm_name_for(model_name))
    if isinstance(lm, (str, os.PathLike)):
        return mod.load_lm(lm)
    return lm


# --------------------------------------------------------------------------- frames ↔ bytes
def write_frames(fo: BinaryIO, name: str, config: EncodecConfig, frames: List[Frame], audio_length: int,
                 *, use_lm: bool = False, lm=None, progress: Progress = None) -> None:
    """Write the header and the payload of ``frames`` (as :meth:`EncodecModel.encode` returns them).

    Parameters
    ----------
    fo : binary file object
        Written to and flushed.
    name : str
        The model's name for the header.
    config : EncodecConfig
        Gives the segment layout, the code width and whether frames carry scales.
    frames : list of (codes [1, K, T] or [K, T], scale)
        One per segment of ``audio_length`` samples under ``config``, the same
        ``K`` in each; ``scale`` is a positive number (or a one-element array)
        when ``config.normalize``, else ``None``.
    audio_length : int
        Samples per channel of the encoded audio.
    use_lm : bool
        Entropy code the codes with ``lm``, which must then be a loaded LM (see :func:`resolve_lm`).
    lm : LMModel, optional
    progress : callable, optional
        ``progress(stage, done, total)`` after each segment.
    """
    audio_length = int(audio_length)
    layout = list(segments(config, audio_length)) if 1 <= audio_length <= MAX_AUDIO_LENGTH else []
    if not layout:
        raise EncodecError(f"audio length must be in 1..{MAX_AUDIO_LENGTH}, got {audio_length}")
    if not isinstance(frames, (list, tuple)) or len(frames) != len(layout):
        got = len(frames) if isinstance(frames, (list, tuple)) else type(frames).__name__
        raise EncodecError(f"{audio_length} samples make {len(layout)} segment(s) for {config.name}, "
                           f"got {got} frame(s)")
    bits, n_q = config.quantizer.bits_per_codebook, config.quantizer.n_q
    checked = []
    for i, ((_, _, n_frames), frame) in enumerate(zip(layout, frames)):
        codes, scale = frame
        codes = np.asarray(codes)
        if codes.ndim == 3:
            if codes.shape[0] != 1:
                raise EncodecError(f"frame {i}: an .ecdc file holds one waveform; codes have batch {codes.shape[0]}")
            codes = codes[0]
        if codes.ndim != 2 or codes.shape[1] != n_frames:
            raise EncodecError(f"frame {i}: this segment has {n_frames} frames, so codes must be "
                               f"[K, {n_frames}]; got shape {codes.shape}")
        if not 1 <= codes.shape[0] <= n_q or (checked and codes.shape[0] != checked[0][0].shape[0]):
            raise EncodecError(f"frame {i}: {codes.shape[0]} codebooks; need the same 1..{n_q} in every frame")
        if config.normalize:
            value = None if scale is None else np.asarray(scale, dtype=np.float64).reshape(-1)
            if value is None or value.size != 1 or not np.isfinite(value).all() or value[0] <= 0:
                raise EncodecError(f"frame {i}: {config.name} normalizes, so each frame needs one positive scale")
            scale = float(value[0])
        elif scale is not None:
            raise EncodecError(f"frame {i}: {config.name} does not normalize; the scale must be None")
        checked.append((codes, scale))
    num_codebooks = checked[0][0].shape[0]
    if use_lm:
        if lm is None:
            raise EncodecError("use_lm=True needs the language model: pass lm= (see encodec_np.format.ecdc.resolve_lm)")
        encode_codes = _lm_module().encode_codes
    crc = codes_crc32(codes for codes, _ in checked) if use_lm else None
    fo.write(header_bytes(name, audio_length, num_codebooks, use_lm, crc))
    for i, (codes, scale) in enumerate(checked):
        if scale is not None:
            fo.write(SCALE.pack(scale))
        if use_lm:
            encode_codes(codes, lm, fo)
        else:
            fo.write(pack_codes(codes, bits))
        report(progress, "entropy coding" if use_lm else "packing", i + 1, len(checked))
    if hasattr(fo, "flush"):
        fo.flush()


def read_frames(source: Source, config: EncodecConfig, *, header: Optional[dict] = None, lm=None,
                progress: Progress = None, trust_lm: bool = False) -> Tuple[dict, List[Frame]]:
    """Read an ``.ecdc`` stream into ``(header, frames)`` without running the model.

    ``frames`` is one ``(codes [1, nc, T] int64, scale [1, 1] float32 or None)``
    per segment, ready for :meth:`EncodecModel.decode`. ``config`` gives the
    segment layout and code width (for a file from a pretrained model, its
    preset is enough: ``encodec_np.config.PRESETS[header["m"]]()``). Pass
    ``header`` when it was already read from the file object ``source``
    (bytes and paths are always read from their start).

    LM-coded codes are checked against the header's ``"crc"``; a mismatch
    raises :class:`EncodecError`. A file without it (Meta's tool writes
    none) is refused before decoding unless ``trust_lm`` is true: its codes
    could come back wrong without any sign.

    Parameters
    ----------
    source : bytes, path or binary file object
    config : EncodecConfig
    header : dict, optional
        As :func:`read_header` returned it from ``source``, a file object.
    lm : LMModel, str, PathLike or None
        For LM-coded files (see :func:`resolve_lm`).
    progress : callable, optional
        ``progress(stage, done, total)`` after each segment.
    trust_lm : bool
        Decode LM-coded files that carry no ``"crc"``.

    Returns
    -------
    header : dict
    frames : list of (codes [1, nc, T] int64, scale [1, 1] float32 or None)
    """
    fo = _as_file(source)
    if header is None or not hasattr(source, "read"):  # bytes or a path: the header is at the start
        meta = _read_header(fo)
    else:
        meta = _validate_meta(header)
    _check_meta_for(meta, config)
    num_codebooks, audio_length = meta["nc"], meta["al"]
    bits = config.quantizer.bits_per_codebook
    if meta["lm"]:
        if "crc" not in meta and not trust_lm:
            raise EncodecError(
                "this LM-coded .ecdc file has no code checksum, so it was written by Meta's encodec tool; "
                "its arithmetic coding needs PyTorch's exact probabilities, which encodec-np reproduces only "
                "to ~1e-7, so decoding could return wrong audio without any error. Re-encode it without "
                "--lm, or accept unverified decoding (trust_lm=True, --trust-lm)")
        lm = resolve_lm(lm, meta["m"])
        decode_codes = _lm_module().decode_codes
    total = num_segments(config, audio_length)
    frames: List[Frame] = []
    for i, (_, _, n_frames) in enumerate(segments(config, audio_length)):
        scale = None
        if config.normalize:
            (value,) = SCALE.unpack(_read_exactly(fo, SCALE.size, f"the scale of segment {i}"))
            if not (math.isfinite(value) and 0 < value <= MAX_SCALE):
                raise EncodecError(f"corrupt .ecdc file: segment {i} has scale {value}; scales are RMS values "
                                   f"in (0, {MAX_SCALE:g}]")
            scale = np.array([[value]], dtype=np.float32)
        if meta["lm"]:
            codes = _decode_lm_segment(decode_codes, fo, lm, num_codebooks, n_frames, config, i)
        else:
            what = f"segment {i} ({num_codebooks} codebooks x {n_frames} frames)"
            data = _read_exactly(fo, packed_size(num_codebooks * n_frames, bits), what)
            codes = unpack_codes(data, bits, num_codebooks, n_frames)
        frames.append((codes[None], scale))
        report(progress, "reading", i + 1, total)
    if meta["lm"] and "crc" in meta and codes_crc32(codes[0] for codes, _ in frames) != meta["crc"]:
        raise EncodecError("LM decoding gave codes whose checksum differs from the one recorded at encoding: "
                           "the file is corrupt, or was coded with another language model or another build "
                           "whose probabilities differ in the last bits; re-encode without --lm for exchange")
    return meta, frames


def _decode_lm_segment(decode_codes, fo, lm, num_codebooks, n_frames, config, index) -> np.ndarray:
    try:
        codes = decode_codes(fo, lm, num_codebooks, n_frames)
    except EncodecError:
        raise
    except (EOFError, ValueError, IndexError, struct.error) as exc:
        raise EncodecError(f"corrupt LM-coded payload in segment {index} ({type(exc).__name__}: {exc})") from exc
    codes = np.asarray(codes)
    if codes.shape != (num_codebooks, n_frames) or not np.issubdtype(codes.dtype, np.integer):
        raise EncodecError(f"LM decoding of segment {index} gave codes {codes.shape} {codes.dtype}, "
                           f"expected [{num_codebooks}, {n_frames}] integers")
    if codes.size and (codes.min() < 0 or codes.max() >= config.quantizer.bins):
        raise EncodecError(f"corrupt LM-coded payload in segment {index}: codes out of range")
    return codes.astype(np.int64, copy=False)
