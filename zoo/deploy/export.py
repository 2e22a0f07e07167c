"""`zoo.export`: a zoo model as an ONNX file, a TF SavedModel, a LiteRT
flatbuffer or a torch.export program, run in that format's own runtime and
compared with Keras before it is handed over.

The artefact is written next to its destination under a temporary name,
checked at two batch sizes (and two sequence lengths where the length is
dynamic), and only then moved into place: a failed export leaves nothing
behind and replaces nothing.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np

from zoo.deploy import portable_layers, routes, runtimes, writers
from zoo.errors import ExportError, MissingDependencyError, ZooError
from zoo.runtime import scratch

FORMATS = routes.FORMATS
TOLERANCE = 1e-5
CHECK_SHAPES = ((1, 8), (3, 13))  # (batch size, tokens per row): both dynamic axes move


@dataclasses.dataclass(frozen=True)
class InputSignature:
    """One input of an exported model: `shape` has None where it is dynamic,
    `dynamic_axes` names those axes ("batch", "length", "encoder_length", ...)."""

    name: str
    dtype: str
    shape: tuple
    dynamic_axes: dict
    max_length: int | None = None


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What `zoo.export` wrote and how it was checked.

    `max_abs_diff` is the largest difference between the artefact's outputs
    (in `runtime`) and Keras' on the checked batches, `largest_output` the
    largest |output| of Keras there; `checked` lists the batches' shapes as
    `(batch size, sequence length or None)`; `files` are the paths written
    (some exporters put the weights in a file beside the model, which must
    travel with it).
    """

    path: Path
    format: str
    backend: str
    runtime: str
    inputs: tuple
    max_abs_diff: float
    largest_output: float
    checked: tuple
    files: tuple = ()

    def __str__(self):
        inputs = ", ".join(f"{item.name} {_shape_text(item)} {item.dtype}" for item in self.inputs)
        shapes = " and ".join(
            f"batch {batch}" + ("" if length is None else f" x {length} tokens") for batch, length in self.checked
        )
        beside = [file.name for file in self.files if file != self.path]
        also = f" with {', '.join(beside)} beside it" if beside else ""
        return (f"{self.path}{also} ({self.format}, written on {self.backend}); inputs: {inputs}. "
                f"{self.runtime} matches Keras within {self.max_abs_diff:.1e} (outputs up to "
                f"{self.largest_output:.3g}) on {shapes}.")


def export(model, path, format="onnx", *, overwrite=False, tolerance=TOLERANCE):
    """Write `model` to `path` in `format` and check it in that format's runtime.

    `format` is "onnx" (run with onnxruntime), "tf_saved_model" (a folder,
    run with TensorFlow), "litert" (a .tflite file, run with the LiteRT
    interpreter) or "torch_export" (a .pt2 file, run with torch). The batch
    size is dynamic, and so is the sequence length of token models. Before
    returning, the artefact runs on the model's example batch at two batch
    sizes (and two lengths), and its outputs must equal Keras' within
    `tolerance` x max(1, largest |output|) (max abs difference: 1e-5 for
    outputs up to 1, relative beyond, as float32 allows); otherwise nothing
    is written and `ExportError` says by how much they differ. Returns an
    `ExportReport`.

    The artefact covers the model's forward pass (`model(inputs)`: logits);
    `generate()`'s decoding loop is not exported.

    Example:
    >>> import tempfile, zoo
    >>> model = zoo.load("dense-tiny")
    >>> report = zoo.export(model, tempfile.mkdtemp() + "/dense.onnx", format="onnx")
    >>> report.max_abs_diff <= 1e-5, report.checked
    (True, ((1, None), (3, None)))
    """
    import keras

    if format not in FORMATS:
        raise ExportError(f"format={format!r} is not an export format; choose one of {', '.join(FORMATS)}.")
    backend = keras.backend.backend()
    _check_tolerance(tolerance)
    routes.check_route(model, format, backend)
    # Absolute and normalised: "out/.." names the folder it means, not "..".
    path = _check_destination(Path(os.path.abspath(path)), format, overwrite)
    signature = input_signature(model)
    batches = check_batches(model, signature)
    expected = [_keras_outputs(model, batch) for batch in batches]
    if not all(np.isfinite(outputs).all() for outputs in expected):
        raise ExportError("Keras' own outputs of this model are NaN or infinite on its example batch: its weights "
                          "are broken, and no export could match them. Nothing was exported.")
    instead = routes.instead(model, format, backend)
    # Written inside a work folder under its final name: an exporter may add
    # files beside it that it names after it (jax2onnx: model.onnx.data).
    with scratch.removed_afterwards(scratch.beside(path)) as work:
        work.mkdir()
        _write(model, format, work / path.name, signature, backend, instead)
        worst, largest = _compare(format, work / path.name, batches, expected, tolerance, instead)
        files = _move_into_place(work, path.parent, overwrite)
    checked = tuple((_rows(batch), _length(batch)) for batch in batches)
    return ExportReport(path, format, backend, runtimes.RUNTIMES[format], tuple(signature), worst, largest,
                        checked, files)


def input_signature(model):
    """The model's inputs as `InputSignature`s: batch dynamic, and each
    sequence axis dynamic up to the model's context."""
    contexts = model.context_lengths
    signature = []
    for tensor in model.inputs:
        axes = {0: "batch"}
        prefix = tensor.name.split("_")[0]
        length_name = f"{prefix}_length" if prefix in ("encoder", "decoder") else "length"
        for axis, size in enumerate(tensor.shape[1:], start=1):
            if size is None:
                axes[axis] = length_name
        max_length = contexts.get(tensor.name) or contexts.get(f"{prefix}_token_ids") or contexts.get("token_ids")
        shape = tuple(None if axis in axes else size for axis, size in enumerate(tensor.shape))
        signature.append(InputSignature(tensor.name, tensor.dtype, shape, axes, max_length))
    return signature


def check_batches(model, signature, shapes=CHECK_SHAPES, seed=0):
    """Example batches of the model, one per `(batch size, length)` in
    `shapes` (the length only for token models), as `{input name: array}`
    with every input the artefact takes (optional ones made)."""
    import keras

    names = [item.name for item in signature]
    batches = []
    for index, (batch_size, length) in enumerate(shapes):
        options = {"length": length} if model.sequence_inputs else {}
        x, _ = model.example_batch(batch_size=batch_size, seed=seed + index, **options)
        if not isinstance(x, dict):
            x = {names[0]: x} if len(names) == 1 else {"token_ids": x}
        if len(names) > 1:
            x = model.complete_inputs(x)  # the optional inputs (padding mask, token types) made
        batch = {name: np.asarray(keras.ops.convert_to_numpy(x[name])) for name in names}
        if "token_type_ids" in batch and getattr(model.zoo_config, "type_vocab_size", 0) > 1 and index:
            # Sentence pairs: the second half of each row is segment 1, so the check covers that path.
            batch["token_type_ids"] = batch["token_type_ids"].copy()
            batch["token_type_ids"][:, batch["token_type_ids"].shape[1] // 2:] = 1
        batches.append(batch)
    return batches


def _keras_outputs(model, batch):
    inputs = next(iter(batch.values())) if len(batch) == 1 else batch
    return np.asarray(model.predict(inputs, batch_size=_rows(batch), verbose=0))


def _write(model, format, path, signature, backend, instead):
    try:
        with portable_layers.exportable(model):
            writers.write(model, format, path, signature)
    except ImportError as error:
        raise MissingDependencyError(
            f"Writing {format} on {backend} needs {error.name or 'a package'} ({_first_line(error)}): "
            "pip install 'keras-zoo[export]'."
        ) from error
    except ZooError:
        raise
    except Exception as error:
        raise ExportError(
            f"The {format} exporter failed on {backend} for this model: {_first_line(error)}. Nothing was saved. "
            f"{instead}"
        ) from error


def _compare(format, path, batches, expected, tolerance, instead):
    """The artefact at `path` run on each batch against Keras' `expected`
    outputs: (largest difference, largest |output|), or ExportError."""
    worst = overall_largest = 0.0
    for batch, reference in zip(batches, expected):
        try:
            output = np.asarray(runtimes.run(format, path, batch))
        except ZooError:
            raise
        except Exception as error:
            raise ExportError(
                f"The {format} export was written but {runtimes.RUNTIMES[format]} cannot run it on a batch of "
                f"{_describe(batch)}: {_first_line(error)}. Nothing was saved. {instead}"
            ) from error
        if output.shape != reference.shape:
            raise ExportError(
                f"The {format} export returns shape {output.shape} for a batch of {_describe(batch)}, where Keras "
                f"returns {reference.shape}. Nothing was saved. {instead}"
            )
        if not np.isfinite(output).all():
            raise ExportError(
                f"The {format} export outputs NaN or infinite values on a batch of {_describe(batch)}, where "
                f"Keras' outputs are finite. Nothing was saved. {instead}"
            )
        difference = float(np.max(np.abs(output.astype("float64") - reference))) if output.size else 0.0
        # float32 cannot hold large outputs to 1e-5: one unit in the last place of 300 is 3e-5.
        largest = float(np.max(np.abs(reference))) if reference.size else 0.0
        if difference > tolerance * max(1.0, largest):
            raise ExportError(
                f"The {format} export differs from Keras by {difference:.2e} (max abs; Keras' outputs reach "
                f"{largest:.3g}) on a batch of {_describe(batch)}, more than tolerance={tolerance:g} x max(1, "
                f"{largest:.3g}). Nothing was saved; a larger tolerance accepts it. {instead}"
            )
        worst, overall_largest = max(worst, difference), max(overall_largest, largest)
    return worst, overall_largest


def _check_tolerance(tolerance):
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < float("inf"):
        raise ExportError(f"tolerance must be a positive number (the default is {TOLERANCE:g}), got {tolerance!r}.")


# Names that say "a file", which a SavedModel folder is not.
_FILE_SUFFIXES = {".onnx", ".tflite", ".pt2", ".keras", ".h5", ".pb", ".zip"}


def _check_destination(path, format, overwrite):
    """Refuse a destination before anything is exported: a wrong name, a
    missing folder, or something there that must not be replaced."""
    suffix = routes.SUFFIXES[format]
    if suffix and path.suffix != suffix:
        raise ExportError(f"A {format} export is a {suffix} file: got {str(path)!r}; name it like "
                          f"{str(path.with_suffix(suffix))!r}.")
    if not suffix and path.suffix in _FILE_SUFFIXES:
        raise ExportError(f"A {format} export is a folder: got {str(path)!r}, which is named like a "
                          f"{path.suffix} file.")
    if not path.parent.is_dir():
        raise ExportError(f"The folder {path.parent} does not exist: create it first.")
    if not scratch.occupied(path):
        return path
    if not overwrite:
        raise ExportError(f"{path} exists; pass overwrite=True (zoo export --overwrite) to replace it.")
    if suffix and path.is_dir():
        raise ExportError(f"{path} is a folder; a {format} export is one file. Choose another name.")
    if not suffix and not (path.is_dir() and (path / "saved_model.pb").is_file()):
        # Never delete a folder that is not an earlier export: it may hold anything.
        raise ExportError(f"{path} exists and is not a SavedModel; overwrite replaces only an earlier "
                          "tf_saved_model export. Choose a new folder.")
    return path


def _move_into_place(work, folder, overwrite):
    """Every file the exporter wrote in `work` moved into `folder`, replacing
    what had those names (only with `overwrite`); their paths."""
    entries = sorted(work.iterdir())
    taken = [folder / entry.name for entry in entries if scratch.occupied(folder / entry.name)]
    if taken and not overwrite:
        raise ExportError(f"The export writes {', '.join(entry.name for entry in entries)}, and "
                          f"{', '.join(map(str, taken))} exists; pass overwrite=True (zoo export --overwrite) to "
                          "replace it. Nothing was saved.")
    moved = []
    for entry in entries:
        target = folder / entry.name
        scratch.remove(target)
        os.replace(entry, target)
        moved.append(target)
    return tuple(moved)


def _rows(batch):
    return len(next(iter(batch.values())))


def _length(batch):
    array = next(iter(batch.values()))
    return array.shape[1] if array.ndim == 2 and np.issubdtype(array.dtype, np.integer) else None


def _describe(batch):
    return ", ".join(f"{name} {tuple(array.shape)}" for name, array in batch.items())


def _shape_text(item):
    names = item.dynamic_axes
    return "(" + ", ".join(names.get(axis, str(size)) for axis, size in enumerate(item.shape)) + ")"


def _first_line(error):
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]
