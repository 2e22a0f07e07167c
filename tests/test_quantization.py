"""zoo.quantize: Keras' int8 / int4 / float8 on every family, saved and loaded
back exactly, refused where it cannot apply, its accuracy cost as published.
Runs on each backend."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_PRESETS

import zoo
from zoo.deploy import quantization
from zoo.eval import published

ROOT = Path(__file__).resolve().parent.parent


def example(model, batch_size=4):
    options = {"length": 12} if model.sequence_inputs else {}
    return model.example_batch(batch_size=batch_size, **options)[0]


@pytest.mark.parametrize("mode", quantization.MODES)
@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_a_quantized_preset_saves_and_loads_back_exactly(preset, mode, models, tmp_path):
    model = models(preset)
    x = example(model)
    before = np.asarray(model.predict(x, verbose=0))
    small = zoo.quantize(model, mode)
    assert zoo.quantization_mode(small) == mode and zoo.quantization_mode(model) is None
    assert quantization.quantized_layers(small)
    outputs = np.asarray(small.predict(x, verbose=0))
    assert np.isfinite(outputs).all() and not np.array_equal(outputs, before)  # quantized, and it shows
    np.testing.assert_array_equal(np.asarray(model.predict(x, verbose=0)), before)  # the float model kept
    folder = zoo.save_preset(small, tmp_path / "small")
    assert json.loads((folder / "config.json").read_text())["quantization"] == mode
    loaded = zoo.load(folder)
    assert zoo.quantization_mode(loaded) == mode
    for saved, read in zip(small.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(read.numpy()), np.asarray(saved.numpy()), err_msg=saved.path)
    # Float noise only: XLA (TensorFlow's predict) may fuse two separately built models differently.
    np.testing.assert_allclose(np.asarray(loaded.predict(x, verbose=0)), outputs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("preset", ["cnn-tiny", "lstm-tiny"])
def test_layers_keras_does_not_quantize_stay_float(preset, models):
    small = zoo.quantize(models(preset), "int8")
    kept_float = [layer for layer in small._flatten_layers() if layer.weights and not layer.quantization_mode]
    names = " ".join(layer.name for layer in kept_float)
    assert ("conv" in names) if preset == "cnn-tiny" else ("lstm" in names)
    assert set(quantization.quantized_layers(small)).isdisjoint(layer.name for layer in kept_float)


def test_int8_weights_take_less_room_on_disk(models, tmp_path):
    model = models("transformer-encoder-tiny")
    float_file = zoo.save_preset(model, tmp_path / "float") / "model.weights.h5"
    int8_file = zoo.save_preset(zoo.quantize(model, "int8"), tmp_path / "int8") / "model.weights.h5"
    assert int8_file.stat().st_size < 0.5 * float_file.stat().st_size


def test_bad_requests_are_refused_and_change_nothing(models, tmp_path):
    model = models("dense-tiny")
    with pytest.raises(zoo.InvalidConfigError, match="not a quantization mode; choose one of int8, int4, float8"):
        zoo.quantize(model, "int3")
    small = zoo.quantize(model, "int8")
    with pytest.raises(zoo.InvalidConfigError, match="already quantized \\(int8\\)"):
        zoo.quantize(small, "int4")
    folder = zoo.save_preset(small, tmp_path / "small")
    with pytest.raises(zoo.InvalidConfigError, match="int8-quantized model, which cannot be rebuilt with a new head"):
        zoo.load(folder, num_classes=5)
    assert zoo.quantization_mode(model) is None


def test_a_preset_folder_with_a_bad_quantization_mode_is_refused(models, tmp_path):
    folder = zoo.save_preset(zoo.quantize(models("dense-tiny"), "int8"), tmp_path / "small")
    config = json.loads((folder / "config.json").read_text())
    config["quantization"] = "int2"
    (folder / "config.json").write_text(json.dumps(config))
    from zoo.hub import folder_format

    with pytest.raises(zoo.InvalidPresetError, match="quantization must be one of int8, int4, float8, got 'int2'"):
        folder_format.read_quantization(folder)


def published_quantized_rows():
    with open(ROOT / "presets" / "quantized-results.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_the_quantized_metric_is_the_published_one():
    """presets/quantized-results.csv (tools/quantized_results.py) publishes each
    pretrained preset's metric at int8 and int4; it holds on this backend."""
    rows = [row for row in published_quantized_rows() if row["preset"] == "dense-small.breast-cancer"]
    assert {row["mode"] for row in rows} == {"float32", "int8", "int4"}
    model = zoo.load("dense-small.breast-cancer")
    dataset = zoo.load_dataset(model.preset_metadata["dataset"]["name"])
    for row in rows:
        measured = model if row["mode"] == "float32" else zoo.quantize(model, row["mode"])
        value = published.score(measured, dataset)[row["metric"]]
        assert abs(value - float(row["value"])) <= published.TOLERANCES[row["metric"]], row


def test_command_evaluates_a_quantized_preset_beside_its_published_figures(capsys, monkeypatch):
    from zoo.cli.commands import main

    monkeypatch.setenv("COLUMNS", "200")
    code = main(["eval", "dense-small.breast-cancer", "--quantize", "int8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "published (float32)" in out and "int8" in out and "accuracy" in out
    published_accuracy = zoo.info("dense-small.breast-cancer").metrics["test"]["accuracy"]
    assert f"{published_accuracy:.4f}" in out


def test_the_copy_starts_from_the_same_float_model(models):
    """A regression: the copy's adapted Normalization kept its initial mean 0 and
    variance 1 (set_weights does not recompute them), and the int8 breast-cancer
    classifier fell to 0.38 accuracy."""
    model = models("dense-small.breast-cancer")
    x, _ = model.example_batch(batch_size=8)
    copy = quantization.float_copy(model)
    # Float noise only (XLA may fuse two separately built models differently); the bug was a 0.62 accuracy drop.
    np.testing.assert_allclose(np.asarray(copy.predict(x, verbose=0)), np.asarray(model.predict(x, verbose=0)),
                               rtol=1e-5, atol=1e-6)


def test_a_model_with_unmerged_lora_adapters_is_refused_with_what_to_do(tmp_path):
    """A regression: the copy dropped the adapters' weights by position and failed in set_weights."""
    model = zoo.load("transformer-encoder-tiny")
    zoo.enable_lora(model, rank=2)
    with pytest.raises(zoo.InvalidConfigError, match=r"merge them first \(model = zoo.merge_lora\(model\)\)"):
        zoo.quantize(model, "int8")
    assert zoo.quantization_mode(zoo.quantize(zoo.merge_lora(model), "int8")) == "int8"


def test_the_copy_is_named_after_its_mode(models):
    """Reports and summaries (zoo eval, model.summary()) say what was measured."""
    model = models("dense-tiny")
    assert zoo.quantize(model, "int4").name == f"{model.name}_int4"


def test_loading_a_quantized_preset_warns_about_nothing(models, tmp_path, recwarn):
    """A regression: Keras warned once for every layer it leaves float (pooling, dropout, ...)."""
    folder = zoo.save_preset(zoo.quantize(models("cnn-tiny"), "int8"), tmp_path / "small")
    recwarn.clear()
    zoo.load(folder)
    # (numpy's own deprecation notes from the backends are not ours to judge here)
    assert [str(warning.message) for warning in recwarn if "quantize" in str(warning.message)] == []


def test_keras_garbage_collections_while_quantizing_skip_the_objects_alive_before(models, tmp_path, monkeypatch):
    """A regression: Keras collects garbage each time a layer drops its float
    kernel, and each full collection walked every object of the process
    (~0.2 s each in a test process: 7 s to quantize transformer-tiny, and as
    long again to load the quantized preset)."""
    import gc

    frozen_during_collections = []

    def record(phase, info):
        if phase == "start" and info["generation"] == 2:
            frozen_during_collections.append(gc.get_freeze_count())

    model = models("transformer-encoder-tiny")
    gc.callbacks.append(record)
    try:
        small = zoo.quantize(model, "int8")
        zoo.load(zoo.save_preset(small, tmp_path / "small"))
    finally:
        gc.callbacks.remove(record)
    assert frozen_during_collections and all(count > 0 for count in frozen_during_collections)
    assert gc.get_freeze_count() == 0  # everything is collectable again afterwards
    # A program that froze objects itself keeps them frozen: quantizing never
    # unfreezes them. (Counting frozen objects cannot show it: a frozen object
    # that loses its last reference, say a cache entry, leaves the count.)
    gc.freeze()
    unfreezes = []
    monkeypatch.setattr(gc, "unfreeze", lambda: unfreezes.append(True))
    try:
        zoo.quantize(model, "int8")
        assert unfreezes == [] and gc.get_freeze_count() > 0
    finally:
        monkeypatch.undo()
        gc.unfreeze()
