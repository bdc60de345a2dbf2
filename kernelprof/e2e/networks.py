"""The two networks of the end-to-end benchmark, described once and built per framework.

A :class:`NetworkSpec` describes a network framework-neutrally (a list of :class:`LayerPlan`);
:func:`build_network` builds it with one framework's own layers and LIF neuron, mapped from the
canonical :class:`~kernelprof.lif.LIFConfig` by that framework's adapter in
:mod:`kernelprof.impls` (so a config the framework cannot express raises
:class:`~kernelprof.impls.registry.Unsupported` with the adapter's reason).

* cnn: conv(C->c1, 3x3, pad 1) -> LIF -> avgpool 2 -> conv(c1->c2, 3x3, pad 1) -> LIF -> avgpool 2
  -> flatten -> linear(->classes)
* fc:  flatten -> linear(->h1) -> LIF -> linear(->h2) -> LIF -> linear(->classes)

The last linear is the readout: it has no LIF, and the logits are the mean over T of its output
(the membrane/logit rate). Input encoding is direct current, the same for every framework: the
static image [B, C, H, W] is repeated over T steps ([T, B, C, H, W], or time-last for lava-dl).

No layer has a bias: lava-dl's synapses (``slayer.synapse.Conv/Dense``) have none, and leaving
them out everywhere keeps the networks identical. The initial weights are drawn once from the
seed (kaiming-uniform, as ``nn.Conv2d``/``nn.Linear`` initialise theirs) by
:func:`initial_weights` and copied into each framework's parameters, so every framework starts
from the same network.

Every built network is a :class:`SpikingNetwork`: ``forward`` takes [B, C, H, W] and returns
logits [B, classes], clearing neuron state first; ``layers`` lists (category, module) in order so
a training loop can attribute time per category with hooks or ``record_function`` ranges; and
``notes`` lists where the framework's network departs from the spec.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch
from torch import nn

import reference_kernels
from kernelprof.impls import lava_dl as lava_adapter
from kernelprof.impls import norse as norse_adapter
from kernelprof.impls import snntorch as snntorch_adapter
from kernelprof.impls import spikingjelly as sj_adapter
from kernelprof.impls.registry import Requirement, Unsupported
from kernelprof.lif import LIFConfig

FRAMEWORKS = ("spikingjelly", "snntorch", "norse", "lava-dl", "reference", "reference-compile")
KINDS = ("cnn", "fc")
CATEGORIES = ("conv", "pool", "linear", "lif", "readout", "flatten")
# Categories whose module holds a weight drawn by initial_weights.
WEIGHTED = ("conv", "linear", "readout")
# What each framework needs installed (the adapters' own requirements).
REQUIREMENTS: dict[str, tuple[Requirement, ...]] = {
    "spikingjelly": (sj_adapter.REQUIREMENT,),
    "snntorch": (snntorch_adapter.REQUIREMENT,),
    "norse": norse_adapter.NORSE.requires,
    "lava-dl": lava_adapter.LAVA_DL.requires,
    "reference": (),
    "reference-compile": (),
}
KERNEL, PADDING, POOL = 3, 1, 2


@dataclass(frozen=True)
class LayerPlan:
    """One layer of a spec: its name, category and per-sample shapes (no T, no batch)."""

    name: str
    category: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def weight_shape(self) -> tuple[int, ...] | None:
        """The framework-neutral weight shape ([out, in, k, k] or [out, in]), None if none."""
        if self.category == "conv":
            return (self.out_shape[0], self.in_shape[0], KERNEL, KERNEL)
        if self.category in ("linear", "readout"):
            return (self.out_shape[0], self.in_shape[0])
        return None


@dataclass(frozen=True)
class NetworkSpec:
    """A benchmark network, framework-neutral (see the module docstring for the two kinds)."""

    kind: str = "cnn"
    input_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    classes: int = 10
    c1: int = 16
    c2: int = 32
    h1: int = 256
    h2: int = 128
    # Multiplies every initial weight (1: the nn.Conv2d/nn.Linear default). With the default,
    # small inputs leave the deeper LIF layers silent at initialisation; a gain > 1 wakes them.
    weight_gain: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if len(self.input_shape) != 3 or any(int(d) < 1 for d in self.input_shape):
            raise ValueError(
                f"input_shape must be (C, H, W) of positive ints, got {self.input_shape!r}"
            )
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        for name in ("classes", "c1", "c2", "h1", "h2"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not math.isfinite(self.weight_gain) or self.weight_gain <= 0:
            raise ValueError(f"weight_gain must be a finite number > 0, got {self.weight_gain!r}")
        _, height, width = self.input_shape
        # Two exact 2x2 poolings: torch's AvgPool2d floors odd sizes while lava's Pool pads them,
        # so odd sizes would make the frameworks' networks differ.
        if self.kind == "cnn" and (height % (POOL * POOL) or width % (POOL * POOL)):
            raise ValueError(
                f"cnn needs H and W divisible by {POOL * POOL} (two 2x2 poolings), got "
                f"{height}x{width}"
            )

    def plan(self) -> list[LayerPlan]:
        """The layers in order, with their categories and shapes."""
        channels, height, width = self.input_shape
        if self.kind == "cnn":
            h2, w2 = height // POOL, width // POOL
            h4, w4 = h2 // POOL, w2 // POOL
            c1, c2 = (self.c1, height, width), (self.c2, h2, w2)
            return [
                LayerPlan("conv1", "conv", self.input_shape, c1),
                LayerPlan("lif1", "lif", c1, c1),
                LayerPlan("pool1", "pool", c1, (self.c1, h2, w2)),
                LayerPlan("conv2", "conv", (self.c1, h2, w2), c2),
                LayerPlan("lif2", "lif", c2, c2),
                LayerPlan("pool2", "pool", c2, (self.c2, h4, w4)),
                LayerPlan("flatten", "flatten", (self.c2, h4, w4), (self.c2 * h4 * w4,)),
                LayerPlan("readout", "readout", (self.c2 * h4 * w4,), (self.classes,)),
            ]
        features = channels * height * width
        return [
            LayerPlan("flatten", "flatten", self.input_shape, (features,)),
            LayerPlan("fc1", "linear", (features,), (self.h1,)),
            LayerPlan("lif1", "lif", (self.h1,), (self.h1,)),
            LayerPlan("fc2", "linear", (self.h1,), (self.h2,)),
            LayerPlan("lif2", "lif", (self.h2,), (self.h2,)),
            LayerPlan("readout", "readout", (self.h2,), (self.classes,)),
        ]

    def describe(self) -> str:
        """One line per layer, for the README."""

        def shape(dims: tuple[int, ...]) -> str:
            return "x".join(str(d) for d in dims)

        lines = []
        for layer in self.plan():
            if layer.category == "conv":
                what = (
                    f"conv {layer.in_shape[0]}->{layer.out_shape[0]}, {KERNEL}x{KERNEL}, "
                    f"pad {PADDING}, no bias"
                )
            elif layer.category == "pool":
                what = f"avgpool {POOL}x{POOL}"
            elif layer.category == "lif":
                what = "LIF"
            elif layer.category == "flatten":
                what = "flatten"
            elif layer.category == "linear":
                what = f"linear {layer.in_shape[0]}->{layer.out_shape[0]}, no bias"
            else:
                what = (
                    f"linear {layer.in_shape[0]}->{layer.out_shape[0]}, no bias, no LIF "
                    "(logits = mean over T)"
                )
            lines.append(f"{layer.name:<8} {what:<56} -> {shape(layer.out_shape)}")
        return "\n".join(lines)


def initial_weights(spec: NetworkSpec, seed: int) -> dict[str, torch.Tensor]:
    """The initial weight of every conv/linear layer, by layer name, in the neutral shapes.

    Drawn in layer order from one ``torch.Generator`` seeded with ``seed``, kaiming-uniform with
    a = sqrt(5) (bound 1/sqrt(fan_in)), which is what nn.Conv2d and nn.Linear do by default, then
    multiplied by ``spec.weight_gain``."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for layer in spec.plan():
        if layer.weight_shape is not None:
            weight = torch.empty(layer.weight_shape)
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
            weights[layer.name] = weight * spec.weight_gain if spec.weight_gain != 1 else weight
    return weights


def encode(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Direct-current encoding: the static batch [B, ...] repeated over T -> [T, B, ...]."""
    return x.unsqueeze(0).repeat(steps, *([1] * x.dim()))


def framework_problem(framework: str) -> str | None:
    """None when ``framework`` is installed in a usable version, else why not."""
    if framework not in REQUIREMENTS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    for requirement in REQUIREMENTS[framework]:
        problem = requirement.problem()
        if problem is not None:
            return problem
    return None


class SpikingNetwork(nn.Module, abc.ABC):
    """A spec built with one framework's layers. Subclasses make each layer and run the input.

    ``layers`` holds (category, module) in order; ``notes`` the departures from the spec."""

    framework = ""

    def __init__(self, spec: NetworkSpec, lif: LIFConfig, steps: int, seed: int) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.spec = spec
        self.lif_config = lif
        self.steps = steps
        self.seed = seed
        self.notes: list[str] = []
        self.plan = spec.plan()
        modules = [self.make_layer(layer) for layer in self.plan]
        self.body = self.container(modules)
        self.layers: list[tuple[str, nn.Module]] = [
            (layer.category, module) for layer, module in zip(self.plan, modules, strict=True)
        ]
        self._weighted = {
            layer.name: module
            for layer, module in zip(self.plan, modules, strict=True)
            if layer.weight_shape is not None
        }
        self.load_weights(initial_weights(spec, seed))

    # ---- what a framework provides -----------------------------------------------------------

    @abc.abstractmethod
    def make_layer(self, layer: LayerPlan) -> nn.Module:
        """The framework's module for one planned layer."""

    def container(self, modules: list[nn.Module]) -> nn.Module:
        return nn.ModuleList(modules)

    def weight_of(self, module: nn.Module) -> nn.Parameter:
        """The weight parameter of a conv/linear/readout module (unwrapped where needed)."""
        return module.weight

    @abc.abstractmethod
    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Logits [B, classes] from the encoded input [T, B, C, H, W]."""

    def reset(self) -> None:
        """Clears neuron state (a no-op where the framework keeps none between calls)."""

    # ---- shared ------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.spec.input_shape or x.dim() != 4:
            raise ValueError(
                f"expected a static batch [B, {', '.join(map(str, self.spec.input_shape))}], "
                f"got {list(x.shape)}"
            )
        self.reset()  # state from the previous batch must not leak into this one
        return self.run(encode(x, self.steps))

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        """Each conv/linear weight parameter, by layer name, in the framework's own shape."""
        return {name: self.weight_of(module) for name, module in self._weighted.items()}

    def weights(self) -> dict[str, torch.Tensor]:
        """Each conv/linear weight, by layer name, viewed in the framework-neutral shape."""
        return {
            name: parameter.reshape(self._neutral_shape(name))
            for name, parameter in self.weight_parameters().items()
        }

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Copies framework-neutral weights (as from :func:`initial_weights`) into the layers."""
        with torch.no_grad():
            for name, module in self._weighted.items():
                parameter = self.weight_of(module)
                source = weights[name]
                if tuple(source.shape) != self._neutral_shape(name):
                    raise ValueError(
                        f"{name}: weight of shape {tuple(source.shape)}, expected "
                        f"{self._neutral_shape(name)}"
                    )
                # Same element order, only trailing singleton axes differ (lava's Conv3d).
                parameter.copy_(source.reshape(parameter.shape))

    def _neutral_shape(self, name: str) -> tuple[int, ...]:
        return next(layer.weight_shape for layer in self.plan if layer.name == name)

    def extra_repr(self) -> str:
        return f"framework={self.framework!r}, kind={self.spec.kind!r}, steps={self.steps}"


def _sequential(layers: list[tuple[str, nn.Module]], x: torch.Tensor) -> torch.Tensor:
    for _, module in layers:
        x = module(x)
    return x


# ---- SpikingJelly ------------------------------------------------------------------------------


class SpikingJellyNetwork(SpikingNetwork):
    """SpikingJelly's multi-step layers (step_mode='m') and ``neuron.LIFNode`` on [T, B, ...]."""

    framework = "spikingjelly"

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        from spikingjelly.activation_based import layer as sj_layer
        from spikingjelly.activation_based import neuron, surrogate

        if layer.category == "conv":
            return sj_layer.Conv2d(
                layer.in_shape[0],
                layer.out_shape[0],
                KERNEL,
                padding=PADDING,
                bias=False,
                step_mode="m",
            )
        if layer.category == "pool":
            return sj_layer.AvgPool2d(POOL, step_mode="m")
        if layer.category == "flatten":
            return sj_layer.Flatten(step_mode="m")
        if layer.category in ("linear", "readout"):
            return sj_layer.Linear(layer.in_shape[0], layer.out_shape[0], bias=False, step_mode="m")
        kwargs = sj_adapter.lif_kwargs(self.lif_config)
        name, alpha = sj_adapter.surrogate_spec(self.lif_config)
        return neuron.LIFNode(
            step_mode="m", surrogate_function=getattr(surrogate, name)(alpha=alpha), **kwargs
        )

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        return _sequential(self.layers, x_seq).mean(0)

    def reset(self) -> None:
        from spikingjelly.activation_based import functional

        # reset_net calls reset() on every module that has one: given self, it would recurse.
        functional.reset_net(self.body)


# ---- snnTorch ----------------------------------------------------------------------------------


class SnnTorchLIF(nn.Module):
    """``snn.Leaky`` (init_hidden=False) for one step, with the input scaling the mapping needs."""

    def __init__(self, leaky: nn.Module, scale: float) -> None:
        super().__init__()
        self.leaky = leaky
        self.scale = scale

    def forward(
        self, current: torch.Tensor, mem: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if mem is None:  # V[-1] = 0: V_r of the hard reset snnTorch supports, or soft reset's 0
            mem = torch.zeros_like(current)
        return self.leaky(current * self.scale if self.scale != 1.0 else current, mem)


class SnnTorchNetwork(SpikingNetwork):
    """torch.nn layers and ``snn.Leaky`` applied step by step in a Python loop over T."""

    framework = "snntorch"

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        if layer.category == "conv":
            return nn.Conv2d(
                layer.in_shape[0], layer.out_shape[0], KERNEL, padding=PADDING, bias=False
            )
        if layer.category == "pool":
            return nn.AvgPool2d(POOL)
        if layer.category == "flatten":
            return nn.Flatten()
        if layer.category in ("linear", "readout"):
            return nn.Linear(layer.in_shape[0], layer.out_shape[0], bias=False)
        import snntorch as snn

        config = self.lif_config
        kwargs = snntorch_adapter.leaky_kwargs(config)
        grad, approximations = snntorch_adapter.spike_grad(config, torch.float32)
        for note in [*approximations, snntorch_adapter.TIE_NOTE]:
            if f"LIF: {note}" not in self.notes:
                self.notes.append(f"LIF: {note}")
        if config.soft_reset and not any(n.startswith("LIF: soft reset:") for n in self.notes):
            self.notes.append(
                "LIF: soft reset: where V after reset exceeds theta (H > 2*theta), snnTorch "
                "subtracts theta again before the next spike decision (see "
                "kernelprof/impls/snntorch.py)"
            )
        leaky = snn.Leaky(spike_grad=grad, init_hidden=False, **kwargs)
        return SnnTorchLIF(leaky, 1.0 / config.tau if config.decay_input else 1.0)

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        mems: list[torch.Tensor | None] = [None] * len(self.layers)
        outputs = []
        for t in range(x_seq.shape[0]):
            y = x_seq[t]
            for index, (category, module) in enumerate(self.layers):
                if category == "lif":
                    y, mems[index] = module(y, mems[index])  # mem carried through the loop
                else:
                    y = module(y)
            outputs.append(y)
        return torch.stack(outputs).mean(0)

    def reset(self) -> None:
        # mem lives in the loop of run(); reset_mem only clears what snn.Leaky keeps itself.
        for category, module in self.layers:
            if category == "lif":
                module.leaky.reset_mem()


# ---- Norse -------------------------------------------------------------------------------------


class NorseLIF(nn.Module):
    """Norse's LIF over [T, ...] as mapped by kernelprof/impls/norse.py: ``norse.torch.LIF``
    (hard reset) or ``Lift(LIFBoxCell)`` with ``reset_subtract`` (soft reset). Its ``state``
    argument makes ``SequentialState`` treat it as stateful."""

    def __init__(self, config: LIFConfig) -> None:
        super().__init__()
        # The adapter checks Norse's surrogate by differentiating it, which fails under no_grad.
        with torch.enable_grad():
            problems = norse_adapter._problems(config)
            if problems:
                raise Unsupported("norse cannot express " + "; ".join(problems))
            self.method, self.norse_alpha = norse_adapter.norse_method(config)
        import norse.torch as norse_torch

        self.config = config
        # Norse multiplies its input by tau_mem_inv: for decay_input=False it is scaled by tau.
        self.scale = 1.0 if config.decay_input else float(config.tau)
        params = self._parameters_on(torch.device("cpu"))
        if config.soft_reset:
            self.neuron = norse_torch.Lift(norse_torch.LIFBoxCell(params, dt=1.0))
        else:
            self.neuron = norse_torch.LIF(params, dt=1.0)
        self._device = torch.device("cpu")

    def _parameters_on(self, device: torch.device):
        """Norse's parameter tuple for the config, its tensors on ``device`` (as the adapter
        builds them; module.to() does not move a namedtuple, so forward rebuilds it)."""
        import norse.torch as norse_torch

        config = self.config

        def scalar(value: float) -> torch.Tensor:
            return torch.tensor(value, dtype=torch.float32, device=device)

        if config.soft_reset:
            return norse_torch.LIFBoxParameters(
                tau_mem_inv=scalar(1.0 / config.tau),
                v_leak=scalar(0.0),  # canonical soft reset leaks towards 0
                v_th=scalar(config.v_threshold),
                v_reset=scalar(0.0),  # unused by reset_subtract
                method=self.method,
                alpha=scalar(self.norse_alpha),
                reset_method=norse_torch.reset_subtract,
            )
        v_reset = float(config.v_reset)
        return norse_torch.LIFParameters(
            tau_syn_inv=scalar(1.0),  # with dt=1 the synaptic current vanishes every step
            tau_mem_inv=scalar(1.0 / config.tau),
            v_leak=scalar(v_reset),  # canonical hard reset leaks towards V_r
            v_th=scalar(config.v_threshold),
            v_reset=scalar(v_reset),
            method=self.method,
            alpha=scalar(self.norse_alpha),
        )

    def forward(self, x: torch.Tensor, state: object = None) -> tuple[torch.Tensor, object]:
        import norse.torch as norse_torch

        if x.device != self._device:
            cell = self.neuron.lifted_module if self.config.soft_reset else self.neuron
            cell.p = self._parameters_on(x.device)
            self._device = x.device
        if self.scale != 1.0:
            x = x * self.scale
        if state is None:  # a full float32 state, as the adapter builds it
            v = torch.full(x.shape[1:], self.config.v_initial, dtype=torch.float32, device=x.device)
            if self.config.soft_reset:
                state = norse_torch.LIFBoxFeedForwardState(v=v)
            else:
                state = norse_torch.LIFFeedForwardState(v=v, i=torch.zeros_like(v))
        if self.config.soft_reset:
            return self.neuron((x, state))
        return self.neuron(x, state)


class NorseNetwork(SpikingNetwork):
    """``norse.torch.SequentialState``: torch layers (``Lift`` -ed over T where they need [B, ...])
    and Norse's LIF on [T, B, ...]."""

    framework = "norse"

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        import norse.torch as norse_torch

        if layer.category == "conv":
            return norse_torch.Lift(
                nn.Conv2d(
                    layer.in_shape[0], layer.out_shape[0], KERNEL, padding=PADDING, bias=False
                )
            )
        if layer.category == "pool":
            return norse_torch.Lift(nn.AvgPool2d(POOL))
        if layer.category == "flatten":
            return nn.Flatten(start_dim=2)  # keeps [T, B]
        if layer.category in ("linear", "readout"):
            # nn.Linear maps the last axis, so [T, B, F] needs no Lift.
            return nn.Linear(layer.in_shape[0], layer.out_shape[0], bias=False)
        for note in norse_adapter.TIE_NOTES:
            if f"LIF: {note}" not in self.notes:
                self.notes.append(f"LIF: {note}")
        return NorseLIF(self.lif_config)

    def container(self, modules: list[nn.Module]) -> nn.Module:
        import norse.torch as norse_torch

        return norse_torch.SequentialState(*modules)

    def weight_of(self, module: nn.Module) -> nn.Parameter:
        return getattr(module, "lifted_module", module).weight

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        # No state passed: every LIF starts from its initial state, so calls are independent.
        out, _ = self.body(x_seq)
        return out.mean(0)


# ---- kernelprof reference ----------------------------------------------------------------------


class TimeFolded(nn.Module):
    """Applies a [N, ...] module to [T, B, ...] by folding T into the batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


class ReferenceLIF(nn.Module):
    """kernelprof's reference kernel (``reference_kernels.run``) on [T, B, ...]."""

    def __init__(self, config: LIFConfig, impl: str) -> None:
        super().__init__()
        self.config = config
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reference_kernels.run(x, self.config, impl=self.impl)

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}"


class ReferenceNetwork(SpikingNetwork):
    """torch layers with T folded into the batch, and kernelprof's reference LIF kernel."""

    framework = "reference"
    impl = "torch"

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        if layer.category == "conv":
            return TimeFolded(
                nn.Conv2d(
                    layer.in_shape[0], layer.out_shape[0], KERNEL, padding=PADDING, bias=False
                )
            )
        if layer.category == "pool":
            return TimeFolded(nn.AvgPool2d(POOL))
        if layer.category == "flatten":
            return nn.Flatten(start_dim=2)
        if layer.category in ("linear", "readout"):
            return nn.Linear(layer.in_shape[0], layer.out_shape[0], bias=False)
        return ReferenceLIF(self.lif_config, self.impl)

    def weight_of(self, module: nn.Module) -> nn.Parameter:
        return getattr(module, "module", module).weight

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        return _sequential(self.layers, x_seq).mean(0)


class ReferenceCompileNetwork(ReferenceNetwork):
    """The reference network with the torch.compile LIF kernel (compiled at first call)."""

    framework = "reference-compile"
    impl = "compile"


# ---- lava-dl -----------------------------------------------------------------------------------


class LavaLIF(nn.Module):
    """lava-dl's ``neuron.cuba.Neuron`` on time-last [B, ..., T], as mapped by
    kernelprof/impls/lava_dl.py (input divided by tau first when decay_input)."""

    def __init__(self, config: LIFConfig) -> None:
        super().__init__()
        from lava.lib.dl.slayer.neuron import cuba

        self.mapping = lava_adapter.lava_parameters(config)
        self.neuron = cuba.Neuron(**self.mapping["kwargs"])
        self.scale = 1.0 / config.tau if config.decay_input else 1.0
        self._cuda_prepared = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and not self._cuda_prepared:
            # lava's JIT build must target this GPU's architecture (see the adapter).
            lava_adapter._prepare_cuda_arch(x.device)
            self._cuda_prepared = True
        return self.neuron(x * self.scale if self.scale != 1.0 else x)


class LavaNetwork(SpikingNetwork):
    """lava-dl (SLAYER) synapses and CUBA neurons in its time-last layout [B, C, H, W, T]."""

    framework = "lava-dl"

    def __init__(self, spec: NetworkSpec, lif: LIFConfig, steps: int, seed: int) -> None:
        super().__init__(spec, lif, steps, seed)
        self.notes[:0] = [
            "built from slayer.synapse.Conv/Pool/Dense + slayer.neuron.cuba.Neuron, not "
            "slayer.block.cuba.*: a block fuses a CUBA neuron into every layer (a spiking Pool "
            "and readout) and delays each block's output by one step (delay_shift); the spec "
            "has neither",
            f"avgpool {POOL}: slayer.synapse.Pool with weight_scale=1/{POOL * POOL}, a fixed "
            "(requires_grad=False) conv3d of ones over each window, i.e. the average (summed in "
            "a different order than AvgPool2d)",
            "conv/linear: Conv3d weights [out, in, k, k, 1] / [out, in, 1, 1, 1] (the neutral "
            "weights reshaped, no scaling: the neuron quantises its input, not the weight)",
            "layout time-last [B, C, H, W, T]: the same repeated input, logits = mean over the "
            "last axis",
            "LIF is lava's CUBA neuron (current_decay=1, voltage_decay=1/tau"
            + (", synaptic output divided by tau first" if lif.decay_input else "")
            + "), an approximation of the canonical LIF (the LIF: notes say how)",
        ]

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        from lava.lib.dl import slayer

        if layer.category == "conv":
            return slayer.synapse.Conv(
                layer.in_shape[0], layer.out_shape[0], KERNEL, padding=PADDING
            )
        if layer.category == "pool":
            return slayer.synapse.Pool(POOL, weight_scale=1.0 / (POOL * POOL))
        if layer.category == "flatten":
            return slayer.block.cuba.Flatten()  # [B, C, H, W, T] -> [B, C*H*W, T]
        if layer.category in ("linear", "readout"):
            return slayer.synapse.Dense(layer.in_shape[0], layer.out_shape[0])
        neuron = LavaLIF(self.lif_config)
        for note in [*neuron.mapping["approximations"], *lava_adapter.TIE_NOTES]:
            if f"LIF: {note}" not in self.notes:
                self.notes.append(f"LIF: {note}")
        return neuron

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        x = x_seq.movedim(0, -1).contiguous()  # [T, B, C, H, W] -> [B, C, H, W, T]
        return _sequential(self.layers, x).mean(-1)


_NETWORKS: dict[str, type[SpikingNetwork]] = {
    "spikingjelly": SpikingJellyNetwork,
    "snntorch": SnnTorchNetwork,
    "norse": NorseNetwork,
    "lava-dl": LavaNetwork,
    "reference": ReferenceNetwork,
    "reference-compile": ReferenceCompileNetwork,
}


def build_network(
    spec: NetworkSpec, framework: str, lif: LIFConfig, steps: int, seed: int
) -> SpikingNetwork:
    """Builds ``spec`` with ``framework``'s layers and LIF, weights drawn from ``seed``.

    Raises ValueError for an unknown framework, RuntimeError when it is not installed, and
    :class:`~kernelprof.impls.registry.Unsupported` (with the adapter's reason) for a LIF
    config the framework cannot express."""
    if framework not in _NETWORKS:
        raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    problem = framework_problem(framework)
    if problem is not None:
        raise RuntimeError(f"{framework} is unavailable: {problem}")
    return _NETWORKS[framework](spec, lif, steps, seed)
