"""Checkpoint readers: Meta .th (allow-listed unpickling), Hugging Face folders, our format."""
import dataclasses
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from conftest import requires_torch
from th_writer import Global, write_th

import encodec_np
from encodec_np import CheckpointError, EncodecModel, RVQConfig
from encodec_np.io.checkpoint import FORMAT_KEY, fold_weight_norm, read_checkpoint, read_torch_state, to_official_state
from encodec_np.synthetic import random_params


def tiny(preset=encodec_np.encodec_24khz, bins=16, **seanet):
    """A small model of a preset's structure (same layer list, narrow widths)."""
    cfg = preset()
    seanet = dataclasses.replace(cfg.seanet, n_filters=2, dimension=8, **seanet)
    return cfg.replace(seanet=seanet, quantizer=RVQConfig(dimension=8, n_q=cfg.quantizer.n_q, bins=bins))


def hf_state(state, parametrizations=False):
    """Official names → Hugging Face ``EncodecModel`` names."""
    import re
    out = {}
    for key, value in state.items():
        key = re.sub(r"^(encoder|decoder)\.model\.", r"\1.layers.", key)
        key = re.sub(r"\.(conv|convtr)\.(conv|convtr)\.", ".conv.", key)
        key = re.sub(r"\.(conv|convtr)\.norm\.", ".norm.", key)
        key = re.sub(r"quantizer\.vq\.layers\.(\d+)\._codebook\.", r"quantizer.layers.\1.codebook.", key)
        if parametrizations:
            key = key.replace(".weight_g", ".parametrizations.weight.original0")
            key = key.replace(".weight_v", ".parametrizations.weight.original1")
        out[key] = value
    return out


def assert_same_model(a: EncodecModel, b: EncodecModel):
    assert a.config == b.config
    assert sorted(a.params) == sorted(b.params)
    for k in a.params:
        np.testing.assert_allclose(a.params[k], b.params[k], rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("preset", [encodec_np.encodec_24khz, encodec_np.encodec_48khz])
def test_th_roundtrip_recognises_official_structure(tmp_path, preset):
    cfg = preset()
    params = random_params(cfg, seed=1)
    path = tmp_path / "model.th"
    write_th(path, to_official_state(params, cfg))
    model = encodec_np.load_model(path, backend="numpy")
    assert model.name == cfg.name and model.config == cfg
    for k, v in params.items():
        np.testing.assert_allclose(model.params[k], v, rtol=2e-6, atol=1e-7, err_msg=k)


def test_weight_norm_folding():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((4, 3, 5)).astype(np.float32)
    g = rng.random((4, 1, 1)).astype(np.float32) + 0.5
    w = fold_weight_norm(g, v)
    np.testing.assert_allclose(np.sqrt((w ** 2).sum(axis=(1, 2))), g.ravel(), rtol=1e-6)
    np.testing.assert_allclose(w / np.linalg.norm(w.reshape(4, -1), axis=1)[:, None, None],
                               v / np.linalg.norm(v.reshape(4, -1), axis=1)[:, None, None], rtol=1e-6)


def write_hf_folder(folder, cfg, params, parametrizations=False):
    """``cfg`` and ``params`` as a Hugging Face ``facebook/encodec_*`` folder."""
    from safetensors.numpy import save_file
    folder.mkdir(parents=True, exist_ok=True)
    save_file(hf_state(to_official_state(params, cfg), parametrizations), str(folder / "model.safetensors"))
    s = cfg.seanet
    hf_config = {
        "model_type": "encodec", "sampling_rate": cfg.sample_rate, "audio_channels": s.channels,
        "hidden_size": s.dimension, "num_filters": s.n_filters, "num_residual_layers": s.n_residual_layers,
        "upsampling_ratios": list(s.ratios), "norm_type": s.norm, "kernel_size": s.kernel_size,
        "last_kernel_size": s.last_kernel_size, "residual_kernel_size": s.residual_kernel_size,
        "dilation_growth_rate": s.dilation_base, "use_causal_conv": s.causal, "pad_mode": s.pad_mode,
        "compress": s.compress, "num_lstm_layers": s.lstm, "trim_right_ratio": s.trim_right_ratio,
        "codebook_size": cfg.quantizer.bins, "codebook_dim": cfg.quantizer.dimension,
        "use_conv_shortcut": not s.true_skip, "target_bandwidths": list(cfg.target_bandwidths),
        "normalize": cfg.normalize, "chunk_length_s": cfg.segment, "overlap": cfg.overlap if cfg.segment else None,
    }
    (folder / "config.json").write_text(json.dumps(hf_config))
    return folder


@pytest.mark.parametrize("parametrizations", [False, True])
@pytest.mark.parametrize("preset", [encodec_np.encodec_24khz, encodec_np.encodec_48khz, encodec_np.encodec_32khz])
def test_hugging_face_folder(tmp_path, preset, parametrizations):
    cfg = tiny(preset, bins=preset().quantizer.bins)  # HF derives the codebook count from the bins
    params = random_params(cfg, seed=2)
    write_hf_folder(tmp_path, cfg, params, parametrizations)
    model = encodec_np.load_model(tmp_path, backend="numpy")
    assert model.config == cfg
    for k, v in params.items():
        np.testing.assert_allclose(model.params[k], v, rtol=2e-6, atol=1e-7, err_msg=k)


def _hf_cache(root, repo_id, cfg, params, revision="0123abcd"):
    """A Hugging Face hub cache holding one snapshot of ``repo_id``, as huggingface_hub lays it out."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    write_hf_folder(repo / "snapshots" / revision, cfg, params)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return repo / "snapshots" / revision


def test_hugging_face_cache_is_found_offline(tmp_path, monkeypatch):
    import sys
    cfg = tiny(bins=1024)
    params = random_params(cfg, seed=5)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    for var in ("HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    _hf_cache(tmp_path / "hf" / "hub", "facebook/encodec_24khz", cfg, params)
    model = encodec_np.load_model("facebook/encodec_24khz", backend="numpy")
    assert model.config == cfg
    np.testing.assert_allclose(model.params["quantizer.codebooks"], params["quantizer.codebooks"])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))  # takes precedence over HF_HOME
    with pytest.raises(encodec_np.EncodecError, match="not in the Hugging Face cache.*pip install huggingface_hub"):
        encodec_np.load_model("facebook/encodec_24khz")
    _hf_cache(tmp_path / "elsewhere", "facebook/encodec_24khz", cfg, params)
    assert encodec_np.EncodecModel.from_pretrained("facebook/encodec_24khz", backend="numpy").config == cfg


def test_hugging_face_hub_is_used_when_installed(tmp_path, monkeypatch):
    import sys
    import types
    cfg = tiny(bins=1024)
    folder = write_hf_folder(tmp_path / "dl", cfg, random_params(cfg, seed=6))
    calls = []

    def snapshot_download(repo_id, allow_patterns=None, local_files_only=False):
        calls.append((repo_id, tuple(allow_patterns), local_files_only))
        if not local_files_only:
            raise OSError("offline")
        return str(folder)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    assert encodec_np.load_model("facebook/encodec_48khz", backend="numpy").config == cfg
    assert calls == [("facebook/encodec_48khz", ("config.json", "model.safetensors"), False),
                     ("facebook/encodec_48khz", ("config.json", "model.safetensors"), True)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_our_format_roundtrip(tmp_path, dtype):
    cfg = tiny(encodec_np.encodec_48khz)
    model = EncodecModel(cfg, random_params(cfg, seed=3), backend="numpy", dtype=dtype)
    encodec_np.save_model(model, tmp_path / "m.safetensors")
    assert not list(tmp_path.glob("*.tmp"))
    again = encodec_np.load_model(tmp_path / "m.safetensors", backend="numpy", dtype=dtype)
    assert_same_model(model, again)
    x = np.random.default_rng(0).standard_normal((1, 2, 3000)).astype(dtype) * 0.1
    np.testing.assert_array_equal(model(x), again(x))


def test_hostile_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.th"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"encoder.model.0.conv.conv.bias": Evil()}, protocol=2))
    with pytest.raises(CheckpointError, match="refusing to load"):
        encodec_np.load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"), ("torch", "load")])
def test_only_allow_listed_globals(tmp_path, module, name):
    path = tmp_path / "x.th"
    write_th(path, {"a": np.zeros(3, np.float32)}, extra_objects={"b": Global(module, name)})
    with pytest.raises(CheckpointError, match=f"refusing to load {module}.{name}"):
        read_torch_state(path)


def test_truncated_and_corrupt_files(tmp_path):
    cfg = tiny()
    path = tmp_path / "m.th"
    write_th(path, to_official_state(random_params(cfg, seed=0), cfg))
    data = path.read_bytes()
    (tmp_path / "cut.th").write_bytes(data[:len(data) // 2])
    (tmp_path / "junk.th").write_bytes(b"not a checkpoint at all")
    for bad in ("cut.th", "junk.th"):
        with pytest.raises(CheckpointError):
            read_checkpoint(tmp_path / bad)
    # A storage shorter than its tensor claims.
    with zipfile.ZipFile(path) as zf, zipfile.ZipFile(tmp_path / "short.th", "w") as out:
        for item in zf.namelist():
            payload = zf.read(item)
            out.writestr(item, payload[:4] if item == "archive/data/0" else payload)
    with pytest.raises(CheckpointError, match="truncated"):
        read_torch_state(tmp_path / "short.th")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.th")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "bad.safetensors")


def test_mismatched_weights_are_listed(tmp_path):
    cfg = encodec_np.encodec_24khz()
    state = to_official_state(random_params(cfg, seed=0), cfg)
    del state["decoder.model.0.conv.conv.bias"]
    state["encoder.model.99.conv.conv.bias"] = np.zeros(3, np.float32)
    state["encoder.model.0.conv.conv.weight_v"] = np.ones((32, 1, 5), np.float32)
    write_th(tmp_path / "m.th", state)
    with pytest.raises(CheckpointError) as info:
        encodec_np.load_model(tmp_path / "m.th")
    msg = str(info.value)
    assert "missing: decoder.model.0.conv.conv.bias" in msg
    assert "unexpected: encoder.model.99.conv.conv.bias" in msg
    assert "encoder.model.0.conv.conv.weight: expected (32, 1, 7), got (32, 1, 5)" in msg


def test_non_finite_weights_are_refused(tmp_path):
    cfg = tiny()
    state = to_official_state(random_params(cfg, seed=0), cfg)
    state["decoder.model.0.conv.conv.weight_v"] = np.zeros_like(state["decoder.model.0.conv.conv.weight_v"])
    write_th(tmp_path / "m.th", state)
    with pytest.raises(CheckpointError, match="decoder.model.0.conv.conv.weight: weight norm gives non-finite"):
        encodec_np.load_model(tmp_path / "m.th", config=cfg)


def test_unrecognised_structure_asks_for_a_config(tmp_path):
    cfg = tiny()
    cfg = cfg.replace(quantizer=RVQConfig(dimension=8, n_q=7, bins=16))
    write_th(tmp_path / "m.th", to_official_state(random_params(cfg, seed=0), cfg))
    with pytest.raises(CheckpointError, match="config="):
        encodec_np.load_model(tmp_path / "m.th")
    model = encodec_np.load_model(tmp_path / "m.th", config=cfg)
    assert model.config == cfg


def test_missing_package_weights_are_a_clear_error(monkeypatch, tmp_path):
    from encodec_np.io import hub

    monkeypatch.setattr(hub, "ASSETS", tmp_path)  # a build without its package data
    with pytest.raises(CheckpointError, match="package has no encodec_np_small_24khz"):
        encodec_np.load_model()


def test_config_metadata_is_json(tmp_path):
    from safetensors import safe_open
    cfg = tiny()
    encodec_np.save_model(EncodecModel(cfg, random_params(cfg)), tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), framework="numpy") as f:
        assert encodec_np.EncodecConfig.from_dict(json.loads(f.metadata()[FORMAT_KEY])) == cfg


@requires_torch
def test_torch_reads_our_writer_and_we_read_torch(tmp_path):
    import torch
    state = {"w": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "i": np.arange(5, dtype=np.int64)}
    write_th(tmp_path / "ours.th", state)
    loaded = torch.load(tmp_path / "ours.th", weights_only=True)
    for k, v in state.items():
        np.testing.assert_array_equal(loaded[k].numpy(), v)
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    torch.save({"t": base.transpose(0, 2), "s": base[1, 1:3], "h": base.half(), "d": base.double()[0, 0]},
               tmp_path / "theirs.th")
    got = read_torch_state(tmp_path / "theirs.th")
    np.testing.assert_array_equal(got["t"], base.transpose(0, 2).numpy())
    np.testing.assert_array_equal(got["s"], base[1, 1:3].numpy())
    assert got["h"].dtype == np.float16 and got["d"].dtype == np.float64
