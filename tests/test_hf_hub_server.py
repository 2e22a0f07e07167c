"""huggingface_hub, unpatched, downloads from tests/hf_hub_server.py as from the hub.

Backend-free: nothing here imports Keras, TensorFlow, JAX or torch.
"""

import hashlib
import json
import os
import random
import urllib.request
from pathlib import Path

import pytest

from hf_hub_server import HubServer, git_blob_sha1, hub_environment

hf = pytest.importorskip("huggingface_hub")
errors = pytest.importorskip("huggingface_hub.errors")

pytestmark = pytest.mark.backend_free

REPO = "keras-zoo/tiny"


@pytest.fixture
def files(tmp_path):
    """The repo's files, written under tmp_path/hub/keras-zoo/tiny."""
    contents = {
        "config.json": json.dumps({"units": 4}).encode(),
        "model.safetensors": random.Random(0).randbytes(4096),  # a stand-in for weights
        "assets/vocab.txt": b"a\nb\nc\n",
    }
    for path, data in contents.items():
        target = tmp_path / "hub" / REPO / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return contents


@pytest.fixture
def server(tmp_path, files):
    with HubServer(tmp_path / "hub") as server, hub_environment(server, tmp_path / "cache"):
        yield server


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("filename", ["config.json", "model.safetensors"])
@pytest.mark.parametrize("at_commit", [False, True], ids=["main", "commit"])
def test_hf_hub_download(server, files, tmp_path, filename, at_commit):
    commit = server.commit(REPO)
    path = Path(hf.hf_hub_download(REPO, filename, revision=commit if at_commit else "main"))
    assert path.read_bytes() == files[filename]
    assert path == tmp_path / "cache" / "models--keras-zoo--tiny" / "snapshots" / commit / filename
    # The blob is named after the ETag: the sha256 for an LFS file, the git blob id otherwise.
    etag = sha256(files[filename]) if filename.endswith(".safetensors") else git_blob_sha1(files[filename])
    assert path.resolve().name == etag
    assert server.downloads == [f"{REPO}/{filename}"]


def test_snapshot_download_with_allow_patterns(server, files):
    folder = Path(hf.snapshot_download(REPO, allow_patterns=["*.json", "assets/*"]))
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == {name: files[name] for name in ("config.json", "assets/vocab.txt")}
    assert folder.name == server.commit(REPO)
    assert f"{REPO}/model.safetensors" not in server.downloads


def test_list_repo_files_and_tree(server, files):
    assert sorted(hf.list_repo_files(REPO)) == sorted(files)
    top = {entry.path: type(entry).__name__ for entry in hf.HfApi().list_repo_tree(REPO)}
    assert top == {"assets": "RepoFolder", "config.json": "RepoFile", "model.safetensors": "RepoFile"}


def test_model_info_with_files_metadata(server, files):
    info = hf.HfApi().model_info(REPO, files_metadata=True)
    assert info.id == REPO and info.sha == server.commit(REPO)
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(files)
    weights = siblings["model.safetensors"]
    assert (weights.size, weights.lfs.size, weights.lfs.sha256) == (4096, 4096, sha256(files["model.safetensors"]))
    assert siblings["config.json"].lfs is None
    assert siblings["config.json"].blob_id == git_blob_sha1(files["config.json"])
    assert hf.HfApi().model_info(REPO, revision=info.sha).sha == info.sha


def test_get_paths_info_with_expand(server, files):
    entries = hf.HfApi().get_paths_info(REPO, ["model.safetensors", "assets", "absent.txt"], expand=True)
    by_path = {entry.path: entry for entry in entries}
    assert set(by_path) == {"model.safetensors", "assets"}  # an absent path is left out, as on the hub
    weights = by_path["model.safetensors"]
    assert (weights.size, weights.lfs.size, weights.lfs.sha256) == (4096, 4096, sha256(files["model.safetensors"]))
    assert weights.lfs.pointer_size > 100 and weights.last_commit.oid == server.commit(REPO)
    assert isinstance(by_path["assets"], hf.hf_api.RepoFolder)


def test_unknown_repo_revision_and_file_raise_the_hubs_errors(server):
    with pytest.raises(errors.RepositoryNotFoundError):
        hf.hf_hub_download("keras-zoo/absent", "config.json")
    with pytest.raises(errors.RepositoryNotFoundError):
        hf.HfApi().model_info("keras-zoo/absent")
    with pytest.raises(errors.RevisionNotFoundError):
        hf.hf_hub_download(REPO, "config.json", revision="v9")
    with pytest.raises(errors.RevisionNotFoundError):
        hf.snapshot_download(REPO, revision="0" * 40)
    # Remote*: a plain EntryNotFoundError would also match the LocalEntryNotFoundError of an unreachable hub.
    with pytest.raises(errors.RemoteEntryNotFoundError):
        hf.hf_hub_download(REPO, "absent.json")


def test_a_second_download_is_served_from_the_cache(server):
    first = hf.hf_hub_download(REPO, "model.safetensors")
    server.requests.clear()
    assert hf.hf_hub_download(REPO, "model.safetensors") == first
    assert server.requests == [("HEAD", f"/{REPO}/resolve/main/model.safetensors")]  # the ETag check only
    server.requests.clear()
    assert hf.hf_hub_download(REPO, "model.safetensors", revision=server.commit(REPO)) == first
    assert server.requests == []  # a commit sha is immutable: no request at all


def test_offline_mode_reads_the_cache(server, tmp_path):
    cached = hf.hf_hub_download(REPO, "config.json")
    snapshot = hf.snapshot_download(REPO, allow_patterns=["*.json"])
    server.requests.clear()
    assert hf.hf_hub_download(REPO, "config.json", local_files_only=True) == cached
    with hub_environment(server, tmp_path / "cache", offline=True):
        assert hf.constants.HF_HUB_OFFLINE
        assert hf.hf_hub_download(REPO, "config.json") == cached
        assert hf.snapshot_download(REPO, allow_patterns=["*.json"]) == snapshot
        with pytest.raises(errors.LocalEntryNotFoundError):
            hf.hf_hub_download(REPO, "model.safetensors")  # not cached, and the server is not asked
    assert server.requests == []
    assert not hf.constants.HF_HUB_OFFLINE  # the inner block is undone


def test_published_sha256_lies_while_the_bytes_stay(server, files):
    real, published = sha256(files["model.safetensors"]), "ab" * 32
    server.published_sha256[f"{REPO}/model.safetensors"] = published
    info = hf.HfApi().model_info(REPO, files_metadata=True)
    assert {s.rfilename: s for s in info.siblings}["model.safetensors"].lfs.sha256 == published
    assert hf.HfApi().get_paths_info(REPO, "model.safetensors")[0].lfs.sha256 == published
    path = Path(hf.hf_hub_download(REPO, "model.safetensors"))
    # huggingface_hub files the bytes under the published sha256 without hashing them.
    assert path.resolve().name == published and sha256(path.read_bytes()) == real


def test_resolve_headers_and_ranges(server, files):
    url = f"{server.url}/{REPO}/resolve/main/model.safetensors"
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as response:
        assert response.headers["X-Repo-Commit"] == server.commit(REPO)
        assert response.headers["X-Linked-Etag"] == response.headers["ETag"] == f'"{sha256(files["model.safetensors"])}"'
        assert response.headers["X-Linked-Size"] == response.headers["Content-Length"] == "4096"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=100-"})) as response:
        assert response.status == 206 and response.read() == files["model.safetensors"][100:]
    with urllib.request.urlopen(f"{server.url}/{REPO}/resolve/main/config.json") as response:
        assert "X-Linked-Etag" not in response.headers
        assert response.headers["ETag"] == f'"{git_blob_sha1(files["config.json"])}"'


def test_the_commit_follows_the_contents(server, tmp_path):
    before = server.commit(REPO)
    with HubServer(tmp_path / "hub") as twin:
        assert twin.commit(REPO) == before  # deterministic
    (tmp_path / "hub" / REPO / "config.json").write_text("{}")
    assert server.commit(REPO) != before
    with pytest.raises(errors.RevisionNotFoundError):
        hf.hf_hub_download(REPO, "config.json", revision=before)


def test_hub_environment_points_at_the_server_and_restores(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://elsewhere.example")
    endpoint, cache = hf.constants.ENDPOINT, hf.constants.HF_HUB_CACHE
    with HubServer(tmp_path) as server, hub_environment(server, tmp_path / "cache"):
        assert hf.constants.ENDPOINT == server.url == os.environ["HF_ENDPOINT"]
        assert hf.constants.HUGGINGFACE_CO_URL_TEMPLATE.startswith(server.url + "/")
        assert hf.hf_api.api.endpoint == server.url
        assert hf.constants.HF_HUB_CACHE == str(tmp_path / "cache") and hf.constants.HF_HUB_DISABLE_XET
    assert (hf.constants.ENDPOINT, hf.constants.HF_HUB_CACHE) == (endpoint, cache)
    assert hf.hf_api.api.endpoint == endpoint
    assert os.environ["HF_ENDPOINT"] == "https://elsewhere.example"
