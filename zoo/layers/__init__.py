"""Layers of the zoo's own, for what neither Keras nor keras_hub provides.

Each is registered as serializable under the package name "zoo", so `.keras`
files that contain them load with `safe_mode=True`. `LSTM`, `Bidirectional`,
`BatchNormalization` and the fast attention layers are Keras' own layers with
a fast path (see zoo/kernels/): same weights, same results.
"""

from zoo.layers.fast_attention import FastCachedMultiHeadAttention, FastMultiHeadAttention
from zoo.layers.fused_batch_norm import BatchNormalization
from zoo.layers.lstm import LSTM, Bidirectional
from zoo.layers.output_bias import OutputBias
from zoo.layers.padding_mask import PaddingMask

__all__ = [
    "BatchNormalization",
    "Bidirectional",
    "FastCachedMultiHeadAttention",
    "FastMultiHeadAttention",
    "LSTM",
    "OutputBias",
    "PaddingMask",
]
