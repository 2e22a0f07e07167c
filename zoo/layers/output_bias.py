import keras


@keras.saving.register_keras_serializable(package="zoo")
class OutputBias(keras.layers.Layer):
    """Adds a learned bias over the last axis: the per-token bias of a
    masked-LM head whose projection is the (tied) token embedding.

    Keras has no bias-only layer, and keras_hub's `MaskedLMHead` scores only
    gathered mask positions, where checkpoints such as BERT score every
    position; this one variable is all that is missing.

    Example:
    >>> import numpy as np
    >>> layer = OutputBias()
    >>> keras.ops.convert_to_numpy(layer(np.zeros((1, 2, 3), "float32"))).shape
    (1, 2, 3)
    >>> tuple(layer.bias.shape)
    (3,)
    """

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        return x + keras.ops.cast(self.bias, x.dtype)
