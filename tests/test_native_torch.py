"""tools/native_torch.py: the native PyTorch twins that the zoo's speed is measured against.

A twin is only a fair yardstick if it is the zoo model's architecture: with
the zoo model's weights copied in, it must give the zoo model's outputs; its
parameter count must be the card's; its loss must be `default_loss()`. The
zoo model runs on the active backend, the twin on PyTorch beside it.
"""

import functools

import keras
import numpy as np
import pytest
from conftest import TINY_PRESETS

torch = pytest.importorskip("torch", reason="tools/native_torch.py builds PyTorch twins of the families")

import zoo
from tools import native_torch
from zoo.errors import InvalidConfigError

# (preset, config overrides): every tiny preset, and the LSTMs that read every step
# (a language model over tokens, a forecaster over feature sequences).
CHECKED_MODELS = [(name, {}) for name in TINY_PRESETS] + [
    ("lstm-tiny", {"task": "language_model", "bidirectional": False}),
    ("lstm-tiny", {"vocab_size": 0, "num_features": 3, "task": "forecast", "bidirectional": False,
                   "num_targets": 2}),
]


def perturbed(model, seed=0):
    """`model` with every weight moved off its initial value (zero biases, unit
    variances and zero means would hide a weight copied to the wrong place)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if "int" in str(variable.dtype):
            continue
        value = np.asarray(variable.numpy())
        if "variance" in variable.path:
            value = rng.uniform(0.5, 1.5, value.shape)
        else:
            value = value + 0.1 * rng.normal(size=value.shape)
        variable.assign(value.astype("float32"))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()  # it computes from copies of its statistics, as after loading weights
    return model


def model_id(case):
    return case if isinstance(case, str) else "-".join(f"{key}={value}" for key, value in case.items()) or "preset"


@functools.cache
def zoo_model(name, overrides=()):
    """The zoo model, perturbed, loaded once for every test that needs it."""
    return perturbed(zoo.load(name, **dict(overrides)))


def zoo_outputs(model, x):
    return model.predict(x, verbose=0)


def padded_batch(model):
    lengths = {"length": 12} if model.sequence_inputs else {}
    return model.example_batch(4, seed=1, **lengths)


@pytest.mark.parametrize(("name", "overrides"), CHECKED_MODELS, ids=model_id)
def test_twin_with_copied_weights_gives_the_zoo_outputs(name, overrides):
    model = zoo_model(name, tuple(overrides.items()))
    x, _ = padded_batch(model)
    native = native_torch.build_native(name, **overrides)
    native = native_torch.copy_zoo_weights(native, model).eval()
    expected = zoo_outputs(model, x)
    with torch.inference_mode():
        actual = native(native_torch.native_inputs(x)).numpy()
    assert actual.shape == expected.shape
    if model.family == "lstm" and model.task == "language-modelling":
        # Keras' forward LSTM repeats its last output over padding, packed
        # sequences give zeros there: only real steps (the ones with a loss) count.
        real = next(iter(x.values())) if isinstance(x, dict) else x
        actual, expected = actual[real != 0], expected[real != 0]
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", zoo.list_presets(checkpoint=False))
def test_twin_has_the_cards_parameter_count(name):
    with torch.device("meta"):  # shapes only: base presets build instantly
        native = native_torch.build_native(name)
    assert native_torch.count_params(native) == zoo.info(name).params


LOSS_CASES = CHECKED_MODELS + [
    ("dense-tiny", {"task": "regression", "num_targets": 3}),
]


@pytest.mark.parametrize(("name", "overrides"), LOSS_CASES, ids=model_id)
def test_native_loss_equals_the_zoo_loss(name, overrides):
    model = zoo_model(name, tuple(overrides.items()))
    x, y = padded_batch(model)
    logits = np.random.default_rng(2).normal(size=zoo_outputs(model, x).shape).astype("float32")
    expected = float(np.asarray(model.default_loss()(y, logits)))
    loss = native_torch.native_loss(model.family, model.task)
    actual = float(loss(torch.from_numpy(logits), native_torch.native_targets(y)))
    assert actual == pytest.approx(expected, rel=1e-5)


def test_native_loss_refuses_unknown_tasks():
    with pytest.raises(InvalidConfigError, match="no zoo task"):
        native_torch.native_loss("dense", "clustering")


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_measure_times_steps_and_counts_flops(mode):
    x, y = zoo.load("dense-tiny").example_batch(8, seed=0)
    result = native_torch.measure("dense-tiny", mode, batch_size=8, min_seconds=0.05, batch=(x, y))
    forward_flops = 2 * (30 * 32 + 32 * 2)  # two matmuls; FLOPs count 2 per multiply-add
    # Training adds the weight gradients of both layers and the head's input gradient.
    expected = forward_flops if mode == "infer" else 2 * forward_flops + 2 * 32 * 2
    assert result["flops_per_sample"] == expected
    assert result["samples_per_s"] > 0 and result["steps"] >= 2
    assert result["params"] == zoo.info("dense-tiny").params


def test_flops_are_counted_inside_fused_kernels():
    # Full-length rows send both modes through PyTorch's fused LSTM and
    # transformer kernels, which the flop counter cannot see into by itself.
    lstm = native_torch.build_native("lstm-tiny")  # bidirectional, 64 units over 64-wide embeddings
    tokens = torch.randint(1, 100, (2, 8))
    per_token = 2 * 4 * 64 * (64 + 64)  # the four gates' input and recurrent matmuls
    expected = 2 * 8 * per_token + 2 * 128 * 2  # both directions, every token; the head
    assert native_torch.flops_per_sample(lstm, tokens, None, "infer", batch_size=2) == expected
    encoder = native_torch.build_native("transformer-encoder-tiny")
    assert native_torch.flops_per_sample(encoder, tokens, None, "infer", batch_size=2) > 2 * 8 * 64 * 256 * 2 * 2
