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
`~/.keras/zoo`): fetched into a work folder beside it, bounded in size and
time, verified file by file against the manifest, built and loaded once, and
only then renamed into place under a file lock, so a failed, hostile or
concurrent download never leaves a corrupt entry. An entry holds exactly the
files its manifest lists. The settings (timeouts, limits, offline mode) are
read by `zoo.settings`.
"""

import contextlib
import dataclasses
import glob
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import stat
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from zoo import presets, registry, settings
from zoo.errors import (
    ChecksumError,
    DownloadError,
    InvalidPresetError,
    MissingDependencyError,
    OfflineError,
    PresetNotFoundError,
    UnsafeArchiveError,
    ZooError,
)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
KERAS_FILE_SUFFIX = ".keras"
SOURCE_FILE = ".zoo-source.json"  # beside the preset files in a cache entry
USER_AGENT = "keras-zoo"
logger = logging.getLogger("zoo")


def cache_root():
    return settings.zoo_home() / "presets"


# ---------------------------------------------------------------------- sources

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


# -------------------------------------------------------------------- resolving

def resolve(source, *, quiet=None, repair=False):
    """A verified local preset folder for `source`, downloading it if needed.

    With `repair`, a cache entry that no longer verifies is fetched again
    instead of raising (what `zoo download` does).
    """
    source = source if isinstance(source, Source) else parse_source(source)
    if source.kind == "builtin":
        return resolve_builtin(registry.info(source.location), quiet=quiet, repair=repair)
    if source.kind == "folder":
        verified(source.location, "The folder is damaged: copy or save the preset again.")
        return Path(source.location)
    if source.kind == "keras-file":
        raise InvalidPresetError(
            f"{source.location} is a Keras model file, not a preset folder: zoo.load() reads it as it "
            "is, and there is nothing to download. To make it a preset: "
            "zoo.save_preset(zoo.load(path), folder)."
        )
    if source.kind == "hf":
        return _from_hugging_face(source.location)
    if source.kind == "kaggle":
        return _from_kaggle(source.location)
    return fetch_into_cache(source, quiet=quiet, repair=repair)


def resolve_builtin(card, *, quiet=None, repair=False):
    """The weights folder of a built-in card: bundled with the package, else
    fetched from $ZOO_MIRROR and pinned by the card's manifest hash."""
    if not card.pretrained:
        raise ZooError(
            f"Preset {card.name!r} has no pretrained weights, so there is nothing to fetch: "
            f"zoo.load({card.name!r}) builds it freshly initialised."
        )
    folder_name, pin = card.weights["folder"], card.weights["manifest_sha256"]
    bundled = registry.builtin_cards_folder() / folder_name
    if bundled.is_dir():
        _check_pin(bundled / presets.MANIFEST_FILE, pin)
        verified(bundled, "The installation is damaged: reinstall keras-zoo.")
        return bundled
    mirror = settings.mirror()
    if not mirror:
        raise ZooError(
            f"The weights of {card.name!r} are not bundled with this installation and ZOO_MIRROR "
            "is not set. Set ZOO_MIRROR to a server hosting the preset folders, or reinstall keras-zoo."
        )
    url = f"{mirror.rstrip('/')}/{folder_name}/"
    return fetch_into_cache(Source("http-folder", url, pin), quiet=quiet, label=card.name, repair=repair)


def verified(folder, hint, **options):
    """`presets.verify_folder(folder, **options)`, its error ending with `hint`
    (what to do about this kind of folder)."""
    try:
        return presets.verify_folder(folder, **options)
    except (ChecksumError, InvalidPresetError) as error:
        raise type(error)(f"{error} {hint}") from None


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
        work = settings.folder_in_zoo_home("presets", f".{source.entry_name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            with _named_after(work, name):
                staging = _materialise(source, work, quiet=quiet)
                check_loads(staging)
            (staging / SOURCE_FILE).write_text(json.dumps({
                "kind": source.kind, "location": source.location, "sha256": source.sha256,
                "label": label, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }, indent=2))
            presets.replace_folder(staging, entry)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return entry


def _entry_complete(entry):
    # The source record is written last, just before the rename, so an entry
    # that has one finished downloading, verifying and loading.
    return (entry / SOURCE_FILE).is_file()


def is_cached(source):
    """Whether `source` is fetched into a cache entry (not used in place)."""
    if source.kind == "builtin":
        card = registry.info(source.location)
        return card.pretrained and not (registry.builtin_cards_folder() / card.weights["folder"]).is_dir()
    return source.kind in ("http-folder", "http-archive", "archive")


def verify_entry(entry, name):
    """Check a cache entry: every listed file sound, nothing else in it.
    `name` is its source, for the hint; None when its record is unreadable."""
    hint = f"Run `zoo download {name}` to fetch it again." if name else f"Delete it: zoo cache clear {entry.name}"
    verified(entry, hint, exact=True, ignore=(SOURCE_FILE,))
    return entry


def _materialise(source, work, *, quiet):
    """Fetch or unpack `source` into `work/preset`, holding only the files its
    manifest lists, each verified; returns that folder."""
    staging = work / "preset"
    staging.mkdir()
    if source.kind == "http-folder":
        _download_folder(source, staging, quiet=quiet)
    elif source.kind in ("http-archive", "archive"):
        archive = Path(source.location)
        if source.kind == "http-archive":
            archive = download_file(source.location, work / "archive", expected_sha256=source.sha256,
                                    max_bytes=settings.max_download_bytes(), quiet=quiet)
        elif source.sha256:
            _check_pin(archive, source.sha256)
        _unpack_preset(archive, staging, work / "unpacked")
        _remove_unlisted_files(staging)
    else:
        raise ZooError(f"Cannot cache a source of kind {source.kind!r}.")
    presets.verify_folder(staging, exact=True)
    return staging


def _download_folder(source, staging, *, quiet):
    base = source.location if source.location.endswith("/") else source.location + "/"
    download_file(base + presets.MANIFEST_FILE, staging / presets.MANIFEST_FILE, expected_sha256=source.sha256,
                  max_bytes=settings.MANIFEST_MAX_BYTES, quiet=True)
    for name, entry in presets.read_manifest(staging).items():
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        download_file(base + urllib.parse.quote(name), target, expected_sha256=entry.sha256,
                      expected_size=entry.size, quiet=quiet)


def _remove_unlisted_files(folder):
    """Delete what an archive held beyond its manifest: an entry keeps nothing else."""
    listed = set(presets.read_manifest(folder)) | {presets.MANIFEST_FILE}
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
    presets.build_from_folder(folder)


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


def _check_pin(path, expected):
    actual = presets.sha256_of(path)
    if expected and actual != expected:
        raise ChecksumError(f"{path}: sha256 {actual}, expected {expected}. Nothing was cached.")


# -------------------------------------------------------------------- downloads

class _TransientError(Exception):
    """Worth another try: connection reset or dropped, timeout, too slow, HTTP 5xx / 429."""


def download_file(url, target, *, expected_sha256=None, expected_size=None, max_bytes=None, quiet=None):
    """Download `url` to `target` with retries; verify its size and sha256 if given.

    The download stops as soon as it exceeds `expected_size`, or `max_bytes`
    when the size is not known (default ZOO_MAX_DOWNLOAD_BYTES), and when the
    server stays silent for ZOO_DOWNLOAD_TIMEOUT seconds or sends less than
    ZOO_DOWNLOAD_MIN_SPEED bytes per second. On any failure the partial file
    is deleted and `target` is untouched.
    """
    retries = settings.download_retries()
    limit = expected_size if expected_size is not None else (max_bytes or settings.max_download_bytes())
    target = Path(target)
    partial = target.with_name(f".{target.name}.part-{uuid.uuid4().hex[:8]}")
    last_error = None
    try:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(0.25 * 2 ** (attempt - 1), 8.0))
            try:
                digest, size = _download_once(url, partial, limit, exact=expected_size is not None, quiet=quiet)
                break
            except _TransientError as error:
                last_error = error
        else:
            raise DownloadError(
                f"Could not download {url} after {retries + 1} attempts: {last_error}. Check your "
                "connection and the server, then try again; nothing was cached."
            )
        if expected_size is not None and size != expected_size:
            raise ChecksumError(
                f"{url} ({target.name}) has {size} bytes, the manifest says {expected_size}: the file "
                "is corrupt or was changed on the server. It was deleted; nothing was cached."
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


def _download_once(url, partial, limit, *, exact, quiet):
    """One attempt: `(sha256, size)` of what arrived in `partial`. `limit` is
    the most bytes accepted; with `exact`, also the number expected."""
    timeout = settings.download_timeout()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    with _Watchdog(timeout, settings.download_min_speed()) as watchdog:
        try:
            with _opener(watchdog).open(request, timeout=timeout) as response:
                watchdog.headers_arrived()
                announced = _content_length(response)
                if announced is not None and announced > limit:
                    raise DownloadError(_too_big(url, f"announces {announced} bytes, more", limit))
                with open(partial, "wb") as file, _progress(url, announced, quiet) as advance:
                    # read1, not read: read(n) waits for all n bytes, so a dripping
                    # server would keep it (and the watchdog's verdict) waiting.
                    while chunk := response.read1(1 << 16):
                        received += len(chunk)
                        if received > limit:
                            raise DownloadError(_too_big(url, "sent more", limit))
                        file.write(chunk)
                        digest.update(chunk)
                        watchdog.add(len(chunk))
                        advance(len(chunk))
        except urllib.error.HTTPError as error:
            if error.code >= 500 or error.code == 429:
                raise _TransientError(f"HTTP {error.code} {error.reason}") from None
            reason = " ".join(str(error.reason).split())  # a redirect loop's reason spans lines
            raise DownloadError(
                f"{url} answered HTTP {error.code} {reason}. Check the URL or preset name; "
                "nothing was cached."
            ) from None
        except ZooError:  # our own verdicts (too big) are final
            raise
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            if watchdog.verdict:
                raise _TransientError(watchdog.verdict) from None
            reason = getattr(error, "reason", None) or error
            raise _TransientError(f"{type(error).__name__}: {reason} (timeout {timeout:g}s)") from None
    if watchdog.verdict:  # the socket was shut down; the body may only look complete
        raise _TransientError(watchdog.verdict)
    expected = announced if announced is not None else (limit if exact else None)
    if expected is not None and received < expected:
        raise _TransientError(f"connection closed after {received} of {expected} bytes")
    return digest.hexdigest(), received


def _content_length(response):
    try:
        value = int(response.headers.get("Content-Length") or -1)
    except ValueError:
        return None
    return value if value >= 0 else None


def _too_big(url, what, limit):
    return (
        f"{url} {what} than the {limit} bytes expected (the manifest's size, or "
        "ZOO_MAX_DOWNLOAD_BYTES when none is known); stopped, nothing was cached."
    )


class _Watchdog:
    """Gives up on a download that is too slow as a whole.

    urllib's timeout bounds each read, so a server that drips a byte a second
    never trips it, and one that never finishes its headers holds the caller
    forever. Every `window` seconds this checks that the headers arrived and,
    after the first window of body, that at least `min_speed * window` bytes
    came in; if not it shuts the connection's socket down, which ends the
    blocked read, and records its verdict. Written by hand: urllib, requests
    and httpx all bound single reads, not a whole transfer.
    """

    def __init__(self, window, min_speed):
        self.window, self.min_speed = window, min_speed
        self.verdict = None
        self.received = 0
        self._headers = False
        self._sockets = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="zoo-download-watchdog")

    def watch(self, sock):
        with self._lock:
            self._sockets.append(sock)
            if self.verdict:
                _shut(sock)

    def headers_arrived(self):
        self._headers = True

    def add(self, count):
        self.received += count

    def _watch(self):
        baseline = None
        while not self._stop.wait(self.window):
            if not self._headers:
                self._abort(f"no response within {self.window:g}s (ZOO_DOWNLOAD_TIMEOUT)")
                return
            if baseline is not None and self.received - baseline < self.min_speed * self.window:
                self._abort(
                    f"too slow: {self.received - baseline} bytes in {self.window:g}s, under "
                    f"ZOO_DOWNLOAD_MIN_SPEED ({self.min_speed:g} bytes/s, measured over "
                    "ZOO_DOWNLOAD_TIMEOUT seconds)"
                )
                return
            baseline = self.received

    def _abort(self, verdict):
        with self._lock:
            self.verdict = verdict
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # closed already


class _Watched:
    """Mixed into an HTTP(S) connection: shows its socket to a `_Watchdog` once connected."""

    def __init__(self, *args, watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self.watchdog = watchdog

    def connect(self):
        super().connect()
        self.watchdog.watch(self.sock)


class _WatchedHTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _WatchedHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    def __init__(self, watchdog):
        urllib.request.HTTPSHandler.__init__(self)
        self.watchdog = watchdog

    def http_open(self, request):
        return self.do_open(_WatchedHTTPConnection, request, watchdog=self.watchdog)

    def https_open(self, request):
        return self.do_open(_WatchedHTTPSConnection, request, context=self._context, watchdog=self.watchdog)


def _opener(watchdog):
    """urllib's opener for http(s) only (proxies and redirects included): a
    redirect to file:// or ftp:// goes nowhere."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), _WatchedHandler(watchdog),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


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

def _unpack_preset(archive, staging, unpacked):
    """Extract `archive` safely into `unpacked`, then move its preset (lifting
    a single wrapping folder) into `staging`."""
    unpacked.mkdir()
    extract_archive(archive, unpacked)
    root = unpacked
    children = list(unpacked.iterdir())
    if not (unpacked / presets.MANIFEST_FILE).exists() and len(children) == 1 and children[0].is_dir():
        root = children[0]
    for item in root.iterdir():
        os.replace(item, staging / item.name)


def extract_archive(archive, target):
    """Extract a .tar(.gz) or .zip, refusing anything that could escape `target`.

    Written by hand rather than `tarfile`'s data filter because the zoo also
    refuses links pointing inside the folder, covers zip files the same way,
    and caps the total size before writing a byte.
    """
    archive, target = Path(archive), Path(target)
    limit = settings.max_archive_bytes()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as bundle:
            members = [(info.filename, _zip_kind(info), info.file_size) for info in bundle.infolist()]
            _check_members(archive, members, limit)
            for info in bundle.infolist():
                _write_member(target, info.filename, info.is_dir(), lambda: bundle.open(info))
        return
    try:
        bundle = tarfile.open(archive, "r:*")
    except tarfile.TarError:
        raise UnsafeArchiveError(
            f"{archive} is not a readable .tar.gz, .tgz, .tar or .zip archive (the file is damaged, "
            "or another kind of file)."
        ) from None
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
    mode = info.external_attr >> 16  # Unix mode bits; 0 when the zip was made elsewhere
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special file"  # a FIFO, device or socket
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
    """A preset folder in a Hugging Face repository, through huggingface_hub's
    own cache: the manifest first, then only the files it lists."""
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError(
            "hf:// sources need the huggingface_hub package: pip install 'keras-zoo[hf]'."
        ) from None
    repo_id, _, revision = location.partition("@")
    offline = settings.is_offline()
    try:
        with _quiet_logger("huggingface_hub"):  # its retries log to the terminal; the error below says it all
            manifest = huggingface_hub.hf_hub_download(
                repo_id, presets.MANIFEST_FILE, revision=revision or None, local_files_only=offline
            )
            # glob.escape: the hub matches these patterns with fnmatch, which reads "[" as a class.
            listed = [glob.escape(name) for name in presets.read_manifest(Path(manifest).parent)]
            folder = huggingface_hub.snapshot_download(
                repo_id, revision=revision or None, local_files_only=offline,
                allow_patterns=[presets.MANIFEST_FILE, *listed],
            )
    except ZooError:
        raise
    except Exception as error:  # its errors vary by version; name the repo and the fix
        hint = "it is not in the Hugging Face cache and offline mode is on" if offline else str(error)
        hint = " ".join(hint.split()).rstrip(".")
        raise DownloadError(f"Could not get hf://{location}: {hint}.") from error
    verified(folder, "Delete it from the Hugging Face cache (`hf cache delete`) and load it again.",
             links_outside=True)
    return Path(folder)


@contextlib.contextmanager
def _quiet_logger(name):
    """Only errors from logger `name` (and its children) inside the block."""
    target = logging.getLogger(name)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


def _from_kaggle(handle):
    try:
        import kagglehub
    except ImportError:
        raise MissingDependencyError(
            "kaggle:// sources need the kagglehub package: pip install 'keras-zoo[kaggle]'."
        ) from None
    if settings.is_offline():
        raise OfflineError(f"Offline mode is on; kaggle://{handle} cannot be fetched.")
    try:
        folder = kagglehub.model_download(handle)
    except Exception as error:  # kagglehub raises several unrelated types
        raise DownloadError(f"Could not get kaggle://{handle}: {error}.") from error
    verified(folder, "Delete it from kagglehub's cache and load it again.")
    return Path(folder)


# ------------------------------------------------------------------------ cache

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
