"""Shared fixtures, and the two tiers of the suite.

Tests marked `backend_free` need no Keras backend: they run once, in a process
that never imports Keras, TensorFlow, JAX or torch (the session fails if one
was imported). Every other test runs once per backend: KERAS_BACKEND picks it.
`--tier backend-free` or `--tier backends` runs one tier (tools/test_backends.py
runs the first once, the second per backend); plain pytest runs both.
"""

import random
import sys

import numpy as np
import pytest

import zoo

BACKEND_MODULES = ("keras", "tensorflow", "jax", "torch")

# The architecture presets (one per family and size). Tagged variants such as
# "cnn-small.digits" share an architecture with one of them and are covered by
# test_pretrained.py, which keeps the per-backend suite inside CI's time budget.
ALL_PRESETS = [name for name in zoo.list_presets(checkpoint=False) if "." not in name]
TINY_PRESETS = [name for name in ALL_PRESETS if name.endswith("-tiny")]


def family_of(preset_name):
    """The model class of a preset's family: it says what the family takes and
    does (`sequence_inputs`, `generate`). Imports Keras."""
    from zoo.architectures import get_family

    return get_family(zoo.info(preset_name).family)


def preset_params(names):
    """Parametrize over presets; base-size ones carry the `slow` marker."""
    return [
        pytest.param(name, marks=[pytest.mark.slow] if zoo.info(name).size == "base" else [])
        for name in names
    ]


def pytest_addoption(parser):
    parser.addoption("--tier", choices=("all", "backend-free", "backends"), default="all",
                     help="backend-free: the tests that need no backend; backends: the others")


def pytest_ignore_collect(collection_path, config):
    """The backend-free tier does not even import a test file without
    backend-free tests: most of them import Keras at the top."""
    if config.getoption("--tier") == "backend-free" and collection_path.suffix == ".py":
        return "backend_free" not in collection_path.read_text() or None
    return None


def pytest_collection_modifyitems(config, items):
    tier = config.getoption("--tier")
    if tier == "all":
        return
    keep = [item for item in items if (item.get_closest_marker("backend_free") is not None) == (tier == "backend-free")]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def pytest_sessionfinish(session):
    """The backend-free tier proves it: no backend was imported while it ran."""
    imported = [name for name in BACKEND_MODULES if name in sys.modules]
    if session.config.getoption("--tier") == "backend-free" and imported:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nthe backend-free tier imported {', '.join(imported)}: mark the test that did as a "
              "backend test (remove its backend_free mark)", file=sys.stderr)


@pytest.fixture(autouse=True)
def _seeded_and_isolated(request, tmp_path_factory, monkeypatch):
    """Every test: fixed seeds, its own empty zoo cache, online, short timeouts."""
    if request.node.get_closest_marker("backend_free") is None:
        import keras

        keras.utils.set_random_seed(1234)  # Python's, numpy's and the backend's
    else:
        random.seed(1234)
        np.random.seed(1234)
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
    import keras

    return keras.ops.convert_to_numpy(outputs)


def assert_same_outputs(model_a, model_b, inputs, atol=1e-5):
    expected = to_numpy(model_a(inputs, training=False))
    actual = to_numpy(model_b(inputs, training=False))
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0)


@pytest.fixture(scope="module")
def models():
    """`models(name)`: the preset `name`, loaded once per test module (tests
    that use it must leave the model as they found it)."""
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = zoo.load(name)
        return loaded[name]

    return get
