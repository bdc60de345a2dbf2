"""The end-to-end benchmark networks: every framework builds both kinds from one spec, trains,
starts from the same weights, and (where the LIF is exact) computes the same logits.

Inputs are scaled and weights drawn with a gain so that both LIF layers spike at initialisation;
with the default gain the second layer is silent on these tiny inputs and the logits would agree
trivially (all zero).
"""

from __future__ import annotations

import pytest
import torch

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import Unsupported
from kernelprof.frameworks.networks import CATEGORIES, NetworkSpec, encode, initial_weights
from kernelprof.runs.e2e.worker import build_network
from reference_kernels.model import LIFConfig

FRAMEWORKS = tuple(registry.networks())


def framework_problem(name: str) -> str | None:
    return registry.networks()[name].problem()


SHAPE, CLASSES, STEPS, BATCH, SEED = (1, 8, 8), 10, 4, 3, 0
GAIN, INPUT_SCALE = 4.0, 4.0
# Expressed exactly by SpikingJelly, snnTorch, Norse and the reference (tau a power of two, so
# 1/tau is exact everywhere).
EXACT = [
    LIFConfig(surrogate="superspike", alpha=1.0),
    LIFConfig(tau=4.0, decay_input=False, surrogate="superspike", alpha=1.0),
]
EXACT_FRAMEWORKS = ("spikingjelly", "snntorch", "norse", "reference")
# reference-compile costs seconds of C++ compilation per LIF shape: it has its own test.
EAGER = tuple(f for f in FRAMEWORKS if f != "reference-compile")
ORDER = {
    "cnn": ["conv", "lif", "pool", "conv", "lif", "pool", "flatten", "readout"],
    "fc": ["flatten", "linear", "lif", "linear", "lif", "readout"],
}


def spec(kind: str, **sizes) -> NetworkSpec:
    return NetworkSpec(kind, SHAPE, CLASSES, weight_gain=GAIN, **sizes)


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((BATCH, *SHAPE), generator=generator) * INPUT_SCALE
    return x, torch.randint(0, CLASSES, (BATCH,), generator=generator)


def build(kind: str, framework: str, config: LIFConfig | None = None, **sizes):
    """The framework's network for ``config`` (default: the first of CANDIDATES it can
    express, skipped with every reason where it can express none)."""
    problem = framework_problem(framework)
    if problem is not None:
        pytest.skip(problem)
    if config is not None:
        return build_network(spec(kind, **sizes), framework, config, STEPS, SEED)
    reasons = []
    for candidate in CANDIDATES:
        try:
            return build_network(spec(kind, **sizes), framework, candidate, STEPS, SEED)
        except Unsupported as error:
            reasons.append(str(error))
    pytest.skip(f"{framework} builds no {kind} network: {'; '.join(dict.fromkeys(reasons))}")


# A LIF every framework's network can be built with: the first of these that it expresses
# (frameworks whose LIF has a fixed reset or surrogate express only some).
CANDIDATES = (
    EXACT[0],
    LIFConfig(detach_reset=True, surrogate="sigmoid", alpha=4.0),  # hard reset, detached
    LIFConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0),  # soft reset, attached
)


def lif_rates(net, x: torch.Tensor) -> list[float]:
    """The spike rate of every LIF call (snnTorch calls its LIFs once per step)."""
    rates: list[float] = []

    def record(module, inputs, out) -> None:
        spikes = out[0] if isinstance(out, tuple) else out  # snnTorch, Norse: (spikes, state)
        rates.append(spikes.float().mean().item())

    handles = [
        module.register_forward_hook(record) for category, module in net.layers if category == "lif"
    ]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    return rates


def test_spec_plan_and_describe():
    for kind, order in ORDER.items():
        plan = spec(kind).plan()
        assert [layer.category for layer in plan] == order
        assert set(order) <= set(CATEGORIES)
        assert len(spec(kind).describe().splitlines()) == len(plan)
    cnn = NetworkSpec("cnn", (3, 32, 32), 10)
    assert [layer.out_shape for layer in cnn.plan()][-2:] == [(32 * 8 * 8,), (10,)]
    assert "conv 3->16, 3x3, pad 1" in cnn.describe()
    with pytest.raises(ValueError, match="kind"):
        NetworkSpec("rnn")
    with pytest.raises(ValueError, match="divisible"):
        NetworkSpec("cnn", (1, 6, 6))


@pytest.mark.parametrize("kind", ["cnn", "fc"])
@pytest.mark.parametrize("framework", EAGER)
def test_builds_trains_and_resets(framework, kind):
    net = build(kind, framework)
    assert [category for category, _ in net.layers] == ORDER[kind]
    x, target = batch()
    logits = net(x)
    assert logits.shape == (BATCH, CLASSES)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, target).backward()
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    assert len(trainable) == 3  # two conv/linear layers and the readout, no biases
    for name, parameter in trainable:
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    # forward resets the neurons itself: the same input gives the same logits again.
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
        assert torch.equal(net(x), logits.detach())


@pytest.mark.parametrize("kind", ["cnn", "fc"])
def test_same_initial_weights_everywhere(kind):
    expected = initial_weights(spec(kind), SEED)
    assert set(expected) == {
        layer.name for layer in spec(kind).plan() if layer.weight_shape is not None
    }
    assert not torch.equal(expected["readout"], initial_weights(spec(kind), SEED + 1)["readout"])
    for framework in EAGER:
        if framework_problem(framework) is not None:
            continue
        weights = build(kind, framework).weights()  # views of the framework's own parameters
        assert set(weights) == set(expected)
        for name, weight in weights.items():
            assert torch.equal(weight, expected[name]), (framework, name)


@pytest.mark.parametrize("kind", ["cnn", "fc"])
@pytest.mark.parametrize("config", EXACT, ids=["tau2-decay_input", "tau4-no_decay_input"])
def test_exact_frameworks_agree_end_to_end(config, kind):
    x, target = batch()
    logits, grads = {}, {}
    for framework in EXACT_FRAMEWORKS:
        net = build(kind, framework, config)
        rates = lif_rates(net, x)
        assert all(rate > 0.01 for rate in rates), (framework, rates)  # a non-trivial check
        out = net(x)
        torch.nn.functional.cross_entropy(out, target).backward()
        logits[framework] = out.detach()
        grads[framework] = {
            name: parameter.grad.reshape(net.weights()[name].shape)
            for name, parameter in net.weight_parameters().items()
        }
    for framework in EXACT_FRAMEWORKS[:-1]:
        torch.testing.assert_close(logits[framework], logits["reference"], atol=1e-4, rtol=0)
        for name, grad in grads[framework].items():
            reference = grads["reference"][name]
            torch.testing.assert_close(grad, reference, atol=1e-5, rtol=1e-5)


def test_soft_reset_networks():
    # Soft reset: Norse runs Lift(LIFBoxCell) with reset_subtract, exact like SpikingJelly;
    # snnTorch's subtract is exact only while V after reset stays below theta (a note says so).
    config = LIFConfig(v_reset=None, surrogate="superspike", alpha=1.0)
    x, _ = batch()
    with torch.no_grad():
        expected = build("fc", "reference", config)(x)
        for framework in ("spikingjelly", "norse"):
            torch.testing.assert_close(
                build("fc", framework, config)(x), expected, atol=1e-4, rtol=0
            )
    snntorch_net = build("fc", "snntorch", config)
    assert any("soft reset" in note for note in snntorch_net.notes)
    assert snntorch_net(x).shape == (BATCH, CLASSES)


@pytest.mark.parametrize("kind", ["cnn", "fc"])
def test_lava_trains(kind):
    net = build(kind, "lava-dl")
    assert any("approximat" in note for note in net.notes)
    x, target = batch()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def test_reference_compile_matches_reference():
    # Equal hidden sizes: both LIF layers share one compiled graph (one compile, not two).
    sizes = {"h1": 64, "h2": 64}
    x, target = batch()
    compiled = build("fc", "reference-compile", **sizes)
    eager = build("fc", "reference", **sizes)
    out = compiled(x)
    torch.nn.functional.cross_entropy(out, target).backward()
    torch.testing.assert_close(out, eager(x), atol=1e-5, rtol=0)
    assert all(p.grad is not None for p in compiled.parameters())
    with torch.no_grad():
        assert torch.equal(compiled(x), out.detach())


@pytest.mark.parametrize(
    ("framework", "config", "reason"),
    [
        ("lava-dl", LIFConfig(v_reset=None), "soft reset"),
        ("norse", LIFConfig(surrogate="atan", alpha=2.0), "atan"),
        ("norse", LIFConfig(detach_reset=True, surrogate="superspike", alpha=1.0), "detach"),
        ("snntorch", LIFConfig(v_reset=0.5), "resets to 0 only"),
        ("spikingjelly", LIFConfig(surrogate="superspike", alpha=2.0), "alpha=1"),
    ],
)
def test_inexpressible_configs_raise_unsupported(framework, config, reason):
    if framework_problem(framework) is not None:
        pytest.skip(framework_problem(framework))
    with pytest.raises(Unsupported, match=reason):
        build_network(spec("fc"), framework, config, STEPS, SEED)


def test_notes_and_bad_arguments():
    assert build("fc", "reference").notes == []
    assert any("> theta" in note for note in build("fc", "snntorch").notes)
    assert any("block" in note for note in build("cnn", "lava-dl").notes)
    with pytest.raises(ValueError, match="no e2e network named 'brian2'"):
        build_network(spec("fc"), "brian2", EXACT[0], STEPS, SEED)
    with pytest.raises(ValueError, match="static batch"):
        build("fc", "reference")(torch.zeros(2, 1, 4, 4))
    assert encode(torch.ones(2, 3), 5).shape == (5, 2, 3)
