"""Layers switched, while a model is exported, to forms every exporter can
trace: same variables, same results.

- keras_hub's position embedding slices a symbolic length (see
  zoo/layers/gather_position_embedding.py);
- Keras' adapted normalization keeps its statistics as tensors outside its
  variables (see zoo/layers/variable_normalization.py);
- the exact GELU: TensorFlow runs it as one `Gelu` op, which tf2onnx writes as
  ONNX's Gelu, an operator only opset 20 has, in a model of an older opset
  that onnxruntime then refuses; written out with `erf` it is the same
  function in operators every opset has.
"""

import contextlib
import math

import keras
import keras_hub

from zoo.layers.gather_position_embedding import GatherPositionEmbedding
from zoo.layers.variable_normalization import VariableNormalization

_PORTABLE_CLASSES = {
    keras_hub.layers.PositionEmbedding: GatherPositionEmbedding,
    keras.layers.Normalization: VariableNormalization,
}


@contextlib.contextmanager
def exportable(model):
    """Within the block, `model`'s layers have their portable classes; their
    own classes come back afterwards, whatever happened.

    Example:
    >>> import zoo
    >>> model = zoo.load("transformer-decoder-tiny")
    >>> with exportable(model):
    ...     print(type(model.embedding.position_embedding).__name__)
    GatherPositionEmbedding
    >>> type(model.embedding.position_embedding).__name__
    'PositionEmbedding'
    """
    switched, activations = [], []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        portable = _PORTABLE_CLASSES.get(type(layer))
        if portable is not None:
            switched.append((layer, layer.__class__))
            # Safe: the portable classes override `call` only and add no state.
            layer.__class__ = portable
        if getattr(layer, "activation", None) is keras.activations.gelu:
            activations.append(layer)
            layer.activation = erf_gelu
    try:
        yield model
    finally:
        for layer, own_class in switched:
            layer.__class__ = own_class
        for layer in activations:
            layer.activation = keras.activations.gelu


def erf_gelu(x):
    """The exact GELU, x * Phi(x), through `erf`."""
    return 0.5 * x * (1.0 + keras.ops.erf(x / math.sqrt(2.0)))
