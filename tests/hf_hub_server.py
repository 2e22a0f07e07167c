"""A fake Hugging Face Hub on 127.0.0.1, for tests that download through huggingface_hub.

It serves model repositories laid out on disk as `root/<org>/<name>/<files...>`
and answers the requests huggingface_hub 2.4.0 makes to download them:

    HEAD/GET /{org}/{name}/resolve/{revision}/{path}            hf_hub_download (Range too)
    GET  /api/models/{org}/{name}[/revision/{revision}]         model_info, repo_info (?blobs=true, ?expand=)
    GET  /api/models/{org}/{name}/tree/{revision}[/{path}]      list_repo_tree, list_repo_files, snapshot_download
    POST /api/models/{org}/{name}/paths-info/{revision}         get_paths_info (form body: paths=..., expand=...)

Each repo has one revision: a commit sha derived from its files' paths and bytes;
"main" and that sha resolve to it. Errors carry the hub's X-Error-Code header, from
which huggingface_hub raises RepositoryNotFoundError, RevisionNotFoundError or
(Remote)EntryNotFoundError. Files named *.safetensors, *.bin, *.h5, *.msgpack,
*.model, or over 10 MiB, are LFS files: published with their sha256 (ETag,
X-Linked-Etag, lfs.sha256 / lfs.oid), the others with their git blob sha1. There
is no Xet: downloads go over plain HTTP, straight from /resolve (no CDN redirect).

`hub_environment(server, cache_dir)` points huggingface_hub at the server and at a
private cache (it re-derives the constants huggingface_hub computes at import).

Written by hand on http.server: no well-kept library serves a fake hub, and
huggingface_hub's own test suite talks to the real (staging) hub. Imports no
Keras backend, so backend-free tests can use it.
"""

import contextlib
import functools
import hashlib
import http.server
import importlib
import importlib.util
import json
import re
import threading
import types
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".model")
LFS_MIN_SIZE = 10 << 20  # bytes: a larger file is stored in LFS whatever its name
DATE = "2024-01-01T00:00:00.000Z"  # every commit's date: the answers stay deterministic


def git_blob_sha1(data):
    """The id git gives a blob: sha1 of a `blob <size>\\0` header and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@functools.lru_cache(maxsize=None)
def _digests(path, size, mtime_ns):
    """(sha256, git blob sha1) of a file; size and mtime in the key let an edit invalidate it."""
    data = Path(path).read_bytes()
    return hashlib.sha256(data).hexdigest(), git_blob_sha1(data)


@dataclass(frozen=True)
class HubFile:
    """One file of a repo, as the hub describes it."""

    path: str  # in the repo, "/"-separated
    disk: Path
    size: int
    sha256: str  # of the bytes on disk
    git_sha1: str  # of the bytes on disk
    lfs: bool
    published_sha256: str  # what the hub says the sha256 is (a test may make it lie)

    @property
    def pointer(self):
        """The LFS pointer file git stores in place of an LFS file's bytes."""
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.published_sha256}\n"
                f"size {self.size}\n").encode()

    @property
    def blob_id(self):
        return git_blob_sha1(self.pointer) if self.lfs else self.git_sha1

    @property
    def etag(self):
        return self.published_sha256 if self.lfs else self.git_sha1


@dataclass(frozen=True)
class HubRepo:
    repo_id: str
    commit: str
    files: dict  # path in repo -> HubFile

    @property
    def folders(self):
        return sorted({prefix for path in self.files for prefix in _parents(path)})


def _parents(path):
    """"a/b/c.json" -> ["a", "a/b"]"""
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def is_lfs(path, size):
    return path.endswith(LFS_SUFFIXES) or size > LFS_MIN_SIZE


def scan_repo(root, repo_id, published_sha256=None):
    """The repo `repo_id` ("org/name") under `root`, or None if there is none."""
    parts = repo_id.split("/")
    if len(parts) != 2 or any(part in ("", ".", "..") for part in parts):
        return None
    folder = Path(root, *parts)
    if not folder.is_dir():
        return None
    files = {}
    for disk in sorted(p for p in folder.rglob("*") if p.is_file()):
        path = disk.relative_to(folder).as_posix()
        stat = disk.stat()
        sha256, git_sha1 = _digests(str(disk), stat.st_size, stat.st_mtime_ns)
        published = (published_sha256 or {}).get(f"{repo_id}/{path}", sha256)
        files[path] = HubFile(path, disk, stat.st_size, sha256, git_sha1, is_lfs(path, stat.st_size), published)
    # The commit depends on the real bytes only: publishing another sha256 changes no revision.
    commit = hashlib.sha1("".join(f"{p}\0{f.sha256}\n" for p, f in files.items()).encode()).hexdigest()
    return HubRepo(repo_id, commit, files)


class HubError(Exception):
    """An error answer, with the X-Error-Code huggingface_hub turns into its own exception."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


# JSON shapes ---------------------------------------------------------------

def _expanded(repo):
    """What `expand=true` adds to a tree entry: its last commit and security scan."""
    return {"lastCommit": {"id": repo.commit, "title": "Upload files", "date": DATE},
            "securityFileStatus": {"status": "safe", "avScan": {"virusFound": False, "virusNames": None},
                                   "pickleImportScan": None}}


def file_entry(repo, file, expand=False):
    entry = {"type": "file", "oid": file.blob_id, "size": file.size, "path": file.path}
    if file.lfs:
        entry["lfs"] = {"oid": file.published_sha256, "size": file.size, "pointerSize": len(file.pointer)}
    return entry | (_expanded(repo) if expand else {})


def folder_entry(repo, folder, expand=False):
    inside = "".join(f.blob_id for p, f in repo.files.items() if p.startswith(folder + "/"))
    oid = hashlib.sha1(f"{folder}\0{inside}".encode()).hexdigest()  # stands in for git's tree id
    entry = {"type": "directory", "oid": oid, "size": 0, "path": folder}
    return entry | (_expanded(repo) if expand else {})


def sibling(file, blobs):
    """A `siblings` item of model_info; `blobs=true` adds size, blob id and LFS details."""
    if not blobs:
        return {"rfilename": file.path}
    entry = {"rfilename": file.path, "size": file.size, "blobId": file.blob_id}
    if file.lfs:
        entry["lfs"] = {"sha256": file.published_sha256, "size": file.size, "pointerSize": len(file.pointer)}
    return entry


def model_info(repo, blobs=False, expand=None):
    org = repo.repo_id.split("/")[0]
    info = {"_id": repo.commit[:24], "id": repo.repo_id, "modelId": repo.repo_id, "author": org,
            "sha": repo.commit, "lastModified": DATE, "createdAt": DATE, "private": False,
            "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
            "siblings": [sibling(f, blobs) for f in repo.files.values()]}
    if blobs:
        info["usedStorage"] = sum(f.size for f in repo.files.values())
    if expand:  # only the properties asked for, as the hub does
        info = {key: value for key, value in info.items() if key in {"_id", "id", *expand}}
    return info


def _byte_range(header, size):
    """(first, last) byte of a `Range: bytes=...` header, inclusive; None for the whole file."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header or "")
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # "bytes=-N": the last N bytes
        return max(size - int(last), 0), size - 1
    return int(first), min(int(last), size - 1) if last else size - 1


# The server ----------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's pooled client expects

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def log_message(self, format, *args):
        pass  # keep test output quiet

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        # Unquote segment by segment: a revision is one segment even if it holds "/" ("refs%2Fpr%2F1").
        segments = [urllib.parse.unquote(s) for s in url.path.split("/")[1:]]
        self.server.hub.record(method, "/" + "/".join(segments))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # read, to keep the connection in step
        params = urllib.parse.parse_qs(url.query)
        if method == "POST":
            params |= urllib.parse.parse_qs(body.decode())
        try:
            status, headers, payload = self._route(method, segments, params)
        except HubError as error:
            status, headers = error.status, {"X-Error-Code": error.code, "X-Error-Message": error.message,
                                             **error.headers}
            payload = json.dumps({"error": error.message}).encode()
            headers["Content-Type"] = "application/json"
        self.send_response(status)
        for name, value in {"Content-Length": str(len(payload)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def _route(self, method, segments, params):
        if segments[:2] == ["api", "models"] and len(segments) >= 4:
            return self._api(method, "/".join(segments[2:4]), segments[4:], params)
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("HEAD", "GET"):
            repo = self._open("/".join(segments[:2]), segments[3])
            return self._resolve(repo, "/".join(segments[4:]), method)
        raise HubError(404, "NotFound", "Sorry, we can't find the page you are looking for.")

    def _api(self, method, repo_id, rest, params):
        flag = functools.partial(_flag, params)
        if method == "GET" and not rest:
            return _json(model_info(self._open(repo_id, "main"), flag("blobs"), params.get("expand")))
        if method == "GET" and len(rest) == 2 and rest[0] == "revision":
            return _json(model_info(self._open(repo_id, rest[1]), flag("blobs"), params.get("expand")))
        if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
            repo = self._open(repo_id, rest[1])
            return _json(self._tree(repo, "/".join(rest[2:]), flag("recursive"), flag("expand")))
        if method == "POST" and len(rest) == 2 and rest[0] == "paths-info":
            repo = self._open(repo_id, rest[1])
            return _json(self._paths_info(repo, params.get("paths", []), flag("expand")))
        raise HubError(404, "NotFound", "Sorry, we can't find the page you are looking for.")

    def _open(self, repo_id, revision):
        """The repo at `revision`: the hub's 404s (401 for an anonymous caller) otherwise."""
        repo = self.server.hub.repo(repo_id)
        if repo is None:
            anonymous = self.headers.get("Authorization") is None
            raise HubError(401 if anonymous else 404, "RepoNotFound", "Repository not found")
        if revision not in ("main", repo.commit):
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo

    def _resolve(self, repo, path, method):
        file = repo.files.get(path)
        if file is None:  # with the commit, so that huggingface_hub caches the absence
            raise HubError(404, "EntryNotFound", f"{path} does not exist on \"{repo.commit}\"",
                           {"X-Repo-Commit": repo.commit})
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{file.etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if file.lfs:
            headers |= {"X-Linked-Etag": f'"{file.etag}"', "X-Linked-Size": str(file.size)}
        span = _byte_range(self.headers.get("Range"), file.size)
        if span is not None and span[0] > span[1]:
            raise HubError(416, "RangeNotSatisfiable", "Range not satisfiable",
                           {"Content-Range": f"bytes */{file.size}"})
        if span is not None:
            headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{file.size}"
        first, last = span or (0, file.size - 1)
        headers["Content-Length"] = str(last - first + 1)  # a HEAD answer says it too, without the bytes
        return 206 if span else 200, headers, _read(file.disk, first, last - first + 1) if method == "GET" else b""

    def _tree(self, repo, path, recursive, expand):
        if path and path not in repo.folders:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on \"{repo.commit}\"")
        prefix = path + "/" if path else ""

        def listed(entry_path):
            rest = entry_path[len(prefix):]
            return entry_path.startswith(prefix) and (recursive or "/" not in rest)

        return ([folder_entry(repo, f, expand) for f in repo.folders if listed(f)] +
                [file_entry(repo, f, expand) for p, f in repo.files.items() if listed(p)])

    def _paths_info(self, repo, paths, expand):
        """The entries of the paths that exist; the others are left out, as on the hub."""
        return [file_entry(repo, repo.files[p], expand) if p in repo.files else folder_entry(repo, p, expand)
                for p in paths if p in repo.files or p in repo.folders]


def _flag(params, name):
    """A boolean query or form parameter ("true" / "false", as httpx writes them)."""
    return params.get(name, ["false"])[-1].lower() in ("1", "true")


def _read(path, start, length):
    with open(path, "rb") as file:
        file.seek(start)
        return file.read(length)


def _json(value):
    return 200, {"Content-Type": "application/json"}, json.dumps(value).encode()


class HubServer:
    """Serves the repos under `root` (`root/<org>/<name>/...`) from a background thread.

    url                                       "http://127.0.0.1:<port>"
    published_sha256["org/name/path"] = sha   publish another sha256 for an LFS file (bytes unchanged)
    requests                                  [(method, unquoted path without query)] received, in order
    downloads                                 ["org/name/path"] of the GETs on /resolve (file bodies)
    commit(repo_id), repo(repo_id)            the repo's commit sha; its files as served
    """

    def __init__(self, root):
        self.root = Path(root)
        self.published_sha256 = {}
        self.requests = []
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.hub = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="hf-hub-server", daemon=True)  # a short poll: a quick close
        self._thread.start()

    @property
    def url(self):
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def downloads(self):
        """The files ("org/name/path") whose bytes were asked for (GET on /resolve), in order."""
        with self._lock:
            gets = [path for method, path in self.requests if method == "GET"]
        return ["/".join(p.split("/")[1:3] + p.split("/")[5:]) for p in gets if p.split("/")[3:4] == ["resolve"]]

    def repo(self, repo_id):
        """The repo as the server sees it now (commit sha, files), or None."""
        return scan_repo(self.root, repo_id, self.published_sha256)

    def commit(self, repo_id):
        return self.repo(repo_id).commit

    def record(self, method, path):
        with self._lock:
            self.requests.append((method, path))

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# Pointing huggingface_hub at it ---------------------------------------------

HF_MODULES_WITH_CONSTANT_COPIES = (  # modules that copied a constant at import (`from ..constants import X`)
    "huggingface_hub.constants",
    "huggingface_hub.utils._cache_manager",
    "huggingface_hub.utils._cache_assets",
    "huggingface_hub.utils._git_credential",
)
HF_MODULES_WITH_ENDPOINT_COPIES = ("huggingface_hub.utils._http", "huggingface_hub.hf_api")  # see below


def _environment(url, cache_dir, offline):
    """The variables huggingface_hub reads: None unsets one."""
    return {
        "HF_ENDPOINT": url, "HF_HOME": str(cache_dir), "HF_HUB_CACHE": str(cache_dir),
        "HF_HUB_OFFLINE": "1" if offline else None, "TRANSFORMERS_OFFLINE": None,
        "HF_HUB_DISABLE_XET": "1",  # plain HTTP downloads, from this server
        "HF_HUB_DISABLE_TELEMETRY": "1",  # also stops the user agent fetching /api/agent-harnesses
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "HF_TOKEN": None, "HUGGING_FACE_HUB_TOKEN": None,
        "HF_OIDC_RESOURCE": None,  # a user's token never goes to the test server
        "HUGGINGFACE_CO_STAGING": None, "HUGGINGFACE_HUB_CACHE": None, "HF_ASSETS_CACHE": None,
        "HUGGINGFACE_ASSETS_CACHE": None, "HF_XET_CACHE": None, "HF_TOKEN_PATH": None,
    }


def _constants_from_environment():
    """The values huggingface_hub/constants.py computes from the current environment,
    by running a fresh copy of it (the imported one computed them at import)."""
    current = importlib.import_module("huggingface_hub.constants")
    spec = importlib.util.spec_from_file_location("_fresh_hf_constants", current.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    return {name: value for name, value in vars(fresh).items()
            if not name.startswith("__") and not callable(value) and not isinstance(value, types.ModuleType)}


def _point_huggingface_hub_at(url, cache_dir, patch, offline):
    for name, value in _environment(url, cache_dir, offline).items():
        if value is None:
            patch.delenv(name, raising=False)
        else:
            patch.setenv(name, value)
    fresh = _constants_from_environment()
    for module in map(importlib.import_module, HF_MODULES_WITH_CONSTANT_COPIES):
        for name, value in fresh.items():
            if hasattr(module, name) and getattr(module, name) != value:
                patch.setattr(module, name, value)
    # Derived from ENDPOINT at import outside constants.py: the origins trusted with
    # redirects and auth, and the endpoint of the default HfApi behind `huggingface_hub.model_info` & co.
    http = importlib.import_module("huggingface_hub.utils._http")
    patch.setattr(http, "_HUB_ORIGINS", http._HUB_ORIGINS | {http._url_origin(url)})
    patch.setattr(importlib.import_module("huggingface_hub.hf_api").api, "endpoint", url)


@contextlib.contextmanager
def hub_environment(server, cache_dir, monkeypatch=None, *, offline=False):
    """Point huggingface_hub at `server` (a HubServer, or a url) and at the cache `cache_dir`
    (HF_HUB_CACHE and HF_HOME both), Xet, telemetry and implicit tokens off; online unless `offline`.

    Everything is restored on exit; given pytest's `monkeypatch`, at the end of the test
    instead. Nesting works (e.g. `offline=True` inside an online block). Yields `cache_dir`.
    """
    # Imported first, so that their import-time values are the ambient ones (restored on exit).
    for module in (*HF_MODULES_WITH_CONSTANT_COPIES, *HF_MODULES_WITH_ENDPOINT_COPIES):
        importlib.import_module(module)

    url = server if isinstance(server, str) else server.url
    with contextlib.ExitStack() as stack:
        patch = monkeypatch or stack.enter_context(pytest.MonkeyPatch.context())
        _point_huggingface_hub_at(url.rstrip("/"), Path(cache_dir), patch, offline)
        yield Path(cache_dir)
