"""``kernelprof frameworks``: every framework found (built in and installed plugins), as
records."""

from __future__ import annotations

from kernelprof.frameworks import registry
from kernelprof.results.frameworks import DefaultSetting, FrameworkInfo, FrameworkListing


def list_frameworks() -> FrameworkListing:
    found = []
    for framework in registry.frameworks().values():
        found.append(FrameworkInfo(
            name=framework.name, display=framework.display, source=registry.source(framework.name),
            problem=framework.problem(import_it=False),
            implementations=tuple(impl.name for impl in framework.implementations),
            neurons={impl.name: impl.neurons for impl in framework.implementations},
            networks=tuple(framework.networks), converters=tuple(framework.converters),
            no_converter=framework.no_converter, description=framework.description,
            defaults=tuple(DefaultSetting(setting=d.setting, value=d.value, source=d.source,
                                          canonical=d.canonical) for d in framework.defaults),
        ))  # fmt: skip
    return FrameworkListing(frameworks=tuple(found), problems=tuple(registry.problems()))
