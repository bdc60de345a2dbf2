"""A third-party kernelprof framework: a plain-torch multi-step LIF (hard reset, decay_input,
superspike surrogate), its e2e network and no converter. Nothing here is kernelprof's code
but the types it fills in."""

from __future__ import annotations

import torch
from torch import nn

from kernelprof.frameworks.base import (
    Framework,
    Implementation,
    NeuronBuild,
    TimedBuild,
    Unsupported,
)
from kernelprof.frameworks.networks import KERNEL, PADDING, POOL, SpikingNetwork


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, margin, alpha):
        ctx.save_for_backward(margin)
        ctx.alpha = alpha
        return (margin >= 0).to(margin.dtype)

    @staticmethod
    def backward(ctx, grad):
        (margin,) = ctx.saved_tensors
        return grad / (1.0 + ctx.alpha * margin.abs()) ** 2, None


def fake_lif(x, tau, threshold, alpha, record_v=False):
    v = torch.zeros_like(x[0])
    spikes, voltages = [], []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        s = _Spike.apply(h - threshold, alpha)
        v = (1.0 - s) * h
        spikes.append(s)
        if record_v:
            voltages.append(v)
    return torch.stack(spikes), (torch.stack(voltages) if record_v else None)


def _mapping(config):
    problems = []
    if config.v_reset != 0.0:
        problems.append("only hard reset to 0")
    if config.detach_reset or not config.decay_input:
        problems.append("only an attached reset and decay_input")
    if config.surrogate != "superspike":
        problems.append("only the superspike surrogate")
    if problems:
        raise Unsupported("fakefw: " + "; ".join(problems))
    return float(config.tau), float(config.v_threshold), float(config.alpha)


def build(config, device, dtype):
    tau, threshold, alpha = _mapping(config)
    return NeuronBuild(
        check=lambda x: fake_lif(x, tau, threshold, alpha, record_v=True),
        timed=TimedBuild(
            run=lambda x: fake_lif(x, tau, threshold, alpha)[0],
            code="spikes, _ = fake_lif(x, tau, threshold, alpha)",
        ),
        path="plain torch loop (kpfake_lif)",
    )


class FakeLIF(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tau, self.threshold, self.alpha = _mapping(config)

    def forward(self, x):
        return fake_lif(x, self.tau, self.threshold, self.alpha)[0]


class FakeNetwork(SpikingNetwork):
    framework = "fakefw"

    def make_layer(self, layer):
        if layer.category == "conv":
            conv = nn.Conv2d(
                layer.in_shape[0], layer.out_shape[0], KERNEL, padding=PADDING, bias=False
            )
            return _Folded(conv)
        if layer.category == "pool":
            return _Folded(nn.AvgPool2d(POOL))
        if layer.category == "flatten":
            return nn.Flatten(start_dim=2)
        if layer.category in ("linear", "readout"):
            return nn.Linear(layer.in_shape[0], layer.out_shape[0], bias=False)
        return FakeLIF(self.lif_config)

    def weight_of(self, module):
        return getattr(module, "inner", module).weight

    def run(self, x_seq):
        for _, module in self.layers:
            x_seq = module(x_seq)
        return x_seq.mean(0)


class _Folded(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.flatten(0, 1)).unflatten(0, x.shape[:2])


FRAMEWORK = Framework(
    name="fakefw",
    display="FakeFW",
    implementations=(
        Implementation(
            name="fakefw-lif", framework="FakeFW", build=build, description="plain torch loop"
        ),
    ),
    networks={"fakefw": FakeNetwork},
    no_converter="FakeFW ships no ANN-to-SNN converter",
    description="an out-of-tree plugin (tests/plugin_fixture)",
)
