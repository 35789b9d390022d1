"""Model card and weight files: written, verified and refused for the right reasons."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from core.errors import ModelCardError, ModelLoadError
from core.models import ModelCard, build_model, load_card, load_weights, save_model


@pytest.fixture
def small_card() -> ModelCard:
    return ModelCard(name="tiny", encoder="resnet18")


def test_save_load_round_trip_predicts_identically(tmp_path, small_card):
    torch.manual_seed(0)
    model = build_model(small_card).eval()
    card = save_model(model, small_card, tmp_path)
    assert len(card.weights_sha256) == 64
    loaded, card2 = load_weights(tmp_path)
    assert card2 == card
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        np.testing.assert_allclose(model(x).numpy(), loaded(x).numpy(), rtol=1e-5, atol=1e-5)


def test_float16_weights_halve_the_file_and_still_load(tmp_path, small_card):
    model = build_model(small_card)
    save_model(model, small_card, tmp_path / "a", "float32")
    save_model(model, small_card, tmp_path / "b", "float16")
    a = (tmp_path / "a" / "model.safetensors").stat().st_size
    b = (tmp_path / "b" / "model.safetensors").stat().st_size
    assert b < 0.55 * a
    loaded, card = load_weights(tmp_path / "b")
    assert card.weights_dtype == "float16"
    assert next(loaded.parameters()).dtype == torch.float32


def test_tampered_weights_are_refused(tmp_path, small_card):
    save_model(build_model(small_card), small_card, tmp_path)
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="do not match their card"):
        load_weights(tmp_path)


def test_pickle_posing_as_safetensors_is_never_unpickled(tmp_path, small_card):
    save_model(build_model(small_card), small_card, tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(pickle.dumps({"x": 1}))
    card = load_card(tmp_path)
    # Even with a matching hash the file must be rejected as not-safetensors, not unpickled.
    from core.models import sha256_file

    card_json = json.loads((tmp_path / "model.json").read_text())
    card_json["weights_sha256"] = sha256_file(weights)
    (tmp_path / "model.json").write_text(json.dumps(card_json))
    assert card.name == "tiny"
    with pytest.raises(ModelLoadError, match="not a readable safetensors"):
        load_weights(tmp_path)


def test_card_with_unknown_field_lists_known_fields(tmp_path, small_card):
    d = small_card.to_dict()
    d["encoder_name"] = "resnet34"
    (tmp_path / "model.json").write_text(json.dumps(d))
    with pytest.raises(ModelCardError, match="unknown field.*encoder_name.*Known fields"):
        load_card(tmp_path)


def test_card_from_the_future_is_refused(tmp_path, small_card):
    d = small_card.to_dict()
    d["card_version"] = 99
    (tmp_path / "model.json").write_text(json.dumps(d))
    with pytest.raises(ModelCardError, match="card_version 99"):
        load_card(tmp_path)


def test_unknown_architecture_lists_the_known_ones(small_card):
    import dataclasses

    with pytest.raises(ModelCardError, match="known: unet"):
        build_model(dataclasses.replace(small_card, architecture="segformer"))


def test_missing_card_says_what_a_model_directory_holds(tmp_path):
    with pytest.raises(ModelCardError, match="model.json and model.safetensors"):
        load_card(tmp_path)
