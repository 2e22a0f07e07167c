"""Model families: one module each, found by name without importing Keras.

A family is a `zoo.architectures.base.ZooModel` subclass. The built-in ones are
listed here by import path so that `import zoo`, `zoo list` and `zoo info` stay
fast and never import a backend; the class is imported the first time a model
of that family is built.
"""

import importlib

from zoo.errors import FamilyNotFoundError

BUILTIN_FAMILIES = {
    "dense": "zoo.architectures.dense:DenseModel",
    "cnn": "zoo.architectures.cnn:CNNClassifier",
    "lstm": "zoo.architectures.lstm:LSTMModel",
    "transformer-encoder": "zoo.architectures.transformer_encoder:TransformerEncoderClassifier",
    "transformer-decoder": "zoo.architectures.transformer_decoder:TransformerDecoderLM",
    "transformer": "zoo.architectures.transformer:TransformerSeq2Seq",
}

_registered = {}


def family_names():
    """Names of every family, built in or registered.

    Example:
    >>> {"dense", "cnn", "lstm", "transformer"} <= set(family_names())
    True
    """
    return sorted({**BUILTIN_FAMILIES, **_registered})


def get_family(name):
    """The model class of family `name` (imports Keras on first use)."""
    if name in _registered:
        return _registered[name]
    if name not in BUILTIN_FAMILIES:
        raise FamilyNotFoundError(name, family_names())
    module_name, class_name = BUILTIN_FAMILIES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def config_of(family, config):
    """The checked config dataclass of `family` for a config dict, without building.

    Example:
    >>> config_of("dense", {"hidden_units": [8]}).weight_count()  # 30 features -> 8 -> 2 classes
    327
    """
    from zoo.architectures.config import make_config

    model_class = get_family(family)
    return make_config(model_class.Config, config, family=model_class.family)


def build(family, config, *, num_classes=None, name=None, **overrides):
    """Build a model of `family` from a config dict plus overrides."""
    model_class = get_family(family)
    config = {**config, **overrides}
    if num_classes is not None:
        config = model_class.config_with_classes(config, num_classes)
    return model_class(name=name, **config)  # ZooModel names unnamed models after their family


def register_family(model_class, *, overwrite=False):
    """Make a `ZooModel` subclass available to presets under `model_class.family`.

    Example:
    >>> import dataclasses, keras
    >>> from zoo.architectures.base import ZooModel
    >>> @dataclasses.dataclass(frozen=True)
    ... class TinyConfig:
    ...     width: int = 4
    >>> @keras.saving.register_keras_serializable(package="my_project")
    ... class Tiny(ZooModel):
    ...     family, Config = "tiny-mlp", TinyConfig
    ...     def build_graph(self, config):
    ...         x = keras.Input((3,))
    ...         return x, keras.layers.Dense(config.width)(x), {}
    >>> register_family(Tiny)
    >>> get_family("tiny-mlp") is Tiny
    True
    """
    name = getattr(model_class, "family", None)
    if not isinstance(name, str) or getattr(model_class, "Config", None) is None:
        raise TypeError(
            "register_family() takes a ZooModel subclass with a `family` name "
            "and a `Config` dataclass."
        )
    if not overwrite and (name in BUILTIN_FAMILIES or name in _registered):
        raise ValueError(f"Family {name!r} exists already; pass overwrite=True to replace it.")
    _registered[name] = model_class
