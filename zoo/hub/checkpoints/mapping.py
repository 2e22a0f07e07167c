"""The pieces every converter is made of: reading config values (refusing
what the zoo cannot honour), and a declarative weight map, `{zoo variable
path: From(checkpoint tensor, transform)}`, applied to a built model."""

import dataclasses
import logging
import re

import numpy as np

from zoo.errors import InvalidPresetError

logger = logging.getLogger("zoo")
REQUIRED = object()
NEW = None
"""A weight map's value for a zoo weight that starts freshly initialised
(the new head of a bare checkpoint)."""


def value(hf_config, *keys, default=REQUIRED):
    """The first of `keys` that config.json sets (transformers renamed some
    keys over the years, and version 5 stopped writing a few)."""
    for key in keys:
        if hf_config.get(key) is not None:
            return hf_config[key]
    if default is REQUIRED:
        raise InvalidPresetError(
            f"This {hf_config.get('model_type')} config.json has no {' or '.join(map(repr, keys))}, "
            "which the conversion needs; is it a complete transformers config?"
        )
    return default


def require(hf_config, key, allowed, default, what):
    """Refuse a config value the zoo's family cannot honour (nothing is
    silently ignored); `allowed` lists the values it can."""
    found = hf_config.get(key, default)
    if found not in allowed:
        raise InvalidPresetError(
            f"This {hf_config.get('model_type')} checkpoint sets {key}={found!r}, which the zoo's "
            f"conversion cannot honour ({what}); supported: {', '.join(map(repr, allowed))}."
        )
    return found


def one_dropout(hf_config, *keys):
    """The single dropout rate of a zoo block, from a checkpoint that may set
    several (they only matter in training; a difference is said, not hidden)."""
    rates = {key: float(hf_config.get(key) or 0.0) for key in keys}
    chosen = rates[keys[0]]
    differing = {key: rate for key, rate in rates.items() if rate != chosen}
    if differing:
        logger.warning("The zoo's blocks use one dropout rate: %s=%s is used, also for %s.",
                       keys[0], chosen, ", ".join(f"{key} ({rate})" for key, rate in differing.items()))
    return chosen


def base_prefix(names, candidates):
    """The prefix the checkpoint's backbone tensors carry ("bert." in a
    BertForMaskedLM, "" in a bare BertModel)."""
    for prefix in candidates:
        if any(name.startswith(prefix) for name in names) and prefix:
            return prefix
    return ""


@dataclasses.dataclass(frozen=True)
class From:
    """Where one zoo weight comes from: a checkpoint tensor, transposed when
    it is a torch Linear weight (out, in), cut to one of `parts` equal slices
    of its last axis (GPT-2's fused query/key/value), without its first
    `skip_rows` rows (RoBERTa's position offset); then reshaped to the zoo
    weight (heads split out), which must hold exactly as many numbers."""

    name: str
    transpose: bool = False
    part: int = 0
    parts: int = 1
    skip_rows: int = 0

    def array(self, tensors):
        array = np.asarray(tensors[self.name], dtype="float32")
        if self.parts > 1:
            array = np.split(array, self.parts, axis=-1)[self.part]
        if self.transpose:
            array = array.T
        return array[self.skip_rows:]


def linear(name):
    """A torch Linear layer's weight and bias, for a Keras Dense / attention projection."""
    return {"kernel": From(f"{name}.weight", transpose=True), "bias": From(f"{name}.bias")}


def layer_norm(name):
    return {"gamma": From(f"{name}.weight"), "beta": From(f"{name}.bias")}


def new_layer(zoo_name, *variables):
    return {f"{zoo_name}/{variable}": NEW for variable in variables}


def layer(zoo_name, parts):
    """`{zoo variable path: From}` of a zoo layer whose variables `parts` names."""
    return {f"{zoo_name}/{variable}": source for variable, source in parts.items()}


def assign(model, weight_map, tensors, ignored=()):
    """Set every weight of `model` from `tensors` by `weight_map`. Refuses a
    zoo weight the map does not cover, a tensor missing from the checkpoint
    or of another size, and a checkpoint tensor nothing reads unless it
    matches an `ignored` pattern (tied copies, heads the zoo drops)."""
    for variable in model.weights:
        if variable.path not in weight_map:
            raise InvalidPresetError(f"The conversion has no checkpoint tensor for the zoo weight {variable.path}.")
        source = weight_map[variable.path]
        if source is NEW:
            continue
        if source.name not in tensors:
            raise InvalidPresetError(
                f"The checkpoint has no tensor {source.name!r} (for {variable.path}); it does not match its "
                "config.json, or is not the architecture its config names."
            )
        array = source.array(tensors)
        if array.size != int(np.prod(variable.shape)):
            raise InvalidPresetError(
                f"Checkpoint tensor {source.name!r} has shape {tuple(array.shape)}, which does not fit the zoo "
                f"weight {variable.path} {tuple(variable.shape)}: the weights and config.json disagree."
            )
        variable.assign(array.reshape(variable.shape))
    unread = sorted(name for name in tensors.names() - tensors.read
                    if not any(re.fullmatch(pattern, name) for pattern in ignored))
    if unread:
        raise InvalidPresetError(
            f"The checkpoint holds {len(unread)} tensor(s) the zoo's model would not use, e.g. "
            f"{', '.join(unread[:5])}: it is a variant this conversion does not support."
        )
