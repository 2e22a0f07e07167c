"""`transformer-encoder`: a BERT-style encoder with a classification or masked-LM head."""

import dataclasses
from typing import Literal

import keras
import numpy as np

from zoo.architectures import transformer_blocks as blocks
from zoo.architectures.base import ZooModel, example_token_ids, sparse_logits_loss
from zoo.architectures.config import PositiveInt
from zoo.layers import FastDense, OutputBias


@dataclasses.dataclass(frozen=True)
class TransformerEncoderConfig(blocks.StackDims):
    num_layers: PositiveInt = 4
    max_length: PositiveInt = 128
    """Longest input sequence (size of the position embedding)."""
    num_classes: PositiveInt = 2
    head: Literal["classifier", "masked-lm"] = "classifier"
    """"classifier": class logits from the pooled sequence; "masked-lm":
    token logits at every position, through the tied token embedding (BERT's
    pre-training head)."""
    pooling: Literal["mean", "first"] = "mean"
    """How the classifier sees the sequence: the masked mean of its
    positions, or its first position (BERT's [CLS]). A masked-lm model keeps
    this and `pooler_activation` for the classifier `num_classes=` gives it."""
    pooler_activation: Literal["none", "tanh", "relu"] = "none"
    """A dense layer of hidden_dim with this activation between pooling and
    the classifier ("tanh": BERT's pooler, "relu": DistilBERT's); "none" for
    no such layer."""

    def weight_count(self):
        """Weights of the built model, computed from the config alone."""
        hidden = self.hidden_dim
        if self.head == "masked-lm":
            head = hidden * hidden + hidden + 2 * hidden + self.vocab_size
        else:
            pooler = 0 if self.pooler_activation == "none" else hidden * hidden + hidden
            head = pooler + hidden * self.num_classes + self.num_classes
        return (self.embedding_weights(self.max_length) + self.num_layers * self.block_weights()
                + self.final_norm_weights() + head)

    def largest_activation(self, length=None):
        logits = self.max_length * self.vocab_size if self.head == "masked-lm" else 0
        return max(logits, self.attention_activation(self.max_length, self.max_length))


@keras.saving.register_keras_serializable(package="zoo")
class TransformerEncoderClassifier(ZooModel):
    """Token + position embedding, encoder blocks with a padding mask, then a
    head: by default masked mean pooling and a linear classifier. Input: token
    ids, 0 = padding. Output: logits.

    The config's variants (post-norm, exact GELU, token types, an embedding
    norm, [CLS] pooling with a tanh pooler, a masked-LM head) are those of
    BERT, RoBERTa and DistilBERT checkpoints, which load into this family.

    Example:
    >>> model = TransformerEncoderClassifier(
    ...     vocab_size=50, hidden_dim=16, num_heads=2, intermediate_dim=32,
    ...     num_layers=1, max_length=8, num_classes=3)
    >>> model.predict(np.array([[5, 6, 7, 0]]), verbose=0).shape
    (1, 3)
    >>> masked_lm = TransformerEncoderClassifier(
    ...     vocab_size=50, hidden_dim=16, num_heads=2, intermediate_dim=32,
    ...     num_layers=1, max_length=8, head="masked-lm")
    >>> masked_lm.predict(np.array([[5, 6, 7, 0]]), verbose=0).shape
    (1, 4, 50)
    """

    family = "transformer-encoder"
    sequence_inputs = True
    Config = TransformerEncoderConfig
    sharding = blocks.SHARDING

    def build_graph(self, config):
        inputs = blocks.stack_inputs(config)
        x, mask, layers = blocks.encode(inputs, config, config.num_layers, config.max_length, "encoder")
        if config.head == "masked-lm":
            return inputs, masked_lm_head(x, layers["embedding"], config), {}
        return inputs, classifier_head(x, mask, config), {}

    @property
    def optional_inputs(self):
        return self.zoo_config.optional_inputs()

    def complete_inputs(self, inputs):
        return blocks.complete_inputs(inputs, self.zoo_config)

    @classmethod
    def config_with_classes(cls, config, num_classes):
        """A masked-LM model asked for classes becomes a classifier."""
        return {**config, "num_classes": num_classes, "head": "classifier"}

    @property
    def context_lengths(self):
        return {"token_ids": self.zoo_config.max_length}

    @property
    def task(self):
        return "masked-language-modelling" if self.zoo_config.head == "masked-lm" else "text-classification"

    @classmethod
    def data_layout(cls, config):
        return "text-classifier" if config.get("head", "classifier") == "classifier" else None

    @property
    def head_layer_names(self):
        if self.zoo_config.head == "masked-lm":
            return ()
        return ("head",)

    def example_batch(self, batch_size=2, seed=0, length=16):
        config = self.zoo_config
        rng = np.random.default_rng(seed)
        x = example_token_ids(rng, batch_size, min(length, config.max_length), config.vocab_size)
        if config.head == "masked-lm":
            return x, x  # each position predicts its own token
        y = rng.integers(0, config.num_classes, size=batch_size).astype("int32")
        return x, y

    def default_loss(self):
        if self.zoo_config.head == "masked-lm":
            return keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=self.zoo_config.pad_token_id)
        return sparse_logits_loss()


def classifier_head(x, mask, config):
    """Pool the sequence (masked mean, or the first position), optionally
    through a pooler dense layer, then class logits."""
    if config.pooling == "first":
        x = x[:, 0]  # [CLS]
    else:
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x, mask=mask)
    if config.pooler_activation != "none":
        x = keras.layers.Dense(config.hidden_dim, activation=config.pooler_activation, name="pooler")(x)
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
    # BERT's small head init: start near uniform predictions, fine-tune gently.
    return keras.layers.Dense(
        config.num_classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name="head",
    )(x)


def masked_lm_head(x, embedding, config):
    """BERT's pre-training head: dense + activation + norm, then logits over
    the vocabulary through the tied token embedding, plus a bias."""
    x = FastDense(config.hidden_dim, activation=config.feedforward_activation(), name="mlm_dense")(x)
    x = keras.layers.LayerNormalization(epsilon=config.layer_norm_epsilon, name="mlm_norm")(x)
    logits = embedding.token_embedding(x, reverse=True)
    return OutputBias(name="mlm_bias")(logits)
