"""One distributed-training run for tests/test_distribute.py, in a fresh process.

    python tests/distributed_job.py MODE OUT_FOLDER PRESET[:sgd] ... [--devices N] [--multihost]

Simulates N devices before the backend starts (JAX: N host CPU devices;
TensorFlow: N logical CPUs), then trains each PRESET twice from the same
initial weights on the same batches: once on one device, once under MODE
("data-parallel" or "model-parallel 2x2"), with zoo.finetune (AdamW) or, for
PRESET:sgd, Keras' fit with plain SGD; and saves both runs' final weights,
losses and (JAX) the weights' shardings to OUT_FOLDER/PRESET.npz.
"""

import argparse
import contextlib
import os
import socket
from pathlib import Path

import numpy as np

STEPS_BATCH, EPOCHS, BATCHES = 8, 2, 3


def simulate_devices(count):
    backend = os.environ["KERAS_BACKEND"]
    if backend == "jax":
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count}"
    elif backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train(preset, strategy, trainer):
    import keras

    import zoo

    keras.utils.set_random_seed(0)  # the same initial weights and batches in both runs
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = zoo.load(preset, dropout=0.0)
        x, y = model.example_batch(STEPS_BATCH * BATCHES, seed=1)
        initial = model.get_weights()
        if trainer == "finetune":
            history = zoo.finetune(model, (x, y), epochs=EPOCHS, batch_size=STEPS_BATCH, learning_rate=1e-2,
                                   schedule="constant", verbose=0)
        else:  # plain SGD: its step is proportional to the gradient, so a wrongly scaled all-reduce shows
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss=model.default_loss())
            history = model.fit(x, y, batch_size=STEPS_BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
    return model, initial, history.history["loss"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["data-parallel", "model-parallel"])
    parser.add_argument("out", type=Path)
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--multihost", action="store_true", help="join a one-process job first")
    args = parser.parse_args()
    simulate_devices(args.devices)

    import zoo

    if args.multihost:
        zoo.initialize_multihost(f"127.0.0.1:{free_port()}", num_processes=1, process_id=0)
    strategy = zoo.data_parallel() if args.mode == "data-parallel" else zoo.model_parallel((2, 2))
    for preset in args.presets:
        preset, _, trainer = preset.partition(":")
        save_runs(args.out / f"{preset}.npz", strategy, preset, trainer or "finetune")


def save_runs(path, strategy, preset, trainer):
    single, initial, single_loss = train(preset, None, trainer)
    parallel, _, parallel_loss = train(preset, strategy, trainer)
    shardings = [str(getattr(getattr(v.value, "sharding", None), "spec", "")) for v in parallel.weights]
    np.savez(
        path,
        num_replicas=strategy.num_replicas,
        single_loss=single_loss,
        parallel_loss=parallel_loss,
        paths=[v.path for v in parallel.weights],
        shardings=shardings,
        **{f"initial_{i}": w for i, w in enumerate(initial)},
        **{f"single_{i}": w for i, w in enumerate(single.get_weights())},
        **{f"parallel_{i}": w for i, w in enumerate(parallel.get_weights())},
    )


if __name__ == "__main__":
    main()
