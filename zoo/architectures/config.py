"""Typed family configurations: plain dataclasses, checked on the way in.

Each family declares its hyper-parameters as a frozen dataclass. JSON cards and
keyword overrides go through `make_config`, which refuses unknown keys and
ill-typed values with a message naming the key and the allowed ones. Written by
hand because it is thirty lines and the alternatives (pydantic and friends)
would add a dependency for very little.
"""

import dataclasses
import typing

from zoo.errors import InvalidConfigError


def make_config(config_class, values, *, family):
    """Build `config_class` from a mapping, validating every key and value."""
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InvalidConfigError(
            f"Unknown config key(s) {', '.join(map(repr, unknown))} for family "
            f"{family!r}. Allowed keys: {', '.join(sorted(fields))}."
        )
    hints = typing.get_type_hints(config_class)
    checked = {
        key: _coerce(value, hints[key], key=key, family=family)
        for key, value in values.items()
    }
    try:
        return config_class(**checked)
    except ValueError as error:  # raised by a family's __post_init__ checks
        raise InvalidConfigError(f"Invalid config for family {family!r}: {error}") from error


def config_to_dict(config):
    """A JSON-ready dict of a config (tuples become lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }


def describe_fields(config_class):
    """`{key: type name}` for error messages and `zoo info`."""
    hints = typing.get_type_hints(config_class)
    return {field.name: _type_name(hints[field.name]) for field in dataclasses.fields(config_class)}


def _coerce(value, annotation, *, key, family):
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value in allowed:
            return value
        _refuse(key, family, value, f"one of {', '.join(map(repr, allowed))}")
    if origin is tuple:
        item_type = typing.get_args(annotation)[0]
        if isinstance(value, (list, tuple)) and all(_is_instance(v, item_type) for v in value):
            return tuple(value)
        _refuse(key, family, value, f"a list of {item_type.__name__}")
    if _is_instance(value, annotation):
        return float(value) if annotation is float else value
    _refuse(key, family, value, _type_name(annotation))


def _is_instance(value, expected):
    # bool is an int subclass in Python; a config never means True when it says 3.
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)


def _type_name(annotation):
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is tuple:
        return f"list[{typing.get_args(annotation)[0].__name__}]"
    return annotation.__name__


def _refuse(key, family, value, expected):
    raise InvalidConfigError(
        f"Config key {key!r} of family {family!r} must be {expected}, "
        f"got {value!r} ({type(value).__name__})."
    )
