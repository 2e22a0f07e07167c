"""LoRA adapters for zoo models, on Keras' own LoRA support.

Keras layers with projections (Dense, EinsumDense, the convolutions) carry
`enable_lora(rank)`: the kernel freezes and a low-rank update `A @ B` trains
beside it. This module picks the layers to adapt in a zoo model (every such
projection outside the head, which attention blocks are made of), saves and
loads the adapter weights alone, and merges them into a plain model.

An adapter file is an `.npz` of plain arrays (read with allow_pickle=False):
the low-rank matrices of each adapted layer, the head's weights (a fine-tuned
head is part of the adaptation), and a JSON header naming family and rank.
"""

import json
import tempfile
from pathlib import Path

import keras
import numpy as np

from zoo.errors import InvalidConfigError, InvalidPresetError

HEADER = "__zoo_lora__"
FORMAT_VERSION = 1
LORA_VARIABLES = ("lora_kernel_a", "lora_kernel_b")


def adaptable_layers(model):
    """`{path: layer}` of the projections LoRA adapts: Dense, EinsumDense and
    convolution layers anywhere inside `model`, except its head."""
    heads = set(model.head_layer_names)
    found = {}
    for top in model.layers:
        if top.name in heads:
            continue
        for layer in top._flatten_layers(include_self=True):
            if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) or _is_conv(layer):
                found[_relative_path(model, layer)] = layer
    return found


def enable_lora(model, rank, alpha=None):
    """Add rank-`rank` adapters to every adaptable layer of `model` and make
    them, with the head, the only trainable weights. Returns the adapted paths.

    Example:
    >>> import zoo
    >>> model = zoo.load("transformer-encoder-tiny")
    >>> paths = enable_lora(model, rank=4)
    >>> len(paths) > 0 and all(v.trainable == ("lora" in v.path or "head" in v.path)
    ...                        for v in model.variables)
    True
    """
    if not isinstance(rank, int) or rank < 1:
        raise InvalidConfigError(f"lora_rank must be a positive integer, got {rank!r}.")
    layers = adaptable_layers(model)
    if not layers:
        raise InvalidConfigError(
            f"{model.family} has no dense, attention or convolution projections outside its head for "
            "LoRA to adapt; fine-tune it with freeze= instead."
        )
    for layer in layers.values():
        if not layer.lora_enabled:
            layer.enable_lora(rank, lora_alpha=alpha)
    heads = set(model.head_layer_names)
    head_variables = {id(v) for name in heads for v in model.get_layer(name).weights}
    for variable in model.variables:
        variable.trainable = id(variable) in head_variables or _is_lora_variable(variable)
    return sorted(layers)


def lora_enabled(model):
    return any(layer.lora_enabled for layer in adaptable_layers(model).values())


def save_lora(model, path):
    """Write the adapter weights (and the head's) of a LoRA model to `path` (.npz).

    The file is small: rank x width per adapted projection, not the model.
    Load it into a model of the same preset with `load_lora`.

    Example:
    >>> import os, tempfile, zoo
    >>> model = zoo.load("transformer-encoder-tiny")
    >>> _ = enable_lora(model, rank=2)
    >>> path = save_lora(model, os.path.join(tempfile.mkdtemp(), "adapter.npz"))
    >>> other = zoo.load("transformer-encoder-tiny")
    >>> load_lora(other, path) == sorted(adaptable_layers(model))
    True
    """
    layers = {p: layer for p, layer in adaptable_layers(model).items() if layer.lora_enabled}
    if not layers:
        raise InvalidConfigError("This model has no LoRA adapters; fine-tune it with lora_rank= first.")
    arrays = {}
    for layer_path, layer in layers.items():
        for name in LORA_VARIABLES:
            arrays[f"{layer_path}/{name}"] = keras.ops.convert_to_numpy(getattr(layer, name))
    for head in model.head_layer_names:
        for variable in model.get_layer(head).weights:
            arrays[f"{_relative_path(model, variable)}"] = keras.ops.convert_to_numpy(variable)
    first = next(iter(layers.values()))
    header = {
        "format_version": FORMAT_VERSION,
        "family": model.family,
        "rank": int(first.lora_rank),
        "alpha": float(first.lora_alpha),
        "layers": sorted(layers),
    }
    arrays[HEADER] = np.array(json.dumps(header))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:  # np.savez would append ".npz" to other names
        np.savez(file, **arrays)
    return path


def load_lora(model, path):
    """Enable LoRA on `model` as recorded in the adapter file `path` and load
    its adapter and head weights. Returns the adapted layer paths."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    if HEADER not in arrays:
        raise InvalidPresetError(f"{path} is not a zoo LoRA adapter file (no {HEADER} header).")
    header = json.loads(str(arrays.pop(HEADER)))
    if header.get("family") != model.family:
        raise InvalidConfigError(
            f"{path} adapts a {header.get('family')} model; this one is {model.family}."
        )
    layers = adaptable_layers(model)
    missing = [p for p in header["layers"] if p not in layers]
    if missing:
        raise InvalidConfigError(
            f"{path} adapts layers this model does not have ({', '.join(missing[:3])}...): "
            "load the adapter into the preset it was trained on."
        )
    targets = {p: layers[p] for p in header["layers"]}
    for layer in targets.values():
        if not layer.lora_enabled:
            layer.enable_lora(header["rank"], lora_alpha=header["alpha"])
    variables = {f"{p}/{name}": getattr(layer, name) for p, layer in targets.items() for name in LORA_VARIABLES}
    for head in model.head_layer_names:
        variables.update({_relative_path(model, v): v for v in model.get_layer(head).weights})
    for key, value in arrays.items():
        variable = variables.get(key)
        if variable is None or tuple(variable.shape) != value.shape:
            wanted = None if variable is None else tuple(variable.shape)
            raise InvalidConfigError(
                f"{path}: {key} has shape {value.shape}, the model has {wanted}. If the head "
                "differs, load the model with num_classes= matching the adapter."
            )
        variable.assign(value)
    return sorted(targets)


def merge_lora(model):
    """A new model of the same config with the adapters folded into the
    kernels (`W + alpha / rank * A @ B`): same outputs, no LoRA layers, ready
    for `zoo.save_preset` (label names and tokenizer come along). Keras
    merges LoRA when it saves weights, so this
    saves to a temporary file and loads that into a fresh model.
    """
    from zoo.architectures import build
    from zoo.architectures.config import config_to_dict

    merged = build(model.family, config_to_dict(model.zoo_config), name=model.name)
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "merged.weights.h5"
        model.save_weights(weights)
        merged.load_weights(weights)
    merged.preset_metadata = dict(model.preset_metadata)
    merged.tokenizer = model.tokenizer
    return merged


def _is_conv(layer):
    return isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D))


def _is_lora_variable(variable):
    return variable.path.rsplit("/", 1)[-1] in LORA_VARIABLES


def _relative_path(model, item):
    """A layer's or variable's path without the model's own name, so that
    adapters fit the same preset loaded under any model name."""
    prefix = model.name + "/"
    return item.path[len(prefix):] if item.path.startswith(prefix) else item.path
