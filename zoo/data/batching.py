"""Batches of `(x, y)` data for evaluation and training: iterate, slice,
count and pad them, whatever array type or dataset they come as.
"""

import math

import numpy as np

from zoo.errors import InvalidConfigError, InvalidDataError


def iterate_batches(data, batch_size):
    """Numpy `(x, y)` batches from any supported kind of data."""
    if isinstance(data, (np.ndarray, dict)):
        raise InvalidConfigError(
            "data has no targets: pass an (x, y) tuple or an iterable of (x, y) batches."
        )
    if isinstance(data, tuple):
        x, y = split_pair(data, "data")
        yield from slice_batches(x, y, batch_size)
        return
    if hasattr(data, "as_numpy_iterator"):  # a tf.data.Dataset
        data = data.as_numpy_iterator()
    if not hasattr(data, "__iter__"):
        raise InvalidConfigError(
            f"data must be an (x, y) tuple or an iterable of (x, y) batches, got {type(data).__name__}."
        )
    for batch in data:
        yield split_pair(batch, "each batch")


def split_pair(pair, what):
    """`(x, y)` as numpy, after checking that both are there and agree in length."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or pair[1] is None:
        found = f"{len(pair)} element(s)" if isinstance(pair, (tuple, list)) else type(pair).__name__
        raise InvalidConfigError(
            f"{what} must be an (x, y) pair with targets y, got {found}. "
            "evaluate() needs the true targets to score predictions."
        )
    x, y = to_numpy(pair[0]), to_numpy(pair[1])
    if y.ndim and len(y) == 0:
        raise InvalidConfigError(f"{what} has no samples: evaluate() needs at least one (x, y) sample.")
    arrays = x if isinstance(x, dict) else {"x": x}
    rows = {key: value.shape[0] if value.ndim else None for key, value in arrays.items()}
    if y.ndim == 0 or any(count != len(y) for count in rows.values()):
        raise InvalidConfigError(
            f"x and y must have one row per sample: y has shape {y.shape}, x has rows {rows}."
        )
    return x, y


def to_numpy(value):
    """A numpy array (or a dict of them) from numpy, tf, torch or jax values."""
    if isinstance(value, dict):
        return {key: to_numpy(item) for key, item in value.items()}
    if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU or needing grad
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def slice_batches(x, y, batch_size):
    for start in range(0, len(y), batch_size):
        window = slice(start, start + batch_size)
        batch_x = {key: value[window] for key, value in x.items()} if isinstance(x, dict) else x[window]
        yield batch_x, y[window]


def count_batches(data, batch_size):
    """The number of batches when it is known up front (for the progress bar), else None."""
    if isinstance(data, tuple) and len(data) == 2 and data[1] is not None:
        return math.ceil(len(data[1]) / batch_size)
    try:
        return len(data)
    except (TypeError, NotImplementedError):  # generators, tf.data of unknown cardinality, ...
        return None


def pad_rows(x, size):
    """`x` (an array or a dict of arrays) with its last row repeated up to `size` rows."""
    if isinstance(x, dict):
        return {key: pad_rows(value, size) for key, value in x.items()}
    x = np.asarray(x)
    if len(x) >= size:
        return x
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])


def integer_array(values, what):
    """`values` as integers; floats are accepted when they hold whole numbers."""
    if np.issubdtype(values.dtype, np.integer):
        return values
    if np.issubdtype(values.dtype, np.floating) and np.all(np.mod(values, 1) == 0):
        return values.astype("int64")
    raise InvalidDataError(f"{what} must be integer ids, got dtype {values.dtype}.")


def check_inputs(model, x):
    """Raise InvalidConfigError unless `x` has the inputs and shapes `model` takes."""
    expected = {tensor.name: tuple(tensor.shape) for tensor in model.inputs}
    optional = set(getattr(model, "optional_inputs", ()))
    required = set(expected) - optional
    if isinstance(x, dict):
        given = x
    elif len(required) == 1:
        given = {next(iter(required)): x}
    else:
        given = {}
    if not required <= set(given) <= set(expected):
        keys = sorted(x) if isinstance(x, dict) else "one array"
        needs = f"{sorted(required)}" + (f" (and optionally {sorted(optional)})" if optional else "")
        raise InvalidConfigError(f"x must hold the model inputs {needs}, got {keys}.")
    for name, shape in expected.items():
        if name not in given:
            continue
        actual = given[name].shape
        if len(actual) != len(shape) or any(e is not None and e != a for e, a in zip(shape[1:], actual[1:])):
            raise InvalidConfigError(
                f"input {name!r} must have shape {shape} (None = any size), got {actual}."
            )
