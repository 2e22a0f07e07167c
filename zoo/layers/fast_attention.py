"""keras_hub's attention layers with the fused kernel of zoo/kernels/attention.py.

Keras documents `MultiHeadAttention._compute_attention` as the method to
override for a custom attention computation; these subclasses override only
that, so they hold the same variables, under the same paths, as the layers
they replace.
"""

import keras

from zoo.kernels import attention
from zoo.runtime.quiet_imports import keras_hub


class _FusedAttention:
    """Mixin: Keras' `_compute_attention` through `zoo.kernels.attention`."""

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        # Without dropout Keras already calls its fused `ops.dot_product_attention`
        # (whose rows with every key masked average the values instead of giving zeros).
        keras_path = not self._dropout or return_attention_scores or len(query.shape) != 4
        if keras_path or not attention.enabled():
            return super()._compute_attention(
                query, key, value, attention_mask, training, return_attention_scores, use_causal_mask
            )
        if use_causal_mask:
            causal = self._compute_causal_mask(query, value)
            attention_mask = causal if attention_mask is None else keras.ops.logical_and(
                keras.ops.cast(attention_mask, "bool"), causal
            )
        dropout = self._dropout if training else 0.0
        output = attention.dot_product_attention(
            query, key, value,
            mask=attention_mask,
            scale=self._inverse_sqrt_key_dim,
            dropout=dropout,
            # Keras' Dropout layer makes a seed generator only for a rate above 0.
            seed_generator=self._dropout_layer.seed_generator if dropout else None,
        )
        return output, None


@keras.saving.register_keras_serializable(package="zoo")
class FastMultiHeadAttention(_FusedAttention, keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` with a fused attention kernel.

    Example:
    >>> import numpy as np
    >>> layer = FastMultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.ones((1, 3, 8), "float32")
    >>> tuple(layer(x, x).shape)
    (1, 3, 8)
    """


@keras.saving.register_keras_serializable(package="zoo")
class FastCachedMultiHeadAttention(_FusedAttention, keras_hub.layers.CachedMultiHeadAttention):
    """keras_hub's `CachedMultiHeadAttention` with a fused attention kernel.

    Example:
    >>> import numpy as np
    >>> layer = FastCachedMultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.ones((1, 3, 8), "float32")
    >>> tuple(layer(x, x).shape)
    (1, 3, 8)
    """


_FAST_CLASSES = {
    keras.layers.MultiHeadAttention: FastMultiHeadAttention,
    keras_hub.layers.CachedMultiHeadAttention: FastCachedMultiHeadAttention,
}


def use_fast_attention(block):
    """Give a built keras_hub `TransformerEncoder` / `TransformerDecoder` the
    fused attention kernel; returns `block`.

    keras_hub creates its attention layers inside `build()`, so they are
    switched to the subclass afterwards: only behaviour changes (the
    subclasses add no state), never the variables or their paths.

    Example:
    >>> import numpy as np
    >>> block = keras_hub.layers.TransformerEncoder(intermediate_dim=8, num_heads=2)
    >>> _ = block(np.ones((1, 3, 4), "float32"))
    >>> type(use_fast_attention(block)._self_attention_layer).__name__
    'FastMultiHeadAttention'
    """
    for name in ("_self_attention_layer", "_cross_attention_layer"):
        layer = getattr(block, name, None)
        fast_class = _FAST_CLASSES.get(type(layer))
        if fast_class is not None:
            # Safe: the fast class only overrides a method and adds no attributes.
            layer.__class__ = fast_class
    return block
