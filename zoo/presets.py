"""The preset folder: the format the zoo ships, caches and lets users publish.

    my-preset/
      config.json        {"format_version", "family", "config"}: plain JSON, never code
      model.weights.h5   Keras weights (HDF5 arrays; nothing is unpickled)
      metadata.json      versions, date, parameter count, data set, metrics, labels...
      assets/            the tokenizer (assets/tokenizer/), other files the model needs
      manifest.json      sha256 of every other file

A folder is verified against its manifest before anything in it is read, and
its family must be registered before anything is built.
"""

import datetime
import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from zoo.errors import ChecksumError, InvalidPresetError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
ASSETS_DIR = "assets"
TOKENIZER_DIR = f"{ASSETS_DIR}/tokenizer"
logger = logging.getLogger("zoo")

# Keys every metadata.json has, so readers need not guess; save_preset's
# keyword arguments fill them in (and may add more).
METADATA_DEFAULTS = {"dataset": None, "metrics": {}, "license": None, "label_names": None}


def sha256_of(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True to replace it.")
    _check_json("metadata", metadata)

    staging = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        _write_json(staging / CONFIG_FILE, {
            "format_version": FORMAT_VERSION,
            "family": model.family,
            "config": config_to_dict(model.zoo_config),
        })
        save_model_weights(model, staging / WEIGHTS_FILE)
        for name, source in (assets or {}).items():
            target = staging / ASSETS_DIR / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        if model.tokenizer is not None:
            from zoo import tokenizers

            tokenizers.save_tokenizer(model.tokenizer, staging / TOKENIZER_DIR)
        _write_json(staging / METADATA_FILE, {
            **METADATA_DEFAULTS,
            **_carried_metadata(model),
            "zoo_version": _zoo_version(),
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "params": int(model.count_params()),
            **metadata,
        })
        write_manifest(staging)
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
    weights = model.get_weights()
    if len(weights) != len(bare.weights):  # extra variables (LoRA adapters): save them as they are
        model.save_weights(path)
        return
    bare.set_weights(weights)
    bare.save_weights(path)


def write_manifest(folder):
    folder = Path(folder)
    files = {
        path.relative_to(folder).as_posix(): sha256_of(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }
    _write_json(folder / MANIFEST_FILE, {"format_version": FORMAT_VERSION, "files": files})
    return files


def read_manifest(folder):
    """`{relative path: sha256}` of a preset folder, validated."""
    manifest = _read_json(Path(folder) / MANIFEST_FILE)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise InvalidPresetError(f"{folder}/{MANIFEST_FILE} must hold {{'files': {{path: sha256}}}}.")
    for name in files:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise InvalidPresetError(f"{folder}/{MANIFEST_FILE} names a file outside the preset: {name!r}.")
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in files:
            raise InvalidPresetError(f"{folder}/{MANIFEST_FILE} does not list {required}; is this a zoo preset?")
    return files


def verify_folder(folder):
    """Check every file of the manifest against its sha256; return the manifest."""
    folder = Path(folder)
    files = read_manifest(folder)
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{path} is listed in the manifest but missing. Download the preset again.")
        actual = sha256_of(path)
        if actual != expected:
            raise ChecksumError(
                f"{path} is corrupt: sha256 {actual}, the manifest says {expected}. "
                "Delete it (zoo cache clear) and download the preset again."
            )
    return files


def read_config(folder):
    """`(family, config)` of a verified preset folder; refuses unknown families."""
    from zoo.architectures import family_names

    data = _read_json(Path(folder) / CONFIG_FILE)
    if not isinstance(data, dict) or not isinstance(data.get("family"), str) or not isinstance(data.get("config"), dict):
        raise InvalidPresetError(f"{folder}/{CONFIG_FILE} must hold {{'family': str, 'config': {{...}}}}.")
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidPresetError(
            f"{folder}/{CONFIG_FILE} has format_version {data.get('format_version')!r}; this keras-zoo "
            f"reads version {FORMAT_VERSION}. Upgrade keras-zoo."
        )
    if data["family"] not in family_names():
        # Refused before anything is built or imported on the preset's say-so.
        raise InvalidPresetError(
            f"{folder}/{CONFIG_FILE} names the family {data['family']!r}, which is not registered. "
            f"Known families: {', '.join(family_names())}. Register it with zoo.register_family() "
            "if you trust this preset."
        )
    return data["family"], data["config"]


def read_metadata(folder):
    path = Path(folder) / METADATA_FILE
    return _read_json(path) if path.exists() else {}


def build_from_folder(folder, num_classes=None, name=None, **overrides):
    """Verify a preset folder, build its model and load its weights.

    With `num_classes` or config overrides the model is rebuilt to the new
    config and keeps every pretrained weight whose shape still fits; the
    layers that start fresh (a new head) are logged on the "zoo" logger.
    """
    from zoo.architectures import build

    folder = Path(folder)
    verify_folder(folder)
    family, config = read_config(folder)
    model = build(family, config, name=name)
    model.load_weights(folder / WEIGHTS_FILE)
    if num_classes is not None or overrides:
        changed = build(family, config, num_classes=num_classes, name=name, **overrides)
        fresh = copy_matching_weights(model, changed)
        if fresh:
            logger.warning(
                "%s: new layers, randomly initialised (not in the preset or of another shape): %s. "
                "Every other layer keeps its pretrained weights; fine-tune before use (zoo.finetune).",
                folder.name, "; ".join(fresh),
            )
        model = changed
    model.preset_metadata = read_metadata(folder)
    if (folder / TOKENIZER_DIR).is_dir():
        from zoo import tokenizers

        model.tokenizer = tokenizers.load_tokenizer(folder / TOKENIZER_DIR)
    return model


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


def replace_folder(staging, folder):
    """Move a finished `staging` folder to `folder`, replacing it atomically
    where the OS allows (rename of the old one aside, then of the new one in)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(folder, old)
    os.replace(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _carried_metadata(model):
    """What a model's own preset metadata passes on to a preset saved from it:
    the facts about its outputs, not the provenance of the folder it came from."""
    carried = {}
    metadata = getattr(model, "preset_metadata", None) or {}
    for key in ("label_names", "license"):
        if metadata.get(key) is not None:
            carried[key] = metadata[key]
    return carried


def _write_json(path, data):
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidPresetError(f"{path} is missing; a preset folder needs {CONFIG_FILE}, "
                                 f"{WEIGHTS_FILE} and {MANIFEST_FILE}.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidPresetError(f"{path} is not valid JSON: {error}.") from None


def _check_json(what, value):
    try:
        json.dumps(value)
    except TypeError as error:
        raise TypeError(f"{what} must be JSON-serialisable: {error}") from None


def _zoo_version():
    from zoo import __version__

    return __version__
