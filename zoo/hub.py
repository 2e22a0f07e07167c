"""Where presets come from: sources, downloads, the cache, locks and offline mode.

Sources `zoo.load` and `zoo download` accept:

    transformer-small                      a built-in name (bundled, or from $ZOO_MIRROR)
    ./my-preset, file:///abs/my-preset     a local preset folder (used in place)
    ./my-preset.tar.gz, my-preset.zip      a local archive (extracted into the cache)
    https://host/presets/my-preset/        a preset folder served over http(s)
    https://host/my-preset.tar.gz#sha256=… an archive, optionally pinned by its sha256
    hf://org/repo@revision                 a Hugging Face hub repository (huggingface_hub)
    kaggle://owner/model/keras/variant/1   a Kaggle model (kagglehub)

Everything downloaded lands in `$ZOO_HOME/presets/<entry>/` (default
`~/.keras/zoo`), written to a temporary folder, verified, then renamed into
place under a file lock, so a failed or concurrent download never leaves a
corrupt entry. Environment:

    ZOO_HOME               cache root (default: $KERAS_HOME/zoo, i.e. ~/.keras/zoo)
    ZOO_OFFLINE=1          never touch the network (HF_HUB_OFFLINE=1 does too)
    ZOO_MIRROR             base URL serving built-in preset folders
    ZOO_DOWNLOAD_TIMEOUT   seconds a stalled connection may wait (default 30)
    ZOO_DOWNLOAD_RETRIES   retries after a transient error (default 3)
    ZOO_MAX_ARCHIVE_BYTES  largest archive content accepted (default 4 GiB)
"""

import dataclasses
import hashlib
import http.client
import json
import os
import shutil
import socket
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from zoo import presets, registry
from zoo.errors import (
    ChecksumError,
    DownloadError,
    MissingDependencyError,
    OfflineError,
    PresetNotFoundError,
    UnsafeArchiveError,
    ZooError,
)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
SOURCE_FILE = ".zoo-source.json"  # beside the preset files in a cache entry
USER_AGENT = "keras-zoo"


# --------------------------------------------------------------------- settings

def zoo_home():
    """The cache root: $ZOO_HOME, else the Keras home's `zoo/` folder."""
    if os.environ.get("ZOO_HOME"):
        return Path(os.environ["ZOO_HOME"]).expanduser()
    keras_home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(keras_home).expanduser() / "zoo"


def cache_root():
    return zoo_home() / "presets"


def is_offline():
    return any(_truthy(os.environ.get(name)) for name in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"))


def _truthy(value):
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _setting(name, default, kind):
    value = os.environ.get(name)
    try:
        return kind(value) if value else default
    except ValueError:
        raise ZooError(f"{name}={value!r} is not a valid {kind.__name__}.") from None


# ---------------------------------------------------------------------- sources

@dataclasses.dataclass(frozen=True)
class Source:
    kind: str  # folder | archive | http-folder | http-archive | hf | kaggle | builtin
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
    if text.startswith("hf://"):
        return Source("hf", text.removeprefix("hf://"))
    if text.startswith("kaggle://"):
        return Source("kaggle", text.removeprefix("kaggle://"))
    if text.startswith(("http://", "https://")):
        url, _, fragment = text.partition("#")
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
    if os.sep in text or text.startswith(".") or text.lower().endswith(ARCHIVE_SUFFIXES):
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


# -------------------------------------------------------------------- resolving

def resolve(source, *, quiet=None):
    """A verified local preset folder for `source` (downloading it if needed)."""
    source = source if isinstance(source, Source) else parse_source(source)
    if source.kind == "builtin":
        return resolve_builtin(registry.info(source.location), quiet=quiet)
    if source.kind == "folder":
        presets.verify_folder(source.location)
        return Path(source.location)
    if source.kind == "hf":
        return _from_hugging_face(source.location)
    if source.kind == "kaggle":
        return _from_kaggle(source.location)
    return fetch_into_cache(source, quiet=quiet)


def resolve_builtin(card, *, quiet=None):
    """The weights folder of a built-in card: bundled with the package, else
    fetched from $ZOO_MIRROR and pinned by the card's manifest hash."""
    if not card.pretrained:
        raise ZooError(f"Preset {card.name!r} has no pretrained weights; load it with pretrained=False.")
    folder_name, pin = card.weights["folder"], card.weights["manifest_sha256"]
    bundled = registry.builtin_cards_folder() / folder_name
    if bundled.is_dir():
        _check_pin(bundled / presets.MANIFEST_FILE, pin)
        presets.verify_folder(bundled)
        return bundled
    mirror = os.environ.get("ZOO_MIRROR")
    if not mirror:
        raise ZooError(
            f"The weights of {card.name!r} are not bundled with this installation and ZOO_MIRROR "
            "is not set. Set ZOO_MIRROR to a server hosting the preset folders, or reinstall keras-zoo."
        )
    url = f"{mirror.rstrip('/')}/{folder_name}/"
    return fetch_into_cache(Source("http-folder", url, pin), quiet=quiet, label=card.name)


def fetch_into_cache(source, *, quiet=None, label=None):
    """Download (or extract) `source` into its cache entry once, under a lock."""
    import filelock  # a dependency of keras, huggingface_hub and torch alike

    entry = cache_root() / source.entry_name
    if _entry_complete(entry):
        return entry
    if is_offline():
        raise OfflineError(
            f"Offline mode (ZOO_OFFLINE or HF_HUB_OFFLINE) is on and {label or source.location} is not "
            f"in the cache ({cache_root()}). Run `zoo download {label or source.location}` while "
            "online, or unset the offline variable."
        )
    locks = zoo_home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    # flock-based: the OS releases it when a holder dies, so a killed download
    # never leaves a lock behind that hangs the next one.
    with filelock.FileLock(locks / f"{source.entry_name}.lock"):
        if _entry_complete(entry):  # another process finished it while we waited
            return entry
        staging = cache_root() / f".{source.entry_name}.partial-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            _materialise(source, staging, quiet=quiet)
            (staging / SOURCE_FILE).write_text(json.dumps({
                "kind": source.kind, "location": source.location, "sha256": source.sha256,
                "label": label, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }, indent=2))
            presets.replace_folder(staging, entry)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return entry


def _entry_complete(entry):
    # The source record is written last, just before the rename, so an entry
    # that has one finished downloading and verifying.
    return (entry / SOURCE_FILE).is_file()


def _materialise(source, staging, *, quiet):
    if source.kind == "http-folder":
        _download_folder(source, staging, quiet=quiet)
    elif source.kind == "http-archive":
        archive = staging.with_name(staging.name + ".archive")
        try:
            download_file(source.location, archive, expected_sha256=source.sha256, quiet=quiet)
            _unpack_preset(archive, staging)
        finally:
            archive.unlink(missing_ok=True)
    elif source.kind == "archive":
        if source.sha256:
            _check_pin(Path(source.location), source.sha256)
        _unpack_preset(Path(source.location), staging)
    else:
        raise ZooError(f"Cannot cache a source of kind {source.kind!r}.")
    presets.verify_folder(staging)


def _download_folder(source, staging, *, quiet):
    base = source.location if source.location.endswith("/") else source.location + "/"
    manifest_path = staging / presets.MANIFEST_FILE
    download_file(base + presets.MANIFEST_FILE, manifest_path, expected_sha256=source.sha256, quiet=True)
    for name, digest in presets.read_manifest(staging).items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        url = base + urllib.parse.quote(name)
        download_file(url, target, expected_sha256=digest, quiet=quiet)


def _check_pin(path, expected):
    actual = presets.sha256_of(path)
    if expected and actual != expected:
        raise ChecksumError(f"{path}: sha256 {actual}, expected {expected}. Nothing was cached.")


# -------------------------------------------------------------------- downloads

class _TransientError(Exception):
    """Worth another try: connection reset or dropped, timeout, HTTP 5xx / 429."""


def download_file(url, target, *, expected_sha256=None, quiet=None):
    """Download `url` to `target` with retries; verify its sha256 if given.

    On any failure the partial file is deleted and `target` is untouched.
    """
    retries = _setting("ZOO_DOWNLOAD_RETRIES", 3, int)
    target = Path(target)
    partial = target.with_name(f".{target.name}.part-{uuid.uuid4().hex[:8]}")
    last_error = None
    try:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(0.25 * 2 ** (attempt - 1), 8.0))
            try:
                digest = _download_once(url, partial, quiet=quiet)
                break
            except _TransientError as error:
                last_error = error
        else:
            raise DownloadError(
                f"Could not download {url} after {retries + 1} attempts: {last_error}. Check your "
                "connection and the server, then try again; nothing was cached."
            )
        if expected_sha256 and digest != expected_sha256:
            raise ChecksumError(
                f"{url} ({target.name}) has sha256 {digest}, expected {expected_sha256}: the "
                "file is corrupt or was changed on the server. It was deleted; nothing was cached."
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _download_once(url, partial, *, quiet):
    timeout = _setting("ZOO_DOWNLOAD_TIMEOUT", 30.0, float)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected_size = int(response.headers.get("Content-Length") or 0) or None
            with open(partial, "wb") as file, _progress(url, expected_size, quiet) as advance:
                while chunk := response.read(1 << 16):
                    file.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    advance(len(chunk))
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code == 429:
            raise _TransientError(f"HTTP {error.code} {error.reason}") from None
        raise DownloadError(
            f"{url} answered HTTP {error.code} {error.reason}. Check the URL or preset name; "
            "nothing was cached."
        ) from None
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException, socket.timeout, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise _TransientError(f"{type(error).__name__}: {reason} (timeout {timeout:g}s)") from None
    if expected_size is not None and received != expected_size:
        raise _TransientError(f"connection closed after {received} of {expected_size} bytes")
    return digest.hexdigest()


class _progress:
    """A rich progress bar on a terminal; silent otherwise or when quiet."""

    def __init__(self, url, total, quiet):
        show = sys.stderr.isatty() if quiet is None else not quiet
        self.bar = None
        if show:
            from rich.progress import (
                BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
            )
            from rich.console import Console

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                transient=True)
            self.task = self.bar.add_task(PurePosixPath(urllib.parse.urlparse(url).path).name, total=total)

    def __enter__(self):
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


# --------------------------------------------------------------------- archives

def _unpack_preset(archive, staging):
    """Extract `archive` safely into `staging`, lifting a single wrapping folder."""
    unpacked = staging.with_name(staging.name + ".unpacked")
    unpacked.mkdir()
    try:
        extract_archive(archive, unpacked)
        root = unpacked
        children = list(unpacked.iterdir())
        if not (unpacked / presets.MANIFEST_FILE).exists() and len(children) == 1 and children[0].is_dir():
            root = children[0]
        for item in root.iterdir():
            os.replace(item, staging / item.name)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def extract_archive(archive, target):
    """Extract a .tar(.gz) or .zip, refusing anything that could escape `target`.

    Written by hand rather than `tarfile`'s data filter because the zoo also
    refuses links pointing inside the folder, covers zip files the same way,
    and caps the total size before writing a byte.
    """
    archive, target = Path(archive), Path(target)
    limit = _setting("ZOO_MAX_ARCHIVE_BYTES", 4 << 30, int)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            members = [(info.filename, _zip_kind(info), info.file_size) for info in bundle.infolist()]
            _check_members(archive, members, limit)
            for info in bundle.infolist():
                _write_member(target, info.filename, info.is_dir(), lambda: bundle.open(info))
        return
    try:
        bundle = tarfile.open(archive, "r:*")
    except tarfile.TarError as error:
        raise UnsafeArchiveError(f"{archive} is not a readable .tar.gz or .zip archive: {error}.") from None
    with bundle:
        members = bundle.getmembers()
        _check_members(archive, [(m.name, _tar_kind(m), m.size) for m in members], limit)
        for member in members:
            _write_member(target, member.name, member.isdir(), lambda: bundle.extractfile(member))


def _tar_kind(member):
    if member.isfile():
        return "file"
    if member.isdir():
        return "dir"
    return "link" if member.issym() or member.islnk() else "special file"


def _zip_kind(info):
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "link"
    return "dir" if info.is_dir() else "file"


def _check_members(archive, members, limit):
    total = 0
    for name, kind, size in members:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or (parts and parts[0].endswith(":")) or ".." in parts:
            raise UnsafeArchiveError(f"{archive} contains the entry {name!r}, which points outside the folder; refused.")
        if kind not in ("file", "dir"):
            raise UnsafeArchiveError(f"{archive} contains {name!r}, a {kind}; presets hold only files and folders.")
        total += size
        if total > limit:
            raise UnsafeArchiveError(
                f"{archive} unpacks to more than {limit} bytes (ZOO_MAX_ARCHIVE_BYTES); refused."
            )


def _write_member(target, name, is_dir, open_member):
    path = target.joinpath(*PurePosixPath(name.replace("\\", "/")).parts)
    if is_dir:
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_member() as source, open(path, "wb") as destination:
        shutil.copyfileobj(source, destination)


# ------------------------------------------------------------------ other hubs

def _from_hugging_face(location):
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError(
            "hf:// sources need the huggingface_hub package: pip install 'keras-zoo[hf]'."
        ) from None
    repo_id, _, revision = location.partition("@")
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id, revision=revision or None, local_files_only=is_offline()
        )
    except Exception as error:  # its errors vary by version; name the repo and the fix
        hint = "it is not in the Hugging Face cache and offline mode is on" if is_offline() else str(error)
        raise DownloadError(f"Could not get hf://{location}: {hint}.") from error
    presets.verify_folder(folder)
    return Path(folder)


def _from_kaggle(handle):
    try:
        import kagglehub
    except ImportError:
        raise MissingDependencyError(
            "kaggle:// sources need the kagglehub package: pip install 'keras-zoo[kaggle]'."
        ) from None
    if is_offline():
        raise OfflineError(f"Offline mode is on; kaggle://{handle} cannot be fetched.")
    try:
        folder = kagglehub.model_download(handle)
    except Exception as error:  # kagglehub raises several unrelated types
        raise DownloadError(f"Could not get kaggle://{handle}: {error}.") from error
    presets.verify_folder(folder)
    return Path(folder)


# ------------------------------------------------------------------------ cache

def cache_entries():
    """`[(entry folder, source record)]` of every complete cache entry."""
    root = cache_root()
    if not root.is_dir():
        return []
    return [
        (entry, json.loads((entry / SOURCE_FILE).read_text()))
        for entry in sorted(root.iterdir())
        if entry.is_dir() and _entry_complete(entry)
    ]


def clear_cache(name=None):
    """Delete cache entries (all, or those whose entry, label or source contains
    `name`) and leftovers of interrupted downloads; returns what was removed."""
    removed = []
    for entry, record in cache_entries():
        haystack = [entry.name, record.get("label") or "", record.get("location", "")]
        if name is None or any(name in text for text in haystack):
            shutil.rmtree(entry)
            removed.append(entry)
    if name is None:
        removed += _remove_abandoned_downloads()
    return removed


def _remove_abandoned_downloads():
    """Delete staging leftovers of downloads whose process died; a download
    still running holds its entry's lock, and its files are left alone."""
    import filelock

    root, removed = cache_root(), []
    for leftover in sorted(root.glob(".*.partial-*")) if root.is_dir() else []:
        entry_name = leftover.name[1:].split(".partial-")[0]
        lock = filelock.FileLock(zoo_home() / "locks" / f"{entry_name}.lock")
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            continue
        try:
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
            removed.append(leftover)
        finally:
            lock.release()
    return removed
