"""Fine-tune on several devices with JAX: data parallel, or data x model parallel.

Here, on a CPU, with simulated devices:

    KERAS_BACKEND=jax python examples/distributed_jax.py --simulate-devices 4
    KERAS_BACKEND=jax python examples/distributed_jax.py --simulate-devices 4 --model-parallel 2x2

On GPUs or a TPU VM, the same without --simulate-devices (every device is used).
On several hosts, run this on each host with its own process id:

    KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:1234 KERAS_DISTRIBUTION_NUM_PROCESSES=2 \\
    KERAS_DISTRIBUTION_PROCESS_ID=0 KERAS_BACKEND=jax python examples/distributed_jax.py --multihost

The model is `cnn-small.digits`'s architecture trained from scratch on
scikit-learn's 8x8 digits; `--batch-size` is the global batch, split across
the data-parallel replicas.
"""

import argparse
import os


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate-devices", type=int, help="N host CPU devices (testing without GPUs)")
    parser.add_argument("--model-parallel", metavar="BxM", help="a batch x model mesh, e.g. 2x2")
    parser.add_argument("--multihost", action="store_true", help="join a multi-host job first")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.simulate_devices:  # must happen before JAX starts
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.simulate_devices}"
    import keras

    import zoo

    if args.multihost:
        zoo.initialize_multihost()
    if args.model_parallel:
        strategy = zoo.model_parallel(tuple(int(n) for n in args.model_parallel.split("x")))
    else:
        strategy = zoo.data_parallel()
    print(strategy)

    keras.utils.set_random_seed(0)
    digits = zoo.load_dataset("digits")
    train, test = digits.splits["train"], digits.splits["test"]
    with strategy.scope():
        model = zoo.load("cnn-small.digits", pretrained=False)
        zoo.finetune(model, (train.inputs, train.targets), epochs=args.epochs, batch_size=args.batch_size,
                     learning_rate=3e-3, verbose=2)
        report = zoo.evaluate(model, (test.inputs, test.targets), verbose=False)
    print(f"test accuracy on {strategy.num_replicas} replicas: {report.metrics['accuracy']:.3f}")
    return report.metrics["accuracy"]


if __name__ == "__main__":
    main()
