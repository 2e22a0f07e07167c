"""Presets hosted on the Hugging Face hub (hf://) and on Kaggle (kaggle://),
fetched through huggingface_hub and kagglehub into their own caches: the
manifest first, then only the files it lists, then verified.
"""

import contextlib
import glob
import logging
from pathlib import Path

from zoo import settings
from zoo.errors import ChecksumError, DownloadError, MissingDependencyError, OfflineError, ZooError
from zoo.hub import folder_format


def _huggingface_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError(
            "hf:// sources need the huggingface_hub package: pip install 'keras-zoo[hf]'."
        ) from None
    return huggingface_hub


def from_hugging_face(location):
    """A preset folder in a Hugging Face repository, through huggingface_hub's
    own cache: the manifest first, then only the files it lists."""
    huggingface_hub = _huggingface_hub()
    repo_id, _, revision = location.partition("@")
    offline = settings.is_offline()
    try:
        with _quiet_logger("huggingface_hub"):  # its retries log to the terminal; the error below says it all
            manifest = huggingface_hub.hf_hub_download(
                repo_id, folder_format.MANIFEST_FILE, revision=revision or None, local_files_only=offline
            )
            # glob.escape: the hub matches these patterns with fnmatch, which reads "[" as a class.
            listed = [glob.escape(name) for name in folder_format.read_manifest(Path(manifest).parent)]
            folder = huggingface_hub.snapshot_download(
                repo_id, revision=revision or None, local_files_only=offline,
                allow_patterns=[folder_format.MANIFEST_FILE, *listed],
            )
    except ZooError:
        raise
    except Exception as error:  # its errors vary by version; name the repo and the fix
        hint = "it is not in the Hugging Face cache and offline mode is on" if offline else str(error)
        hint = " ".join(hint.split()).rstrip(".")
        raise DownloadError(f"Could not get hf://{location}: {hint}.") from error
    folder_format.verify_folder(folder, hint="Delete it from the Hugging Face cache (`hf cache delete`) and load it again.",
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


def from_kaggle(handle):
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
    folder_format.verify_folder(folder, hint="Delete it from kagglehub's cache and load it again.")
    return Path(folder)


@contextlib.contextmanager
def _hub_errors(location):
    """huggingface_hub's errors (they vary by version) as one DownloadError
    naming the repository and the reason."""
    offline = settings.is_offline()
    try:
        with _quiet_logger("huggingface_hub"):
            yield
    except ZooError:
        raise
    except Exception as error:
        hint = "it is not in the Hugging Face cache and offline mode is on" if offline else str(error)
        hint = " ".join(hint.split()).rstrip(".")
        raise DownloadError(f"Could not get hf://{location}: {hint}.") from error


def hugging_face_holds_preset(location):
    """Whether hf://`location` holds a zoo preset (a manifest.json) rather
    than a transformers checkpoint."""
    huggingface_hub = _huggingface_hub()
    repo_id, _, revision = location.partition("@")
    if settings.is_offline():
        try:
            huggingface_hub.hf_hub_download(repo_id, folder_format.MANIFEST_FILE, revision=revision or None,
                                            local_files_only=True)
            return True
        except Exception:  # not cached as a preset: the checkpoint path says what is missing
            return False
    with _hub_errors(location):
        files = huggingface_hub.list_repo_files(repo_id, revision=revision or None)
    return folder_format.MANIFEST_FILE in files


CHECKPOINT_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json",
                    "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "vocab.txt")


def checkpoint_from_hugging_face(location):
    """The transformers checkpoint files of hf://`location` (config, the
    safetensors weights, the tokenizer; never a pickle), in huggingface_hub's
    cache, each LFS file checked against the sha256 the hub publishes."""
    huggingface_hub = _huggingface_hub()
    repo_id, _, revision = location.partition("@")
    if settings.is_offline():
        with _hub_errors(location):
            return Path(huggingface_hub.snapshot_download(
                repo_id, revision=revision or None, local_files_only=True, allow_patterns=list(CHECKPOINT_FILES)))
    with _hub_errors(location):
        info = huggingface_hub.HfApi().model_info(repo_id, revision=revision or None, files_metadata=True)
        siblings = {sibling.rfilename: sibling for sibling in info.siblings or []}
        wanted = _checkpoint_files(location, siblings)
        folder = Path(huggingface_hub.snapshot_download(
            repo_id, revision=info.sha, allow_patterns=[glob.escape(name) for name in wanted]))
    for name in wanted:
        lfs = getattr(siblings[name], "lfs", None)
        if lfs is not None:
            _check_published_sha256(folder / name, lfs.sha256, f"hf://{location}")
    return folder


def _checkpoint_files(location, siblings):
    """Which files of the repository a conversion needs; refuses a repository
    whose weights exist only as pickles."""
    wanted = [name for name in CHECKPOINT_FILES if name in siblings]
    if "model.safetensors.index.json" in siblings and "model.safetensors" not in siblings:
        wanted += sorted(name for name in siblings if name.endswith(".safetensors") and "/" not in name)
    if "config.json" not in siblings:
        raise DownloadError(f"hf://{location} has neither a zoo manifest.json nor a transformers config.json.")
    if not any(name.endswith(".safetensors") for name in wanted):
        pickles = [name for name in siblings if name.endswith((".bin", ".h5", ".msgpack", ".ckpt", ".pt"))]
        raise DownloadError(
            f"hf://{location} has no safetensors weights{f' (only {pickles[0]})' if pickles else ''}; the zoo "
            "never unpickles weights, since loading a pickle runs code from the file. Look for a "
            "model.safetensors in another revision of the repository (e.g. the safetensors conversion "
            "bot's refs/pr/N branch: hf://repo@refs/pr/N), or convert a copy you trust with transformers "
            "and load that folder."
        )
    return wanted


def _check_published_sha256(path, published, label):
    """The file's bytes must hash to what the hub publishes; a file that does
    not is removed from huggingface_hub's cache, so nothing corrupt stays."""
    actual = folder_format.sha256_of(path)
    if actual == published:
        return
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)
    raise ChecksumError(
        f"{label}: {path.name} has sha256 {actual}, but the hub publishes {published}. The file was deleted "
        "from the Hugging Face cache and nothing was converted; try again, and report it if it persists."
    )
