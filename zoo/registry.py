"""Preset cards: read, validate, list, filter and resolve names.

A card is plain JSON data (see presets/*.json); nothing here imports Keras, so
listing and describing presets is instant.
"""

import dataclasses
import fnmatch
import json
from pathlib import Path

from zoo.errors import InvalidPresetError, PresetNotFoundError

SIZES = ("tiny", "small", "base")


@dataclasses.dataclass(frozen=True)
class PresetCard:
    """Everything the zoo knows about one preset.

    Attributes:
        name: `<family>-<size>` with an optional `.tag`, e.g. "cnn-small".
        family: the model family that builds it.
        task: what the outputs mean, e.g. "text-classification".
        description: one or two sentences for humans.
        config: the family config (every key; see `zoo info NAME`).
        inputs: input name -> {"shape": [...], "dtype": ...}; None is a free dimension.
        params: number of parameters of the built model.
        license: license of the card and of any weights.
        weights: None, or `{"folder", "manifest_sha256"}`: the preset folder holding
            the weights (bundled beside the cards, else fetched from $ZOO_MIRROR)
            and the sha256 of its manifest.json, which pins every file.
        metrics: published metrics of the pretrained weights.
        checkpoint: None, or `{"source", "model_type", "architecture", "size"}`
            for a well-known checkpoint of another ecosystem (GPT-2, BERT, ...):
            its hf:// source, converted into the card's family on first load
            and cached (see docs/checkpoints.md).
    """

    name: str
    family: str
    task: str
    description: str
    config: dict
    inputs: dict
    params: int
    license: str = "Apache-2.0"
    weights: dict | None = None
    metrics: dict = dataclasses.field(default_factory=dict)
    checkpoint: dict | None = None

    @property
    def pretrained(self):
        return self.weights is not None or self.checkpoint is not None

    @property
    def size(self):
        if self.checkpoint is not None:
            return self.checkpoint["size"]
        return self.name.split(".")[0].rsplit("-", 1)[-1]

    def to_dict(self):
        return dataclasses.asdict(self)


_cards = None  # name -> PresetCard, read on first use


def card_from_dict(data, *, source="<dict>"):
    """Validate a card's fields and types; raise InvalidPresetError naming the problem."""
    if not isinstance(data, dict):
        raise InvalidPresetError(f"{source}: a preset card must be a JSON object, got {type(data).__name__}.")
    fields = {field.name: field for field in dataclasses.fields(PresetCard)}
    required = {name for name, field in fields.items()
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(data))
    unknown = sorted(set(data) - set(fields))
    if missing or unknown:
        raise InvalidPresetError(
            f"{source}: missing keys {missing}, unknown keys {unknown}. "
            f"A card has the keys {sorted(fields)}."
        )
    expected_types = {"name": str, "family": str, "task": str, "description": str,
                      "config": dict, "inputs": dict, "params": int, "license": str,
                      "weights": (dict, type(None)), "metrics": dict, "checkpoint": (dict, type(None))}
    for key, value in data.items():
        if not isinstance(value, expected_types[key]):
            raise InvalidPresetError(f"{source}: key {key!r} has the wrong type {type(value).__name__}.")
    weights = data.get("weights")
    if weights is not None and not (
        isinstance(weights.get("folder"), str) and isinstance(weights.get("manifest_sha256"), str)
        and len(weights["manifest_sha256"]) == 64
    ):
        raise InvalidPresetError(
            f"{source}: 'weights' must be null or {{'folder': <preset folder name>, "
            f"'manifest_sha256': <sha256 of its manifest.json>}}, got {weights!r}."
        )
    _check_checkpoint(data.get("checkpoint"), weights, source)
    return PresetCard(**data)


CHECKPOINT_KEYS = ("source", "model_type", "architecture", "size")


def _check_checkpoint(checkpoint, weights, source):
    if checkpoint is None:
        return
    sound = (sorted(checkpoint) == sorted(CHECKPOINT_KEYS) and all(isinstance(v, str) for v in checkpoint.values())
             and checkpoint["source"].startswith("hf://") and checkpoint["size"] in SIZES)
    if not sound or weights is not None:
        raise InvalidPresetError(
            f"{source}: 'checkpoint' must be {{'source': 'hf://org/name[@revision]', 'model_type', "
            f"'architecture', 'size': one of {SIZES}}}, and a card has either 'weights' or 'checkpoint'; "
            f"got {checkpoint!r}."
        )


def builtin_cards_folder():
    """Where the built-in cards are: inside the package once installed from a
    wheel (pyproject maps presets/ to zoo/_cards), else the checkout's presets/."""
    packaged = Path(__file__).parent / "_cards"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "presets"


def _builtin_cards():
    cards = {}
    for path in sorted(builtin_cards_folder().glob("*.json")):
        card = card_from_dict(json.loads(path.read_text()), source=str(path))
        if f"{card.name}.json" != path.name:
            raise InvalidPresetError(f"{path}: card name {card.name!r} does not match its file name.")
        cards[card.name] = card
    return cards


def _all_cards():
    global _cards
    if _cards is None:
        _cards = _builtin_cards()
    return _cards


def list_presets(pattern="*", family=None, task=None, pretrained=None, checkpoint=None):
    """Sorted names of the presets matching every filter given.

    `pattern` is an fnmatch pattern ("transformer*", "*-small"); `family` and
    `task` match exactly; `pretrained=True/False` keeps presets with/without
    weights; `checkpoint=True/False` keeps the well-known checkpoints of
    other ecosystems (GPT-2, BERT, ...) or the zoo's own presets.

    Example:
    >>> import zoo
    >>> zoo.list_presets("cnn-*")
    ['cnn-base', 'cnn-small', 'cnn-small.digits', 'cnn-tiny']
    >>> zoo.list_presets(family="dense", pretrained=True)
    ['dense-small.breast-cancer']
    >>> zoo.list_presets("*bert*", checkpoint=True)
    ['bert-base-uncased', 'distilbert-base-uncased', 'roberta-base']
    """
    return sorted(
        card.name
        for card in _all_cards().values()
        if fnmatch.fnmatchcase(card.name, pattern)
        and (family is None or card.family == family)
        and (task is None or card.task == task)
        and (pretrained is None or card.pretrained == pretrained)
        and (checkpoint is None or (card.checkpoint is not None) == checkpoint)
    )


def info(name):
    """The `PresetCard` of preset `name`.

    Example:
    >>> import zoo
    >>> card = zoo.info("transformer-small")
    >>> card.family, card.config["num_encoder_layers"], card.config["hidden_dim"]
    ('transformer', 4, 256)
    """
    cards = _all_cards()
    if name not in cards:
        raise PresetNotFoundError(name, list(cards))
    return cards[name]


def register_preset(card, *, overwrite=False):
    """Add a preset card (a dict, a PresetCard or a path to a JSON file).

    The card's family must be built in or registered with
    `zoo.register_family` before the preset is loaded.

    Example:
    >>> import zoo
    >>> card = zoo.info("dense-tiny").to_dict()
    >>> card.update(name="dense-tiny.wide", config={**card["config"], "hidden_units": [64]})
    >>> zoo.register_preset(card)
    >>> "dense-tiny.wide" in zoo.list_presets("dense-*")
    True
    """
    if isinstance(card, (str, Path)):
        card = card_from_dict(json.loads(Path(card).read_text()), source=str(card))
    elif isinstance(card, dict):
        card = card_from_dict(card)
    elif not isinstance(card, PresetCard):
        raise TypeError(f"register_preset() takes a dict, a PresetCard or a path, not {type(card).__name__}.")
    cards = _all_cards()
    if card.name in cards and not overwrite:
        raise InvalidPresetError(f"A preset named {card.name!r} exists already; pass overwrite=True to replace it.")
    cards[card.name] = card


def unregister_preset(name):
    """Remove a preset registered at run time (built-in cards come back on restart)."""
    info(name)
    del _all_cards()[name]
