"""One rank of the DistributedDataParallel runs that tests/test_torch_ddp.py checks.

    KERAS_BACKEND=torch python -m torch.distributed.run --nproc_per_node 2 tests/ddp_job.py OUT_DIR

Each rank runs `zoo.finetune` on the scenarios below (gloo, CPU) and writes,
per scenario, its initial and final weights, its History and the shuffling
seed of every epoch to OUT_DIR. The test imports the same scenario
definitions to train single-device references on the same global batches.
Ranks are seeded differently on purpose: DDP must start every rank from rank 0's weights.
"""

import json
import sys

import numpy as np

EPOCHS = 2
BATCH_SIZE = 16  # global, as in tf.distribute


def dense_data(rows=48, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("int32")


def token_data(rows=24, length=8, vocab_size=64, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab_size, size=(rows, length)).astype("int32")
    ids[rows // 2:, length // 2:] = 0  # half the rows padded
    return ids, (ids[:, 0] > vocab_size // 2).astype("int64")


def load_model(scenario):
    import zoo

    if scenario == "sequence":
        return zoo.load("lstm-tiny", vocab_size=64, dropout=0.0)
    return zoo.load("dense-tiny", num_features=6, dropout=0.0)


# Per scenario: the zoo.finetune options besides the training data. "dense"
# (arrays, shuffled) has two phases (two DDP wrappers) and class weights;
# "sequence" is lstm-tiny fed by a torch DataLoader (its batch_size is global);
# "early-stop" watches a validation set whose labels are flipped, so it gets
# worse as training works and early stopping must restore the first epoch.
FINETUNE_OPTIONS = {
    "dense": dict(epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=0.05, freeze="backbone", unfreeze_at=1),
    "sequence": dict(epochs=EPOCHS, learning_rate=0.01),
    "early-stop": dict(epochs=5, batch_size=BATCH_SIZE, learning_rate=0.05, early_stopping=1),
}
CLASS_WEIGHT = {0: 1.0, 1: 2.5}


def validation_data():
    x, y = dense_data(rows=21, seed=2)  # 21 rows: the two ranks' shards differ in size
    return x, 1 - y


def sequence_loader():
    import torch

    ids, labels = token_data()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(ids), torch.from_numpy(labels))
    return torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False)


def training_arguments(scenario):
    """`(train, extra finetune options)` for the DDP run of `scenario`."""
    if scenario == "sequence":
        return sequence_loader(), {}
    if scenario == "dense":
        return dense_data(), {"class_weight": CLASS_WEIGHT}
    return dense_data(), {"validation": validation_data()}


def run_scenario(scenario, rank, out_dir):
    import keras

    import zoo

    class SeedRecorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seeds[epoch] = self.params["shuffle_seed"]

    seeds = {}
    model = load_model(scenario)
    initial = [np.asarray(w) for w in model.get_weights()]
    train, extra = training_arguments(scenario)
    options = dict(FINETUNE_OPTIONS[scenario], **extra, callbacks=[SeedRecorder()], verbose=0)
    history = zoo.finetune(model, train, **options)
    final = [np.asarray(w) for w in model.get_weights()]
    np.savez(out_dir / f"{scenario}-rank{rank}.npz", *initial, *final, count=len(initial))
    record = {"history": history.history, "seeds": {str(epoch): seed for epoch, seed in seeds.items()}}
    (out_dir / f"{scenario}-rank{rank}.json").write_text(json.dumps(record))


def bad_batch_size_message():
    import zoo
    from zoo.errors import InvalidConfigError

    try:
        zoo.finetune(load_model("dense"), dense_data(), epochs=1, batch_size=15, verbose=0)
    except InvalidConfigError as error:
        return str(error)
    return None


def main(out_dir):
    from pathlib import Path

    import keras
    import torch.distributed as dist

    out_dir = Path(out_dir)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    keras.utils.set_random_seed(100 + rank)
    try:
        for scenario in FINETUNE_OPTIONS:
            run_scenario(scenario, rank, out_dir)
        message = bad_batch_size_message()
        (out_dir / f"errors-rank{rank}.json").write_text(json.dumps({"batch_size": message}))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
