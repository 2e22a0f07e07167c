"""Source strings: what `zoo.load` and `zoo download` accept.

    transformer-small                      a built-in name (bundled, or from $ZOO_MIRROR)
    ./my-preset, file:///abs/my-preset     a local preset folder (used in place)
    ./my-preset.tar.gz, my-preset.zip      a local archive (extracted into the cache)
    ./model.keras                          a Keras model file saved from a zoo model
    https://host/presets/my-preset/        a preset folder served over http(s)
    https://host/my-preset.tar.gz#sha256=… an archive, optionally pinned by its sha256
    hf://org/repo@revision                 a Hugging Face hub repository (huggingface_hub)
    kaggle://owner/model/keras/variant/1   a Kaggle model (kagglehub)
"""

import dataclasses
import hashlib
import os
import urllib.parse
from pathlib import Path, PurePosixPath

from zoo import registry
from zoo.errors import InvalidPresetError, PresetNotFoundError, ZooError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
KERAS_FILE_SUFFIX = ".keras"


@dataclasses.dataclass(frozen=True)
class Source:
    kind: str  # folder | archive | keras-file | http-folder | http-archive | hf | kaggle | builtin
    location: str
    sha256: str | None = None  # pin: of the archive, or of a folder's manifest.json

    @property
    def entry_name(self):
        """Cache folder name: readable, and unique per exact source and pin."""
        key = hashlib.sha256(f"{self.kind}|{self.location}|{self.sha256}".encode()).hexdigest()[:16]
        stem = PurePosixPath(urllib.parse.urlparse(self.location).path.rstrip("/")).name or "preset"
        for suffix in ARCHIVE_SUFFIXES:
            stem = stem.removesuffix(suffix)
        slug = "".join(c if c.isalnum() or c in "-._" else "_" for c in stem)[:60]
        return f"{slug}-{key}"


def parse_source(text):
    """Classify a source string; see the module docstring for the forms.

    Example:
    >>> parse_source("https://example.org/p.tar.gz#sha256=" + "ab" * 32).kind
    'http-archive'
    >>> parse_source("transformer-small").kind
    'builtin'
    """
    text = str(text)
    if not text.strip():
        raise PresetNotFoundError(text, registry.list_presets())
    if text.startswith("hf://"):
        return Source("hf", text.removeprefix("hf://"))
    if text.startswith("kaggle://"):
        return Source("kaggle", text.removeprefix("kaggle://"))
    if text.startswith(("http://", "https://")):
        url, _, fragment = text.partition("#")
        try:
            urllib.parse.urlsplit(url).port  # reads the host and port, refusing what cannot be one
        except ValueError as error:
            raise ZooError(f"{text!r} is not a valid URL ({error}).") from None
        pin = _parse_pin(fragment, text)
        kind = "http-archive" if url.lower().endswith(ARCHIVE_SUFFIXES) else "http-folder"
        return Source(kind, url, pin)
    if text.startswith("file://"):
        text = urllib.parse.unquote(urllib.parse.urlparse(text).path)
    elif text in registry.list_presets():  # a name wins over a folder of that name ("./name" for the folder)
        return Source("builtin", text)
    path = Path(text).expanduser()
    if path.is_dir():
        return Source("folder", str(path.resolve()))
    if path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES):
        return Source("archive", str(path.resolve()))
    if path.is_file() and path.name.lower().endswith(KERAS_FILE_SUFFIX):
        return Source("keras-file", str(path.resolve()))
    if path.is_file():
        raise InvalidPresetError(
            f"{text} is a file, but not one the zoo loads: give a preset folder, a .tar.gz / .zip "
            "archive of one, or a .keras file saved with model.save()."
        )
    if os.sep in text or text.startswith(".") or text.lower().endswith((*ARCHIVE_SUFFIXES, KERAS_FILE_SUFFIX)):
        raise FileNotFoundError(f"No preset folder or archive at {text!r}.")
    raise PresetNotFoundError(text, registry.list_presets())


def _parse_pin(fragment, text):
    if not fragment:
        return None
    key, _, value = fragment.partition("=")
    value = value.lower()
    if key != "sha256" or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ZooError(f"{text!r}: the URL fragment must be #sha256=<64 hex digits>, got #{fragment}.")
    return value
