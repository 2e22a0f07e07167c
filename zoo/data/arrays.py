"""Checks and small transforms of numpy data arrays, shared by models,
training, evaluation and tokenizers: finite values, integers in range,
token-id matrices, next-token targets, the length of example targets."""

import numpy as np

from zoo.data.special_tokens import PAD_ID
from zoo.errors import InvalidConfigError, InvalidDataError


def check_finite(array, what):
    """Refuse NaN or infinite values, saying where the first ones are."""
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise InvalidDataError(
            f"{what} holds {int(bad.sum())} NaN or infinite value(s), in rows "
            f"{', '.join(map(str, rows[:5]))}{' ...' if len(rows) > 5 else ''}. Drop or fill them first: "
            "a single NaN turns every weight it reaches into NaN."
        )


def check_in_range(array, low, high, what, kind, meaning=""):
    """Refuse integers outside `low..high`, naming the first offending values."""
    bad = (array < low) | (array > high)
    if bad.any():
        values = np.unique(array[bad])
        meaning = f" {meaning}" if meaning else ""
        raise InvalidDataError(
            f"{what}: {kind} must be in {low}..{high}{meaning}, found "
            f"{', '.join(map(str, values[:5]))}{' ...' if len(values) > 5 else ''} "
            f"({int(bad.sum())} of {array.size} values)."
        )


def token_id_matrix(ids, what):
    """Integer token ids as a 2-D numpy array; one 1-D row becomes a batch of one."""
    import keras  # `zoo.data` imports no Keras until it converts a backend's tensors
    try:
        array = np.asarray(keras.ops.convert_to_numpy(ids))  # any backend's tensors, ragged ones padded
    except ValueError:  # a list of rows of different lengths
        raise InvalidConfigError(
            f"{what}: the rows have different lengths; right-pad them with 0 (padding) to one length."
        ) from None
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise InvalidConfigError(
            f"{what} must be integer token ids of shape (batch, length) or (length,), "
            f"got dtype {array.dtype} and shape {array.shape}."
        )
    return array


def next_token_targets(token_ids):
    """Language-model targets: each position's label is the following token."""
    return np.concatenate([token_ids[:, 1:], np.full_like(token_ids[:, :1], PAD_ID)], axis=1)


def example_target_length(source_length):
    """Target tokens in an example pair of `source_length` source tokens: 3/4
    of them (a translation's target is about as long as its source), and at
    least 2 (the start token and one to predict).

    Example:
    >>> example_target_length(64), example_target_length(1)
    (48, 2)
    """
    return max(2, source_length * 3 // 4)
