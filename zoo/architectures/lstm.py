"""`lstm`: a stack of (bi)LSTM layers over token ids or feature sequences."""

import dataclasses
from typing import Literal

import keras
import numpy as np

from zoo import layers as zoo_layers
from zoo.architectures.base import ZooModel, example_token_ids, sparse_logits_loss, token_logits_loss
from zoo.data.arrays import next_token_targets
from zoo.architectures.config import Fraction, NonNegativeInt, PositiveInt

TASK_NAMES = {
    "classification": "sequence-classification",
    "language_model": "language-modelling",
    "forecast": "forecasting",
}


@dataclasses.dataclass(frozen=True)
class LSTMConfig:
    vocab_size: NonNegativeInt = 8192
    """Token vocabulary (id 0 is padding). 0 means the input is a feature sequence."""
    num_features: NonNegativeInt = 0
    """Features per step when vocab_size is 0; all-zero steps count as padding."""
    embedding_dim: PositiveInt = 128
    units: tuple[PositiveInt, ...] = (256,)
    """Units of each LSTM layer, bottom first."""
    bidirectional: bool = True
    dropout: Fraction = 0.1
    task: Literal["classification", "language_model", "forecast"] = "classification"
    """classification: one label per sequence; language_model: next token at every
    step; forecast: `num_targets` values at every step."""
    num_classes: PositiveInt = 2
    num_targets: PositiveInt = 1

    def __post_init__(self):
        if not self.units:
            raise ValueError("units must list at least one layer width")
        if self.vocab_size == 1:
            raise ValueError("vocab_size must be 0 (feature input) or >= 2 (id 0 is padding)")
        if self.vocab_size == 0 and self.num_features < 1:
            raise ValueError("set vocab_size for token input, or num_features >= 1 for feature input")
        if self.task != "classification" and self.bidirectional:
            raise ValueError(f"task {self.task!r} predicts every step from the past only; set bidirectional=False")
        if self.task == "language_model" and self.vocab_size == 0:
            raise ValueError("task 'language_model' needs token input (vocab_size > 0)")

    @property
    def output_width(self):
        return {"classification": self.num_classes, "language_model": self.vocab_size,
                "forecast": self.num_targets}[self.task]

    def weight_count(self):
        """Weights of the built model, computed from the config alone."""
        directions = 2 if self.bidirectional else 1
        count = self.vocab_size * self.embedding_dim
        width = self.embedding_dim if self.vocab_size else self.num_features
        for units in self.units:  # four gates, each over the input and the state, plus a bias
            count += directions * 4 * units * (width + units + 1)
            width = directions * units
        return count + width * self.output_width + self.output_width

    def largest_activation(self, length=None):
        """Floats in the largest tensor of one example of `length` steps (one
        step by default: the length is free)."""
        directions = 2 if self.bidirectional else 1
        per_step = max(self.embedding_dim, self.num_features, self.output_width,
                       *(directions * 4 * units for units in self.units))
        return per_step * (length or 1)


@keras.saving.register_keras_serializable(package="zoo")
class LSTMModel(ZooModel):
    """Embedding (or feature masking), stacked LSTMs, then a sequence or per-step head.

    Padding (token id 0, or an all-zero feature step) is masked, so padded steps
    never change the outputs of real steps.

    Example:
    >>> model = LSTMModel(vocab_size=50, embedding_dim=8, units=[8], num_classes=3)
    >>> model.predict(np.array([[4, 9, 2, 0]]), verbose=0).shape
    (1, 3)
    """

    family = "lstm"
    sequence_inputs = True
    Config = LSTMConfig
    # Embedding split by feature; LSTM kernels by gate unit.
    sharding = {
        r"embedding/embeddings": (None, "model"),
        r".*lstm_cell/(recurrent_)?kernel": (None, "model"),
        r".*lstm_cell/bias": ("model",),
    }

    def build_graph(self, config):
        if config.vocab_size:
            inputs = keras.Input((None,), dtype="int32", name="token_ids")
            x = keras.layers.Embedding(
                config.vocab_size, config.embedding_dim, mask_zero=True, name="embedding"
            )(inputs)
        else:
            inputs = keras.Input((None, config.num_features), name="features")
            x = keras.layers.Masking(0.0, name="masking")(inputs)
        per_step = config.task != "classification"
        for index, units in enumerate(config.units):
            last = index == len(config.units) - 1
            lstm = zoo_layers.LSTM(
                units, return_sequences=per_step or not last, name=f"lstm_{index}"
            )
            if config.bidirectional:
                lstm = zoo_layers.Bidirectional(lstm, name=f"bidirectional_{index}")
            x = lstm(x)
            x = keras.layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
        outputs = keras.layers.Dense(config.output_width, name="head")(x)
        return inputs, outputs, {}

    @property
    def task(self):
        return TASK_NAMES[self.zoo_config.task]

    @classmethod
    def data_layout(cls, config):
        if not config.get("vocab_size"):
            return "feature-sequences"
        return "language-model" if config.get("task") == "language_model" else "text-classifier"

    def example_batch(self, batch_size=2, seed=0, length=12):
        config = self.zoo_config
        rng = np.random.default_rng(seed)
        if config.vocab_size:
            x = example_token_ids(rng, batch_size, length, config.vocab_size)
        else:
            x = rng.normal(size=(batch_size, length, config.num_features)).astype("float32")
        if config.task == "classification":
            y = rng.integers(0, config.num_classes, size=batch_size).astype("int32")
        elif config.task == "language_model":
            y = next_token_targets(x)
        else:
            y = rng.normal(size=(batch_size, length, config.num_targets)).astype("float32")
        return x, y

    def default_loss(self):
        if self.zoo_config.task == "forecast":
            return keras.losses.MeanSquaredError()
        if self.zoo_config.task == "language_model":
            return token_logits_loss()
        return sparse_logits_loss()
