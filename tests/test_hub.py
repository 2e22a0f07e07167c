"""Downloads, the cache and offline mode, against a real HTTP server on 127.0.0.1."""

import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
import zipfile

import pytest
from conftest import assert_same_outputs

import zoo
from zoo import settings
from zoo.hub import cache, folder_format, sources

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
    root = cache.cache_root()
    return not root.exists() or not any(root.iterdir())


def test_folder_url_downloads_verifies_caches_and_loads(served):
    server, model = served
    loaded = zoo.load(f"{server.url}/p/")
    assert_same_outputs(model, loaded, model.example_batch()[0], atol=0)
    assert server.requests_for(WEIGHTS) == 1
    (entry, record), = cache.cache_entries()
    assert record["location"] == f"{server.url}/p/"
    zoo.load(f"{server.url}/p/")  # second time: from the cache
    assert server.requests_for(WEIGHTS) == 1


def test_a_load_hashes_the_weights_once(served, monkeypatch):
    """A download hashes the bytes as they stream in, and the staged folder is
    not hashed again; a load from the cache verifies the entry once."""
    server, _ = served
    hashed = []
    sha256_of = folder_format.sha256_of
    monkeypatch.setattr(folder_format, "sha256_of", lambda path, *args: hashed.append(path.name) or sha256_of(path, *args))
    zoo.load(f"{server.url}/p/")
    assert hashed.count("model.weights.h5") == 0
    zoo.load(f"{server.url}/p/")
    assert hashed.count("model.weights.h5") == 1


@pytest.mark.parametrize("archive", ["p.tar.gz", "p.zip"])
def test_archive_urls_with_a_sha256_pin(served, archive):
    server, model = served
    digest = folder_format.sha256_of(server.root / archive)
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
    expected = folder_format.sha256_of(server.root / "p" / "model.weights.h5")
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
from zoo.hub import folder_format, resolving
folder = resolving.resolve(sys.argv[1], quiet=True)
print(folder, folder_format.sha256_of(folder / "model.weights.h5"))
"""


def test_eight_processes_download_once_and_agree(served):
    server, _ = served
    for name in folder_format.read_manifest(server.root / "p"):
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
    assert digest == folder_format.sha256_of(server.root / "p" / "model.weights.h5")


HOLD_THE_LOCK = """
import sys, time, filelock
with filelock.FileLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_lock_left_by_a_killed_process_does_not_hang_the_next(served):
    server, model = served
    source = sources.parse_source(f"{server.url}/p/")
    lock = settings.zoo_home() / "locks" / f"{source.entry_name}.lock"
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
@pytest.mark.backend_free
def test_hostile_archives_are_refused(tmp_path, monkeypatch, entries, message):
    monkeypatch.setenv("ZOO_MAX_ARCHIVE_BYTES", "4096")
    archive = tmp_path / "hostile.tar.gz"
    make_archive(archive, entries)
    with pytest.raises(zoo.UnsafeArchiveError, match=message):
        zoo.load(str(archive))
    assert cache_is_empty()
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.backend_free
def test_a_zip_with_a_parent_entry_is_refused(tmp_path):
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../evil.txt", "x")
    with pytest.raises(zoo.UnsafeArchiveError, match="points outside the folder"):
        zoo.load(str(archive))


def test_built_in_weights_come_from_the_bundle_or_the_mirror(served, monkeypatch):
    server, model = served
    pin = folder_format.sha256_of(server.root / "p" / "manifest.json")
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
        assert [record["label"] for _, record in cache.cache_entries()] == ["dense-tiny.mirrored"]
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


@pytest.mark.backend_free
@pytest.mark.parametrize("scheme, package", [("hf", "huggingface_hub"), ("kaggle", "kagglehub")])
def test_hub_sources_without_their_package_say_what_to_install(monkeypatch, scheme, package):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(zoo.MissingDependencyError, match=f"pip install 'keras-zoo\\[{scheme}\\]'"):
        zoo.load(f"{scheme}://owner/model")


def test_cli_download_and_cache_commands(served, capsys, monkeypatch):
    from zoo.cli.commands import main

    monkeypatch.setenv("COLUMNS", "250")
    server, _ = served
    assert main(["download", f"{server.url}/p/", "--quiet"]) == 0
    assert "-> " in capsys.readouterr().out
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert "1 cached presets" in out and f"{server.url}/p/" in out
    assert main(["cache", "verify"]) == 0
    assert "ok" in capsys.readouterr().out

    (entry, _), = cache.cache_entries()
    (entry / "model.weights.h5").write_bytes(b"tampered")
    assert main(["cache", "verify"]) == 1
    assert "CORRUPT" in capsys.readouterr().out

    assert main(["cache", "clear", "no-such-entry"]) == 0
    assert "removed 0 cache entries" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 1 cache entry" in capsys.readouterr().out
    assert cache.cache_entries() == []
    assert main(["download", f"{server.url}/absent/", "--quiet"]) == 2
    assert "HTTP 404" in capsys.readouterr().err


@pytest.mark.backend_free
def test_clear_removes_abandoned_downloads_but_not_running_ones():
    import filelock

    root = cache.cache_root()
    abandoned = root / ".dead-0123456789abcdef.partial-aaaaaaaa"
    running = root / ".busy-0123456789abcdef.partial-bbbbbbbb"
    for folder in (abandoned, running):
        folder.mkdir(parents=True)
        (folder / "model.weights.h5").write_bytes(b"half")
    (settings.zoo_home() / "locks").mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(settings.zoo_home() / "locks" / "busy-0123456789abcdef.lock"):
        removed = cache.clear_cache()
    assert removed == [abandoned]
    assert running.exists() and not abandoned.exists()


# ------------------------------------------------- bounded downloads (sizes, time)

def leaves_nothing_behind():
    """Nothing cached and no partial file anywhere in the cache."""
    root = cache.cache_root()
    return not root.exists() or not list(root.rglob("*"))


def test_the_manifest_records_each_files_size(served):
    server, _ = served
    files = folder_format.read_manifest(server.root / "p")
    assert files["model.weights.h5"].size == (server.root / "p" / "model.weights.h5").stat().st_size
    assert all(len(entry.sha256) == 64 for entry in files.values())


def test_an_endless_file_stops_at_the_size_the_manifest_gives(served):
    server, _ = served
    server.behaviours[WEIGHTS] = "endless"
    size = folder_format.read_manifest(server.root / "p")["model.weights.h5"].size
    with pytest.raises(zoo.DownloadError, match=f"sent more than the {size} bytes expected"):
        zoo.load(f"{server.url}/p/")
    assert server.requests_for(WEIGHTS) == 1  # not retried: the server is wrong, not the network
    assert server.bytes_sent[WEIGHTS] < 16 << 20  # the loopback buffers, not the 64 MiB on offer
    assert leaves_nothing_behind()


def test_an_endless_manifest_stops_at_one_mebibyte(served):
    server, _ = served
    server.behaviours["/p/manifest.json"] = "endless"
    with pytest.raises(zoo.DownloadError, match="more than the 1048576 bytes expected"):
        zoo.load(f"{server.url}/p/")
    assert leaves_nothing_behind()


def test_an_endless_archive_stops_at_the_download_cap(served, monkeypatch):
    server, _ = served
    monkeypatch.setenv("ZOO_MAX_DOWNLOAD_BYTES", str(1 << 20))
    server.behaviours["/p.tar.gz"] = "endless"
    with pytest.raises(zoo.DownloadError, match="ZOO_MAX_DOWNLOAD_BYTES"):
        zoo.load(f"{server.url}/p.tar.gz")
    assert leaves_nothing_behind()


def test_a_file_announced_larger_than_the_manifest_says_is_refused_at_once(served):
    server, _ = served
    server.behaviours[WEIGHTS] = "huge"
    with pytest.raises(zoo.DownloadError, match="announces 10000000000 bytes, more than"):
        zoo.load(f"{server.url}/p/")
    assert server.bytes_sent.get(WEIGHTS, 0) < 16 << 20
    assert leaves_nothing_behind()


def test_a_file_of_another_size_than_the_manifest_says_is_a_checksum_error(served):
    server, _ = served
    weights = server.root / "p" / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:-100])  # served as it is, with its true Content-Length
    with pytest.raises(zoo.ChecksumError, match="bytes, the manifest says"):
        zoo.load(f"{server.url}/p/")
    assert leaves_nothing_behind()


@pytest.mark.parametrize("behaviour, message", [("drip", "too slow"), ("drip-headers", "no response within")])
def test_a_dripping_server_is_given_up_on(served, monkeypatch, behaviour, message):
    """A byte every 0.01 s never trips a per-read timeout; the throughput floor does."""
    server, _ = served
    monkeypatch.setenv("ZOO_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.setenv("ZOO_DOWNLOAD_RETRIES", "1")
    server.behaviours["/p/config.json"] = behaviour
    with pytest.raises(zoo.DownloadError, match=message):
        zoo.load(f"{server.url}/p/")
    assert server.requests_for("/p/config.json") == 2
    assert leaves_nothing_behind()


def test_the_throughput_floor_is_a_setting(served, monkeypatch):
    server, model = served
    monkeypatch.setenv("ZOO_DOWNLOAD_MIN_SPEED", "fast")
    with pytest.raises(zoo.ZooError, match="ZOO_DOWNLOAD_MIN_SPEED='fast' is not valid"):
        zoo.load(f"{server.url}/p/")
    monkeypatch.setenv("ZOO_DOWNLOAD_TIMEOUT", "0.5")
    monkeypatch.setenv("ZOO_DOWNLOAD_MIN_SPEED", "0")  # no floor: a patient user waits for the drip
    server.behaviours["/p/config.json"] = "drip"
    assert_same_outputs(model, zoo.load(f"{server.url}/p/"), model.example_batch()[0], atol=0)


def test_a_format_1_manifest_without_sizes_still_loads(served):
    server, model = served
    folder = server.root / "p"
    files = {name: entry.sha256 for name, entry in folder_format.read_manifest(folder).items()}
    (folder / "manifest.json").write_text(json.dumps({"format_version": 1, "files": files}))
    assert folder_format.read_manifest(folder)["config.json"].size is None
    assert_same_outputs(model, zoo.load(f"{server.url}/p/"), model.example_batch()[0], atol=0)


# ----------------------------------------------------- the manifest is the whole truth

def add_unlisted_byte_tokenizer(folder):
    tokenizer = folder / "assets" / "tokenizer"
    tokenizer.mkdir(parents=True)
    (tokenizer / "tokenizer.json").write_text(json.dumps({"type": "byte", "options": {}}))


def test_an_unlisted_tokenizer_is_never_read(tmp_path):
    folder = zoo.save_preset(zoo.load("transformer-decoder-tiny"), tmp_path / "lm")
    add_unlisted_byte_tokenizer(folder)
    assert zoo.load(str(folder)).tokenizer is None


def test_an_unlisted_metadata_file_is_never_read(tmp_path):
    folder = zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "p", label_names=["no", "yes"])
    files = {n: vars(e) for n, e in folder_format.read_manifest(folder).items() if n != "metadata.json"}
    (folder / "manifest.json").write_text(json.dumps({"format_version": 2, "files": files}))
    assert zoo.load(str(folder)).label_names is None


def test_an_archive_entry_keeps_only_listed_files(served):
    server, model = served
    big = server.root / "p" / "assets" / "unlisted.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(300_000))
    with tarfile.open(server.root / "extra.tar.gz", "w:gz") as archive:
        archive.add(server.root / "p", arcname="p")
    loaded = zoo.load(f"{server.url}/extra.tar.gz")
    assert_same_outputs(model, loaded, model.example_batch()[0], atol=0)
    (entry, _), = cache.cache_entries()
    assert sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*") if p.is_file()) == sorted(
        [*folder_format.read_manifest(server.root / "p"), "manifest.json", cache.SOURCE_FILE])


def test_a_file_added_to_a_cache_entry_fails_verification_and_loading(served, capsys, monkeypatch):
    from zoo.cli.commands import main

    monkeypatch.setenv("COLUMNS", "300")
    server, _ = served
    url = f"{server.url}/p/"
    zoo.load(url)
    (entry, _), = cache.cache_entries()
    add_unlisted_byte_tokenizer(entry)
    assert main(["cache", "verify"]) == 1
    assert "assets/tokenizer/tokenizer.json" in capsys.readouterr().out
    with pytest.raises(zoo.ChecksumError, match=f"does not list: assets/tokenizer/tokenizer.json.*zoo download {url}"):
        zoo.load(url)


@pytest.mark.backend_free
@pytest.mark.parametrize("kind, mode", [("FIFO", stat.S_IFIFO), ("device", stat.S_IFCHR), ("socket", stat.S_IFSOCK)])
def test_a_zip_entry_marked_as_a_special_file_is_refused(tmp_path, kind, mode):
    archive = tmp_path / "special.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        info = zipfile.ZipInfo("p/config.json")
        info.external_attr = (mode | 0o644) << 16
        bundle.writestr(info, "{}")
    with pytest.raises(zoo.UnsafeArchiveError, match="a special file"):
        zoo.load(str(archive))
    assert leaves_nothing_behind()


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "a//b", ".zoo-source.json", "manifest.json", "C:/x"])
def test_a_manifest_naming_odd_paths_is_refused(tmp_path, name):
    folder = zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "p")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = {"sha256": "0" * 64, "size": 1}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(zoo.InvalidPresetError, match=re.escape(repr(name))):
        zoo.load(str(folder))


@pytest.mark.backend_free
def test_a_manifest_naming_one_file_twice_in_another_case_is_refused(tmp_path):
    """Downloads check each file as it streams in, and nothing hashes the
    folder again: two names for one file on macOS or Windows must not get in."""
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 2, "files": {
        name: {"sha256": "0" * 64, "size": 1} for name in ("config.json", "model.weights.h5", "assets/A", "assets/a")
    }}))
    with pytest.raises(zoo.InvalidPresetError, match="lists both 'assets/A' and 'assets/a'"):
        folder_format.read_manifest(tmp_path)


# --------------------------------------------------- a broken preset is never cached

def republish(folder, change):
    """Apply `change(folder)`, then write a manifest that matches: a consistent, broken preset."""
    change(folder)
    folder_format.write_manifest(folder)


def edit_config(**config):
    def change(folder):
        data = json.loads((folder / "config.json").read_text())
        data["config"].update(config)
        (folder / "config.json").write_text(json.dumps(data))
    return change


def truncate_weights(folder):
    weights = folder / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:2000])


def scramble_weights(folder):
    weights = folder / "model.weights.h5"
    weights.write_bytes(os.urandom(weights.stat().st_size))


@pytest.mark.parametrize("change, message", [
    (edit_config(num_classes=0), "config.json.*'num_classes'"),
    (truncate_weights, "model.weights.h5 holds 2,000 bytes, but config.json describes 1,119"),
    (scramble_weights, "model.weights.h5 could not be loaded as the weights of this preset"),
])
def test_a_preset_that_does_not_load_is_never_cached(served, change, message):
    server, model = served
    republish(server.root / "p", change)
    url = f"{server.url}/p/"
    for attempt in (1, 2):  # refused each time, so fetched each time
        with pytest.raises(zoo.ZooError, match=message) as caught:
            zoo.load(url)
        assert "Nothing was cached" in str(caught.value) and str(cache.cache_root()) not in str(caught.value)
        assert leaves_nothing_behind()
        assert server.requests_for("/p/manifest.json") == attempt


@pytest.mark.parametrize("change, message", [
    (truncate_weights, "model.weights.h5 holds 2,000 bytes"),
    (scramble_weights, "model.weights.h5 could not be loaded"),
    (edit_config(dropout=float("nan")), "'dropout' .* finite"),
])
def test_a_broken_local_preset_names_the_file(tmp_path, change, message):
    folder = zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "p")
    republish(folder, change)
    with pytest.raises(zoo.ZooError, match=message):
        zoo.load(str(folder))


def test_a_config_that_disagrees_with_its_weights_is_refused_before_building(tmp_path, monkeypatch):
    """34 million weights would fit in memory, but a 25 kB weights file cannot hold them."""
    folder = zoo.save_preset(zoo.load("dense-tiny"), tmp_path / "p")
    republish(folder, edit_config(num_features=10**6))
    from zoo.architectures import base

    monkeypatch.setattr(base.ZooModel, "build_graph", lambda *a: pytest.fail("built"))
    with pytest.raises(zoo.InvalidPresetError, match="config.json describes 34,000,099 float32 weights"):
        zoo.load(str(folder))


def test_zoo_download_repairs_a_damaged_entry(served, capsys):
    from zoo.cli.commands import main

    server, model = served
    url = f"{server.url}/p/"
    zoo.load(url)
    (entry, _), = cache.cache_entries()
    (entry / "model.weights.h5").write_bytes(b"damaged")
    with pytest.raises(zoo.ChecksumError, match=f"zoo download {url}"):
        zoo.load(url)
    assert main(["download", url, "--quiet"]) == 0
    assert server.requests_for(WEIGHTS) == 2
    assert main(["cache", "verify"]) == 0
    assert_same_outputs(model, zoo.load(url), model.example_batch()[0], atol=0)
    assert main(["download", url, "--quiet"]) == 0  # a sound entry is verified, not fetched again
    assert server.requests_for(WEIGHTS) == 2


DOWNLOAD_IN_BACKGROUND = """
import sys
from zoo.hub import cache, folder_format, resolving
folder = resolving.resolve(sys.argv[1], quiet=True)
folder_format.verify_folder(folder, exact=True, ignore=(cache.SOURCE_FILE,))
print("done", folder)
"""


def test_cache_clear_leaves_a_running_archive_download_alone(served):
    server, _ = served
    server.behaviours["/p.tar.gz"] = "hold"  # half the archive now, the rest on release
    url = f"{server.url}/p.tar.gz"
    worker = subprocess.Popen([sys.executable, "-c", DOWNLOAD_IN_BACKGROUND, url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while not list(cache.cache_root().glob(".*.partial-*/.archive.part-*")):
            assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read()
            time.sleep(0.05)
        (work,) = cache.cache_root().glob(".*.partial-*")
        assert cache.clear_cache() == []
        assert work.exists()
    finally:
        server.release.set()
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    assert out.startswith("done")
    assert [record["location"] for _, record in cache.cache_entries()] == [url]


def test_a_terminated_download_leaves_nothing_in_the_cache(served):
    """A regression: SIGTERM (a container stopping) ended `zoo download` before
    its work folder and partial file were removed."""
    server, _ = served
    server.behaviours["/p.tar.gz"] = "hold"
    worker = subprocess.Popen([sys.executable, "-m", "zoo", "download", f"{server.url}/p.tar.gz"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while not list(cache.cache_root().glob(".*.partial-*/.archive.part-*")):  # half the archive in
            assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read()
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    finally:
        server.release.set()
        worker.kill()
    assert worker.returncode == 128 + signal.SIGTERM and err.strip().endswith("terminated"), err[-2000:]
    assert "Traceback" not in err
    assert not [path for path in cache.cache_root().rglob("*")]


def test_a_damaged_archive_is_named_by_its_url_not_a_work_folder(served):
    server, _ = served
    (server.root / "random.zip").write_bytes(os.urandom(4000))
    (server.root / "empty.tar.gz").write_bytes(b"")
    for name in ("random.zip", "empty.tar.gz"):
        url = f"{server.url}/{name}"
        with pytest.raises(zoo.UnsafeArchiveError) as caught:
            zoo.load(url)
        message = str(caught.value)
        assert message.startswith(f"{url} is not a readable .tar.gz, .tgz, .tar or .zip archive"), message
        assert ".partial-" not in message and "\n" not in message and "Nothing was cached" in message
    assert leaves_nothing_behind()


@pytest.mark.backend_free
def test_a_malformed_url_is_one_message():
    with pytest.raises(zoo.ZooError, match=r"'http://\[::1' is not a valid URL"):
        zoo.load("http://[::1")


def test_cache_commands_survive_an_unreadable_source_record(served, capsys, monkeypatch):
    from zoo.cli.commands import main

    monkeypatch.setenv("COLUMNS", "300")
    server, _ = served
    zoo.load(f"{server.url}/p/")
    (entry, _), = cache.cache_entries()
    (entry / cache.SOURCE_FILE).write_text("{}")
    assert main(["cache", "list"]) == 0
    assert "(unreadable .zoo-source.json)" in capsys.readouterr().out
    (entry / "model.weights.h5").write_bytes(b"damaged")
    assert main(["cache", "verify"]) == 1
    assert f"Delete it: zoo cache clear {entry.name}" in capsys.readouterr().out


def test_a_read_only_zoo_home_is_one_message(monkeypatch, served):
    server, _ = served
    monkeypatch.setenv("ZOO_HOME", "/proc/zoo-home")
    with pytest.raises(zoo.ZooError, match="Cannot create /proc/zoo-home/locks .*set ZOO_HOME to a folder you can write to"):
        zoo.load(f"{server.url}/p/")


MEMORY_UNDER_ULIMIT = """
import resource
from zoo import settings
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.RLIM_INFINITY))
print(settings.usable_memory(), settings.max_model_bytes())
"""


@pytest.mark.backend_free
def test_the_model_budget_follows_the_address_space_limit():
    """Backend-free: under `ulimit -v 6G` the default budget is 3 GiB, whatever the machine's RAM."""
    result = subprocess.run([sys.executable, "-c", MEMORY_UNDER_ULIMIT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    usable, budget = map(int, result.stdout.split())
    assert usable <= 6 << 30 and budget == usable // 2
