"""IF and PLIF neuron layers in a profile: each framework's are recognised with the canonical
neuron they compute (a PLIF's at its current decay), kernelprof's fused kernels stand in for
those that compute it over [T, ...] from rest only after a check (a PLIF's with the module's own
w, whose gradient must be the one the module's parameter got and must reach that parameter),
and the others are refused with the reason."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import kernelprof
from kernelprof.frameworks import base
from kernelprof.runs.profile import faster
from reference_kernels.model import IFConfig, PLIFConfig

pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402

from kernelprof.frameworks import spikingjelly as sj  # noqa: E402

COMPILE = "kernelprof ref-compile in place of forward"


class SJNet(nn.Module):
    """linear -> IFNode -> linear -> ParametricLIFNode, multi-step."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = layer.Linear(16, 32, step_mode="m")
        self.if1 = neuron.IFNode(step_mode="m", surrogate_function=surrogate.Sigmoid())
        self.fc2 = layer.Linear(32, 32, step_mode="m")
        self.plif = neuron.ParametricLIFNode(step_mode="m", init_tau=2.0,
                                             surrogate_function=surrogate.ATan())  # fmt: skip

    def forward(self, x):
        return self.plif(self.fc2(self.if1(self.fc1(x))))


def _inputs():
    return torch.rand(6, 8, 16, generator=torch.Generator().manual_seed(1)) * 2


@pytest.fixture(scope="module")
def sj_profile():
    model = SJNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x = _inputs()
    with kernelprof.profile(model, warmup=2, steps=2, op_steps=1, faster_rounds=2) as prof:
        for _ in range(30):
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
            functional.reset_net(model)
            prof.step()
    return prof.result.document, model


def test_spikingjellys_if_and_plif_are_recognised_with_their_canonical_neuron(sj_profile):
    document, _ = sj_profile
    by_name = {layer.name: layer for layer in document.layers}
    assert by_name["if1"].category == by_name["plif"].category == "neuron"
    assert by_name["if1"].neuron.canonical == "IF: theta 1, hard reset to 0, sigmoid(4)"
    plif = by_name["plif"].neuron.canonical
    assert plif.startswith("PLIF: k=") and plif.endswith("decay_input, atan(2)"), plif
    k = float(plif.removeprefix("PLIF: k=").split()[0])
    assert k != pytest.approx(0.5, abs=1e-3)  # the decay it has learned, not its initial 1/tau0


def test_the_fused_kernel_stands_in_for_if_and_plif_after_a_check_of_spikes_dx_and_dw(
    sj_profile,
):
    document, _ = sj_profile
    path = next(p for p in document.faster.paths if p.change == COMPILE)
    assert path.layers == ("if1", "plif"), path.checks
    assert {check.verdict for check in path.checks} <= {"exact", "close"}, path.checks
    plif = next(check for check in path.checks if check.layer == "plif")
    assert "the learned decay's gradient within tolerance" in plif.reason, plif
    assert len(path.step_s) == 2 and COMPILE in document.faster_speedups


def test_a_plif_node_maps_to_plif_at_its_current_decay_and_an_if_node_to_if():
    plif = neuron.ParametricLIFNode(step_mode="m", init_tau=2.0, decay_input=False,
                                    surrogate_function=surrogate.Sigmoid(alpha=4.0))  # fmt: skip
    plif.w.data.fill_(0.7)
    x = (torch.zeros(4, 3),)
    config = sj.canonical_node(plif, x, {})
    assert isinstance(config, PLIFConfig) and not config.decay_input
    assert 1 / config.tau == pytest.approx(1 / (1 + math.exp(-0.7)), rel=1e-6)  # w is float32
    assert sj.canonical_node(neuron.IFNode(step_mode="m", v_reset=None), x, {}) == IFConfig(
        v_reset=None, surrogate="sigmoid", alpha=4.0
    )


def _plif_setup():
    model = SJNet()
    x = _inputs()
    config = sj.canonical_node(model.plif, (torch.zeros(6, 8, 32),), {})
    return model, x, config


def test_in_place_of_a_plif_the_kernel_takes_the_modules_w_and_its_gradient_reaches_it():
    model, x, config = _plif_setup()
    grad = torch.randn(6, 8, 32, generator=torch.Generator().manual_seed(2))

    def w_grad(replace: bool) -> torch.Tensor:
        model.zero_grad()
        functional.reset_net(model)
        candidate = faster.Candidate(change="", path="", checks=(), impl="compile",
                                     modules=((model.plif, config,
                                               sj.NEURON_LAYERS.faster.decay),))  # fmt: skip
        if replace:
            candidate.enter()
        try:
            model(x).backward(grad)
        finally:
            candidate.exit()
        return model.plif.w.grad.clone()

    own, replaced = w_grad(False), w_grad(True)
    assert float(replaced.abs()) > 0
    assert float(replaced) == pytest.approx(float(own), rel=1e-4, abs=1e-6)
    assert "forward" not in vars(model.plif)


def _recorded_search(decay: base.LearnedDecay | None):
    """One step of SJNet recorded with SpikingJelly's mapping and ``decay`` for its PLIF."""
    model, x, _ = _plif_setup()
    paths = base.FasterPaths(canonical=sj.canonical_node, fresh=sj.fresh_node, decay=decay)
    declaration = SimpleNamespace(faster=paths)
    recorder = faster.Recorder(torch.device("cpu"))
    recorder.install([(SimpleNamespace(name=name, neuron=SimpleNamespace(
        framework="SpikingJelly", declaration=declaration)), getattr(model, name))
        for name in ("if1", "plif")])  # fmt: skip
    try:
        model(x).sum().backward()
    finally:
        recorder.uninstall()
    return recorder


def test_a_path_whose_decay_gradient_differs_is_wrong_and_stands_in_for_no_plif():
    def doubled(w):  # the same forward, twice the gradient into the module's w
        return w.detach() + 2 * (w - w.detach())

    recorder = _recorded_search(base.LearnedDecay(parameter=lambda node: node.w, to_w=doubled))
    candidates, unmeasured = recorder.search()
    path = next(c for c in candidates if c.change == COMPILE)
    verdicts = {check.layer: check for check in path.checks}
    assert verdicts["if1"].verdict == "exact", verdicts
    assert verdicts["plif"].verdict == "WRONG", verdicts
    assert "decay's gradient" in verdicts["plif"].reason
    assert [config.neuron for _, config, _ in path.modules] == ["if"]  # the IF alone


def test_a_plif_whose_framework_cannot_pass_its_decay_is_refused_with_the_reason():
    recorder = _recorded_search(None)
    candidates, _ = recorder.search()
    assert "no way to take its learned decay" in recorder.none["plif"], recorder.none
    path = next(c for c in candidates if c.change == COMPILE)
    assert [check.layer for check in path.checks] == ["if1"]


# ---- snnTorch: Leaky as IF and PLIF, one step a call ------------------------------------------


class SnnTorchNet(nn.Module):
    """linear -> Leaky(beta=1) (IF) -> linear -> Leaky(learn_beta=True) (PLIF), over T."""

    def __init__(self):
        super().__init__()
        import snntorch as snn

        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 32)
        self.if1 = snn.Leaky(beta=1.0, reset_mechanism="zero", reset_delay=False)
        self.plif = snn.Leaky(beta=0.5, learn_beta=True, reset_mechanism="zero")

    def forward(self, x):
        mem1, mem2, spikes = self.if1.reset_mem(), self.plif.reset_mem(), []
        for t in range(x.shape[0]):
            s1, mem1 = self.if1(self.fc1(x[t]), mem1)
            s2, mem2 = self.plif(self.fc2(s1), mem2)
            spikes.append(s2)
        return torch.stack(spikes)


def test_snntorchs_if_and_plif_are_recognised_and_refused_a_path_with_the_reason():
    pytest.importorskip("snntorch")
    document, by_name = _profiled(SnnTorchNet(), _inputs(), lambda: None, lr=1e-3)
    assert by_name["if1"].neuron.canonical == "IF: theta 1, hard reset to 0, atan(2)"
    plif = by_name["plif"].neuron.canonical
    assert plif.startswith("PLIF: k=") and "input not decayed, detach_reset" in plif, plif
    assert float(plif.removeprefix("PLIF: k=").split()[0]) != pytest.approx(0.5, abs=1e-4)
    for name in ("if1", "plif"):
        assert "one time step a call" in document.faster.none[name], document.faster.none
    assert not [p for p in document.faster.paths if p.layers]


def test_snntorchs_learned_beta_converts_to_w_with_its_gradient_back_into_beta():
    pytest.importorskip("snntorch")
    import snntorch as snn

    from kernelprof.frameworks import snntorch as snt

    leaky = snn.Leaky(beta=0.7, learn_beta=True, reset_mechanism="zero")
    config = snt.leaky_config(leaky)
    assert isinstance(config, PLIFConfig) and 1 / config.tau == pytest.approx(0.3, rel=1e-6)
    decay = snt.NEURON_LAYERS.faster.decay
    w = decay.to_w(decay.parameter(leaky))
    assert float(torch.sigmoid(w)) == pytest.approx(0.3, rel=1e-6)
    w.backward()  # dw/dbeta = -1 / (k (1 - k))
    assert float(leaky.beta.grad) == pytest.approx(-1 / (0.3 * 0.7), rel=1e-5)
    with pytest.raises(base.Unsupported, match="reset_mechanism='subtract'"):
        snt.leaky_config(snn.Leaky(beta=0.5))  # snnTorch's default: no canonical reset


# ---- BrainCog: IFNode and PLIFNode -------------------------------------------------------------


def test_braincogs_if_and_plif_nodes_map_to_if_and_plif_and_get_no_path_with_the_reason():
    pytest.importorskip("braincog")
    from braincog.base.node import node as nodes
    from braincog.base.strategy import surrogate as bc_surrogate

    from kernelprof.frameworks import braincog as bc

    if_node = nodes.IFNode(threshold=0.5, act_fun=bc_surrogate.SigmoidGrad)
    assert bc.node_config(if_node) == IFConfig(v_threshold=0.5, detach_reset=True, alpha=2.0)
    plif = nodes.PLIFNode(threshold=1.0, tau=2.0, layer_by_layer=True, step=4)
    plif.w.data.fill_(0.3)
    config = bc.node_config(plif)
    assert isinstance(config, PLIFConfig) and config.surrogate == "atan"
    assert 1 / config.tau == pytest.approx(1 / (1 + math.exp(-0.3)), rel=1e-6)
    with pytest.raises(base.Unsupported, match="one time step a call"):
        bc.canonical_node(if_node, (torch.zeros(2, 3),), {})
    with pytest.raises(base.Unsupported, match="time folded into its input"):
        bc.canonical_node(plif, (torch.zeros(8, 3),), {})
    with pytest.raises(base.Unsupported, match="QGateGrad"):
        bc.node_config(nodes.LIFNode())


# ---- Sinabs, Norse, Rockpool: named, and refused a path with the reason -----------------------


def _profiled(model, x, reset, *, lr=0.05):
    """The profile document of a few SGD steps of ``model`` on ``x`` (``reset()`` before each)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with kernelprof.profile(model, warmup=2, steps=1, op_steps=1, faster_rounds=1) as prof:
        for _ in range(12):
            reset()
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
            prof.step()
    document = prof.result.document
    return document, {layer.name: layer for layer in document.layers}


def _sinabs_common():
    from sinabs.activation import MembraneSubtract, SingleExponential, SingleSpike

    return dict(spike_fn=SingleSpike, reset_fn=MembraneSubtract(),
                surrogate_grad_fn=SingleExponential(grad_width=0.5, grad_scale=0.5))  # fmt: skip


class SinabsNet(nn.Module):
    """linear -> IAF (IF) -> linear -> LIF(train_alphas=True) (PLIF), batch-first [B, T, F]."""

    def __init__(self):
        super().__init__()
        from sinabs.layers import IAF, LIF

        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 32)
        self.if1 = IAF(**_sinabs_common())
        self.plif = LIF(tau_mem=-1 / math.log(0.5), train_alphas=True, **_sinabs_common())

    def forward(self, x):
        return self.plif(self.fc2(self.if1(self.fc1(x))))


def test_sinabs_iaf_and_trained_lif_are_named_if_and_plif_and_refused_a_path():
    pytest.importorskip("sinabs")
    model = SinabsNet()

    def reset():
        model.if1.reset_states()
        model.plif.reset_states()

    document, by_name = _profiled(model, _inputs().movedim(0, 1), reset, lr=1e-4)
    assert by_name["if1"].neuron.canonical == "IF: theta 1, soft reset, piecewise_exp(2)"
    plif = by_name["plif"].neuron.canonical
    assert plif.startswith("PLIF: k=") and plif.endswith("decay_input, piecewise_exp(2)"), plif
    assert float(plif.removeprefix("PLIF: k=").split()[0]) != pytest.approx(0.5, abs=1e-4)
    for name in ("if1", "plif"):
        assert "batch-first [B, T, ...]" in document.faster.none[name], document.faster.none
    assert not [p for p in document.faster.paths if p.layers]


def test_sinabs_layers_map_to_if_lif_and_plif_at_the_current_alpha_or_say_why_not():
    pytest.importorskip("sinabs")
    from sinabs.activation import MembraneReset
    from sinabs.layers import IAF, LIF

    from kernelprof.frameworks import sinabs as sb

    plif = LIF(tau_mem=2.0, train_alphas=True, norm_input=False,
               **{**_sinabs_common(), "reset_fn": MembraneReset()})  # fmt: skip
    plif.alpha_mem.data.fill_(0.7)
    config = sb.layer_config(plif)
    assert isinstance(config, PLIFConfig) and not config.decay_input
    assert 1 / config.tau == pytest.approx(0.3, rel=1e-6)  # k = 1 - alpha_mem now
    assert (config.v_reset, config.detach_reset, config.surrogate) == (0.0, True, "piecewise_exp")
    lif = sb.layer_config(LIF(tau_mem=-1 / math.log(0.75), **_sinabs_common()))
    assert lif.neuron == "lif" and lif.tau == pytest.approx(4.0, rel=1e-6) and lif.decay_input
    assert sb.layer_config(IAF(spike_threshold=torch.tensor(0.5), **_sinabs_common())) == IFConfig(
        v_threshold=0.5, v_reset=None, surrogate="piecewise_exp", alpha=4.0
    )
    with pytest.raises(base.Unsupported, match="MultiSpike"):
        sb.layer_config(IAF())  # Sinabs' defaults: several spikes a step
    with pytest.raises(base.Unsupported, match="grad_scale"):
        sb.layer_config(IAF(**{**_sinabs_common(), "surrogate_grad_fn": type(
            _sinabs_common()["surrogate_grad_fn"])()}))  # fmt: skip
    with pytest.raises(base.Unsupported, match="batch-first"):
        sb.canonical_layer(LIF(tau_mem=3.0, **_sinabs_common()), (torch.zeros(2, 4, 3),), {})


class NorseNet(nn.Module):
    """linear -> IAF (IF) -> linear -> LIF with a transparent synapse (LIF), time-first."""

    def __init__(self):
        super().__init__()
        import norse.torch as norse_torch

        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 32)
        self.if1 = norse_torch.IAF()  # IAFParameters() at its defaults
        p = norse_torch.LIFParameters(tau_syn_inv=torch.tensor(1.0), tau_mem_inv=torch.tensor(0.5),
                                      method="tanh", alpha=torch.tensor(2.0))  # fmt: skip
        self.lif = norse_torch.LIF(p, dt=1.0)

    def forward(self, x):
        spikes, _ = self.if1(self.fc1(x))
        spikes, _ = self.lif(self.fc2(spikes))
        return spikes


def test_norse_iaf_and_transparent_synapse_lif_are_named_and_refused_a_path():
    pytest.importorskip("norse")
    document, by_name = _profiled(NorseNet(), _inputs(), lambda: None)
    # Norse 1.1.0's 'super' ignores its alpha (100 by default): SuperSpike(1)
    assert by_name["if1"].neuron.canonical == "IF: theta 1, hard reset to 0, superspike(1)"
    assert by_name["lif"].neuron.canonical == (
        "LIF: tau 2, theta 1, hard reset to 0, decay_input, sigmoid(4)"
    )
    for name in ("if1", "lif"):
        assert "returns (spikes, state)" in document.faster.none[name], document.faster.none
    assert not [p for p in document.faster.paths if p.layers]


def test_norses_iaf_maps_to_if_and_a_state_passed_in_is_refused():
    pytest.importorskip("norse")
    import norse.torch as norse_torch

    from kernelprof.frameworks import norse as nr

    iaf = norse_torch.IAF(norse_torch.IAFParameters(v_th=torch.tensor(0.5),
                                                    v_reset=torch.tensor(-0.25)))  # fmt: skip
    assert nr.module_config(iaf) == IFConfig(v_threshold=0.5, v_reset=-0.25, surrogate="superspike",
                                             alpha=1.0)  # fmt: skip
    with pytest.raises(base.Unsupported, match="a state passed in"):
        nr.canonical_module(iaf, (torch.zeros(4, 3), object()), {})


class RockpoolNet(nn.Module):
    """linear -> LIFNeuronTorch(tau_mem=inf) (IF) -> linear -> LIFTorch with its alpha trained
    and a transparent synapse (PLIF), batch-first [B, T, N]."""

    def __init__(self):
        super().__init__()
        from rockpool.nn.modules import LIFNeuronTorch, LIFTorch
        from rockpool.nn.modules.torch.lif_torch import PeriodicExponential
        from rockpool.parameters import Constant

        torch.manual_seed(0)
        common = dict(threshold=Constant(1.0), bias=Constant(0.0), learning_window=0.5,
                      spike_generation_fn=PeriodicExponential, max_spikes_per_dt=1)  # fmt: skip
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 32)
        self.if1 = LIFNeuronTorch(32, tau_mem=Constant(math.inf), **common)
        self.plif = LIFTorch(32, leak_mode="decays", alpha=torch.tensor(0.5),
                             beta=Constant(2.0**-32), **common)  # fmt: skip

    def forward(self, x):
        spikes, _, _ = self.if1(self.fc1(x))
        spikes, _, _ = self.plif(self.fc2(spikes) * 2.0**32)  # the synapse's 1/beta
        return spikes


def test_rockpool_lif_modules_are_named_if_and_plif_and_refused_a_path():
    pytest.importorskip("rockpool")
    model = RockpoolNet()

    def reset():
        model.if1.reset_state()
        model.plif.reset_state()

    document, by_name = _profiled(model, _inputs().movedim(0, 1), reset, lr=0.01)
    assert by_name["if1"].neuron.canonical == "IF: theta 1, soft reset, piecewise_exp(2)"
    plif = by_name["plif"].neuron.canonical
    assert plif.startswith("PLIF: k=") and plif.endswith("input not decayed, piecewise_exp(2)")
    assert float(plif.removeprefix("PLIF: k=").split()[0]) != pytest.approx(0.5, abs=1e-4), plif
    for name in ("if1", "plif"):
        assert "out, state, record = mod(x)" in document.faster.none[name], document.faster.none
    assert not [p for p in document.faster.paths if p.layers]


def test_rockpool_modules_map_within_the_mappings_limits_or_say_why_not():
    pytest.importorskip("rockpool")
    from rockpool.nn.modules import LIFNeuronTorch, LIFTorch
    from rockpool.nn.modules.torch.lif_torch import PeriodicExponential
    from rockpool.parameters import Constant

    from kernelprof.frameworks import rockpool as rp

    common = dict(threshold=Constant(1.0), bias=Constant(0.0), learning_window=0.5,
                  spike_generation_fn=PeriodicExponential, max_spikes_per_dt=1)  # fmt: skip
    # tau_mem trained (a Parameter by default): PLIF, k = 1 - exp(-dt/tau_mem)
    config = rp.module_config(LIFNeuronTorch(4, tau_mem=0.02, **common))
    assert isinstance(config, PLIFConfig) and not config.decay_input and config.soft_reset
    assert 1 / config.tau == pytest.approx(1 - math.exp(-1e-3 / 0.02), rel=1e-5)
    plif = RockpoolNet().plif
    plif.alpha.data.fill_(0.8)
    assert 1 / rp.module_config(plif).tau == pytest.approx(0.2, rel=1e-6)  # k = 1 - alpha now
    with pytest.raises(base.Unsupported, match="a trained tau_syn"):
        rp.module_config(LIFTorch(4, **common))  # Rockpool's default: tau_syn trained
    with pytest.raises(base.Unsupported, match="alpha\\*theta = 2"):
        common["threshold"] = Constant(2.0)  # with learning_window 0.5: alpha*theta = 4
        rp.module_config(LIFNeuronTorch(4, tau_mem=Constant(0.02), **common))
    with pytest.raises(base.Unsupported, match="StepPWL"):
        rp.module_config(LIFNeuronTorch(4))  # Rockpool's defaults
