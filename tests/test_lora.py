"""LoRA fine-tuning, adapter files and merging, on every backend."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

import zoo


def variables_by_path(model):
    return {v.path: np.array(to_numpy(v)) for v in model.variables}


def classification_batch(model, count=16, num_classes=3):
    x, _ = model.example_batch(batch_size=count, seed=3)
    return x, (np.arange(count) % num_classes).astype("int32")


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    """A transformer-encoder-tiny preset folder: the fixed base weights adapters refer to."""
    keras.utils.set_random_seed(5)
    return zoo.save_preset(zoo.load("transformer-encoder-tiny"), tmp_path_factory.mktemp("lora") / "base")


@pytest.fixture(scope="module")
def lora_model(base_folder):
    """The base with a new 3-class head, LoRA fine-tuned for one epoch."""
    model = zoo.load(base_folder, num_classes=3)
    x, y = classification_batch(model)
    before = variables_by_path(model)
    zoo.finetune(model, (x, y), epochs=1, batch_size=8, learning_rate=1e-2, lora_rank=2, verbose=0)
    return model, before, x


def test_lora_trains_only_adapters_and_head(lora_model):
    model, before, _ = lora_model
    after = variables_by_path(model)
    adapters = [path for path in after if "lora_kernel" in path]
    assert adapters and all(path not in before for path in adapters)
    assert any(np.any(after[path] != 0) for path in adapters if path.endswith("lora_kernel_b"))
    for path, value in before.items():
        if path.startswith("head/") or "seed_generator" in path:
            continue
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    assert not np.array_equal(after["head/kernel"], before["head/kernel"])


def test_adapter_file_loads_into_a_fresh_model_with_the_same_outputs(lora_model, base_folder, tmp_path):
    model, _, x = lora_model
    path = zoo.save_lora(model, tmp_path / "adapter.npz")
    assert path == tmp_path / "adapter.npz" and sorted(tmp_path.iterdir()) == [path]
    assert path.stat().st_size < 0.25 * model.count_params() * 4  # far smaller than the model
    fresh = zoo.load(base_folder, num_classes=3)
    zoo.load_lora(fresh, path)
    np.testing.assert_allclose(to_numpy(fresh(x)), to_numpy(model(x)), atol=1e-5, rtol=0)


def test_merged_model_has_no_adapters_and_the_same_outputs(lora_model, tmp_path):
    model, _, x = lora_model
    model.tokenizer = zoo.train_tokenizer(["a small vocabulary for the merged preset"], vocab_size=40)
    try:
        merged = zoo.merge_lora(model)
    finally:
        tokenizer, model.tokenizer = model.tokenizer, None
    assert merged.tokenizer is tokenizer
    assert not any("lora" in v.path for v in merged.variables)
    assert merged.count_params() < model.count_params()
    np.testing.assert_allclose(to_numpy(merged(x)), to_numpy(model(x)), atol=1e-5, rtol=0)
    reloaded = zoo.load(zoo.save_preset(merged, tmp_path / "merged"))
    assert reloaded.tokenizer.get_vocabulary() == tokenizer.get_vocabulary()
    np.testing.assert_allclose(to_numpy(reloaded(x)), to_numpy(model(x)), atol=1e-5, rtol=0)


def test_adapter_errors_are_clear(lora_model, base_folder, tmp_path):
    model, _, _ = lora_model
    path = zoo.save_lora(model, tmp_path / "adapter.npz")
    with pytest.raises(zoo.InvalidConfigError, match="head/kernel has shape"):
        zoo.load_lora(zoo.load(base_folder), path)  # a 2-class head
    with pytest.raises(zoo.InvalidConfigError, match="adapts a transformer-encoder model"):
        zoo.load_lora(zoo.load("dense-tiny"), path)
    with pytest.raises(zoo.InvalidConfigError, match="no LoRA adapters"):
        zoo.save_lora(zoo.load("dense-tiny"), tmp_path / "none.npz")
    with pytest.raises(zoo.InvalidConfigError, match="no dense, attention or convolution"):
        zoo.finetune(zoo.load("lstm-tiny"), zoo.load("lstm-tiny").example_batch(), lora_rank=2, verbose=0)


def test_lora_on_a_cnn_adapts_its_convolutions():
    model = zoo.load("cnn-tiny", num_classes=2)
    paths = zoo.enable_lora(model, rank=2)
    assert "stem_conv" in paths and not any(path.startswith("head") for path in paths)
    x, _ = model.example_batch(batch_size=4)
    y = np.array([0, 1, 0, 1])
    history = zoo.finetune(model, (x, y), epochs=1, lora_rank=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
