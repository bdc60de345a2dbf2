"""Each framework module's written-down defaults are the installed package's own: every setting
that is a parameter of the framework's neuron is compared with its signature."""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch

from kernelprof.frameworks import registry

# Where each framework's neuron settings are declared: "module:attribute" of callables whose
# signatures hold the defaults.
SIGNATURES = {
    "spikingjelly": ["spikingjelly.activation_based.neuron:LIFNode.__init__"],
    "snntorch": ["snntorch:Leaky.__init__"],
    "norse": ["norse.torch:LIFParameters", "norse.torch.module.snn:SNN.__init__"],
    "lava-dl": ["lava.lib.dl.slayer.neuron.cuba:Neuron.__init__"],
    "sinabs": ["sinabs.layers:LIF.__init__"],
}


def resolve(reference: str):
    module, _, attribute = reference.partition(":")
    target = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def shown(value) -> str:
    """How a default value is written in a Default: the number of a 0-dim tensor, the name of
    a class, else its repr."""
    if isinstance(value, torch.Tensor):
        return repr(float(value))
    if inspect.isclass(value):
        return value.__name__
    return repr(value)


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_written_defaults_match_the_installed_framework(name):
    framework = registry.framework(name)
    problem = framework.problem()
    if problem is not None:
        pytest.skip(problem)
    parameters = {}
    for reference in SIGNATURES[name]:
        parameters.update(inspect.signature(resolve(reference)).parameters)
    checked = 0
    for default in framework.defaults:
        parameter = parameters.get(default.setting)
        if parameter is None:
            continue  # a behaviour, not a parameter (e.g. how the input is added)
        if default.value.startswith("required"):
            assert parameter.default is inspect.Parameter.empty, default
        else:
            assert default.value.startswith(shown(parameter.default)), (
                default, shown(parameter.default))  # fmt: skip
        checked += 1
        assert default.source and "/" in default.source
    assert checked >= 5, f"{name}: only {checked} defaults are parameters"
