"""``encodec_np.metrics``: the figures the README publishes, against their definitions."""
import naive
import numpy as np
import pytest

from encodec_np import EncodecError
from encodec_np.metrics import log_mel_db, mel_distance, si_snr


def test_si_snr_is_the_definition():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(800)
    est = 0.7 * ref + 0.1 * rng.standard_normal(800) + 0.3  # gain and offset do not count
    assert si_snr(ref, est) == pytest.approx(naive.si_snr(ref, est), abs=1e-9)
    assert si_snr(ref, 3 * ref) > 200  # a scaled copy: no noise at all
    stereo_ref, stereo_est = np.stack([ref, -ref]), np.stack([est, rng.standard_normal(800)])
    expected = np.mean([naive.si_snr(stereo_ref[i], stereo_est[i]) for i in range(2)])
    assert si_snr(stereo_ref, stereo_est) == pytest.approx(expected, abs=1e-9)  # the mean over channels
    assert np.isnan(si_snr(np.zeros(10), np.ones(10)))


def test_metrics_refuse_mismatched_or_non_finite_input():
    with pytest.raises(EncodecError, match="same non-empty shape"):
        si_snr(np.ones(10), np.ones(11))
    with pytest.raises(EncodecError, match="finite"):
        mel_distance(np.ones(2048), np.full(2048, np.nan), 24000)


def test_mel_distance_is_zero_for_equal_signals_and_grows_with_noise():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(24000)
    assert mel_distance(x, x, 24000) == pytest.approx(0.0, abs=1e-9)
    near, far = (mel_distance(x, x + s * rng.standard_normal(24000), 24000) for s in (0.01, 1.0))
    assert 0 < near < far


def test_log_mel_db_floors_silence_at_minus_100_db():
    x = np.stack([np.zeros(4096), np.random.default_rng(2).standard_normal(4096)])
    db = log_mel_db(x, 24000)
    assert db.shape == (2, 64, 16)  # ceil(4096 / 256) frames
    assert np.all(db[0] == -100.0) and db[1].min() > -100.0
    dist = np.mean(np.sqrt(np.mean((db[1] - db[0]) ** 2, axis=0)))
    assert mel_distance(x[0], x[1], 24000) == pytest.approx(dist, rel=1e-12)  # the distance is over these
