"""Audio files and conversion (encodec_np.io.audio): read/write, clipping, channels, resampling."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import soundfile as sf

from encodec_np.errors import EncodecError
from encodec_np.io.audio import LIMIT, audio_format, audio_info, convert_audio, read_audio, read_blocks, write_audio


def sine(freq, sr, seconds, channels=1, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[None], channels, axis=0).astype(np.float32)


def peak_frequency(x, sr):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)]


# --------------------------------------------------------------------------- read / write
@pytest.mark.parametrize("suffix, subtype, atol", [(".wav", "PCM_16", 2 / 32768), (".flac", "PCM_16", 2 / 32768),
                                                   (".wav", "FLOAT", 0.0)])
def test_write_read_round_trip(tmp_path, suffix, subtype, atol):
    x = np.random.default_rng(0).uniform(-0.9, 0.9, (2, 1001)).astype(np.float32)
    path = tmp_path / f"a{suffix}"
    write_audio(path, x, 16000, subtype=subtype)
    y, sr = read_audio(path)
    assert sr == 16000 and y.shape == (2, 1001) and y.dtype == np.float32
    assert np.allclose(y, x, atol=atol, rtol=0)
    assert sf.info(str(path)).subtype == subtype
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_write_mono_1d_and_ogg_default_subtype(tmp_path):
    x = sine(440, 16000, 0.2)[0]
    write_audio(tmp_path / "m.wav", x, 16000)
    y, _ = read_audio(tmp_path / "m.wav")
    assert y.shape == (1, x.size)
    write_audio(tmp_path / "m.ogg", x, 16000)  # Vorbis has no PCM_16: the format's default subtype
    assert sf.info(str(tmp_path / "m.ogg")).format == "OGG"


def test_clipping_warns_and_clamps_rescale_scales(tmp_path):
    x = np.array([[0.0, 0.5, -2.0, 1.5]], np.float32)
    with pytest.warns(UserWarning, match="clipping"):
        write_audio(tmp_path / "c.wav", x, 8000, subtype="FLOAT")
    y, _ = read_audio(tmp_path / "c.wav")
    assert np.allclose(y, np.clip(x, -LIMIT, LIMIT))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_audio(tmp_path / "r.wav", x, 8000, rescale=True, subtype="FLOAT")
        y, _ = read_audio(tmp_path / "r.wav")
        assert np.allclose(y, x * (LIMIT / 2.0))
        quiet = 0.1 * x / 2
        write_audio(tmp_path / "q.wav", quiet, 8000, rescale=True, subtype="FLOAT")  # never amplified
        assert np.allclose(read_audio(tmp_path / "q.wav")[0], quiet)
        write_audio(tmp_path / "z.wav", np.zeros((1, 5), np.float32), 8000, rescale=True)  # silence: no 0/0


def test_write_is_atomic_and_keeps_existing_file_on_failure(tmp_path):
    path = tmp_path / "keep.wav"
    write_audio(path, sine(100, 8000, 0.1), 8000)
    before = path.read_bytes()
    with pytest.raises(EncodecError):
        write_audio(path, np.full((1, 10), np.nan, np.float32), 8000)
    with pytest.raises(EncodecError, match="cannot hold"):
        write_audio(tmp_path / "x.flac", sine(100, 8000, 0.1), 8000, subtype="FLOAT")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]
    # the output gets ordinary permissions (not mkstemp's 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def read_blocks_whole(path):
    return np.concatenate(list(read_blocks(path, 3)), axis=-1)


@pytest.mark.parametrize("read", [read_audio, audio_info, read_blocks_whole])
def test_every_reader_gives_the_same_errors(tmp_path, read):
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_text("this is not audio")
    with pytest.raises(EncodecError, match="unreadable audio"):
        read(bad)
    with pytest.raises(EncodecError, match="folder"):
        read(tmp_path)


def test_read_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 1), np.float32), 8000)
    with pytest.raises(EncodecError, match="no samples"):
        read_audio(empty)
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.array([[0.0], [np.nan]], np.float32), 8000, subtype="FLOAT")
    with pytest.raises(EncodecError, match="NaN"):
        read_audio(nan)


def test_write_errors(tmp_path):
    x = sine(100, 8000, 0.01)
    with pytest.raises(EncodecError, match="format"):
        write_audio(tmp_path / "a.xyz", x, 8000)
    with pytest.raises(EncodecError, match="floating point"):
        write_audio(tmp_path / "a.wav", (x * 1000).astype(np.int16), 8000)
    with pytest.raises(EncodecError, match="empty"):
        write_audio(tmp_path / "a.wav", np.zeros((1, 0), np.float32), 8000)
    with pytest.raises(EncodecError, match="sample_rate"):
        write_audio(tmp_path / "a.wav", x, 0)
    with pytest.raises(EncodecError, match="does not exist"):
        write_audio(tmp_path / "nofolder" / "a.wav", x, 8000)
    assert audio_format("x.FLAC") == "FLAC" and audio_format("x.wav") == "WAV"


# --------------------------------------------------------------------------- conversion
def test_channel_conversion_as_meta():
    stereo = np.stack([np.full(4, 0.2), np.full(4, -0.6)]).astype(np.float32)
    mono = convert_audio(stereo, 8000, 8000, 1)
    assert mono.shape == (1, 4) and np.allclose(mono, -0.2) and mono.dtype == np.float32
    dup = convert_audio(mono, 8000, 8000, 2)
    assert dup.shape == (2, 4) and np.array_equal(dup[0], dup[1])
    assert np.array_equal(convert_audio(stereo, 8000, 8000, 2), stereo)
    batch = np.stack([stereo, 2 * stereo])  # [B, C, T]
    assert np.allclose(convert_audio(batch, 8000, 8000, 1)[:, 0], [[-0.2] * 4, [-0.4] * 4])
    with pytest.raises(EncodecError, match="3-channel"):
        convert_audio(np.zeros((3, 4), np.float32), 8000, 8000, 2)


@pytest.mark.parametrize("sr, target, length", [(44100, 48000, 44100), (48000, 24000, 1001), (16000, 24000, 7),
                                                (24000, 48000, 1), (22050, 24000, 999)])
def test_resampling_length_and_frequency(sr, target, length):
    x = sine(1000, sr, length / sr + 1e-9, channels=2)[:, :length]
    assert x.shape[-1] == length
    y = convert_audio(x, sr, target, 2)
    assert y.shape == (2, -(-length * target // sr)) and y.dtype == np.float32
    if length >= 1000:
        assert abs(peak_frequency(y[0], target) - 1000) < target / y.shape[-1] * 1.5
        assert np.isclose(np.abs(y[:, 100:-100]).max(), 0.5, atol=0.02)


def test_conversion_errors():
    x = np.zeros((1, 10), np.float32)
    with pytest.raises(EncodecError, match="NaN"):
        convert_audio(np.full((1, 4), np.inf, np.float32), 8000, 8000, 1)
    with pytest.raises(EncodecError, match="empty"):
        convert_audio(np.zeros((1, 0), np.float32), 8000, 8000, 1)
    with pytest.raises(EncodecError, match="floating"):
        convert_audio(np.zeros((1, 4), np.int16), 8000, 8000, 1)
    with pytest.raises(EncodecError, match="shape"):
        convert_audio(np.zeros(4, np.float32), 8000, 8000, 1)
    with pytest.raises(EncodecError, match="sample rate"):
        convert_audio(x, -1, 8000, 1)
    with pytest.raises(EncodecError, match="target_channels"):
        convert_audio(x, 8000, 8000, 0)


def test_read_for_model_converts_or_refuses_another_rate(tmp_path):
    from types import SimpleNamespace

    from encodec_np.io.audio import read_for_model

    model = SimpleNamespace(name="m", sample_rate=24000, channels=2)
    path = tmp_path / "16k.wav"
    write_audio(path, np.full((1, 1600), 0.25, np.float32), 16000)
    wav = read_for_model(path, model)
    assert wav.dtype == np.float32 and wav.shape == (2, 2400)  # resampled, mono → stereo
    with pytest.raises(EncodecError, match="16000 Hz but m needs 24000 Hz"):
        read_for_model(path, model, resample=False)
    write_audio(path, np.full((1, 1600), 0.25, np.float32), 24000)
    assert np.array_equal(read_for_model(path, model, resample=False), np.full((2, 1600), 0.25, np.float32))
