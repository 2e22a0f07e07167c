"""Presets hosted on the Hugging Face hub (hf://) and on Kaggle (kaggle://),
fetched through huggingface_hub and kagglehub into their own caches: the
manifest first, then only the files it lists, then verified.
"""

import contextlib
import glob
import logging
from pathlib import Path

from zoo import settings
from zoo.errors import DownloadError, MissingDependencyError, OfflineError, ZooError
from zoo.hub import folder_format


def from_hugging_face(location):
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
