"""Fine-tune on several processes with PyTorch's DistributedDataParallel.

Here, on a CPU, two processes talking over gloo:

    torchrun --nproc_per_node 2 examples/distributed_torch.py

On GPUs, one process per GPU talking over nccl, the same but for the flag:

    torchrun --nproc_per_node 8 examples/distributed_torch.py --device cuda

torchrun starts the processes and gives each its rank; `zoo.data_parallel()`
joins their process group, and `zoo.finetune` then trains through
DistributedDataParallel: each process takes 1/N of every global batch
(`--batch-size`), gradients are averaged, and every process ends with the same
weights. The model is `cnn-small.digits`'s architecture trained from scratch
on scikit-learn's 8x8 digits. Only rank 0 prints. Run with plain `python`, it
trains in one process.
"""

import argparse
import os

os.environ["KERAS_BACKEND"] = "torch"  # DistributedDataParallel is torch's; set before Keras loads


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cpu: gloo between processes; cuda: one GPU per process, nccl")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    import keras
    import torch

    import zoo

    if args.device == "cpu" and torch.cuda.is_available():
        raise SystemExit("this machine has GPUs: pass --device cuda, or hide them with CUDA_VISIBLE_DEVICES=")
    strategy = zoo.data_parallel()  # joins torchrun's process group: nccl with GPUs, gloo without
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    device = f"cuda:{torch.cuda.current_device()}" if args.device == "cuda" else "cpu"
    if rank == 0:
        print(strategy)

    keras.utils.set_random_seed(0)
    digits = zoo.load_dataset("digits")
    train, test = digits.splits["train"], digits.splits["test"]
    with keras.device(device):  # weights, optimizer state and batches on this process's device
        model = zoo.load("cnn-small.digits", pretrained=False)
        zoo.finetune(model, (train.inputs, train.targets), epochs=args.epochs, batch_size=args.batch_size,
                     learning_rate=3e-3, verbose=2 if rank == 0 else 0)
        report = zoo.evaluate(model, (test.inputs, test.targets), verbose=False)
    if rank == 0:  # every process holds the same weights
        print(f"test accuracy on {strategy.num_replicas} replicas: {report.metrics['accuracy']:.3f}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return report.metrics["accuracy"]


if __name__ == "__main__":
    main()
