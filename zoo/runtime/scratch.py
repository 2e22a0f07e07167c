"""Half-written files and folders: removed when the work ends, however it ends.

Downloads, conversions, saved presets and exports are written under a
temporary name and moved into place only when complete. `removed_afterwards`
removes what is left at that name when its block ends: on success (the work
was moved away), on an error and on Ctrl-C.

SIGTERM (a container stopping, `kill`, a scheduler's time limit) ends a
process without unwinding its `finally` blocks, and raising an exception from
the signal handler instead is not safe: one thrown into a native module while
it imports aborts the process. So the command line's SIGTERM handler calls
`remove_all`, which removes every path still registered here, and exits.
"""

import contextlib
import shutil
import uuid
from pathlib import Path

_IN_PROGRESS = {}  # the paths being written, in the order they were started (a dict as an ordered set)


@contextlib.contextmanager
def removed_afterwards(path):
    """Yield `path`, a file or folder about to be written; whatever is at
    `path` when the block ends is removed (and on SIGTERM, with `remove_all`).

    Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> work = Path(tempfile.mkdtemp()) / ".model.partial"
    >>> with removed_afterwards(work):
    ...     work.mkdir()
    ...     (work / "weights.bin").write_bytes(b"half")
    4
    >>> work.exists()
    False
    """
    path = Path(path)
    _IN_PROGRESS[path] = None
    try:
        yield path
    finally:
        _IN_PROGRESS.pop(path, None)
        remove(path)


def beside(final_path, tag="partial"):
    """A hidden name next to `final_path` to write it under, unique to this
    attempt (`.model.onnx.partial-1a2b3c4d`): the rename into place is then
    one move on one file system."""
    final_path = Path(final_path)
    return final_path.parent / f".{final_path.name}.{tag}-{uuid.uuid4().hex[:8]}"


def remove_all():
    """Remove every path registered by a `removed_afterwards` block still open
    (the newest first: a file may sit inside an older folder)."""
    for path in reversed(list(_IN_PROGRESS)):
        _IN_PROGRESS.pop(path, None)
        remove(path)


def remove(path):
    """Remove a file, a folder with what it holds, or a symlink (not what it
    points to); nothing if nothing is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif occupied(path):
        path.unlink(missing_ok=True)


def occupied(path):
    """Whether something is at `path`: a dangling symlink counts, where
    `Path.exists` says no."""
    return path.exists() or path.is_symlink()
