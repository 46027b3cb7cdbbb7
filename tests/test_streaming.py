"""Streaming equals one-shot: identical codes and waveform for any chunking."""
import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import encodec_np
from encodec_np import EncodecError
from encodec_np.streaming import StreamingDecoder, StreamingEncoder
from encodec_np.synthetic import random_model, test_signal


def small_24khz():
    cfg = encodec_np.encodec_24khz()
    return cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=4, dimension=16),
                       quantizer=dataclasses.replace(cfg.quantizer, dimension=16))


MODELS = {b: random_model(small_24khz(), seed=3, backend=b) for b in encodec_np.available_backends() if b != "cuda"}


def chunked(length, cuts):
    """Split [0, length) at the sorted cut points."""
    edges = [0] + sorted({c % length for c in cuts if 0 < c % length}) + [length]
    return list(zip(edges[:-1], edges[1:]))


@settings(max_examples=25)
@given(length=st.integers(1, 3000), cuts=st.lists(st.integers(1, 10**6), max_size=12),
       bandwidth=st.sampled_from([1.5, 3.0, 6.0, 12.0, 24.0]), batch=st.integers(1, 2),
       backend=st.sampled_from(sorted(MODELS)), seed=st.integers(0, 1000))
def test_streaming_encoder_equals_one_shot(length, cuts, bandwidth, batch, backend, seed):
    model = MODELS[backend]
    model.set_target_bandwidth(bandwidth)
    x = np.stack([test_signal("noise", 1, length, seed=seed + i) for i in range(batch)])
    expected = model.encode(x)[0][0]
    enc = StreamingEncoder(model)
    parts = [enc.push(x[..., a:b]) for a, b in chunked(length, cuts)] + [enc.flush()]
    got = np.concatenate(parts, axis=-1)
    assert all(p.shape[:2] == (batch, model.num_codebooks) for p in parts)
    if backend == "numba":  # fixed summation order: the same bits (tests/test_determinism.py)
        np.testing.assert_array_equal(got, expected)
    else:  # the reference's BLAS sums in a length-dependent order: a near-tie may flip one frame
        assert got.shape == expected.shape
        assert (got != expected).any(axis=1).sum() <= max(1, expected.shape[-1] // 50)


@settings(max_examples=25)
@given(frames=st.integers(1, 40), cuts=st.lists(st.integers(1, 1000), max_size=8),
       backend=st.sampled_from(sorted(MODELS)), seed=st.integers(0, 1000))
def test_streaming_decoder_equals_one_shot(frames, cuts, backend, seed):
    model = MODELS[backend]
    model.set_target_bandwidth(6.0)
    codes = np.random.default_rng(seed).integers(0, 1024, size=(1, 8, frames))
    expected = model.decode([(codes, None)])
    dec = StreamingDecoder(model)
    parts = [dec.push(codes[..., a:b]) for a, b in chunked(frames, cuts)] + [dec.flush()]
    got = np.concatenate(parts, axis=-1)
    assert got.shape == expected.shape
    if backend == "numba":  # fixed summation order: the same bits (tests/test_determinism.py)
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, atol=1e-5 * max(1.0, np.abs(expected).max()), rtol=0)


@pytest.mark.slow
def test_latency_is_exactly_as_documented():
    """Encoder: 7 frames at once after 2240 samples (start look-ahead), then one per 320 samples.
    Decoder: 2240 samples after 7 frames, then 320 per frame."""
    model = MODELS["numpy"]
    model.set_target_bandwidth(1.5)
    x = test_signal("chirp", 1, 3000)[None]
    enc = StreamingEncoder(model)
    released_at = []
    for i in range(3000):
        released_at += [i + 1] * enc.push(x[..., i:i + 1]).shape[-1]
    assert released_at == [2240] * 7 + [2560, 2880]
    assert enc.flush().shape[-1] == 1  # ceil(3000 / 320) = 10 frames in all
    dec = StreamingDecoder(model)
    sizes = [dec.push(np.zeros((1, 2, 1), np.int64)).shape[-1] for _ in range(10)]
    assert sizes == [0] * 6 + [2240, 320, 320, 320]
    assert dec.flush().shape[-1] == 0


def test_bad_use():
    model = MODELS["numpy"]
    model.set_target_bandwidth(6.0)
    enc = StreamingEncoder(model)
    with pytest.raises(EncodecError, match="floating point"):
        enc.push(np.zeros((1, 1, 10), np.int16))
    with pytest.raises(EncodecError, match="channel"):
        enc.push(np.zeros((1, 2, 10), np.float32))
    enc.push(np.zeros((1, 1, 10), np.float32))
    model.set_target_bandwidth(3.0)
    with pytest.raises(EncodecError, match="bandwidth changed"):
        enc.push(np.zeros((1, 1, 10), np.float32))
    model.set_target_bandwidth(6.0)
    enc.flush()
    with pytest.raises(EncodecError, match="flushed"):
        enc.push(np.zeros((1, 1, 10), np.float32))
    with pytest.raises(EncodecError, match="nothing was pushed"):
        StreamingEncoder(model).flush()
    cfg = encodec_np.encodec_32khz()  # non-causal and unsegmented: no exact streaming
    cfg = cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=2, dimension=8),
                      quantizer=dataclasses.replace(cfg.quantizer, dimension=8))
    with pytest.raises(EncodecError, match="not causal"):
        StreamingEncoder(random_model(cfg, 0, backend="numpy"))
    dec = StreamingDecoder(model)
    with pytest.raises(EncodecError, match=r"\[0, 1024\)"):
        dec.push(np.full((1, 8, 2), 5000))


@pytest.mark.parametrize("backend", sorted(MODELS))
def test_long_inputs_go_through_chunks_exactly(backend):
    """encode/decode of inputs longer than ``long_input_seconds`` stream internally: same result."""
    model = MODELS[backend]
    model.set_target_bandwidth(12.0)
    x = np.stack([test_signal("noise", 1, 9000, seed=s) for s in (4, 5)])
    frames = model.encode(x)  # 0.375 s: one pass
    expected = model.decode(frames)
    model.long_input_seconds, model.chunk_seconds = 0.1, 0.05  # 1200-sample chunks: edges fall mid-frame
    try:
        chunked = model.encode(x)
        np.testing.assert_array_equal(chunked[0][0], frames[0][0])
        got = model.decode(chunked)
    finally:
        model.long_input_seconds, model.chunk_seconds = 10.0, 1.0
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max(), rtol=0)


def small_48khz():
    cfg = encodec_np.encodec_48khz()
    # Short segments keep the test fast; the segment logic is the same as for 1 s.
    return cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=2, dimension=8),
                       quantizer=dataclasses.replace(cfg.quantizer, dimension=8), segment=0.02)


MODEL_48 = random_model(small_48khz(), seed=1, backend="numpy")


@settings(max_examples=20)
@given(length=st.integers(1, 4000), cuts=st.lists(st.integers(1, 10**6), max_size=10),
       frame_cuts=st.lists(st.integers(1, 100), max_size=5), seed=st.integers(0, 1000))
def test_segmented_streaming_equals_one_shot(length, cuts, frame_cuts, seed):
    model = MODEL_48
    model.set_target_bandwidth(6.0)
    x = test_signal("noise", 2, length, seed=seed, sample_rate=48000)[None]
    expected = model.encode(x)
    enc = StreamingEncoder(model)
    frames = [f for a, b in chunked(length, cuts) for f in enc.push(x[..., a:b])] + enc.flush()
    assert len(frames) == len(expected)
    for (c1, s1), (c2, s2) in zip(frames, expected):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(s1, s2)
    audio = model.decode(expected)
    dec = StreamingDecoder(model)
    parts = [dec.push(frames[a:b]) for a, b in chunked(len(frames), frame_cuts)] + [dec.flush()]
    got = np.concatenate(parts, axis=-1)
    assert got.shape == audio.shape
    np.testing.assert_allclose(got, audio, atol=1e-6 * max(1.0, np.abs(audio).max()), rtol=0)


@pytest.mark.slow
def test_stream_command_through_a_pipe(tmp_path):
    """`encodec-np stream` between pipes gives the one-shot codes, and --decode the one-shot audio:
    framed by default (header + end record: the output has the input's length), or --raw."""
    import subprocess
    import sys

    from encodec_np.format import codestream
    model = MODELS["numpy"]
    path = tmp_path / "tiny.safetensors"
    encodec_np.save_model(model, path)
    pcm = np.round(test_signal("chirp", 1, 5000, seed=2)[0] * 32767).astype("<i2")
    cmd = [sys.executable, "-m", "encodec_np.cli", "stream", "--model", str(path), "--chunk", "777",
           "--backend", "numpy"]
    model.set_target_bandwidth(6.0)
    expected = model.encode((pcm / 32768.0).astype(np.float32)[None, None])[0][0]
    reference = np.clip(np.round(model.decode([(expected, None)])[0, 0] * 32767), -32768, 32767)
    header = codestream.header_bytes(model.name, 8)
    for raw in (False, True):
        flags = ["-b", "6"] + (["--raw"] if raw else [])
        run = subprocess.run(cmd + flags, input=pcm.tobytes(), capture_output=True, timeout=300)
        assert run.returncode == 0, run.stderr.decode()
        body = run.stdout
        if not raw:
            assert body.startswith(header) and body.endswith(codestream.end_bytes(5000))
            body = body[len(header):-codestream.END.size]
        codes = np.frombuffer(body, dtype="<i2").reshape(-1, 8).T[None].astype(np.int64)
        np.testing.assert_array_equal(codes, expected)
        dec = subprocess.run(cmd + ["--decode"] + (flags if raw else []), input=run.stdout, capture_output=True,
                             timeout=300)
        assert dec.returncode == 0, dec.stderr.decode()
        audio = np.frombuffer(dec.stdout, dtype="<i2")
        want = reference if raw else reference[:5000]  # whole frames without the end record
        assert audio.shape == want.shape
        assert np.abs(audio - want).max() <= 1  # int16 rounding of float32-close outputs
        if not raw:
            framed = run.stdout
    # The header makes a mismatch an error, not wrong audio.
    wrong_bw = subprocess.run(cmd + ["--decode", "-b", "3"], input=framed, capture_output=True, timeout=300)
    assert wrong_bw.returncode == 1 and b"made at 6 kbps (8 codebooks), not -b 3" in wrong_bw.stderr
    other = codestream.header_bytes("encodec_48khz", 8) + framed[len(header):]
    wrong_model = subprocess.run(cmd + ["--decode"], input=other, capture_output=True, timeout=300)
    assert wrong_model.returncode == 1 and b"made by the model 'encodec_48khz'" in wrong_model.stderr
    headerless = subprocess.run(cmd + ["--decode"], input=framed[len(header):], capture_output=True, timeout=300)
    assert headerless.returncode == 1 and b"--raw" in headerless.stderr
    bad = subprocess.run(cmd + ["--raw"], input=b"\x01", capture_output=True, timeout=300)
    assert bad.returncode == 1 and b"stray bytes" in bad.stderr


