"""Audio <-> .ecdc through a model (encodec_np.compression): round trips, progress, file objects, errors."""
from __future__ import annotations

import io

import numpy as np
import pytest

from encodec_np import compression, geometry
from encodec_np.errors import EncodecError
from encodec_np.format import ecdc
from encodec_np.synthetic import test_signal


@pytest.mark.parametrize("which", ["24", "48"])
@pytest.mark.parametrize("length", [1, 320, 321, 53760])
def test_compress_decompress_equals_model_decode(which, length, model24, model48):
    model = model24 if which == "24" else model48
    x = test_signal("noise", model.channels, length, seed=length, sample_rate=model.sample_rate)
    frames = model.encode(x[None])
    want = model.decode(frames)[0, :, :length]

    data = compression.compress(model, x)
    header = ecdc.read_header(data)
    assert header == {"m": model.name, "al": length, "nc": 8 if which == "24" else 4, "lm": False}
    layout = list(geometry.segments(model.config, length))
    scale_bytes = 4 if model.normalize else 0
    assert len(data) == len(ecdc.header_bytes(model.name, length, header["nc"], False)) + sum(
        scale_bytes + ecdc.packed_size(header["nc"] * f, 10) for _, _, f in layout)

    _, read = ecdc.read_frames(data, model.config)
    assert len(read) == len(frames) == len(layout)
    for (codes, scale), (ref_codes, ref_scale), (_, _, n) in zip(read, frames, layout):
        assert codes.shape == (1, header["nc"], n)
        assert np.array_equal(codes, ref_codes)
        if model.normalize:
            assert scale.dtype == np.float32 and scale[0, 0] == np.float32(ref_scale[0, 0])
        else:
            assert scale is None and ref_scale is None

    wav, sr = compression.decompress(data, model=model)
    assert sr == model.sample_rate and wav.dtype == np.float32 and wav.shape == (model.channels, length)
    assert np.array_equal(wav, want)


def test_progress_path_gives_the_same_bytes_and_audio(model48):
    x = test_signal("chirp", 2, 60000, seed=3, sample_rate=48000)
    calls = []
    data = compression.compress(model48, x, progress=lambda *a: calls.append(a))
    assert data == compression.compress(model48, x)
    assert ("encoding", 2, 2) in calls and ("packing", 2, 2) in calls
    calls.clear()
    wav, _ = compression.decompress(data, model=model48, progress=lambda *a: calls.append(a))
    assert np.array_equal(wav, compression.decompress(data, model=model48)[0])
    assert ("reading", 2, 2) in calls and ("decoding", 2, 2) in calls


def test_progress_on_long_causal_input(model24):
    """24 kHz has no segments: long inputs report progress per streaming chunk, with the same result."""
    model24.long_input_seconds, model24.chunk_seconds = 0.1, 0.1  # 2400-sample chunks: 7 for this input
    try:
        x = test_signal("chirp", 1, 16000, seed=4, sample_rate=24000)
        calls = []
        data = compression.compress(model24, x, progress=lambda *a: calls.append(a))
        assert data == compression.compress(model24, x)
        assert [c for c in calls if c[0] == "encoding"] == [("encoding", i, 7) for i in range(1, 8)]
        calls.clear()
        wav, _ = compression.decompress(data, model=model24, progress=lambda *a: calls.append(a))
        assert np.array_equal(wav, compression.decompress(data, model=model24)[0])
        decoding = [c for c in calls if c[0] == "decoding"]
        assert len(decoding) == 8 and decoding[-1] == ("decoding", 8, 8)  # 50 frames in 7-frame chunks
    finally:
        model24.long_input_seconds, model24.chunk_seconds = 10.0, 1.0


def test_file_object_api(tmp_path, model24):
    x = test_signal("chirp", 1, 5000, seed=1, sample_rate=24000)
    path = tmp_path / "a.ecdc"
    with open(path, "wb") as f:
        compression.compress_to_file(model24, x, f)
    data = path.read_bytes()
    assert data == compression.compress(model24, x)
    assert ecdc.read_header(path) == ecdc.read_header(data) == ecdc.read_header(io.BytesIO(data))
    with open(path, "rb") as f:
        wav, sr = compression.decompress_from_file(f, model=model24)
    assert np.array_equal(wav, compression.decompress(data, model=model24)[0]) and sr == 24000


def test_bandwidth_sets_codebooks(model24):
    x = test_signal("noise", 1, 3000, seed=0, sample_rate=24000)
    sizes = {}
    for bw in model24.target_bandwidths:
        model24.set_target_bandwidth(bw)
        data = compression.compress(model24, x)
        nc = ecdc.read_header(data)["nc"]
        sizes[bw] = (nc, len(data) - len(ecdc.header_bytes(model24.name, 3000, nc, False)))
    model24.set_target_bandwidth(6.0)
    assert [k for k, _ in sizes.values()] == [2, 4, 8, 16, 32]
    assert [size for _, size in sizes.values()] == [ecdc.packed_size(k * 10, 10) for k in (2, 4, 8, 16, 32)]


def test_compress_input_errors(model24):
    with pytest.raises(EncodecError, match=r"\[C, T\]"):
        compression.compress(model24, np.zeros((1, 1, 10), np.float32))
    with pytest.raises(EncodecError, match="channel"):
        compression.compress(model24, np.zeros((2, 10), np.float32))
    with pytest.raises(EncodecError, match="NaN"):
        compression.compress(model24, np.full((1, 10), np.nan, np.float32))
    with pytest.raises(EncodecError, match="empty"):
        compression.compress(model24, np.zeros((1, 0), np.float32))


def test_model_resolution_errors(model24, model48):
    data = compression.compress(model24, test_signal("noise", 1, 700, seed=0, sample_rate=24000))
    with pytest.raises(EncodecError, match="encodec_48khz"):
        compression.decompress(data, model=model48)            # wrong model for the file
    other = ecdc.header_bytes("my_codec", 10, 1, False) + b"\0\0"
    with pytest.raises(EncodecError, match="'my_codec'"):
        compression.decompress(other)                          # unknown name: says which, no download
    with pytest.raises(EncodecError, match="bytes"):
        compression.decompress("not bytes")
