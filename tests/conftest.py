"""Shared fixtures. The suite runs once per backend: KERAS_BACKEND picks it."""

import keras
import numpy as np
import pytest

import zoo

ALL_PRESETS = zoo.list_presets()
GENERATIVE_FAMILIES = ("transformer-decoder", "transformer")
SEQUENCE_FAMILIES = ("lstm", "transformer-encoder", "transformer-decoder", "transformer")


def preset_params(names):
    """Parametrize over presets; base-size ones carry the `slow` marker."""
    return [
        pytest.param(name, marks=[pytest.mark.slow] if zoo.info(name).size == "base" else [])
        for name in names
    ]


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)


def to_numpy(outputs):
    return keras.ops.convert_to_numpy(outputs)


def assert_same_outputs(model_a, model_b, inputs, atol=1e-5):
    expected = to_numpy(model_a(inputs, training=False))
    actual = to_numpy(model_b(inputs, training=False))
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)
