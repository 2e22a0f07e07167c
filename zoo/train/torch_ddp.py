"""Data-parallel training on many processes with torch's DistributedDataParallel.

Keras' `fit` trains one process on the data it is given. Under `torchrun`
(an initialized `torch.distributed` process group, torch backend),
`zoo.finetune` trains through `fit` below instead (zoo.train.distribute picks it):

- the training data is split across the processes ("ranks") by a torch
  `DistributedSampler`; `batch_size` is the GLOBAL batch, each of the N ranks
  takes batch_size / N rows per step, as in tf.distribute and JAX's
  keras.distribution;
- the model is wrapped in `DistributedDataParallel`, which averages the
  gradients of every rank during `backward()`; each rank's loss is the compiled
  loss averaged over its local rows, so the average is the gradient of the
  global batch;
- the averaged gradients are applied by the model's own compiled Keras
  optimizer, so the schedule, warm-up and AdamW recipe are those of `fit`;
- callbacks see the same logs on every rank (loss and metrics averaged over
  all ranks, `val_*` computed on a shard per rank and averaged), so early
  stopping and best-weight restoration decide alike everywhere.

Launch one process per device, for instance on two CPU processes (gloo):

    torchrun --nproc_per_node 2 examples/distributed_torch.py

This module imports torch; zoo.train.distribute imports it only under that backend.
"""

import keras
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
)

from zoo.errors import InvalidConfigError

DEFAULT_BATCH_SIZE = 32  # Keras fit's default


def fit(
    model,
    x=None,
    y=None,
    *,
    batch_size=None,
    epochs=1,
    verbose="auto",
    callbacks=None,
    validation_data=None,
    shuffle=True,
    class_weight=None,
    sample_weight=None,
    initial_epoch=0,
    steps_per_epoch=None,
):
    """Train the compiled `model` like `model.fit`, data-parallel over every
    rank of the initialized torch.distributed process group.

    Every rank calls it with the same arguments and the whole data set; each
    rank trains on its own shard. The options mean what they mean in `fit`:

    Args:
        model: a compiled Keras model; rank 0's weights are copied to every
            rank first, so all ranks start alike.
        x, y, sample_weight: numpy arrays (x may be a dict of arrays); or x a
            `torch.utils.data.Dataset` of `(x, y)` / `(x, y, sample_weight)`
            samples (y absent); or x a torch `DataLoader` over such a Dataset,
            whose batch_size is then the global batch size and whose shuffling
            is kept. tf.data, PyDataset and generators are refused: they
            cannot be split across ranks here.
        batch_size: the global batch size (default 32), a multiple of the
            number of ranks. When the rows do not fill the ranks evenly,
            the DistributedSampler repeats a few rows to even them out.
        shuffle: reshuffle the rows every epoch, in one order shared by all
            ranks (seeded from rank 0's numpy RNG, so `keras.utils.set_random_seed`
            makes runs repeatable; `History.params["shuffle_seed"]` records it).
        class_weight: `{class id: weight}`, turned into per-sample loss
            weights; needs one class id per sample.
        validation_data: `(x, y)` or `(x, y, sample_weight)` arrays, a Dataset
            or a DataLoader; each rank evaluates every N-th sample and the
            results are averaged over all ranks.
        epochs, initial_epoch, steps_per_epoch, verbose, callbacks: as in fit;
            callbacks run on every rank, the progress bar on rank 0 only.

    Returns:
        The `keras.callbacks.History` of the run (the same on every rank).

    Example (a one-process group, as `torchrun --nproc_per_node 1` makes):
    >>> import numpy as np, zoo
    >>> from torch import distributed
    >>> distributed.init_process_group("gloo", store=distributed.HashStore(), rank=0, world_size=1)
    >>> model = zoo.load("dense-tiny", num_features=4)
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> history = zoo.finetune(model, (x, (x[:, 0] > 0).astype("int32")), epochs=2, batch_size=8, verbose=0)
    >>> sorted(history.history), history.params["steps"]
    (['accuracy', 'loss'], 4)
    >>> distributed.destroy_process_group()
    """
    world_size, rank = dist.get_world_size(), dist.get_rank()
    device = model_device(model)
    check_options(model, class_weight, sample_weight, device)
    loader = training_loader(x, y, sample_weight, batch_size, shuffle, world_size)
    validation = None
    if validation_data is not None:
        validation = ValidationShard(validation_data, batch_size, world_size, rank)
    # Only now that the data passed its checks (which raise alike on every
    # rank) may the ranks start to wait for each other.
    seed = loader.sampler.seed = shared_seed(device)
    steps = len(loader) if steps_per_epoch is None else min(steps_per_epoch, len(loader))
    parallel_model = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=rank == 0 and verbose != 0, model=model,
        verbose=verbose, epochs=epochs, steps=steps, shuffle_seed=seed,
    )
    model.stop_training = False
    logs = {}
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        loader.sampler.set_epoch(epoch)
        callback_list.on_epoch_begin(epoch)
        logs = train_epoch(parallel_model, model, loader, steps, class_weight, callback_list, device)
        share_rank0_state(model)
        if validation is not None:
            logs.update(validation.evaluate(model, sorted(logs), device))
        callback_list.on_epoch_end(epoch, logs)
        if stop_requested(model, device):
            break
    model.optimizer.finalize_variable_values(model.trainable_variables)
    callback_list.on_train_end(logs)
    return model.history


def train_epoch(parallel_model, model, loader, steps, class_weight, callback_list, device):
    """One pass over this rank's shard; returns the epoch's logs, averaged over all ranks."""
    parallel_model.train()
    loss_totals = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of loss x rows, rows), all ranks
    local_rows = 0
    for step, batch in zip(range(steps), loader):
        callback_list.on_train_batch_begin(step)
        x, y, sample_weight = device_batch(batch, class_weight, device)
        loss = train_step(parallel_model, model, x, y, sample_weight)
        rows = len(y)
        local_rows += rows
        step_totals = torch.stack([loss.double() * rows, loss.new_tensor(rows, dtype=torch.float64)])
        # Every rank logs the same loss, so that callbacks reading it (the
        # divergence guard) decide alike on every rank.
        dist.all_reduce(step_totals)
        loss_totals += step_totals
        callback_list.on_train_batch_end(step, {"loss": (loss_totals[0] / loss_totals[1]).item()})
        if stop_requested(model, device):
            break
    metrics = {name: value for name, value in model.get_metrics_result().items() if name != "loss"}
    logs = mean_over_ranks(metrics, local_rows, device)
    logs["loss"] = (loss_totals[0] / loss_totals[1]).item()
    return logs


def train_step(parallel_model, model, x, y, sample_weight):
    """Forward, backward (DistributedDataParallel averages the gradients over
    the ranks), then the Keras optimizer's update; returns the local loss."""
    model.zero_grad(set_to_none=True)
    y_pred = parallel_model(x, training=True)
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
    model.optimizer.scale_loss(loss).backward()
    variables = model.trainable_variables
    with torch.no_grad():
        model.optimizer.apply([variable.value.grad for variable in variables], variables)
        model.compute_metrics(x, y, y_pred.detach(), sample_weight)
    return loss.detach()


# ---------------------------------------------------------------- agreement between ranks


def model_device(model):
    """The device holding the model's weights (where the batches must go)."""
    return next(iter(model.parameters())).device


def shared_seed(device):
    """A shuffling seed drawn on rank 0 and sent to every rank: all ranks must
    shuffle alike, or their shards would overlap."""
    seed = torch.tensor([np.random.randint(2**31 - 1)], dtype=torch.int64, device=device)
    dist.broadcast(seed, src=0)
    return int(seed.item())


def mean_over_ranks(values, local_rows, device):
    """`values` (floats measured over `local_rows` rows of this rank) as the
    row-weighted mean over all ranks; every rank gets the same numbers."""
    names = sorted(values)
    totals = torch.tensor(
        [float(values[name]) * local_rows for name in names] + [float(local_rows)],
        dtype=torch.float64, device=device,
    )
    dist.all_reduce(totals)
    return {name: (totals[index] / totals[-1]).item() for index, name in enumerate(names)}


def stop_requested(model, device):
    """Whether a callback on any rank set `model.stop_training`; then it is set
    on every rank: a rank that stopped alone would leave the others waiting."""
    flag = torch.tensor([float(bool(model.stop_training))], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    model.stop_training = bool(flag.item())
    return model.stop_training


def share_rank0_state(model):
    """Copy rank 0's non-trainable weights (e.g. batch-norm statistics, which
    each rank updates from its own rows) to every rank."""
    for variable in model.non_trainable_variables:
        dist.broadcast(variable.value.detach(), src=0)  # in place: detach() shares the storage


def check_options(model, class_weight, sample_weight, device):
    if class_weight is not None and sample_weight is not None:
        raise InvalidConfigError("pass class_weight or sample_weight, not both (as in keras fit).")
    if not model.trainable_variables:
        raise InvalidConfigError("the model has no trainable weights: unfreeze some before training.")
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise InvalidConfigError(
            f"the process group uses nccl but the model's weights are on {device}: call "
            "torch.cuda.set_device(local_rank) before building the model, or use the gloo backend on CPU."
        )


# ---------------------------------------------------------------- data


def training_loader(x, y, sample_weight, batch_size, shuffle, world_size):
    """A DataLoader over this rank's shard, `global batch / world_size` rows a
    batch; its sampler's seed is set by the caller, the same on every rank."""
    options = {}
    if is_arrays(x):
        if y is None:
            raise InvalidConfigError("x is an array but y is missing: pass the targets y as well.")
        dataset, options["collate_fn"] = ArrayRows(x, y, sample_weight), keep_batch
    elif isinstance(x, DataLoader):
        check_loader(x)
        dataset, batch_size = x.dataset, x.batch_size
        shuffle = isinstance(x.sampler, RandomSampler)  # the loader's own choice, as in fit
        options = dict(collate_fn=x.collate_fn, num_workers=x.num_workers, pin_memory=x.pin_memory,
                       drop_last=x.drop_last)
    elif is_map_dataset(x):
        dataset = x
    else:
        raise unsupported_data(x, "x")
    if y is not None and not is_arrays(x):
        raise InvalidConfigError(
            f"y must be left out when x is a {type(x).__name__}: its samples hold the targets."
        )
    local_batch = local_batch_size(batch_size or DEFAULT_BATCH_SIZE, world_size)
    sampler = DistributedSampler(dataset, shuffle=shuffle)
    return DataLoader(dataset, batch_size=local_batch, sampler=sampler, **options)


def local_batch_size(batch_size, world_size):
    if batch_size % world_size:
        lower = batch_size // world_size * world_size
        choices = f"{lower} or {lower + world_size}" if lower else str(world_size)
        raise InvalidConfigError(
            f"batch_size={batch_size} is the global batch size, split evenly over the {world_size} "
            f"processes, so it must be a multiple of {world_size}: use e.g. {choices}."
        )
    return batch_size // world_size


class ArrayRows(Dataset):
    """Numpy arrays as a Dataset that hands out whole batches (one fancy-index
    per batch rather than one row at a time, then no collation)."""

    def __init__(self, x, y, sample_weight=None):
        self.x, self.y, self.sample_weight = x, y, sample_weight

    def __len__(self):
        return len(self.y)

    def __getitems__(self, indices):
        indices = np.asarray(indices)
        return tuple(take_rows(part, indices) for part in (self.x, self.y, self.sample_weight))


def keep_batch(batch):
    return batch


def take_rows(value, index):
    if value is None:
        return None
    if isinstance(value, dict):
        return {key: item[index] for key, item in value.items()}
    return value[index]


def is_arrays(value):
    if isinstance(value, dict):
        return bool(value) and all(is_arrays(item) for item in value.values())
    return isinstance(value, (np.ndarray, torch.Tensor))


def is_map_dataset(value):
    return isinstance(value, Dataset) and not isinstance(value, IterableDataset)


def check_loader(loader):
    if not is_map_dataset(loader.dataset):
        raise unsupported_data(loader.dataset, "the DataLoader's dataset")
    if loader.batch_size is None or not isinstance(loader.sampler, (SequentialSampler, RandomSampler)):
        raise InvalidConfigError(
            "a DataLoader with its own sampler or batch_sampler cannot be split across processes (each "
            "process needs a DistributedSampler instead): pass a plain DataLoader(dataset, batch_size=..., "
            "shuffle=...) whose batch_size is the global batch size, or the Dataset and batch_size=."
        )


def unsupported_data(data, what):
    return InvalidConfigError(
        f"{what} is a {type(data).__name__}, which the DistributedDataParallel loop cannot split "
        "across processes. Under torch.distributed pass numpy arrays (x, y), a map-style "
        "torch.utils.data.Dataset of (x, y) samples, or a torch DataLoader over one (its batch_size "
        "is the global batch size); e.g. collect a tf.data.Dataset or a PyDataset into arrays first."
    )


def device_batch(batch, class_weight, device):
    """`(x, y, sample_weight)` as tensors on `device`; class weights become sample weights."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(tuple(batch))
    if y is None:
        raise InvalidConfigError("each training batch must be (x, y) or (x, y, sample_weight); y is missing.")
    if class_weight is not None:
        sample_weight = class_weights_of(y, class_weight)
    move = lambda value: to_device(value, device)  # noqa: E731
    return keras.tree.map_structure(move, x), move(y), move(sample_weight)


def to_device(value, device):
    if value is None:
        return None
    tensor = torch.as_tensor(value)
    if tensor.dtype == torch.float64:  # fit feeds float64 arrays as floatx too
        tensor = tensor.to(getattr(torch, keras.backend.floatx()))
    return tensor.to(device, non_blocking=True)


def class_weights_of(y, class_weight):
    """One loss weight per sample from `{class id: weight}` (1 for unlisted classes).

    Hand-written: Keras' converter is private (keras.src) and would take the
    argmax of (batch, length) token targets as if they were one-hot."""
    labels = y.cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if labels.ndim > 2 or (labels.ndim == 2 and labels.shape[1] != 1):
        raise InvalidConfigError(
            f"class_weight needs one class id per sample (targets of shape (n,) or (n, 1)), got targets "
            f"of shape {labels.shape}: pass per-sample weights as (x, y, sample_weight) instead."
        )
    weights = [class_weight.get(int(label), 1.0) for label in labels.reshape(-1)]
    return np.array(weights, keras.backend.floatx())


class ValidationShard:
    """Every N-th validation sample, from this rank's offset, and how to
    evaluate them so that every rank ends with the same `val_*` numbers.

    Not a DistributedSampler: to even out the shards it repeats rows, which
    would count them twice in the validation metrics."""

    def __init__(self, data, batch_size, world_size, rank):
        rows = slice(rank, None, world_size)
        if isinstance(data, (tuple, list)):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(tuple(data))
        else:
            x, y, sample_weight = data, None, None
        local_batch = max(1, (batch_size or DEFAULT_BATCH_SIZE) // world_size)
        if is_arrays(x) and y is not None:
            self.count = len(range(len(y))[rows])
            self.arguments = dict(x=take_rows(x, rows), y=take_rows(y, rows),
                                  sample_weight=take_rows(sample_weight, rows), batch_size=local_batch)
            return
        options = {}
        if isinstance(x, DataLoader):
            check_loader(x)
            options = dict(collate_fn=x.collate_fn, num_workers=x.num_workers)
            x, local_batch = x.dataset, max(1, x.batch_size // world_size)
        if not is_map_dataset(x) or y is not None:
            raise unsupported_data(x, "validation_data")
        shard = Subset(x, range(len(x))[rows])
        self.count = len(shard)
        self.arguments = dict(x=DataLoader(shard, batch_size=local_batch, **options))

    def evaluate(self, model, names, device):
        results = model.evaluate(**self.arguments, verbose=0, return_dict=True) if self.count else {}
        averaged = mean_over_ranks({name: results.get(name, 0.0) for name in names}, self.count, device)
        return {f"val_{name}": value for name, value in averaged.items()}
