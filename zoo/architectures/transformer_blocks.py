"""Pieces shared by the three transformer families, built on keras_hub layers."""

import dataclasses
from typing import Literal

import keras

from zoo.architectures.config import Fraction, PositiveInt
from zoo.layers import PaddingMask
from zoo.layers.fast_attention import use_fast_attention
from zoo.runtime.quiet_imports import keras_hub

# Model parallelism for every transformer family (Megatron-style): attention
# split by head, the feed-forward layer by its inner unit (column- then
# row-split, so each block needs one reduction), embeddings by feature.
SHARDING = {
    r".*(token|position)_embedding/embeddings": (None, "model"),
    r".*/(query|key|value)/kernel": (None, "model", None),
    r".*/(query|key|value)/bias": ("model", None),
    r".*/attention_output/kernel": ("model", None, None),
    r".*feedforward_intermediate_dense/kernel": (None, "model"),
    r".*feedforward_intermediate_dense/bias": ("model",),
    r".*feedforward_output_dense/kernel": ("model", None),
}


@dataclasses.dataclass(frozen=True)
class TransformerDims:
    """Hyper-parameters every transformer family shares."""

    vocab_size: PositiveInt = 8192
    """Token vocabulary; id 0 is padding."""
    hidden_dim: PositiveInt = 256
    num_heads: PositiveInt = 4
    intermediate_dim: PositiveInt = 1024
    """Width of each block's feed-forward layer."""
    dropout: Fraction = 0.1
    activation: Literal["relu", "gelu"] = "gelu"
    normalize_first: bool = True
    """Pre-layer-norm blocks (stable from scratch); False gives the original post-norm."""

    def __post_init__(self):
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim ({self.hidden_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.vocab_size < 2:
            raise ValueError("vocab_size must be >= 2 (id 0 is padding)")

    def embedding_weights(self, max_length):
        """Token and learned position embeddings."""
        return (self.vocab_size + max_length) * self.hidden_dim

    def block_weights(self, cross_attention=False):
        """One keras_hub encoder or decoder block: attention (query, key, value
        and output projections with biases), the feed-forward pair, and a layer
        norm after each sub-layer; a decoder block of a seq2seq model adds
        cross-attention and its norm."""
        hidden, inner = self.hidden_dim, self.intermediate_dim
        attention_and_norm = 4 * (hidden * hidden + hidden) + 2 * hidden
        feedforward_and_norm = 2 * hidden * inner + inner + hidden + 2 * hidden
        return (2 if cross_attention else 1) * attention_and_norm + feedforward_and_norm

    def final_norm_weights(self):
        return 2 * self.hidden_dim if self.normalize_first else 0

    def attention_activation(self, query_length, key_length):
        """Floats of the largest tensor in a block for one example: the
        attention scores of every head, or the feed-forward layer's inside."""
        return max(self.num_heads * query_length * key_length, query_length * self.intermediate_dim)


def token_input(name):
    return keras.Input((None,), dtype="int32", name=name)


def embed(token_ids, dims, max_length, name):
    """Token + learned position embedding, then dropout; returns (x, mask, layer)."""
    mask = PaddingMask(name=f"{name}_padding_mask")(token_ids)
    embedding = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=dims.vocab_size,
        sequence_length=max_length,
        embedding_dim=dims.hidden_dim,
        name=f"{name}_embedding",
    )
    x = embedding(token_ids)
    x = keras.layers.Dropout(dims.dropout, name=f"{name}_embedding_dropout")(x)
    return x, mask, embedding


def block_stack(block_class, dims, num_layers, name):
    """`num_layers` keras_hub transformer blocks (encoder or decoder) of `dims`."""
    return [
        block_class(
            intermediate_dim=dims.intermediate_dim,
            num_heads=dims.num_heads,
            dropout=dims.dropout,
            activation=dims.activation,
            normalize_first=dims.normalize_first,
            name=f"{name}_block_{index}",
        )
        for index in range(num_layers)
    ]


def encoder_blocks(dims, num_layers, name):
    return block_stack(keras_hub.layers.TransformerEncoder, dims, num_layers, name)


def decoder_blocks(dims, num_layers, name):
    return block_stack(keras_hub.layers.TransformerDecoder, dims, num_layers, name)


def final_norm(dims, name):
    """Pre-norm stacks end with a layer norm; post-norm ones already did."""
    if dims.normalize_first:
        return keras.layers.LayerNormalization(epsilon=1e-5, name=f"{name}_final_norm")
    return keras.layers.Identity(name=f"{name}_final_norm")


def encode(token_ids, dims, num_layers, max_length, name):
    """The whole encoder stack on symbolic inputs; returns (x, mask, layers)."""
    x, mask, embedding = embed(token_ids, dims, max_length, name)
    blocks = encoder_blocks(dims, num_layers, name)
    for block in blocks:
        x = block(x, padding_mask=mask)
        use_fast_attention(block)  # after the call that built it: see zoo/layers/fast_attention.py
    norm = final_norm(dims, name)
    return norm(x), mask, {"embedding": embedding, "blocks": blocks, "norm": norm}


def empty_cache(batch_size, num_layers, length, dims):
    """Zeroed key/value cache in the layout keras_hub's cached attention expects."""
    head_dim = dims.hidden_dim // dims.num_heads
    return keras.ops.zeros(
        (batch_size, num_layers, 2, length, dims.num_heads, head_dim), dtype="float32"
    )
