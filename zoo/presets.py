"""The preset folder: the format the zoo ships, caches and lets users publish.

    my-preset/
      config.json        {"format_version", "family", "config"}: plain JSON, never code
      model.weights.h5   Keras weights (HDF5 arrays; nothing is unpickled)
      metadata.json      versions, date, parameter count, data set, metrics, labels...
      assets/            the tokenizer (assets/tokenizer/), other files the model needs
      manifest.json      the sha256 and size of every other file

A folder is verified against its manifest before anything in it is read, only
the files the manifest lists are ever read, and its family must be registered
before anything is built.
"""

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path

from zoo.errors import ChecksumError, InvalidPresetError

FORMAT_VERSION = 1  # of config.json
MANIFEST_FORMAT_VERSION = 2  # 1 listed {path: sha256}; 2 lists {path: {"sha256", "size"}}
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
    check_writable_folder(folder, overwrite, hint="pass overwrite=True to replace it")
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


def check_writable_folder(folder, overwrite, hint):
    """Refuse, before any work, to write a preset to `folder` where that
    cannot work or would destroy something: a file, the current folder or
    one above it, a folder of other files (even with `overwrite`, which
    replaces a preset only), a non-empty preset without `overwrite` (`hint`
    says how to ask for it), or a place this process cannot write to."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; give the name of a folder to write the preset to.")
    here = Path.cwd()
    if folder.resolve() in (here, *here.parents):
        raise FileExistsError(f"{folder} is the current folder or one above it; write the preset to a new folder.")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / MANIFEST_FILE).is_file():
            raise FileExistsError(
                f"{folder} holds files that are not a preset; it is left alone even with overwrite. "
                "Write the preset to another folder."
            )
        if not overwrite:
            raise FileExistsError(f"{folder} exists and is not empty; {hint}.")
    check_creatable(folder)


def check_creatable(path):
    """Refuse a path that cannot be written: the nearest folder that exists on
    the way to it must take a new folder (a read-only disk, /proc or a file on
    the way do not)."""
    import tempfile

    existing = next(parent for parent in (Path(path), *Path(path).absolute().parents) if parent.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError as error:
        raise PermissionError(f"Cannot write {path}: {existing} does not take new files ({error.strerror}).") from None


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


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """What the manifest says of one file."""

    sha256: str
    size: int | None  # None in a format 1 manifest, which did not record sizes


def write_manifest(folder):
    """List every file of `folder` (but the manifest) with its sha256 and size."""
    folder = Path(folder)
    files = {
        path.relative_to(folder).as_posix(): {"sha256": sha256_of(path), "size": path.stat().st_size}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }
    _write_json(folder / MANIFEST_FILE, {"format_version": MANIFEST_FORMAT_VERSION, "files": files})
    return files


def read_manifest(folder):
    """`{relative path: ManifestEntry}` of a preset folder, validated (no hashing)."""
    path = Path(folder) / MANIFEST_FILE
    manifest = _read_json(path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise InvalidPresetError(f"{path} must hold {{'files': {{path: {{'sha256': ..., 'size': ...}}}}}}.")
    entries = {name: _manifest_entry(path, name, value) for name, value in files.items()}
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in entries:
            raise InvalidPresetError(f"{path} does not list {required}; is this a zoo preset?")
    return entries


def _manifest_entry(path, name, value):
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\0" in name
            or any(part in ("", ".", "..") for part in parts) or parts[0].endswith(":")):
        raise InvalidPresetError(f"{path} names a file outside the preset, or no file: {name!r}.")
    if name == MANIFEST_FILE or parts[-1].startswith(".zoo"):
        raise InvalidPresetError(f"{path} lists {name!r}, a name the zoo keeps for itself.")
    if isinstance(value, str):  # format 1
        value = {"sha256": value, "size": None}
    digest, size = (value.get("sha256"), value.get("size")) if isinstance(value, dict) else (None, None)
    size_ok = size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0)
    if not (isinstance(digest, str) and len(digest) == 64 and size_ok):
        raise InvalidPresetError(
            f"{path}: the entry of {name!r} must be {{'sha256': <64 hex digits>, 'size': <bytes>}}, got {value!r}."
        )
    return ManifestEntry(digest.lower(), size)


def verify_folder(folder, *, exact=False, ignore=(), links_outside=False):
    """Check every file the manifest lists against its size and sha256; return
    the manifest. A listed file that is a link to somewhere outside the folder
    is refused unless `links_outside` (a hub's own cache links into its blob
    store). With `exact`, a file the manifest does not list (other than the
    names in `ignore`) or any link is an error too: a cache entry holds
    nothing else. The errors say what is wrong; `zoo.hub` adds what to do
    about the kind of folder at hand."""
    folder = Path(folder)
    files = read_manifest(folder)
    for name, entry in files.items():
        _check_link(folder, name, allowed="none" if exact else "any" if links_outside else "inside")
        _verify_file(folder / name, entry)
    if exact:
        unlisted = sorted(set(_files_under(folder)) - set(files) - {MANIFEST_FILE, *ignore})
        if unlisted:
            raise ChecksumError(
                f"{folder} holds files its manifest does not list: {', '.join(unlisted[:5])}"
                f"{' ...' if len(unlisted) > 5 else ''}."
            )
    return files


def _check_link(folder, name, allowed):
    """Refuse file `name` of `folder` if it, or a folder on its way, is a link
    the folder may not hold ("none", "inside" it, or "any")."""
    real_folder = Path(folder).resolve()
    resolved = (real_folder / name).resolve()
    if resolved == real_folder / name or allowed == "any":
        return
    if allowed == "none" or not resolved.is_relative_to(real_folder):
        raise ChecksumError(f"{Path(folder) / name} is a link (to {resolved}), which this folder may not hold.")


def _verify_file(path, entry):
    if not path.is_file():
        raise ChecksumError(f"{path} is listed in the manifest but missing.")
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        raise ChecksumError(f"{path} is corrupt: {size} bytes, the manifest says {entry.size}.")
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise ChecksumError(f"{path} is corrupt: sha256 {actual}, the manifest says {entry.sha256}.")


def _files_under(folder):
    """Relative posix names of everything in `folder` that is not a directory."""
    return [path.relative_to(folder).as_posix() for path in folder.rglob("*") if not path.is_dir() or path.is_symlink()]


def read_config(folder):
    """`(family, config)` of a preset folder: a registered family, and a config
    that family accepts (keys, types and ranges), or an error naming the file."""
    from zoo.architectures import config_of, family_names
    from zoo.errors import InvalidConfigError

    path = Path(folder) / CONFIG_FILE
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("family"), str) or not isinstance(data.get("config"), dict):
        raise InvalidPresetError(f"{path} must hold {{'family': str, 'config': {{...}}}}.")
    if data.get("format_version") != FORMAT_VERSION:
        raise InvalidPresetError(
            f"{path} has format_version {data.get('format_version')!r}; this keras-zoo "
            f"reads version {FORMAT_VERSION}. Upgrade keras-zoo."
        )
    if data["family"] not in family_names():
        # Refused before anything is built or imported on the preset's say-so.
        raise InvalidPresetError(
            f"{path} names the family {data['family']!r}, which is not registered. "
            f"Known families: {', '.join(family_names())}. Register it with zoo.register_family() "
            "if you trust this preset."
        )
    try:
        config_of(data["family"], data["config"])
    except InvalidConfigError as error:
        raise InvalidConfigError(f"{path}: {error}") from None
    return data["family"], data["config"]


def read_metadata(folder):
    """metadata.json of a preset folder: a JSON object ({} when there is none)."""
    path = Path(folder) / METADATA_FILE
    metadata = _read_json(path) if path.exists() else {}
    if not isinstance(metadata, dict):
        raise InvalidPresetError(f"{path} must hold a JSON object of facts, got {type(metadata).__name__}.")
    return metadata


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

    `folder` is one `zoo.hub.resolve` returned: checked against its manifest.
    Only the files the manifest lists are read. With `num_classes` or config
    overrides the model is rebuilt to the new config and keeps every
    pretrained weight whose shape still fits; the layers that start fresh (a
    new head) are logged on the "zoo" logger.
    """
    from zoo.architectures import build

    folder = Path(folder)
    files = read_manifest(folder)
    family, config = read_config(folder)
    check_weights_file(folder / WEIGHTS_FILE, family, config)
    model = build(family, config, name=name)
    load_weights_file(model, folder / WEIGHTS_FILE)
    metadata = read_metadata(folder) if METADATA_FILE in files else {}
    check_label_names(metadata, model, folder / METADATA_FILE)
    model = rebuilt(model, num_classes, overrides, folder.name)
    model.preset_metadata = metadata
    model.tokenizer = read_tokenizer(folder, files)
    return model


def read_tokenizer(folder, files):
    """The tokenizer in `assets/tokenizer/` when the manifest `files` list it, else None."""
    listed = {name.removeprefix(TOKENIZER_DIR + "/") for name in files if name.startswith(TOKENIZER_DIR + "/")}
    if not listed:
        return None
    from zoo import tokenizers

    return tokenizers.load_tokenizer(Path(folder) / TOKENIZER_DIR, listed=listed)


def check_weights_file(path, family, config):
    """Refuse a weights file too small to hold the weights `config` describes,
    before the model is built: config and weights must belong together, and a
    hostile config must not make the backend allocate what the file cannot fill."""
    from zoo.architectures import config_of

    family_config = config_of(family, config)
    if not hasattr(family_config, "weight_count"):
        return  # a registered family that does not say its size
    needed = 4 * family_config.weight_count()  # float32
    size = Path(path).stat().st_size
    if size < needed:
        raise InvalidPresetError(
            f"{path} holds {size:,} bytes, but config.json describes {needed // 4:,} float32 weights "
            f"({needed:,} bytes): the files do not belong together, or the weights file is cut "
            "short. Fetch the preset again."
        )


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
