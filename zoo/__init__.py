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
    DataFileError,
    DataFileNotFoundError,
    DownloadError,
    ExportError,
    FamilyNotFoundError,
    InvalidConfigError,
    InvalidDataError,
    InvalidPresetError,
    MissingDependencyError,
    OfflineError,
    PresetNotFoundError,
    TrainingDivergedError,
    UnsafeArchiveError,
    UnsupportedBackendError,
    ZooError,
)
from zoo.hub.loader import load
from zoo.hub.models import save_preset
from zoo.registry import PresetCard, info, list_presets, register_preset, unregister_preset
from zoo.version import __version__  # noqa: F401 (zoo.__version__)


# Public functions that need Keras, imported on first use so that `import zoo`
# (and `zoo list`) never starts a backend.
_LAZY = {
    "finetune": "zoo.train.finetuning",
    "evaluate": "zoo.eval.evaluation",
    "EvaluationReport": "zoo.eval.reports",
    "enable_lora": "zoo.train.lora",
    "save_lora": "zoo.train.lora",
    "load_lora": "zoo.train.lora",
    "merge_lora": "zoo.train.lora",
    "train_tokenizer": "zoo.data.tokenizers",
    "load_dataset": "zoo.data.datasets",  # imports scikit-learn / babel, not Keras
    "reproduce": "zoo.eval.published",
    "data_parallel": "zoo.train.distribute",
    "model_parallel": "zoo.train.distribute",
    "initialize_multihost": "zoo.train.distribute",
    "export": "zoo.deploy.export",
    "quantize": "zoo.deploy.quantization",
    "quantization_mode": "zoo.hub.models",
    "ExportReport": "zoo.deploy.export",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


__all__ = [
    "ChecksumError",
    "DataFileError",
    "DataFileNotFoundError",
    "DownloadError",
    "ExportError",
    "FamilyNotFoundError",
    "InvalidConfigError",
    "InvalidDataError",
    "InvalidPresetError",
    "MissingDependencyError",
    "OfflineError",
    "PresetCard",
    "PresetNotFoundError",
    "UnsafeArchiveError",
    "TrainingDivergedError",
    "UnsupportedBackendError",
    "ZooError",
    *_LAZY,
    "family_names",
    "info",
    "list_presets",
    "load",
    "register_family",
    "register_preset",
    "save_preset",
    "unregister_preset",
]
