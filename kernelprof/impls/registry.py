"""The registry of LIF implementations: what each needs, and how to build it for a config.

Each module of this package registers one or more :class:`Implementation` s at import. An
implementation declares the packages (with version ranges) and devices it needs; given the
canonical :class:`~kernelprof.lif.LIFConfig`, its ``build`` maps the parameters to the
framework's own and returns a :class:`Built` whose ``run`` takes a [T, ...] input and returns
the spikes and, where the framework exposes it, V after reset. Layout changes belong inside
``run`` only where the framework needs them per call; one-off set-up happens in ``build``.

A config the framework cannot express raises :class:`Unsupported` with the reason.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from kernelprof.lif import LIFConfig

# Modules of this package that register implementations, in display order.
MODULES = ("reference", "spikingjelly", "snntorch", "norse", "lava_dl", "sinabs")
# Extra modules to import (comma separated), e.g. planted implementations in tests.
EXTRA_MODULES_ENV = "KERNELPROF_EXTRA_IMPLS"


class Unsupported(Exception):
    """The framework cannot express this configuration; the message says why."""


@dataclass(frozen=True)
class Requirement:
    distribution: str  # the name pip knows, e.g. "spikingjelly"
    versions: str = ""  # a PEP 440 specifier, e.g. ">=2.0,<3"
    module: str = ""  # the import name when it differs, e.g. "lava.lib.dl.slayer"

    def problem(self, *, import_it: bool = True) -> str | None:
        """None when installed in a matching version and importable, else why not. Without
        ``import_it`` only the package metadata is read (nothing is imported)."""
        try:
            installed = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return f"{self.distribution} is not installed"
        if self.versions and Version(installed) not in SpecifierSet(self.versions):
            return f"{self.distribution} {installed} installed, {self.versions} needed"
        if not import_it:
            return None
        try:
            importlib.import_module(self.module or self.distribution)
        except Exception as error:  # noqa: BLE001 - a broken install is reported with its error
            detail = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            return f"{self.distribution} {installed} fails to import: {detail}"
        return None


@dataclass
class Built:
    """A framework's LIF, built for one config, device and dtype."""

    run: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
    path: str  # the code path expected to run (refined by ``detect_path`` after a call)
    # Known, explained departures from the canonical model. A difference beyond tolerance is
    # "approximate" when one of these explains it, WRONG otherwise.
    approximations: list[str] = field(default_factory=list)
    # Known behaviours that make results differ only at exact threshold ties.
    tie_notes: list[str] = field(default_factory=list)
    detect_path: Callable[[], str] | None = None


@dataclass(frozen=True)
class Implementation:
    name: str  # the CLI name, e.g. "spikingjelly" or "spikingjelly-triton"
    framework: str
    build: Callable[[LIFConfig, torch.device, torch.dtype], Built]
    requires: tuple[Requirement, ...] = ()
    devices: tuple[str, ...] = ("cpu", "cuda")
    description: str = ""
    # Called on a device it supports; returns why it cannot run there (e.g. a missing backend).
    device_problem: Callable[[torch.device], str | None] | None = None

    def unavailable_reason(self, device: torch.device, *, quick: bool = False) -> str | None:
        """Why this implementation cannot run on ``device`` here, else None. ``quick`` decides
        only what needs no import (package metadata, device type): None then means "maybe"."""
        for requirement in self.requires:
            problem = requirement.problem(import_it=not quick)
            if problem is not None:
                return problem
        if device.type not in self.devices:
            return f"runs on {' or '.join(self.devices)}, not {device.type}"
        if device.type == "cuda" and not torch.cuda.is_available():
            return "no CUDA device (torch.cuda.is_available() is False)"
        if self.device_problem is not None and not quick:
            return self.device_problem(device)
        return None


_REGISTRY: dict[str, Implementation] = {}
_LOADED = False


def register(implementation: Implementation) -> Implementation:
    if implementation.name in _REGISTRY:
        raise ValueError(f"implementation {implementation.name!r} is registered twice")
    _REGISTRY[implementation.name] = implementation
    return implementation


def implementations() -> dict[str, Implementation]:
    """Every registered implementation, importing the registering modules once."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in MODULES:
            importlib.import_module(f"kernelprof.impls.{module}")
        for module in filter(None, os.environ.get(EXTRA_MODULES_ENV, "").split(",")):
            importlib.import_module(module.strip())
    return dict(_REGISTRY)


def get(name: str) -> Implementation:
    known = implementations()
    if name not in known:
        raise KeyError(f"unknown implementation {name!r} (valid: {', '.join(known)})")
    return known[name]
