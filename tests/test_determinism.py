"""The numba backend gives the same bits for any chunking, thread count and batch.

Every assertion is ``np.array_equal``: the kernels sum each output element in
one fixed order (``kernels/cpu.py``), so a sample computed from a window of
the input, inside a batch, on another tile length or another thread count must
round exactly as in one pass. The RVQ cases are built with exact ties and
near-ties, where a change of summation order flips a code.
"""
import dataclasses

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import encodec_np
from encodec_np.kernels import cpu
from encodec_np.streaming import StreamingDecoder, StreamingEncoder
from encodec_np.synthetic import random_model, test_signal

dtypes = st.sampled_from([np.float32, np.float64])


def _rng(seed):
    return np.random.default_rng(seed)


@settings(max_examples=40)
@given(c_in=st.integers(1, 9), c_out=st.integers(1, 300), taps=st.integers(1, 13), n_out=st.integers(1, 700),
       items=st.integers(1, 3), dtype=dtypes, seed=st.integers(0, 2**16))
def test_every_tile_and_the_channel_kernel_give_the_same_bits(c_in, c_out, taps, n_out, items, dtype, seed):
    rng = _rng(seed)
    rows = rng.integers(0, c_in, taps).astype(np.int64)
    shifts = rng.integers(0, 5, taps).astype(np.int64)
    length = -(-n_out // max(cpu.TILES)) * max(cpu.TILES) + 5
    src = np.zeros((items, c_in, length), dtype)
    src[..., :n_out + 4] = rng.standard_normal((items, c_in, n_out + 4))
    weight = rng.standard_normal((c_out, taps)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    outs = []
    for kernel in cpu._CORRELATE.values():
        out = np.empty((items, c_out, n_out), dtype)
        kernel(src, weight, bias, rows, shifts, n_out, out)
        outs.append(out)
    out = np.empty((items, c_out, n_out), dtype)
    cpu._correlate_channels(src, np.ascontiguousarray(weight.T), bias, rows, shifts, n_out, out)
    outs.append(out)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])


@settings(max_examples=40)
@given(c_in=st.integers(1, 6), c_out=st.integers(1, 9), k=st.integers(1, 9), stride=st.integers(1, 5),
       dilation=st.integers(1, 3), frames=st.integers(1, 600), start=st.integers(0, 600), items=st.integers(1, 3),
       dtype=dtypes, seed=st.integers(0, 2**16))
def test_conv_on_a_window_equals_the_same_outputs_of_one_pass(c_in, c_out, k, stride, dilation, frames, start,
                                                               items, dtype, seed):
    """Output frames ``[a, b)`` from just the samples they read, and each item alone, equal one pass."""
    rng = _rng(seed)
    span = (k - 1) * dilation + 1
    x = rng.standard_normal((items, c_in, (frames - 1) * stride + span)).astype(dtype)
    w = rng.standard_normal((c_out, c_in, k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    full = cpu.conv1d(x, w, b, stride, dilation)
    a = start % frames
    part = cpu.conv1d(x[..., a * stride:], w, b, stride, dilation)
    assert np.array_equal(part, full[..., a:])
    for i in range(items):
        assert np.array_equal(cpu.conv1d(x[i:i + 1], w, b, stride, dilation), full[i:i + 1])


@settings(max_examples=40)
@given(c_in=st.integers(1, 6), c_out=st.integers(1, 6), stride=st.integers(1, 6), extra=st.integers(0, 8),
       frames=st.integers(1, 300), start=st.integers(0, 300), dtype=dtypes, seed=st.integers(0, 2**16))
def test_transposed_conv_on_a_window_equals_one_pass(c_in, c_out, stride, extra, frames, start, dtype, seed):
    """A window of frames from ``a - J + 1`` gives the outputs of frames ``a ..`` exactly (what streaming uses)."""
    rng = _rng(seed)
    k = stride + extra
    keep = -(-k // stride) - 1
    x = rng.standard_normal((2, c_in, frames)).astype(dtype)
    w = rng.standard_normal((c_in, c_out, k)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    full = cpu.conv_transpose1d(x, w, b, stride)
    a = start % frames
    lo = max(0, a - keep)
    window = cpu.conv_transpose1d(x[..., lo:], w, b, stride)
    # The outputs of frames a.. (their own slots up to the end) read only frames lo..
    assert np.array_equal(window[..., (a - lo) * stride:], full[..., a * stride:])
    assert np.array_equal(cpu.conv_transpose1d(x[1:], w, b, stride), full[1:])


@settings(max_examples=20)
@given(steps=st.integers(1, 60), cut=st.integers(0, 60), hidden=st.integers(1, 24), items=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_lstm_in_two_pieces_with_its_state_equals_one_pass(steps, cut, hidden, items, seed):
    rng = _rng(seed)
    channels = hidden
    layers = [tuple(rng.standard_normal(shape).astype(np.float32) * 0.3
                    for shape in ((4 * hidden, channels), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)))
              for _ in range(2)]
    x = rng.standard_normal((items, channels, steps)).astype(np.float32)
    full, state = cpu.lstm(x, layers)
    a = cut % steps
    first, mid = cpu.lstm(x[..., :a], layers) if a else (x[..., :0], None)
    second, end = cpu.lstm(x[..., a:], layers, mid)
    assert np.array_equal(np.concatenate([first, second], axis=-1), full)
    assert all(np.array_equal(u, v) for s, t in zip(state, end) for u, v in zip(s, t))
    alone, _ = cpu.lstm(x[-1:], layers)
    assert np.array_equal(alone, full[-1:])


@settings(max_examples=25)
@given(steps=st.integers(0, 40), hidden=st.integers(1, 70), items=st.integers(1, 3), workers=st.integers(1, 5),
       chunk=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_lstm_recurrence_bits_do_not_depend_on_workers_or_chunks(steps, hidden, items, workers, chunk, seed):
    """More workers than threads included: whoever runs claims the work (no deadlock, same bits)."""
    rng = _rng(seed)
    gates = rng.standard_normal((items, steps, 4 * hidden)).astype(np.float32)
    w_hh = (rng.standard_normal((4 * hidden, hidden)) * 0.3).astype(np.float32)
    h0 = rng.standard_normal((items, hidden)).astype(np.float32)
    c0 = rng.standard_normal((items, hidden)).astype(np.float32)

    def run(n_workers, size):
        h, c, out = h0.copy(), c0.copy(), np.empty((items, steps, hidden), np.float32)
        cpu._lstm_recurrence(gates, w_hh, h, c, out, n_workers, size, np.zeros(steps * n_workers, np.int64),
                             np.zeros(steps, np.int64))
        return h, c, out

    expected = run(1, hidden)
    for got in (run(workers, chunk), run(workers + 1, 1)):
        assert all(np.array_equal(u, v) for u, v in zip(got, expected))
    if steps:
        assert np.array_equal(expected[0], expected[2][:, -1])


def _tied_codebooks(rng, rows, dim, bins, books):
    """Codebooks and inputs with exact ties (duplicate codes) and near-ties (codes a few ulps apart)."""
    codebooks = rng.standard_normal((books, bins, dim)).astype(np.float32)
    codebooks[:, 1::3] = codebooks[:, 0::3][:, :codebooks[:, 1::3].shape[1]]  # exact duplicates
    nudge = np.float32(1 + 4 * np.finfo(np.float32).eps)
    codebooks[:, 2::3] = codebooks[:, 0::3][:, :codebooks[:, 2::3].shape[1]] * nudge
    x = codebooks[0, rng.integers(0, bins, rows)] + np.float32(1e-3) * rng.standard_normal((rows, dim)).astype(
        np.float32)
    return x, codebooks


@settings(max_examples=30)
@given(rows=st.integers(1, 300), dim=st.integers(1, 40), bins=st.integers(2, 90), books=st.integers(1, 4),
       start=st.integers(0, 300), seed=st.integers(0, 2**16))
def test_rvq_codes_of_any_subset_of_rows_are_the_codes_of_all_rows(rows, dim, bins, books, start, seed):
    x, codebooks = _tied_codebooks(_rng(seed), rows, dim, bins, books)
    full = cpu.rvq_encode(x, codebooks)
    a = start % rows
    assert np.array_equal(cpu.rvq_encode(x[a:], codebooks), full[:, a:])
    assert np.array_equal(cpu.rvq_encode(x[a:a + 1], codebooks), full[:, a:a + 1])


# --------------------------------------------------------------------------- whole model
def _small(cfg):
    return cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=4, dimension=16),
                       quantizer=dataclasses.replace(cfg.quantizer, dimension=16))


CAUSAL = random_model(_small(encodec_np.encodec_24khz()), seed=5, backend="numba")
SEGMENTED = random_model(_small(encodec_np.encodec_48khz()), seed=6, backend="numba")


def _cuts(length, cuts):
    edges = [0] + sorted({c % length for c in cuts if 0 < c % length}) + [length]
    return list(zip(edges[:-1], edges[1:]))


@settings(max_examples=15)
@given(length=st.integers(1, 5000), cuts=st.lists(st.integers(1, 10**6), max_size=10), seed=st.integers(0, 1000))
def test_streamed_codes_and_audio_are_the_one_pass_bits(length, cuts, seed):
    model = CAUSAL
    model.set_target_bandwidth(24.0)
    x = test_signal("noise", 1, length, seed=seed)[None]
    codes = model.encode(x)[0][0]
    enc = StreamingEncoder(model)
    streamed = np.concatenate([enc.push(x[..., a:b]) for a, b in _cuts(length, cuts)] + [enc.flush()], axis=-1)
    assert np.array_equal(streamed, codes)
    audio = model.decode([(codes, None)])
    dec = StreamingDecoder(model)
    frames = codes.shape[-1]
    out = np.concatenate([dec.push(codes[..., a:b]) for a, b in _cuts(frames, cuts)] + [dec.flush()], axis=-1)
    assert np.array_equal(out, audio)


@pytest.mark.parametrize("chunk_seconds", [0.013, 0.1, 0.37])
def test_long_input_chunk_size_does_not_change_a_bit(chunk_seconds):
    model = random_model(_small(encodec_np.encodec_24khz()), seed=5, backend="numba")
    model.set_target_bandwidth(6.0)
    x = test_signal("chirp", 1, 24000, seed=2)[None]
    codes = model.encode(x)[0][0]
    audio = model.decode([(codes, None)])
    model.long_input_seconds, model.chunk_seconds = 0.05, chunk_seconds  # now everything goes through chunks
    assert np.array_equal(model.encode(x)[0][0], codes)
    assert np.array_equal(model.decode([(codes, None)]), audio)


@pytest.mark.parametrize("model", [CAUSAL, SEGMENTED], ids=["24khz", "48khz"])
def test_thread_count_and_batch_composition_do_not_change_a_bit(model):
    model.set_target_bandwidth(6.0)
    rng = _rng(0)
    x = (0.3 * rng.standard_normal((3, model.channels, int(1.3 * model.sample_rate)))).astype(np.float32)
    results = []
    for threads in (1, min(3, numba.config.NUMBA_NUM_THREADS)):
        model.threads = threads
        frames = model.encode(x)
        results.append((frames, model.decode(frames)))
    model.threads = None
    (frames, audio), (frames2, audio2) = results
    assert all(np.array_equal(c, c2) for (c, _), (c2, _) in zip(frames, frames2))
    assert np.array_equal(audio, audio2)
    for i in range(3):
        alone = model.encode(x[i:i + 1])
        assert all(np.array_equal(c[i:i + 1], a) for (c, _), (a, _) in zip(frames, alone))
        assert np.array_equal(model.decode(alone), audio[i:i + 1])


def test_segment_batch_size_does_not_change_a_bit():
    """48 kHz: segments one by one, two by two or all at once give the same codes, scales and audio."""
    model = SEGMENTED
    model.set_target_bandwidth(6.0)
    x = (0.3 * _rng(3).standard_normal((1, model.channels, int(4.5 * model.sample_rate)))).astype(np.float32)
    default = model.segment_batch
    results = []
    try:
        for batch in (1, 2, 3, 8):
            model.segment_batch = batch
            frames = model.encode(x)
            results.append((frames, model.decode(frames)))
    finally:
        model.segment_batch = default
    (frames, audio), others = results[0], results[1:]
    assert len(frames) == 5
    for frames2, audio2 in others:
        assert all(np.array_equal(c, c2) and np.array_equal(s, s2) for (c, s), (c2, s2) in zip(frames, frames2))
        assert np.array_equal(audio, audio2)


@pytest.mark.parametrize("pad_mode", ["constant", "replicate", "reflect"])
def test_every_padding_mode_streams_to_the_one_pass_bits(pad_mode):
    """The stream's left pad goes through encodec_np.geometry; tiny inputs take one-shot padding at flush."""
    cfg = encodec_np.encodec_24khz()
    cfg = cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=4, dimension=16, pad_mode=pad_mode),
                      quantizer=dataclasses.replace(cfg.quantizer, dimension=16))
    model = random_model(cfg, seed=1, backend="numba")
    model.set_target_bandwidth(6.0)
    for length in (1, 7, 333, 2500):
        x = test_signal("noise", 1, length, seed=3)[None]
        codes = model.encode(x)[0][0]
        enc = StreamingEncoder(model)
        streamed = np.concatenate([enc.push(x[..., i:i + 37]) for i in range(0, length, 37)] + [enc.flush()], axis=-1)
        assert np.array_equal(streamed, codes)
        audio = model.decode([(codes, None)])
        dec = StreamingDecoder(model)
        out = np.concatenate([dec.push(codes[..., i:i + 2]) for i in range(0, codes.shape[-1], 2)] + [dec.flush()],
                             axis=-1)
        assert np.array_equal(out, audio)
