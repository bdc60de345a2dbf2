"""kernelprof's own reference kernels (``reference_kernels``) as a framework: the yardstick.

* Neurons ``ref-torch``, ``ref-compile``, ``ref-triton``, ``ref-cupy``: the checking build asks
  for V after reset (``return_v=True``); the timed build asks for spikes only, so the fused
  kernels write no V (``reference_kernels.run(x, config, impl=...)``).
* Networks ``reference`` (the eager LIF, autograd backward) and ``reference-compile`` (the
  torch.compile LIF): torch layers with T folded into the batch.
* Converter ``reference``: a rate-coding conversion written from Rueckauer et al. (2017): each
  ReLU becomes an integrate-and-fire neuron with threshold = the layer's activation percentile
  over the calibration set, soft reset, emitting spikes of that height (so the rate approximates
  the ReLU). It is the yardstick the framework converters are compared with.
"""

from __future__ import annotations

import torch
from torch import nn

import reference_kernels
from kernelprof.frameworks import base
from kernelprof.frameworks.networks import (
    PERCENTILE,
    ConvertedSNN,
    LayerPlan,
    NetworkSpec,
    SpikingNetwork,
    TimeFolded,
    run_layers,
    step_layer,
)
from reference_kernels.model import NEURONS as NEURON_NAMES
from reference_kernels.model import LIFConfig, NeuronConfig, channel_shape, make_config

PATHS = {
    "torch": "eager PyTorch loop (the oracle's code, autograd backward)",
    "compile": "torch.compile: one fused forward loop, one fused reverse-time backward loop",
    "triton": "Triton: one forward kernel over T, one reverse-time backward kernel",
    "cupy": "CUDA C (lif.cu) through CuPy: one forward kernel, one backward kernel",
}


def _builder(impl: str):
    def build(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
        # PLIF's w, a leaf at w0 made at each call (one value, or one per channel of x): its
        # gradient is the canonical dw the check reads
        learned: list[torch.Tensor] = []

        def w_for(x: torch.Tensor) -> torch.Tensor | None:
            if config.neuron != "plif":
                return None
            channels = channel_shape(x.shape[1:])[1]
            return config.initial_w(channels, device=x.device).requires_grad_()

        def check(x: torch.Tensor):
            w = w_for(x)
            learned[:] = [] if w is None else [w]
            spikes, v, *states = reference_kernels.run(x, config, impl=impl, return_v=True, w=w)
            return spikes, v, (states[0] if states else {})  # CUBA's I or ALIF's A

        timed_w = base.made_once(w_for)  # the timed build's w, made once, as a layer's

        def timed(x: torch.Tensor) -> torch.Tensor:
            # spikes only: no V written
            return reference_kernels.run(x, config, impl=impl, w=timed_w(x))

        code = f"multistep(x, {type(config).__name__}(...), impl={impl!r}"
        code += ", w=w)" if config.neuron == "plif" else ")"
        return base.NeuronBuild(
            check=check,
            timed=base.TimedBuild(run=timed, code=code),
            path=PATHS[impl],
            dw=(lambda: learned[0].grad if learned else None) if config.neuron == "plif" else None,
        )

    return build


def _device_problem(impl: str):
    def problem(device: torch.device) -> str | None:
        return reference_kernels.unavailable_reason(impl, device)

    return problem


NEURONS = tuple(
    base.Implementation(
        name=f"ref-{impl}",
        framework="kernelprof reference",
        build=_builder(impl),
        devices=("cuda",) if impl == "cupy" else ("cpu", "cuda"),
        description=PATHS[impl],
        device_problem=_device_problem(impl),
        reference=True,
        neurons=reference_kernels.IMPL_NEURONS[impl],
        not_mapped={
            neuron: f"impl={impl!r} runs "
            f"{', '.join(n.upper() for n in reference_kernels.IMPL_NEURONS[impl])} so "
            f"far, not {neuron.upper()} (ref-torch runs every neuron)"
            for neuron in NEURON_NAMES
            if neuron not in reference_kernels.IMPL_NEURONS[impl]
        },  # fmt: skip
    )
    for impl in reference_kernels.IMPLS
)


# ---- e2e networks ------------------------------------------------------------------------------


class ReferenceLIF(nn.Module):
    """kernelprof's reference kernel (``reference_kernels.run``) on [T, B, ...], for any neuron:
    a PLIF layer learns its decay ``w`` (one, from w0; per channel needs ``channels``)."""

    def __init__(self, config: NeuronConfig, impl: str, channels: int = 1) -> None:
        super().__init__()
        self.config = config
        self.impl = impl
        self.w = None
        if config.neuron == "plif":
            self.w = nn.Parameter(config.initial_w(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.w is None else self.w.to(x.dtype)
        return reference_kernels.run(x, self.config, impl=self.impl, w=w)

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}"


class ReferenceNetwork(SpikingNetwork):
    """torch layers with T folded into the batch, and kernelprof's reference LIF kernel."""

    framework = "reference"
    impl = "torch"
    neurons = default_neurons = NEURON_NAMES

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        if layer.category in ("conv", "pool"):
            return TimeFolded(step_layer(layer))
        if layer.category == "flatten":
            return nn.Flatten(start_dim=2)
        if layer.category in ("linear", "readout"):
            return step_layer(layer)  # nn.Linear maps the last axis of [T, B, F] as it is
        return ReferenceLIF(self.lif_config, self.impl)

    def make_default_lif(self, layer: LayerPlan) -> nn.Module:
        return ReferenceLIF(LIFConfig(), self.impl)  # the canonical model's own defaults

    def make_default_neuron(self, layer: LayerPlan) -> nn.Module:
        return ReferenceLIF(make_config(self.neuron), self.impl)

    def weight_of(self, module: nn.Module) -> nn.Parameter:
        return getattr(module, "module", module).weight

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        return run_layers(self.layers, x_seq).mean(0)


class ReferenceCompileNetwork(ReferenceNetwork):
    """The reference network with the torch.compile LIF kernel (compiled at first call)."""

    framework = "reference-compile"
    impl = "compile"


# ---- ANN-to-SNN conversion ---------------------------------------------------------------------


def activation_percentiles(ann: nn.Sequential, calibration: list[torch.Tensor]) -> list[float]:
    """Per ReLU, in order: the PERCENTILE-th percentile of its outputs over the calibration set."""
    outputs: dict[int, list[torch.Tensor]] = {}
    handles = []
    for index, module in enumerate(ann):
        if isinstance(module, nn.ReLU):
            outputs[index] = []
            handles.append(
                module.register_forward_hook(
                    lambda m, a, out, index=index: outputs[index].append(out.detach().flatten())
                )
            )
    try:
        with torch.no_grad():
            for x in calibration:
                ann(x)
    finally:
        for handle in handles:
            handle.remove()
    levels = []
    for index in sorted(outputs):
        values = torch.cat(outputs[index]).float()
        # torch.quantile refuses very large inputs; kthvalue gives the same order statistic
        k = max(1, min(values.numel(), round(PERCENTILE / 100 * values.numel())))
        levels.append(max(float(values.kthvalue(k).values), 1e-6))
    return levels


class IFNeuron(nn.Module):
    """Integrate-and-fire, soft reset, threshold ``level``, spikes of height ``level``."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level
        self.v: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x if self.v is None else self.v + x
        spikes = (v >= self.level).to(x.dtype)
        self.v = v - spikes * self.level
        return spikes * self.level


def convert_reference(
    ann: nn.Sequential, calibration: list[torch.Tensor], spec: NetworkSpec
) -> ConvertedSNN:
    levels = iter(activation_percentiles(ann, calibration))
    snn = nn.Sequential(
        *[IFNeuron(next(levels)) if isinstance(m, nn.ReLU) else m for m in ann]
    ).eval()
    neurons = [module for module in snn if isinstance(module, IFNeuron)]

    def reset() -> None:
        for neuron in neurons:
            neuron.v = None

    levels_text = ", ".join(f"{neuron.level:.3g}" for neuron in neurons)
    note = (
        f"reference: IF neurons, soft reset, thresholds = {PERCENTILE}th percentile "
        f"activations ({levels_text})"
    )
    return ConvertedSNN.stepped(snn, reset, [note])


_MODEL = "reference_kernels/model.py: LIFConfig"
DEFAULTS = (
    base.Default("tau", "2.0", _MODEL, canonical="tau"),
    base.Default("v_threshold", "1.0", _MODEL, canonical="v_threshold"),
    base.Default("v_reset", "0.0 (hard reset)", _MODEL, canonical="v_reset"),
    base.Default("decay_input", "True", _MODEL, canonical="decay_input"),
    base.Default("detach_reset", "False", _MODEL, canonical="detach_reset"),
    base.Default("surrogate", "sigmoid (alpha=4.0)", _MODEL, canonical="surrogate"),
)


def default_spikes(x: torch.Tensor) -> torch.Tensor:
    return ReferenceLIF(LIFConfig(), "torch")(x)  # the canonical model at its own defaults


FRAMEWORK = base.Framework(
    name="reference",
    display="kernelprof reference",
    implementations=NEURONS,
    networks={"reference": ReferenceNetwork, "reference-compile": ReferenceCompileNetwork},
    converters={"reference": convert_reference},
    defaults=DEFAULTS,
    default_neuron=default_spikes,
    description="kernelprof's reference kernels: eager oracle, torch.compile, Triton, CUDA C",
)
