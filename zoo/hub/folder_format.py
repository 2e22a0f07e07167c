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

This module reads and checks the folder's files and imports no Keras;
zoo/hub/models.py builds models from folders and saves them as folders.
"""

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from zoo.errors import ChecksumError, InvalidPresetError

FORMAT_VERSION = 1  # of config.json
QUANTIZED_FORMAT_VERSION = 2  # config.json of a quantized model: version 1 plus its "quantization" mode
QUANTIZATION_MODES = ("int8", "int4", "float8")
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
    write_json(folder / MANIFEST_FILE, {"format_version": MANIFEST_FORMAT_VERSION, "files": files})
    return files


def read_manifest(folder):
    """`{relative path: ManifestEntry}` of a preset folder, validated (no hashing)."""
    path = Path(folder) / MANIFEST_FILE
    manifest = read_json(path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise InvalidPresetError(f"{path} must hold {{'files': {{path: {{'sha256': ..., 'size': ...}}}}}}.")
    entries = {name: _manifest_entry(path, name, value) for name, value in files.items()}
    _check_distinct_on_any_filesystem(path, entries)
    for required in (CONFIG_FILE, WEIGHTS_FILE):
        if required not in entries:
            raise InvalidPresetError(f"{path} does not list {required}; is this a zoo preset?")
    return entries


def _check_distinct_on_any_filesystem(path, names):
    """Refuse names that differ only in case: on macOS and Windows they are one
    file, the second download overwriting the first after its check."""
    seen = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise InvalidPresetError(
                f"{path} lists both {other!r} and {name!r}, one file on a case-insensitive file system."
            )


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


def verify_folder(folder, *, exact=False, ignore=(), links_outside=False, hint=None):
    """Check every file the manifest lists against its size and sha256; return
    the manifest. A listed file that is a link to somewhere outside the folder
    is refused unless `links_outside` (a hub's own cache links into its blob
    store). With `exact`, a file the manifest does not list (other than the
    names in `ignore`) or any link is an error too: a cache entry holds
    nothing else. The errors say what is wrong, then `hint`: what to do about
    the kind of folder at hand."""
    try:
        return _verify_folder(Path(folder), exact, ignore, links_outside)
    except (ChecksumError, InvalidPresetError) as error:
        if hint is None:
            raise
        raise type(error)(f"{error} {hint}") from None


def _verify_folder(folder, exact, ignore, links_outside):
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
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("family"), str) or not isinstance(data.get("config"), dict):
        raise InvalidPresetError(f"{path} must hold {{'family': str, 'config': {{...}}}}.")
    if data.get("format_version") not in (FORMAT_VERSION, QUANTIZED_FORMAT_VERSION):
        raise InvalidPresetError(
            f"{path} has format_version {data.get('format_version')!r}; this keras-zoo "
            f"reads versions {FORMAT_VERSION} and {QUANTIZED_FORMAT_VERSION}. Upgrade keras-zoo."
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


def read_quantization(folder):
    """The quantization mode config.json records ("int8", "int4", "float8"),
    or None for a float model (and for config.json of format version 1)."""
    path = Path(folder) / CONFIG_FILE
    data = read_json(path)
    mode = data.get("quantization") if data.get("format_version") == QUANTIZED_FORMAT_VERSION else None
    if data.get("format_version") == QUANTIZED_FORMAT_VERSION and mode not in QUANTIZATION_MODES:
        raise InvalidPresetError(f"{path}: quantization must be one of {', '.join(QUANTIZATION_MODES)}, "
                                 f"got {mode!r}.")
    return mode


def config_json(family, config, quantization=None):
    """The content of config.json: version 1 for a float model, version 2 with
    the mode for a quantized one (an older keras-zoo then says to upgrade
    instead of failing on the weights file)."""
    data = {"format_version": FORMAT_VERSION, "family": family, "config": config}
    if quantization is not None:
        data.update(format_version=QUANTIZED_FORMAT_VERSION, quantization=quantization)
    return data


def read_metadata(folder):
    """metadata.json of a preset folder: a JSON object ({} when there is none)."""
    path = Path(folder) / METADATA_FILE
    metadata = read_json(path) if path.exists() else {}
    if not isinstance(metadata, dict):
        raise InvalidPresetError(f"{path} must hold a JSON object of facts, got {type(metadata).__name__}.")
    return metadata


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


def write_json(path, data):
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidPresetError(f"{path} is missing; a preset folder needs {CONFIG_FILE}, "
                                 f"{WEIGHTS_FILE} and {MANIFEST_FILE}.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidPresetError(f"{path} is not valid JSON: {error}.") from None


def check_json(what, value):
    try:
        json.dumps(value)
    except TypeError as error:
        raise TypeError(f"{what} must be JSON-serialisable: {error}") from None
