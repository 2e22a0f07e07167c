"""zoo.data_parallel / zoo.model_parallel on simulated devices, on this CPU-only machine.

The runs that need several devices start a fresh process (tests/distributed_job.py)
because the device count is fixed when the backend starts: JAX gets 4 host CPU
devices, TensorFlow 2 logical CPUs. PyTorch's data parallelism is proven with
2 gloo processes in tests/test_torch_ddp.py.
"""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from zoo.train import distribute

BACKEND = keras.backend.backend()
ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "tests" / "distributed_job.py"
SIMULATED_DEVICES = {"jax": 4, "tensorflow": 2}
# float32: replicas sum gradients in another order than one device does. Presets
# with weights whose true gradient is 0 (attention key biases, unused embedding
# rows) train with plain SGD here: Adam would scale their float noise up to a
# full learning-rate step, and SGD also shows a wrongly scaled all-reduce,
# which Adam's scale invariance hides.
WEIGHT_TOLERANCE = 2e-5
TRAINERS = {"dense-tiny": "finetune", "cnn-tiny": "sgd", "transformer-encoder-tiny": "sgd"}
DATA_PARALLEL_PRESETS = ["dense-tiny", "transformer-encoder-tiny"]
MODEL_PARALLEL_PRESETS = ["transformer-encoder-tiny", "cnn-tiny"]


def run_job(folder, mode, presets, *extra):
    """Run tests/distributed_job.py once for `presets`; {preset: its saved runs}."""
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "OMP_NUM_THREADS": "1", "ZOO_HOME": str(folder / "zoo-home")}
    presets = [f"{name}:sgd" if TRAINERS[name] == "sgd" else name for name in presets]
    command = [sys.executable, str(JOB), mode, str(folder), *presets,
               "--devices", str(SIMULATED_DEVICES[BACKEND]), *extra]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return {name.split(":")[0]: np.load(folder / f"{name.split(':')[0]}.npz") for name in presets}


@pytest.fixture(scope="module")
def data_parallel_runs(tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("data-parallel"), "data-parallel", DATA_PARALLEL_PRESETS)


@pytest.fixture(scope="module")
def model_parallel_runs(tmp_path_factory):
    # --multihost: a one-process multi-host job, so initialize_multihost runs for real
    return run_job(tmp_path_factory.mktemp("model-parallel"), "model-parallel", MODEL_PARALLEL_PRESETS,
                   "--multihost")


def weights(run, which):
    return [run[f"{which}_{i}"] for i in range(len(run["paths"]))]


def assert_same_training(run):
    np.testing.assert_allclose(run["parallel_loss"], run["single_loss"], rtol=5e-5)
    moved = max(np.abs(s - i).max() for s, i in zip(weights(run, "single"), weights(run, "initial")))
    assert moved > 1e-3, "training did not change the weights; the comparison would prove nothing"
    for path, single, parallel in zip(run["paths"], weights(run, "single"), weights(run, "parallel")):
        np.testing.assert_allclose(parallel, single, atol=WEIGHT_TOLERANCE, rtol=0, err_msg=path)


@pytest.mark.skipif(BACKEND == "torch", reason="torch: 2 gloo processes in tests/test_torch_ddp.py")
@pytest.mark.parametrize("preset", DATA_PARALLEL_PRESETS)
def test_data_parallel_trains_like_one_device(data_parallel_runs, preset):
    run = data_parallel_runs[preset]
    assert int(run["num_replicas"]) == SIMULATED_DEVICES[BACKEND]
    assert_same_training(run)


@pytest.mark.skipif(BACKEND != "jax", reason="model parallelism is JAX-only (keras.distribution)")
@pytest.mark.parametrize("preset", MODEL_PARALLEL_PRESETS)
def test_model_parallel_shards_weights_and_trains_like_one_device(model_parallel_runs, preset):
    run = model_parallel_runs[preset]
    assert int(run["num_replicas"]) == 2  # the batch axis of the 2x2 mesh
    shardings = dict(zip(run["paths"], run["shardings"]))
    rules = zoo.train.distribute.family_sharding_rules()
    sharded = [path for path in shardings if any(re.fullmatch(p, path) for p in rules)]
    assert sharded, "no weight of this family is sharded"
    for path in sharded:
        assert "'model'" in shardings[path], f"{path} should be split on the model axis: {shardings[path]}"
    assert all("'model'" not in spec for path, spec in shardings.items() if path not in sharded)
    assert_same_training(run)


@pytest.mark.parametrize("preset", ["dense-tiny", "cnn-tiny", "lstm-tiny", "transformer-encoder-tiny",
                                    "transformer-decoder-tiny", "transformer-tiny"])
def test_every_family_shards_its_big_weights_once_and_evenly(preset):
    model = zoo.load(preset)
    rules = distribute.family_sharding_rules()
    family_rules = type(model).sharding
    assert family_rules, f"{model.family} declares no sharding rules"
    used = set()
    for variable in model.weights:
        matches = [pattern for pattern in rules if re.fullmatch(pattern, variable.path)]
        assert len(matches) <= 1, f"{variable.path} matches {matches}"  # LayoutMap refuses that
        if matches:
            axes = rules[matches[0]]
            assert len(axes) == len(variable.shape), f"{variable.path}: {axes} for shape {variable.shape}"
            for size, axis in zip(variable.shape, axes):
                assert axis is None or size % 2 == 0, f"{variable.path} cannot split {size} in two"
            used.add(matches[0])
    assert used == set(family_rules), f"rules that match no weight: {set(family_rules) - used}"


def test_model_parallel_errors_name_the_fix():
    if BACKEND != "jax":
        with pytest.raises(zoo.UnsupportedBackendError, match="KERAS_BACKEND=jax"):
            zoo.model_parallel((1, 1))
        return
    with pytest.raises(zoo.InvalidConfigError, match="xla_force_host_platform_device_count"):
        zoo.model_parallel((2, 2))  # this process has one CPU device
    with pytest.raises(zoo.InvalidConfigError, match="two positive integers"):
        zoo.model_parallel((0, 1))
    with pytest.raises(zoo.InvalidConfigError, match="two distinct names"):
        zoo.model_parallel((1, 1), axis_names=("x", "x"))


def test_data_parallel_on_this_process_fine_tunes():
    strategy = zoo.data_parallel()
    assert strategy.kind == "data-parallel" and strategy.backend == BACKEND
    assert strategy.num_replicas == 1
    with strategy.scope():
        model = zoo.load("dense-tiny")
    x, y = model.example_batch(16, seed=0)
    history = zoo.finetune(model, (x, y), epochs=1, batch_size=8, verbose=0, distribution=strategy)
    assert np.isfinite(history.history["loss"]).all()


def test_finetune_refuses_a_tensorflow_model_made_outside_the_strategy():
    strategy = zoo.data_parallel()
    model = zoo.load("dense-tiny")  # outside strategy.scope()
    x, y = model.example_batch(16, seed=0)
    before = model.get_weights()
    if BACKEND != "tensorflow":  # JAX and torch place variables when training starts
        zoo.finetune(model, (x, y), epochs=1, batch_size=8, verbose=0, distribution=strategy)
        assert any(np.abs(a - b).max() > 0 for a, b in zip(model.get_weights(), before))
        return
    with pytest.raises(zoo.InvalidConfigError, match="inside `with strategy.scope"):
        zoo.finetune(model, (x, y), epochs=1, batch_size=8, verbose=0, distribution=strategy)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_initialize_multihost_says_what_is_missing(monkeypatch):
    if BACKEND == "jax":
        pytest.skip("jax: initialize_multihost runs for real in the model-parallel job (--multihost)")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(zoo.InvalidConfigError, match="TF_CONFIG" if BACKEND == "tensorflow" else "torchrun"):
        zoo.initialize_multihost()
    if BACKEND == "tensorflow":
        monkeypatch.setenv("TF_CONFIG", "{not json")
        with pytest.raises(zoo.InvalidConfigError, match="not valid"):
            zoo.initialize_multihost()
        monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}')
        assert zoo.initialize_multihost() == 2



EXAMPLES = {
    "jax": ["examples/distributed_jax.py", "--simulate-devices", "4", "--model-parallel", "2x2"],
    "tensorflow": ["examples/distributed_tensorflow.py", "--simulate-devices", "2"],
    "torch": ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "{port}",
              "examples/distributed_torch.py"],
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_distributed_example_learns_digits(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "OMP_NUM_THREADS": "1", "ZOO_HOME": str(tmp_path)}
    command = [sys.executable, *(arg.format(port=free_port()) for arg in EXAMPLES[BACKEND]), "--epochs", "2"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    replicas, accuracy = re.search(r"test accuracy on (\d+) replicas: ([\d.]+)", result.stdout).groups()
    assert int(replicas) == 2  # jax: the batch axis of the 2x2 mesh
    assert float(accuracy) > 0.5  # ten classes: chance is 0.1
