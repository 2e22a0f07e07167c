"""Pieces shared by the three transformer families, built on keras_hub layers."""

import dataclasses
from typing import Literal

import keras

from zoo.architectures.config import Fraction, NonNegativeInt, PositiveFloat, PositiveInt
from zoo.layers import PaddingMask
from zoo.layers.fast_attention import use_fast_attention
from zoo.layers.fast_projection import use_fast_projections
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
    activation: Literal["relu", "gelu", "gelu_approximate"] = "gelu"
    """The feed-forward activation: "gelu" is the exact (erf) GELU of BERT,
    "gelu_approximate" the tanh approximation of GPT-2."""
    normalize_first: bool = True
    """Pre-layer-norm blocks (stable from scratch); False gives the original post-norm."""
    layer_norm_epsilon: PositiveFloat = 1e-5

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

    def feedforward_activation(self):
        return gelu_approximate if self.activation == "gelu_approximate" else self.activation

    def final_norm_weights(self):
        return 2 * self.hidden_dim if self.normalize_first else 0

    def attention_activation(self, query_length, key_length):
        """Floats of the largest tensor in a block for one example: the
        attention scores of every head, or the feed-forward layer's inside."""
        return max(self.num_heads * query_length * key_length, query_length * self.intermediate_dim)


@dataclasses.dataclass(frozen=True)
class StackDims(TransformerDims):
    """A single encoder or decoder stack over token ids, with the input
    variants real checkpoints need (GPT-2 has no padding id, BERT has token
    types and a norm after its embeddings). The defaults are the zoo's own
    presets: id 0 is padding and token ids are the only input."""

    pad_token_id: NonNegativeInt | None = 0
    """The id that marks padding, from which the padding mask is derived;
    null when every id is a real token (GPT-2), so nothing is derived."""
    padding_mask_input: bool = False
    """The model also takes a "padding_mask" input (True where a token is
    real), which overrides the mask derived from `pad_token_id`; without it
    in a call, the derived mask is used (every position, with no padding id)."""
    type_vocab_size: NonNegativeInt = 0
    """Token types (BERT's segment ids): above 0, the model also takes
    "token_type_ids" (0 when left out) and adds their embedding."""
    embedding_norm: bool = False
    """A layer norm after the summed embeddings (BERT), before dropout."""

    def __post_init__(self):
        super().__post_init__()
        if self.pad_token_id is not None and self.pad_token_id >= self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be below vocab_size ({self.vocab_size})")

    def embedding_weights(self, max_length):
        norm = 2 * self.hidden_dim if self.embedding_norm else 0
        return super().embedding_weights(max_length) + self.type_vocab_size * self.hidden_dim + norm

    def optional_inputs(self):
        """Input names beside "token_ids" that a call may leave out."""
        return (("padding_mask",) if self.padding_mask_input else ()) + (
            ("token_type_ids",) if self.type_vocab_size else ())


@keras.saving.register_keras_serializable(package="zoo")
def gelu_approximate(x):
    """GELU's tanh approximation (GPT-2's "gelu_new")."""
    return keras.activations.gelu(x, approximate=True)


def token_input(name, dtype="int32"):
    return keras.Input((None,), dtype=dtype, name=name)


def stack_inputs(dims):
    """The inputs of a single stack: token ids alone, or a dict with the
    optional inputs of `dims` (see `complete_inputs`)."""
    token_ids = token_input("token_ids")
    optional = dims.optional_inputs()
    if not optional:
        return token_ids
    dtypes = {"padding_mask": "bool", "token_type_ids": "int32"}
    return {"token_ids": token_ids, **{name: token_input(name, dtypes[name]) for name in optional}}


def complete_inputs(inputs, dims):
    """The full input dict of a stack with optional inputs, from what a
    caller gave: token ids alone, or a dict without some optional inputs.

    Keras' functional models need every input in every call, so the missing
    ones are made here: the padding mask from `pad_token_id` (all True
    without one), token types as zeros.
    """
    if not isinstance(inputs, dict):
        inputs = {"token_ids": inputs}
    check_input_names(inputs, dims)
    missing = [name for name in dims.optional_inputs() if name not in inputs]
    if not missing:
        return inputs
    # Keras refuses a dict that mixes arrays and tensors, so all become tensors.
    token_ids = keras.ops.convert_to_tensor(inputs["token_ids"], dtype="int32")
    made = {"token_ids": token_ids}
    if "padding_mask" in missing:
        made["padding_mask"] = PaddingMask(dims.pad_token_id).call(token_ids)
    if "token_type_ids" in missing:
        made["token_type_ids"] = keras.ops.zeros_like(token_ids)
    given = {name: keras.ops.convert_to_tensor(value) for name, value in inputs.items() if name != "token_ids"}
    return {**given, **made}


def check_input_names(inputs, dims):
    """Refuse a dict with a key the model does not take: Keras would match
    the inputs up by position instead of by name, without a word."""
    from zoo.errors import InvalidDataError

    allowed = ("token_ids", *dims.optional_inputs())
    unknown = sorted(set(inputs) - set(allowed))
    if unknown or "token_ids" not in inputs:
        hint = " (transformers' attention_mask is the zoo's padding_mask)" if "attention_mask" in unknown else ""
        raise InvalidDataError(
            f"This model takes the inputs {list(allowed)}, token_ids required; got {sorted(inputs)}{hint}."
        )


def embed(inputs, dims, max_length, name):
    """Token + learned position embedding (+ token types, + a norm), then
    dropout; returns (x, mask, layer). `inputs` is token ids, or the dict of
    `stack_inputs`."""
    token_ids = inputs["token_ids"] if isinstance(inputs, dict) else inputs
    if isinstance(inputs, dict) and "padding_mask" in inputs:
        mask = inputs["padding_mask"]
    else:
        mask = PaddingMask(getattr(dims, "pad_token_id", 0), name=f"{name}_padding_mask")(token_ids)
    embedding = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=dims.vocab_size,
        sequence_length=max_length,
        embedding_dim=dims.hidden_dim,
        name=f"{name}_embedding",
    )
    x = embedding(token_ids)
    use_fast_projections(embedding)  # after the call that built it: the tied output projection
    if getattr(dims, "type_vocab_size", 0):
        types = keras.layers.Embedding(dims.type_vocab_size, dims.hidden_dim, name=f"{name}_token_type_embedding")
        x = keras.layers.Add(name=f"{name}_embedding_sum")([x, types(inputs["token_type_ids"])])
    if getattr(dims, "embedding_norm", False):
        x = keras.layers.LayerNormalization(epsilon=dims.layer_norm_epsilon, name=f"{name}_embedding_norm")(x)
    x = keras.layers.Dropout(dims.dropout, name=f"{name}_embedding_dropout")(x)
    return x, mask, embedding


def block_stack(block_class, dims, num_layers, name):
    """`num_layers` keras_hub transformer blocks (encoder or decoder) of `dims`."""
    return [
        block_class(
            intermediate_dim=dims.intermediate_dim,
            num_heads=dims.num_heads,
            dropout=dims.dropout,
            activation=dims.feedforward_activation(),
            layer_norm_epsilon=dims.layer_norm_epsilon,
            normalize_first=dims.normalize_first,
            name=f"{name}_block_{index}",
        )
        for index in range(num_layers)
    ]


def use_fast_layers(block):
    """Give a keras_hub block, after the call that built it, the zoo's fused
    attention and 2-D projections (zoo/layers/fast_attention.py,
    fast_projection.py: same variables, same results); returns `block`."""
    return use_fast_projections(use_fast_attention(block))


def encoder_blocks(dims, num_layers, name):
    return block_stack(keras_hub.layers.TransformerEncoder, dims, num_layers, name)


def decoder_blocks(dims, num_layers, name):
    return block_stack(keras_hub.layers.TransformerDecoder, dims, num_layers, name)


def final_norm(dims, name):
    """Pre-norm stacks end with a layer norm; post-norm ones already did."""
    if dims.normalize_first:
        return keras.layers.LayerNormalization(epsilon=dims.layer_norm_epsilon, name=f"{name}_final_norm")
    return keras.layers.Identity(name=f"{name}_final_norm")


def encode(inputs, dims, num_layers, max_length, name):
    """The whole encoder stack on symbolic inputs; returns (x, mask, layers)."""
    x, mask, embedding = embed(inputs, dims, max_length, name)
    blocks = encoder_blocks(dims, num_layers, name)
    for block in blocks:
        x = block(x, padding_mask=mask)
        use_fast_layers(block)  # after the call that built it
    norm = final_norm(dims, name)
    return norm(x), mask, {"embedding": embedding, "blocks": blocks, "norm": norm}


def empty_cache(batch_size, num_layers, length, dims):
    """Zeroed key/value caches, one per layer, each in the layout keras_hub's
    cached attention expects: (batch, 2, length, heads, head_dim).

    One array per layer, not one stacked array: a decoding step then updates
    each layer's cache where it is, instead of slicing every layer's out of
    the stack and stacking them again (two copies of the whole cache a token).
    """
    head_dim = dims.hidden_dim // dims.num_heads
    shape = (batch_size, 2, length, dims.num_heads, head_dim)
    return tuple(keras.ops.zeros(shape, dtype="float32") for _ in range(num_layers))
