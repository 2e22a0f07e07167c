import keras
from keras import ops


class VariableNormalization(keras.layers.Normalization):
    """Keras' adapted `Normalization` reading its mean and variance from its
    variables in every call.

    Keras' layer computes its mean and variance once, after `adapt()` or
    loading, as plain tensors; a traced TensorFlow function captures those as
    outside inputs, and tf2onnx leaves them as inputs of the ONNX graph that
    nobody feeds ("Required inputs ... normalization/Sub/y:0 are missing").
    Read from the variables, they become constants of the exported graph.
    `zoo.export` switches a model's adapted normalizations to this class while
    it exports (same variables, same results) and back afterwards.

    Example:
    >>> import numpy as np
    >>> layer = VariableNormalization()
    >>> layer.adapt(np.array([[1.0], [3.0]], "float32"))
    >>> ops.convert_to_numpy(layer(np.array([[3.0]], "float32"))).tolist()
    [[1.0]]
    """

    def call(self, inputs):
        if self.input_mean is not None:  # mean and variance given, not adapted: no variables
            return super().call(inputs)
        mean = ops.cast(ops.reshape(self.adapt_mean, self._broadcast_shape), self.compute_dtype)
        variance = ops.cast(ops.reshape(self.adapt_variance, self._broadcast_shape), self.compute_dtype)
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        scale = ops.maximum(ops.sqrt(variance), keras.backend.epsilon())
        return mean + inputs * scale if self.invert else (inputs - mean) / scale
