"""Checkpoints of other ecosystems, converted into zoo families.

A transformers checkpoint (config.json with a `model_type`, safetensors
weights, tokenizer files) becomes an ordinary zoo preset folder: one module
per model type gives (1) `family_config(hf_config)`, the family and config,
refusing what the family cannot honour, (2) `weight_map(config, names)`,
`{zoo variable path: From(checkpoint tensor, transform)}`, and (3) the
tensors it knowingly leaves unread (`IGNORED`). The tokenizer comes from
zoo/data/checkpoint_tokenizers.py. Neither torch nor transformers is needed.

Example:
>>> sorted(MODEL_TYPES)
['bert', 'distilbert', 'gpt2', 'roberta']
"""

import importlib
import logging

from zoo.errors import InvalidPresetError
from zoo.hub.checkpoints.reading import is_checkpoint_folder, read_checkpoint_config

logger = logging.getLogger("zoo")
MODEL_TYPES = {
    "gpt2": "zoo.hub.checkpoints.gpt2",
    "bert": "zoo.hub.checkpoints.bert",
    "roberta": "zoo.hub.checkpoints.roberta",
    "distilbert": "zoo.hub.checkpoints.distilbert",
}
__all__ = ["MODEL_TYPES", "convert", "converter", "is_checkpoint_folder", "read_checkpoint_config"]


def converter(model_type):
    """The converter module of a transformers `model_type`."""
    if model_type not in MODEL_TYPES:
        raise InvalidPresetError(
            f"The zoo cannot convert transformers checkpoints of model_type {model_type!r}; it converts "
            f"{', '.join(sorted(MODEL_TYPES))}."
        )
    return importlib.import_module(MODEL_TYPES[model_type])


def convert(folder, destination, *, source=None):
    """Convert the transformers checkpoint in `folder` into a zoo preset
    folder at `destination` (written atomically); returns its path.

    `source` (e.g. "hf://org/name@rev") is recorded in the preset metadata.
    """
    from zoo.architectures import build
    from zoo.hub import models
    from zoo.hub.checkpoints import mapping
    from zoo.hub.checkpoints.reading import CheckpointTensors

    hf_config = read_checkpoint_config(folder)
    module = converter(hf_config["model_type"])
    family, config = module.family_config(hf_config)
    tensors = CheckpointTensors(folder)
    model = build(family, config, name=hf_config["model_type"])
    mapping.assign(model, module.weight_map(config, tensors.names()), tensors, module.IGNORED)
    model.tokenizer = read_tokenizer(folder, hf_config["model_type"])
    metadata = checkpoint_metadata(hf_config, source)
    metadata["converted_from"]["head_is_new"] = bool(getattr(module, "has_no_head", lambda hf: False)(hf_config))
    return models.save_preset(model, destination, overwrite=True, **metadata)


def read_tokenizer(folder, model_type):
    from zoo.data.checkpoint_tokenizers import read_checkpoint_tokenizer

    tokenizer = read_checkpoint_tokenizer(folder, model_type)
    if tokenizer is None:
        logger.warning("%s has no tokenizer files: the converted model takes token ids only.", folder)
    return tokenizer


def checkpoint_metadata(hf_config, source):
    """What the preset records of the checkpoint it came from."""
    metadata = {"converted_from": {"model_type": hf_config["model_type"],
                                   "architectures": hf_config.get("architectures") or [],
                                   "source": source}}
    labels = hf_config.get("id2label") or {}
    names = [labels[key] for key in sorted(labels, key=int)] if labels else []
    if names and names != [f"LABEL_{index}" for index in range(len(names))]:
        metadata["label_names"] = names
    return metadata

