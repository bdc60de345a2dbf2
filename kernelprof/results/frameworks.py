"""What ``kernelprof frameworks`` found: each framework, where it came from, what it provides and
whether its packages are installed here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field

from kernelprof.results.record import FrozenDict, record


@record
class DefaultSetting:
    setting: str
    value: str
    source: str
    canonical: str = ""


@record
class FrameworkInfo:
    name: str
    display: str
    source: str  # built in, an entry point, an extra module
    problem: str | None  # None: its packages are installed
    implementations: tuple[str, ...] = ()  # the rows of check and compare
    # implementation -> the neurons it maps
    neurons: Mapping[str, tuple[str, ...]] = field(default_factory=FrozenDict)
    networks: tuple[str, ...] = ()  # e2e networks
    converters: tuple[str, ...] = ()
    no_converter: str = ""
    defaults: tuple[DefaultSetting, ...] = ()
    description: str = ""


@record
class FrameworkListing:
    frameworks: tuple[FrameworkInfo, ...]
    problems: tuple[str, ...] = ()  # plugins left out, with why
