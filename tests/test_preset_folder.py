"""The preset folder format: save, verify, load, on and across backends."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import assert_same_outputs, to_numpy

import zoo
from zoo.hub import folder_format

TINY_PRESETS = zoo.list_presets("*-tiny")


@pytest.mark.parametrize("name", TINY_PRESETS)
def test_saved_preset_loads_with_identical_outputs(name, tmp_path):
    model = zoo.load(name)
    x, _ = model.example_batch()
    folder = zoo.save_preset(model, tmp_path / name, dataset="none", metrics={"accuracy": 0.5})
    restored = zoo.load(str(folder))
    assert_same_outputs(model, restored, x, atol=0)
    assert restored.zoo_config == model.zoo_config


def test_folder_layout_metadata_and_assets(tmp_path):
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_text("[PAD]\nhello\n")
    model = zoo.load("transformer-decoder-tiny")
    folder = zoo.save_preset(model, tmp_path / "lm", assets={"vocab.txt": vocabulary},
                             dataset="python docs", label_names=None, license="MIT")
    files = folder_format.verify_folder(folder)
    assert sorted(files) == ["assets/vocab.txt", "config.json", "metadata.json", "model.weights.h5"]
    config = json.loads((folder / "config.json").read_text())
    assert config["family"] == "transformer-decoder" and config["format_version"] == 1
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["backend"] == keras.backend.backend()
    assert metadata["keras_version"] == keras.__version__
    assert metadata["params"] == model.count_params()
    assert (metadata["dataset"], metadata["license"]) == ("python docs", "MIT")
    assert (metadata["metrics"], metadata["label_names"]) == ({}, None)  # always present
    assert (folder / "assets" / "vocab.txt").read_text() == "[PAD]\nhello\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_tampered_file_is_named_with_both_hashes(tmp_path):
    folder = zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "p")
    weights = folder / "model.weights.h5"
    expected = folder_format.sha256_of(weights)
    with open(weights, "r+b") as file:
        file.seek(-1, os.SEEK_END)
        last = file.read(1)
        file.seek(-1, os.SEEK_END)
        file.write(bytes([last[0] ^ 1]))
    with pytest.raises(zoo.ChecksumError) as caught:
        zoo.load(str(folder))
    message = str(caught.value)
    assert "model.weights.h5" in message and expected in message and folder_format.sha256_of(weights) in message


def test_a_config_naming_an_unregistered_family_is_refused_before_building(tmp_path):
    folder = zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "p")
    config = json.loads((folder / "config.json").read_text())
    config["family"] = "os.system"
    (folder / "config.json").write_text(json.dumps(config))
    folder_format.write_manifest(folder)  # a consistent, but hostile, preset
    with pytest.raises(zoo.InvalidPresetError, match="names the family 'os.system', which is not registered"):
        zoo.load(str(folder))


def test_a_config_with_unknown_keys_is_refused(tmp_path):
    folder = zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "p")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["__class__"] = "keras.layers.Lambda"
    (folder / "config.json").write_text(json.dumps(config))
    folder_format.write_manifest(folder)
    with pytest.raises(zoo.InvalidConfigError, match="Unknown config key"):
        zoo.load(str(folder))


def test_not_a_preset_folder(tmp_path):
    with pytest.raises(zoo.InvalidPresetError, match="manifest.json is missing"):
        zoo.load(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="No preset folder or archive"):
        zoo.load(str(tmp_path / "nowhere"))


def test_save_preset_refuses_other_models_and_existing_folders(tmp_path):
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="takes a zoo model"):
        zoo.save_preset(plain, tmp_path / "plain")
    model = zoo.load("dense-tiny")
    zoo.save_preset(model, tmp_path / "p")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.save_preset(model, tmp_path / "p")
    with pytest.raises(TypeError, match="JSON-serialisable"):
        zoo.save_preset(model, tmp_path / "q", metrics={"accuracy": object()})
    zoo.save_preset(zoo.load("dense-tiny", num_classes=4), tmp_path / "p", overwrite=True)
    assert zoo.load(str(tmp_path / "p")).output_shape == (None, 4)


def test_pretrained_false_builds_the_architecture_only(tmp_path):
    model = zoo.load("dense-tiny")
    folder = zoo.save_preset(model, tmp_path / "p")
    fresh = zoo.load(str(folder), pretrained=False)
    assert fresh.zoo_config == model.zoo_config
    x, _ = model.example_batch()
    assert not np.allclose(to_numpy(fresh(x)), to_numpy(model(x)))


SAVE_ON_OTHER_BACKEND = """
import sys, numpy as np, keras, zoo
keras.utils.set_random_seed(7)
out = sys.argv[1]
arrays = {}
for name in zoo.list_presets("*-tiny"):
    model = zoo.load(name)
    x, _ = model.example_batch(batch_size=2, seed=3)
    zoo.save_preset(model, f"{out}/{name}")
    arrays[name] = keras.ops.convert_to_numpy(model(x, training=False))
np.savez(f"{out}/outputs.npz", **arrays)
"""


def test_a_preset_saved_on_another_backend_loads_with_the_same_outputs(tmp_path):
    backends = ["tensorflow", "jax", "torch"]
    here = keras.backend.backend()
    other = backends[(backends.index(here) + 1) % 3]
    env = {**os.environ, "KERAS_BACKEND": other}
    result = subprocess.run([sys.executable, "-c", SAVE_ON_OTHER_BACKEND, str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = np.load(tmp_path / "outputs.npz")
    for name in TINY_PRESETS:
        model = zoo.load(str(tmp_path / name))
        assert json.loads((tmp_path / name / "metadata.json").read_text())["backend"] == other
        x, _ = model.example_batch(batch_size=2, seed=3)
        np.testing.assert_allclose(to_numpy(model(x, training=False)), expected[name], atol=1e-4, rtol=0,
                                   err_msg=f"{name}: saved on {other}, loaded on {here}")


def test_a_trained_model_is_saved_without_its_optimizer_state(tmp_path):
    """Keras writes a compiled model's optimizer variables (Adam: two per weight)
    into save_weights; a preset holds the model's weights only."""
    import h5py

    model = zoo.load("dense-tiny")
    x, y = model.example_batch(batch_size=8)
    zoo.finetune(model, (x, y), epochs=1, verbose=0)
    assert model.optimizer is not None and model.optimizer.variables
    folder = zoo.save_preset(model, tmp_path / "trained")
    with h5py.File(folder / folder_format.WEIGHTS_FILE) as weights:
        assert "optimizer" not in weights and "layers" in weights
    assert_same_outputs(model, zoo.load(str(folder)), x, atol=0)


LOAD_KERAS_FILE = """
import sys, numpy as np, zoo
model = zoo.load(sys.argv[1])
print(model.family, float(np.abs(model.predict(np.ones((1, 30), "float32"), verbose=0)).sum()))
"""


def test_a_keras_file_loads_in_a_fresh_process(tmp_path):
    """Keras finds a zoo class only once its module is imported; a fresh
    process has imported none (a test that built a model first would hide it)."""
    model = zoo.load("dense-tiny")
    model.save(tmp_path / "model.keras")
    expected = float(np.abs(to_numpy(model(np.ones((1, 30), "float32")))).sum())
    result = subprocess.run([sys.executable, "-c", LOAD_KERAS_FILE, str(tmp_path / "model.keras")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    family, total = result.stdout.split()
    assert family == "dense" and abs(float(total) - expected) < 1e-5


def test_a_keras_file_of_a_zoo_model_loads_through_zoo_load(tmp_path, caplog):
    model = zoo.load("dense-tiny", label_names=["no", "yes"])
    x, _ = model.example_batch()
    model.save(tmp_path / "model.keras")
    assert_same_outputs(model, zoo.load(str(tmp_path / "model.keras")), x, atol=0)
    with caplog.at_level("WARNING", logger="zoo"):
        changed = zoo.load(str(tmp_path / "model.keras"), num_classes=4)
    assert changed.output_shape == (None, 4) and "head" in caplog.text
    np.testing.assert_array_equal(to_numpy(changed.get_layer("hidden_0").kernel), to_numpy(model.get_layer("hidden_0").kernel))
    fresh = zoo.load(str(tmp_path / "model.keras"), pretrained=False)
    assert fresh.zoo_config == model.zoo_config


def test_other_keras_files_and_other_files_say_how_to_load_them(tmp_path):
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(zoo.InvalidPresetError, match=r"holds a Sequential, not a zoo model; load it with keras.saving.load_model"):
        zoo.load(str(tmp_path / "plain.keras"))
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(zoo.InvalidPresetError, match="broken.keras is not a Keras model file"):
        zoo.load(str(tmp_path / "broken.keras"))
    (tmp_path / "weights.h5").write_bytes(b"x")
    with pytest.raises(zoo.InvalidPresetError, match="weights.h5 is a file, but not one the zoo loads"):
        zoo.load(str(tmp_path / "weights.h5"))
    from zoo.hub import resolving

    with pytest.raises(zoo.InvalidPresetError, match="Keras model file, not a preset folder"):
        resolving.resolve(str(tmp_path / "plain.keras"))


def test_a_listed_file_that_links_outside_the_folder_is_refused(tmp_path):
    """Backend-free in what it checks: the link is refused before anything reads it."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not for a preset")
    folder = zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "p")
    (folder / "assets").mkdir()
    (folder / "assets" / "notes.txt").symlink_to(secret)
    folder_format.write_manifest(folder)  # the publisher lists the link, with the target's hash
    with pytest.raises(zoo.ChecksumError, match="notes.txt is a link .*secret.txt.*may not hold"):
        zoo.load(str(folder))
    (folder / "assets" / "notes.txt").unlink()
    (folder / "assets" / "notes.txt").symlink_to(folder / "config.json")  # inside: allowed
    folder_format.write_manifest(folder)
    zoo.load(str(folder))
