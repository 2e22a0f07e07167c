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

import numpy as np

ONNX_OPSET = 18  # torch's dynamo exporter: the newest it fully supports (tf2onnx and jax2onnx choose their own)
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
    model.export(str(path), format=format, verbose=False, input_signature=input_signature)


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
