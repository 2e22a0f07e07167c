"""Which formats each backend can write, and the routes known not to work for
a model, with the reason and where to go instead.

The table of known limits is measured, not guessed: `tools/deployment_table.py
--force` tries every route listed here and reports any that has started to
work (then it comes off the list).
"""

import keras
import keras_hub

from zoo import layers as zoo_layers
from zoo.errors import UnsupportedBackendError

# Formats and the backends that can write them at all.
BACKENDS = {
    "onnx": ("tensorflow", "jax", "torch"),
    "tf_saved_model": ("tensorflow", "jax"),
    "litert": ("tensorflow",),
    "torch_export": ("torch",),
}
FORMATS = tuple(BACKENDS)
SUFFIXES = {"onnx": ".onnx", "tf_saved_model": "", "litert": ".tflite", "torch_export": ".pt2"}
_WRITERS = {
    "tf_saved_model": "Keras writes a SavedModel from TensorFlow or (through jax2tf) jax",
    "litert": "Keras converts to LiteRT with TensorFlow's converter (its torch route needs the litert-torch "
              "package, which the zoo does not pin)",
    "torch_export": "torch.export traces torch modules only",
}


def check_route(model, format, backend):
    """Refuse a route that cannot work for `model`, naming the backends (or
    formats) that can."""
    reason = _WRITERS.get(format) if backend not in BACKENDS[format] else known_limit(model, format, backend)
    if reason is None:
        return
    raise UnsupportedBackendError(f"format={format!r} cannot be written on the {backend} backend for this "
                                  f"model: {reason}. {instead(model, format, backend)}")


def known_limit(model, format, backend):
    """Why `format` does not work on `backend` for `model`, or None."""
    has = _layer_kinds(model)
    if "lstm" in has and backend == "torch" and format in ("onnx", "torch_export"):
        return ("the zoo's torch LSTM kernel packs each batch by its sequence lengths, which torch.export "
                "cannot trace")
    if "bidirectional" in has and backend == "jax" and format == "onnx":
        return "jax2onnx cannot convert the reverse scan of a bidirectional LSTM"
    if "lstm" in has and format == "litert":
        return ("TensorFlow's converter turns the LSTM's loop into TensorList ops, which the LiteRT interpreter "
                "runs only with the Flex delegate")
    if "causal" in has and backend == "jax" and format == "onnx":
        return "jax2onnx cannot convert keras_hub's causal attention mask (a range of the symbolic length)"
    if "exact-gelu" in has and backend == "jax" and format == "tf_saved_model":
        return ("jax writes the exact GELU's erf as a StableHLO composite that this TensorFlow cannot read back "
                "(the SavedModel would not run)")
    return None


def workable_backends(model, format):
    return [backend for backend in BACKENDS[format] if known_limit(model, format, backend) is None]


def instead(model, format, backend):
    """Where to go when `format` fails on `backend`: other backends, or other formats."""
    others = [other for other in workable_backends(model, format) if other != backend]
    if others:
        return (f"Export with KERAS_BACKEND={' or '.join(others)} (the preset and its weights are the same on "
                "every backend).")
    formats = [other for other in FORMATS if other != format and backend in workable_backends(model, other)]
    if formats:
        return f"On {backend}, this model exports as {' or '.join(formats)}."
    return "No backend writes this format for this model; see docs/deployment.md for the routes that work."


def _layer_kinds(model):
    kinds = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, zoo_layers.Bidirectional):
            kinds.add("bidirectional")
        if isinstance(layer, (keras.layers.LSTM, zoo_layers.LSTM)):
            kinds.add("lstm")
        if isinstance(layer, keras_hub.layers.TransformerDecoder):
            kinds.add("causal")
        if getattr(layer, "activation", None) is keras.activations.gelu:
            kinds.add("exact-gelu")
    return kinds
