"""The two networks of the end-to-end benchmark, described once, framework-neutrally.

A :class:`NetworkSpec` describes a network as a list of :class:`LayerPlan`; each framework module
builds it with the framework's own layers and spiking neuron (its ``networks`` builders subclass
:class:`SpikingNetwork`), mapped from the canonical config (IF, LIF or PLIF: the "lif" layers of
the plan are whichever neuron the run trains) as its neurons are (a config or neuron the
framework cannot express raises :class:`~kernelprof.frameworks.base.Unsupported` with the
reason).

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

For ANN-to-SNN conversion the spec also has an ANN twin (:func:`build_ann`: ReLU where the spec
has LIF), which a framework's converter turns into a :class:`ConvertedSNN`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from kernelprof.frameworks.base import Unsupported
from reference_kernels.model import NeuronConfig

KINDS = ("cnn", "fc")
CATEGORIES = ("conv", "pool", "linear", "lif", "readout", "flatten")
# Categories whose module holds a weight drawn by initial_weights.
WEIGHTED = ("conv", "linear", "readout")
# Every converter calibrates its thresholds or weight scales at this activation percentile.
PERCENTILE = 99.9
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


class SpikingNetwork(nn.Module, abc.ABC):
    """A spec built with one framework's layers. Subclasses make each layer and run the input.

    ``layers`` holds (category, module) in order; ``notes`` the departures from the spec."""

    framework = ""
    # The neurons its make_layer builds from a config, and those whose framework-defaults module
    # it knows (make_default_lif for LIF, make_default_neuron for the others).
    neurons: tuple[str, ...] = ("lif",)
    default_neurons: tuple[str, ...] = ("lif",)
    no_default_neuron = ""  # why the framework has no default IF or PLIF, where it has none
    neuron_reasons: dict[str, str] = {}  # why it builds no network with a neuron, by neuron

    def __init__(self, spec: NetworkSpec, lif: NeuronConfig | None, steps: int, seed: int,
                 neuron: str = "lif") -> None:  # fmt: skip
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.spec = spec
        # the canonical config of its spiking layers (``lif_config`` for every neuron); None:
        # the framework's own default ``neuron`` (make_default_lif / make_default_neuron)
        self.lif_config = lif
        self.neuron = lif.neuron if lif is not None else neuron
        self._check_neuron(lif is None)
        self.steps = steps
        self.seed = seed
        self.notes: list[str] = []
        self.plan = spec.plan()
        modules = [self._make(layer, lif is None) for layer in self.plan]
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

    def _check_neuron(self, defaults: bool) -> None:
        known = self.default_neurons if defaults else self.neurons
        if self.neuron in self.neuron_reasons:
            raise Unsupported(self.neuron_reasons[self.neuron])
        if (
            self.neuron not in known
            and defaults
            and self.no_default_neuron
            and (
                self.neuron
                in ("if", "plif")  # the reason speaks of those; others get the generic one
            )
        ):
            raise Unsupported(self.no_default_neuron)
        if self.neuron not in known:
            what = "framework-defaults neuron" if defaults else "network"
            raise Unsupported(
                f"kernelprof's {self.framework} {what} builds "
                f"{', '.join(n.upper() for n in known) or 'no neuron'} so far, not "
                f"{self.neuron.upper()}"
            )

    def _make(self, layer: LayerPlan, defaults: bool) -> nn.Module:
        if not defaults or layer.category != "lif":
            return self.make_layer(layer)
        if self.neuron == "lif":
            return self.make_default_lif(layer)
        return self.make_default_neuron(layer)

    # ---- what a framework provides -----------------------------------------------------------

    @abc.abstractmethod
    def make_layer(self, layer: LayerPlan) -> nn.Module:
        """The framework's module for one planned layer."""

    def make_default_lif(self, layer: LayerPlan) -> nn.Module:
        """The LIF as the framework's own documentation builds it, every setting at its default
        (the framework-defaults setting: built when the network is given no config)."""
        raise Unsupported(f"{self.framework} has no framework-defaults neuron")

    def make_default_neuron(self, layer: LayerPlan) -> nn.Module:
        """The IF or PLIF (``self.neuron``) as the framework's documentation builds it, every
        setting at its default (for those in ``default_neurons``)."""
        raise Unsupported(f"{self.framework} has no framework-defaults {self.neuron.upper()}")

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

    def note_once(self, note: str) -> None:
        """Adds ``note`` to ``notes`` unless it is there (every LIF layer makes the same ones)."""
        if note not in self.notes:
            self.notes.append(note)

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


def step_layer(layer: LayerPlan) -> nn.Module:
    """The torch module of a planned layer other than a LIF, for a network stepped over T in
    a Python loop (each call sees one step, [B, ...]), as several frameworks' tutorials write
    theirs."""
    if layer.category == "conv":
        return nn.Conv2d(layer.in_shape[0], layer.out_shape[0], KERNEL, padding=PADDING, bias=False)
    if layer.category == "pool":
        return nn.AvgPool2d(POOL)
    if layer.category == "flatten":
        return nn.Flatten()
    if layer.category in ("linear", "readout"):
        return nn.Linear(layer.in_shape[0], layer.out_shape[0], bias=False)
    raise ValueError(f"{layer.name}: a {layer.category} layer is the framework's own")


def run_layers(layers: list[tuple[str, nn.Module]], x: torch.Tensor) -> torch.Tensor:
    """Applies the layers in order (a sequential network's ``run``)."""
    for _, module in layers:
        x = module(x)
    return x


class TimeFolded(nn.Module):
    """Applies a [N, ...] module to [T, B, ...] by folding T into the batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.flatten(0, 1)).unflatten(0, x.shape[:2])


# ---- ANN-to-SNN conversion -------------------------------------------------------------------


def build_ann(spec: NetworkSpec, seed: int) -> nn.Sequential:
    """The spec with ReLU for LIF, as an ``nn.Sequential``, with the seeded initial weights."""
    modules: list[nn.Module] = []
    weights = initial_weights(spec, seed)
    for layer in spec.plan():
        module = nn.ReLU() if layer.category == "lif" else step_layer(layer)
        if layer.name in weights:
            with torch.no_grad():
                module.weight.copy_(weights[layer.name])
        modules.append(module)
    return nn.Sequential(*modules)


class ConvertedSNN:
    """A converted network: ``readout(x, steps)`` gives the readout at every step,
    [steps, B, classes], from a fresh state. ``notes`` say how it was converted."""

    def __init__(self, readout: Callable[[torch.Tensor, int], torch.Tensor], notes: list[str]):
        self.readout = readout
        self.notes = notes

    @classmethod
    def stepped(cls, snn: nn.Module, reset: Callable[[], None], notes: list[str]) -> ConvertedSNN:
        """A network called once per step on the static input [B, ...]: ``readout`` calls
        ``reset()`` to clear its state, then stacks its output of every step."""

        @torch.no_grad()
        def readout(x: torch.Tensor, steps: int) -> torch.Tensor:
            reset()
            return torch.stack([snn(x) for _ in range(steps)])

        return cls(readout, notes)


class TrainedSNN(nn.Module, abc.ABC):
    """A framework's own ANN-to-SNN route that trains its network from the data (such as
    lava-dl's bootstrap), instead of converting the shared trained ANN.

    The runner's training loop (:func:`kernelprof.runs.e2e.conversion.train_route`) calls
    ``train_step`` on each batch, back-propagates the loss it returns and steps an Adam over
    ``parameters()`` at ``lr`` (the route's own, as its tutorial trains it); ``readout`` then runs
    the trained network as a pure SNN, as :class:`ConvertedSNN` does. ``notes`` say what it is
    and how it departs from the spec."""

    lr: float = 1e-3

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[str] = []

    @abc.abstractmethod
    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, epoch: int, iteration: int
    ) -> tuple[torch.Tensor, str]:
        """The loss of one training batch (static images [B, C, H, W]) and the mode it ran in
        (e.g. "ANN" or "SAMPLE"), for per-mode step times."""

    @abc.abstractmethod
    def readout(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The readout at every step, [steps, B, classes], as a pure SNN from a fresh state."""
