"""Every environment setting the zoo reads, in one place (imports nothing heavy).

    ZOO_HOME                cache root (default: $KERAS_HOME/zoo, i.e. ~/.keras/zoo)
    ZOO_OFFLINE=1           never touch the network (HF_HUB_OFFLINE=1 does too)
    ZOO_MIRROR              base URL serving the built-in presets' folders
    ZOO_DOWNLOAD_TIMEOUT    seconds a connection may stay silent, and the window
                            over which ZOO_DOWNLOAD_MIN_SPEED is measured (default 30)
    ZOO_DOWNLOAD_MIN_SPEED  bytes per second a download must keep up over every
                            window, once its headers arrived (default 1024)
    ZOO_DOWNLOAD_RETRIES    retries after a transient error (default 3)
    ZOO_MAX_DOWNLOAD_BYTES  most bytes fetched for a file whose size is not known
                            in advance: an archive, a file of an old manifest (default 4 GiB)
    ZOO_MAX_ARCHIVE_BYTES   most bytes an archive may unpack to (default 4 GiB)
    ZOO_MAX_MODEL_BYTES     most bytes a model's float32 weights, or one example's
                            largest activation, may take (default: half this machine's memory)

Each is read when it is used, so a change takes effect at once (the tests rely on it).

Example:
>>> import os
>>> os.environ["ZOO_DOWNLOAD_RETRIES"] = "5"
>>> download_retries()
5
>>> del os.environ["ZOO_DOWNLOAD_RETRIES"]
>>> download_retries()
3
"""

import math
import os
from pathlib import Path

from zoo.errors import ZooError

MANIFEST_MAX_BYTES = 1 << 20
"""A manifest.json is downloaded before any size is known: it may not exceed 1 MiB."""


def zoo_home():
    """The cache root: $ZOO_HOME, else the Keras home's `zoo/` folder."""
    if os.environ.get("ZOO_HOME"):
        return Path(os.environ["ZOO_HOME"]).expanduser()
    keras_home = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(keras_home).expanduser() / "zoo"


def is_offline():
    return any(_truthy(os.environ.get(name)) for name in ("ZOO_OFFLINE", "HF_HUB_OFFLINE"))


def mirror():
    """The base URL of $ZOO_MIRROR, or None."""
    return os.environ.get("ZOO_MIRROR") or None


def download_timeout():
    return _read("ZOO_DOWNLOAD_TIMEOUT", 30.0, float, minimum=0.001)


def download_min_speed():
    return _read("ZOO_DOWNLOAD_MIN_SPEED", 1024.0, float, minimum=0.0)


def download_retries():
    return _read("ZOO_DOWNLOAD_RETRIES", 3, int, minimum=0)


def max_download_bytes():
    return _read("ZOO_MAX_DOWNLOAD_BYTES", 4 << 30, int, minimum=1)


def max_archive_bytes():
    return _read("ZOO_MAX_ARCHIVE_BYTES", 4 << 30, int, minimum=1)


def max_model_bytes():
    return _read("ZOO_MAX_MODEL_BYTES", physical_memory() // 2, int, minimum=1)


def physical_memory():
    """Bytes of RAM on this machine (16 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return 16 << 30


def _truthy(value):
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _read(name, default, kind, minimum):
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number < minimum:
        raise ZooError(
            f"{name}={value!r} is not valid: it must be a {'whole ' if kind is int else ''}number "
            f">= {minimum:g}. Unset it for the default ({default:g})."
        )
    return number
