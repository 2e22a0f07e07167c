"""Fine-tune on several devices with TensorFlow's tf.distribute.

Here, on a CPU, with simulated devices (logical CPUs):

    KERAS_BACKEND=tensorflow python examples/distributed_tensorflow.py --simulate-devices 2

On GPUs, the same without --simulate-devices (MirroredStrategy over every GPU);
on a TPU, add --tpu. On several hosts, set TF_CONFIG on each (its own index):

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}' \\
    KERAS_BACKEND=tensorflow python examples/distributed_tensorflow.py

(`zoo.data_parallel()` then returns a MultiWorkerMirroredStrategy.) The model
is `cnn-small.digits`'s architecture trained from scratch on scikit-learn's
8x8 digits; `--batch-size` is the global batch, split across replicas. The
model must be created inside `strategy.scope()`.
"""

import argparse


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate-devices", type=int, help="N logical CPUs (testing without GPUs)")
    parser.add_argument("--tpu", action="store_true", help="train on the TPU (TPUStrategy)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    import keras
    import tensorflow as tf

    import zoo

    if args.simulate_devices:  # must happen before TensorFlow starts its runtime
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.simulate_devices
        )
    strategy = zoo.data_parallel("tpu" if args.tpu else None)
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
