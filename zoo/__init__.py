"""keras-zoo: Keras 3 model presets that run unchanged on TensorFlow, JAX and PyTorch.

The backend is whatever `KERAS_BACKEND` says, exactly as in Keras; importing
zoo imports no framework and never changes it.

Example:
>>> import zoo
>>> "transformer-small" in zoo.list_presets()
True
>>> model = zoo.load("transformer-tiny")
>>> model.task
'seq2seq'
"""

from zoo.architectures import family_names, register_family
from zoo.errors import (
    ChecksumError,
    DownloadError,
    FamilyNotFoundError,
    InvalidConfigError,
    InvalidPresetError,
    MissingDependencyError,
    OfflineError,
    PresetNotFoundError,
    UnsafeArchiveError,
    ZooError,
)
from zoo.loader import load
from zoo.presets import save_preset
from zoo.registry import PresetCard, info, list_presets, register_preset, unregister_preset

__version__ = "0.1.0"

__all__ = [
    "ChecksumError",
    "DownloadError",
    "FamilyNotFoundError",
    "InvalidConfigError",
    "InvalidPresetError",
    "MissingDependencyError",
    "OfflineError",
    "PresetCard",
    "PresetNotFoundError",
    "UnsafeArchiveError",
    "ZooError",
    "family_names",
    "info",
    "list_presets",
    "load",
    "register_family",
    "register_preset",
    "save_preset",
    "unregister_preset",
]
