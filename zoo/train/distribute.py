"""Training on many devices and hosts: the one place where distribution branches on the backend.

One API over the engine each backend already has:

    strategy = zoo.data_parallel()          # or zoo.model_parallel((2, 4))
    with strategy.scope():
        model = zoo.load("transformer-small")
        zoo.finetune(model, train, validation)

- JAX: `keras.distribution.DataParallel` / `ModelParallel`, with the layout
  rules every family declares in its `sharding` attribute.
- TensorFlow: `tf.distribute.MirroredStrategy` (GPUs, or logical CPUs),
  `MultiWorkerMirroredStrategy` (when `TF_CONFIG` names several workers) and
  `TPUStrategy`. Models must be created inside `strategy.scope()`.
- PyTorch: one process per device started by `torchrun`; `data_parallel()`
  joins the process group (gloo on CPU, nccl on GPU) and `zoo.finetune` then
  trains through DistributedDataParallel (see `zoo.train.torch_ddp`), because Keras'
  own `fit` does not drive DDP.

In every case `batch_size` stays the global batch size: each of N replicas
takes 1/N of every batch, so N devices train like one device on the same
batches.
"""

import contextlib
import functools
import json
import logging
import math
import os

from zoo.errors import InvalidConfigError, UnsupportedBackendError
from zoo.runtime import backend

log = logging.getLogger("zoo")

MODEL_AXIS = "model"  # the axis name family `sharding` rules use for the model axis


class Strategy:
    """What `zoo.data_parallel` and `zoo.model_parallel` return.

    Attributes:
        kind: "data-parallel" or "model-parallel".
        backend: the Keras backend it was made for.
        num_replicas: how many copies of the model train side by side (for
            model parallelism, the size of the batch axis).
        native: the backend's own object (a `keras.distribution.Distribution`,
            a `tf.distribute.Strategy`, or None for torch, whose process group
            is global), for anything the zoo does not wrap.
    """

    def __init__(self, kind, native, num_replicas, describe):
        self.kind, self.native, self.num_replicas = kind, native, num_replicas
        self.backend = backend.name()
        self._describe = describe

    def scope(self):
        """The context in which to create, fine-tune and evaluate models."""
        if self.native is None:
            return contextlib.nullcontext(self)
        return self.native.scope()

    def __repr__(self):
        return f"<zoo {self.kind} on {self.backend}: {self._describe}>"


def data_parallel(devices=None):
    """Replicate the model on every device; each takes a slice of every batch.

    Args:
        devices: None for every device there is (all GPUs or TPU cores, else
            every CPU device the process sees), or a list of device names
            such as `["gpu:0", "gpu:1"]` (JAX) / `["/gpu:0", "/gpu:1"]`
            (TensorFlow). On TensorFlow "tpu" picks `TPUStrategy`. Torch
            takes one device per process, so `devices` must be None there.

    Returns:
        A `Strategy`: create the model and fine-tune inside `strategy.scope()`,
        or pass it to `zoo.finetune(..., distribution=strategy)`.

    Example:
    >>> import zoo
    >>> strategy = zoo.data_parallel()
    >>> with strategy.scope():
    ...     model = zoo.load("dense-tiny")
    >>> strategy.num_replicas >= 1
    True
    """
    builders = {"jax": _jax_data_parallel, "tensorflow": _tf_data_parallel, "torch": _torch_data_parallel}
    return builders[backend.name()](devices)


def model_parallel(mesh_shape, axis_names=("batch", MODEL_AXIS), devices=None):
    """Split each model's large weights across devices, and batches across replicas (JAX).

    The devices form a 2-D mesh `mesh_shape = (replicas, shards)`: batches
    are split along the first axis, and the weights each family lists in its
    `sharding` rules (attention heads, feed-forward units, embedding features,
    convolution channels, LSTM gates) along the second. Other weights are
    replicated.

    Args:
        mesh_shape: `(batch, model)` sizes whose product is the device count,
            e.g. `(2, 4)` on 8 GPUs, `(1, 8)` for pure model parallelism.
        axis_names: names of the two mesh axes (batch first).
        devices: None for every device, or a list of device names.

    Raises:
        zoo.UnsupportedBackendError: on TensorFlow or PyTorch; use JAX, or
            `zoo.data_parallel()` there.

    Example (on 4 devices, e.g. XLA_FLAGS=--xla_force_host_platform_device_count=4):

        strategy = zoo.model_parallel((2, 2))
        with strategy.scope():
            model = zoo.load("transformer-small")
    """
    if backend.name() != "jax":
        raise UnsupportedBackendError(
            f"model parallelism needs the JAX backend (keras.distribution.ModelParallel); the "
            f"{backend.name()} backend can only replicate the model: run with KERAS_BACKEND=jax, "
            "or use zoo.data_parallel()."
        )
    mesh_shape, axis_names = _check_mesh(mesh_shape, axis_names)
    import keras

    devices = _jax_devices(devices)
    if math.prod(mesh_shape) != len(devices):
        raise InvalidConfigError(
            f"mesh_shape {mesh_shape} needs {math.prod(mesh_shape)} devices, but there are {len(devices)} "
            f"({', '.join(devices)}). Choose a shape whose product is {len(devices)}; on CPU, "
            "XLA_FLAGS=--xla_force_host_platform_device_count=N simulates N devices."
        )
    mesh = keras.distribution.DeviceMesh(mesh_shape, list(axis_names), devices)
    layout_map = keras.distribution.LayoutMap(mesh)
    for pattern, axes in family_sharding_rules(axis_names[1]).items():
        layout_map[pattern] = axes
    native = keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name=axis_names[0])
    return Strategy("model-parallel", native, mesh_shape[0], f"mesh {dict(zip(axis_names, mesh_shape))}")


def family_sharding_rules(model_axis=MODEL_AXIS):
    """Every family's `sharding` rules in one dict, with "model" renamed to `model_axis`.

    Example:
    >>> rules = family_sharding_rules("shards")
    >>> rules[r"hidden_\\d+/kernel"]
    (None, 'shards')
    """
    from zoo.architectures import family_names, get_family

    rules = {}
    for family in family_names():
        for pattern, axes in get_family(family).sharding.items():
            axes = tuple(model_axis if axis == MODEL_AXIS else axis for axis in axes)
            if rules.setdefault(pattern, axes) != axes:
                raise InvalidConfigError(
                    f"family {family!r} shards {pattern!r} as {axes}, another family as "
                    f"{rules[pattern]}; give the weight a distinct name or the same axes."
                )
    return rules


def initialize_multihost(coordinator_address=None, num_processes=None, process_id=None):
    """Join a job that spans several hosts (or processes); call it first, on every host.

    - JAX: `keras.distribution.initialize`. Arguments left as None come from
      KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID, or
      from the TPU / cluster environment.
    - TensorFlow: the cluster comes from the `TF_CONFIG` environment variable;
      this checks it, and `zoo.data_parallel()` then returns a
      `MultiWorkerMirroredStrategy`.
    - PyTorch: joins the process group that `torchrun` describes (MASTER_ADDR,
      RANK, WORLD_SIZE), with nccl on GPU and gloo on CPU.

    Returns the number of processes in the job.
    """
    name = backend.name()
    if name == "jax":
        import jax
        import keras

        keras.distribution.initialize(coordinator_address, num_processes, process_id)
        return jax.process_count()
    if name == "tensorflow":
        return len(_tf_config_workers(required=True))
    return _torch_join_process_group(required=True)


def fit(model, **fit_options):
    """`model.fit(**fit_options)`, or the torch DDP loop when torch.distributed is initialized."""
    if backend.name() == "torch" and _torch_process_group_ready():
        from zoo.train import torch_ddp

        return torch_ddp.fit(model, **fit_options)
    return model.fit(**fit_options)


def check_model_in_strategy(model, strategy):
    """Raise if `model` was made outside `strategy.scope()` where that matters (TensorFlow).

    tf.distribute mirrors only the variables created inside its scope; a model
    built outside would silently train on one device.
    """
    if strategy is None or strategy.backend != "tensorflow":
        return
    if getattr(model, "_distribute_strategy", None) is not strategy.native:
        raise InvalidConfigError(
            "this model was created outside the strategy: on TensorFlow, create it inside "
            "`with strategy.scope(): model = zoo.load(...)` and fine-tune it there."
        )


def _check_mesh(mesh_shape, axis_names):
    mesh_shape, axis_names = tuple(mesh_shape), tuple(axis_names)
    if len(mesh_shape) != 2 or not all(isinstance(n, int) and n >= 1 for n in mesh_shape):
        raise InvalidConfigError(
            f"mesh_shape must be two positive integers (batch, model), got {mesh_shape}."
        )
    if len(axis_names) != 2 or len(set(axis_names)) != 2:
        raise InvalidConfigError(f"axis_names must be two distinct names (batch, model), got {axis_names}.")
    return mesh_shape, axis_names


# --- JAX ---------------------------------------------------------------------

def _jax_devices(devices):
    import keras

    available = keras.distribution.list_devices()
    if devices is None:
        return available
    devices = [str(device).lower() for device in devices]
    unknown = [device for device in devices if device not in available]
    if unknown:
        raise InvalidConfigError(f"unknown devices {unknown}; this process has {available}.")
    return devices


def _jax_data_parallel(devices):
    import keras

    devices = _jax_devices(devices)
    native = keras.distribution.DataParallel(devices=devices)
    return Strategy("data-parallel", native, len(devices), f"{len(devices)} devices")


# --- TensorFlow --------------------------------------------------------------

def _tf_data_parallel(devices):
    import tensorflow as tf

    if devices == "tpu" or (devices is None and os.environ.get("TPU_NAME")):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        native = tf.distribute.TPUStrategy(resolver)
        return Strategy("data-parallel", native, native.num_replicas_in_sync, "TPU")
    if devices is None and len(_tf_config_workers(required=False)) > 1:
        native = tf.distribute.MultiWorkerMirroredStrategy()
        return Strategy("data-parallel", native, native.num_replicas_in_sync, "TF_CONFIG workers")
    if devices is None:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    native = _tf_mirrored_strategy(tuple(devices))
    return Strategy("data-parallel", native, native.num_replicas_in_sync, f"{len(devices)} devices")


@functools.cache
def _tf_mirrored_strategy(devices):
    # One strategy per device set and process: a second MirroredStrategy over
    # the same devices reuses collective keys, and its first all-reduce aborts
    # with a "shape mismatch in the collective instance".
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=list(devices))


def _tf_config_workers(required):
    text = os.environ.get("TF_CONFIG")
    if not text:
        if required:
            raise InvalidConfigError(
                "TF_CONFIG is not set. On each host set it to the cluster and this host's task, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}.'
            )
        return []
    try:
        workers = json.loads(text)["cluster"]["worker"]
    except (ValueError, KeyError, TypeError):
        raise InvalidConfigError(
            f"TF_CONFIG is not valid: {text!r}. It must be JSON with cluster.worker (a list of "
            "host:port) and task (type and index)."
        ) from None
    return workers


# --- PyTorch -----------------------------------------------------------------

def _torch_data_parallel(devices):
    if devices is not None:
        raise InvalidConfigError(
            "on the torch backend each process drives one device: leave devices=None and start one "
            "process per device, e.g. `torchrun --nproc_per_node 4 train.py`."
        )
    world_size = _torch_join_process_group(required=False)
    return Strategy("data-parallel", None, world_size, f"{world_size} processes")


def _torch_process_group_ready():
    import torch.distributed

    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _torch_join_process_group(required):
    """Join torchrun's process group (once); return its size, 1 when not under torchrun."""
    import torch
    import torch.distributed

    if _torch_process_group_ready():
        return torch.distributed.get_world_size()
    if "WORLD_SIZE" not in os.environ:
        if required:
            raise InvalidConfigError(
                "no process group to join: start the script with torchrun, e.g. "
                "`torchrun --nnodes 2 --nproc_per_node 4 --rdzv_endpoint HOST:29500 train.py`."
            )
        log.info("not started by torchrun: training in this one process")
        return 1
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return torch.distributed.get_world_size()
