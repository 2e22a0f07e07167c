"""Fused scaled dot-product attention for `zoo.layers.FastMultiHeadAttention`.

Keras' `MultiHeadAttention` (and keras_hub's `CachedMultiHeadAttention`, which
every zoo transformer block uses) takes the fused `ops.dot_product_attention`
path only when its dropout is 0; with the zoo's dropout of 0.1 it always runs
two einsums around an explicitly masked softmax and a dropout, in inference
too. Here:

- torch: one `scaled_dot_product_attention` call (the kernel behind
  `nn.MultiheadAttention`), with the attention dropout as its `dropout_p` when
  training.
- jax, tensorflow: the same math as Keras', in the (batch, heads, ...) layout
  that the batched matmuls want (no dropout op at all in inference).

Every path keeps Keras' masking rules: masked keys get no weight and a query
whose keys are all masked outputs zeros. `zoo.kernels.enabled()` / `portable()` switch the
fast path off, e.g. to compare it with Keras' computation.
"""

import keras
from keras import ops

from zoo.kernels import enabled, portable  # noqa: F401  (the switch layers and tests use)

# Keras' masked softmax puts this in front of masked scores (float32 and up).
_MASKED_SCORE = -1e9


def dot_product_attention(query, key, value, mask=None, scale=1.0, dropout=0.0, seed_generator=None):
    """Softmax(scale * query . key) . value with Keras' masking and dropout rules.

    `query` is (batch, target, heads, head_dim), `key` and `value` (batch,
    source, heads, head_dim), as inside `keras.layers.MultiHeadAttention`;
    `mask` is None or broadcastable to (batch, target, source), True (or 1)
    where a query may attend to a key. `dropout` is the attention-weight
    dropout rate to apply now (0 in inference). Returns (batch, target, heads,
    head_dim).

    Example:
    >>> import numpy as np
    >>> q = np.ones((1, 2, 1, 4), "float32")
    >>> out = dot_product_attention(q, q, q, mask=np.array([[[1, 0]]]), scale=0.5)
    >>> tuple(out.shape)
    (1, 2, 1, 4)
    """
    if keras.backend.backend() == "torch":
        return _torch_attention(query, key, value, mask, scale, dropout)
    return _batched_matmul_attention(query, key, value, mask, scale, dropout, seed_generator)


def _heads_first(tensor):
    return ops.transpose(tensor, (0, 2, 1, 3))


def _mask_4d(mask):
    """(batch, target, source) mask as boolean (batch, 1, target, source)."""
    mask = ops.convert_to_tensor(mask)
    if mask.dtype != "bool":
        mask = ops.greater(mask, 0)
    while len(mask.shape) < 3:
        mask = ops.expand_dims(mask, 0)
    return ops.expand_dims(mask, 1)


def _zero_fully_masked(output, mask):
    """Zero the queries (of (batch, heads, target, dim) `output`) that may see no key, as Keras does."""
    any_key = ops.any(mask, axis=-1, keepdims=True)
    return ops.where(any_key, output, ops.zeros_like(output))


def _torch_attention(query, key, value, mask, scale, dropout):
    import torch.nn.functional as F

    q, k, v = (_heads_first(t) for t in (query, key, value))
    bias = None
    if mask is not None:
        mask = _mask_4d(mask)
        # A float bias keeps fully masked rows finite (a boolean mask gives NaN there).
        bias = ops.where(mask, 0.0, _MASKED_SCORE)
    output = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=scale)
    if mask is not None:
        output = _zero_fully_masked(output, mask)
    return _heads_first(output)


def _batched_matmul_attention(query, key, value, mask, scale, dropout, seed_generator):
    q, k, v = (_heads_first(t) for t in (query, key, value))
    scores = ops.matmul(q * ops.cast(scale, q.dtype), ops.transpose(k, (0, 1, 3, 2)))
    if mask is not None:
        mask = _mask_4d(mask)
        scores = ops.where(mask, scores, _MASKED_SCORE)
    weights = ops.softmax(scores, axis=-1)
    if mask is not None:
        weights = ops.where(mask, weights, 0.0)
    if dropout:
        weights = keras.random.dropout(weights, dropout, seed=seed_generator)
    return _heads_first(ops.matmul(weights, v))
