import keras
import keras_hub


class GatherPositionEmbedding(keras_hub.layers.PositionEmbedding):
    """keras_hub's `PositionEmbedding` that gathers its rows instead of slicing them.

    keras_hub slices the first `length` rows out of the table; a slice whose
    size is a symbolic length cannot be traced by jax's shape-polymorphic
    export (jax2onnx, jax2tf: "symbolic dimension comparison ... is
    inconclusive"). Gathering rows `start .. start + length` is the same
    computation in a form every exporter traces with a dynamic length.
    `zoo.export` switches a model's position embeddings to this class while it
    exports (same variables, same results) and back afterwards.

    Example:
    >>> import numpy as np
    >>> layer = GatherPositionEmbedding(sequence_length=8)
    >>> x = np.zeros((2, 5, 4), "float32")
    >>> tuple(layer(x).shape)
    (2, 5, 4)
    """

    def call(self, inputs, start_index=0, positions=None):
        if positions is None:
            # 0, 1, ... counted along the input's own length axis: exporters
            # keep that axis symbolic, where an `arange` of the length is a
            # new, unrelated size to them (jax2onnx).
            steps = keras.ops.ones_like(inputs[0, :, 0], dtype="int32")
            positions = keras.ops.cumsum(steps) - 1 + start_index
        return super().call(inputs, start_index=start_index, positions=positions)
