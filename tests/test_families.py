"""Family behaviour beyond the presets: other inputs, tasks and decoding."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import to_numpy

import zoo
from zoo.architectures import get_family, register_family
from zoo.architectures.base import ZooModel
from zoo.architectures.cnn import CNNClassifier
from zoo.architectures.dense import DenseModel
from zoo.architectures.lstm import LSTMModel
from zoo.architectures.transformer import TransformerSeq2Seq
from zoo.architectures.transformer_decoder import TransformerDecoderLM

SMALL_TRANSFORMER = dict(vocab_size=40, hidden_dim=16, num_heads=2, intermediate_dim=32, dropout=0.0)


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (32, 32, 3), (20, 12, 2)])
@pytest.mark.parametrize("residual", [True, False])
def test_cnn_takes_any_image_shape(input_shape, residual):
    model = CNNClassifier(input_shape=list(input_shape), stage_filters=[4, 8, 8], residual=residual, num_classes=3)
    x, y = model.example_batch(batch_size=2)
    assert x.shape == (2, *input_shape)
    assert to_numpy(model(x)).shape == (2, 3)


def test_dense_regression_head():
    model = DenseModel(num_features=5, hidden_units=[8], task="regression", num_targets=2)
    x, y = model.example_batch(batch_size=3)
    assert model.task == "regression" and y.shape == (3, 2)
    assert to_numpy(model(x)).shape == (3, 2)
    assert isinstance(model.default_loss(), keras.losses.MeanSquaredError)


def test_lstm_forecast_over_features_masks_zero_steps():
    model = LSTMModel(vocab_size=0, num_features=3, units=[8, 8], bidirectional=False,
                      task="forecast", num_targets=2, dropout=0.0)
    x, y = model.example_batch(batch_size=2)
    outputs = to_numpy(model(x))
    assert outputs.shape == y.shape == (2, 12, 2)
    padded = np.concatenate([x, np.zeros((2, 5, 3), "float32")], axis=1)
    np.testing.assert_allclose(to_numpy(model(padded))[:, :12], outputs, atol=1e-5)


def test_lstm_language_model_predicts_every_step():
    model = LSTMModel(vocab_size=30, embedding_dim=8, units=[8], bidirectional=False, task="language_model")
    x, y = model.example_batch(batch_size=2)
    assert model.task == "language-modelling"
    assert to_numpy(model(x)).shape == (2, 12, 30)


def greedy_without_cache(model, inputs, steps, key=None):
    """Reference decoding: rerun the full model for every new token.

    The argmax skips id 0, as generate() does: padding is never generated."""
    tokens = np.array(inputs if key is None else inputs[key])
    for _ in range(steps):
        logits = to_numpy(model(tokens if key is None else {**inputs, key: tokens}, training=False))
        next_token = logits[:, -1:, 1:].argmax(-1).astype("int32") + 1
        tokens = np.concatenate([tokens, next_token], axis=1)
    return tokens


def test_cached_decoder_generation_equals_full_recompute():
    model = TransformerDecoderLM(num_layers=2, max_length=16, **SMALL_TRANSFORMER)
    prompt = np.array([[3, 4, 5], [6, 7, 8]], "int32")
    cached = model.generate(prompt, max_length=10)
    np.testing.assert_array_equal(cached, greedy_without_cache(model, prompt, 7))


def test_cached_seq2seq_generation_equals_full_recompute():
    model = TransformerSeq2Seq(num_encoder_layers=2, num_decoder_layers=2, encoder_max_length=12,
                               decoder_max_length=12, **SMALL_TRANSFORMER)
    source = np.array([[9, 10, 11, 12, 0], [13, 14, 15, 16, 17]], "int32")
    cached = model.generate(source, max_length=8, stop_token_ids=None)
    start = np.full((2, 1), model.zoo_config.start_token_id, "int32")
    inputs = {"encoder_token_ids": source, "decoder_token_ids": start}
    np.testing.assert_array_equal(cached, greedy_without_cache(model, inputs, 7, key="decoder_token_ids"))


def test_top_k_sampling_is_reproducible_with_a_seed():
    model = TransformerDecoderLM(num_layers=1, max_length=16, **SMALL_TRANSFORMER)
    prompt = np.array([[3, 4]], "int32")
    first = model.generate(prompt, max_length=12, sampler="top_k", k=5, seed=7)
    second = model.generate(prompt, max_length=12, sampler="top_k", k=5, seed=7)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (1, 12)


def test_tokens_after_a_generated_stop_token_are_padding():
    model = TransformerDecoderLM(num_layers=1, max_length=16, **SMALL_TRANSFORMER)
    prompt = np.array([[3, 4]], "int32")
    free = model.generate(prompt, max_length=12)
    stop = int(free[0, 4])  # the third generated token becomes the stop token
    stopped = model.generate(prompt, max_length=12, stop_token_ids=[stop])
    first_stop = 2 + list(free[0, 2:]).index(stop)
    np.testing.assert_array_equal(stopped[0, : first_stop + 1], free[0, : first_stop + 1])
    assert (stopped[0, first_stop + 1 :] == 0).all()


def test_generation_input_errors_are_clear():
    model = TransformerDecoderLM(num_layers=1, max_length=16, **SMALL_TRANSFORMER)
    with pytest.raises(zoo.InvalidConfigError, match="max_length=40 is out of range.*1 to 16"):
        model.generate(np.array([[3]]), max_length=40)
    with pytest.raises(zoo.InvalidConfigError, match="every prompt needs 1 to max_length"):
        model.generate(np.array([[3, 4], [0, 0]]), max_length=8)
    with pytest.raises(zoo.InvalidConfigError, match="Unknown sampler 'nucleus'"):
        model.generate(np.array([[3]]), max_length=8, sampler="nucleus")
    with pytest.raises(zoo.InvalidConfigError, match="integer token ids"):
        model.generate(np.array([[0.5, 1.5]]), max_length=8)


@dataclasses.dataclass(frozen=True)
class LinearConfig:
    num_features: int = 3
    num_classes: int = 2


@keras.saving.register_keras_serializable(package="zoo_tests")
class LinearClassifier(ZooModel):
    family = "linear-test"
    Config = LinearConfig

    def build_graph(self, config):
        features = keras.Input((config.num_features,), name="features")
        return features, keras.layers.Dense(config.num_classes, name="head")(features), {}


def test_a_registered_family_loads_from_its_own_preset(tmp_path):
    register_family(LinearClassifier, overwrite=True)
    card = {"name": "linear-test-tiny", "family": "linear-test", "task": "classification",
            "description": "test", "config": {"num_features": 4, "num_classes": 3},
            "inputs": {}, "params": 15}
    zoo.register_preset(card, overwrite=True)
    try:
        assert get_family("linear-test") is LinearClassifier
        model = zoo.load("linear-test-tiny")
        assert model.count_params() == 15
        model.save(tmp_path / "linear.keras")
        restored = keras.saving.load_model(tmp_path / "linear.keras", safe_mode=True)
        x = np.ones((1, 4), "float32")
        np.testing.assert_array_equal(to_numpy(restored(x)), to_numpy(model(x)))
    finally:
        zoo.unregister_preset("linear-test-tiny")
    with pytest.raises(ValueError, match="exists already"):
        register_family(LinearClassifier)
    with pytest.raises(TypeError, match="ZooModel subclass"):
        register_family(object)


@pytest.mark.parametrize("name", ["transformer-decoder-tiny", "transformer-tiny", "lstm-tiny"])
def test_language_model_loss_averages_over_real_tokens_only(name):
    from scipy.special import log_softmax

    model = zoo.load(name, task="language_model", bidirectional=False) if name.startswith("lstm") else zoo.load(name)
    x, y = model.example_batch(batch_size=3)
    assert (y == 0).any() and (y != 0).any()
    logits = to_numpy(model(x, training=False))
    loss = float(to_numpy(model.default_loss()(y, logits)))
    token_log_probs = np.take_along_axis(log_softmax(logits, axis=-1), y[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(loss, -token_log_probs[y != 0].mean(), rtol=1e-4)


def test_families_without_attention_load_without_keras_hub():
    """keras_hub's import starts TensorFlow: 2-3 s of every cold start under
    jax or torch (tools/cold_start.py) for models that use none of it. (The
    LSTM still starts TensorFlow where it is installed: Keras' serializer looks
    for it when Bidirectional copies its layer.)"""
    code = ("import json, sys, zoo\nseen = []\nfor name in ('dense-tiny', 'cnn-tiny', 'lstm-tiny'):\n"
            "    zoo.load(name); seen.append([m for m in ('keras_hub', 'tensorflow') if m in sys.modules])\n"
            "print(json.dumps(seen))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "KERAS_BACKEND": keras.backend.backend()})
    assert done.returncode == 0, done.stderr[-2000:]
    after_dense, after_cnn, after_lstm = json.loads(done.stdout.splitlines()[-1])
    assert "keras_hub" not in after_lstm
    if keras.backend.backend() != "tensorflow":
        assert after_dense == after_cnn == []
