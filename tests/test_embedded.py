"""The model shipped in the package, ``load_model()``, and ``encodec-np demo``."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from test_cli import REPO, fail, ok, run

import encodec_np
from encodec_np import compression
from encodec_np.config import encodec_np_small_24khz
from encodec_np.errors import EncodecError
from encodec_np.format import ecdc
from encodec_np.io.hub import EMBEDDED, embedded_path
from encodec_np.synthetic import random_model, test_signal


@pytest.fixture(scope="module")
def small():
    return encodec_np.load_model()


def test_load_model_without_argument_is_the_shipped_model(small):
    assert small.name == EMBEDDED == "encodec_np_small_24khz"
    assert small.config == encodec_np_small_24khz()
    assert small.dtype == np.float32
    assert embedded_path().stat().st_size < 12 * 2 ** 20  # a few MB: float16 storage
    assert encodec_np.load_model(EMBEDDED).config == small.config


def test_shipped_model_codes_and_audio(small):
    """Every bandwidth gives finite audio of the input's length and the advertised codebook count."""
    x = test_signal("noise", 1, 24000, seed=0)[None]
    for bw, k in zip(small.target_bandwidths, (2, 4, 8, 16)):
        small.set_target_bandwidth(bw)
        (codes, scale), = small.encode(x)
        assert codes.shape == (1, k, 75) and scale is None
        y = small.decode([(codes, None)])
        assert y.shape == (1, 1, 24000) and np.isfinite(y).all()


def test_ecdc_names_the_shipped_model(small):
    """Its files say which model made them: they decode without model=, and not with another model."""
    x = test_signal("noise", 1, 9000, seed=2)
    small.set_target_bandwidth(6.0)
    data = compression.compress(small, x)
    assert ecdc.read_header(data)["m"] == EMBEDDED
    wav, rate = compression.decompress(data)  # resolved by name from the package, no download
    assert rate == 24000 and wav.shape == (1, 9000)
    np.testing.assert_array_equal(wav, compression.decompress(data, model=small)[0])
    other = random_model(encodec_np.config.encodec_24khz(), 0)
    with pytest.raises(EncodecError, match=EMBEDDED):
        compression.decompress(data, model=other)


@pytest.mark.slow
def test_demo_command(tmp_path):
    out = tmp_path / "demo"
    result = ok(run("demo", "--out", out))
    lines = result.stdout.splitlines()
    assert lines[0].startswith(EMBEDDED) and "kbps" in lines[1]
    rows = [line.split() for line in lines[2:6]]
    assert [float(r[0]) for r in rows] == [1.5, 3.0, 6.0, 12.0]
    assert [int(r[1]) for r in rows] == [150, 300, 600, 1200]  # tokens per second
    assert all(np.isfinite(float(v)) for r in rows for v in r[2:])
    clip, rate = sf.read(out / "original.wav")
    for bw in ("1.5", "3", "6", "12"):
        decoded, r2 = sf.read(out / f"decoded_{bw}kbps.wav")
        assert r2 == rate == 24000 and decoded.shape == clip.shape
    assert (out / "spectrograms.png").read_bytes()[:4] == b"\x89PNG"
    assert "-f" in fail(run("demo", "--out", out))  # no silent overwrite
    ok(run("demo", "--out", out, "-f", "-q"))


@pytest.mark.slow
def test_demo_on_your_own_file(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, test_signal("chirp", 2, 22050, seed=0, sample_rate=44100).T, 44100)  # stereo 44.1 kHz
    result = ok(run("demo", "--input", src, "--out", tmp_path / "o", "--backend", "numpy"))
    assert "in.wav (0.5 s" in result.stdout
    assert sf.read(tmp_path / "o" / "decoded_6kbps.wav")[0].shape == (12000,)
    assert "does not exist" in fail(run("demo", "--input", tmp_path / "missing.wav", "--out", tmp_path / "p"))


def test_demo_picture_has_a_db_colour_bar_and_labelled_panels():
    from encodec_np.demo import spectrogram_figure
    wav = test_signal("chirp", 1, 4800, seed=0, sample_rate=24000)
    rows = [{"kbps": bw, "si_snr": 10.0 + bw, "mel_db": 9.5, "audio": wav * 0.5} for bw in (1.5, 6.0)]
    fig = spectrogram_figure(wav, rows, 24000)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[:3] == ["original", "1.5 kbps: SI-SNR 11.5 dB, log-mel distance 9.5 dB",
                          "6 kbps: SI-SNR 16.0 dB, log-mel distance 9.5 dB"]
    assert len(fig.axes) == 4 and fig.axes[3].get_ylabel() == "dB"  # the colour bar
    fig.canvas.draw()
    bar = fig.axes[3].get_tightbbox(fig.canvas.get_renderer())  # its ticks and label inside the picture
    assert bar.x1 <= fig.bbox.x1 + 1


def test_readme_install_command_brings_what_the_demo_needs():
    """The README's first command installs the demo extra, and that extra holds matplotlib (the picture)."""
    import re

    import tomllib
    readme = (REPO / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert 'pip install -e ".[demo]"' in first and "encodec-np demo" in first
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("matplotlib") for dep in extras["demo"])
