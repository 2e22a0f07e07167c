"""Fast paths for convolutional layers: image layout and fused batch norm.

Keras writes images channels-last (NHWC) everywhere. On torch that costs two
copies per convolution (Keras permutes each input to NCHW, then converts it to
channels-last memory for oneDNN, then permutes the output back), and Keras'
BatchNormalization computes its moments and normalises with a chain of
separate element-wise ops. tools/bench_all.py's cnn-small ran at about half of
a native PyTorch ResNet because of these. This module picks, per backend:

- `image_data_format()`: the layout convolutional models compute in inside
  (their inputs stay NHWC; Conv2D kernels keep their (kh, kw, in, out) shape
  in either layout, so weights are unchanged);
- `fused_batch_norm()`: one fused kernel for batch normalisation, or None
  where the portable Keras computation is as fast.

`zoo.kernels.portable()` turns both off, for tests that compare the two paths.
"""

import keras

from zoo.kernels import enabled, portable  # noqa: F401  (portable: the switch the tests use)


def image_data_format():
    """The layout, "channels_first" or "channels_last", that convolutional
    models should compute in on this backend.

    torch's convolutions and batch norm are NCHW kernels (see the module
    docstring). XLA (jax, tensorflow) convolutions on CPU are NHWC kernels and
    tensorflow's CPU Conv2D does not accept NCHW without oneDNN, so those stay
    channels-last, Keras' default.

    Example:
    >>> image_data_format() in ("channels_first", "channels_last")
    True
    """
    if enabled() and keras.backend.backend() == "torch":
        return "channels_first"
    return "channels_last"


def fused_batch_norm(x, gamma, beta, moving_mean, moving_variance, *, axis, epsilon, training):
    """Batch normalisation of `x` over every axis but `axis` in one kernel.

    Returns `(outputs, batch_mean, batch_variance)` in training mode (the
    biased batch variance, as Keras uses for its moving statistics) and
    `(outputs, None, None)` in inference mode, where `moving_mean` and
    `moving_variance` normalise. Returns None where this backend has no fast
    path for these arguments: the caller then runs the portable computation.
    `gamma` and `beta` may be None (no scale, no offset).

    Example:
    >>> import numpy as np
    >>> x = np.ones((2, 3, 4, 4), "float32")
    >>> result = fused_batch_norm(x, None, None, np.zeros(3, "float32"), np.ones(3, "float32"),
    ...                           axis=1, epsilon=1e-3, training=False)
    >>> result is None or tuple(result[0].shape) == (2, 3, 4, 4)
    True
    """
    if not enabled() or keras.backend.backend() != "torch":
        return None
    if axis % len(x.shape) != 1 and len(x.shape) > 2:
        return None  # torch's batch norm wants channels on axis 1
    if training and x.shape[0] * _product(x.shape[2:]) < 2:
        return None  # torch refuses to train on one value per channel
    return _torch_batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon, training)


def _product(values):
    result = 1
    for value in values:
        result *= value
    return result


def _torch_batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon, training):
    import torch

    x, gamma, beta, moving_mean, moving_variance = (
        None if value is None else keras.ops.convert_to_tensor(value)
        for value in (x, gamma, beta, moving_mean, moving_variance)
    )
    if not training:
        outputs = torch.nn.functional.batch_norm(
            x, moving_mean, moving_variance, gamma, beta, training=False, eps=epsilon
        )
        return outputs, None, None
    # torch's kernel writes momentum * batch statistics into running buffers
    # (the variance unbiased); with momentum 1 fresh buffers end up holding the
    # batch statistics themselves, computed in the same pass as the outputs.
    batch_mean = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    batch_variance = torch.zeros_like(batch_mean)
    outputs = torch.nn.functional.batch_norm(
        x, batch_mean, batch_variance, gamma, beta, training=True, momentum=1.0, eps=epsilon
    )
    count = x.numel() // x.shape[1]
    batch_variance = batch_variance * ((count - 1) / count)  # Keras uses the biased variance
    return outputs, batch_mean, batch_variance
