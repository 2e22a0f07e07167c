"""`transformer-encoder`: a BERT-style encoder with a pooled classification head."""

import dataclasses

import keras
import numpy as np

from zoo.architectures import transformer_blocks as blocks
from zoo.architectures.base import ZooModel, example_token_ids, sparse_logits_loss
from zoo.architectures.config import PositiveInt


@dataclasses.dataclass(frozen=True)
class TransformerEncoderConfig(blocks.TransformerDims):
    num_layers: PositiveInt = 4
    max_length: PositiveInt = 128
    """Longest input sequence (size of the position embedding)."""
    num_classes: PositiveInt = 2

    def weight_count(self):
        """Weights of the built model, computed from the config alone."""
        head = self.hidden_dim * self.num_classes + self.num_classes
        return (self.embedding_weights(self.max_length) + self.num_layers * self.block_weights()
                + self.final_norm_weights() + head)

    def largest_activation(self, length=None):
        return self.attention_activation(self.max_length, self.max_length)


@keras.saving.register_keras_serializable(package="zoo")
class TransformerEncoderClassifier(ZooModel):
    """Token + position embedding, encoder blocks with a padding mask, masked mean
    pooling and a linear head. Input: token ids, 0 = padding. Output: logits.

    Example:
    >>> model = TransformerEncoderClassifier(
    ...     vocab_size=50, hidden_dim=16, num_heads=2, intermediate_dim=32,
    ...     num_layers=1, max_length=8, num_classes=3)
    >>> model.predict(np.array([[5, 6, 7, 0]]), verbose=0).shape
    (1, 3)
    """

    family = "transformer-encoder"
    sequence_inputs = True
    Config = TransformerEncoderConfig
    sharding = blocks.SHARDING

    def build_graph(self, config):
        token_ids = blocks.token_input("token_ids")
        x, mask, _ = blocks.encode(token_ids, config, config.num_layers, config.max_length, "encoder")
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x, mask=mask)
        x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
        # BERT's small head init: start near uniform predictions, fine-tune gently.
        outputs = keras.layers.Dense(
            config.num_classes,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="head",
        )(x)
        return token_ids, outputs, {}

    @property
    def context_lengths(self):
        return {"token_ids": self.zoo_config.max_length}

    @property
    def task(self):
        return "text-classification"

    @classmethod
    def data_layout(cls, config):
        return "text-classifier"

    def example_batch(self, batch_size=2, seed=0, length=16):
        config = self.zoo_config
        rng = np.random.default_rng(seed)
        x = example_token_ids(rng, batch_size, min(length, config.max_length), config.vocab_size)
        y = rng.integers(0, config.num_classes, size=batch_size).astype("int32")
        return x, y

    def default_loss(self):
        return sparse_logits_loss()
