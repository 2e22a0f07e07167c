"""Batch normalisation through one fused backend kernel where there is one."""

import keras

from zoo.kernels import conv as conv_kernels


# Named as Keras' layer on purpose: Keras files key each layer's weights by its
# class name ("batch_normalization_3"), so presets saved with Keras' layer load.
@keras.saving.register_keras_serializable(package="zoo")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with the same weights and results,
    computed by `zoo.kernels.conv.fused_batch_norm` where the backend has a
    fused kernel (Keras' own layer runs several element-wise ops instead).

    The moving statistics update exactly as Keras does them:
    `moving = moving * momentum + batch * (1 - momentum)`, with the biased
    batch variance. Masks, renorm and synchronized statistics take Keras'
    path. `use_fast_path=False` always takes it.

    Example:
    >>> import numpy as np
    >>> layer = BatchNormalization(axis=1)
    >>> outputs = layer(np.ones((2, 3, 4, 4), "float32"), training=True)
    >>> [round(float(value), 4) for value in keras.ops.convert_to_numpy(layer.moving_mean)]
    [0.01, 0.01, 0.01]
    """

    def __init__(self, use_fast_path=True, **kwargs):
        super().__init__(**kwargs)
        self.use_fast_path = use_fast_path

    def call(self, inputs, training=None, mask=None):
        result = None
        if self.use_fast_path and mask is None and not self.renorm and not self.synchronized:
            result = self._fused_call(inputs, training=bool(training and self.trainable))
        return super().call(inputs, training=training, mask=mask) if result is None else result

    def _fused_call(self, inputs, training):
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = keras.ops.cast(inputs, compute_dtype)  # as Keras: float16 statistics overflow
        moving_mean = keras.ops.cast(self.moving_mean, compute_dtype)
        moving_variance = keras.ops.cast(self.moving_variance, compute_dtype)
        gamma = keras.ops.cast(self.gamma, compute_dtype) if self.scale else None
        beta = keras.ops.cast(self.beta, compute_dtype) if self.center else None
        fused = conv_kernels.fused_batch_norm(
            inputs, gamma, beta, moving_mean, moving_variance,
            axis=self.axis, epsilon=self.epsilon, training=training,
        )
        if fused is None:
            return None
        outputs, batch_mean, batch_variance = fused
        if training:
            self.moving_mean.assign(moving_mean * self.momentum + batch_mean * (1.0 - self.momentum))
            self.moving_variance.assign(moving_variance * self.momentum + batch_variance * (1.0 - self.momentum))
        return keras.ops.cast(outputs, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "use_fast_path": self.use_fast_path}
