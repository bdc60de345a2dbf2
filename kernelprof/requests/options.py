"""Options and requests: what a command is asked to do, declared once, checked once.

A request is a frozen dataclass whose fields are the command's options (:func:`option`): each
field carries its help text and a parser that turns what a user wrote (a command-line string,
or a Python value given to the API) into the field's value, or raises :class:`RequestError`
with a one-line message. The command line builds its arguments from these fields, and the
Python API passes its keyword arguments to the same constructor, so both refuse exactly the
same inputs with the same message. A request checks the relations between its fields in
``check()`` (e.g. a baseline among the compared implementations).

Parsers take either form: ``T="4,8"`` from the command line and ``T=(4, 8)`` or ``T=8`` from
Python give the same request.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

Parser = Callable[[Any, str], Any]


class RequestError(ValueError):
    """A request that cannot run: said in one line (the command line exits with code 2)."""


@dataclasses.dataclass(frozen=True)
class Option:
    """How one request field is written and read."""

    help: str
    parse: Parser | None = None  # (value, flag) -> the field's value; None: taken as given
    flag: str | None = None  # default: "--" + the field's name, "_" written "-"
    aliases: tuple[str, ...] = ()
    action: str | None = None  # "store_true", "store_false", "append" (command line)
    metavar: str | None = None
    positional: bool = False
    nargs: str | None = None  # positional: "+" for one or more

    def flag_of(self, name: str) -> str:
        return self.flag or "--" + name.replace("_", "-")


def option(default: Any = dataclasses.MISSING, help: str = "", *,
           factory: Callable[[], Any] | None = None, **how: Any) -> Any:  # fmt: skip
    """A request field that is also a command-line option (``factory`` makes a default that
    must not be shared, e.g. an empty mapping)."""
    metadata = {"option": Option(help=help, **how)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class Request:
    """The base of every command's request (a frozen dataclass of :func:`option` fields)."""

    COMMAND: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            how = spec.metadata.get("option")
            value = getattr(self, spec.name)
            if how is not None and how.parse is not None and value is not None:
                # still under construction: the parsed form replaces what was written
                object.__setattr__(self, spec.name, how.parse(value, how.flag_of(spec.name)))
        self.check()

    def check(self) -> None:
        """The relations between fields; raises RequestError."""

    @classmethod
    def options(cls) -> list[tuple[str, Option, Any]]:
        """(field name, option, default) of every option, in declaration order."""
        found = []
        for spec in dataclasses.fields(cls):
            how = spec.metadata.get("option")
            if how is not None:
                default = spec.default
                if spec.default_factory is not dataclasses.MISSING:
                    default = spec.default_factory()
                found.append((spec.name, how, None if default is dataclasses.MISSING else default))
        return found

    @classmethod
    def from_options(cls, **values: Any):
        """The request from keyword arguments named as its options (``None`` for a default).
        An unknown name is a RequestError, as an unknown option is on the command line."""
        names = {name for name, _, _ in cls.options()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise RequestError(f"{cls.COMMAND}: unknown option {unknown[0]!r} "
                               f"(options: {', '.join(sorted(names))})")  # fmt: skip
        return cls(**{name: value for name, value in values.items() if value is not None})


# ---- parsers -----------------------------------------------------------------------------------


def whole_number(text: Any, flag: str) -> int:
    """An int from ``8``, ``"8"`` or ``"2^20"``."""
    if isinstance(text, bool):
        raise RequestError(f"{flag}: {text!r} is not a whole number")
    if isinstance(text, int):
        return text
    if isinstance(text, float) and text.is_integer():
        return int(text)
    try:
        base, caret, exponent = str(text).strip().partition("^")
        return int(base) ** int(exponent) if caret else int(base)
    except ValueError:
        raise RequestError(f"{flag}: {text!r} is not a whole number") from None


def at_least(low: int) -> Parser:
    def parse(value: Any, flag: str) -> int:
        number = whole_number(value, flag)
        if number < low:
            raise RequestError(f"{flag}: must be >= {low}, got {number}")
        return number

    return parse


def positive_numbers(value: Any, flag: str) -> tuple[int, ...]:
    """A sweep of whole numbers >= 1: ``"4,8,16"``, ``(4, 8)`` or ``8``."""
    parts = _items(value)
    if not parts:
        raise RequestError(f"{flag}: give at least one value")
    return tuple(at_least(1)(part, flag) for part in parts)


def number(value: Any, flag: str) -> float:
    if isinstance(value, bool):
        raise RequestError(f"{flag}: {value!r} is not a number")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{flag}: {value!r} is not a number") from None
    if not math.isfinite(result):
        raise RequestError(f"{flag}: must be a finite number, got {value!r}")
    return result


def positive(value: Any, flag: str) -> float:
    result = number(value, flag)
    if not result > 0:
        raise RequestError(f"{flag}: must be > 0, got {result:g}")
    return result


def one_of(*choices: str) -> Parser:
    def parse(value: Any, flag: str) -> str:
        if value not in choices:
            raise RequestError(f"{flag}: unknown {value!r} (valid: {', '.join(choices)})")
        return value

    return parse


def some_of(*choices: str, what: str) -> Parser:
    """A comma list of ``choices`` (at least one, each once, in the order given)."""

    def parse(value: Any, flag: str) -> tuple[str, ...]:
        chosen = names(value, flag)
        for item in chosen:
            if item not in choices:
                raise RequestError(f"{flag}: unknown {item!r} (valid: {', '.join(choices)})")
        if not chosen:
            raise RequestError(f"{flag}: give at least one {what}")
        if len(set(chosen)) < len(chosen):
            raise RequestError(f"{flag}: {','.join(chosen)} names a {what} twice")
        return chosen

    return parse


def names(value: Any, flag: str) -> tuple[str, ...]:
    """A comma list (or a sequence) of names; empty items dropped."""
    return tuple(_items(value))


def flag_value(value: Any, flag: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"{flag}: expected true or false, got {value!r}")
    return value


def path(value: Any, flag: str) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise RequestError(f"{flag}: expected a path, got {value!r}")
    return Path(value)


def paths(value: Any, flag: str) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str | Path) else list(value)
    return tuple(path(item, flag) for item in items)


def _items(value: Any) -> list:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Sequence):
        return [part for item in value for part in (_items(item) if isinstance(item, str)
                                                     else [item])]  # fmt: skip
    return [value]


@dataclasses.dataclass(frozen=True)
class Display:
    """An option of how the command line shows a result (not part of the request): the
    Python API's result objects take these as arguments of their own methods."""

    name: str
    option: Option
    default: Any


@dataclasses.dataclass(frozen=True)
class Command:
    """A command of the command line: its request, and how it shows its result."""

    name: str
    help: str
    description: str
    request: type[Request]
    display: tuple[Display, ...] = ()

    def display_values(self, given: dict[str, Any]) -> dict[str, Any]:
        """Each display option's value (given, else its default), checked by its parser."""
        values = {}
        for item in self.display:
            value = given.get(item.name, item.default)
            if item.option.parse is not None:
                value = item.option.parse(value, item.option.flag_of(item.name))
            values[item.name] = value
        return values


def output_format(*choices: str) -> Display:
    return Display("format", Option(f"how to print the result ({', '.join(choices)})",
                                    parse=one_of(*choices), metavar="{" + ",".join(choices) + "}"),
                   choices[0])  # fmt: skip


ALL_ROWS = Display("all_rows", Option("keep unavailable and unsupported rows in the table "
                                      "(default: listed under it with their reasons)",
                                      parse=flag_value, action="store_true"), False)  # fmt: skip
