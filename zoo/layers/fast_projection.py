"""Keras' `Dense` and `EinsumDense` with the 2-D matmul of
zoo/kernels/projection.py, and the switch that gives them to a built layer.

keras_hub's transformer blocks create their projections (attention query,
key, value and output; the feed-forward pair) inside `build()`, so
`use_fast_projections` switches them to these subclasses afterwards. The
subclasses add no state and override only the float computation of `call`:
the variables, their paths and the quantized paths stay Keras' own.
"""

import keras

from zoo.kernels import projection


class _FastProjection:
    """Mixin: what both fast layers share around their product."""

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


_FAST_CLASSES = {keras.layers.Dense: FastDense, keras.layers.EinsumDense: FastEinsumDense}


def use_fast_projections(layer):
    """Switch every `Dense` and `EinsumDense` inside the built `layer` (Keras'
    own classes, not subclasses) to the fast ones; returns `layer`.

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
        fast_class = _FAST_CLASSES.get(type(inner))
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
