"""`zoo.load`: a preset name or source -> a built keras.Model, on one path:

    locate(name)        the card, or the source's verified folder (hashed
                        once), with its family and config: nothing built yet
    build_located(...)  the model, its weights, metadata and tokenizer, then
                        jit_compile and label names

The command line takes the same path: `zoo finetune` locates the preset first
(its family, config and tokenizer shape the user's data), then builds it.
"""

import dataclasses
import json
import zipfile
from pathlib import Path

from zoo import architectures, registry
from zoo.errors import InvalidConfigError
from zoo.hub import folder_format, models, resolving, sources
from zoo.runtime.options import check_jit_compile


@dataclasses.dataclass(frozen=True)
class LocatedPreset:
    """A preset found (and its files verified) but not built."""

    family: str
    config: dict
    folder: Path | None = None  # the verified folder whose weights load; None: fresh weights
    model_name: str | None = None  # what to name the built model (None: after its family)
    keras_model: object = None  # a zoo model read from a .keras file, used as it is
    label: str | None = None  # how logs name the preset

    @property
    def pretrained(self):
        return self.folder is not None or self.keras_model is not None

    def tokenizer(self):
        """The tokenizer the preset ships, or None (a fresh model has none)."""
        if self.folder is None:
            return None
        return models.read_tokenizer(self.folder, folder_format.read_manifest(self.folder))


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
            picks what measured fastest on this backend and device for each
            of predict, the training step and generate() (see
            `zoo.runtime.backend.AUTO_JIT_COMPILE`); `model.jit_compile` shows
            predict's. Setting `model.jit_compile` later applies to all three.
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
    label_names, num_classes = _check_labels(label_names, num_classes)  # before any download or building
    check_jit_compile(jit_compile)
    return build_located(locate(name, pretrained), num_classes, label_names, jit_compile, **overrides)


def locate(name, pretrained=True):
    """The `LocatedPreset` of a preset name or source: downloaded and verified
    if it has weights to load, its family and config read, nothing built.
    With `pretrained` False, the architecture alone (no weights)."""
    source = sources.parse_source(name)
    if source.kind == "keras-file":
        return _locate_keras_file(source.location, pretrained)
    if source.kind == "builtin":
        card = registry.info(name)
        model_name = card.name.replace("-", "_").replace(".", "_")
        if not (pretrained and card.pretrained):
            return LocatedPreset(card.family, card.config, model_name=model_name)
        folder = resolving.resolve_builtin(card)
    else:
        folder, model_name = resolving.resolve(source), None
    family, config = folder_format.read_config(folder)
    return LocatedPreset(family, config, folder if pretrained else None, model_name)


def build_located(preset, num_classes=None, label_names=None, jit_compile="auto", **overrides):
    """The model of a `LocatedPreset` (see `load` for the arguments)."""
    label_names, num_classes = _check_labels(label_names, num_classes)
    check_jit_compile(jit_compile)
    from zoo.runtime import backend  # imports Keras: `import zoo` must not

    backend.enable_compilation_cache()
    model = _built(preset, num_classes, overrides)
    if num_classes is None and (model.preset_metadata.get("converted_from") or {}).get("head_is_new"):
        raise InvalidConfigError(
            f"{preset.label or preset.folder} is a bare checkpoint without a task head: pass num_classes=N "
            "(or label_names) to give it a new classifier to fine-tune."
        )
    backend.set_jit_compile(model, jit_compile)
    if label_names is not None:
        model.preset_metadata["label_names"] = label_names
    elif num_classes is not None and len(model.label_names or ()) != num_classes:
        model.preset_metadata["label_names"] = None  # the old names describe the old head
    return model


def _built(preset, num_classes, overrides):
    if preset.keras_model is not None:
        return models.rebuilt(preset.keras_model, num_classes, overrides, preset.label)
    if preset.folder is not None:
        return models.build_from_folder(preset.folder, num_classes, name=preset.model_name, **overrides)
    return architectures.build(preset.family, preset.config, num_classes=num_classes, name=preset.model_name,
                               **overrides)


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


def _locate_keras_file(path, pretrained):
    """A zoo model saved with `model.save("x.keras")`, loaded in Keras' safe
    mode (no code runs); it is rebuilt like a preset when asked to change."""
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
    config = config_to_dict(model.zoo_config)
    if not pretrained:
        return LocatedPreset(model.family, config)
    return LocatedPreset(model.family, config, keras_model=model, label=Path(path).name)


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
