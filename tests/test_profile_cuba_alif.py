"""CUBA and ALIF neuron layers in a profile: each framework's current-based and adaptive
neurons are named with the canonical neuron they compute, and each name is checked by running
the module against the float64 oracle of that neuron (its spikes and its states, from rest).
Where a framework computes it one step late (Norse's LSNN) or only approximately (Sinabs'
ALIF, lava-dl's fixed point), the reason names the neuron and says what differs."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

import reference_kernels
from kernelprof.frameworks import base
from kernelprof.runs.profile.layers import config_text
from reference_kernels.model import ALIFConfig, CUBAConfig

T, N = 16, 512


def _x(scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    return (torch.rand(T, N, generator=generator, dtype=torch.float64) * 1.2 - 0.2) * scale


def _oracle(x: torch.Tensor, config) -> tuple[torch.Tensor, dict]:
    return reference_kernels.multistep(x, config, impl="torch", return_state=True)


def _same_spikes(spikes: torch.Tensor, expected: torch.Tensor) -> None:
    rate = float(expected.mean())
    assert 0.05 < rate < 0.7, rate  # the input makes neurons fire and rest
    assert torch.equal(spikes.to(expected.dtype), expected), float((spikes != expected).mean())


def test_snntorchs_synaptic_is_cuba_and_computes_it():
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    from kernelprof.frameworks import snntorch as sn

    module = snn.Synaptic(alpha=0.75, beta=0.5, spike_grad=surrogate.fast_sigmoid(slope=2.0),
                          reset_mechanism="zero", reset_delay=False).double()  # fmt: skip
    config = sn.leaky_config(module)
    assert config == CUBAConfig(tau=2.0, tau_syn=4.0, v_reset=0.0, decay_input=False,
                                surrogate="superspike", alpha=2.0)  # fmt: skip
    assert config_text(config) == (
        "CUBA: tau 2, tau_syn 4, theta 1, hard reset to 0, input not decayed, superspike(2)"
    )
    x = _x(0.3)
    syn, mem = module.init_synaptic()
    spikes, currents = [], []
    for step in x:
        spk, syn, mem = module(step, syn, mem)
        spikes.append(spk)
        currents.append(syn)
    expected, states = _oracle(x, config)
    _same_spikes(torch.stack(spikes), expected)
    torch.testing.assert_close(torch.stack(currents), states["i"])
    with pytest.raises(base.Unsupported, match="reset_delay=True: Synaptic's delayed zero reset"):
        sn.leaky_config(snn.Synaptic(alpha=0.75, beta=0.5, spike_grad=surrogate.atan(),
                                     reset_mechanism="zero"))  # fmt: skip
    with pytest.raises(base.Unsupported, match="learn_alpha"):
        sn.leaky_config(snn.Synaptic(alpha=0.75, beta=0.5, spike_grad=surrogate.atan(),
                                     reset_mechanism="zero", reset_delay=False,
                                     learn_alpha=True))  # fmt: skip
    with pytest.raises(base.Unsupported, match="one time step a call: Synaptic"):
        sn.canonical_leaky(module, (x,), {})


def test_norses_current_based_lif_is_cuba_and_computes_it():
    norse_torch = pytest.importorskip("norse.torch")

    from kernelprof.frameworks import norse as nr

    def scalar(value):
        return torch.tensor(value, dtype=torch.float64)

    p = norse_torch.LIFParameters(tau_syn_inv=scalar(250.0), tau_mem_inv=scalar(500.0),
                                  v_leak=scalar(0.0), v_th=scalar(1.0), v_reset=scalar(0.0),
                                  method="super", alpha=scalar(100.0))  # fmt: skip
    module = norse_torch.LIF(p, dt=1e-3)
    config = nr.module_config(module)
    assert isinstance(config, CUBAConfig) and config.decay_input and config.v_reset == 0.0
    assert (config.tau, config.tau_syn, config.v_threshold) == pytest.approx((2.0, 4.0, 1.0))
    x = _x(0.7)
    spikes, _ = module(x)
    _same_spikes(spikes, _oracle(x, config)[0])
    # Norse's defaults: tau_syn 5 ms, tau_mem 10 ms at dt 1 ms, i.e. CUBA tau_syn 5, tau 10
    default = nr.module_config(norse_torch.LIF())
    assert isinstance(default, CUBAConfig)
    assert (default.tau, default.tau_syn) == pytest.approx((10.0, 5.0))


def test_norses_lsnn_is_named_the_alif_it_computes_one_step_late():
    norse_torch = pytest.importorskip("norse.torch")

    from kernelprof.frameworks import norse as nr

    def scalar(value):
        return torch.tensor(value, dtype=torch.float64)

    p = norse_torch.LSNNParameters(tau_syn_inv=scalar(1.0), tau_mem_inv=scalar(0.5),
                                   tau_adapt_inv=scalar(0.125), v_leak=scalar(0.0),
                                   v_th=scalar(0.5), v_reset=scalar(0.0), beta=scalar(0.3),
                                   method="super", alpha=scalar(100.0))  # fmt: skip
    module = norse_torch.LSNN(p, dt=1.0)
    with pytest.raises(base.Unsupported, match="one step late") as why:
        nr.module_config(module)
    named = re.search(r"tau ([\d.]+), tau_a ([\d.]+), beta_a ([\d.]+), theta0 ([\d.]+)",
                      str(why.value))  # fmt: skip
    assert named, why.value
    tau, tau_a, beta_a, theta0 = map(float, named.groups())
    assert (tau, tau_a, beta_a, theta0) == (2.0, 8.0, 0.3, 0.5)
    # the claim itself: LSNN's step t + 1 is that ALIF's step t
    x = _x()
    spikes, _ = module(torch.cat([x, torch.zeros_like(x[:1])]))
    config = ALIFConfig(tau=tau, tau_a=tau_a, beta_a=beta_a, v_threshold=theta0, v_reset=0.0,
                        surrogate="superspike", alpha=1.0)  # fmt: skip
    _same_spikes(spikes[1:], _oracle(x, config)[0])
    assert not bool(spikes[0].any())


def test_rockpools_lif_with_a_real_synapse_is_cuba_on_the_input_times_beta():
    pytest.importorskip("rockpool")
    from rockpool.nn.modules import LIFTorch
    from rockpool.nn.modules.torch.lif_torch import PeriodicExponential
    from rockpool.parameters import Constant

    from kernelprof.frameworks import rockpool as rp

    module = LIFTorch(N, leak_mode="decays", alpha=Constant(0.5), beta=Constant(0.75),
                      threshold=Constant(1.0), bias=Constant(0.0), learning_window=0.5,
                      spike_generation_fn=PeriodicExponential, max_spikes_per_dt=1)  # fmt: skip
    config = rp.module_config(module)
    assert config == CUBAConfig(tau=2.0, tau_syn=4.0, v_reset=None, decay_input=False,
                                surrogate="piecewise_exp", alpha=2.0)  # fmt: skip
    x = _x(0.45).float()
    out, _, _ = module(x.unsqueeze(0))  # batch-first [B, T, N]
    # I / beta is the canonical current: the oracle's input is x times beta
    _same_spikes(out[0].double(), _oracle(x.double() * 0.75, config)[0])
    trained = LIFTorch(4, leak_mode="decays", alpha=torch.tensor(0.5), beta=Constant(0.75),
                       threshold=Constant(1.0), bias=Constant(0.0), learning_window=0.5,
                       spike_generation_fn=PeriodicExponential, max_spikes_per_dt=1)  # fmt: skip
    with pytest.raises(base.Unsupported, match="CUBA with membrane decay alpha = 0.5 trained"):
        rp.module_config(trained)


def test_sinabs_lif_with_tau_syn_is_cuba_and_its_alif_is_named_approximately():
    pytest.importorskip("sinabs")
    from sinabs.activation import MembraneReset, SingleExponential, SingleSpike
    from sinabs.layers import ALIF, LIF

    from kernelprof.frameworks import sinabs as sb

    tau_mem, tau_syn = -1.0 / math.log(0.5), -1.0 / math.log(0.75)  # alphas 0.5 and 0.75
    common = dict(spike_fn=SingleSpike, reset_fn=MembraneReset(),
                  surrogate_grad_fn=SingleExponential(grad_width=0.5, grad_scale=0.5))  # fmt: skip
    module = LIF(tau_mem=tau_mem, tau_syn=tau_syn, norm_input=True, **common).double()
    config = sb.layer_config(module)
    assert isinstance(config, CUBAConfig) and config.decay_input
    assert (config.tau, config.tau_syn) == pytest.approx((2.0, 4.0))
    assert (config.v_reset, config.detach_reset) == (0.0, True)
    x = _x(0.8)
    spikes = module(x.unsqueeze(0))  # batch-first [B, T, N]
    _same_spikes(spikes[0], _oracle(x * 0.75, config)[0])  # i_syn is alpha_syn times I

    alif = ALIF(tau_mem=tau_mem, tau_adapt=-1.0 / math.log(0.8), adapt_scale=2.0, **common)
    with pytest.raises(base.Unsupported, match="only approximately") as why:
        sb.layer_config(alif)
    # beta_a = adapt_scale (1 - rho) / rho = 2 * 0.2 / 0.8 = 0.5; tau_a = 1 / (1 - 0.8) = 5
    assert "tau 2, tau_a 5, beta_a 0.5, theta0 1, hard reset to 0" in str(why.value)
    x = _x(3.0)
    alif_spikes = alif.double()(x.unsqueeze(0))
    named = ALIFConfig(tau=2.0, tau_a=5.0, beta_a=0.5, v_reset=0.0, detach_reset=True,
                       detach_adaptation=True, surrogate="piecewise_exp", alpha=2.0)  # fmt: skip
    _same_spikes(alif_spikes[0], _oracle(x, named)[0])  # the forward is the named ALIF's


def test_lava_dls_cuba_neuron_is_named_with_its_current_and_never_exact():
    pytest.importorskip("lava.lib.dl.slayer")
    from lava.lib.dl.slayer.neuron import alif, cuba

    from kernelprof.frameworks import lava_dl as ld

    lif = cuba.Neuron(threshold=1.25, current_decay=1, voltage_decay=0.5)
    current = cuba.Neuron(threshold=1.25, current_decay=0.25, voltage_decay=0.03)
    with pytest.raises(base.Unsupported, match="canonical LIF, tau 2, theta 1.25"):
        ld.neuron_config(lif)
    with pytest.raises(base.Unsupported, match=r"CUBA \(tau_syn 4\), tau 33.3.*approximately"):
        ld.neuron_config(current)
    with pytest.raises(base.Unsupported, match="not slayer's cuba.Neuron"):
        ld.neuron_config(alif.Neuron(threshold=1.0, threshold_step=0.1, current_decay=1,
                                     voltage_decay=0.1, threshold_decay=0.1,
                                     refractory_decay=0.1))  # fmt: skip


def test_a_profile_names_norses_cuba_and_lsnn_and_snntorchs_synaptic_in_its_neuron_table():
    norse_torch = pytest.importorskip("norse.torch")
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    from tests.test_profile_neurons import _profiled

    class Net(nn.Module):
        """linear -> Norse LIF and LSNN at their defaults -> linear -> snnTorch Synaptic."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 32)
            self.cuba, self.lsnn = norse_torch.LIF(), norse_torch.LSNN()
            self.syn = snn.Synaptic(alpha=0.75, beta=0.5, spike_grad=surrogate.atan(),
                                    reset_mechanism="zero", reset_delay=False)  # fmt: skip

        def forward(self, x):
            spikes, _ = self.cuba(self.fc1(x) * 20)
            spikes, _ = self.lsnn(spikes)
            current = self.fc2(spikes)
            syn, mem = self.syn.init_synaptic()
            out = []
            for step in current:
                spk, syn, mem = self.syn(step, syn, mem)
                out.append(spk)
            return torch.stack(out)

    document, by_name = _profiled(Net(), _x().float()[:, :16].reshape(T, 4, 4).repeat(1, 2, 4),
                                  lambda: None)  # fmt: skip
    assert by_name["cuba"].neuron.canonical == (
        "CUBA: tau 10, tau_syn 5, theta 1, hard reset to 0, decay_input, superspike(1)"
    )
    lsnn = by_name["lsnn"].neuron.canonical  # LSNN's defaults filter a current too
    assert lsnn.startswith("none: LSNN with dt*tau_syn_inv = 0.2: an adaptive threshold"), lsnn
    assert by_name["syn"].neuron.canonical == (
        "CUBA: tau 2, tau_syn 4, theta 1, hard reset to 0, input not decayed, atan(2)"
    )
    assert "one time step a call: Synaptic" in document.faster.none["syn"], document.faster.none
    assert "returns (spikes, state)" in document.faster.none["cuba"], document.faster.none


def _sj_cuba_net():
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    class Net(nn.Module):
        """linear -> CUBALIFNode (multi-step) -> linear."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc1 = layer.Linear(16, 32, step_mode="m")
            self.cuba = neuron.CUBALIFNode(c_decay=0.75, v_decay=0.5, v_threshold=1.0,
                                           surrogate_function=surrogate.ATan())  # fmt: skip
            functional.set_step_mode(self.cuba, "m")
            self.fc2 = layer.Linear(32, 8, step_mode="m")

        def forward(self, x):
            return self.fc2(self.cuba(self.fc1(x)))

    return Net()


def test_spikingjellys_cubalifnode_is_cuba_and_a_multistep_call_from_rest_computes_it():
    pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import functional, neuron, surrogate

    from kernelprof.frameworks import spikingjelly as sj

    model = _sj_cuba_net()
    config = CUBAConfig(tau=2.0, tau_syn=4.0, decay_input=False, surrogate="atan", alpha=2.0)
    assert sj.node_config(model.cuba) == config
    x = torch.rand(T, 8, 32)
    assert sj.canonical_node(model.cuba, (x,), {}) == config  # [T, ...] from rest
    model.cuba(x)
    with pytest.raises(base.Unsupported, match="carries over from an earlier call"):
        sj.canonical_node(model.cuba, (x,), {})  # no reset_net between its calls
    functional.reset_net(model)
    # the node's forward itself against the oracle: spikes and current
    node = neuron.CUBALIFNode(c_decay=0.75, v_decay=0.5, v_threshold=1.0,
                              surrogate_function=surrogate.ATan())  # fmt: skip
    inputs = _x(0.45)
    spikes, currents = [], []
    for step in inputs.float():
        spikes.append(node(step))
        currents.append(node.c)
    expected, states = _oracle(inputs, config)
    _same_spikes(torch.stack(spikes).double(), expected)
    torch.testing.assert_close(torch.stack(currents).double(), states["i"], atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # torch.compile of the CUBA kernel: ~50 s on 2 cores
def test_in_a_profile_the_fused_kernel_stands_in_for_cubalifnode_after_a_check():
    pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import functional

    from tests.test_profile_neurons import COMPILE, _profiled

    model = _sj_cuba_net()
    x = torch.rand(T, 8, 16, generator=torch.Generator().manual_seed(1))
    document, by_name = _profiled(model, x, lambda: functional.reset_net(model))
    assert by_name["cuba"].neuron.canonical == (
        "CUBA: tau 2, tau_syn 4, theta 1, hard reset to 0, input not decayed, atan(2)"
    )
    path = next(p for p in document.faster.paths if p.change == COMPILE)
    assert path.layers == ("cuba",), path.checks  # checked on the layer's own input, and passed
