"""The training pipeline (training/): export parity with the framework the weights come from.

A tiny model of the trained family is built with Meta's modules, trained for
a few steps (so k-means, EMA and dead-code replacement have touched the
codebooks), exported through ``encodec-np convert`` exactly as the shipped
model is, and must give the same codes in encodec_np as in PyTorch.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_torch

from encodec_np import load_model
from encodec_np.config import EncodecConfig, RVQConfig, SEANetConfig
from encodec_np.metrics import si_snr
from encodec_np.synthetic import test_signal

pytestmark = [requires_torch, pytest.mark.oracle]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))


def tiny_config() -> EncodecConfig:
    # hop 8 at 24 kHz: 3000 frames/s of 4-bit codes, 12 kbps per codebook
    return EncodecConfig(name="tiny_trained", sample_rate=24000,
                         seanet=SEANetConfig(n_filters=4, dimension=8, ratios=(4, 2), lstm=1),
                         quantizer=RVQConfig(dimension=8, n_q=4, bins=16),
                         target_bandwidths=(12.0, 24.0, 48.0))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch
    from export import export
    from losses import MelLoss
    from torch_model import build_torch_model
    from train import train_step

    torch.manual_seed(0)
    config = tiny_config()
    model = build_torch_model(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(test_signal("noise", 1, 4 * 2400, seed=0).reshape(4, 1, 2400))
    for step in range(3):
        stats = train_step(model, MelLoss(config.sample_rate), opt, x, config.target_bandwidths[step % 3])
        assert np.isfinite(stats["loss"])
    model.eval()
    out = tmp_path_factory.mktemp("export") / "tiny.safetensors"
    export(model, config, out)
    return model, out


@pytest.mark.slow
@pytest.mark.parametrize("bandwidth", [12.0, 24.0, 48.0])
def test_exported_model_gives_the_framework_codes(trained, bandwidth):
    import torch

    torch_model, path = trained
    ours = load_model(path, backend="numpy")
    assert ours.config == tiny_config()
    x = test_signal("noise", 1, 3001, seed=1)[None]
    torch_model.set_target_bandwidth(bandwidth)
    ours.set_target_bandwidth(bandwidth)
    with torch.no_grad():
        (ref_codes, _), = torch_model.encode(torch.from_numpy(x))
        ref_audio = torch_model.decode([(ref_codes, None)]).numpy()
    (codes, _), = ours.encode(x)
    assert codes.shape[1] == int(bandwidth // 12)
    np.testing.assert_array_equal(codes, ref_codes.numpy())
    np.testing.assert_allclose(ours.decode([(codes, None)]), ref_audio, atol=1e-5 * max(1.0, np.abs(ref_audio).max()))


def test_float16_export_loads_as_float32(trained, tmp_path):
    from export import export

    torch_model, _ = trained
    out = tmp_path / "half.safetensors"
    export(torch_model, tiny_config(), out, float16=True)
    half = load_model(out, backend="numpy")
    assert all(v.dtype == np.float32 for v in half.params.values())
    full = load_model(trained[1], backend="numpy")
    for key, value in full.params.items():
        np.testing.assert_array_equal(half.params[key], value.astype(np.float16).astype(np.float32))


def test_float16_export_keeps_out_of_range_tensors(tmp_path):
    """A tensor beyond float16's range is stored in float32 instead of becoming inf."""
    from encodec_np import save_model
    from encodec_np.synthetic import random_model

    model = random_model(tiny_config(), 0, backend="numpy")
    model.params["quantizer.codebooks"][0, 0, 0] = 1e6
    save_model(model, tmp_path / "m.safetensors", dtype="float16")
    loaded = load_model(tmp_path / "m.safetensors", backend="numpy")
    assert loaded.params["quantizer.codebooks"][0, 0, 0] == 1e6
    assert loaded.params["encoder.model.0.conv.conv.weight"].dtype == np.float32
    np.testing.assert_array_equal(loaded.params["encoder.model.0.conv.conv.weight"],
                                  model.params["encoder.model.0.conv.conv.weight"].astype(np.float16).astype(np.float32))


def test_average_is_the_weighted_mean_of_every_tensor(tmp_path):
    """training/average.py (how the shipped weights were made): ends exact, mean per tensor, config checked."""
    from average import main as average_main

    from encodec_np import EncodecError, save_model
    from encodec_np.synthetic import random_model

    a, b = (random_model(tiny_config(), seed, backend="numpy") for seed in (0, 1))
    paths = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    for model, path in zip((a, b), paths):
        save_model(model, path)
    for weight in (0.0, 0.25, 1.0):
        out = tmp_path / f"mean{weight}.safetensors"
        average_main([str(paths[0]), str(paths[1]), str(out), "--weight", str(weight)])
        mean = load_model(out, backend="numpy")
        assert mean.params.keys() == a.params.keys()
        for key, value in mean.params.items():
            np.testing.assert_array_equal(value, (1 - weight) * a.params[key] + weight * b.params[key])
    other = random_model(EncodecConfig(name="other", sample_rate=24000,
                                       seanet=SEANetConfig(n_filters=4, dimension=8, ratios=(4, 2), lstm=1),
                                       quantizer=RVQConfig(dimension=8, n_q=2, bins=16),
                                       target_bandwidths=(12.0, 24.0)), 0, backend="numpy")
    save_model(other, tmp_path / "other.safetensors")
    with pytest.raises(EncodecError, match="config"):
        average_main([str(paths[0]), str(tmp_path / "other.safetensors"), str(tmp_path / "x.safetensors")])
    with pytest.raises(EncodecError, match="weight"):
        average_main([str(paths[0]), str(paths[1]), str(tmp_path / "x.safetensors"), "--weight", "2"])


def test_a_new_run_starts_from_another_runs_checkpoint(trained, tmp_path):
    import torch
    from train import initial_state

    torch_model, _ = trained
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": torch_model.state_dict(), "opt": {}, "step": 3}, path)
    state = initial_state(path)
    assert state.keys() == torch_model.state_dict().keys()
    for key, value in torch_model.state_dict().items():  # EMA statistics included, unchanged
        assert torch.equal(state[key], value), key


def test_balancer_gives_each_loss_its_share_of_the_gradient():
    import torch
    from losses import Balancer

    torch.manual_seed(0)
    y = torch.randn(3, 1, 50, requires_grad=True)
    a, b = torch.randn(3, 1, 50), torch.randn(3, 1, 50)
    balancer = Balancer({"small": 1.0, "large": 3.0})
    losses = {"small": (y * a).sum(), "large": 1e4 * (y * b).sum()}   # gradients a and 1e4 b
    grad = balancer.gradient(losses, y)

    def mean_norm(g):
        return g.reshape(3, -1).norm(dim=1).mean()
    assert balancer.sums["large"] == pytest.approx(1e4 * mean_norm(b).item(), rel=1e-5)
    # after one step the moving average is the norm itself: the shares are exactly 1/4 and 3/4
    expected = 0.25 * a / mean_norm(a) + 0.75 * b / mean_norm(b)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)
    state = balancer.state_dict()
    again = Balancer({"small": 1.0, "large": 3.0})
    again.load_state_dict(state)
    torch.testing.assert_close(again.gradient(losses, y), balancer.gradient(losses, y))


def band_noise(low_hz: float, high_hz: float, seed: int) -> np.ndarray:
    """1 s of seeded white noise at 24 kHz, only between ``low_hz`` and ``high_hz``, at 0 dBFS, ``[T]``."""
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(24000))
    freqs = np.fft.rfftfreq(24000, 1 / 24000)
    spec[(freqs < low_hz) | (freqs > high_hz)] = 0
    noise = np.fft.irfft(spec, 24000)
    return noise / np.sqrt(np.mean(noise ** 2))


def tone_and_hiss() -> tuple[np.ndarray, np.ndarray]:
    """1 s of a 440 Hz tone (nothing above 1 kHz) and of white noise only above 8 kHz at 0 dBFS, ``[T]`` each."""
    t = np.arange(24000) / 24000
    return 0.3 * np.sin(2 * np.pi * 440 * t), band_noise(8000, np.inf, seed=0)


def test_a_low_mel_floor_prices_noise_in_an_empty_band():
    import torch
    from losses import MelLoss

    x, hiss = tone_and_hiss()
    x_t, y_t = (torch.from_numpy(a.astype(np.float32))[None] for a in (x, x + 1e-3 * hiss))  # hiss at -60 dBFS

    def cost(floor):
        loss = MelLoss(floor=floor)
        return (loss(y_t, x_t) - loss(x_t, x_t)).item()
    # measured: 0.07 with the default floor, 4.6 with audiocraft's
    assert cost(1e-5) > 30 * cost(1e-2)


def test_noise_floor_loss_prices_hiss_the_mel_floor_hides_and_nothing_quieter():
    import torch
    from losses import MelLoss, NoiseFloorLoss

    x, hiss = tone_and_hiss()

    def tensor(a):
        return torch.from_numpy(a.astype(np.float32))[None]
    loss, mel = NoiseFloorLoss(ceiling=1e-3), MelLoss(floor=1e-3)
    assert loss(tensor(x), tensor(x)).item() == 0.0
    assert loss(tensor(0.1 * x), tensor(x)).item() == 0.0  # one-sided: a quieter output is the mel loss's business
    assert loss(tensor(0 * x), tensor(0 * x)).item() == 0.0
    # measured: 0.36, 0.58 and 0.61 for hiss at -100, -80 and -60 dBFS, capped above the ceiling
    costs = [loss(tensor(x + k * hiss), tensor(x)).item() for k in (1e-5, 1e-4, 1e-3, 1e-1)]
    assert 0.0 < costs[0] < costs[1] < costs[2] and costs[3] < 1.2 * costs[2], costs
    # hiss at -80 dBFS: under the mel loss's floor (measured: it adds 0.07), 8x that here
    hidden = mel(tensor(x + 1e-4 * hiss), tensor(x)).item() - mel(tensor(x), tensor(x)).item()
    assert costs[1] > 5 * hidden
    y = tensor(x + 1e-4 * hiss).requires_grad_()
    loss(y, tensor(x)).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().max() > 0

    # a spread excuses noise beside a quiet tone, not hiss octaves away
    quiet = x / 30                                           # -40 dBFS
    beside = 1e-4 * band_noise(500, 600, seed=1)            # one or two mel bands above the tone
    spread = NoiseFloorLoss(ceiling=1e-3, spread=2)
    # measured: 0.034 and 0.600 on their own, 0.000 and 0.574 with the spread
    assert spread(tensor(quiet + beside), tensor(quiet)).item() < 0.1 * loss(tensor(quiet + beside), tensor(quiet)).item()
    far = [term(tensor(quiet + 1e-4 * hiss), tensor(quiet)).item() for term in (loss, spread)]
    assert 0.9 * far[0] < far[1] <= far[0]


def test_envelope_loss_falls_with_stoi_and_ignores_level():
    import torch
    from losses import EnvelopeLoss

    rng = np.random.default_rng(0)
    t = np.arange(2 * 24000) / 24000
    # white noise at a syllable rate (4 Hz) of amplitude modulation: an envelope in every band
    x = 0.1 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) * rng.standard_normal(len(t))
    noise = 0.1 * rng.standard_normal(len(t))
    loss = EnvelopeLoss()

    def cost(y):
        return loss(torch.from_numpy(y.astype(np.float32))[None], torch.from_numpy(x.astype(np.float32))[None])
    assert abs(cost(x).item()) < 1e-6 and abs(cost(0.3 * x).item()) < 1e-6  # a level change is not a loss
    costs = [cost(x + s * noise).item() for s in (0.03, 0.3, 1.0, 3.0)]
    assert costs == sorted(costs) and costs[0] < 0.01 < 0.3 < costs[-1], costs
    y = torch.from_numpy((x + noise).astype(np.float32))[None].requires_grad_()
    loss(y, torch.from_numpy(x.astype(np.float32))[None]).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().max() > 0
    silent = torch.zeros(1, 24000)
    assert loss(silent, silent).item() == 0.0  # no segment of non-silent frames: no term, no NaN


def test_train_step_with_the_optional_terms():
    import torch
    from losses import BandLevelLoss, EnvelopeLoss, MelLoss, NoiseFloorLoss, SISNRLoss, STFTLoss
    from torch_model import build_torch_model
    from train import train_step

    torch.manual_seed(0)
    config = tiny_config()
    model = build_torch_model(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(test_signal("chirp", 2, 12000, seed=0).reshape(2, 1, 12000))  # 0.5 s: 45 frames
    terms = {"env": (EnvelopeLoss(config.sample_rate), 1.0), "stft": (STFTLoss(), 1.0),
             "band_db": (BandLevelLoss(config.sample_rate), 0.1), "hiss": (NoiseFloorLoss(config.sample_rate), 0.1),
             "neg_si_snr": (SISNRLoss(), 0.05)}
    stats = train_step(model, MelLoss(config.sample_rate), opt, x, 12.0, terms=terms)
    assert 0.0 < stats["env"] <= 2.0 and stats["stft"] > 0.0 and stats["band_db"] > 0.0 and stats["hiss"] >= 0.0
    assert np.isfinite(stats["neg_si_snr"])
    assert np.isfinite(stats["loss"])
    plain = train_step(model, MelLoss(config.sample_rate), opt, x, 12.0)
    assert not set(terms) & set(plain)


def test_si_snr_loss_prices_the_shape_not_the_scale_and_skips_silence():
    import torch
    from losses import SISNRLoss

    loss = SISNRLoss()
    x = torch.from_numpy(test_signal("chirp", 2, 12000, seed=0).reshape(2, 1, 12000))
    noise = 0.05 * torch.from_numpy(np.random.default_rng(1).standard_normal((2, 1, 12000)).astype(np.float32))
    y = x + noise
    assert np.isclose(-loss(y, x).item(), si_snr(x[:, 0].numpy(), y[:, 0].numpy()), atol=1e-3)  # the table's SI-SNR
    assert torch.isclose(loss(0.3 * y, x), loss(y, x), atol=1e-4)  # a quieter copy is as good a shape
    assert loss(x + 0.5 * noise, x) < loss(y, x) < loss(x + 2 * noise, x)
    # a silent crop has no shape: a batch of one scores as the sounding crop alone
    silent = torch.cat([x[:1], torch.zeros_like(x[:1])])
    assert torch.isclose(loss(y[:1].expand(2, 1, -1), silent), loss(y[:1], x[:1]))
    y0 = torch.zeros_like(x, requires_grad=True)
    value = loss(y0, torch.zeros_like(x))
    value.backward()
    assert value.item() == 0.0 and torch.count_nonzero(y0.grad) == 0


def smeared_tone():
    """A 1 s 3 kHz tone, that tone smeared into noise of its level within +-100 Hz, and silence, as ``[1, T]`` tensors."""
    import torch

    t = np.arange(24000) / 24000
    tone = 0.1 * np.sin(2 * np.pi * 3000 * t)
    # within the width of one mel band at 3 kHz, at the tone's level
    smeared = band_noise(2900, 3100, seed=0) * np.sqrt(np.mean(tone ** 2))
    return tuple(torch.from_numpy(a.astype(np.float32))[None] for a in (tone, smeared, 0 * tone))


def test_stft_loss_tells_a_tone_from_band_noise_that_the_mel_loss_lets_pass():
    import torch
    from losses import MelLoss, STFTLoss

    x, y, silence = smeared_tone()
    mel, stft = MelLoss(floor=1e-3), STFTLoss(floor=1e-3)
    assert stft(x, x).item() == 0.0
    # measured: the mel loss prices the smear at 0.23 of silence's cost, the STFT loss at 1.01
    assert mel(y, x).item() < 0.3 * mel(silence, x).item()
    assert stft(y, x).item() > 0.9 * stft(silence, x).item()
    y.requires_grad_()
    stft(y, x).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().max() > 0
    # without the spectral convergence only the log-magnitude part is left, and it is smaller
    assert 0.0 < STFTLoss(floor=1e-3, convergence=0.0)(y, x).item() < stft(y, x).item()


def test_band_level_loss_prices_quiet_bands_and_noise_in_empty_ones_not_fine_structure():
    import torch
    from losses import BandLevelLoss

    x, smeared, silence = smeared_tone()
    loss = BandLevelLoss()
    assert loss(x, x).item() == 0.0 and loss(silence, silence).item() == 0.0  # silence: no term, no NaN
    # measured: 7.1 dB for the smear at the tone's level (it spreads over the neighbouring
    # bands differently), 10.6 for silence, 16.0 for white noise 20 dB below the tone added
    costs = [loss(k * smeared, x).item() for k in (1.0, 0.3, 0.1)]
    assert costs == sorted(costs) and costs[-1] < loss(silence, x).item()
    hiss = x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert loss(hiss, x).item() > 1.4 * loss(silence, x).item()
    # a broadband input turned down 10.5 dB is 10.5 dB down in every band
    white = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert loss(0.3 * white, white).item() == pytest.approx(10 * np.log10(1 / 0.09), rel=1e-3)
    y = smeared.clone().requires_grad_()
    loss(y, x).backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().max() > 0


def noise_corpus(root: Path) -> np.ndarray:
    """A one-file corpus in the layout of ../shared/data (3 s of white noise at -20 dBFS) under ``root``."""
    import soundfile as sf

    (root / "train").mkdir()
    noise = 0.1 * np.random.default_rng(0).standard_normal(3 * 24000)
    sf.write(root / "train" / "a.flac", noise, 24000)
    (root / "manifest.csv").write_text("file,split,kind\ntrain/a.flac,train,general\n")
    return noise


def test_bandlimited_crops_have_an_empty_top_band_and_off_replays_the_old_crops(tmp_path):
    from data import SOURCE_RATES, Crops, band_limit

    noise = noise_corpus(tmp_path)
    freqs = np.fft.rfftfreq(6000, 1 / 24000)

    def stop_band_db(a, stop, passband):  # mean power above ``stop`` Hz relative to below ``passband`` Hz
        power = np.abs(np.fft.rfft(a)) ** 2
        return 10 * np.log10(power[freqs > stop].mean() / power[freqs < passband].mean())
    for rate in SOURCE_RATES:
        limited = band_limit(noise[:6000].astype(np.float32), rate)
        assert limited.shape == (6000,) and limited.dtype == np.float32
        # measured: -52 to -58 dB from 1.2 x the cutoff on; 22.05 kHz leaves only 11-12 kHz, -16 dB there
        stop, floor = (0.6 * rate, -45) if 0.6 * rate < 11_500 else (11_500, -12)
        assert stop_band_db(limited, stop, 0.45 * rate) < floor < stop_band_db(noise[:6000], stop, 0.45 * rate)

    plain = Crops(tmp_path, seed=3).batch(4, 6000)
    assert np.array_equal(Crops(tmp_path, seed=3, bandlimit=0.0).batch(4, 6000), plain)
    limited = Crops(tmp_path, seed=3, bandlimit=1.0).batch(4, 6000)
    assert limited.shape == plain.shape and limited.dtype == np.float32
    for crop in limited[:, 0]:  # every crop went through one of the rates
        assert stop_band_db(crop, 11_500, 9_900) < -12


def test_whistle_crops_are_tonal_over_a_quiet_background(tmp_path):
    from data import Crops, whistles

    def flatness(a):  # geometric over arithmetic mean of the power spectrum: 0.56 for white noise
        power = np.abs(np.fft.rfft(a)) ** 2 + 1e-20
        return np.exp(np.mean(np.log(power))) / power.mean()
    phrases = [whistles(np.random.default_rng(seed), 24000) for seed in range(20)]
    assert np.array_equal(whistles(np.random.default_rng(0), 24000), phrases[0])
    assert all(p.dtype == np.float32 and p.shape == (24000,) for p in phrases)
    assert max(flatness(p) for p in phrases) < 0.05  # measured: at most 0.008 over 50 seeds
    assert all(-45 < 20 * np.log10(np.sqrt(np.mean(p ** 2))) < -5 for p in phrases)

    noise_corpus(tmp_path)
    plain = Crops(tmp_path, seed=3).batch(4, 6000)
    assert np.array_equal(Crops(tmp_path, seed=3, tones=0.0).batch(4, 6000), plain)
    toned = Crops(tmp_path, seed=3, tones=1.0).batch(4, 6000)
    assert toned.shape == plain.shape and toned.dtype == np.float32
    # the noise is 10-40 dB under the notes: far less flat than the plain crops
    assert all(flatness(c) < 0.2 < flatness(p) for c, p in zip(toned[:, 0], plain[:, 0]))


def test_gap_crops_have_spans_of_digital_silence_and_off_replays_the_old_crops(tmp_path):
    from data import Crops, silent_gaps

    def zero_runs(a):  # lengths of the runs of exact zeros
        edges = np.flatnonzero(np.diff(np.r_[0, (a == 0).astype(int), 0]))
        return edges[1::2] - edges[::2]
    for seed in range(20):
        gapped = silent_gaps(np.random.default_rng(seed), np.ones(24000, np.float32))
        assert gapped.dtype == np.float32 and gapped.shape == (24000,)
        assert 1 <= len(zero_runs(gapped)) <= 3 and zero_runs(gapped).max() >= 0.02 * 24000  # a gap may be cut at an end
        assert np.abs(np.diff(gapped)).max() < 0.02  # 5 ms fades: no click at a gap's edges

    noise_corpus(tmp_path)
    plain = Crops(tmp_path, seed=3).batch(4, 6000)
    assert np.array_equal(Crops(tmp_path, seed=3, gaps=0.0).batch(4, 6000), plain)
    gapped = Crops(tmp_path, seed=3, gaps=1.0).batch(4, 6000)
    assert gapped.shape == plain.shape and gapped.dtype == np.float32
    # a 16-bit FLAC of noise has the odd zero sample, never a run of them
    assert all(zero_runs(c).max(initial=0) > 100 > zero_runs(p).max(initial=0) for c, p in zip(gapped[:, 0], plain[:, 0]))


@pytest.mark.parametrize("flag", ["--tones", "--bandlimit", "--gaps"])
@pytest.mark.parametrize("share", ["1.5", "-0.1"])
def test_augmentation_shares_outside_0_to_1_are_refused(flag, share, tmp_path, capsys):
    from train import main

    with pytest.raises(SystemExit) as exc:  # refused before any data is read
        main(["--run", str(tmp_path / "run"), flag, share])
    assert exc.value.code == 2 and "share of the crops" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_negative_noise_floor_spread_is_refused(tmp_path, capsys):
    from train import main

    with pytest.raises(SystemExit) as exc:  # refused before any data is read
        main(["--run", str(tmp_path / "run"), "--noise-floor", "0.3", "--noise-floor-spread", "-1"])
    assert exc.value.code == 2 and "0 or more" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", ["--envelope", "--loudness", "--stft", "--band-level", "--noise-floor", "--si-snr"])
def test_plain_objective_terms_are_refused_with_adversarial(flag, tmp_path, capsys):
    from train import main

    with pytest.raises(SystemExit) as exc:  # refused before any data is read
        main(["--run", str(tmp_path / "run"), "--adversarial", flag, "1.0"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--weights" in err and f"{flag}: terms of the plain objective" in err
    assert not (tmp_path / "run").exists()


def test_discriminator_losses():
    import torch
    from discriminator import MultiScaleSTFTDiscriminator, discriminator_loss, generator_losses

    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator(windows=(256, 64), filters=4)
    x = torch.randn(2, 1, 2400)
    y = (0.5 * x).requires_grad_(True)
    outputs = disc(x)
    assert len(outputs) == 2
    logits, features = outputs[1]
    assert logits.shape[:2] == (2, 1) and len(features) == 5
    assert logits.shape[2] == (2400 - 64) // 16 + 1        # frames of a 64-sample window, hop 16
    adv, feat = generator_losses(disc, y, x)
    assert feat.item() > 0
    (adv + feat).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert generator_losses(disc, x, x)[1].item() == 0.0   # no feature distance to itself
    d = discriminator_loss(disc, y, x)
    assert 0 < d.item() and torch.isfinite(d)
    expected = sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean()
                   for (r, _), (f, _) in zip(disc(x), disc(y))) / 2
    torch.testing.assert_close(d, expected)


def test_adversarial_step_trains_both_sides(tmp_path):
    import torch
    from losses import MelLoss
    from torch_model import build_torch_model
    from train import Adversary, adversarial_step

    torch.manual_seed(0)
    config = tiny_config()
    model = build_torch_model(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    adversary = Adversary({"t": 0.1, "f": 1.0, "g": 3.0, "feat": 3.0}, 1e-3, "cpu", filters=4, p_update=1.0)
    x = torch.from_numpy(test_signal("noise", 1, 4 * 2400, seed=0).reshape(4, 1, 2400))
    decoder_before = [p.detach().clone() for p in model.decoder.parameters()]
    disc_before = [p.detach().clone() for p in adversary.disc.parameters()]
    adversarial_step(model, MelLoss(config.sample_rate), opt, x, 12.0, adversary)   # k-means init
    stats = adversarial_step(model, MelLoss(config.sample_rate), opt, x, 24.0, adversary)
    assert all(np.isfinite(v) for v in stats.values()), stats
    assert any(not torch.equal(a, b) for a, b in zip(decoder_before, model.decoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, adversary.disc.parameters()))
    resumed = Adversary({"t": 0.1, "f": 1.0, "g": 3.0, "feat": 3.0}, 1e-3, "cpu", filters=4)
    resumed.load_state_dict(adversary.state_dict())
    for a, b in zip(resumed.disc.parameters(), adversary.disc.parameters()):
        assert torch.equal(a, b)
    assert resumed.balancer.state_dict() == adversary.balancer.state_dict()


def test_decoder_only_keeps_encoder_and_codebooks_and_trains_the_decoder():
    import torch
    from losses import MelLoss
    from torch_model import build_torch_model
    from train import Adversary, adversarial_step, freeze_codes, train_step

    torch.manual_seed(0)
    config = tiny_config()
    model = build_torch_model(config).train()
    x = torch.from_numpy(test_signal("noise", 1, 4 * 2400, seed=0).reshape(4, 1, 2400))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_step(model, MelLoss(config.sample_rate), opt, x, 48.0)   # k-means init of all four codebooks
    freeze_codes(model)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("decoder.")}
    decoder_before = [p.detach().clone() for p in model.decoder.parameters()]
    with torch.no_grad():
        codes_before = model.quantizer.encode(model.encoder(x), model.frame_rate, 24.0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    adversary = Adversary({"t": 0.1, "f": 1.0, "g": 3.0, "feat": 3.0}, 1e-3, "cpu", filters=4, p_update=1.0)
    for bandwidth in (24.0, 48.0):   # EMA and dead-code replacement would move the codebooks in training mode
        train_step(model, MelLoss(config.sample_rate), opt, x * 3, bandwidth)
        adversarial_step(model, MelLoss(config.sample_rate), opt, x, bandwidth, adversary)
    model.train()
    assert not model.encoder.training and not model.quantizer.training and model.decoder.training
    for key, value in model.state_dict().items():
        if key in frozen:
            assert torch.equal(value, frozen[key]), key
    assert any(not torch.equal(a, b) for a, b in zip(decoder_before, model.decoder.parameters()))
    with torch.no_grad():
        assert torch.equal(model.quantizer.encode(model.encoder(x), model.frame_rate, 24.0), codes_before)


def test_decoder_only_needs_weights_to_start_from(tmp_path, capsys):
    from train import main

    with pytest.raises(SystemExit):
        main(["--run", str(tmp_path / "run"), "--decoder-only"])
    assert "--init" in capsys.readouterr().err


def test_calibration_gain_scales_the_output_and_nothing_else():
    from calibrate import apply_gain

    from encodec_np.synthetic import random_model

    model = random_model(tiny_config(), 0, backend="numpy")
    x = test_signal("noise", 1, 2400, seed=2)[None]
    codes = model.encode(x)
    before = model.decode(codes)
    params = {k: v.copy() for k, v in model.params.items()}
    apply_gain(model, 6.0)
    changed = {k for k in params if not np.array_equal(params[k], model.params[k])}
    last = max(int(k.split(".")[2]) for k in params if k.startswith("decoder.model."))
    assert changed == {f"decoder.model.{last}.conv.conv.weight", f"decoder.model.{last}.conv.conv.bias"}
    np.testing.assert_array_equal(model.encode(x)[0][0], codes[0][0])
    np.testing.assert_allclose(model.decode(codes), before * 10 ** (6 / 20), rtol=1e-5, atol=1e-7)


def test_whistle_check_prints_a_row_per_probe(trained, capsys):
    from whistle_check import LEVELS_DBFS, PITCHES_HZ, main, whistle

    x = whistle(3000, -20)
    assert x.dtype == np.float32 and len(x) == 3 * 24000
    assert abs(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 20) < 0.01
    assert main(["--model", str(trained[1]), "--bandwidth", "12"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()[1:] if line.startswith("| ")]
    assert len(rows) == len(PITCHES_HZ) * len(LEVELS_DBFS)
    assert all(np.isfinite(float(r.split("|")[3])) for r in rows)


def test_hiss_check_takes_out_only_the_outputs_excess_in_quiet_bins(trained, tmp_path, capsys):
    import soundfile as sf
    from hiss_check import distances, main

    x, hiss = tone_and_hiss()
    assert distances(x, x, -60.0) == (0.0, 0.0)
    full, kept = distances(x, x + 1e-4 * hiss, -60.0)  # hiss at -80 dBFS above 8 kHz, where x is silent
    assert kept < 0.01 * full  # measured: 0.02 of 17.1 dB left
    full, kept = distances(x, 0.5 * x, -60.0)  # quieter everywhere: no excess to take out
    assert kept == full > 0

    (tmp_path / "eval").mkdir()
    sf.write(tmp_path / "eval" / "a.flac", x, 24000)
    (tmp_path / "manifest.csv").write_text("file,split,kind\neval/a.flac,eval,general\n")
    assert main(["--model", str(trained[1]), "--bandwidth", "12", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("| a |")]
    assert len(rows) == 1 and all(np.isfinite(float(v)) for v in rows[0].split("|")[2:5])
    assert out[-1].startswith("digital silence in")
