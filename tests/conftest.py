"""Shared fixtures. The suite runs once per backend: KERAS_BACKEND picks it."""

import keras
import numpy as np
import pytest

import zoo

# The architecture presets (one per family and size). Tagged variants such as
# "cnn-small.digits" share an architecture with one of them and are covered by
# test_pretrained.py, which keeps the per-backend suite inside CI's time budget.
ALL_PRESETS = [name for name in zoo.list_presets() if "." not in name]
TINY_PRESETS = [name for name in ALL_PRESETS if name.endswith("-tiny")]
GENERATIVE_FAMILIES = ("transformer-decoder", "transformer")
SEQUENCE_FAMILIES = ("lstm", "transformer-encoder", "transformer-decoder", "transformer")


def preset_params(names):
    """Parametrize over presets; base-size ones carry the `slow` marker."""
    return [
        pytest.param(name, marks=[pytest.mark.slow] if zoo.info(name).size == "base" else [])
        for name in names
    ]


@pytest.fixture(autouse=True)
def _seeded_and_isolated(tmp_path_factory, monkeypatch):
    """Every test: fixed seeds, its own empty zoo cache, online, short timeouts."""
    keras.utils.set_random_seed(1234)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path_factory.mktemp("zoo-home")))
    for name in ("ZOO_OFFLINE", "HF_HUB_OFFLINE", "ZOO_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZOO_DOWNLOAD_TIMEOUT", "5")
    monkeypatch.setenv("ZOO_DOWNLOAD_RETRIES", "2")


@pytest.fixture
def preset_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving `server.root`."""
    from preset_server import PresetServer

    root = tmp_path / "served"
    root.mkdir()
    with PresetServer(root) as server:
        yield server


def to_numpy(outputs):
    return keras.ops.convert_to_numpy(outputs)


def assert_same_outputs(model_a, model_b, inputs, atol=1e-5):
    expected = to_numpy(model_a(inputs, training=False))
    actual = to_numpy(model_b(inputs, training=False))
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)
