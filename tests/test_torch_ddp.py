"""zoo.finetune under torch DistributedDataParallel (zoo.train.torch_ddp).

Backend-specific: torch only. Two real gloo processes on CPU (tests/ddp_job.py,
launched once per module by torch.distributed.run) fine-tune three scenarios;
each is compared with single-device zoo.finetune on the same global batches.
"""

import doctest
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import ddp_job  # numpy only at import time: safe to import under every backend
import keras
import numpy as np
import pytest

import zoo
from zoo.errors import InvalidConfigError

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="torch backend only: DistributedDataParallel"
)

ROOT = Path(__file__).resolve().parent.parent
WORLD_SIZE = 2
ATOL = 1e-5  # float32 sums in another order (2 half batches, all-reduce) than on one device


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """The output folder of one 2-process run of tests/ddp_job.py."""
    out_dir = tmp_path_factory.mktemp("ddp-run")
    env = dict(
        os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3",
        ZOO_HOME=str(tmp_path_factory.mktemp("zoo-home")),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD_SIZE),
               "--master_port", str(free_port()), str(ROOT / "tests" / "ddp_job.py"), str(out_dir)]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out_dir


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models on 2 shared cores: a second intra-op thread only adds
    contention (the child processes get OMP_NUM_THREADS=1 likewise)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rank_output(out_dir, scenario, rank):
    """(initial weights, final weights, record with history and seeds) of one rank."""
    arrays = np.load(out_dir / f"{scenario}-rank{rank}.npz")
    count = int(arrays["count"])
    weights = [arrays[f"arr_{index}"] for index in range(2 * count)]
    return weights[:count], weights[count:], json.loads((out_dir / f"{scenario}-rank{rank}.json").read_text())


@pytest.fixture
def one_process_group():
    """An in-process gloo group of one rank: zoo.finetune then runs zoo.train.torch_ddp."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


class SameOrderAsDDP(keras.callbacks.Callback):
    """Makes a one-replica DistributedSampler shuffle as the DDP run did in each
    epoch: same seed and epoch give the same permutation, whose consecutive
    global batches the DDP ranks shared out."""

    def __init__(self, sampler, seeds):
        super().__init__()
        self.sampler, self.seeds = sampler, seeds

    def on_epoch_begin(self, epoch, logs=None):
        if str(epoch) not in self.seeds:
            pytest.fail(f"single-device training reached epoch {epoch + 1}, the DDP run stopped before")
        self.sampler.seed = self.seeds[str(epoch)]
        self.sampler.set_epoch(epoch)


def single_device_finetune(scenario, initial_weights, seeds):
    """zoo.finetune in this process (no process group) on the DDP run's global batches."""
    import torch

    model = ddp_job.load_model(scenario)
    model.set_weights(initial_weights)
    options = dict(ddp_job.FINETUNE_OPTIONS[scenario], verbose=0)
    if scenario == "sequence":
        return model, zoo.finetune(model, ddp_job.sequence_loader(), **options)
    x, y = ddp_job.dense_data()
    columns = [x, y]
    if scenario == "dense":  # class weights as the sample weights they stand for
        columns.append(np.array([ddp_job.CLASS_WEIGHT[label] for label in y], "float32"))
    else:
        options["validation"] = ddp_job.validation_data()
    dataset = torch.utils.data.TensorDataset(*(torch.from_numpy(column) for column in columns))
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=ddp_job.BATCH_SIZE, sampler=sampler)
    history = zoo.finetune(model, loader, callbacks=[SameOrderAsDDP(sampler, seeds)], **options)
    return model, history


def test_every_rank_ends_with_the_same_weights_and_logs(ddp_run):
    for scenario in ddp_job.FINETUNE_OPTIONS:
        initial_0, final_0, record_0 = rank_output(ddp_run, scenario, 0)
        initial_1, final_1, record_1 = rank_output(ddp_run, scenario, 1)
        # The ranks were seeded differently, so they started apart ...
        assert any(not np.array_equal(a, b) for a, b in zip(initial_0, initial_1)), scenario
        # ... and DDP's start-up copy plus averaged gradients made them one.
        for weight_0, weight_1 in zip(final_0, final_1, strict=True):
            np.testing.assert_array_equal(weight_0, weight_1, err_msg=scenario)
        assert record_0 == record_1, scenario


@pytest.mark.parametrize("scenario", list(ddp_job.FINETUNE_OPTIONS))
def test_ddp_training_equals_single_device_training(ddp_run, scenario):
    initial, final, record = rank_output(ddp_run, scenario, 0)
    model, history = single_device_finetune(scenario, initial, record["seeds"])
    moved = max(float(np.abs(after - before).max()) for before, after in zip(initial, final))
    assert moved > 1e-3, "training did not change the weights"
    for expected, actual in zip(model.get_weights(), final, strict=True):
        np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=0)
    assert sorted(record["history"]) == sorted(history.history)
    for name, values in history.history.items():
        np.testing.assert_allclose(record["history"][name], values, atol=ATOL, rtol=0, err_msg=name)


def test_early_stopping_and_best_weights_agree_across_ranks(ddp_run):
    _, _, record = rank_output(ddp_run, "early-stop", 0)
    val_accuracy = record["history"]["val_accuracy"]
    assert len(val_accuracy) < ddp_job.FINETUNE_OPTIONS["early-stop"]["epochs"], "early stopping did not stop"
    assert val_accuracy[-1] < max(val_accuracy)  # so restoring the best epoch's weights mattered


def test_batch_size_must_split_evenly_over_the_ranks(ddp_run):
    for rank in range(WORLD_SIZE):
        message = json.loads((ddp_run / f"errors-rank{rank}.json").read_text())["batch_size"]
        assert message is not None and "batch_size=15" in message and "multiple of 2" in message


def test_a_torch_dataset_and_loader_validation_train_as_keras_fit_does(one_process_group):
    import torch

    from zoo.train import torch_ddp

    def tensors(rows, seed):
        x, y = ddp_job.dense_data(rows=rows, seed=seed)
        return torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    train, validation = tensors(24, seed=3), torch.utils.data.DataLoader(tensors(10, seed=4), batch_size=4)
    models = [ddp_job.load_model("dense") for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    for model in models:
        model.compile(optimizer=keras.optimizers.Adam(0.05), loss=model.default_loss(), metrics=["accuracy"])
    options = dict(epochs=2, validation_data=validation, shuffle=False, verbose=0)
    ddp_history = torch_ddp.fit(models[0], train, batch_size=8, **options)
    # Keras' own loop, on one device: the reference.
    keras_history = models[1].fit(torch.utils.data.DataLoader(train, batch_size=8), **options)
    for actual, expected in zip(models[0].get_weights(), models[1].get_weights(), strict=True):
        np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=0)
    assert sorted(ddp_history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for name, values in keras_history.history.items():
        np.testing.assert_allclose(ddp_history.history[name], values, atol=ATOL, rtol=0, err_msg=name)


def test_data_that_cannot_be_split_is_refused(one_process_group):
    x, y = ddp_job.dense_data(rows=8)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return x[index * 4:(index + 1) * 4], y[index * 4:(index + 1) * 4]

    model = ddp_job.load_model("dense")
    for data, kind in ((Batches(), "Batches"), ((batch for batch in [(x, y)]), "generator")):
        with pytest.raises(InvalidConfigError, match=f"is a {kind}, which .* cannot split.*numpy arrays"):
            zoo.finetune(model, data, epochs=1, steps_per_epoch=1, verbose=0)


def test_class_weight_needs_one_class_per_sample(one_process_group):
    from zoo.train import torch_ddp

    x, y = ddp_job.dense_data(rows=8)
    model = ddp_job.load_model("dense")
    model.compile(optimizer="adam", loss=model.default_loss())
    with pytest.raises(InvalidConfigError, match="one class id per sample"):
        torch_ddp.fit(model, x, np.stack([y, y], axis=1), batch_size=8, class_weight={0: 1.0, 1: 2.0})


def test_docstring_example_runs():
    import torch.distributed as dist

    from zoo.train import torch_ddp

    try:
        assert doctest.testmod(torch_ddp, optionflags=doctest.ELLIPSIS).failed == 0
    finally:  # a failed example may leave its group behind; later tests would train through DDP
        if dist.is_initialized():
            dist.destroy_process_group()

