"""`zoo.quantize`: a copy of a zoo model with Keras' own weight quantization
(int8, int4, float8), which `zoo.save_preset` saves and `zoo.load` loads back.

Keras quantizes the layers that multiply by a weight matrix (Dense,
EinsumDense: every transformer projection and feed-forward layer, the dense
family's layers, the classifier heads) and the token embeddings (int8, int4);
convolutions, LSTM cells, normalizations and position embeddings stay float.
"""

from zoo.errors import InvalidConfigError

MODES = ("int8", "int4", "float8")


def quantize(model, mode):
    """A copy of `model` with its weights quantized to `mode` ("int8", "int4"
    or "float8", Keras' `Model.quantize`); `model` itself is left as it was.

    The copy predicts, evaluates, exports and is saved like any zoo model;
    `zoo.save_preset` records the mode, so `zoo.load` of the folder builds the
    quantized layers again and loads their weights exactly.
    `quantized_layers(copy)` names the layers that were quantized.

    Example:
    >>> import numpy as np, zoo
    >>> model = zoo.load("dense-tiny")
    >>> small = zoo.quantize(model, "int8")
    >>> zoo.quantization_mode(small), zoo.quantization_mode(model)
    ('int8', None)
    >>> x, _ = model.example_batch(batch_size=4)
    >>> bool(np.abs(small.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 0.1)
    True
    """
    from zoo.hub import models

    if mode not in MODES:
        raise InvalidConfigError(f"mode={mode!r} is not a quantization mode; choose one of {', '.join(MODES)}.")
    already = models.quantization_mode(model)
    if already is not None:
        raise InvalidConfigError(
            f"This model is already quantized ({already}); quantize the float model it came from instead."
        )
    copy = float_copy(model, name=f"{model.name}_{mode}")  # reports and summaries say what was measured
    models.quantize_layers(copy, mode)
    if not quantized_layers(copy):
        raise InvalidConfigError(
            f"Keras quantizes no layer of this {model.family} model to {mode} (it quantizes Dense, EinsumDense "
            "and Embedding layers); it stays float."
        )
    return copy


def float_copy(model, name=None):
    """A new model of the same family and config with `model`'s weights,
    preset metadata and tokenizer."""
    from zoo.architectures import build
    from zoo.architectures.config import config_to_dict

    copy = build(model.family, config_to_dict(model.zoo_config), name=name or model.name)
    if len(copy.weights) != len(model.weights):
        raise InvalidConfigError(
            f"This model has {len(model.weights) - len(copy.weights)} weights beyond its family's (LoRA "
            "adapters?): merge them first (model = zoo.merge_lora(model)), then quantize."
        )
    copy.set_weights(model.get_weights())
    for layer in copy._flatten_layers(include_self=False, recursive=True):
        # An adapted Normalization computes its mean and variance from its
        # variables here (loading weights does this; set_weights does not).
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()
    copy.preset_metadata = dict(getattr(model, "preset_metadata", None) or {})
    copy.tokenizer = model.tokenizer
    return copy


def quantized_layers(model):
    """Names of the layers of `model` that hold quantized weights."""
    return [layer.name for layer in model._flatten_layers(include_self=False, recursive=True)
            if getattr(layer, "quantization_mode", None)]
