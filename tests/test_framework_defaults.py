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


# ---- the framework-defaults setting -------------------------------------------------------

DEFAULT_LIF_TYPES = {
    "spikingjelly": "LIFNode", "snntorch": "Leaky", "norse": "NorseDefaultLIF",
    "lava-dl": "LavaDefaultLIF", "reference": "ReferenceLIF",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(DEFAULT_LIF_TYPES))
def test_framework_defaults_networks_build_each_frameworks_own_default_neuron(name):
    from kernelprof.frameworks.networks import NetworkSpec
    from kernelprof.runs.e2e.worker import build_network

    framework = registry.networks()[name]
    if framework.problem() is not None:
        pytest.skip(framework.problem())
    network = build_network(NetworkSpec("fc", (1, 4, 4), 3), name, None, 4, 0)
    lifs = [module for category, module in network.layers if category == "lif"]
    assert [type(m).__name__ for m in lifs] == [DEFAULT_LIF_TYPES[name]] * 2
    first = lifs[0]
    if name == "spikingjelly":
        assert first.tau == 2.0 and type(first.surrogate_function).__name__ == "Sigmoid"
    elif name == "snntorch":
        assert float(first.beta) == pytest.approx(0.95) and first.reset_delay
        assert first.reset_mechanism == "subtract"
    elif name == "norse":
        assert float(first.neuron.p.tau_syn_inv) == 200.0 and first.neuron.dt == 0.001
    elif name == "lava-dl":
        assert first.neuron.threshold == 1.25
    logits = network(torch.rand(2, 1, 4, 4))
    assert logits.shape == (2, 3)


def test_default_neuron_differences_come_from_checks_machinery():
    from kernelprof.runs.e2e.settings import neuron_differences
    from reference_kernels.model import LIFConfig

    if registry.framework("spikingjelly").problem() is not None:
        pytest.skip(registry.framework("spikingjelly").problem())
    # SpikingJelly's defaults are the canonical model's own defaults: the same neuron
    same = neuron_differences("spikingjelly", LIFConfig())
    assert same.check.same_neuron and same.check.spike_mismatch_fraction == 0
    # against e2e's canonical LIF only the surrogate differs: equal spikes, another gradient
    e2e = LIFConfig(surrogate="superspike", alpha=1.0)
    surrogate_only = neuron_differences("spikingjelly", e2e)
    assert not surrogate_only.check.same_neuron
    assert surrogate_only.check.spike_mismatch_fraction == 0
    assert surrogate_only.check.grad_cosine < 0.999
    surrogate = next(s for s in surrogate_only.settings if s.setting == "surrogate_function")
    assert surrogate.canonical == "superspike (alpha=1)"
    if registry.framework("snntorch").problem() is None:
        # snnTorch's tutorial neuron (beta 0.95, undecayed input, delayed soft reset) fires far
        # more often on the canonical neuron's input
        snn = neuron_differences("snntorch", e2e).check
        assert snn.spike_mismatch_fraction > 0.2
        assert snn.default_firing_rate > snn.canonical_firing_rate + 0.2


def test_difference_line_names_differing_settings_and_the_measurement():
    from kernelprof.present.e2e import neuron_difference_line
    from kernelprof.results.e2e import NeuronCheck, NeuronDifferences, SettingDifference

    differences = NeuronDifferences(
        settings=(
            SettingDifference(setting="tau", default="2.0", source="x/y.py", canonical="2.0"),
            SettingDifference(setting="surrogate", default="atan", source="x/y.py",
                              canonical="superspike (alpha=1)"),
            SettingDifference(setting="dt", default="0.001", source="x/y.py", canonical=None),
        ),
        check=NeuronCheck(input="x", same_neuron=False, verdict="WRONG",
                          spike_mismatch_fraction=0.25, default_firing_rate=0.5,
                          canonical_firing_rate=0.2, grad_cosine=0.4),
    )  # fmt: skip
    line = neuron_difference_line(differences)
    assert line.startswith("surrogate atan (canonical superspike (alpha=1)); on check's input")
    assert "25.0 % of spikes differ" in line and "tau" not in line and "dt" not in line


def test_framework_defaults_is_for_direct_training():
    from tests.cli_runner import run_kernelprof

    done = run_kernelprof("e2e", "--mode", "conversion", "--neuron-setting",
                          "framework-defaults", "--device", "cpu")  # fmt: skip
    assert done.returncode == 2 and "for --mode direct" in done.stderr
    assert "Traceback" not in done.stderr
