"""Frozen records: the one description of every result kernelprof keeps and writes.

A record is a frozen, keyword-only dataclass (:func:`record`). Its type hints are its schema:
:func:`encode` writes a record as JSON-able data (field by field, plus the derived figures it
lists in ``DERIVED``, for readers of the file), and :func:`decode` reads such data back into the
record, checking every field against its type on the way. Whatever breaks the schema (a missing
field, a string where a number belongs, a verdict that is not one) is collected with the path
to it, and :class:`SchemaError` says the first of them in one line. There is no second
description of a document to keep in step with the code.

Records never change: fields are frozen, sequences are tuples and mappings are
:class:`FrozenDict` (converted on construction), so a stage that wants another figure makes a
new record (:func:`derive`) rather than writing into one it did not create.

Types understood: ``bool``, ``int``, ``float``, ``str``, ``None``, ``Literal[...]``, unions
(``X | None``), ``tuple[X, ...]``, ``tuple[X, Y]``, ``Mapping[str, X]``, ``Any`` (any JSON
value, frozen) and nested dataclasses (records, or any dataclass such as ``LIFConfig``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class SchemaError(ValueError):
    """Data that does not follow a record's schema; the message says where, in one line."""


class FrozenDict(dict):
    """A dict that refuses to change: every mapping inside a record."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a record's mapping cannot be changed: make a new record instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __reduce__(self):  # pickling must not go through __setitem__
        return (FrozenDict, (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def record(cls: type[T]) -> type[T]:
    """Makes ``cls`` a record: a frozen, keyword-only dataclass whose lists and dicts are
    frozen on construction (tuples, :class:`FrozenDict`), following its type hints."""
    own_post_init = cls.__dict__.get("__post_init__")

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            frozen = _freeze(value, _hints(type(self))[spec.name])
            if frozen is not value:
                object.__setattr__(self, spec.name, frozen)  # still under construction
        if own_post_init is not None:
            own_post_init(self)

    cls.__post_init__ = __post_init__
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


def derive(cls: type[T], source: Any, **more: Any) -> T:
    """A new record of ``cls`` from every field of ``source`` (a record whose fields ``cls``
    also has) and ``more``: how a later stage adds its figures to an earlier stage's record."""
    names = {spec.name for spec in dataclasses.fields(cls)}
    carried = {spec.name: getattr(source, spec.name) for spec in dataclasses.fields(source)
               if spec.name in names and spec.name not in more}  # fmt: skip
    return cls(**carried, **more)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _freeze(value: Any, hint: Any) -> Any:
    """``value`` with its lists as tuples and dicts as FrozenDicts, as deep as ``hint`` says
    (records inside freeze themselves)."""
    origin = typing.get_origin(hint)
    if isinstance(value, list | tuple) and origin is tuple:
        args = _tuple_args(typing.get_args(hint), len(value))
        if len(args) != len(value):
            return tuple(value)
        return tuple(_freeze(item, arg) for item, arg in zip(value, args, strict=True))
    if isinstance(value, dict) and origin in (Mapping, dict, typing.Mapping):
        value_hint = typing.get_args(hint)[1] if typing.get_args(hint) else Any
        return FrozenDict({key: _freeze(item, value_hint) for key, item in value.items()})
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            if _accepts(value, option):
                return _freeze(value, option)
        return value
    if hint is Any:
        return _freeze_json(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # as reading it back from JSON gives
    return value


def _tuple_args(args: tuple, length: int) -> tuple:
    return (args[0],) * length if args and args[-1] is Ellipsis else args


def _freeze_json(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze_json(v) for v in value)
    if isinstance(value, dict) and not isinstance(value, FrozenDict):
        return FrozenDict({k: _freeze_json(v) for k, v in value.items()})
    return value


def _accepts(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the kind ``hint`` names (shallowly), for choosing in a union."""
    origin = typing.get_origin(hint)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, list | tuple)
    if origin in (Mapping, dict, typing.Mapping):
        return isinstance(value, dict)
    if origin is Literal:
        return value in typing.get_args(hint)
    if isinstance(hint, type):
        if hint is float:
            return isinstance(value, int | float) and not isinstance(value, bool)
        if hint is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, hint)
    return hint is Any


# ---- writing -----------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """``value`` as JSON-able data: a record as an object of its fields (and the derived
    figures its class lists in ``DERIVED``), tuples as lists, mappings as objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {spec.name: encode(getattr(value, spec.name)) for spec in dataclasses.fields(value)}
        for name in getattr(type(value), "DERIVED", ()):
            data[name] = encode(getattr(value, name))
        return data
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): encode(item) for key, item in value.items()}
    return value


# ---- reading -----------------------------------------------------------------------------------


def decode(cls: type[T], data: Any, where: str = "") -> T:
    """``data`` (as :func:`encode` wrote it, e.g. loaded from JSON) read back into ``cls``;
    :class:`SchemaError` with the first problems found, in one line."""
    problems: list[str] = []
    value = _decode(cls, data, where, problems)
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        raise SchemaError("; ".join(problems[:2]) + more)
    return value


def _decode(hint: Any, data: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return _freeze_json(data)
    if origin in (Union, types.UnionType):
        return _decode_union(hint, data, where, problems)
    if origin is Literal:
        choices = typing.get_args(hint)
        if data not in choices or isinstance(data, bool) != isinstance(choices[0], bool):
            problems.append(f"{_at(where)}{data!r} is not one of "
                            f"{', '.join(str(c) for c in choices)}")  # fmt: skip
        return data
    if origin is tuple:
        return _decode_tuple(hint, data, where, problems)
    if origin in (Mapping, dict, typing.Mapping):
        if not isinstance(data, dict):
            return _wrong(where, "an object", data, problems)
        value_hint = typing.get_args(hint)[1] if typing.get_args(hint) else Any
        return FrozenDict({key: _decode(value_hint, item, _join(where, key), problems)
                           for key, item in data.items()})  # fmt: skip
    if dataclasses.is_dataclass(hint):
        return _decode_record(hint, data, where, problems)
    return _decode_scalar(hint, data, where, problems)


def _constant_mismatch(cls: type, data: dict) -> str:
    """Why ``data`` is not of ``cls`` by a class constant it lists in ``DERIVED`` (a config's
    ``neuron``), else "". ``DERIVED_DEFAULTS`` gives the value of one that older files lack."""
    for name in getattr(cls, "DERIVED", ()):
        constant = getattr(cls, name, None)
        if not isinstance(constant, str):  # a figure derived from the fields, not a constant
            continue
        value = data.get(name, getattr(cls, "DERIVED_DEFAULTS", {}).get(name))
        if value is not None and value != constant:
            return f"{name} {value!r} is not {constant!r}"
    return ""


def _decode_union(hint: Any, data: Any, where: str, problems: list[str]) -> Any:
    options = typing.get_args(hint)
    if data is None and type(None) in options:
        return None
    if isinstance(data, dict):  # records told apart by a class constant: read as that one
        kinds = [o for o in options if dataclasses.is_dataclass(o)]
        matching = [o for o in kinds if not _constant_mismatch(o, data)]
        if len(kinds) > 1 and len(matching) == 1:
            return _decode(matching[0], data, where, problems)
    for option in options:  # the first option that reads without a problem
        if option is type(None):
            continue
        found: list[str] = []
        value = _decode(option, data, where, found)
        if not found:
            return value
    readable = [o for o in options if o is not type(None)]
    if len(readable) == 1:  # say what is wrong inside the one kind it could be
        return _decode(readable[0], data, where, problems)
    expected = " or ".join(dict.fromkeys(_label(o) for o in options))
    problems.append(f"{_at(where)}expected {expected}, got {_label(type(data))}")
    return data


def _decode_tuple(hint: Any, data: Any, where: str, problems: list[str]) -> tuple:
    if not isinstance(data, list | tuple):
        _wrong(where, "a list", data, problems)
        return ()
    args = typing.get_args(hint)
    if args and args[-1] is not Ellipsis and len(args) != len(data):
        problems.append(f"{_at(where)}expected {len(args)} items, got {len(data)}")
        return tuple(data)
    return tuple(_decode(a, item, f"{where}[{i}]", problems)
                 for i, (item, a) in enumerate(zip(data, _tuple_args(args, len(data)),
                                                   strict=True)))  # fmt: skip


def _decode_record(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        return _wrong(where, f"a {_record_name(cls)} object", data, problems)
    hints = _hints(cls)
    mismatch = _constant_mismatch(cls, data)
    if mismatch:
        problems.append(f"{_at(where)}{mismatch}")
        return None
    values, before = {}, len(problems)
    for spec in dataclasses.fields(cls):
        if spec.name in data:
            values[spec.name] = _decode(hints[spec.name], data[spec.name], _join(where, spec.name),
                                        problems)  # fmt: skip
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            problems.append(f"{_join(where, spec.name)}: missing")
    if len(problems) > before:
        return None
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:  # a record's own checks (e.g. LIFConfig's)
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        problems.append(f"{_at(where)}{text}")
        return None


def _decode_scalar(hint: Any, data: Any, where: str, problems: list[str]) -> Any:
    if hint is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if not _accepts(data, hint):
        return _wrong(where, _label(hint), data, problems)
    return data


def _wrong(where: str, expected: str, data: Any, problems: list[str]) -> None:
    problems.append(f"{_at(where)}expected {expected}, got {_label(type(data))}")
    return None


def _at(where: str) -> str:
    return f"{where}: " if where else ""


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else str(name)


def _record_name(cls: type) -> str:
    return getattr(cls, "RECORD_NAME", cls.__name__)


def _label(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is tuple:
        return "a list"
    if origin in (Mapping, dict, typing.Mapping):
        return "an object"
    if origin is Literal:
        return "one of " + ", ".join(str(c) for c in typing.get_args(kind))
    if dataclasses.is_dataclass(kind):
        return f"a {_record_name(kind)} object"
    labels = {int: "a number", float: "a number", str: "a string", bool: "true/false",
              list: "a list", tuple: "a list", dict: "an object", FrozenDict: "an object",
              type(None): "null"}  # fmt: skip
    return labels.get(kind, getattr(kind, "__name__", str(kind)))


# ---- statistics the records share --------------------------------------------------------------


def quartiles(values: tuple[float, ...] | list[float]) -> tuple[float, float]:
    """The first and third quartiles (inclusive method; one value is its own quartiles): the
    one implementation every spread and interquartile range in kernelprof comes from."""
    import statistics

    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def relative_spread(values: tuple[float, ...] | list[float]) -> float:
    """Interquartile range over the median (inf for a zero median)."""
    import statistics

    q1, q3 = quartiles(values)
    median = statistics.median(values)
    return (q3 - q1) / median if median > 0 else math.inf
