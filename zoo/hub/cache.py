"""The cache of downloaded presets: `$ZOO_HOME/presets/<entry>/`.

Everything downloaded is fetched into a work folder beside its entry, bounded
in size and time, verified file by file against the manifest, built and
loaded once, and only then renamed into place under a file lock, so a
failed, hostile or concurrent download never leaves a corrupt entry. An entry
holds exactly the files its manifest lists, plus its source record.
"""

import contextlib
import json
import logging
import os
import shutil
import time
import urllib.parse
from pathlib import Path

from zoo import registry, settings
from zoo.errors import ChecksumError, InvalidPresetError, OfflineError, ZooError
from zoo.hub import archives, downloads, folder_format, models
from zoo.runtime import scratch

SOURCE_FILE = ".zoo-source.json"  # beside the preset files in a cache entry
logger = logging.getLogger("zoo")


def cache_root():
    return settings.zoo_home() / "presets"


def fetch_into_cache(source, *, quiet=None, label=None, repair=False):
    """Download (or extract) `source` into its cache entry once, under a lock.

    An entry found complete is verified before it is used; with `repair`, one
    that fails is fetched again, otherwise the error says how to repair it.
    """
    import filelock  # a dependency of keras, huggingface_hub and torch alike

    entry = cache_root() / source.entry_name
    name = label or source.location
    if _entry_complete(entry) and not repair:
        return verify_entry(entry, name)
    if settings.is_offline():
        raise OfflineError(
            f"Offline mode (ZOO_OFFLINE or HF_HUB_OFFLINE) is on and {name} is not "
            f"{'verifiably ' if _entry_complete(entry) else ''}in the cache ({cache_root()}). Run "
            f"`zoo download {name}` while online, or unset the offline variable."
        )
    locks = settings.folder_in_zoo_home("locks")
    # flock-based: the OS releases it when a holder dies, so a killed download
    # never leaves a lock behind that hangs the next one.
    with filelock.FileLock(locks / f"{source.entry_name}.lock"):
        if _entry_complete(entry):  # there already, or another process finished it while we waited
            try:
                return verify_entry(entry, name)
            except (ChecksumError, InvalidPresetError) as error:
                if not repair:
                    raise
                logger.warning("%s: the cached copy is damaged (%s); fetching it again.", name, error)
        with scratch.removed_afterwards(_work_folder_for(entry)) as work:
            work.mkdir()
            with _named_after(work, name):
                staging = _materialise(source, work, quiet=quiet)
                check_loads(staging)
            (staging / SOURCE_FILE).write_text(json.dumps({
                "kind": source.kind, "location": source.location, "sha256": source.sha256,
                "label": label, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }, indent=2))
            folder_format.replace_folder(staging, entry)
    return entry


def _work_folder_for(entry):
    """A hidden name beside cache `entry` to build it under; the cache folder
    is made first (or an error says to move ZOO_HOME)."""
    settings.folder_in_zoo_home("presets")
    return scratch.beside(entry)


def convert_into_cache(entry_name, label, location, fetch_checkpoint):
    """The zoo preset converted from a transformers checkpoint, made once and
    kept as a cache entry (a second load downloads and converts nothing).

    `fetch_checkpoint()` gives the verified checkpoint folder; it runs only
    when the entry is missing. Like a download, the conversion happens in a
    work folder and only a preset that loads becomes the entry.
    """
    import filelock

    from zoo.hub import checkpoints

    entry = cache_root() / entry_name
    if _entry_complete(entry):
        return verify_entry(entry, label)
    with filelock.FileLock(settings.folder_in_zoo_home("locks") / f"{entry_name}.lock"):
        if _entry_complete(entry):
            return verify_entry(entry, label)
        with scratch.removed_afterwards(_work_folder_for(entry)) as work:
            work.mkdir()
            with _named_after(work, label):
                staging = checkpoints.convert(fetch_checkpoint(), work / "preset", source=location)
                check_loads(staging)
            (staging / SOURCE_FILE).write_text(json.dumps({
                "kind": "checkpoint", "location": location, "sha256": None, "label": label,
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }, indent=2))
            folder_format.replace_folder(staging, entry)
    return entry


def _entry_complete(entry):
    # The source record is written last, just before the rename, so an entry
    # that has one finished downloading, verifying and loading.
    return (entry / SOURCE_FILE).is_file()


def is_cached(source):
    """Whether `source` is fetched into a cache entry (not used in place)."""
    if source.kind == "builtin":
        card = registry.info(source.location)
        if card.checkpoint is not None:
            return True  # converted into the cache
        return card.pretrained and not (registry.builtin_cards_folder() / card.weights["folder"]).is_dir()
    return source.kind in ("http-folder", "http-archive", "archive")


def verify_entry(entry, name):
    """Check a cache entry: every listed file sound, nothing else in it.
    `name` is its source, for the hint; None when its record is unreadable."""
    hint = f"Run `zoo download {name}` to fetch it again." if name else f"Delete it: zoo cache clear {entry.name}"
    folder_format.verify_folder(entry, hint=hint, exact=True, ignore=(SOURCE_FILE,))
    return entry


def _materialise(source, work, *, quiet):
    """Fetch or unpack `source` into `work/preset`, holding only the files its
    manifest lists, each verified; returns that folder."""
    staging = work / "preset"
    staging.mkdir()
    if source.kind == "http-folder":
        # Each listed file, and nothing else, was checked against its sha256
        # and size as it streamed in: hashing them again would read every
        # byte twice.
        _download_folder(source, staging, quiet=quiet)
    elif source.kind in ("http-archive", "archive"):
        archive = Path(source.location)
        if source.kind == "http-archive":
            archive = downloads.download_file(source.location, work / "archive", expected_sha256=source.sha256,
                                              max_bytes=settings.max_download_bytes(), quiet=quiet)
        elif source.sha256:
            check_pin(archive, source.sha256)
        archives.unpack_preset(archive, staging, work / "unpacked")
        _remove_unlisted_files(staging)
        folder_format.verify_folder(staging, exact=True)
    else:
        raise ZooError(f"Cannot cache a source of kind {source.kind!r}.")
    return staging


def _download_folder(source, staging, *, quiet):
    base = source.location if source.location.endswith("/") else source.location + "/"
    downloads.download_file(base + folder_format.MANIFEST_FILE, staging / folder_format.MANIFEST_FILE, expected_sha256=source.sha256,
                  max_bytes=settings.MANIFEST_MAX_BYTES, quiet=True)
    for name, entry in folder_format.read_manifest(staging).items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        downloads.download_file(base + urllib.parse.quote(name), target, expected_sha256=entry.sha256,
                      expected_size=entry.size, quiet=quiet)


def _remove_unlisted_files(folder):
    """Delete what an archive held beyond its manifest: an entry keeps nothing else."""
    listed = set(folder_format.read_manifest(folder)) | {folder_format.MANIFEST_FILE}
    for path in sorted(folder.rglob("*"), reverse=True):  # children before their folders
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif path.relative_to(folder).as_posix() not in listed:
            path.unlink()


def check_loads(folder):
    """Build the preset in `folder` and load its weights (and tokenizer): a
    folder whose manifest matches but whose config or weights are broken must
    never become an entry that later loads would trust."""
    models.build_from_folder(folder)


@contextlib.contextmanager
def _named_after(work, name):
    """Errors raised inside say `name` (the URL or preset) where they would
    name a file of the `work` folder, which is deleted when they surface."""
    try:
        yield
    except ZooError as error:
        message = str(error)
        for folder in (work / "preset", work / "unpacked", work / "archive", work):
            message = message.replace(f"{folder}{os.sep}", "").replace(str(folder), name)
        if "Nothing was cached" not in message and "nothing was cached" not in message:
            message += " Nothing was cached."
        raise type(error)(f"{name}: {message}" if not message.startswith(name) else message) from None


def check_pin(path, expected):
    actual = folder_format.sha256_of(path)
    if expected and actual != expected:
        raise ChecksumError(f"{path}: sha256 {actual}, expected {expected}. Nothing was cached.")


def cache_entries():
    """`[(entry folder, source record)]` of every complete cache entry."""
    root = cache_root()
    if not root.is_dir():
        return []
    return [
        (entry, _source_record(entry))
        for entry in sorted(root.iterdir())
        if entry.is_dir() and not entry.name.startswith(".") and _entry_complete(entry)
    ]


def _source_record(entry):
    try:
        record = json.loads((entry / SOURCE_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        record = None
    if not isinstance(record, dict):
        return {"location": f"(unreadable {SOURCE_FILE})", "fetched_at": "?"}
    return record


def clear_cache(name=None):
    """Delete cache entries (all, or those whose entry, label or source contains
    `name`) and leftovers of interrupted downloads; returns what was removed.
    What a running download holds (its entry's lock) is left alone."""
    removed = []
    for entry, record in cache_entries():
        haystack = [entry.name, str(record.get("label") or ""), str(record.get("location", ""))]
        if (name is None or any(name in text for text in haystack)) and _remove_unless_busy(entry, entry.name):
            removed.append(entry)
    if name is None and cache_root().is_dir():
        # Work folders (.<entry>.partial-<id>) and replaced entries (.<entry>.old-<id>).
        for leftover in sorted(cache_root().glob(".*-*")):
            entry_name, separator, _ = leftover.name[1:].rpartition(".partial-")
            if not separator:
                entry_name, separator, _ = leftover.name[1:].rpartition(".old-")
            if separator and _remove_unless_busy(leftover, entry_name):
                removed.append(leftover)
    return removed


def _remove_unless_busy(path, entry_name):
    """Delete `path` unless a download of `entry_name` holds its lock now;
    whether it was deleted. Work folders of downloads whose process died hold
    no lock (the OS released it), so they go."""
    import filelock

    lock = filelock.FileLock(settings.folder_in_zoo_home("locks") / f"{entry_name}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return False
    try:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return True
    finally:
        lock.release()
