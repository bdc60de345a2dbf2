"""A model's layers as ``kernelprof profile`` names and categorises them.

A *layer* is a neuron module (whatever modules it holds: a surrogate function, say) or a leaf
module outside every neuron; its name is its qualified name in the model (``features.2``). Its
category is ``neuron`` when a framework module declares its class (or a base of it, so a user's
own subclass counts: :class:`~kernelprof.frameworks.base.NeuronLayers`), else what its torch
base class says: conv, linear, norm, pool, dropout, or other. Loss modules (torch's, and those a
framework declares with the category "loss") are the step's ``loss`` phase, not layers; a model
(a module holding others) called at the top level is its ``forward``: its own work between its
layers (a residual add, a reshape) is ``other fwd``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from kernelprof.results.profile import NeuronCall
from kernelprof.traces import steps as trace_steps

DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
# torch base classes of each category, most specific first
_TORCH_CATEGORIES = (
    ("conv", (nn.modules.conv._ConvNd,)),
    ("linear", (nn.Linear, nn.Bilinear)),
    ("norm", (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
              *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))),
    ("pool", (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
              nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
              nn.modules.pooling._LPPoolNd)),
    ("dropout", (nn.modules.dropout._DropoutNd,)),
)  # fmt: skip
# A layer may not take a name that the attribution reads as one of the step's own categories.
_RESERVED = {"other", "step"}


@dataclass(frozen=True)
class Declared:
    """A framework's neuron declaration, its classes looked up."""

    framework: str
    classes: tuple[type, ...]
    declaration: object  # kernelprof.frameworks.base.NeuronLayers
    categories: tuple[tuple[type, str], ...]
    losses: tuple[tuple[type, str], ...] = ()  # (class, method) of its loss functions


@dataclass(frozen=True)
class Entry:
    name: str
    type: str
    category: str
    kind: Literal["layer", "root", "loss"]
    range: str  # the record_function range opened around its forward
    neuron: Declared | None = None


def declared() -> tuple[list[Declared], list[str]]:
    """The neuron declarations of every framework the process has imported, and the problems
    met looking them up (a declaration that fails is said, not fatal)."""
    from kernelprof.frameworks import registry

    found, problems = [], []
    for framework in registry.frameworks().values():
        layers = framework.neuron_layers
        if layers is None or layers.package not in sys.modules:
            continue
        try:
            classes = tuple(layers.classes())
            categories = tuple((layers.categories() or {}).items()) if layers.categories else ()
            losses = tuple(layers.losses()) if layers.losses else ()
        except Exception as error:  # noqa: BLE001 - one framework's failure names it
            problems.append(f"{framework.display}'s neuron classes not read: "
                            f"{type(error).__name__}: {error}")  # fmt: skip
            continue
        found.append(Declared(framework.display, classes, layers, categories, losses))
    return found, problems


def type_name(module: nn.Module) -> str:
    kind = type(module)
    return f"{kind.__module__}.{kind.__qualname__}"


class Index:
    """Every module of the roots, by identity: layers, models and losses.

    ``transient``: roots the warm-up steps saw in one step only, i.e. made anew for a call (a
    loss function that builds its ``LogSoftmax`` each time): such leaf modules are one layer per
    class, named "<Class> (made each step)", not one per object. A root is named by the
    variable of the script that holds it where there is one (``fc1 = nn.Linear(...)`` called at
    the top level is ``fc1``), else by its class."""

    def __init__(self, roots: list[nn.Module], transient: set[int] = frozenset()) -> None:
        self.frameworks, self.problems = declared()
        self.by_id: dict[int, Entry] = {}
        self.modules: dict[int, nn.Module] = {}  # what by_id names (not the per-call ones)
        self.by_class: dict[type, Entry] = {}
        self.order: list[Entry] = []
        self._names: set[str] = set()
        self._globals = _script_names()
        with_children = [root for root in roots if _has_children(root)]
        for root in roots:
            if self._is_loss(root):
                self._add(root, "loss", "loss")
            elif root in with_children:
                name = self._root_name(root)
                self._add(root, name if len(with_children) > 1 else "(model)", "root")
                self._walk(root, name + "." if len(with_children) > 1 else "")
            elif id(root) in transient:
                self._group(root)
            else:
                self._add(root, self._root_name(root), "layer")

    def entry(self, module: nn.Module, top_level: bool) -> Entry | None:
        """The module's entry; a module first called now at the top level is indexed as a root
        (a model the warm-up steps did not call), a leaf by its class (made for the call)."""
        found = self.by_id.get(id(module))
        if found is None and not _has_children(module):
            found = self.by_class.get(type(module)) if top_level else None
        if found is not None or not (top_level or self._is_loss(module)):
            return found
        if self._is_loss(module):
            return self._add(module, "loss", "loss")
        if not _has_children(module):
            return self._group(module)
        name = self._root_name(module)
        found = self._add(module, name, "root")
        self._walk(module, name + ".")
        return found

    def _group(self, module: nn.Module) -> Entry:
        """The one layer of a class whose objects are made for a call. Not remembered by
        identity: the object is freed after its call, and its address reused by another."""
        found = self.by_class.get(type(module))
        if found is None:
            found = self._add(module, f"{type(module).__name__} (made each step)", "layer")
            self.by_class[type(module)] = found
            del self.by_id[id(module)], self.modules[id(module)]
        return found

    def _root_name(self, module: nn.Module) -> str:
        return self._unique(self._globals.get(id(module)) or type(module).__name__)

    def layers(self) -> list[Entry]:
        return [entry for entry in self.order if entry.kind == "layer"]

    def uncategorised(self) -> tuple[str, ...]:
        """The types of the layers no category names."""
        return tuple(dict.fromkeys(entry.type for entry in self.layers()
                                   if entry.category == "other"))  # fmt: skip

    def _walk(self, module: nn.Module, prefix: str) -> None:
        """Names every module under ``module``: neurons and leaves are layers."""
        for name, child in module.named_children():
            if id(child) in self.by_id:
                continue  # shared: the first name holds it
            full = prefix + name
            if self._is_loss(child):
                self._add(child, full, "loss")
            elif self._neuron(child) is not None or not _has_children(child):
                self._add(child, full, "layer")
            else:
                self._walk(child, full + ".")

    def _unique(self, name: str) -> str:
        candidate, number = name, 1
        while candidate in self._names:
            number += 1
            candidate = f"{name}#{number}"
        return candidate

    def _add(self, module: nn.Module, name: str, kind: str) -> Entry:
        neuron = self._neuron(module) if kind == "layer" else None
        if kind == "layer":
            name = self._unique(f"{name} (layer)" if name in _RESERVED else name)
            self._names.add(name)
            entry = Entry(name, type_name(module), self.category(module), "layer",
                          f"{trace_steps.PREFIX}{name} fwd", neuron)  # fmt: skip
        elif kind == "loss":
            entry = Entry(name, type_name(module), "loss", "loss", trace_steps.PREFIX + "loss")
        else:
            self._names.add(name)
            entry = Entry(name, type_name(module), "other", "root",
                          trace_steps.PREFIX + "forward")  # fmt: skip
        self.by_id[id(module)] = entry
        self.modules[id(module)] = module
        self.order.append(entry)
        return entry

    def _is_loss(self, module: nn.Module) -> bool:
        """torch's loss modules, and the classes a framework declares as its losses."""
        if isinstance(module, nn.modules.loss._Loss):
            return True
        return any(category == "loss" and isinstance(module, kind)
                   for framework in self.frameworks
                   for kind, category in framework.categories)  # fmt: skip

    def _neuron(self, module: nn.Module) -> Declared | None:
        for framework in self.frameworks:
            if framework.classes and isinstance(module, framework.classes):
                return framework
        return None

    def category(self, module: nn.Module) -> str:
        if self._neuron(module) is not None:
            return "neuron"
        for framework in self.frameworks:
            for kind, category in framework.categories:
                if isinstance(module, kind):
                    return category
        for category, kinds in _TORCH_CATEGORIES:
            if isinstance(module, kinds):
                return category
        return "other"


def _has_children(module: nn.Module) -> bool:
    return any(True for _ in module.children())


def _script_names() -> dict[int, str]:
    """The modules the running script holds in its global variables, by identity."""
    main = sys.modules.get("__main__")
    found: dict[int, str] = {}
    for name, value in list(vars(main).items()) if main is not None else ():
        if isinstance(value, nn.Module) and not name.startswith("_"):
            found.setdefault(id(value), name)
    return found


def neuron_call(entry: Entry, module: nn.Module, args: tuple) -> NeuronCall:
    """What a neuron layer's call takes: time steps, neurons per step, dtype, code path."""
    declared_by = entry.neuron
    layers = declared_by.declaration
    x = next((a for a in _flat(args) if isinstance(a, torch.Tensor)), None)
    if x is None:
        raise ValueError("no tensor among its arguments")
    steps = layers.time_steps(module, args) if layers.time_steps is not None else None
    steps = 1 if steps is None else max(1, int(steps))  # None: one step per call
    return NeuronCall(framework=declared_by.framework,
                      path=layers.path(module) if layers.path is not None else "",
                      steps_per_call=steps, neurons=x.numel() // steps,
                      dtype=DTYPES.get(x.dtype, str(x.dtype).removeprefix("torch.")),
                      element_bytes=x.element_size(),
                      canonical=canonical_neuron(layers, module))  # fmt: skip


def canonical_neuron(layers, module: nn.Module) -> str:
    """The canonical neuron (IF, LIF, PLIF, CUBA, ALIF) the module's settings compute, in words,
    from its framework's ``FasterPaths.config``; "none: <why>" where it computes none; "" where
    the framework does not say."""
    from kernelprof.frameworks.base import Unsupported

    mapping = layers.faster.config if layers.faster is not None else None
    if mapping is None:
        return ""
    try:
        return config_text(mapping(module))
    except Unsupported as why:
        return f"none: {why}"
    except Exception as error:  # noqa: BLE001 - never break the user's step
        return f"none: its mapping failed ({type(error).__name__}: {error})"


def config_text(config) -> str:
    """A canonical config in one line: 'PLIF: k=0.45 now (tau 2.22), theta 1, hard reset to
    0, decay_input, sigmoid(4)'."""
    parts = [
        f"theta {config.v_threshold:g}",
        "soft reset" if config.v_reset is None else f"hard reset to {config.v_reset:g}",
    ]
    if config.neuron == "plif":
        parts.insert(0, f"k={1 / config.tau:.4g} now (tau {config.tau:.4g})")
    elif config.neuron == "lif":
        parts.insert(0, f"tau {config.tau:g}")
    elif config.neuron == "cuba":
        parts.insert(0, f"tau {config.tau:g}, tau_syn {config.tau_syn:g}")
    elif config.neuron == "alif":
        parts.insert(0, f"tau {config.tau:g}, tau_a {config.tau_a:g}, beta_a {config.beta_a:g}")
        parts[1] = f"theta0 {config.v_threshold:g}"
    if config.neuron != "if":
        parts.append("decay_input" if config.decay_input else "input not decayed")
    if config.detach_reset:
        parts.append("detach_reset")
    if getattr(config, "detach_adaptation", False):
        parts.append("detach_adaptation")
    parts.append(f"{config.surrogate}({config.alpha:g})")
    return f"{config.neuron.upper()}: " + ", ".join(parts)


def _flat(args):
    for item in args:
        if isinstance(item, (tuple, list)):
            yield from _flat(item)
        else:
            yield item
