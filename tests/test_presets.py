"""Every built-in preset, on the active backend: build, run, train, save, reload."""

import functools

import keras
import numpy as np
import pytest
from conftest import ALL_PRESETS, assert_same_outputs, family_of, preset_params, to_numpy

import zoo
from tools.update_cards import derived_fields

SEQUENCE_PRESETS = [n for n in ALL_PRESETS if family_of(n).sequence_inputs]
GENERATIVE_PRESETS = [n for n in ALL_PRESETS if hasattr(family_of(n), "generate")]


@functools.cache
def shared_model(name):
    """One build per preset, for the tests that only read the model."""
    return zoo.load(name)


@pytest.fixture
def preset(request):
    """(name, shared model), parametrized indirectly with preset names."""
    return request.param, shared_model(request.param)


@pytest.mark.parametrize("preset", preset_params(ALL_PRESETS), indirect=True)
def test_card_matches_built_model(preset):
    name, model = preset
    card = zoo.info(name)
    assert derived_fields(model) == {"config": card.config, "inputs": card.inputs, "params": card.params}
    assert model.task == card.task
    assert card.size in zoo.registry.SIZES


@pytest.mark.parametrize("preset", preset_params(ALL_PRESETS), indirect=True)
def test_forward_output_shape(preset):
    name, model = preset
    x, y = model.example_batch(batch_size=3)
    outputs = to_numpy(model(x, training=False))
    config = zoo.info(name).config
    width = config.get("num_classes") if "classification" in model.task else config.get("vocab_size")
    assert outputs.shape[0] == 3
    assert outputs.shape[-1] == width
    assert np.isfinite(outputs).all()
    # Per-position outputs line up with the (shifted) targets they are scored against.
    assert outputs.shape[:-1] == np.shape(y)[: outputs.ndim - 1]


@pytest.mark.parametrize("name", preset_params(ALL_PRESETS))
def test_one_optimizer_step_lowers_the_loss(name):
    model = zoo.load(name, dropout=0.0)
    x, y = model.example_batch(batch_size=4)
    loss_fn = model.default_loss()

    def current_loss():
        # training=True: batch norm scores with the batch statistics it trains on.
        return float(to_numpy(loss_fn(y, model(x, training=True))))

    before = current_loss()
    # Plain gradient descent with a small step must go downhill.
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=loss_fn)
    model.train_on_batch(x, y)
    after = current_loss()
    assert np.isfinite(before) and after < before, (before, after)


@pytest.mark.parametrize("preset", preset_params(ALL_PRESETS), indirect=True)
def test_keras_file_round_trip_is_exact(preset, tmp_path):
    _, model = preset
    x, _ = model.example_batch()
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert type(restored) is type(model)
    assert restored.zoo_config == model.zoo_config
    assert_same_outputs(model, restored, x, atol=0)


@pytest.mark.parametrize("preset", preset_params(ALL_PRESETS), indirect=True)
def test_config_round_trip_rebuilds_the_same_model(preset):
    _, model = preset
    x, _ = model.example_batch()
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert clone.get_config() == model.get_config()
    assert_same_outputs(model, clone, x, atol=0)


def append_padding(inputs, steps):
    """The same batch with `steps` more padding positions on every sequence."""
    if isinstance(inputs, dict):
        return {key: append_padding(value, steps) for key, value in inputs.items()}
    pad = np.zeros((inputs.shape[0], steps, *inputs.shape[2:]), inputs.dtype)
    return np.concatenate([inputs, pad], axis=1)


@pytest.mark.parametrize("preset", preset_params(SEQUENCE_PRESETS), indirect=True)
def test_padding_does_not_change_real_outputs(preset):
    name, model = preset
    x, _ = model.example_batch(batch_size=3)
    reference = to_numpy(model(x, training=False))
    padded = to_numpy(model(append_padding(x, 4), training=False))
    if reference.ndim == 3:  # per-position outputs: compare the real positions
        padded = padded[:, : reference.shape[1]]
    np.testing.assert_allclose(padded, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("preset", preset_params(GENERATIVE_PRESETS), indirect=True)
def test_generate_returns_the_requested_length(preset):
    name, model = preset
    prompt = np.array([[5, 6, 7, 0], [8, 9, 10, 11]], "int32")
    tokens = model.generate(prompt, max_length=9, stop_token_ids=None)
    assert tokens.shape == (2, 9)
    # Padding (0) is never generated, and without stop tokens every slot is filled.
    assert ((tokens > 0) & (tokens < zoo.info(name).config["vocab_size"])).all()
    if zoo.info(name).family == "transformer-decoder":
        np.testing.assert_array_equal(tokens[:, :3], prompt[:, :3])  # prompts are kept
