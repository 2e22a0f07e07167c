"""Exceptions a user of the zoo can meet, each importable from `zoo`.

Every message says what was wrong, what was expected and what to do next.
"""

import difflib


class ZooError(Exception):
    """Base class of every error raised by keras-zoo."""


class _LookupError(ZooError, KeyError):
    # KeyError.__str__ would wrap the whole message in quotes.
    def __str__(self):
        return self.args[0]


class PresetNotFoundError(_LookupError):
    """A preset name that no registered card carries."""

    def __init__(self, name, known_names):
        self.name = name
        self.suggestions = difflib.get_close_matches(name, known_names, n=5, cutoff=0.4)
        hint = (
            f" Did you mean: {', '.join(self.suggestions)}?"
            if self.suggestions
            else ""
        )
        message = (
            f"No preset named {name!r}.{hint} "
            "Run `zoo list` (or zoo.list_presets()) to see every preset."
        )
        super().__init__(message)


class FamilyNotFoundError(_LookupError):
    """A family name that is neither built in nor registered."""

    def __init__(self, name, known_names):
        self.name = name
        message = (
            f"No model family named {name!r}. Known families: "
            f"{', '.join(sorted(known_names))}. "
            "Register your own with zoo.register_family()."
        )
        super().__init__(message)


class InvalidConfigError(ZooError, ValueError):
    """A configuration key or value that a family does not accept."""


class InvalidDataError(InvalidConfigError):
    """Data in memory that a model cannot use as they are: NaN or infinite
    features, token ids outside the vocabulary, labels outside the classes."""


class InvalidPresetError(ZooError, ValueError):
    """A preset card that is malformed or contradicts itself."""


class ChecksumError(ZooError, OSError):
    """A file whose sha256 is not the one it should have; nothing was cached."""


class DownloadError(ZooError, OSError):
    """A download that failed after its retries; nothing was cached."""


class OfflineError(ZooError, OSError):
    """Offline mode is on and what was asked for is not in the cache."""


class UnsafeArchiveError(ZooError, ValueError):
    """An archive with entries that could escape the folder it is extracted into."""


class MissingDependencyError(ZooError, ImportError):
    """An optional package a source needs is not installed."""


class TrainingDivergedError(ZooError, ArithmeticError):
    """The loss became NaN or infinite; the model's weights were put back as they were."""


class DataFileError(ZooError, ValueError):
    """A data file (or image folder) whose content cannot be used as it is."""


class DataFileNotFoundError(ZooError, FileNotFoundError):
    """A data path that does not exist."""


class UnsupportedBackendError(ZooError, NotImplementedError):
    """The active Keras backend cannot do what was asked; the message names one that can."""


class ExportError(ZooError, ValueError):
    """An export that could not be written, or whose artefact does not compute
    what the Keras model does; nothing was saved."""
