"""The one place where model-side code branches on the Keras backend.

Everything else in zoo/ is written against keras.ops; what cannot be said
portably lives here behind a small function.
"""

import contextlib
from pathlib import Path

import keras
import numpy as np

from zoo.errors import ZooError
from zoo.runtime.jit_policy import AUTO_JIT_COMPILE, WORKLOADS, auto_setting  # noqa: F401  (re-exported)
from zoo.runtime.options import check_jit_compile

JAX_CACHE_FOLDER = "jax-cache"

_compilation_cache_dir = None  # where enable_compilation_cache() last pointed jax


def name():
    """The active Keras backend: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def versions():
    """"keras X, <backend> Y": what a measurement ran on.

    Example:
    >>> versions().startswith("keras ")
    True
    """
    import importlib

    module = importlib.import_module(name())
    return f"keras {keras.__version__}, {name()} {module.__version__}"


def steps_per_execution(requested):
    """How many steps Keras may run per call into the backend: `requested`,
    or 1 on torch (Keras' torch trainer runs one step per Python call and
    refuses more) and inside a tf.distribute strategy's scope (Keras 3.15's
    multi-step loop fails there: a placeholder of its while loop is left unfed).

    Example:
    >>> steps_per_execution(32) == (1 if name() == "torch" else 32)
    True
    """
    if name() == "torch" or _in_tf_distribute_scope():
        return 1
    return requested


def inference_mode():
    """A context in which no gradient graph is recorded.

    Only torch records one eagerly; without this, generation would keep every
    step's autograd graph alive until it returned.
    """
    if name() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def device_kind():
    """The kind of device the backend computes on: "cpu", "gpu" or "tpu".

    Example:
    >>> device_kind() in ("cpu", "gpu", "tpu")
    True
    """
    if name() == "jax":
        import jax

        platform = jax.default_backend()
        return platform if platform in ("cpu", "tpu") else "gpu"
    if name() == "tensorflow":
        import tensorflow as tf

        for kind in ("tpu", "gpu"):
            if tf.config.list_logical_devices(kind.upper()):
                return kind
        return "cpu"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def resolve_jit_compile(jit_compile, model=None, workload="predict"):
    """`jit_compile` ("auto", True or False) as a bool for `workload`
    ("predict", "train" or "generate") on this backend and device.

    "auto" is `AUTO_JIT_COMPILE[(backend, device kind)][workload]`, the fastest
    choice measured by tools/measure_jit.py. As in Keras' own "auto", it is
    False for a `model` with a layer that cannot be compiled
    (`layer.supports_jit` False) and on tensorflow inside a tf.distribute
    strategy's scope.

    Example:
    >>> resolve_jit_compile(False), resolve_jit_compile("auto", workload="train") == AUTO_JIT_COMPILE[(name(), device_kind())]["train"]
    (False, True)
    """
    check_jit_compile(jit_compile)
    auto = auto_setting(name(), device_kind(), workload)  # refuses an unknown workload
    if jit_compile is True or jit_compile is False:
        return jit_compile
    if model is not None and not all(layer.supports_jit for layer in model._flatten_layers()):
        return False
    if _in_tf_distribute_scope():
        return False
    return auto


def set_jit_compile(model, jit_compile):
    """Make `model`'s Keras steps and the zoo's generation compile as
    `jit_compile` ("auto", True or False) says, per workload, from their next
    call on. `model.jit_compile` then shows the predict setting.

    Keras reads `model.jit_compile` when it builds each step function, so the
    ones already built are dropped. `compile()` is not called: it would attach
    an optimizer and a compile config to a model that was only loaded.
    """
    predict = resolve_jit_compile(jit_compile, model, "predict")
    if model.jit_compile != predict or jit_compile != jit_request(model):
        model.jit_compile = predict  # a ZooModel forgets its request here...
        model.predict_function = model.test_function = model.train_function = None
    remember_jit_request(model, jit_compile)  # ...so it is recorded after


def remember_jit_request(model, jit_compile):
    """Record what `model` was asked to compile ("auto", True or False; None
    forgets), for `jit_compile_for`; assigning `model.jit_compile` later
    forgets it too."""
    # Set past Keras' attribute tracking: a plain setting, not state to save.
    if jit_compile is None:
        model.__dict__.pop("_zoo_jit_request", None)
    else:
        model.__dict__["_zoo_jit_request"] = jit_compile


def jit_request(model):
    """What `model` was last asked to compile, or None if `model.jit_compile` was set directly."""
    return model.__dict__.get("_zoo_jit_request")


def jit_compile_for(model, workload):
    """Whether `model` compiles `workload` ("predict", "train" or "generate"):
    per workload while it was asked for "auto", else `model.jit_compile`.

    Example:
    >>> import zoo
    >>> model = zoo.load("dense-tiny")
    >>> jit_compile_for(model, "train") == resolve_jit_compile("auto", model, "train")
    True
    >>> model.jit_compile = False
    >>> jit_compile_for(model, "train")
    False
    """
    if workload == "predict" or jit_request(model) != "auto":
        # One setting for all (Keras may have refused True for a layer that cannot compile).
        return bool(model.jit_compile)
    return resolve_jit_compile("auto", model, workload)


@contextlib.contextmanager
def compiling_as(model, workload):
    """`model.jit_compile` set to `workload`'s setting inside the block, where
    Keras builds that workload's step function."""
    saved = model.jit_compile
    # Past the property's setter (it would forget the request) and Keras'
    # attribute tracking: Keras only reads the value while building the step.
    object.__setattr__(model, "_jit_compile", jit_compile_for(model, workload))
    try:
        yield
    finally:
        object.__setattr__(model, "_jit_compile", saved)


def under_distribution():
    """Whether a Keras distribution (jax) or a tf.distribute strategy's scope
    is active: Keras then places the data and weights itself.

    Example:
    >>> under_distribution()
    False
    """
    return keras.distribution.distribution() is not None or _in_tf_distribute_scope()


def _in_tf_distribute_scope():
    if name() != "tensorflow":
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy()


def compile_function(function, variables=()):
    """`function(*arrays)` compiled into one program per input shapes, or
    None where the backend cannot compile a whole Keras `while_loop` (torch:
    the loop runs in Python, so torch.compile would break its graph at every
    step; keras_hub leaves generation eager on torch too).

    `variables` are the Keras variables `function` reads or assigns: jax gets
    their current values as arguments (a jitted function must be pure: values
    it closed over would be baked in as constants) and assigns the new ones
    after each call; tensorflow (XLA) reads and assigns them in the program.
    Python numbers are constants of the program: pass changing ones as arrays.

    Example:
    >>> import numpy as np
    >>> double = compile_function(lambda x: x * 2)
    >>> double is None or np.asarray(double(np.ones(2, "float32"))).tolist() == [2.0, 2.0]
    True
    """
    if name() == "jax":
        return _jax_stateless_jit(function, list(variables))
    if name() == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    return None


def _jax_stateless_jit(function, variables):
    import jax

    assigned = []  # which of `variables` the function assigns, found while tracing

    def pure(values, *arrays):
        with keras.StatelessScope(state_mapping=zip(variables, values)) as scope:
            before = [scope.get_current_value(variable) for variable in variables]
            outputs = function(*arrays)
        # Only the variables the function assigned leave the program: returning
        # every one would copy all the weights out of each call.
        assigned[:] = [i for i, variable in enumerate(variables) if scope.get_current_value(variable) is not before[i]]
        return outputs, [scope.get_current_value(variables[i]) for i in assigned]

    program = jax.jit(pure)

    def run(*arrays):
        outputs, new_values = program([variable.value for variable in variables], *arrays)
        for index, value in zip(assigned, new_values):
            variables[index].assign(value)
        return outputs

    return run


def inference_function(model):
    """`call(batch)` -> `model`'s outputs in inference mode, compiled as its
    `jit_compile` says, for zoo.runtime.predicting's in-place predict; None for
    torch.compile, where Keras' predict compiles its own step.

    Example:
    >>> import numpy as np, zoo
    >>> model = zoo.load("dense-tiny")
    >>> call = inference_function(model)
    >>> np.asarray(call(np.zeros((2, 30), "float32"))).shape
    (2, 2)
    """
    compiled = bool(model.jit_compile) and not model.run_eagerly

    def call(batch):
        with inference_mode():
            return model(batch, training=False)

    if name() == "jax":
        return compile_function(call, model.variables) if compiled else call
    if name() == "tensorflow":
        import tensorflow as tf

        # Keras' predict runs a graph even without XLA; so does this.
        return call if model.run_eagerly else tf.function(call, jit_compile=compiled, reduce_retracing=True)
    return None if compiled else call


def host_array(tensor):
    """`tensor` as a numpy array, without a copy where it already lies in host
    memory (jax and TensorFlow CPU arrays, torch CPU tensors); device memory
    is copied to the host. np.asarray alone fails on a torch CUDA tensor, and
    torch's `.numpy()` on bfloat16, which numpy lacks (Keras' conversion then
    makes an ml_dtypes bfloat16 array, as here).

    Example:
    >>> host_array(keras.ops.ones((2,))).tolist()
    [1.0, 1.0]
    >>> str(host_array(keras.ops.ones((2,), dtype="bfloat16")).dtype)
    'bfloat16'
    """
    if name() == "torch":
        import torch

        tensor = tensor.detach().cpu()
        return keras.ops.convert_to_numpy(tensor) if tensor.dtype == torch.bfloat16 else tensor.numpy()
    return np.asarray(tensor)


def forget_compiled_programs():
    """Make torch.compile start afresh (it does nothing on other backends).

    Keras' step functions share their code objects across models, and
    torch.compile silently runs a code object eagerly once it has compiled
    `torch._dynamo.config.cache_size_limit` (8) versions of it: a process that
    compiles many models (tools/measure_jit.py, tests/test_jit.py) calls this
    between them so that each one really is compiled.
    """
    if name() == "torch":
        import torch

        torch._dynamo.reset()


def enable_compilation_cache():
    """Keep jax's compiled programs in `<ZOO_HOME>/jax-cache` across processes.

    Under jax, points its persistent compilation cache there (unless the user
    already chose a folder, e.g. with JAX_COMPILATION_CACHE_DIR); it follows
    ZOO_HOME if that changes. Elsewhere it does nothing. Returns the folder
    in use, or None.

    Example:
    >>> folder = enable_compilation_cache()
    >>> folder is None or folder.name == "jax-cache"
    True
    """
    global _compilation_cache_dir
    if name() != "jax":
        return None
    import jax

    from zoo import settings

    current = jax.config.jax_compilation_cache_dir
    if current is not None and current != _compilation_cache_dir:
        return Path(current)  # the user's own choice wins
    try:
        folder = settings.folder_in_zoo_home(JAX_CACHE_FOLDER)
    except ZooError:  # a read-only ZOO_HOME: compile every time rather than fail
        return None
    if current != str(folder):
        jax.config.update("jax_compilation_cache_dir", str(folder))
        if current is not None:
            _reset_jax_cache()  # jax opens its cache once; make it open the new folder
        _compilation_cache_dir = str(folder)
    return folder


def _reset_jax_cache():
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()
