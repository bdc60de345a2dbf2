"""Finding the frameworks: the built-in modules, installed plugins, and extra modules.

Three sources, in display order:

* the built-in modules: every module of this package that exposes ``FRAMEWORK``, found by
  listing the package, so that adding a framework is adding its module and nothing else. They
  are shown in :data:`DISPLAY_ORDER` first (the yardstick, then the frameworks kernelprof
  started with), then the others by name;
* every installed distribution that declares an entry point in the group
  :data:`ENTRY_POINT_GROUP` (``kernelprof.frameworks``), e.g. in its ``pyproject.toml``::

      [project.entry-points."kernelprof.frameworks"]
      myfw = "myfw_kernelprof:FRAMEWORK"

  The entry point names a :class:`~kernelprof.frameworks.base.Framework` (or a module that has
  a ``FRAMEWORK``). A third party adds a framework this way without editing kernelprof;
* the modules named in the environment variable :data:`EXTRA_ENV` (comma separated, each
  ``module`` or ``module:attribute``), e.g. the planted implementations of the tests.

Nothing here imports a framework's package: a framework module imports it only when one of
its builders runs. A plugin that fails to load, or reuses a name, is left out, and why is kept
in :func:`problems` for the commands to print.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
from types import ModuleType

from kernelprof.frameworks.base import Framework, Implementation

DISPLAY_ORDER = ("reference", "spikingjelly", "snntorch", "norse", "lava_dl", "sinabs")
ENTRY_POINT_GROUP = "kernelprof.frameworks"
EXTRA_ENV = "KERNELPROF_EXTRA_FRAMEWORKS"

_FRAMEWORKS: dict[str, Framework] = {}
_SOURCES: dict[str, str] = {}
_PROBLEMS: list[str] = []
_LOADED = False


def _as_framework(loaded: object, where: str) -> Framework:
    if isinstance(loaded, ModuleType):
        loaded = getattr(loaded, "FRAMEWORK", None)
    if not isinstance(loaded, Framework):
        raise TypeError(f"{where} is not a kernelprof Framework (got {type(loaded).__name__})")
    return loaded


def _add(framework: Framework, where: str) -> None:
    if framework.name in _FRAMEWORKS:
        _PROBLEMS.append(
            f"framework {framework.name!r} from {where} left out: the name is already taken"
        )
        return
    taken = {impl.name for fw in _FRAMEWORKS.values() for impl in fw.implementations}
    clashes = sorted(taken & {impl.name for impl in framework.implementations})
    if clashes:
        _PROBLEMS.append(
            f"framework {framework.name!r} from {where} left out: neuron names already taken "
            f"({', '.join(clashes)})"
        )
        return
    _FRAMEWORKS[framework.name] = framework
    _SOURCES[framework.name] = where


def _load_reference(reference: str) -> object:
    module_name, _, attribute = reference.partition(":")
    loaded: object = importlib.import_module(module_name.strip())
    for part in filter(None, attribute.strip().split(".")):
        loaded = getattr(loaded, part)
    return loaded


def built_in_modules() -> list[str]:
    """The modules of this package that hold a framework (a module-level ``FRAMEWORK``), in
    display order. Importing one imports no framework package (they do so when they build)."""
    import kernelprof.frameworks as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if isinstance(getattr(module, "FRAMEWORK", None), Framework):
            found.append(info.name)
    rank = {name: index for index, name in enumerate(DISPLAY_ORDER)}
    return sorted(found, key=lambda name: (rank.get(name, len(rank)), name))


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for name in built_in_modules():
        module = importlib.import_module(f"kernelprof.frameworks.{name}")
        _add(_as_framework(module, f"kernelprof.frameworks.{name}"), f"built in ({name}.py)")
    entry_points = sorted(
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name
    )
    for entry_point in entry_points:
        where = f"entry point {entry_point.name} = {entry_point.value}"
        try:
            _add(_as_framework(entry_point.load(), where), where)
        except Exception as error:  # noqa: BLE001 - a broken plugin must not stop the others
            detail = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            _PROBLEMS.append(f"framework plugin ({where}) failed to load: {detail}")
    for reference in filter(None, os.environ.get(EXTRA_ENV, "").split(",")):
        where = f"{EXTRA_ENV} module {reference.strip()}"
        try:
            loaded = _load_reference(reference)
            many = getattr(loaded, "FRAMEWORKS", None) if isinstance(loaded, ModuleType) else None
            found = [_as_framework(framework, where) for framework in many or [loaded]]
        except Exception as error:  # noqa: BLE001 - reported like a broken plugin
            detail = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            _PROBLEMS.append(f"frameworks from {where} failed to load: {detail}")
            continue
        for framework in found:
            _add(framework, where)


def frameworks() -> dict[str, Framework]:
    """Every framework found, by name, in display order."""
    _load()
    return dict(_FRAMEWORKS)


def source(name: str) -> str:
    """Where the framework ``name`` came from (built in, an entry point, an extra module)."""
    _load()
    return _SOURCES[name]


def problems() -> list[str]:
    """Plugins that were left out, with why (one line each)."""
    _load()
    return list(_PROBLEMS)


def _named(known: dict, what: str, name: str):
    """``known[name]``, or a KeyError that lists the valid names."""
    if name not in known:
        raise KeyError(f"unknown {what} {name!r} (valid: {', '.join(known)})")
    return known[name]


def framework(name: str) -> Framework:
    return _named(frameworks(), "framework", name)


def implementations() -> dict[str, Implementation]:
    """Every framework's neurons (the rows of check and compare), by name."""
    return {impl.name: impl for fw in frameworks().values() for impl in fw.implementations}


def implementation(name: str) -> Implementation:
    return _named(implementations(), "implementation", name)


def networks() -> dict[str, Framework]:
    """The e2e network names, each with the framework that builds it."""
    return {name: fw for fw in frameworks().values() for name in fw.networks}


def conversion_routes() -> dict[str, Framework]:
    """The conversion names: each converter, and each framework that says why it has none."""
    routes: dict[str, Framework] = {}
    for fw in frameworks().values():
        for name in fw.converters:
            routes[name] = fw
        if not fw.converters and fw.no_converter:
            routes[fw.name] = fw
    return routes
