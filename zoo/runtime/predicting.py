"""`ZooModel.predict` for arrays in memory: one output array, filled in place.

Keras' predict keeps every batch's output, converts each to numpy and joins
them at the end, so it holds the outputs twice and copies them twice. A
language model's logits are large (transformer-decoder-small: 64 MB per
batch of 32 rows of 64 tokens), and there this bookkeeping costs as much as
the model on the torch backend. Here the output is allocated once, when the
first batch is known, and each batch's outputs are copied into it.

A model that runs several steps per execution (the dense family: 32) has
that many batches computed as one call here: the rows of a batch do not
meet in inference, so the outputs are the same, and one call of 32 batches
costs a small model hardly more than one of a single batch (Keras' per-call
overhead is most of a dense model's step, on torch above all, where Keras'
trainer takes one step per call). Callbacks see one batch begin and end
per call, numbered as Keras numbers executions.

Callbacks, the progress bar and `stop_predicting` behave as in Keras'
predict. Anything else (datasets, generators, `steps=`, distributed
strategies, torch.compile) goes to Keras.
"""

import math

import keras
import numpy as np
from keras import tree

from zoo.errors import InvalidConfigError
from zoo.runtime import backend


def in_place_call(model, x, steps):
    """The batch call `predict_arrays` runs for this `model.predict(x,
    steps=steps)`, or None where Keras' predict serves it."""
    if steps is not None or _rows(x) == 0:
        return None
    return inference_function(model)


def check_batch_size(batch_size):
    """Raise `InvalidConfigError` unless `batch_size` is None or a positive
    whole number (Keras' predict takes 0 for its default and fails obscurely
    on negative or fractional sizes).

    Example:
    >>> check_batch_size(0)
    Traceback (most recent call last):
    ...
    zoo.errors.InvalidConfigError: batch_size=0: use a positive whole number of rows per batch, e.g. 32, or None for 32.
    """
    if batch_size is None or (isinstance(batch_size, int) and not isinstance(batch_size, bool) and batch_size > 0):
        return
    raise InvalidConfigError(
        f"batch_size={batch_size!r}: use a positive whole number of rows per batch, e.g. 32, or None for 32."
    )


def predict_arrays(model, call, x, batch_size=None, verbose="auto", callbacks=None):
    """`model.predict(x, ...)` with the batch call from `in_place_call`."""
    rows = _rows(x)
    batch_size = batch_size or 32  # Keras' default
    batches = math.ceil(rows / batch_size)
    per_call = model.predict_batches_per_call
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(
            callbacks, add_progbar=verbose != 0, verbose=verbose, epochs=1, steps=batches, model=model
        )
    model.stop_predicting = False
    callbacks.on_predict_begin()
    outputs, pending, done = None, None, 0
    for step in range(0, batches, per_call):
        callbacks.on_predict_batch_begin(step)
        start, stop = step * batch_size, (step + per_call) * batch_size
        batch_outputs = call(tree.map_structure(lambda array: array[start:stop], x))
        if outputs is None:
            outputs = tree.map_structure(lambda part: _empty_like_rows(part, rows), batch_outputs)
        # jax computes asynchronously: copy the previous batch out only now,
        # while this one runs, as Keras' predict lets it run ahead.
        _copy_into(outputs, pending)
        done = min(stop, rows)
        pending = slice(start, done), batch_outputs
        # Keras numbers an execution's end by its last batch, as here.
        callbacks.on_predict_batch_end(step + per_call - 1, {"outputs": batch_outputs})
        if model.stop_predicting:
            break
    _copy_into(outputs, pending)
    callbacks.on_predict_end()
    return tree.map_structure(lambda whole: whole[:done], outputs)


def _empty_like_rows(part, rows):
    dtype = np.dtype(keras.backend.standardize_dtype(part.dtype))
    return np.empty((rows, *part.shape[1:]), dtype)


def _copy_into(outputs, pending):
    if pending is not None:
        rows, parts = pending
        tree.map_structure(lambda whole, part: whole.__setitem__(rows, backend.host_array(part)), outputs, parts)


def inference_function(model):
    """The model's inference call as `backend.inference_function` compiles it,
    kept on the model until its jit setting or variables change (LoRA adds
    variables); None where Keras' predict must run (under a distribution, or
    torch.compile)."""
    if backend.under_distribution():
        return None
    key = (model.jit_compile, model.run_eagerly, tuple(id(variable) for variable in model.variables))
    cached = model.__dict__.get("_zoo_inference_function")
    if cached is None or cached[0] != key:
        cached = key, backend.inference_function(model)
        # Set past Keras' attribute tracking: a function, not a layer.
        object.__setattr__(model, "_zoo_inference_function", cached)
    return cached[1]


def forget_inference_function(model):
    """Drop the cached batch call, so that the next predict traces the model
    afresh: `ZooModel.compile` calls it, as Keras' compile drops its own
    predict step (after a change of dtype policies, for example)."""
    model.__dict__.pop("_zoo_inference_function", None)


def _rows(x):
    """Rows of `x` when it is an array or a dict of arrays with one row count, else 0."""
    arrays = list(x.values()) if isinstance(x, dict) else [x]
    if not arrays or not all(isinstance(array, np.ndarray) and array.ndim > 0 for array in arrays):
        return 0
    counts = {len(array) for array in arrays}
    return counts.pop() if len(counts) == 1 else 0
