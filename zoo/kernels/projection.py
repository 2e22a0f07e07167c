"""Projections applied at every position (`Dense` and `EinsumDense` on
sequences) as one 2-D matmul on jax.

jax differentiates `x @ W`, for `x` of shape (batch, time, features), into a
weight gradient that contracts over two axes. XLA's CPU compiler lowers that
as a copy that writes the activations (or the incoming gradient) transposed,
then a dot: in transformer-encoder-small's training step those copies took a
third of the time (benchmarks/profile-transformer-encoder-small-train-jax.txt).
With the leading axes merged first, the gradient is a 2-D dot that contracts
over its rows, which XLA runs without a copy: half the time for that matmul's
forward and backward pass. TensorFlow's and torch's matmuls already contract
transposed operands in place, so they keep Keras' own op.

`zoo.kernels.portable()` turns this off, as it does every fast path.
"""

import math

import keras
from keras import ops

from zoo.kernels import enabled, portable  # noqa: F401  (portable: the switch the tests use)


def matmul(inputs, kernel):
    """`inputs @ kernel` for a 2-D `kernel` (Keras `Dense`); on jax one 2-D
    matmul over the positions of `inputs` merged into rows.

    Example:
    >>> import numpy as np
    >>> x, w = np.ones((2, 3, 4), "float32"), np.ones((4, 5), "float32")
    >>> tuple(matmul(x, w).shape)
    (2, 3, 5)
    """
    if not _merges_positions(inputs):
        return ops.matmul(inputs, kernel)
    return _as_2d_matmul(inputs, kernel, kept_axes=len(inputs.shape) - 1, contracted_axes=1)


def einsum(equation, inputs, kernel):
    """`ops.einsum(equation, inputs, kernel)` (Keras `EinsumDense`); on jax one
    2-D matmul when the equation is a projection: the input's leading axes are
    kept, its trailing axes are the kernel's leading ones and are summed, and
    the output is the kept axes followed by the kernel's other axes (as in
    every attention projection: "abc,cde->abde", "abcd,cde->abe").

    Example:
    >>> import numpy as np
    >>> x, w = np.ones((2, 3, 8), "float32"), np.ones((8, 2, 4), "float32")
    >>> tuple(einsum("abc,cde->abde", x, w).shape)
    (2, 3, 2, 4)
    """
    axes = projection_axes(equation)
    if axes is None or not _merges_positions(inputs):
        return ops.einsum(equation, inputs, kernel)
    return _as_2d_matmul(inputs, kernel, *axes)


def projection_axes(equation):
    """(kept, contracted): how many leading input axes a projection equation
    keeps and how many trailing ones it sums over; None for any other equation.

    Example:
    >>> projection_axes("abc,cde->abde"), projection_axes("abcd,cde->abe"), projection_axes("abc,dc->abd")
    ((2, 1), (2, 2), None)
    """
    if "." in equation:
        return None  # an ellipsis: the rank is not fixed
    operands, _, output = equation.replace(" ", "").partition("->")
    inputs, _, kernel = operands.partition(",")
    contracted = len([axis for axis in inputs if axis in kernel and axis not in output])
    kept = len(inputs) - contracted
    projection = (
        0 < contracted < len(inputs)
        and len(set(inputs + kernel)) == len(inputs) + len(kernel) - contracted  # no axis shared otherwise
        and inputs[kept:] == kernel[:contracted]
        and output == inputs[:kept] + kernel[contracted:]
    )
    return (kept, contracted) if projection else None


def _merges_positions(inputs):
    """Whether this call takes the 2-D path: on jax, for inputs with positions
    (rank 3 and up) whose shape is known."""
    shape = tuple(inputs.shape)
    return (enabled() and keras.backend.backend() == "jax" and len(shape) > 2
            and all(isinstance(size, int) for size in shape))


def _as_2d_matmul(inputs, kernel, kept_axes, contracted_axes):
    kept, summed = tuple(inputs.shape[:kept_axes]), tuple(inputs.shape[kept_axes:])
    produced = tuple(kernel.shape[contracted_axes:])
    rows = ops.reshape(inputs, (math.prod(kept), math.prod(summed)))
    outputs = ops.matmul(rows, ops.reshape(kernel, (math.prod(summed), math.prod(produced))))
    return ops.reshape(outputs, (*kept, *produced))
