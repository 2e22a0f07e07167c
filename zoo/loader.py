"""`zoo.load`: a preset name or source -> a built keras.Model."""

import json
import zipfile
from pathlib import Path

from zoo import hub, presets, registry
from zoo.architectures import build
from zoo.errors import InvalidConfigError


def load(name, pretrained=True, num_classes=None, label_names=None, jit_compile="auto", **overrides):
    """Build the model of a preset, with its pretrained weights if it has any.

    Args:
        name: a preset name such as "transformer-small" (see `zoo.list_presets()`),
            or a source: a preset folder, a .tar.gz / .zip archive, `file://`,
            `https://` (optionally `#sha256=<hex>`), `hf://org/repo@revision` or
            `kaggle://handle`. Downloads are verified and cached (see `zoo.hub`).
            A `.keras` file saved from a zoo model (`model.save`) loads too,
            with Keras' safe mode.
        pretrained: load the weights when the preset has them; False gives a
            freshly initialised model of the same architecture.
        num_classes: a new number of output classes for classifier presets:
            the head starts fresh, every other pretrained weight is kept (the
            new layers are logged on the "zoo" logger).
        label_names: class names, one per output class (sets `num_classes`
            when that is not given). They travel with the model: into
            `model.predict_labels()`, evaluation reports and saved presets.
        jit_compile: "auto", True or False: compile predict / evaluate /
            train steps and `generate()` (XLA on TensorFlow, `jax.jit` on JAX,
            `torch.compile` on PyTorch, where generation stays eager). "auto"
            picks what measured fastest on this backend and device (see
            `zoo.backend.AUTO_JIT_COMPILE`); the choice is `model.jit_compile`.
            Under JAX, compiled programs are also cached in `<ZOO_HOME>/jax-cache`.
        **overrides: config keys to change, e.g. `dropout=0.0`; unknown keys
            or wrong types raise `zoo.InvalidConfigError` listing the allowed keys.

    Returns:
        A built `keras.Model` (a `zoo.architectures.base.ZooModel`).

    Example:
    >>> import zoo
    >>> model = zoo.load("dense-tiny", num_classes=3)
    >>> model.output_shape
    (None, 3)
    >>> zoo.load("dense-tiny", label_names=["cat", "dog"]).label_names
    ['cat', 'dog']
    >>> zoo.load("dense-tiny", jit_compile=False).jit_compile
    False
    """
    from zoo import backend  # imports Keras: `import zoo` must not

    label_names, num_classes = _check_labels(label_names, num_classes)
    backend.check_jit_compile(jit_compile)  # before any download or building
    backend.enable_compilation_cache()
    model = _load_model(name, pretrained, num_classes, overrides)
    backend.set_jit_compile(model, backend.resolve_jit_compile(jit_compile, model))
    if label_names is not None:
        model.preset_metadata["label_names"] = label_names
    elif num_classes is not None and len(model.label_names or ()) != num_classes:
        model.preset_metadata["label_names"] = None  # the old names describe the old head
    return model


def _check_labels(label_names, num_classes):
    if label_names is None:
        return None, num_classes
    label_names = [str(label) for label in label_names]
    if len(set(label_names)) != len(label_names) or not label_names:
        raise InvalidConfigError(f"label_names must be distinct and non-empty, got {label_names}.")
    if num_classes not in (None, len(label_names)):
        raise InvalidConfigError(
            f"num_classes={num_classes} but {len(label_names)} label_names were given; pass one or the other."
        )
    return label_names, len(label_names)


def _load_model(name, pretrained, num_classes, overrides):
    source = hub.parse_source(name)
    if source.kind == "keras-file":
        return _from_keras_file(source.location, pretrained, num_classes, overrides)
    if source.kind == "builtin":
        card = registry.info(name)
        model_name = card.name.replace("-", "_").replace(".", "_")
        if not (pretrained and card.pretrained):
            return build(card.family, card.config, num_classes=num_classes, name=model_name, **overrides)
        folder = hub.resolve_builtin(card)
    else:
        folder = hub.resolve(source)
        model_name = None
        if not pretrained:
            family, config = presets.read_config(folder)
            return build(family, config, num_classes=num_classes, **overrides)
    return presets.build_from_folder(folder, num_classes, name=model_name, **overrides)



def _from_keras_file(path, pretrained, num_classes, overrides):
    """A zoo model saved with `model.save("x.keras")`: loaded in Keras' safe
    mode (no code runs), then rebuilt like a preset when asked to change."""
    import keras

    from zoo.architectures.base import ZooModel
    from zoo.architectures.config import config_to_dict
    from zoo.errors import InvalidPresetError

    _import_family_of(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a file it cannot read
        raise InvalidPresetError(
            f"{path} could not be loaded as a Keras model file ({type(error).__name__}: {error})."
        ) from None
    if not isinstance(model, ZooModel):
        raise InvalidPresetError(
            f"{path} holds a {type(model).__name__}, not a zoo model; load it with "
            "keras.saving.load_model(path, safe_mode=True)."
        )
    if not pretrained:
        return build(model.family, config_to_dict(model.zoo_config), num_classes=num_classes, **overrides)
    return presets.rebuilt(model, num_classes, overrides, Path(path).name)


def _import_family_of(path):
    """Import the built-in family a .keras file names, so that Keras finds its
    class in a fresh process (zoo's classes register when their module is
    imported). Only modules of the zoo's own family table are imported, never
    a module the file names."""
    from zoo.architectures import BUILTIN_FAMILIES, get_family
    from zoo.errors import InvalidPresetError

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, OSError):
        raise InvalidPresetError(
            f"{path} is not a Keras model file (a zip holding config.json and the weights): save one "
            "with model.save(path), or give a preset folder."
        ) from None
    package, _, class_name = str(config.get("registered_name") if isinstance(config, dict) else "").partition(">")
    for family, target in BUILTIN_FAMILIES.items():
        if package == "zoo" and target.endswith(f":{class_name}"):
            get_family(family)
