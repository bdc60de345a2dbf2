"""The faster-path search of a profile: a path stands in for a neuron layer only after computing
what the layer computed on its own input, it runs in exactly the steps that measure it, and a
path that computes something else, or a layer whose state carries over, gets none."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import kernelprof
from kernelprof.runs.profile import faster
from kernelprof.verify.verdicts import same_neuron
from reference_kernels.model import LIFConfig
from reference_kernels.torch_ref import lif_trajectory

pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional  # noqa: E402

from tests.test_profile_inspect import WARMUP, Net  # noqa: E402

LAYERS = ("lif1", "lif2", "lif3")
COMPILE = "kernelprof ref-compile in place of forward"


def profiled(rounds: int = 2, reset: bool = True, steps: int = 30):
    """Net trained ``steps`` steps under a profile whose search measures ``rounds`` rounds;
    ``reset``: the script resets the neurons' state after each step."""
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(4, 8, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2
    with kernelprof.profile(model, warmup=WARMUP, steps=2, op_steps=1,
                            faster_rounds=rounds) as prof:  # fmt: skip
        for _ in range(steps):
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
            if reset:
                functional.reset_net(model)
            else:  # the state carried on, but its graph let go
                for name in LAYERS:
                    getattr(model, name).v = getattr(model, name).v.detach()
            prof.step()
    return prof.result.document, model


@pytest.fixture(scope="module")
def counted():
    """A profile whose reference kernel counts its calls."""
    calls = []
    original = faster._reference
    faster._reference = lambda x, **kw: calls.append(kw["impl"]) or original(x, **kw)
    try:
        document, model = profiled()
    finally:
        faster._reference = original
    return document, model, calls.count("compile")


def test_the_fused_kernel_stands_in_for_each_canonical_lif_layer_after_its_check(counted):
    document, _, _ = counted
    path = next(p for p in document.faster.paths if p.change == COMPILE)
    assert path.layers == LAYERS
    assert {check.verdict for check in path.checks} <= {"exact", "close"}, path.checks
    assert len(path.step_s) == len(document.faster.base_s) == 2
    assert all(seconds > 0 for seconds in path.step_s + document.faster.base_s)
    speedup = document.faster_speedups[COMPILE]
    assert speedup.rounds == 2 and speedup.low <= speedup.value <= speedup.high


def test_the_path_runs_in_its_own_steps_only_and_the_model_is_left_as_it_was(counted):
    document, model, calls = counted
    # its checks (3 layers), its inspected step (3 calls) and 2 rounds of one step (3 calls)
    assert calls == 3 + 3 + 2 * 3
    assert not any("forward" in vars(module) for module in model.modules())


def test_the_fused_kernel_keeps_less_for_backward_than_the_eager_neuron(counted):
    document, _, _ = counted
    path = next(p for p in document.faster.paths if p.change == COMPILE)
    by_layer = {layer.name: layer.saved_bytes for layer in document.inspection.layers}
    for name in LAYERS:  # the eager loop keeps several [B, ...] tensors a time step; fused: one
        assert path.saved_by_layer[name] < by_layer[name], name
    assert path.saved_bytes < document.inspection.saved_bytes


def test_a_path_that_computes_another_neuron_is_refused_and_not_measured(monkeypatch):
    original = faster._reference

    def wrong(x, *, config, impl):  # the right kernel on the wrong neuron: tau 3, not 2
        return original(x, config=dataclasses.replace(config, tau=3.0), impl=impl)

    monkeypatch.setattr(faster, "_reference", wrong)
    document, _ = profiled()
    path = next(p for p in document.faster.paths if p.change == COMPILE)
    assert {check.verdict for check in path.checks} == {"WRONG"}, path.checks
    assert path.layers == () and path.step_s == () and "no layer's check passed" in path.problem
    assert COMPILE not in document.faster_speedups


def test_a_layer_whose_state_carries_over_gets_no_path():
    document, _ = profiled(reset=False)
    for name in LAYERS:
        assert "carries over" in document.faster.none[name], document.faster.none
    assert not [p for p in document.faster.paths if p.change == COMPILE]


def test_a_script_that_ends_with_the_schedule_is_not_searched_and_says_so():
    document, _ = profiled(steps=WARMUP + 1 + 9)
    assert document.status == "ok"
    assert document.faster.paths == () and "not searched" in document.faster.problems[0]


def test_no_rounds_no_search():
    document, _ = profiled(rounds=0, steps=WARMUP + 1 + 9 + 5)
    assert document.faster is None and not document.faster_speedups


# ---- the check itself ------------------------------------------------------------------------

CONFIG = LIFConfig(tau=2.0, surrogate="sigmoid", alpha=4.0)


def _layer(x: torch.Tensor, grad: torch.Tensor):
    """What a layer computing CONFIG gives on x: spikes and dX (float32, the eager loop)."""
    x = x.clone().requires_grad_()
    spikes, _, _ = lif_trajectory(x, CONFIG)
    spikes.backward(grad)
    return spikes.detach(), x.grad


def _inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(6, 50, generator=generator) * 2, torch.randn(6, 50, generator=generator)


def test_the_same_neuron_is_exact():
    x, grad = _inputs()
    spikes, dx = _layer(x, grad)
    verdict, reason = same_neuron(spikes, dx, spikes.clone(), dx.clone(), x, CONFIG)
    assert verdict == "exact", reason


def test_a_spike_flipped_away_from_the_threshold_is_wrong():
    x, grad = _inputs()
    spikes, dx = _layer(x, grad)
    _, _, h = lif_trajectory(x.double(), CONFIG)
    t, n = ((h - 1.0).abs() > 0.1).nonzero()[0].tolist()  # far from the threshold
    flipped = spikes.clone()
    flipped[t, n] = 1 - flipped[t, n]
    assert same_neuron(flipped, dx, spikes, dx, x, CONFIG)[0] == "WRONG"


def test_a_spike_flipped_at_a_threshold_tie_is_close():
    x, grad = _inputs()
    x[0, 7] = 1.0 * CONFIG.tau  # H = theta exactly at the first step: a tie
    spikes, dx = _layer(x, grad)
    flipped = spikes.clone()
    flipped[0, 7] = 1 - flipped[0, 7]
    verdict, reason = same_neuron(flipped, dx, spikes, dx, x, CONFIG)
    assert verdict == "close", reason


def test_a_gradient_beyond_tolerance_is_wrong_and_without_a_config_any_flip_is():
    x, grad = _inputs()
    spikes, dx = _layer(x, grad)
    off = dx.clone()
    off[3, 3] += 1e-2
    assert same_neuron(spikes, off, spikes, dx, x, CONFIG)[0] == "WRONG"
    flipped = spikes.clone()
    flipped[0, 0] = 1 - flipped[0, 0]
    assert same_neuron(flipped, dx, spikes, dx, x, None)[0] == "WRONG"


@pytest.mark.cuda
def test_on_cuda_the_fused_kernels_and_spikingjellys_other_providers_are_checked_and_measured():
    model = Net().cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(4, 64, 1, 8, 8, device="cuda") * 2
    with kernelprof.profile(model, warmup=WARMUP, steps=2, op_steps=1, faster_rounds=2) as prof:
        for _ in range(60):
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
            functional.reset_net(model)
            prof.step()
    document = prof.result.document
    changes = {path.change: path for path in document.faster.paths}
    for impl in ("compile", "triton"):
        path = changes[f"kernelprof ref-{impl} in place of forward"]
        assert path.layers == LAYERS, path.checks
        assert path.peak_bytes is not None and len(path.step_s) == 2
    providers = [path for change, path in changes.items() if change.startswith("SpikingJelly")]
    assert providers, sorted(changes)  # the ones not bound now: at least one of three loads
    for path in providers:
        assert {check.verdict for check in path.checks} <= {"exact", "close"}, path.checks
        assert path.change in document.faster_speedups


def test_spikingjellys_nodes_map_to_the_canonical_neuron_only_where_they_compute_it():
    from spikingjelly.activation_based import neuron, surrogate

    from kernelprof.frameworks import spikingjelly as sj
    from kernelprof.frameworks.base import Unsupported

    x = (torch.zeros(4, 3),)

    def node(**kwargs):
        settings = dict(step_mode="m", surrogate_function=surrogate.SuperSpike(alpha=1.0))
        return neuron.LIFNode(**{**settings, **kwargs})

    assert sj.canonical_node(node(tau=3.0, v_reset=None), x, {}) == LIFConfig(
        tau=3.0, v_reset=None, surrogate="superspike", alpha=1.0
    )
    refused = {
        "SuperSpike(alpha=2)": node(surrogate_function=surrogate.SuperSpike(alpha=2.0)),
        "store_v_seq": node(store_v_seq=True),
        "one time step a call": node(step_mode="s"),
        "no canonical match": node(surrogate_function=surrogate.Erf()),
    }
    for why, module in refused.items():
        with pytest.raises(Unsupported, match=why.replace("(", r"\(").replace(")", r"\)")):
            sj.canonical_node(module, x, {})
    with pytest.raises(Unsupported, match="QIFNode is none of LIFNode, IFNode, ParametricLIFNode"):
        sj.canonical_node(neuron.QIFNode(step_mode="m"), x, {})


def test_a_layer_the_device_has_no_room_to_record_is_given_up_not_the_step(monkeypatch):
    original = faster._copy

    def full(call, tensor):  # lif2's input: as if the copy ran out of memory
        if call.name == "lif2":
            call.refused = "not recorded: CUDA out of memory (planted)"
            return None
        return original(call, tensor)

    monkeypatch.setattr(faster, "_copy", full)
    document, _ = profiled()
    assert document.faster.none["lif2"] == "not recorded: CUDA out of memory (planted)"
    path = next(p for p in document.faster.paths if p.change == COMPILE)
    assert path.layers == ("lif1", "lif3") and len(path.step_s) == 2


def test_a_mapping_that_fails_is_said_and_the_step_goes_on():
    from kernelprof.frameworks import spikingjelly as sj

    paths = sj.NEURON_LAYERS.faster

    def broken(module, args, kwargs):
        raise ValueError("planted")

    original = paths.canonical
    object.__setattr__(paths, "canonical", broken)  # a frozen record: put back below
    try:
        document, _ = profiled()
    finally:
        object.__setattr__(paths, "canonical", original)
    assert document.status == "ok"
    for name in LAYERS:
        assert document.faster.none[name] == "call 1: its mapping failed (ValueError: planted)"
