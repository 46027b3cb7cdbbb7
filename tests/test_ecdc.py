"""The .ecdc format (encodec_np.format.ecdc): byte layout, round trips, #35 frame counts, robustness, Meta oracle."""
from __future__ import annotations

import functools
import importlib
import io
import json
import math
import struct

import numpy as np
import pytest
from conftest import requires_torch, tiny_codec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from encodec_np import compression, geometry
from encodec_np.config import encodec_24khz, encodec_48khz
from encodec_np.errors import EncodecError
from encodec_np.format import ecdc
from encodec_np.synthetic import random_model, test_signal


def reference_pack(values, bits) -> bytes:
    """Bit-by-bit packer written from the format description (LSB first, zero padded)."""
    acc, nbits, out = 0, 0, bytearray()
    for v in values:
        acc |= int(v) << nbits
        nbits += bits
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc)
    return bytes(out)


# --------------------------------------------------------------------------- byte layout
def test_header_bytes_by_hand():
    js = b'{"m": "encodec_24khz", "al": 24000, "nc": 8, "lm": false}'
    assert ecdc.header_bytes("encodec_24khz", 24000, 8, False) == b"ECDC\x00\x00\x00\x00\x39" + js
    h = ecdc.header_bytes("encodec_48khz", 1, 16, True)
    assert h[:9] == b"ECDC\x00" + struct.pack(">I", len(h) - 9)
    assert h[9:] == b'{"m": "encodec_48khz", "al": 1, "nc": 16, "lm": true}'
    assert ecdc.read_header(h) == {"m": "encodec_48khz", "al": 1, "nc": 16, "lm": True}
    assert list(ecdc.read_header(h)) == ["m", "al", "nc", "lm"]


@pytest.mark.parametrize("codes, bits, packed", [
    ([[1], [2]], 10, b"\x01\x08\x00"),              # 1 at bit 0, 2 at bit 10 (= byte 1, bit 3)
    ([[1023]], 10, b"\xff\x03"),
    ([[1, 3], [2, 4]], 10, b"\x01\x08\x30\x00\x01"),  # time-major: 1, 2, 3, 4 at bits 0, 10, 20, 30
    ([[1, 2, 3]], 4, b"\x21\x03"),
    ([[1, 0, 1, 1, 0, 0, 0, 0, 1]], 1, b"\x0d\x01"),
    ([[5, 6]], 3, b"\x35"),                          # 101 + 110 << 3 = 0b110101
    (np.zeros((2, 0), np.int64), 10, b""),
])
def test_pack_by_hand(codes, bits, packed):
    codes = np.asarray(codes, dtype=np.int64)
    assert ecdc.pack_codes(codes, bits) == packed
    assert ecdc.packed_size(codes.size, bits) == len(packed)
    assert np.array_equal(ecdc.unpack_codes(packed, bits, *codes.shape), codes)


@given(bits=st.integers(1, 16), k=st.integers(1, 9), t=st.integers(0, 70), seed=st.integers(0, 2**32 - 1))
def test_pack_matches_reference_and_round_trips(bits, k, t, seed):
    codes = np.random.default_rng(seed).integers(0, 1 << bits, (k, t))
    packed = ecdc.pack_codes(codes, bits)
    assert packed == reference_pack(codes.T.reshape(-1), bits)
    assert np.array_equal(ecdc.unpack_codes(packed + b"\xff" * 3, bits, k, t), codes)  # trailing bytes ignored


def test_pack_large_crosses_chunks():
    codes = np.random.default_rng(0).integers(0, 1024, (32, 5000))  # 160000 codes > one packing step
    packed = ecdc.pack_codes(codes, 10)
    assert len(packed) == 200000
    assert np.array_equal(ecdc.unpack_codes(packed, 10, 32, 5000), codes)
    assert packed[:1000] == reference_pack(codes.T.reshape(-1)[:800], 10)


def test_pack_rejects_bad_codes():
    with pytest.raises(EncodecError, match=r"\[0, 1024\)"):
        ecdc.pack_codes(np.array([[1024]]), 10)
    with pytest.raises(EncodecError, match=r"\[0, 1024\)"):
        ecdc.pack_codes(np.array([[-1]]), 10)
    with pytest.raises(EncodecError, match="integers"):
        ecdc.pack_codes(np.array([[1.0]]), 10)
    with pytest.raises(EncodecError, match="truncated"):
        ecdc.unpack_codes(b"\x00", 10, 1, 1)


# --------------------------------------------------------------------------- frame counts (Meta #35)
def test_frames_per_segment_issue_35():
    cfg = encodec_24khz()
    # Meta 0.1.1's reader: ceil(53760 / 24000 * 75) = 169, one more frame than the encoder makes
    assert math.ceil(53760 / cfg.sample_rate * cfg.frame_rate) == 169
    assert list(geometry.segments(cfg, 53760)) == [(0, 53760, 168)]
    assert list(geometry.segments(cfg, 1)) == [(0, 1, 1)]
    assert list(geometry.segments(cfg, 321)) == [(0, 321, 2)]
    assert list(geometry.segments(encodec_48khz(), 53760)) == [(0, 48000, 150), (47520, 6240, 20)]
    assert geometry.num_segments(encodec_48khz(), 53760) == 2


# --------------------------------------------------------------------------- round trips
def test_write_frames_checks_its_input(model48):
    cfg = model48.config
    codes = np.zeros((1, 4, 149), np.int64)  # 47520 samples: one segment of ceil(47520 / 320) = 149 frames
    with pytest.raises(EncodecError, match="segment"):
        ecdc.write_frames(io.BytesIO(), cfg.name, cfg, [(codes, 1.0)], 53760)
    with pytest.raises(EncodecError, match="scale"):
        ecdc.write_frames(io.BytesIO(), cfg.name, cfg, [(codes, None)], 47520)
    with pytest.raises(EncodecError, match="149 frames"):
        ecdc.write_frames(io.BytesIO(), cfg.name, cfg, [(codes[:, :, :10], 1.0)], 47520)
    with pytest.raises(EncodecError, match="lm="):
        ecdc.write_frames(io.BytesIO(), cfg.name, cfg, [(codes, 1.0)], 47520, use_lm=True)
    out = io.BytesIO()
    ecdc.write_frames(out, cfg.name, cfg, [(codes[0], np.float32(0.5))], 47520)
    assert out.getvalue()[-(4 + 745):-745] == struct.pack(">f", 0.5)


# --------------------------------------------------------------------------- malformed files
def _file(model, length=700, seed=0):
    x = test_signal("noise", model.channels, length, seed=seed, sample_rate=model.sample_rate)
    return compression.compress(model, x)


def _with_header(meta_json: bytes, payload=b"") -> bytes:
    return b"ECDC\x00" + struct.pack(">I", len(meta_json)) + meta_json + payload


@pytest.mark.parametrize("data, match", [
    (b"", "not an .ecdc"),
    (b"EC", "truncated"),
    (b"RIFF\x00\x00\x00\x00WAVE", "not an .ecdc"),
    (b"ECDC\x01\x00\x00\x00\x02{}", "version 1"),
    (b"ECDC\x00\xff\xff\xff\xff", "claims"),
    (b"ECDC\x00\x00\x00\x00\x40{}", "truncated"),
    (_with_header(b"{not json"), "invalid JSON"),
    (_with_header(b"\xff\xfe"), "invalid JSON"),
    (_with_header(b"[1, 2]"), "JSON object"),
    (_with_header(b'{"m": "x", "al": 1, "nc": 1}'), "missing"),
    (_with_header(b'{"m": 3, "al": 1, "nc": 1, "lm": false}'), "model name"),
    (_with_header(b'{"m": "x", "al": 1.5, "nc": 1, "lm": false}'), "integer"),
    (_with_header(b'{"m": "x", "al": true, "nc": 1, "lm": false}'), "integer"),
    (_with_header(b'{"m": "x", "al": -5, "nc": 1, "lm": false}'), "outside"),
    (_with_header(b'{"m": "x", "al": 0, "nc": 1, "lm": false}'), "outside"),
    (_with_header(b'{"m": "x", "al": 99999999999999999999, "nc": 1, "lm": false}'), "outside"),
    (_with_header(b'{"m": "x", "al": 1, "nc": 0, "lm": false}'), "outside"),
    (_with_header(b'{"m": "x", "al": 1, "nc": 1, "lm": 0}'), "'lm'"),
    (_with_header(b"[" * 30000 + b"]" * 30000), "JSON"),
])
def test_malformed_headers(data, match):
    with pytest.raises(EncodecError, match=match):
        ecdc.read_header(data)


def test_malformed_payloads(model24, model48):
    good = _file(model24)
    with pytest.raises(EncodecError, match="truncated"):
        compression.decompress(good[:-1], model=model24)
    with pytest.raises(EncodecError, match="truncated"):
        compression.decompress(good[:12], model=model24)
    name = model24.name
    with pytest.raises(EncodecError, match="codebooks"):   # nc above the model's n_q
        compression.decompress(_with_header(json.dumps({"m": name, "al": 10, "nc": 33, "lm": False}).encode(), b"\0" * 99),
                        model=model24)
    # an absurd length with a tiny payload fails fast on the missing bytes, allocating nothing big
    huge = _with_header(json.dumps({"m": name, "al": 2**32, "nc": 32, "lm": False}).encode(), b"\0" * 10)
    with pytest.raises(EncodecError, match="truncated"):
        compression.decompress(huge, model=model24)
    huge48 = _with_header(json.dumps({"m": model48.name, "al": 2**32, "nc": 4, "lm": False}).encode(), b"\0" * 10)
    with pytest.raises(EncodecError, match="scale|truncated"):
        compression.decompress(huge48, model=model48)
    good48 = bytearray(_file(model48))
    start = len(ecdc.header_bytes(model48.name, 700, 4, False))
    for bad in (float("nan"), -1.0, 0.0, float("inf")):
        good48[start:start + 4] = struct.pack(">f", bad)
        with pytest.raises(EncodecError, match="scale"):
            compression.decompress(bytes(good48), model=model48)


# --------------------------------------------------------------------------- fuzzing
@pytest.fixture(scope="module")
def fuzz_models():
    """Custom names, so that nothing is ever downloaded while fuzzing."""
    a = random_model(tiny_codec(encodec_24khz, "fuzz24"), 5, backend="numpy")
    b = random_model(tiny_codec(encodec_48khz, "fuzz48"), 6, backend="numpy")
    a.set_target_bandwidth(3.0)
    b.set_target_bandwidth(3.0)
    files = {a.name: _file(a, 900, 1), b.name: _file(b, 900, 2)}
    return {a.name: a, b.name: b}, files


def _decode_or_encodec_error(data, model):
    try:
        wav, _ = compression.decompress(data, model=model)
    except EncodecError:
        return
    assert wav.ndim == 2 and wav.shape[0] == model.channels and np.isfinite(wav).all()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), which=st.sampled_from(["fuzz24", "fuzz48"]))
def test_fuzz_random_bytes(fuzz_models, data, which):
    models, _ = fuzz_models
    _decode_or_encodec_error(data, models[which])
    _decode_or_encodec_error(b"ECDC\x00" + data, models[which])


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["fuzz24", "fuzz48"]), cut=st.integers(0, 10_000),
       edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
       tail=st.binary(max_size=8))
def test_fuzz_mutated_files(fuzz_models, which, cut, edits, tail):
    models, files = fuzz_models
    data = bytearray(files[which])
    for pos, value in edits:
        data[pos % len(data)] = value
    data = bytes(data[:cut % (len(data) + 1)]) + tail
    _decode_or_encodec_error(data, models[which])
    try:
        ecdc.read_header(data)
    except EncodecError:
        pass


# --------------------------------------------------------------------------- Meta's encodec as the oracle
@functools.lru_cache(maxsize=None)
def _official_with_our_weights(preset, seed):
    """(our full-size random model, Meta's model carrying the same weights); built once per module."""
    import torch
    from oracle import import_encodec

    from encodec_np.io.checkpoint import to_official_state

    encodec = import_encodec()
    ours = random_model(preset(), seed)
    ctor = {"encodec_24khz": encodec.EncodecModel.encodec_model_24khz,
            "encodec_48khz": encodec.EncodecModel.encodec_model_48khz}[ours.name]
    theirs = ctor(pretrained=False)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in to_official_state(ours.params, ours.config).items()}
    theirs.load_state_dict(state)
    theirs.name = ours.name
    theirs.eval()
    return ours, theirs


def _meta_compress_module(monkeypatch, official):
    mc = importlib.import_module("encodec.compress")
    monkeypatch.setitem(mc.MODELS, official.name, lambda: official)
    return mc


@pytest.mark.slow
@requires_torch
@pytest.mark.oracle
@pytest.mark.parametrize("preset, bandwidth, length", [(encodec_24khz, 6.0, 36000), (encodec_48khz, 6.0, 72000)])
def test_interchangeable_with_meta(monkeypatch, preset, bandwidth, length):
    import torch

    ours, official = _official_with_our_weights(preset, 11)
    mc = _meta_compress_module(monkeypatch, official)
    ours.set_target_bandwidth(bandwidth)
    official.set_target_bandwidth(bandwidth)
    x = test_signal("noise", ours.channels, length, seed=4, sample_rate=ours.sample_rate)
    xt = torch.from_numpy(x)

    # Meta's file: we read exactly its codes and scales, and rewrite exactly its bytes
    theirs = mc.compress(official, xt, use_lm=False)
    with torch.no_grad():
        their_frames = [(c.numpy(), None if s is None else s.numpy()) for c, s in official.encode(xt[None])]
    meta, frames = ecdc.read_frames(theirs, ours.config)
    assert meta == {"m": ours.name, "al": length, "nc": frames[0][0].shape[1], "lm": False}
    for (codes, scale), (ref, ref_scale) in zip(frames, their_frames, strict=True):
        assert np.array_equal(codes, ref)
        if ref_scale is not None:
            assert scale[0, 0] == np.float32(ref_scale.reshape(-1)[0])
    out = io.BytesIO()
    ecdc.write_frames(out, ours.name, ours.config, their_frames, length)
    assert out.getvalue() == theirs

    # ... and decode it to what Meta decodes
    their_wav = mc.decompress(theirs)[0].numpy()
    our_wav, sr = compression.decompress(theirs, model=ours)
    assert sr == ours.sample_rate and our_wav.shape == their_wav.shape == (ours.channels, length)
    peak = np.abs(their_wav).max()
    assert np.abs(our_wav - their_wav).max() <= 1e-4 * peak

    # our file decodes with Meta's tool to what we decode
    mine = compression.compress(ours, x)
    assert mine[:9 + ecdc.HEADER.unpack(mine[:9])[2]] == theirs[:9 + ecdc.HEADER.unpack(theirs[:9])[2]]
    _, my_frames = ecdc.read_frames(mine, ours.config)
    if all(np.array_equal(a[0], b[0]) for a, b in zip(my_frames, frames)):  # no float32 near-tie flipped a code
        if ours.normalize:  # the RMS scales may differ in the last bit (another summation order)
            for (_, a), (_, b) in zip(my_frames, frames):
                assert np.isclose(a[0, 0], b[0, 0], rtol=1e-6, atol=0)
        else:
            assert mine == theirs
    their_decode = mc.decompress(mine)[0].numpy()
    our_decode = compression.decompress(mine, model=ours)[0]
    assert np.abs(their_decode - our_decode).max() <= 1e-4 * np.abs(their_decode).max()


@requires_torch
@pytest.mark.oracle
def test_meta_issue_35_file_decodes_here(monkeypatch):
    """53760 samples at 24 kHz: Meta 0.1.1 cannot read back its own file (#35); we can, exactly."""
    import torch

    ours, official = _official_with_our_weights(encodec_24khz, 11)
    mc = _meta_compress_module(monkeypatch, official)
    official.set_target_bandwidth(1.5)
    x = torch.from_numpy(test_signal("chirp", 1, 53760, seed=2, sample_rate=24000))
    theirs = mc.compress(official, x, use_lm=False)
    with torch.no_grad():
        (codes, _), = official.encode(x[None])
    assert codes.shape[-1] == 168
    with pytest.raises(EOFError):
        mc.decompress(theirs)
    _, frames = ecdc.read_frames(theirs, ours.config)
    assert np.array_equal(frames[0][0], codes.numpy())


@requires_torch
@given(bits=st.integers(1, 16), n=st.integers(0, 300), seed=st.integers(0, 2**32 - 1))
def test_packer_matches_meta_bitpacker(bits, n, seed):
    from oracle import import_encodec

    import_encodec()
    binary = importlib.import_module("encodec.binary")
    values = np.random.default_rng(seed).integers(0, 1 << bits, n)
    buf = io.BytesIO()
    packer = binary.BitPacker(bits, buf)
    for v in values.tolist():
        packer.push(v)
    packer.flush()
    assert ecdc.pack_codes(values[None], bits) == buf.getvalue()
    buf.seek(0)
    unpacker = binary.BitUnpacker(bits, buf)
    got = [unpacker.pull() for _ in range(n)]
    assert np.array_equal(ecdc.unpack_codes(buf.getvalue(), bits, 1, n)[0], np.array(got, dtype=np.int64))


# --------------------------------------------------------------------------- the LM hook (encodec_np.format.lm)
def _small_lm(n_q, seed=3):
    pytest.importorskip("encodec_np.format.lm")
    test_lm = pytest.importorskip("test_lm")
    from encodec_np.format.lm import LMModel

    return LMModel.from_state(test_lm.random_lm_state(n_q, dim=32, layers=1, hidden=64, seed=seed))


@pytest.mark.parametrize("which", ["24", "48"])
def test_lm_coded_round_trip(which, model24, model48):
    """use_lm=True: header says so, each segment is LM-coded, and the codes come back exactly."""
    model = model24 if which == "24" else model48
    lm = _small_lm(model.config.quantizer.n_q)
    x = test_signal("noise", model.channels, 50000, seed=0, sample_rate=model.sample_rate)
    data = compression.compress(model, x, use_lm=True, lm=lm)
    assert ecdc.read_header(data)["lm"] is True
    _, coded = ecdc.read_frames(data, model.config, lm=lm)
    _, plain = ecdc.read_frames(compression.compress(model, x), model.config)
    assert all(np.array_equal(a[0], b[0]) and (a[1] is None or a[1] == b[1]) for a, b in zip(coded, plain))
    wav, _ = compression.decompress(data, model=model, lm=lm)
    assert np.array_equal(wav, compression.decompress(compression.compress(model, x), model=model)[0])
    with pytest.raises(EncodecError):
        compression.decompress(data[:-5], model=model, lm=lm)


def _strip_crc(data: bytes) -> bytes:
    """The same LM-coded file with Meta's header (no "crc" field), as Meta's tool writes it."""
    meta = ecdc.read_header(data)
    old = len(ecdc.header_bytes(meta["m"], meta["al"], meta["nc"], True, meta["crc"]))
    return ecdc.header_bytes(meta["m"], meta["al"], meta["nc"], True) + data[old:]


def test_lm_files_carry_a_code_checksum(model24):
    """Our LM files record the codes' CRC-32; a wrong LM is an error, never wrong audio."""
    lm = _small_lm(model24.config.quantizer.n_q)
    x = test_signal("noise", 1, 9000, seed=1, sample_rate=model24.sample_rate)
    data = compression.compress(model24, x, use_lm=True, lm=lm)
    meta = ecdc.read_header(data)
    _, plain = ecdc.read_frames(compression.compress(model24, x), model24.config)
    assert meta["crc"] == ecdc.codes_crc32(codes[0] for codes, _ in plain)
    # codes that decode without a coder error but differ from the recorded ones
    bad = ecdc.header_bytes(meta["m"], meta["al"], meta["nc"], True, meta["crc"] ^ 1) + \
        data[len(ecdc.header_bytes(meta["m"], meta["al"], meta["nc"], True, meta["crc"])):]
    with pytest.raises(EncodecError, match="checksum differs"):
        compression.decompress(bad, model=model24, lm=lm)
    other = _small_lm(model24.config.quantizer.n_q, seed=4)  # another LM: a coder error or a checksum error
    with pytest.raises(EncodecError, match="checksum differs|corrupt arithmetic"):
        compression.decompress(data, model=model24, lm=other)


def test_lm_files_without_checksum_are_refused(model24):
    """An LM file without "crc" (Meta's tool) is refused before decoding unless trusted."""
    lm = _small_lm(model24.config.quantizer.n_q)
    x = test_signal("noise", 1, 9000, seed=2, sample_rate=model24.sample_rate)
    meta_style = _strip_crc(compression.compress(model24, x, use_lm=True, lm=lm))
    with pytest.raises(EncodecError, match="Meta's encodec tool.*trust_lm"):
        compression.decompress(meta_style, model=model24, lm=lm)
    wav, _ = compression.decompress(meta_style, model=model24, lm=lm, trust_lm=True)
    assert np.array_equal(wav, compression.decompress(compression.compress(model24, x), model=model24)[0])


@pytest.mark.parametrize("crc", [-1, 1 << 32, "12", 1.5, True])
def test_bad_crc_field_is_rejected(crc):
    js = json.dumps({"m": "encodec_24khz", "al": 10, "nc": 2, "lm": True, "crc": crc}).encode()
    with pytest.raises(EncodecError, match="crc"):
        ecdc.read_header(ecdc.HEADER.pack(b"ECDC", 0, len(js)) + js)
