"""Keras' `Dense`, `EinsumDense` and `ReversibleEmbedding` with the 2-D
matmul of zoo/kernels/projection.py, and the switch that gives them to a
built layer.

keras_hub's transformer blocks create their projections (attention query,
key, value and output; the feed-forward pair) inside `build()`, and its
token embedding holds the tied output projection, so `use_fast_projections`
switches them to these subclasses afterwards. The subclasses add no state
and override only the float computation of `call`: the variables, their
paths and the quantized paths stay Keras' own.
"""

import functools

import keras

from zoo.kernels import projection


class _FastProjection:
    """Mixin: what the fast layers share around their product."""

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras refuses to quantize subclasses of its layers (one could give the
        # weights another meaning); these only compute the float product differently.
        return super().quantize(mode, type_check=False, config=config)

    def _bias_and_activation(self, outputs):
        """Keras' float `call` after its product: the bias, then the activation."""
        if self.bias is not None:
            outputs = keras.ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)


@keras.saving.register_keras_serializable(package="zoo")
class FastDense(_FastProjection, keras.layers.Dense):
    """`keras.layers.Dense`, computed on sequences by `zoo.kernels.projection.matmul`.

    Example:
    >>> import numpy as np
    >>> layer = FastDense(5)
    >>> tuple(layer(np.ones((2, 3, 4), "float32")).shape)
    (2, 3, 5)
    """

    def call(self, inputs, training=None):
        return self._bias_and_activation(projection.matmul(inputs, self.kernel))


@keras.saving.register_keras_serializable(package="zoo")
class FastEinsumDense(_FastProjection, keras.layers.EinsumDense):
    """`keras.layers.EinsumDense`, computed by `zoo.kernels.projection.einsum`.

    Example:
    >>> import numpy as np
    >>> layer = FastEinsumDense("abc,cde->abde", output_shape=(None, 2, 4))
    >>> tuple(layer(np.ones((2, 3, 8), "float32")).shape)
    (2, 3, 2, 4)
    """

    def call(self, inputs, training=None):
        return self._bias_and_activation(projection.einsum(self.equation, inputs, self.kernel))


@keras.saving.register_keras_serializable(package="zoo")
class FastReversibleEmbedding(_FastProjection, keras.layers.ReversibleEmbedding):
    """`keras.layers.ReversibleEmbedding` whose reverse call (hidden states to
    logits over the vocabulary, the largest matmul of a language model) is
    computed by `zoo.kernels.projection.matmul`. The rarer options (a reverse
    dtype, soft-capped logits) and the forward lookup stay Keras' own call.

    Example:
    >>> import numpy as np
    >>> layer = FastReversibleEmbedding(10, 4)
    >>> tuple(layer(np.ones((2, 3, 4), "float32"), reverse=True).shape)
    (2, 3, 10)
    """

    def call(self, inputs, reverse=False):
        if not reverse or self.reverse_dtype is not None or self.logit_soft_cap is not None:
            return super().call(inputs, reverse=reverse)
        kernel = keras.ops.transpose(self.embeddings) if self.tie_weights else self.reverse_embeddings
        return projection.matmul(inputs, kernel)


@functools.cache
def _fast_classes():
    """Keras' classes (and keras_hub's `ReversibleEmbedding`, an empty
    subclass of Keras') to their fast subclasses."""
    # keras_hub is imported here, not at the top: it starts TensorFlow, and
    # only the transformer families, which have loaded it already, switch.
    from zoo.runtime.quiet_imports import keras_hub

    return {
        keras.layers.Dense: FastDense,
        keras.layers.EinsumDense: FastEinsumDense,
        keras.layers.ReversibleEmbedding: FastReversibleEmbedding,
        keras_hub.layers.ReversibleEmbedding: FastReversibleEmbedding,
    }


def use_fast_projections(layer):
    """Switch every `Dense`, `EinsumDense` and `ReversibleEmbedding` inside
    the built `layer` (Keras' or keras_hub's own classes, not subclasses) to
    the fast ones; returns `layer`.

    Example:
    >>> import numpy as np
    >>> from zoo.runtime.quiet_imports import keras_hub
    >>> block = keras_hub.layers.TransformerEncoder(intermediate_dim=8, num_heads=2)
    >>> _ = block(np.ones((1, 3, 4), "float32"))
    >>> sorted({type(inner).__name__ for inner in use_fast_projections(block)._flatten_layers()
    ...         if "Dense" in type(inner).__name__})
    ['FastDense', 'FastEinsumDense']
    """
    for inner in layer._flatten_layers(include_self=True, recursive=True):
        fast_class = _fast_classes().get(type(inner))
        if fast_class is not None:
            # Safe: the fast class only overrides methods and adds no attributes.
            inner.__class__ = fast_class
            _quantize_as_keras_own(inner)
    return layer


def _quantize_as_keras_own(layer):
    """Keras wraps a layer's `quantize` as it creates it, bound to the class
    it had then, whose check refuses any other class: make that wrapper skip
    the check, as `_FastProjection.quantize` does for layers created fast."""
    keras_quantize = layer.quantize

    def quantize(mode=None, config=None, **kwargs):
        return keras_quantize(mode=mode, config=config, **{**kwargs, "type_check": False})

    layer.quantize = quantize
