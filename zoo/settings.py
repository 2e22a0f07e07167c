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
                            largest activation, may take (default: half the memory this
                            process may use: the machine's, its container's, `ulimit -v`)

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
        home = Path(os.environ["ZOO_HOME"]).expanduser()
    else:
        home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "zoo"
    if home.exists() and not home.is_dir():
        raise ZooError(f"ZOO_HOME ({home}) is a file; point ZOO_HOME to a folder (it need not exist yet).")
    return home


def folder_in_zoo_home(*parts):
    """`zoo_home() / parts`, created if need be, or an error that says to move ZOO_HOME."""
    folder = zoo_home().joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ZooError(
            f"Cannot create {folder} ({error.strerror}): set ZOO_HOME to a folder you can write to."
        ) from None
    return folder


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
    return _read("ZOO_MAX_MODEL_BYTES", usable_memory() // 2, int, minimum=1)


def usable_memory():
    """Bytes of memory this process may use: the least of the machine's RAM,
    its container's limit (cgroup v2 or v1) and its address-space limit
    (`ulimit -v`). 16 GiB where none of them can be read."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            limits.append(int(Path(path).read_text().strip()))
        except (OSError, ValueError):  # absent, or "max" (no limit)
            pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (ImportError, OSError, ValueError):  # not POSIX
        pass
    return min(limits) if limits else 16 << 30


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
            f">= {minimum:g}. Unset it for the default ({default:,})."
        )
    return number
