"""`cnn`: a convolutional image classifier for any HxWxC input."""

import dataclasses
import math

import keras
import numpy as np

from zoo.architectures.base import ZooModel, sparse_logits_loss
from zoo.architectures.config import Fraction, PositiveInt
from zoo.kernels import conv as conv_kernels
from zoo.layers import BatchNormalization


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    input_shape: tuple[PositiveInt, ...] = (32, 32, 3)
    """Height, width, channels. Pixel values are expected in [0, 1]."""
    stage_filters: tuple[PositiveInt, ...] = (32, 64, 128)
    """Filters of each stage; every stage after the first halves the resolution."""
    blocks_per_stage: PositiveInt = 1
    residual: bool = True
    """Residual (ResNet "basic") blocks; False gives a plain conv stack."""
    kernel_size: PositiveInt = 3
    dropout: Fraction = 0.1
    norm_momentum: Fraction = 0.9
    """Batch-norm moving-average momentum. Lower than Keras' 0.99 so that the
    inference statistics settle within the few hundred steps of a small fine-tune."""
    num_classes: PositiveInt = 10

    def __post_init__(self):
        if len(self.input_shape) != 3:
            raise ValueError(f"input_shape must be [height, width, channels], got {list(self.input_shape)}")
        if not self.stage_filters:
            raise ValueError("stage_filters must list at least one stage")

    def weight_count(self):
        """Weights of the built model, computed from the config alone (see `_block`)."""
        def conv_bn(kernel, inputs, filters):  # a bias-free convolution, then batch norm's 4 per channel
            return kernel * kernel * inputs * filters + 4 * filters

        k, channels = self.kernel_size, self.input_shape[2]
        count = conv_bn(k, channels, self.stage_filters[0])
        width = self.stage_filters[0]
        for stage, filters in enumerate(self.stage_filters):
            # Arithmetic, not a loop over blocks: the count must be cheap for any config.
            later_blocks = self.blocks_per_stage - 1
            if not self.residual:
                count += conv_bn(k, width, filters) + later_blocks * conv_bn(k, filters, filters)
            else:
                if stage > 0 or width != filters:  # the first block's shortcut projection
                    count += conv_bn(1, width, filters)
                count += conv_bn(k, width, filters) + conv_bn(k, filters, filters)
                count += later_blocks * 2 * conv_bn(k, filters, filters)
            width = filters
        return count + width * self.num_classes + self.num_classes

    def largest_activation(self, length=None):
        """Floats in the largest feature map of one image (each stage halves the resolution)."""
        height, width, channels = self.input_shape
        maps = [height * width * max(channels, self.stage_filters[0])]
        for stage, filters in enumerate(self.stage_filters):
            maps.append(math.ceil(height / 2**stage) * math.ceil(width / 2**stage) * filters)
        return max(maps)


@keras.saving.register_keras_serializable(package="zoo")
class CNNClassifier(ZooModel):
    """Stem conv, stages of (residual) conv blocks with batch norm, global pooling, head.

    Outputs logits of shape `(batch, num_classes)`.

    Example:
    >>> model = CNNClassifier(input_shape=[8, 8, 1], stage_filters=[4, 8], num_classes=3)
    >>> model.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0).shape
    (2, 3)
    """

    family = "cnn"
    Config = CNNConfig
    # Convolutions split by output channel.
    sharding = {r".*_conv/kernel": (None, None, None, "model")}

    def build_graph(self, config):
        # Inputs are NHWC; inside, the model computes in the layout fastest on
        # this backend (weights are the same in either).
        layout = _Layout(conv_kernels.image_data_format(), conv_kernels.enabled())
        images = keras.Input(config.input_shape, name="images")
        x = images
        if layout.data_format == "channels_first":
            x = keras.layers.Permute((3, 1, 2), name="to_channels_first")(x)
        x = _conv_bn(x, config.stage_filters[0], config.kernel_size, 1, "stem", config, layout)
        for stage, filters in enumerate(config.stage_filters):
            for block in range(config.blocks_per_stage):
                strides = 2 if stage > 0 and block == 0 else 1
                x = _block(x, filters, config, layout, strides, f"stage{stage}_block{block}")
        x = keras.layers.GlobalAveragePooling2D(data_format=layout.data_format, name="pool")(x)
        x = keras.layers.Dropout(config.dropout, name="dropout")(x)
        outputs = keras.layers.Dense(config.num_classes, name="head")(x)
        return images, outputs, {}

    @property
    def task(self):
        return "image-classification"

    @classmethod
    def data_layout(cls, config):
        return "images"

    def example_batch(self, batch_size=2, seed=0):
        config = self.zoo_config
        rng = np.random.default_rng(seed)
        x = rng.uniform(size=(batch_size, *config.input_shape)).astype("float32")
        y = rng.integers(0, config.num_classes, size=batch_size).astype("int32")
        return x, y

    def default_loss(self):
        return sparse_logits_loss()


@dataclasses.dataclass(frozen=True)
class _Layout:
    data_format: str
    fused_batch_norm: bool

    @property
    def channel_axis(self):
        return 1 if self.data_format == "channels_first" else -1


def _conv_bn(x, filters, kernel_size, strides, name, config, layout, activation=True):
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        data_format=layout.data_format,
        use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = BatchNormalization(
        axis=layout.channel_axis,
        momentum=config.norm_momentum,
        use_fast_path=layout.fused_batch_norm,
        name=f"{name}_bn",
    )(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x) if activation else x


def _block(x, filters, config, layout, strides, name):
    if not config.residual:
        return _conv_bn(x, filters, config.kernel_size, strides, name, config, layout)
    shortcut = x
    if strides != 1 or x.shape[layout.channel_axis] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_shortcut", config, layout, activation=False)
    x = _conv_bn(x, filters, config.kernel_size, strides, f"{name}_a", config, layout)
    x = _conv_bn(x, filters, config.kernel_size, 1, f"{name}_b", config, layout, activation=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{name}_out")(x)
