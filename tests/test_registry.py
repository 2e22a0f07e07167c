"""Preset cards: listing, filtering, lookup errors and user-registered presets."""

import json
import os
import subprocess
import sys

import pytest

import zoo

FAMILIES = ("dense", "cnn", "lstm", "transformer-encoder", "transformer-decoder", "transformer")


@pytest.mark.backend_free
def test_every_family_has_three_sizes():
    for family in FAMILIES:
        names = zoo.list_presets(family=family, checkpoint=False)
        untagged = [n for n in names if "." not in n]
        assert sorted(zoo.info(n).size for n in untagged) == ["base", "small", "tiny"], family
        assert all(n.startswith(family + "-") for n in names)
    assert len([n for n in zoo.list_presets(checkpoint=False) if "." not in n]) == 18


CHECKPOINT_CARDS = ["bert-base-uncased", "distilbert-base-uncased", "distilgpt2", "gpt2", "roberta-base"]


@pytest.mark.backend_free
def test_the_well_known_checkpoints_have_cards():
    assert zoo.list_presets(checkpoint=True) == CHECKPOINT_CARDS
    for name in CHECKPOINT_CARDS:
        card = zoo.info(name)
        assert card.pretrained and card.weights is None
        assert card.checkpoint["source"].startswith("hf://") and card.license in ("MIT", "Apache-2.0")
        assert card.size in zoo.registry.SIZES and card.params > 60_000_000
    assert sorted(zoo.list_presets(checkpoint=False) + CHECKPOINT_CARDS) == zoo.list_presets()


@pytest.mark.backend_free
@pytest.mark.parametrize("checkpoint, problem", [
    ({"source": "https://x/y", "model_type": "gpt2", "architecture": "GPT2LMHeadModel", "size": "base"}, "hf://"),
    ({"source": "hf://x/y", "model_type": "gpt2", "size": "base"}, "architecture"),
    ({"source": "hf://x/y", "model_type": "gpt2", "architecture": "A", "size": "huge"}, "size"),
])
def test_a_malformed_checkpoint_entry_is_refused(checkpoint, problem):
    card = {**zoo.info("gpt2").to_dict(), "checkpoint": checkpoint}
    with pytest.raises(zoo.errors.InvalidPresetError, match="'checkpoint' must be"):
        zoo.registry.card_from_dict(card)


@pytest.mark.backend_free
def test_list_presets_filters_and_sorts():
    assert zoo.list_presets("transformer-*-tiny") == ["transformer-decoder-tiny", "transformer-encoder-tiny"]
    assert zoo.list_presets("cnn-*", family="cnn") == ["cnn-base", "cnn-small", "cnn-small.digits", "cnn-tiny"]
    assert zoo.list_presets(task="seq2seq") == ["transformer-base", "transformer-small", "transformer-tiny"]
    pretrained = zoo.list_presets(pretrained=True)
    assert "transformer-small" in pretrained and "cnn-small.digits" in pretrained
    assert sorted(pretrained + zoo.list_presets(pretrained=False)) == zoo.list_presets()
    assert all(zoo.info(name).weights is None for name in zoo.list_presets(pretrained=False))
    assert zoo.list_presets("nothing*") == []


@pytest.mark.backend_free
def test_transformer_small_has_the_documented_size():
    config = zoo.info("transformer-small").config
    assert (config["num_encoder_layers"], config["hidden_dim"], config["num_heads"]) == (4, 256, 4)


@pytest.mark.backend_free
def test_unknown_preset_names_the_closest_ones():
    with pytest.raises(zoo.PresetNotFoundError) as caught:
        zoo.load("transfomer-smal")
    assert "transformer-small" in caught.value.suggestions
    assert "transformer-small" in str(caught.value) and "zoo list" in str(caught.value)
    assert isinstance(caught.value, KeyError)


def test_register_preset_from_a_file(tmp_path):
    card = zoo.info("dense-tiny").to_dict()
    card.update(name="dense-tiny.four-classes", config={**card["config"], "num_classes": 4})
    path = tmp_path / "card.json"
    path.write_text(json.dumps(card))
    zoo.register_preset(path)
    try:
        assert zoo.list_presets("dense-tiny*") == ["dense-tiny", "dense-tiny.four-classes"]
        assert zoo.load("dense-tiny.four-classes").output_shape == (None, 4)
        with pytest.raises(zoo.InvalidPresetError, match="exists already"):
            zoo.register_preset(path)
    finally:
        zoo.unregister_preset("dense-tiny.four-classes")
    assert "dense-tiny.four-classes" not in zoo.list_presets()


@pytest.mark.backend_free
def test_malformed_cards_are_refused_with_the_reason():
    card = zoo.info("dense-tiny").to_dict()
    with pytest.raises(zoo.InvalidPresetError, match="missing keys \\['family'\\]"):
        zoo.register_preset({k: v for k, v in card.items() if k != "family"})
    with pytest.raises(zoo.InvalidPresetError, match="unknown keys \\['colour'\\]"):
        zoo.register_preset({**card, "colour": "blue"})
    with pytest.raises(zoo.InvalidPresetError, match="'params' has the wrong type"):
        zoo.register_preset({**card, "params": "many"})
    with pytest.raises(zoo.InvalidPresetError, match="'weights' must be null or"):
        zoo.register_preset({**card, "weights": {"url": "https://example.org/w.h5"}})


def test_a_card_of_an_unknown_family_fails_on_load_naming_the_families():
    card = {**zoo.info("dense-tiny").to_dict(), "name": "mystery-tiny", "family": "mystery"}
    zoo.register_preset(card)
    try:
        with pytest.raises(zoo.FamilyNotFoundError, match="Known families: cnn, dense"):
            zoo.load("mystery-tiny")
    finally:
        zoo.unregister_preset("mystery-tiny")


def run_python(code, backend):
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.backend_free
def test_import_zoo_imports_no_framework():
    code = (
        "import sys, zoo; zoo.list_presets(); zoo.info('cnn-small');"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    assert run_python(code, os.environ.get("KERAS_BACKEND", "jax")) == "[]"


def test_the_backend_is_whatever_keras_backend_says():
    backend = os.environ.get("KERAS_BACKEND", "jax")
    code = "import zoo, keras; m = zoo.load('dense-tiny'); print(keras.backend.backend())"
    assert run_python(code, backend) == backend
