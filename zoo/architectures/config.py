"""Typed family configurations: plain dataclasses, checked on the way in.

Each family declares its hyper-parameters as a frozen dataclass. JSON cards and
keyword overrides go through `make_config`, which refuses unknown keys,
ill-typed values, values outside their range (`PositiveInt`, `Fraction`; NaN
and infinity for every float) and configs too large for this machine
(`check_model_size`), with a message naming the key and what it accepts.
Written by hand because it is a few dozen lines and the alternatives (pydantic
and friends) would add a dependency for very little.
"""

import dataclasses
import math
import types
import typing

from zoo import settings
from zoo.errors import InvalidConfigError


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number may take: `low <= value` (or `low < value` when
    `low_open`), and `value <= high` (or `< high` when `high_open`)."""

    low: float
    high: float | None = None
    high_open: bool = False
    low_open: bool = False

    def __contains__(self, value):
        if value < self.low or (self.low_open and value == self.low):
            return False
        if self.high is None:
            return True
        return value < self.high if self.high_open else value <= self.high

    def __str__(self):
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


PositiveInt = typing.Annotated[int, Range(1)]
NonNegativeInt = typing.Annotated[int, Range(0)]
Fraction = typing.Annotated[float, Range(0, 1, high_open=True)]
"""A rate such as dropout or a moving-average momentum: 0 <= value < 1."""
PositiveFloat = typing.Annotated[float, Range(0, low_open=True)]


def make_config(config_class, values, *, family):
    """Build `config_class` from a mapping, validating every key and value."""
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InvalidConfigError(
            f"Unknown config key(s) {', '.join(map(repr, unknown))} for family "
            f"{family!r}. Allowed keys: {', '.join(sorted(fields))}."
        )
    hints = typing.get_type_hints(config_class, include_extras=True)
    checked = {
        key: _coerce(value, hints[key], key=key, family=family)
        for key, value in values.items()
    }
    try:
        return config_class(**checked)
    except ValueError as error:  # raised by a family's __post_init__ checks
        raise InvalidConfigError(f"Invalid config for family {family!r}: {error}") from error


def check_model_size(config, family):
    """Refuse a config whose float32 weights, or whose largest activation for
    one example, would take more than ZOO_MAX_MODEL_BYTES: said before a
    single weight is allocated (a backend asked for 120 GB aborts the process
    or swaps the machine to a halt instead of raising).

    Families that do not say their sizes (`weight_count()` and
    `largest_activation()` on their Config) are not checked.
    """
    if not hasattr(config, "weight_count"):
        return
    limit = settings.max_model_bytes()
    for what, count in (("weights", config.weight_count()),
                        ("activations for a single example", config.largest_activation())):
        if 4 * count > limit:
            raise InvalidConfigError(
                f"This {family} config asks for {count:,} float32 {what} ({_gigabytes(4 * count)}), more "
                f"than ZOO_MAX_MODEL_BYTES allows ({_gigabytes(limit)}, by default half the memory this "
                "process may use). Check the config's sizes (widths, layers, vocabulary, lengths); raise "
                "ZOO_MAX_MODEL_BYTES only if the machine really has the memory."
            )


def check_batch_fits(config, family, batch_size, length=None):
    """Refuse a batch whose largest activation alone would take more than
    ZOO_MAX_MODEL_BYTES (`length`: positions per example, for families whose
    sequence length is free)."""
    if not hasattr(config, "largest_activation"):
        return
    limit = settings.max_model_bytes()
    needed = 4 * batch_size * config.largest_activation(length)
    if needed > limit:
        raise InvalidConfigError(
            f"A batch of {batch_size:,}{f' x {length:,} positions' if length else ''} of this {family} "
            f"model needs about {_gigabytes(needed)} for one activation, more than ZOO_MAX_MODEL_BYTES "
            f"allows ({_gigabytes(limit)}). Use a smaller batch size (or length)."
        )


def _gigabytes(count):
    """12884901888 -> '12 GiB'; 4476 -> '4.37 KiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def config_to_dict(config):
    """A JSON-ready dict of a config (tuples become lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }


def describe_fields(config_class):
    """`{key: type name}` for error messages and `zoo info`."""
    hints = typing.get_type_hints(config_class, include_extras=True)
    return {field.name: _type_name(hints[field.name]) for field in dataclasses.fields(config_class)}


def _coerce(value, annotation, *, key, family):
    annotation, optional = _split_optional(annotation)
    if optional and value is None:
        return None
    annotation, allowed_range = _split_range(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value in allowed:
            return value
        _refuse(key, family, value, f"one of {', '.join(map(repr, allowed))}")
    if origin is tuple:
        item_type, item_range = _split_range(typing.get_args(annotation)[0])
        if isinstance(value, (list, tuple)) and all(_is_instance(v, item_type) for v in value):
            for item in value:
                _check_range(item, item_range, key, family, value, what="a list of numbers, each")
            return tuple(value)
        _refuse(key, family, value, f"a list of {PLURAL_NAMES.get(item_type, item_type.__name__)}")
    if _is_instance(value, annotation):
        _check_range(value, allowed_range, key, family, value)
        return float(value) if annotation is float else value
    _refuse(key, family, value, _type_name(annotation))


def _split_optional(annotation):
    """`(type, whether None is allowed)` of `type` or `type | None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(others) == 1:
            return others[0], True
    return annotation, False


def _split_range(annotation):
    """`(type, Range or None)` of a plain or `Annotated[type, Range]` annotation."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, next((extra for extra in extras if isinstance(extra, Range)), None)
    return annotation, None


def _check_range(number, allowed_range, key, family, value, what="a number"):
    if isinstance(number, float) and not math.isfinite(number):
        _refuse(key, family, value, "a finite number (not NaN or infinity)")
    if allowed_range is not None and number not in allowed_range:
        _refuse(key, family, value, f"{what} {allowed_range}")


def _is_instance(value, expected):
    # bool is an int subclass in Python; a config never means True when it says 3.
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)


# Types in the words of JSON (config.json, cards) rather than Python's.
KIND_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
PLURAL_NAMES = {int: "whole numbers", float: "numbers", bool: "true/false values", str: "texts"}
VALUE_KINDS = {bool: "true/false", int: "whole number", float: "number", str: "text", list: "list",
               tuple: "list", dict: "object", type(None): "null"}


def _type_name(annotation):
    annotation, optional = _split_optional(annotation)
    if optional:
        return f"{_type_name(annotation)} or null"
    annotation, allowed_range = _split_range(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is tuple:
        item_type, _ = _split_range(typing.get_args(annotation)[0])
        return f"a list of {PLURAL_NAMES.get(item_type, item_type.__name__)}"
    return KIND_NAMES.get(annotation, annotation.__name__) + (f" {allowed_range}" if allowed_range else "")


def _refuse(key, family, value, expected):
    raise InvalidConfigError(
        f"Config key {key!r} of family {family!r} must be {expected}, "
        f"got {value!r} ({VALUE_KINDS.get(type(value), type(value).__name__)})."
    )
