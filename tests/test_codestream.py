"""The ECST code stream of ``encodec-np stream`` (encodec_np.format.codestream): header, frames, end record."""
import io
import struct

import numpy as np
import pytest

import encodec_np
from encodec_np.format.codestream import END, FrameReader, end_bytes, header_bytes, read_header


@pytest.mark.parametrize("name, k", [("encodec_24khz", 8), ("modèle", 1), ("x" * 300, 65535)])
def test_header_round_trip_leaves_the_stream_after_it(name, k):
    fo = io.BytesIO(header_bytes(name, k) + b"codes")
    assert read_header(fo) == (name, k)
    assert fo.read() == b"codes"


def test_header_bytes_by_hand():
    assert header_bytes("ab", 3) == b"ECST\x01\x03\x00\x02\x00ab"
    assert end_bytes(5) == struct.pack("<hQ", -1, 5) and len(end_bytes(5)) == END.size


@pytest.mark.parametrize("data, match", [
    (b"ECDC\x01\x03\x00\x02\x00ab", "not an encodec-np code stream"),
    (b"ECST\x02\x03\x00\x02\x00ab", "version 2"),
    (b"ECST\x01\x03\x00\x05\x00ab", "ended inside its header"),
    (b"ECST\x01", "ended inside its header"),
    (b"ECST\x01\x03\x00\x02\x00\xff\xfe", "not UTF-8"),
    (b"ECST\x01\x00\x00\x02\x00ab", "zero codebooks"),
])
def test_corrupt_headers_are_refused(data, match):
    with pytest.raises(encodec_np.EncodecError, match=match):
        read_header(io.BytesIO(data))


@pytest.mark.parametrize("name, k", [("m", 0), ("m", 1 << 16), ("x" * (1 << 16), 8)])
def test_header_bytes_refuses_what_it_cannot_frame(name, k):
    with pytest.raises(encodec_np.EncodecError, match="cannot frame"):
        header_bytes(name, k)


def test_frame_reader_finds_the_end_record_at_any_cut():
    """The end record (10 bytes) is shorter than a frame of 8 codes (16 bytes) and longer than one of 1."""
    rng = np.random.default_rng(0)
    for k in (1, 4, 8):
        codes = rng.integers(0, 1024, (k, 37))
        data = codes.T.astype("<i2").tobytes() + end_bytes(11_777)
        cuts = sorted(rng.choice(len(data), 6, replace=False))
        reader, parts = FrameReader(k), []
        for a, b in zip([0, *cuts], [*cuts, len(data)]):
            parts.append(reader.feed(data[a:b]))
        reader.close()
        assert reader.length == 11_777
        np.testing.assert_array_equal(np.concatenate(parts, axis=1), codes)
        with pytest.raises(encodec_np.EncodecError, match="after its end record"):
            FrameReader(k).feed(data + b"\0\0")
