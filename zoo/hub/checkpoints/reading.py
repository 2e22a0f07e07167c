"""Reading a transformers checkpoint folder: its config.json and its
safetensors weights (one file, or shards named by an index). Never a pickle:
a folder with only pytorch_model.bin is refused, since unpickling runs code.
Needs neither torch nor transformers: the `safetensors` library reads the
tensors as numpy arrays.
"""

import json
from pathlib import Path

from zoo.errors import InvalidPresetError, MissingDependencyError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "vocab.txt")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def is_checkpoint_folder(folder):
    """Whether `folder` looks like a transformers checkpoint: a config.json
    that names a `model_type`."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and "model_type" in config


def read_checkpoint_config(folder):
    """config.json of a checkpoint folder, as a dict."""
    path = Path(folder) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidPresetError(f"{path} could not be read as JSON: {error}.") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise InvalidPresetError(f"{path} names no model_type, so it is not a transformers checkpoint config.")
    return config


def weight_files(folder):
    """The safetensors files of a checkpoint, in the order the index gives them."""
    folder = Path(folder)
    if (folder / WEIGHTS_FILE).is_file():
        return [folder / WEIGHTS_FILE]
    if (folder / INDEX_FILE).is_file():
        return [folder / name for name in _shard_names(folder / INDEX_FILE)]
    pickles = [name for name in PICKLE_FILES if (folder / name).exists()]
    if pickles:
        raise InvalidPresetError(
            f"{folder} holds its weights only as {', '.join(pickles)}, which the zoo never reads (loading a "
            "pickle runs code from the file). Get the safetensors version: most hub repositories have a "
            "model.safetensors (on the hub, see the repository's 'Files' tab, or its refs/pr/ branch opened by "
            "the safetensors convert bot); or convert a copy you trust yourself with transformers: "
            "AutoModel.from_pretrained(folder).save_pretrained(new_folder, safe_serialization=True)."
        )
    raise InvalidPresetError(f"{folder} has a config.json but no {WEIGHTS_FILE} or {INDEX_FILE}.")


def checkpoint_fingerprint(folder):
    """sha256 over the files a conversion reads (config, weights, tokenizer):
    names a converted copy after what it was made from."""
    import hashlib

    from zoo.hub.folder_format import sha256_of

    folder = Path(folder)
    names = [CONFIG_FILE, *[path.name for path in weight_files(folder)], *TOKENIZER_FILES]
    digest = hashlib.sha256()
    for name in names:
        if (folder / name).is_file():
            digest.update(f"{name}:{sha256_of(folder / name)}\n".encode())
    return digest.hexdigest()


def _shard_names(index_path):
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        names = sorted(set(index["weight_map"].values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise InvalidPresetError(f"{index_path} is not a safetensors index ({error}).") from None
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or not (index_path.parent / name).is_file():
            raise InvalidPresetError(f"{index_path} names the shard {name!r}, which is not a file beside it.")
    return names


class CheckpointTensors:
    """The tensors of a checkpoint's safetensors files, read one at a time as
    numpy arrays. Old checkpoints name layer-norm weights gamma/beta; both
    spellings answer to weight/bias."""

    def __init__(self, folder):
        try:
            from safetensors import SafetensorError, safe_open
        except ImportError:
            raise MissingDependencyError(
                "Converting a transformers checkpoint needs the safetensors package: pip install 'keras-zoo[hf]'."
            ) from None
        self._where = {}
        self._files = []
        for path in weight_files(folder):
            try:
                handle = safe_open(str(path), framework="numpy")
            except (SafetensorError, OSError, ValueError) as error:
                raise InvalidPresetError(f"{path} is not a readable safetensors file: {error}.") from None
            self._files.append(handle)
            for name in handle.keys():
                self._where[_modern_name(name)] = (handle, name)
        self.read = set()

    def names(self):
        return set(self._where)

    def __contains__(self, name):
        return name in self._where

    def __getitem__(self, name):
        handle, stored_name = self._where[name]
        self.read.add(name)
        return handle.get_tensor(stored_name)


def _modern_name(name):
    for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
        if name.endswith(old) and "LayerNorm" in name:
            return name[: -len(old)] + new
    return name
