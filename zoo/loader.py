"""`zoo.load`: a preset name or source -> a built keras.Model."""

from zoo import hub, presets, registry
from zoo.architectures import build


def load(name, pretrained=True, num_classes=None, **overrides):
    """Build the model of a preset, with its pretrained weights if it has any.

    Args:
        name: a preset name such as "transformer-small" (see `zoo.list_presets()`),
            or a source: a preset folder, a .tar.gz / .zip archive, `file://`,
            `https://` (optionally `#sha256=<hex>`), `hf://org/repo@revision` or
            `kaggle://handle`. Downloads are verified and cached (see `zoo.hub`).
        pretrained: load the weights when the preset has them; False gives a
            freshly initialised model of the same architecture.
        num_classes: a new number of output classes for classifier presets;
            every other pretrained weight is kept.
        **overrides: config keys to change, e.g. `dropout=0.0`; unknown keys
            or wrong types raise `zoo.InvalidConfigError` listing the allowed keys.

    Returns:
        A built `keras.Model` (a `zoo.architectures.base.ZooModel`).

    Example:
    >>> import zoo
    >>> model = zoo.load("dense-tiny", num_classes=3)
    >>> model.output_shape
    (None, 3)
    """
    source = hub.parse_source(name)
    if source.kind == "builtin":
        card = registry.info(name)
        model_name = card.name.replace("-", "_").replace(".", "_")
        if not (pretrained and card.pretrained):
            return build(card.family, card.config, num_classes=num_classes, name=model_name, **overrides)
        folder = hub.resolve_builtin(card)
    else:
        folder = hub.resolve(source)
        model_name = None
        if not pretrained:
            family, config = presets.read_config(folder)
            return build(family, config, num_classes=num_classes, **overrides)
    return presets.build_from_folder(folder, num_classes, name=model_name, **overrides)

