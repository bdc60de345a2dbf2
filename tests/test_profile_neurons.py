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
    model = SnnTorchNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = _inputs()
    with kernelprof.profile(model, warmup=2, steps=1, op_steps=1, faster_rounds=1) as prof:
        for _ in range(20):
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
            prof.step()
    document = prof.result.document
    by_name = {layer.name: layer for layer in document.layers}
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
