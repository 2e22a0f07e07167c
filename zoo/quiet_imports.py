"""keras_hub, imported without the start-up noise TensorFlow prints under the other backends.

keras_hub imports TensorFlow (through tensorflow-text) whatever the Keras
backend, and TensorFlow's C++ runtime writes its start-up lines (absl's
"before InitializeLog" notice, oneDNN, "Could not find cuda drivers") straight
to file descriptor 2, where no Python setting reaches (TF_CPP_MIN_LOG_LEVEL
does not silence these). Under JAX or PyTorch those lines are the zoo's doing,
so the import runs with descriptor 2 captured and everything else it printed
is written back. On TensorFlow, Keras itself imports TensorFlow: nothing is
filtered. The import cannot be avoided without patching keras_hub, whose
modules each keep their own reference to TensorFlow.

Modules of the zoo take keras_hub from here: `from zoo.quiet_imports import keras_hub`.
Importing TensorFlow quietly up front also covers later imports of it, such as
the one in `keras.utils.set_random_seed`.
"""

import contextlib
import importlib.util
import os
import re
import sys
import tempfile

import keras

TENSORFLOW_STARTUP = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:. ]+\s+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] )"
)


@contextlib.contextmanager
def stderr_without(pattern):
    """Capture file descriptor 2 inside the block, then write back every line
    that `pattern` does not match."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not pattern.match(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def import_tensorflow_quietly():
    """Import TensorFlow now, without its start-up lines, when it is installed,
    not imported yet and not the backend. Call it before anything that would
    import it loudly: keras_hub, or `keras.utils.set_random_seed` (which
    seeds TensorFlow too when it is installed)."""
    if "tensorflow" in sys.modules or keras.backend.backend() == "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    with stderr_without(TENSORFLOW_STARTUP):
        import tensorflow  # noqa: F401


import_tensorflow_quietly()
import keras_hub  # noqa: E402  (after TensorFlow, whose import it would start loudly)
