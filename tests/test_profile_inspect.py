"""The inspected step of a profile: spikes, synaptic operations, MACs and memory saved for
backward, each checked against a count made here by other means."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import kernelprof
from kernelprof.results import layers

spikingjelly = pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, layer, neuron, surrogate  # noqa: E402

WARMUP = 2


def lif():
    return neuron.LIFNode(step_mode="m", surrogate_function=surrogate.Sigmoid(), tau=2.0)


class Net(nn.Module):
    """conv (dense input) -> LIF -> conv, stride 2 (spikes) -> LIF -> flatten -> linear
    (spikes) -> LIF: every kind of count, padding and stride included."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = layer.Conv2d(1, 4, 3, padding=1, step_mode="m")
        self.lif1 = lif()
        self.conv2 = layer.Conv2d(4, 6, 3, padding=1, stride=2, bias=False, step_mode="m")
        self.lif2 = lif()
        self.flatten = layer.Flatten(step_mode="m")
        self.fc = layer.Linear(6 * 4 * 4, 10, step_mode="m")
        self.lif3 = lif()
        for conv in (self.conv1, self.conv2):
            conv.weight.data.mul_(4)

    def forward(self, x):
        x = self.lif1(self.conv1(x))
        x = self.lif2(self.conv2(x))
        return self.lif3(self.fc(self.flatten(x)))


def autograd_saved(roots: list[torch.Tensor], parameters) -> int:
    """Bytes of the storages every node of the graphs keeps for the backward, read from the
    nodes themselves (``_saved_*`` attributes, custom functions' ``saved_tensors``). The roots:
    the loss, and the neurons' last membrane potentials, whose graph the loss does not reach
    but which holds what it saved until the state is reset."""
    owned = {p.untyped_storage().data_ptr() for p in parameters}
    storages, seen, todo = {}, set(), [root.grad_fn for root in roots]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        values = []
        for name in dir(node):
            if name.startswith("_saved_"):
                values.append(getattr(node, name))
        if hasattr(node, "saved_tensors"):
            values.append(node.saved_tensors)
        for value in values:
            for tensor in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(tensor, torch.Tensor):
                    storage = tensor.untyped_storage()
                    if storage.data_ptr() not in owned:
                        storages[storage.data_ptr()] = storage.nbytes()
        todo += [child for child, _ in node.next_functions]
    return sum(storages.values())


def profiled(T: int = 4, batch: int = 8, **options):
    """A profile of Net's training steps, with the inspected step's spikes and inputs kept here
    by hooks of the test's own, and autograd's saved bytes read from its graph."""
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(T, batch, 1, 8, 8, generator=generator) * 2
    seen: dict[str, list] = {"lif1": [], "lif2": [], "lif3": [], "conv1": [], "fc": []}
    for name in ("lif1", "lif2", "lif3"):
        getattr(model, name).register_forward_hook(
            lambda m, a, out, name=name: seen[name].append(out.detach().clone())
        )
    for name in ("conv1", "fc"):
        getattr(model, name).register_forward_pre_hook(
            lambda m, a, name=name: seen[name].append(a[0].detach().clone())
        )
    saved = []
    with kernelprof.profile(model, warmup=WARMUP, steps=2, op_steps=1, **options) as prof:
        for _ in range(WARMUP + 1 + 9):
            optimizer.zero_grad()
            out = model(x)
            loss = out.sum() + (out * 0.5).sum()
            states = [module.v for module in (model.lif1, model.lif2, model.lif3)]
            saved.append(autograd_saved([loss, *states], model.parameters()))
            loss.backward()
            optimizer.step()
            functional.reset_net(model)
            prof.step()
    inspection = prof.result.document.inspection
    step = inspection.step
    return prof.result.document, {k: v[step] for k, v in seen.items()}, saved[step], model


@pytest.fixture(scope="module")
def run():
    return profiled()


def test_the_inspected_step_is_the_one_after_the_warm_up(run):
    document, _, _, _ = run
    assert document.inspection.step == WARMUP
    assert document.inspection.samples == 8


def test_firing_rates_are_the_spikes_mean_and_silent_pairs_are_counted(run):
    document, seen, _, _ = run
    for name in ("lif1", "lif2", "lif3"):
        counts = document.inspection.of(name)
        spikes = seen[name]
        assert counts.spikes == int(spikes.sum())
        assert counts.rate == pytest.approx(float(spikes.mean()))
        per_step = [float(spikes[t].mean()) for t in range(spikes.shape[0])]
        assert counts.rate_per_step == pytest.approx(per_step)
        never = (spikes.sum(0) == 0).float().mean()
        assert counts.silent == pytest.approx(float(never))
    assert 0 < document.inspection.of("lif1").rate < 1  # the test sees spikes, not silence


def test_synaptic_operations_equal_a_count_by_hand(run):
    document, seen, _, model = run
    # conv2 takes lif1's spikes: every spike times the outputs it reaches (unfold: the inputs
    # under each output position), times the output channels
    spikes = seen["lif1"].flatten(0, 1)
    reached = F.unfold(spikes, 3, padding=1, stride=2).sum()
    conv2 = document.inspection.of("conv2")
    assert conv2.synops == int(reached) * model.conv2.out_channels
    assert conv2.macs == 0 and conv2.sources == ("lif1",)
    # fc takes lif2's spikes (flattened): each spike reaches every output
    fc = document.inspection.of("fc")
    assert fc.synops == int(seen["lif2"].sum()) * model.fc.out_features
    assert fc.sources == ("lif2",)  # through the flatten: a view of the same storage
    # conv1's input is an image: dense MACs, padding included
    image = seen["conv1"].flatten(0, 1)
    ones = torch.ones_like(image)
    macs = F.unfold(ones, 3, padding=1).sum() * model.conv1.out_channels
    assert document.inspection.of("conv1").macs == int(macs)
    assert document.inspection.of("conv1").synops == 0


def test_the_energy_estimate_is_the_counts_times_the_constants(run):
    document, _, _, _ = run
    energy = document.energy
    synops = sum(layer.synops or 0 for layer in document.inspection.layers)
    macs = sum(layer.macs or 0 for layer in document.inspection.layers)
    assert (energy.synops, energy.macs) == (synops, macs)
    assert energy.forward_j == pytest.approx((0.9 * synops + 4.6 * macs) * 1e-12)
    assert energy.per_sample_j == pytest.approx(energy.forward_j / 8)
    assert "Horowitz" in energy.source


def test_saved_bytes_add_up_to_what_autograd_saved(run):
    document, _, saved, _ = run
    inspection = document.inspection
    assert sum(layer.saved_bytes for layer in inspection.layers) == inspection.saved_bytes
    assert inspection.saved_bytes == pytest.approx(saved, rel=0.05)
    assert inspection.of("lif1").saved_bytes > 0


def test_a_neuron_layers_saved_bytes_grow_linearly_with_T():
    small, _, _, _ = profiled(T=4)
    large, _, _, _ = profiled(T=8)
    for name in ("lif1", "lif2"):
        ratio = large.inspection.of(name).saved_bytes / small.inspection.of(name).saved_bytes
        assert ratio == pytest.approx(2.0, rel=0.05)
    # profile diff shows it: the layer that grew most first, the totals in its caption
    comparison = layers.diff(small, large)
    first = comparison.counts_by[0]
    assert first.saved_delta == max(change.saved_delta for change in comparison.counts_by) > 0
    assert first.saved_delta == large.inspection.of(first.name).saved_bytes - \
        small.inspection.of(first.name).saved_bytes  # fmt: skip
    assert comparison.saved_bytes == {"a": small.inspection.saved_bytes,
                                      "b": large.inspection.saved_bytes}  # fmt: skip
    assert comparison.forward_j["b"] > comparison.forward_j["a"] > 0


def test_the_estimates_constants_can_be_given_and_say_so():
    document, _, _, _ = profiled(ac_pj=2.0, mac_pj=1.0)
    energy = document.energy
    assert (energy.ac_pj, energy.mac_pj) == (2.0, 1.0)
    assert energy.forward_j == pytest.approx((2.0 * energy.synops + energy.macs) * 1e-12)
    assert energy.source == "given: --ac-pj, --mac-pj"


class Halved(nn.Linear):
    """A layer whose forward rescales its weight (as a weight norm does): its operations are
    counted from its shape, not from what its forward computes."""

    def forward(self, x):
        return F.linear(x, self.weight * 0.5)


def test_operations_come_from_the_layers_shape_not_its_forward():
    model = nn.Sequential(Halved(8, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    spikes = (torch.rand(3, 2, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    with kernelprof.profile(model, warmup=1, steps=1, op_steps=1) as prof:
        for _ in range(8):
            optimizer.zero_grad()
            model(spikes).sum().backward()
            optimizer.step()
            prof.step()
    counts = prof.result.document.inspection.of("0")
    assert counts.synops == int(spikes.sum()) * 4 and counts.macs == 0
    assert not prof.result.document.inspection.problems
