"""Files in bounded memory: streaming from and to files gives what the whole-array path gives."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import soundfile as sf

import encodec_np
from encodec_np import EncodecError, compression, longfile
from encodec_np.io.audio import convert_audio, read_audio, write_audio
from encodec_np.synthetic import random_model, test_signal


@pytest.fixture(scope="module")
def model():
    cfg = encodec_np.encodec_24khz()
    cfg = cfg.replace(seanet=dataclasses.replace(cfg.seanet, n_filters=4, dimension=16),
                      quantizer=dataclasses.replace(cfg.quantizer, dimension=16))
    m = random_model(cfg, 5, backend="numpy")
    m.set_target_bandwidth(6.0)
    m.long_input_seconds, m.chunk_seconds = 0.5, 0.2  # a 1.3 s file streams in 7 chunks
    return m


def whole_file(model, path):
    wav, sr = read_audio(path)
    wav = convert_audio(wav, sr, model.sample_rate, model.channels)
    return compression.encode_frames(model, wav), wav.shape[-1]


@pytest.mark.parametrize("channels", [1, 2])
def test_encode_file_streams_and_matches(tmp_path, model, monkeypatch, channels):
    path = tmp_path / "in.flac"
    sf.write(str(path), test_signal("chirp", channels, 31_200, seed=channels).T, 24000)
    expected, length = whole_file(model, path)
    calls = []
    with monkeypatch.context() as m:
        m.setattr(longfile, "read_for_model", lambda *a, **k: pytest.fail("the streaming path read the whole file"))
        frames, got_length = longfile.encode_file(model, path, lambda *a: calls.append(a))
    assert got_length == length == 31_200
    np.testing.assert_array_equal(frames[0][0], expected[0][0])
    assert calls[-1] == ("encoding", 7, 7)


def test_encode_file_falls_back_where_it_cannot_stream(tmp_path, model):
    resampled = tmp_path / "16k.wav"  # another rate: resampling needs the whole file
    sf.write(str(resampled), test_signal("noise", 1, 20_000, seed=3, sample_rate=16000).T, 16000)
    short = tmp_path / "short.wav"    # under long_input_seconds
    sf.write(str(short), test_signal("noise", 1, 6000, seed=4).T, 24000)
    for path in (resampled, short):
        expected, length = whole_file(model, path)
        frames, got_length = longfile.encode_file(model, path)
        assert got_length == length
        np.testing.assert_array_equal(frames[0][0], expected[0][0])


def test_encode_file_errors(tmp_path, model):
    bad = tmp_path / "nan.wav"
    x = test_signal("noise", 1, 30_000, seed=1)
    x[0, 20_000] = np.nan
    sf.write(str(bad), x.T, 24000, subtype="FLOAT")
    with pytest.raises(EncodecError, match="NaN"):
        longfile.encode_file(model, bad)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(EncodecError, match="unreadable"):
        longfile.encode_file(model, tmp_path / "junk.wav")
    with pytest.raises(FileNotFoundError):
        longfile.encode_file(model, tmp_path / "missing.wav")


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_decode_to_file_streams_and_matches(tmp_path, model, monkeypatch, subtype):
    x = test_signal("chirp", 1, 31_000, seed=2)
    frames = model.encode(x[None])
    expected = tmp_path / "expected.wav"
    with warnings.catch_warnings(record=True) as w_expected:
        warnings.simplefilter("always")
        write_audio(expected, compression.decode_frames(model, frames, 31_000), 24000, subtype=subtype)
    got = tmp_path / "got.wav"
    calls = []
    with monkeypatch.context() as m, warnings.catch_warnings(record=True) as w_got:
        warnings.simplefilter("always")
        m.setattr(longfile, "write_audio", lambda *a, **k: pytest.fail("the streaming path wrote one array"))
        n = longfile.decode_to_file(model, frames, 31_000, got, subtype=subtype,
                                    progress=lambda *a: calls.append(a))
    assert n == 31_000
    a, b = sf.read(str(expected), dtype="float32")[0], sf.read(str(got), dtype="float32")[0]
    np.testing.assert_array_equal(a, b)
    assert [str(w.message) for w in w_got] == [str(w.message) for w in w_expected]  # the same clamp warning
    assert calls[-1] == ("decoding", 7, 7)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_decode_to_file_rescale_uses_the_whole_output(tmp_path, model):
    frames = model.encode(test_signal("noise", 1, 30_000, seed=6)[None])
    out = tmp_path / "r.wav"
    longfile.decode_to_file(model, frames, 30_000, out, subtype="FLOAT", rescale=True)
    y = sf.read(str(out), dtype="float32")[0]
    full = compression.decode_frames(model, frames, 30_000)[0]
    peak = np.abs(full).max()
    np.testing.assert_allclose(y, full * (0.99 / peak) if peak > 0.99 else full, rtol=1e-6, atol=1e-7)
