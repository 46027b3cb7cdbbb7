"""``encodec_np.config``: presets, the dict round trip, and the range checks every source goes through."""
import dataclasses
import json

import pytest

import encodec_np
from encodec_np import EncodecConfig, EncodecError, RVQConfig, SEANetConfig
from encodec_np.config import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = PRESETS[name]()
    assert cfg.name == name
    assert EncodecConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_published_structures():
    c24, c48 = encodec_np.encodec_24khz(), encodec_np.encodec_48khz()
    assert (c24.frame_rate, c24.seanet.hop_length, c24.quantizer.bits_per_codebook) == (75, 320, 10)
    assert (c48.frame_rate, c48.segment_length, c48.segment_stride) == (150, 48000, 47520)
    assert encodec_np.encodec_32khz().frame_rate == 50


@pytest.mark.parametrize("make,match", [
    (lambda: SEANetConfig(n_residual_layers=33), "n_residual_layers must be an integer in 0..32"),
    (lambda: SEANetConfig(lstm=True), "lstm must be an integer"),
    (lambda: SEANetConfig(ratios=[8, 5]), "ratios must be a tuple"),
    (lambda: SEANetConfig(ratios=(1024, 1024)), "hop of 1048576"),
    (lambda: SEANetConfig(dilation_base=16, n_residual_layers=4), "dilates beyond 1024"),
    (lambda: SEANetConfig(norm="batch"), "norm must be one of"),
    (lambda: SEANetConfig(causal=True, norm="time_group_norm"), "not causal"),
    (lambda: SEANetConfig(trim_right_ratio=float("nan")), "trim_right_ratio must be a number"),
    (lambda: RVQConfig(bins=1000), "power of 2"),
    (lambda: RVQConfig(n_q=0), "n_q must be an integer in 1..1024"),
    (lambda: encodec_np.encodec_24khz().replace(sample_rate=999), "sample_rate must be an integer in 1000"),
    (lambda: encodec_np.encodec_24khz().replace(target_bandwidths=()), "target_bandwidths"),
    (lambda: encodec_np.encodec_24khz().replace(target_bandwidths=(6.0, float("inf"))), "target_bandwidths"),
    (lambda: encodec_np.encodec_48khz().replace(segment=-1.0), "segment must be a number"),
    (lambda: encodec_np.encodec_48khz().replace(overlap=1.0), "overlap must be a number"),
    (lambda: encodec_np.encodec_24khz().replace(name=""), "name must be a string"),
    (lambda: encodec_np.encodec_24khz().replace(
        quantizer=RVQConfig(dimension=64)), "dimension differ"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_every_field_is_range_checked(make, match):
    with pytest.raises(EncodecError, match=match):
        make()


def test_from_dict_refuses_what_json_can_hold():
    d = encodec_np.encodec_24khz().to_dict()
    for key, value in (("seanet", "ab"), ("target_bandwidths", ["x"]), ("quantizer", None), ("extra", 1)):
        bad = dict(d, **{key: value})
        with pytest.raises(EncodecError):
            EncodecConfig.from_dict(bad)


def test_checked_bandwidth():
    cfg = encodec_np.encodec_24khz()
    assert cfg.checked_bandwidth(None) == 6.0 and cfg.checked_bandwidth(24.0) == 24.0
    with pytest.raises(encodec_np.errors.BandwidthError, match="supports 1.5, 3, 6, 12, 24 kbps") as info:
        cfg.checked_bandwidth(5.0)
    assert info.value.bandwidth == 5.0
    with pytest.raises(encodec_np.errors.BandwidthError, match="no 6 kbps"):
        encodec_np.encodec_32khz().checked_bandwidth(None)
    assert dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen
