"""Preset folders and models, both ways: build the model of a verified
folder and load its weights, metadata and tokenizer (`build_from_folder`),
or save a model as a preset folder (`save_preset`).
"""

import contextlib
import datetime
import gc
import logging
import shutil
import warnings
from pathlib import Path

from zoo.errors import InvalidConfigError, InvalidPresetError
from zoo.hub import folder_format
from zoo.runtime import scratch
from zoo.version import __version__

logger = logging.getLogger("zoo")


def save_preset(model, folder, *, assets=None, overwrite=False, **metadata):
    """Write `model` as a preset folder that `zoo.load(folder)` reads back.

    Args:
        model: a zoo model (from `zoo.load` or a family class); its tokenizer,
            if it has one, is saved in `assets/tokenizer/`.
        folder: where to write; created atomically (written beside it, then renamed).
        assets: optional `{name: path}` of files to ship in `assets/`.
        overwrite: replace an existing folder.
        **metadata: JSON-serialisable facts to record, e.g. `dataset="digits"`,
            `metrics={"accuracy": 0.97}`, `label_names=[...]`, `license="MIT"`.

    Example:
    >>> import tempfile, zoo
    >>> model = zoo.load("dense-tiny")
    >>> folder = zoo.save_preset(model, tempfile.mkdtemp() + "/my-dense", dataset="example")
    >>> zoo.load(folder).count_params() == model.count_params()
    True
    """
    import keras

    from zoo.architectures.base import ZooModel
    from zoo.architectures.config import config_to_dict

    if not isinstance(model, ZooModel):
        raise TypeError(
            f"save_preset() takes a zoo model (from zoo.load or a zoo family class), "
            f"not {type(model).__name__}; save other Keras models with model.save()."
        )
    folder = Path(folder)
    folder_format.check_writable_folder(folder, overwrite, hint="pass overwrite=True to replace it")
    folder_format.check_json("metadata", metadata)

    with scratch.removed_afterwards(scratch.beside(folder)) as staging:
        staging.mkdir(parents=True)
        folder_format.write_json(staging / folder_format.CONFIG_FILE, folder_format.config_json(
            model.family, config_to_dict(model.zoo_config), quantization_mode(model)))
        save_model_weights(model, staging / folder_format.WEIGHTS_FILE)
        for name, source in (assets or {}).items():
            target = staging / folder_format.ASSETS_DIR / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        if model.tokenizer is not None:
            from zoo.data import tokenizers

            tokenizers.save_tokenizer(model.tokenizer, staging / folder_format.TOKENIZER_DIR)
        folder_format.write_json(staging / folder_format.METADATA_FILE, {
            **folder_format.METADATA_DEFAULTS,
            **_carried_metadata(model),
            "zoo_version": __version__,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "params": int(model.count_params()),
            **metadata,
        })
        folder_format.write_manifest(staging)
        folder_format.replace_folder(staging, folder)
    return folder


def save_model_weights(model, path):
    """The model's own weights, without the optimizer state (Adam's two
    moments: twice the model's size) that Keras saves with a compiled model."""
    from zoo.architectures import build
    from zoo.architectures.config import config_to_dict

    if getattr(model, "optimizer", None) is None:
        model.save_weights(path)
        return
    bare = build(model.family, config_to_dict(model.zoo_config), name=model.name)
    if quantization_mode(model) is not None:
        quantize_layers(bare, quantization_mode(model))
    weights = model.get_weights()
    if len(weights) != len(bare.weights):  # extra variables (LoRA adapters): save them as they are
        model.save_weights(path)
        return
    bare.set_weights(weights)
    bare.save_weights(path)


def check_label_names(metadata, model, path):
    """The metadata's label_names, if any, must name each output class once."""
    names = metadata.get("label_names")
    if names is None:
        return
    classes = model.output_shape[-1] if "classification" in model.task else None
    if not (isinstance(names, list) and all(isinstance(name, str) for name in names)
            and len(set(names)) == len(names) == classes):
        raise InvalidPresetError(
            f"{path}: label_names must be {classes} distinct strings, one per output class of the "
            f"model, got {names!r}."
        )


def build_from_folder(folder, num_classes=None, name=None, **overrides):
    """Build the model of a verified preset folder and load its weights.

    `folder` is one `zoo.hub.resolving.resolve` returned: checked against its manifest.
    Only the files the manifest lists are read. With `num_classes` or config
    overrides the model is rebuilt to the new config and keeps every
    pretrained weight whose shape still fits; the layers that start fresh (a
    new head) are logged on the "zoo" logger.
    """
    from zoo.architectures import build

    folder = Path(folder)
    files = folder_format.read_manifest(folder)
    family, config = folder_format.read_config(folder)
    quantization = folder_format.read_quantization(folder)
    check_weights_file(folder / folder_format.WEIGHTS_FILE, family, config, quantization)
    model = build(family, config, name=name)
    if quantization is not None:
        if num_classes is not None or overrides:
            raise InvalidConfigError(
                f"{folder} holds a {quantization}-quantized model, which cannot be rebuilt with a new head or "
                "config: change the float preset it was quantized from, then quantize that (zoo.quantize)."
            )
        quantize_layers(model, quantization)  # the quantized layers' variables, for the weights file to fill
    load_weights_file(model, folder / folder_format.WEIGHTS_FILE)
    metadata = folder_format.read_metadata(folder) if folder_format.METADATA_FILE in files else {}
    check_label_names(metadata, model, folder / folder_format.METADATA_FILE)
    model = rebuilt(model, num_classes, overrides, folder.name)
    model.preset_metadata = metadata
    model.tokenizer = read_tokenizer(folder, files)
    return model


def read_tokenizer(folder, files):
    """The tokenizer in `assets/tokenizer/` when the manifest `files` list it, else None."""
    listed = {name.removeprefix(folder_format.TOKENIZER_DIR + "/") for name in files if name.startswith(folder_format.TOKENIZER_DIR + "/")}
    if not listed:
        return None

    from zoo.data import tokenizers

    return tokenizers.load_tokenizer(Path(folder) / folder_format.TOKENIZER_DIR, listed=listed)


# The fewest bytes a weight can take in a weights file: float32, or quantized
# (layers Keras does not quantize stay float32, so this is a lower bound).
_BYTES_PER_WEIGHT = {None: 4, "int8": 1, "float8": 1, "int4": 0.5}


def check_weights_file(path, family, config, quantization=None):
    """Refuse a weights file too small to hold the weights `config` describes,
    before the model is built: config and weights must belong together, and a
    hostile config must not make the backend allocate what the file cannot fill."""
    from zoo.architectures import config_of

    family_config = config_of(family, config)
    if not hasattr(family_config, "weight_count"):
        return  # a registered family that does not say its size
    count = family_config.weight_count()
    needed = int(_BYTES_PER_WEIGHT[quantization] * count)
    size = Path(path).stat().st_size
    if size < needed:
        kind = f"{quantization} (or float32)" if quantization else "float32"
        raise InvalidPresetError(
            f"{path} holds {size:,} bytes, but config.json describes {count:,} {kind} weights "
            f"(at least {needed:,} bytes): the files do not belong together, or the weights file is cut "
            "short. Fetch the preset again."
        )


def quantize_layers(model, mode):
    """Keras' `model.quantize(mode)`, in place, without its warning for every
    layer it leaves float (pooling, dropout, normalizations: expected)."""
    with warnings.catch_warnings(), garbage_collection_of_new_objects_only():
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        model.quantize(mode)


@contextlib.contextmanager
def garbage_collection_of_new_objects_only():
    """Inside the block, full garbage collections skip the objects alive
    before it (`gc.freeze`). Keras runs one each time a layer drops a
    variable (to hand device memory back at once): when quantizing, once per
    layer, each costing ~0.2 s in a process that holds many objects (7 s for
    transformer-tiny, minutes for a base model). Where the program froze
    objects itself, nothing changes: unfreezing would undo its choice."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def quantization_mode(model):
    """The quantization mode of `model`'s layers ("int8", "int4", "float8"),
    None for a float model. Models quantized with Keras' own `model.quantize`
    count too.

    Example:
    >>> import zoo
    >>> quantization_mode(zoo.load("dense-tiny")) is None
    True
    """
    modes = {layer.quantization_mode for layer in model._flatten_layers(include_self=False, recursive=True)
             if getattr(layer, "quantization_mode", None)}
    if len(modes) > 1:
        raise InvalidPresetError(f"{model.name} mixes quantization modes ({', '.join(sorted(modes))}): a preset "
                                 "records one; quantize the float model once.")
    return next(iter(modes), None)


def load_weights_file(model, path):
    """`model.load_weights(path)`, with an error that names the file when it
    is not a Keras weights file of this architecture, or holds NaN or
    infinite weights (a model that can only answer NaN, or on TensorFlow a
    constant, is refused before anyone trusts its predictions)."""
    import keras
    import numpy as np

    try:
        with warnings.catch_warnings():  # Keras warns, then raises, about what did not load
            warnings.simplefilter("ignore")
            model.load_weights(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        reason = " ".join(str(error).split())[:400] or type(error).__name__
        raise InvalidPresetError(
            f"{path} could not be loaded as the weights of this preset ({reason}). The file is "
            "damaged or does not belong to config.json; fetch the preset again."
        ) from None
    broken = [variable.path for variable in model.weights
              if not np.isfinite(keras.ops.convert_to_numpy(variable)).all()]
    if broken:
        raise InvalidPresetError(
            f"{path} holds NaN or infinite weights ({', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''}): "
            "the model could only predict nonsense. Fetch the preset again, or retrain it."
        )


def rebuilt(model, num_classes, overrides, label):
    """`model` built again with a new `num_classes` or config `overrides`,
    keeping every weight whose shape still fits (the layers that start fresh,
    such as a new head, are logged on the "zoo" logger); `model` itself when
    nothing changes."""
    from zoo.architectures import build
    from zoo.architectures.config import config_to_dict

    if num_classes is None and not overrides:
        return model
    changed = build(model.family, config_to_dict(model.zoo_config), num_classes=num_classes,
                    name=model.name, **overrides)
    fresh = copy_matching_weights(model, changed)
    if fresh:
        logger.warning(
            "%s: new layers, randomly initialised (not in the preset or of another shape): %s. "
            "Every other layer keeps its pretrained weights; fine-tune before use (zoo.finetune).",
            label, "; ".join(fresh),
        )
    return changed


def copy_matching_weights(source, target):
    """Copy each layer's weights from `source` to the same-named layer of
    `target` where every shape matches; describe the layers left as they were."""
    fresh = []
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            weights = source.get_layer(layer.name).get_weights()
        except ValueError:  # no such layer in the source model
            fresh.append(f"{layer.name} (new)")
            continue
        shapes = [tuple(w.shape) for w in layer.weights]
        if [tuple(w.shape) for w in weights] != shapes:
            before = ", ".join(str(tuple(w.shape)) for w in weights)
            fresh.append(f"{layer.name} ({before} -> {', '.join(map(str, shapes))})")
            continue
        layer.set_weights(weights)
    return fresh


def _carried_metadata(model):
    """What a model's own preset metadata passes on to a preset saved from it:
    the facts about its outputs, not the provenance of the folder it came from."""
    carried = {}
    metadata = getattr(model, "preset_metadata", None) or {}
    for key in ("label_names", "license"):
        if metadata.get(key) is not None:
            carried[key] = metadata[key]
    return carried
