"""Keras, TensorFlow and keras_hub, imported without TensorFlow's start-up noise.

TensorFlow's C++ runtime writes its start-up lines (absl's "before
InitializeLog" notice, oneDNN, "Could not find cuda drivers", CPU features,
"failed call to cuInit") straight to file descriptor 2, where no Python
setting reaches (TF_CPP_MIN_LOG_LEVEL does not silence these). Where the zoo
is what starts TensorFlow, it does so with descriptor 2 captured, drops those
lines and writes everything else back:

- keras_hub imports TensorFlow (through tensorflow-text) whatever the Keras
  backend, so under JAX or PyTorch every transformer would print them. The
  import cannot be avoided without patching keras_hub, whose modules each keep
  their own reference to TensorFlow. Modules of the zoo take keras_hub from
  here: `from zoo.runtime.quiet_imports import keras_hub`.
- the `zoo` command starts Keras (TensorFlow under its backend) through
  `quiet_startup()`.

A program that imports Keras or TensorFlow itself gets their output as they
print it.
"""

import contextlib
import importlib.util
import os
import re
import sys
import tempfile

TENSORFLOW_STARTUP = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:. ]+\s+\d+ (port|cudart_stub|cpu_feature_guard)\.cc:\d+\] "
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags)"
)
NO_CUDA_DRIVER = "Could not find cuda drivers"
CUDA_INIT_FAILED = re.compile(r"^E\d{4} [\d:. ]+\s+\d+ cuda_platform\.cc:\d+\] failed call to cuInit")


def tensorflow_startup(lines):
    """`lines` without TensorFlow's start-up notices; without the failed CUDA
    initialisation too when TensorFlow found no driver (there is no GPU to miss)."""
    no_driver = any(NO_CUDA_DRIVER in line for line in lines)
    return [line for line in lines
            if not (TENSORFLOW_STARTUP.match(line) or (no_driver and CUDA_INIT_FAILED.match(line)))]


@contextlib.contextmanager
def stderr_filtered(keep):
    """Capture file descriptor 2 inside the block, then write back the lines
    `keep(lines)` returns."""
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
            kept = "".join(keep(lines))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def quiet_startup():
    """Import Keras without TensorFlow's start-up lines; under the TensorFlow
    backend also let TensorFlow look for its devices, which is when it reports
    a missing GPU driver. For the `zoo` command, before a job that needs Keras.

    TensorFlow's C++ INFO lines that come later (XLA's "service initialized"
    and "Compiled cluster using XLA!" on the first compiled predict) are
    turned off too, unless TF_CPP_MIN_LOG_LEVEL says otherwise; warnings and
    errors still show."""
    if "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # read when TensorFlow starts
    with stderr_filtered(tensorflow_startup):
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow

            tensorflow.config.list_physical_devices()


def import_tensorflow_quietly():
    """Import TensorFlow now, without its start-up lines, when it is installed,
    not imported yet and not the backend. Call it before anything that would
    import it loudly: keras_hub, or `keras.utils.set_random_seed` (which
    seeds TensorFlow too when it is installed)."""
    import keras

    if "tensorflow" in sys.modules or keras.backend.backend() == "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is None:
        return
    with stderr_filtered(tensorflow_startup):
        import tensorflow  # noqa: F401


def __getattr__(name):
    """`from zoo.runtime.quiet_imports import keras_hub`: keras_hub, imported on first
    use after TensorFlow was imported quietly (it would start it loudly)."""
    if name != "keras_hub":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import_tensorflow_quietly()
    import keras_hub

    return keras_hub
