"""`zoo.finetune` (defined here): train a loaded preset on your data with the usual recipe.

It composes Keras pieces rather than replacing `fit`: an AdamW optimizer with
a warm-up + decay schedule, freezing (the backbone, the first N layers, or
LoRA adapters only), gradual unfreezing, best-weights restoration and early
stopping on the validation metric, and a guard that turns a NaN / inf loss
into a clear error after putting the model's weights back as they were.
"""

import contextlib
import logging
import math

import keras
import numpy as np

from zoo.data.arrays import check_finite, check_in_range
from zoo.data.batching import count_batches
from zoo.errors import InvalidConfigError, InvalidDataError, TrainingDivergedError
from zoo.runtime import options
from zoo.train import distribute, lora

logger = logging.getLogger("zoo")

SCHEDULES = ("cosine", "linear", "constant")
MIXED_POLICIES = {True: "mixed_bfloat16", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def finetune(
    model,
    train,
    validation=None,
    *,
    epochs=3,
    batch_size=32,
    learning_rate=1e-3,
    schedule="cosine",
    warmup_steps=0,
    weight_decay=0.01,
    freeze="none",
    unfreeze_at=None,
    lora_rank=None,
    lora_alpha=None,
    early_stopping=None,
    monitor=None,
    class_weight=None,
    label_names=None,
    mixed_precision=False,
    steps_per_epoch=None,
    callbacks=(),
    verbose="auto",
    jit_compile="auto",
    distribution=None,
):
    """Fine-tune `model` in place and return the Keras `History`.

    Args:
        model: a zoo model, e.g. `zoo.load("cnn-small", num_classes=5)`.
        train: `(x, y)` numpy arrays, a `tf.data.Dataset`, a torch
            `DataLoader` or a `keras.utils.PyDataset` of `(x, y)` batches;
            every backend takes every kind.
        validation: the same kinds, or None. With it, the weights of the best
            epoch by `monitor` are restored at the end.
        epochs, batch_size: as in `fit`; `batch_size` applies to arrays.
        learning_rate: peak learning rate, reached after `warmup_steps`.
        schedule: "cosine" or "linear" decay to 0 over all steps, or "constant".
        warmup_steps: steps of linear warm-up from 0.
        weight_decay: AdamW's decoupled weight decay.
        freeze: "none"; "backbone" trains only the head; an integer N freezes
            the first N layers with trainable weights (input side first).
        unfreeze_at: with `freeze`, the epoch from which everything trains.
        lora_rank: train rank-r LoRA adapters on the dense, attention and
            convolution projections plus the head, and nothing else
            (see `zoo.train.lora` to save, load and merge them).
        lora_alpha: LoRA scale numerator (default: the rank, i.e. scale 1).
        early_stopping: stop after this many epochs without improvement of
            `monitor` (needs `validation`).
        monitor: the metric to watch; default "val_accuracy" for classifiers,
            else "val_loss".
        class_weight: `{class index: weight}` for imbalanced classes.
        label_names: class names to store with the model (and saved presets).
        mixed_precision: True / "bfloat16" or "float16": compute in 16 bits,
            keep float32 weights (the model computes in float32 again after).
        steps_per_epoch: needed only when `train` has no length (a generator
            or an infinite dataset).
        callbacks: more Keras callbacks.
        verbose: "auto", 0, 1 or 2, as in `fit`.
        jit_compile: "auto", True or False: compile the training step (XLA on
            TensorFlow, `jax.jit` on JAX, `torch.compile` on PyTorch); "auto"
            picks what measured fastest on this backend and device (see
            `zoo.runtime.backend.AUTO_JIT_COMPILE`). The model keeps the choice for its
            later predictions and `generate()`.
        distribution: a strategy from `zoo.data_parallel()` or
            `zoo.model_parallel()` to train under; the same as calling
            finetune inside `with strategy.scope():`. On TensorFlow the model
            must have been created in that scope. Under torchrun, training
            goes through DistributedDataParallel whether or not this is given.

    Arrays are checked before training: NaN or infinite features, token ids
    outside the vocabulary, labels outside the classes or one-hot labels are
    a `zoo.InvalidDataError`. If the loss becomes NaN or infinite (checked
    after every step Keras reports) or a weight does (checked at the end of
    every epoch), or training raises, every weight is put back exactly as it
    was before the call; divergence is a `zoo.TrainingDivergedError` saying
    what to try. With `validation`, the weights of the best epoch are
    restored at the end, said in the log and in `history.restored_epoch`.

    Example:
    >>> import numpy as np, zoo
    >>> model = zoo.load("dense-tiny", num_features=4, label_names=["a", "b"])
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> history = zoo.finetune(model, (x, y), (x, y), epochs=2, verbose=0)
    >>> sorted(history.history)
    ['accuracy', 'loss', 'val_accuracy', 'val_loss']
    """
    _check_arguments(model, schedule, freeze, unfreeze_at, lora_rank, early_stopping, validation, epochs)
    options.check_jit_compile(jit_compile)  # before LoRA or freezing touch the model
    train, train_steps = _as_fit_data(model, train, batch_size, steps_per_epoch, "train")
    if validation is not None:
        validation, _ = _as_fit_data(model, validation, batch_size, None, "validation")
        validation = tuple(v for v in validation.values() if v is not None)
        validation = validation[0] if len(validation) == 1 else validation
    monitor = monitor or _default_monitor(model, validation)
    total_steps = epochs * train_steps
    schedule_fn = make_schedule(schedule, learning_rate, total_steps, warmup_steps)

    guard = DivergenceGuard()
    best = BestWeights(monitor) if validation is not None else None
    stopper = (
        keras.callbacks.EarlyStopping(monitor=monitor, patience=early_stopping, mode=_mode(monitor))
        if early_stopping is not None else None
    )
    all_callbacks = [c for c in (guard, best, stopper) if c is not None] + list(callbacks)
    phases = [(0, epochs)] if unfreeze_at is None else [(0, unfreeze_at), (unfreeze_at, epochs)]
    fit_options = dict(validation_data=validation, class_weight=class_weight, verbose=verbose,
                       steps_per_epoch=steps_per_epoch, callbacks=all_callbacks, **train)
    # Arrays are batched and shuffled here; datasets and loaders batch themselves
    # (Keras warns if asked to shuffle those).
    if "y" in train:
        fit_options.update(batch_size=batch_size, shuffle=True)
    else:
        fit_options.update(shuffle=False)

    distribute.check_model_in_strategy(model, distribution)
    with _scope(distribution), _restored_on_failure(model), _mixed_precision(model, mixed_precision):
        if lora_rank is not None:
            lora.enable_lora(model, lora_rank, lora_alpha)
        frozen = [] if lora_rank is not None else freeze_layers(model, freeze)
        histories = []
        for phase, (first_epoch, last_epoch) in enumerate(phases):
            if phase > 0:  # gradual unfreezing: from here on, everything trains
                for layer in frozen:
                    layer.trainable = True
            # A fresh optimizer per phase (its slots must cover the newly trainable
            # weights); the schedule carries on from the steps already taken.
            optimizer = keras.optimizers.AdamW(
                learning_rate=OffsetSchedule(schedule_fn, first_epoch * train_steps),
                weight_decay=weight_decay,
            )
            model.compile(optimizer=optimizer, loss=model.default_loss(), metrics=_metrics(model),
                          jit_compile=jit_compile)
            histories.append(distribute.fit(model, initial_epoch=first_epoch, epochs=last_epoch, **fit_options))
            guard.raise_if_diverged(learning_rate)
            if stopper is not None and stopper.stopped_epoch > 0:
                break
        restored = best.restore(model, verbose) if best is not None else None
    if label_names is not None:
        model.preset_metadata["label_names"] = [str(name) for name in label_names]
    history = merge_histories(model, histories)
    history.restored_epoch = restored
    return history


def _scope(distribution):
    return distribution.scope() if distribution is not None else contextlib.nullcontext()


def make_schedule(name, peak, total_steps, warmup_steps=0):
    """A Keras learning-rate schedule: linear warm-up to `peak`, then cosine,
    linear or no decay until `total_steps`.

    Example:
    >>> schedule = make_schedule("linear", 1.0, total_steps=10, warmup_steps=2)
    >>> [round(float(schedule(step)), 2) for step in (0, 1, 2, 6, 10)]
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if name not in SCHEDULES:
        raise InvalidConfigError(f"schedule={name!r}: use one of {', '.join(SCHEDULES)}.")
    if warmup_steps >= total_steps and warmup_steps > 0:
        raise InvalidConfigError(
            f"warmup_steps={warmup_steps} is not shorter than the whole run ({total_steps} steps)."
        )
    return WarmupDecay(name, peak, total_steps, warmup_steps)


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up then cosine / linear / constant. Keras' CosineDecay has a
    warm-up but its linear PolynomialDecay does not; one class keeps the three alike."""

    def __init__(self, kind, peak, total_steps, warmup_steps):
        self.kind, self.peak = kind, float(peak)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.minimum(step / max(self.warmup_steps, 1), 1.0) if self.warmup_steps else 1.0
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = keras.ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        if self.kind == "cosine":
            decay = 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
        elif self.kind == "linear":
            decay = 1.0 - progress
        else:
            decay = 1.0
        return self.peak * warmup * decay

    def get_config(self):
        return {"kind": self.kind, "peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps}


class OffsetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` read `offset` steps further on: a later training phase's new
    optimizer counts from 0, the schedule must not restart."""

    def __init__(self, schedule, offset):
        self.schedule, self.offset = schedule, int(offset)

    def __call__(self, step):
        return self.schedule(step + self.offset)

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "offset": self.offset}


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, or non-finite weight, and
    remembers where.

    Both are watched because the loss alone does not always tell: on
    TensorFlow a NaN that reaches a ReLU comes out as 0, so the loss stays
    finite while the weights before it are NaN. The weights are read once per
    epoch (reading them every step would cost a copy of the model per step).
    """

    def on_train_begin(self, logs=None):
        self.diverged_at = None
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if self.diverged_at is None and loss is not None and not np.isfinite(float(loss)):
            self.diverged_at = f"the training loss became {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # Every trainer calls this, also for an epoch that stopped early.
        if self.diverged_at is not None:
            return
        broken = [variable.path for variable in self.model.weights
                  if not np.isfinite(keras.ops.convert_to_numpy(variable)).all()]
        if broken:
            self.diverged_at = (
                f"{len(broken)} weight(s) became NaN or infinite by the end of epoch {epoch + 1} "
                f"({', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''}) although the reported "
                "loss stayed finite"
            )
            self.model.stop_training = True

    def raise_if_diverged(self, learning_rate):
        if self.diverged_at is not None:
            raise TrainingDivergedError(
                f"{self.diverged_at}; the model's weights are back as they were before "
                "zoo.finetune(). Check the data for NaN or infinite values and labels outside "
                f"0..num_classes-1, or lower learning_rate (was {learning_rate})."
            )


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the best epoch by `monitor` across every phase of a
    fine-tune (Keras' EarlyStopping forgets its best when a new `fit` starts)."""

    def __init__(self, monitor):
        super().__init__()
        self.monitor, self.mode = monitor, _mode(monitor)
        self.best_value, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise InvalidConfigError(
                f"monitor={self.monitor!r} is not among the logged metrics {sorted(logs or {})}."
            )
        value = float(value)
        better = self.best_value is None or (value < self.best_value if self.mode == "min" else value > self.best_value)
        if np.isfinite(value) and better:
            self.best_value, self.best_weights, self.best_epoch = value, self.model.get_weights(), epoch
        self.last_epoch = epoch

    def restore(self, model, verbose="auto"):
        """Put the best epoch's weights back and say which one; returns its
        number (from 1), or None when no epoch had a finite `monitor`."""
        if self.best_weights is None:
            return None
        model.set_weights(self.best_weights)
        message = (
            f"zoo.finetune: restored the weights of epoch {self.best_epoch + 1} of "
            f"{self.last_epoch + 1}, the best by {self.monitor} ({self.best_value:.4g})."
        )
        logger.info(message)
        if verbose not in (0, False):  # beside Keras' own progress lines
            print(message, flush=True)
        return self.best_epoch + 1


def merge_histories(model, histories):
    """One History covering every phase."""
    merged = keras.callbacks.History()
    merged.set_model(model)
    merged.epoch, merged.history = [], {}
    for history in histories:
        merged.epoch.extend(history.epoch)
        for key, values in history.history.items():
            merged.history.setdefault(key, []).extend(float(v) for v in values)
    merged.params = histories[-1].params
    return merged


@contextlib.contextmanager
def _restored_on_failure(model):
    """Put every weight and trainable flag back if the body raises; trainable
    flags are put back in any case (freezing is for this fine-tune only)."""
    weights = {id(v): np.array(keras.ops.convert_to_numpy(v)) for v in model.variables}
    flags = [(layer, layer.trainable) for layer in model._flatten_layers(include_self=False)]
    variable_flags = [(v, v.trainable) for v in model.variables]
    try:
        yield
    except BaseException:
        for variable in model.variables:
            if id(variable) in weights:
                variable.assign(weights[id(variable)])
            elif variable.path.endswith("lora_kernel_b"):
                variable.assign(np.zeros(variable.shape, variable.dtype))  # a zero adapter changes nothing
        raise
    finally:
        if not lora.lora_enabled(model):
            for layer, trainable in flags:
                layer.trainable = trainable
            for variable, trainable in variable_flags:
                variable.trainable = trainable


@contextlib.contextmanager
def _mixed_precision(model, mixed_precision):
    if not mixed_precision:
        yield
        return
    if mixed_precision not in MIXED_POLICIES:
        raise InvalidConfigError(f"mixed_precision={mixed_precision!r}: use True, 'bfloat16' or 'float16'.")
    layers = list(model._flatten_layers(include_self=True))
    policies = [(layer, layer.dtype_policy) for layer in layers]
    for layer in layers:
        layer.dtype_policy = MIXED_POLICIES[mixed_precision]
    try:
        yield
    finally:
        for layer, policy in policies:
            layer.dtype_policy = policy


def backbone_layers(model):
    """Top-level layers with trainable weights outside the head, input side first."""
    return [layer for layer in model.layers if layer.trainable_weights and layer.name not in model.head_layer_names]


def freeze_layers(model, freeze):
    """Freeze "backbone" (all but the head), the first N layers holding
    weights, or nothing ("none"); returns the layers this froze."""
    if freeze == "none":
        return []
    backbone = backbone_layers(model)
    chosen = backbone if freeze == "backbone" else backbone[:freeze]
    frozen = [layer for layer in chosen if layer.trainable]
    for layer in frozen:
        layer.trainable = False
    return frozen


def _check_arguments(model, schedule, freeze, unfreeze_at, lora_rank, early_stopping, validation, epochs):
    from zoo.architectures.base import ZooModel

    if not isinstance(model, ZooModel):
        raise TypeError(f"finetune() takes a zoo model (from zoo.load), not {type(model).__name__}.")
    if not isinstance(epochs, int) or epochs < 1:
        raise InvalidConfigError(f"epochs must be a positive integer, got {epochs!r}.")
    if schedule not in SCHEDULES:
        raise InvalidConfigError(f"schedule={schedule!r}: use one of {', '.join(SCHEDULES)}.")
    if freeze == "backbone" and not model.head_layer_names:
        raise InvalidConfigError(
            f"freeze='backbone' needs a separate head, and {model.family} has none (its output "
            "projection is tied to the token embedding). Use freeze=N or lora_rank= instead."
        )
    backbone_size = len(backbone_layers(model))
    if freeze not in ("none", "backbone") and not (
        isinstance(freeze, int) and not isinstance(freeze, bool) and 0 <= freeze <= backbone_size
    ):
        raise InvalidConfigError(
            f"freeze={freeze!r}: use 'none', 'backbone' or a number of layers from 0 to {backbone_size}."
        )
    if unfreeze_at is not None and (freeze == "none" or not 0 < unfreeze_at < epochs):
        raise InvalidConfigError(
            f"unfreeze_at={unfreeze_at!r} needs freeze= and an epoch between 1 and epochs-1 ({epochs - 1})."
        )
    if lora_rank is not None and (freeze != "none" or unfreeze_at is not None):
        raise InvalidConfigError("lora_rank already freezes all but the adapters and the head; drop freeze=.")
    if early_stopping is not None and validation is None:
        raise InvalidConfigError("early_stopping needs validation data to watch.")


def _as_fit_data(model, data, batch_size, steps_per_epoch, what):
    """`(fit keyword arguments, batches per epoch)`. `(x, y)` arrays are
    checked here so that a shape or value mistake is named before any backend
    sees it."""
    if isinstance(data, (tuple, list)):
        if len(data) not in (2, 3):
            raise InvalidConfigError(f"{what} must be (x, y) or (x, y, sample_weight); got {len(data)} items.")
        x, y = data[0], data[1]
        sizes = {len(v) for v in (x.values() if isinstance(x, dict) else [x])} | {len(y)}
        if len(sizes) != 1:
            raise InvalidConfigError(f"{what}: x and y have different numbers of samples {sorted(sizes)}.")
        count = sizes.pop()
        if count == 0:
            raise InvalidConfigError(f"{what} is empty.")
        model.check_inputs(x, f"{what} x")
        check_targets(model, y, f"{what} y")
        arrays = {"x": x, "y": y, "sample_weight": data[2] if len(data) == 3 else None}
        return arrays, math.ceil(count / batch_size)
    steps = steps_per_epoch or count_batches(data, batch_size)
    if steps is None:
        raise InvalidConfigError(
            f"{what} has no length (a generator or an infinite dataset): pass steps_per_epoch=."
        )
    return {"x": data}, steps


def check_targets(model, y, what):
    """Refuse targets the model's default loss would misread: for class-id
    losses (classifiers, language models) anything but whole numbers in
    0..classes-1, and one-hot rows; for the others, NaN or infinite values.

    Example:
    >>> import zoo
    >>> check_targets(zoo.load("dense-tiny"), np.array([[0, 1], [1, 0]]), "y")
    Traceback (most recent call last):
    ...
    zoo.errors.InvalidDataError: y look one-hot (shape (2, 2)): this model takes integer class ids, one per sample; pass y.argmax(axis=-1).
    """
    y = np.asarray(y)
    if not isinstance(model.default_loss(), keras.losses.SparseCategoricalCrossentropy):
        if np.issubdtype(y.dtype, np.number):
            check_finite(y, what)
        return
    classes = model.output_shape[-1]
    kind = "class ids" if "classification" in model.task else "target token ids"
    if y.ndim == len(model.output_shape) and y.shape[-1] == classes and np.isin(y, (0, 1)).all():
        raise InvalidDataError(
            f"{what} look one-hot (shape {y.shape}): this model takes integer {kind}, one per "
            "sample; pass y.argmax(axis=-1)."
        )
    whole = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and not np.mod(y, 1).any()
    )
    if not whole:
        raise InvalidDataError(
            f"{what} must be integer {kind} in 0..{classes - 1}, got {y.dtype} values such as "
            f"{y.reshape(-1)[:3].tolist()}. Map label names to ids first (e.g. with label_names=)."
        )
    check_in_range(y, 0, classes - 1, what, kind)


def _metrics(model):
    if "classification" in model.task:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if model.task in ("regression", "forecasting"):
        return [keras.metrics.MeanAbsoluteError(name="mae")]
    return []


def _default_monitor(model, validation):
    prefix = "val_" if validation is not None else ""
    return prefix + ("accuracy" if "classification" in model.task else "loss")


def _mode(monitor):
    return "min" if monitor.endswith(("loss", "mae", "error")) else "max"
