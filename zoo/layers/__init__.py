"""Layers of the zoo's own, for what neither Keras nor keras_hub provides.

Each is registered as serializable under the package name "zoo", so `.keras`
files that contain them load with `safe_mode=True`. `LSTM`, `Bidirectional`,
`BatchNormalization`, the fast attention layers and `FastDense` /
`FastEinsumDense` are Keras' own layers with a fast path (see zoo/kernels/):
same weights, same results.
"""

from zoo.layers.fast_projection import FastDense, FastEinsumDense
from zoo.layers.fused_batch_norm import BatchNormalization
from zoo.layers.lstm import LSTM, Bidirectional
from zoo.layers.output_bias import OutputBias
from zoo.layers.padding_mask import PaddingMask

__all__ = [
    "BatchNormalization",
    "Bidirectional",
    "FastCachedMultiHeadAttention",
    "FastDense",
    "FastEinsumDense",
    "FastMultiHeadAttention",
    "LSTM",
    "OutputBias",
    "PaddingMask",
]

# The attention layers build on keras_hub, whose import also starts TensorFlow
# (2-3 s under jax or torch): imported on first use, so that the families
# without attention load without it.
_FROM_FAST_ATTENTION = ("FastCachedMultiHeadAttention", "FastMultiHeadAttention")


def __getattr__(name):
    if name in _FROM_FAST_ATTENTION:
        from zoo.layers import fast_attention

        return getattr(fast_attention, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
