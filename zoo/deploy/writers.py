"""How each export format is written on each backend: the backend branches of
`zoo.export` live here.

Keras' `model.export` is used where it does the job; where it does not, the
zoo calls the exporter itself and says why:

- torch_export and onnx on torch: Keras' torch paths fix the batch (and the
  sequence length) to the traced example, or fall back to the TorchScript
  exporter, which cannot trace the transformer families with a dynamic length.
  The zoo calls `torch.export.export` and `torch.onnx.export(dynamo=True)`
  with named dynamic dimensions.
- the transformer families on jax (onnx, tf_saved_model): keras_hub's position
  embedding slices a symbolic length, which jax's shape-polymorphic tracing
  refuses; `portable_layers` swaps in a gathering layer while exporting.
"""

import contextlib
import os

import numpy as np

ONNX_OPSET = 18  # torch's dynamo exporter: the newest it fully supports (tf2onnx and jax2onnx choose their own)
ONNX_SINGLE_FILE_LIMIT = 2_000_000_000  # protobuf's limit on one message is 2 GiB
LENGTH_BOUND = 1 << 16  # torch.export needs an upper bound for a dynamic length; a model's context is smaller


def write(model, format, path, signature):
    """Write `model` as `format` at `path`; `signature` is the list of
    `InputSignature`s (dynamic dimensions None)."""
    import keras

    backend = keras.backend.backend()
    if format == "torch_export":
        return _write_torch_export(model, path, signature)
    if format == "onnx" and backend == "torch":
        return _write_torch_onnx(model, path, signature)
    specs = [keras.InputSpec(shape=item.shape, dtype=item.dtype, name=item.name) for item in signature]
    # A functional model with several inputs takes them as one dict.
    input_signature = specs if len(specs) == 1 else [{spec.name: spec for spec in specs}]
    # jax2onnx puts weights over 1 MB in a "<name>.data" file beside the model,
    # and the onnx library checks that name against the working folder: write
    # from inside the model's folder, then fold the weights back into one file.
    with _working_folder(path.parent):
        model.export(str(path), format=format, verbose=False, input_signature=input_signature)
    if format == "onnx":
        _single_file_onnx(path)


@contextlib.contextmanager
def _working_folder(folder):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _single_file_onnx(path):
    """An ONNX model whose weights sit in files beside it, rewritten as one
    file, which is what a deployment copies (up to protobuf's 2 GB limit;
    beyond it the files stay as the exporter wrote them)."""
    import onnx

    sidecars = [entry for entry in path.parent.iterdir() if entry != path]
    if not sidecars or sum(entry.stat().st_size for entry in [path, *sidecars]) >= ONNX_SINGLE_FILE_LIMIT:
        return
    model = onnx.load(str(path))  # reads the external data too
    onnx.save(model, str(path), save_as_external_data=False)
    for entry in sidecars:
        entry.unlink()


def _torch_module(model, signature):
    """A torch module whose forward takes the model's inputs as positional tensors."""
    import torch

    names = [item.name for item in signature]

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            inputs = tensors[0] if len(tensors) == 1 else dict(zip(names, tensors))
            return self.model(inputs, training=False)

    return Exported().eval()


def _torch_example(signature):
    """Example tensors for tracing: 2 where a dimension is dynamic (torch
    specialises a size of 1 into a constant), ids of 1 (a real token)."""
    import torch

    tensors = []
    for item in signature:
        shape = [2 if size is None else size for size in item.shape]
        tensors.append(torch.from_numpy(np.ones(shape, dtype=item.dtype)))
    return tuple(tensors)


def _torch_dynamic_shapes(signature):
    """`torch.export.Dim`s: one "batch" shared by every input, and one per
    named sequence axis, bounded by the model's context."""
    import torch

    dims = {}
    shapes = []
    for item in signature:
        axes = {}
        for axis, name in item.dynamic_axes.items():
            if name not in dims:
                low, high = (1, LENGTH_BOUND) if name == "batch" else (2, item.max_length or LENGTH_BOUND)
                dims[name] = torch.export.Dim(name, min=low, max=high)
            axes[axis] = dims[name]
        shapes.append(axes)
    return (tuple(shapes),)  # forward(*tensors): one positional argument holding them all


def _write_torch_export(model, path, signature):
    import torch

    program = torch.export.export(
        _torch_module(model, signature), _torch_example(signature),
        dynamic_shapes=_torch_dynamic_shapes(signature), strict=False,
    )
    torch.export.save(program, str(path))


def _write_torch_onnx(model, path, signature):
    import torch

    program = torch.onnx.export(
        _torch_module(model, signature), _torch_example(signature), dynamo=True,
        dynamic_shapes=_torch_dynamic_shapes(signature), input_names=[item.name for item in signature],
        opset_version=ONNX_OPSET, verbose=False,
    )
    program.optimize()
    program.save(str(path))
