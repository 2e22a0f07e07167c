"""Downloads, the cache and offline mode, against a real HTTP server on 127.0.0.1."""

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
import pytest

import zoo
from conftest import assert_same_outputs
from zoo import hub, presets

WEIGHTS = "/p/model.weights.h5"


@pytest.fixture
def served(preset_server):
    """The server, a dense-tiny model, and that model served as folder /p/,
    archives /p.tar.gz and /p.zip."""
    model = zoo.load("dense-tiny")
    folder = zoo.save_preset(model, preset_server.root / "p")
    with tarfile.open(preset_server.root / "p.tar.gz", "w:gz") as archive:
        archive.add(folder, arcname="p")
    with zipfile.ZipFile(preset_server.root / "p.zip", "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder).as_posix())  # files at the root
    return preset_server, model


def cache_is_empty():
    root = hub.cache_root()
    return not root.exists() or not any(root.iterdir())


def test_folder_url_downloads_verifies_caches_and_loads(served):
    server, model = served
    loaded = zoo.load(f"{server.url}/p/")
    assert_same_outputs(model, loaded, model.example_batch()[0], atol=0)
    assert server.requests_for(WEIGHTS) == 1
    (entry, record), = hub.cache_entries()
    assert record["location"] == f"{server.url}/p/"
    zoo.load(f"{server.url}/p/")  # second time: from the cache
    assert server.requests_for(WEIGHTS) == 1


@pytest.mark.parametrize("archive", ["p.tar.gz", "p.zip"])
def test_archive_urls_with_a_sha256_pin(served, archive):
    server, model = served
    digest = presets.sha256_of(server.root / archive)
    loaded = zoo.load(f"{server.url}/{archive}#sha256={digest}")
    assert_same_outputs(model, loaded, model.example_batch()[0], atol=0)


def test_a_wrong_pin_is_an_error_and_caches_nothing(served):
    server, _ = served
    with pytest.raises(zoo.ChecksumError, match="expected 0000"):
        zoo.load(f"{server.url}/p.tar.gz#sha256={'0' * 64}")
    assert cache_is_empty()
    with pytest.raises(zoo.ZooError, match="#sha256=<64 hex digits>"):
        zoo.load(f"{server.url}/p.tar.gz#md5=abc")


def test_local_archive_and_file_url(served):
    server, model = served
    x, _ = model.example_batch()
    assert_same_outputs(model, zoo.load(str(server.root / "p.zip")), x, atol=0)
    assert_same_outputs(model, zoo.load((server.root / "p").as_uri()), x, atol=0)


def test_404_names_the_url_and_caches_nothing(served):
    server, _ = served
    with pytest.raises(zoo.DownloadError, match=r"/missing/manifest.json answered HTTP 404"):
        zoo.load(f"{server.url}/missing/")
    assert cache_is_empty()


def test_a_dropped_connection_is_retried(served):
    server, model = served
    server.behaviours[WEIGHTS] = "drop-once"
    loaded = zoo.load(f"{server.url}/p/")
    assert server.requests_for(WEIGHTS) == 2
    assert_same_outputs(model, loaded, model.example_batch()[0], atol=0)


def test_a_server_error_is_retried(served):
    server, _ = served
    server.behaviours[WEIGHTS] = "503-once"
    zoo.load(f"{server.url}/p/")
    assert server.requests_for(WEIGHTS) == 2


def test_a_connection_that_always_drops_fails_and_caches_nothing(served):
    server, _ = served
    server.behaviours[WEIGHTS] = "drop"
    with pytest.raises(zoo.DownloadError, match="after 3 attempts: connection closed after"):
        zoo.load(f"{server.url}/p/")
    assert server.requests_for(WEIGHTS) == 3
    assert cache_is_empty()


def test_corrupted_bytes_are_a_checksum_error_and_cache_nothing(served):
    server, _ = served
    server.behaviours[WEIGHTS] = "corrupt"
    expected = presets.sha256_of(server.root / "p" / "model.weights.h5")
    with pytest.raises(zoo.ChecksumError) as caught:
        zoo.load(f"{server.url}/p/")
    assert "model.weights.h5" in str(caught.value) and expected in str(caught.value)
    assert "nothing was cached" in str(caught.value)
    assert cache_is_empty()


def test_a_stalled_server_times_out(served, monkeypatch):
    server, _ = served
    monkeypatch.setenv("ZOO_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.setenv("ZOO_DOWNLOAD_RETRIES", "1")
    server.behaviours[WEIGHTS] = "slow"
    with pytest.raises(zoo.DownloadError, match="timeout 0.5s"):
        zoo.load(f"{server.url}/p/")
    assert cache_is_empty()


CONCURRENT_LOAD = """
import sys, zoo
from zoo import hub, presets
folder = hub.resolve(sys.argv[1], quiet=True)
print(folder, presets.sha256_of(folder / "model.weights.h5"))
"""


def test_eight_processes_download_once_and_agree(served):
    server, _ = served
    for name in presets.read_manifest(server.root / "p"):
        server.behaviours[f"/p/{name}"] = "delay"  # keep the first download in flight
    url = f"{server.url}/p/"
    workers = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_LOAD, url], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        for _ in range(8)
    ]
    results = [worker.communicate(timeout=300) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers), [err for _, err in results]
    answers = {out.strip() for out, _ in results}
    assert len(answers) == 1  # one folder, one weights digest, for all eight
    assert server.requests_for(WEIGHTS) == 1
    assert server.requests_for("/p/manifest.json") == 1
    folder, digest = answers.pop().split()
    assert digest == presets.sha256_of(server.root / "p" / "model.weights.h5")


HOLD_THE_LOCK = """
import sys, time, filelock
with filelock.FileLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_lock_left_by_a_killed_process_does_not_hang_the_next(served):
    server, model = served
    source = hub.parse_source(f"{server.url}/p/")
    lock = hub.zoo_home() / "locks" / f"{source.entry_name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock.exists()  # the file stays behind; the lock does not
    loaded = zoo.load(f"{server.url}/p/")
    assert_same_outputs(model, loaded, model.example_batch()[0], atol=0)


@pytest.mark.parametrize("variable", ["ZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_loads_from_the_cache_and_fails_fast_without_it(served, monkeypatch, variable):
    server, model = served
    zoo.load(f"{server.url}/p/")
    requests_before = len(server.httpd.requests)
    monkeypatch.setenv(variable, "1")
    assert_same_outputs(model, zoo.load(f"{server.url}/p/"), model.example_batch()[0], atol=0)
    with pytest.raises(zoo.OfflineError) as caught:
        zoo.load(f"{server.url}/p.zip")
    assert "p.zip" in str(caught.value) and "zoo download" in str(caught.value)
    assert len(server.httpd.requests) == requests_before  # not a single request


def make_archive(path, entries):
    """A .tar.gz from (name, kind, payload) entries, kind 'file' or 'symlink'."""
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                archive.addfile(info)
            else:
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))


@pytest.mark.parametrize(
    "entries, message",
    [
        ([("p/../../evil.txt", "file", b"x")], "points outside the folder"),
        ([("/etc/evil.txt", "file", b"x")], "points outside the folder"),
        ([("p/config.json", "symlink", "/etc/passwd")], "a link"),
        ([("p/model.weights.h5", "file", b"x" * 5000)], "unpacks to more than 4096 bytes"),
    ],
)
def test_hostile_archives_are_refused(tmp_path, monkeypatch, entries, message):
    monkeypatch.setenv("ZOO_MAX_ARCHIVE_BYTES", "4096")
    archive = tmp_path / "hostile.tar.gz"
    make_archive(archive, entries)
    with pytest.raises(zoo.UnsafeArchiveError, match=message):
        zoo.load(str(archive))
    assert cache_is_empty()
    assert not (tmp_path.parent / "evil.txt").exists()


def test_a_zip_with_a_parent_entry_is_refused(tmp_path):
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../evil.txt", "x")
    with pytest.raises(zoo.UnsafeArchiveError, match="points outside the folder"):
        zoo.load(str(archive))


def test_built_in_weights_come_from_the_bundle_or_the_mirror(served, monkeypatch):
    server, model = served
    pin = presets.sha256_of(server.root / "p" / "manifest.json")
    card = {**zoo.info("dense-tiny").to_dict(), "name": "dense-tiny.mirrored",
            "weights": {"folder": "p", "manifest_sha256": pin}}
    zoo.register_preset(card)
    try:
        with pytest.raises(zoo.ZooError, match="not bundled .* ZOO_MIRROR is not set"):
            zoo.load("dense-tiny.mirrored")
        monkeypatch.setenv("ZOO_MIRROR", server.url)
        loaded = zoo.load("dense-tiny.mirrored")
        assert_same_outputs(model, loaded, model.example_batch()[0], atol=0)
        assert zoo.load("dense-tiny.mirrored", pretrained=False).count_params() == model.count_params()
        assert [record["label"] for _, record in hub.cache_entries()] == ["dense-tiny.mirrored"]
    finally:
        zoo.unregister_preset("dense-tiny.mirrored")


def test_a_mirror_serving_other_weights_is_refused(served, monkeypatch):
    server, _ = served
    card = {**zoo.info("dense-tiny").to_dict(), "name": "dense-tiny.pinned",
            "weights": {"folder": "p", "manifest_sha256": "1" * 64}}
    zoo.register_preset(card)
    monkeypatch.setenv("ZOO_MIRROR", server.url)
    try:
        with pytest.raises(zoo.ChecksumError, match="manifest.json"):
            zoo.load("dense-tiny.pinned")
        assert cache_is_empty()
    finally:
        zoo.unregister_preset("dense-tiny.pinned")


def test_hugging_face_source_from_its_offline_cache(served, tmp_path, monkeypatch):
    """A real huggingface_hub snapshot lookup, on a cache laid out as the hub lays it out."""
    _, model = served
    cache = tmp_path / "hf-cache"
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--keras-zoo--dense-tiny"
    shutil.copytree(served[0].root / "p", repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    loaded = zoo.load("hf://keras-zoo/dense-tiny@main")
    assert_same_outputs(model, loaded, model.example_batch()[0], atol=0)
    with pytest.raises(zoo.DownloadError, match="not in the Hugging Face cache and offline mode is on"):
        zoo.load("hf://keras-zoo/absent")


@pytest.mark.parametrize("scheme, package", [("hf", "huggingface_hub"), ("kaggle", "kagglehub")])
def test_hub_sources_without_their_package_say_what_to_install(monkeypatch, scheme, package):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(zoo.MissingDependencyError, match=f"pip install 'keras-zoo\\[{scheme}\\]'"):
        zoo.load(f"{scheme}://owner/model")


def test_cli_download_and_cache_commands(served, capsys, monkeypatch):
    from zoo.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    server, _ = served
    assert main(["download", f"{server.url}/p/", "--quiet"]) == 0
    assert "-> " in capsys.readouterr().out
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "1 cached presets" in out and f"{server.url}/p/" in out
    assert main(["cache", "verify"]) == 0
    assert "ok" in capsys.readouterr().out

    (entry, _), = hub.cache_entries()
    (entry / "model.weights.h5").write_bytes(b"tampered")
    assert main(["cache", "verify"]) == 1
    assert "CORRUPT" in capsys.readouterr().out

    assert main(["cache", "clear", "no-such-entry"]) == 0
    assert "removed 0 cache entries" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 cache entry" in capsys.readouterr().out
    assert hub.cache_entries() == []
    assert main(["download", f"{server.url}/absent/", "--quiet"]) == 2
    assert "HTTP 404" in capsys.readouterr().err


def test_clear_removes_abandoned_downloads_but_not_running_ones():
    import filelock

    root = hub.cache_root()
    abandoned = root / ".dead-0123456789abcdef.partial-aaaaaaaa"
    running = root / ".busy-0123456789abcdef.partial-bbbbbbbb"
    for folder in (abandoned, running):
        folder.mkdir(parents=True)
        (folder / "model.weights.h5").write_bytes(b"half")
    (hub.zoo_home() / "locks").mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(hub.zoo_home() / "locks" / "busy-0123456789abcdef.lock"):
        removed = hub.clear_cache()
    assert removed == [abandoned]
    assert running.exists() and not abandoned.exists()
