"""``encodec_np.seanet``: the layer lists are Meta's modules, name for name and shape for shape.

Checked against the key lists of the published checkpoints in
``../shared/reference/state_dict_keys.txt`` (names and shapes only; the
weights themselves are never needed), for Meta's ``.th`` files and Hugging
Face's ``model.safetensors`` spellings.
"""
import re
from pathlib import Path

import numpy as np
import pytest

import encodec_np
from encodec_np.io.checkpoint import canonicalize, hf_to_official, to_official_state
from encodec_np.seanet import ConvTranspose, decoder_layers, encoder_layers
from encodec_np.validate import expected_param_shapes

KEYS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "state_dict_keys.txt"
pytestmark = pytest.mark.skipif(not KEYS.is_file(), reason="needs ../shared/reference/state_dict_keys.txt")


def published(title: str) -> dict:
    """``name → shape`` of the section of the key list whose heading starts with ``title``."""
    sections = re.split(r"^## ", KEYS.read_text(), flags=re.M)
    body = next(s for s in sections if s.startswith(title))
    rows = [line.split("\t") for line in body.splitlines()[1:] if "\t" in line]
    return {name: tuple(int(v) for v in re.findall(r"\d+", shape)) for name, shape in rows}


@pytest.mark.parametrize("preset,title", [(encodec_np.encodec_24khz, "official encodec_24khz"),
                                          (encodec_np.encodec_48khz, "official encodec_48khz")])
def test_official_state_dicts_have_metas_names_and_shapes(preset, title):
    cfg = preset()
    shapes = expected_param_shapes(cfg)
    params = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
    params["quantizer.codebooks"] = np.ones(shapes["quantizer.codebooks"], np.float32)
    if cfg.seanet.norm == "weight_norm":  # a zero weight has no norm to fold: any non-zero one will do
        params = {k: (np.ones_like(v) if k.endswith("weight") else v) for k, v in params.items()}
    ours = {k: tuple(np.shape(v)) for k, v in to_official_state(params, cfg).items()}
    assert ours == published(title)


@pytest.mark.parametrize("preset,title", [(encodec_np.encodec_24khz, "HF facebook/encodec_24khz"),
                                          (encodec_np.encodec_48khz, "HF facebook/encodec_48khz"),
                                          (encodec_np.encodec_32khz, "HF facebook/encodec_32khz")])
def test_hugging_face_names_map_onto_the_layer_lists(preset, title):
    cfg = preset()
    convtr = {layer.name for layer in decoder_layers(cfg.seanet) if isinstance(layer, ConvTranspose)}
    state = {hf_to_official(k, convtr): np.ones(s, np.float32) for k, s in published(title).items()}
    canonical = canonicalize(state)
    assert {k: v.shape for k, v in canonical.items()} == expected_param_shapes(cfg)


def test_layer_names_follow_metas_module_indices():
    layers = encoder_layers(encodec_np.encodec_24khz().seanet)
    names = [layer.name for layer in layers if getattr(layer, "name", None)]
    assert names[0] == "encoder.model.0" and "encoder.model.13" in names and names[-1] == "encoder.model.15"
