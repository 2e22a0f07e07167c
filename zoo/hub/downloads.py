"""Bounded https downloads: a file is cut off once it passes its expected
or allowed size, a watchdog shuts a connection that stalls or drips slower than
ZOO_DOWNLOAD_MIN_SPEED, transient failures are retried, and the bytes are
checked against their sha256 while they stream in. Nothing half-written is
ever left under the target name.
"""

import hashlib
import http.client
import logging
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from zoo import settings
from zoo.errors import ChecksumError, DownloadError, ZooError
from zoo.runtime import scratch

USER_AGENT = "keras-zoo"
logger = logging.getLogger("zoo")


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
    last_error = None
    with scratch.removed_afterwards(scratch.beside(target, tag="part")) as partial:
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
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

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
