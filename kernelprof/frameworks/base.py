"""What a framework module provides: the :class:`Framework` record and the types it builds.

A framework module is the one place that imports its framework's package. It exposes one
:class:`Framework` (built in: ``kernelprof/frameworks/<name>.py``; from a third party: any
installed package that declares an entry point in the group ``kernelprof.frameworks``, see
:mod:`kernelprof.frameworks.registry`), which holds everything kernelprof knows about it:

* ``requires``: the packages it needs, with version ranges;
* ``neurons``: its multi-step neurons, the rows of ``kernelprof check`` and ``compare``. Each
  maps a canonical config (:class:`~reference_kernels.model.LIFConfig`, ``IFConfig`` or
  ``PLIFConfig``, for the neurons it lists in ``neurons``) onto the framework's own parameters
  (raising :class:`Unsupported` with the reason where it cannot) and builds a
  :class:`NeuronBuild` with two builds: the *checking* build, which exposes V where the
  framework can (and PLIF's dw), and the *timed* build, exactly what the framework's users
  write to get spikes;
* ``networks``: builders of the end-to-end networks (``kernelprof e2e``), by name;
* ``converters``: its ANN-to-SNN routes, by name: a converter of the shared trained ANN, or a
  :class:`TrainedRoute` where the framework's route trains its own network; or ``no_converter``
  saying why it has none;
* ``defaults``: the framework's own default neuron settings, each with where it is written, and
  ``default_neuron``: that neuron as its documentation builds it by default, run on canonical
  [T, N] input (the framework-defaults setting's check against the canonical LIF);
* ``neuron_layers``: a :class:`NeuronLayers` (None where the framework has no torch modules):
  how ``kernelprof profile`` recognises the framework's neuron modules in a user's own model,
  how many time steps one call covers and the code path it takes, which canonical neuron (IF,
  LIF or PLIF) a module computes and whether kernelprof's fused kernels may stand in for its
  calls (:class:`FasterPaths`), and which of its other classes need a category their torch
  base class would misstate.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import MappingProxyType

import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from reference_kernels.model import NeuronConfig


class Unsupported(Exception):
    """The framework cannot express this configuration; the message says why."""


@dataclass(frozen=True)
class Requirement:
    distribution: str  # the name pip knows, e.g. "spikingjelly"
    versions: str = ""  # a PEP 440 specifier, e.g. ">=2.0,<3"
    module: str = ""  # the import name when it differs, e.g. "lava.lib.dl.slayer"

    def problem(self, *, import_it: bool = True) -> str | None:
        """None when installed in a matching version and importable, else why not. Without
        ``import_it`` only the package metadata is read (nothing is imported)."""
        try:
            installed = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return f"{self.distribution} is not installed"
        if self.versions and Version(installed) not in SpecifierSet(self.versions):
            return f"{self.distribution} {installed} installed, {self.versions} needed"
        if not import_it:
            return None
        try:
            importlib.import_module(self.module or self.distribution)
        except Exception as error:  # noqa: BLE001 - a broken install is reported with its error
            detail = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            return f"{self.distribution} {installed} fails to import: {detail}"
        return None


def first_problem(requirements: tuple[Requirement, ...], *, import_it: bool = True) -> str | None:
    """The first requirement that is not met, as a reason, else None."""
    for requirement in requirements:
        problem = requirement.problem(import_it=import_it)
        if problem is not None:
            return problem
    return None


def _same(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


@dataclass
class TimedBuild:
    """What the framework's users write to get spikes, timed exactly as it is.

    ``run`` takes the input as the framework's users hold it and returns the spikes as the
    framework returns them, nothing more: no recorded states, no V sequence, nothing of
    kernelprof's in the loop. ``prepare`` turns kernelprof's canonical input [T, ...] into that
    input (a layout such as lava-dl's time-last one, or an input scaling that a user's synapse
    weights would hold); ``spikes`` turns what ``run`` returns back into canonical [T, ...] spikes
    in the input's dtype. Both are differentiable and run outside every timed region.

    A framework that torch's autograd does not differentiate (JAX) gives ``phases`` as well:
    ``phases(x, grad)`` takes the canonical input [T, ...] and the upstream gradient of the
    canonical spikes and returns one closure per phase ("fwd", "bwd", "fwd+bwd"), each running
    exactly what the framework's users run for it and returning only when that work is done
    (JAX: ``block_until_ready``). Those closures are what is timed; ``run`` is then a bridge
    that torch can differentiate, over the same compiled functions, for the checks.
    """

    run: Callable[[torch.Tensor], torch.Tensor]
    prepare: Callable[[torch.Tensor], torch.Tensor] = _same
    spikes: Callable[[torch.Tensor], torch.Tensor] = _same
    code: str = ""  # the user's code in one line, shown with the row
    module: object = None  # the framework's own module that ``run`` calls, where there is one
    phases: Callable[[torch.Tensor, torch.Tensor], dict[str, Callable[[], object]]] | None = None

    def canonical(self, x: torch.Tensor) -> torch.Tensor:
        """prepare -> run -> spikes: canonical spikes of canonical input (for checking only)."""
        return self.spikes(self.run(self.prepare(x)))


@dataclass(frozen=True)
class Approximation:
    """A known, explained departure from the canonical model, with a bound on how far its
    cause can move the results: beyond the bound the verdict is WRONG, not approximate.

    The bounds of all of a build's approximations add up: the spike mismatch fraction may
    reach the sum of ``spike_mismatch``, the cosine of dX with the oracle's may fall to one
    minus the sum of ``grad_cosine_drop``, |dV| may exceed the tolerance by the sum of
    ``v_diff``, and an exposed second state (CUBA's I, ALIF's A) by the sum of ``state_diff``
    plus the sum of ``state_diff_per_unit`` times the oracle's largest |state|. A bound left at
    0 allows that approximation no effect on that measure."""

    reason: str
    spike_mismatch: float = 0.0  # fraction of spike values it may change
    grad_cosine_drop: float = 0.0  # how far below 1 it may bring dX's cosine with the oracle's
    v_diff: float = 0.0  # how far beyond the tolerance it may move V (where V is compared)
    state_diff: float = 0.0  # how far beyond the tolerance it may move an exposed state
    state_diff_per_unit: float = 0.0  # and further, per unit of the state's largest |value|

    def __str__(self) -> str:
        return self.reason


@dataclass
class NeuronBuild:
    """A framework's LIF built for one config, device and dtype: its two builds."""

    # The checking build: [T, ...] input -> (spikes, V after reset, or None where the framework
    # does not expose it). Never timed.
    check: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
    timed: TimedBuild
    path: str  # the code path expected to run (refined by ``detect_path`` after a call)
    # Known, explained departures from the canonical model, each with its bound. A difference
    # beyond tolerance is "approximate" when these explain it within their bounds, WRONG
    # otherwise.
    approximations: list[Approximation] = field(default_factory=list)
    # Known behaviours that make results differ only at exact threshold ties.
    tie_notes: list[str] = field(default_factory=list)
    # The code path that the timed build actually ran (e.g. from a profile of one call).
    detect_path: Callable[[], str] | None = None
    # PLIF: after a backward of ``check``, the gradient of the canonical w (0-dim, or one per
    # channel), converted from whatever the framework learns (its w, a beta = 1 - k, a tau);
    # ``check`` starts from w0 at every call. None where the build cannot expose it.
    dw: Callable[[], torch.Tensor | None] | None = None


def made_once(make: Callable[[torch.Tensor], object]) -> Callable[[torch.Tensor], object]:
    """``make(x)`` at the first call, that same object at every later one: what a timed build
    sizes by its first (untimed) input and then holds, as a user's model holds its layers."""
    made: list = []

    def get(x: torch.Tensor):
        if not made:
            made.append(make(x))
        return made[0]

    return get


def half_current_per_unit(config, dtype: torch.dtype) -> float:
    """A bound on a CUBA current computed from half precision, per unit of its largest |I|.
    Kept in half: each step rounds the decay, its product and the sum, each by at most eps/2
    of |I|. Or kept in float32 from an input rounded to half after an input scale: each step
    moves X by eps/2 |X| <= eps max|I| (X[t] = I[t] - d I[t-1]). The decay d = 1 - 1/tau_syn
    shrinks what came before, so either adds up to less than 1.5 eps tau_syn max|I|; 2 eps
    tau_syn is allowed. 0 for other neurons."""
    if config.neuron != "cuba":
        return 0.0
    return 2.0 * torch.finfo(dtype).eps * config.tau_syn


def half_current(config, dtype: torch.dtype, how: str) -> list[Approximation]:
    """CUBA's current computed from a half-precision input (``how`` says where it rounds):
    the current's rounding accumulates over tau_syn steps, so spikes near the threshold flip
    and V moves by tau_syn times a state's rounding. Measured for snnTorch's Synaptic at
    N=4096, T=8: fp16 0.02 % of spikes, |dV| 1.6e-3, dX cosine 0.99998; bf16 0.30 %, 1.3e-2,
    0.9994; the bounds allow 8 eps, as SpikingJelly's half V. [] for other dtypes or neurons."""
    if config.neuron != "cuba" or dtype not in (torch.float16, torch.bfloat16):
        return []
    eps = torch.finfo(dtype).eps
    return [Approximation(
        f"{how.format(dtype=str(dtype).removeprefix('torch.'))}: the current's rounding "
        "accumulates over T",
        spike_mismatch=min(1.0, 8 * eps), grad_cosine_drop=0.01,
        v_diff=8 * eps * max(1.0, abs(config.v_threshold)) * config.tau_syn,
        state_diff_per_unit=half_current_per_unit(config, dtype),
    )]  # fmt: skip


def retention_dw(parameter: torch.Tensor | None) -> torch.Tensor | None:
    """PLIF's canonical dw from the gradient of a learned retention r = 1 - k (snnTorch's beta,
    Sinabs' alpha_mem): dr/dw = -k (1 - k). None before a backward."""
    if parameter is None or parameter.grad is None:
        return None
    k = 1.0 - parameter.detach().double()
    return -k * (1.0 - k) * parameter.grad.double()


NeuronBuilder = Callable[[NeuronConfig, torch.device, torch.dtype], NeuronBuild]


@dataclass(frozen=True)
class Implementation:
    """One neuron implementation of a framework: one row of ``kernelprof check`` and
    ``compare``."""

    name: str  # the CLI name, e.g. "spikingjelly" or "spikingjelly-triton"
    framework: str  # the framework's display name, e.g. "SpikingJelly"
    build: NeuronBuilder
    requires: tuple[Requirement, ...] = ()
    devices: tuple[str, ...] = ("cpu", "cuda")
    description: str = ""
    # Called on a device it supports; returns why it cannot run there (e.g. a missing backend).
    device_problem: Callable[[torch.device], str | None] | None = None
    reference: bool = False  # one of kernelprof's own reference kernels, not a framework's
    # The canonical neurons ``build`` maps; for the others, why not (one line each), else a
    # plain "not mapped" reason.
    neurons: tuple[str, ...] = ("lif",)
    not_mapped: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def check_neuron(self, config: NeuronConfig) -> None:
        """Raises :class:`Unsupported` with the reason when ``build`` does not map this
        neuron."""
        if config.neuron in self.neurons:
            return
        reason = self.not_mapped.get(config.neuron) or (
            f"kernelprof maps only {', '.join(n.upper() for n in self.neurons)} onto "
            f"{self.framework}'s {self.name} so far"
        )
        raise Unsupported(reason)

    def unavailable_reason(self, device: torch.device, *, quick: bool = False) -> str | None:
        """Why this neuron cannot run on ``device`` here, else None. ``quick`` decides only
        what needs no import (package metadata, device type): None then means "maybe"."""
        problem = first_problem(self.requires, import_it=not quick)
        if problem is not None:
            return problem
        if device.type not in self.devices:
            return f"runs on {' or '.join(self.devices)}, not {device.type}"
        if device.type == "cuda" and not torch.cuda.is_available():
            return "no CUDA device (torch.cuda.is_available() is False)"
        if self.device_problem is not None and not quick:
            return self.device_problem(device)
        return None


@dataclass(frozen=True)
class Default:
    """One of a framework's own default neuron settings, and where it is written."""

    setting: str  # e.g. "surrogate"
    value: str  # e.g. "surrogate.Sigmoid(alpha=4.0)"
    source: str  # e.g. "spikingjelly/activation_based/neuron/lif.py: LIFNode.__init__"
    # The canonical LIFConfig field it corresponds to, where it has one (for comparisons).
    canonical: str = ""


def reading(defaults: tuple[Default, ...], setting: str, canonical: str) -> tuple[Default, ...]:
    """``defaults`` with ``setting`` read against the canonical field ``canonical``: a LIF's
    defaults serve its current-based neuron, whose synapse setting is then CUBA's tau_syn."""
    return tuple(Default(d.setting, d.value, d.source, canonical=canonical)
                 if d.setting == setting else d for d in defaults)  # fmt: skip


@dataclass(frozen=True)
class NeuronDefaults:
    """A framework's IF or PLIF at its documented defaults: the settings and where each is
    written, and the module run on a canonical input [T, N] -> spikes [T, N] (the same module
    its e2e network's ``make_default_neuron`` builds)."""

    defaults: tuple[Default, ...]
    neuron: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(frozen=True)
class TrainedRoute:
    """An ANN-to-SNN route that trains the network itself from the data (lava-dl's bootstrap),
    rather than converting the shared trained ANN. ``build(spec, steps, seed, max_steps)``
    returns a :class:`~kernelprof.frameworks.networks.TrainedSNN` trained at ``steps`` time
    steps within at most ``max_steps`` iterations (None: whole epochs); ``summary`` says in one
    line what the route is, and heads its row."""

    build: Callable
    summary: str


@dataclass(frozen=True)
class NeuronLayers:
    """How ``kernelprof profile`` recognises this framework's neuron modules in any model.

    ``package`` is the framework's import name: its classes are looked up only once the
    script has imported it (``package in sys.modules``), so profiling never imports a
    framework the script does not use. ``classes()`` returns its neuron module classes; a
    subclass of one (a user's own neuron) is a neuron too. ``time_steps(module, args)`` says
    how many time steps one call covers from the call's positional arguments (a multi-step
    module given [T, ...]: T; time-last [..., T]: the last dimension); no function, or one
    returning None: one per call (a module called once per time step). ``path(module)``
    names the code path the module takes in words (e.g. "backend torch", "per-step Python
    loop"). ``categories()`` maps the framework's other classes whose torch base class would
    misstate their category (a dense synapse built on ``Conv3d`` is "linear"; a loss module
    not derived from torch's ``_Loss`` is "loss", the step's loss phase). ``losses()`` names
    the framework's loss functions that are not modules, as (class, method) pairs: their
    calls are the step's loss phase (snnTorch's ``ce_rate_loss()(spk, y)``)."""

    package: str
    classes: Callable[[], tuple[type, ...]]
    time_steps: Callable[[object, tuple], int] | None = None
    path: Callable[[object], str] | None = None
    categories: Callable[[], Mapping[type, str]] | None = None
    losses: Callable[[], tuple[tuple[type, str], ...]] | None = None
    # The faster-path search (kernelprof profile): see FasterPaths.
    faster: FasterPaths | None = None


@dataclass(frozen=True)
class Backend:
    """A code path of the framework's own that its neuron layers can be switched to (e.g.
    SpikingJelly's CUDA LIF providers). ``use()`` is a context manager inside which the
    framework's layers take this path; ``current``: the path they take now."""

    name: str
    path: str  # in words
    use: Callable[[], AbstractContextManager]
    current: bool = False


@dataclass(frozen=True)
class LearnedDecay:
    """Where a PLIF module learns its decay: ``parameter(module)``, the tensor it learns (its
    own ``nn.Parameter``), and ``to_w(parameter)``, the canonical w (k = sigmoid(w)) from it,
    differentiable, so that a gradient of w flows back into the module's own parameter
    (SpikingJelly's and BrainCog's w is the canonical w; a learned retention r = 1 - k, such as
    snnTorch's beta, is w = logit(1 - r))."""

    parameter: Callable[[object], torch.Tensor]
    to_w: Callable[[torch.Tensor], torch.Tensor] = _same


def retention_w(retention: torch.Tensor) -> torch.Tensor:
    """PLIF's canonical w from a learned retention r = 1 - k: w = logit(k) = log(k / r)."""
    return torch.logit(1.0 - retention)


@dataclass(frozen=True)
class FasterPaths:
    """What ``kernelprof profile`` may put in place of a neuron layer, to measure a faster path.

    ``config(module)``: the canonical neuron (a :class:`LIFConfig`, ``IFConfig`` or
    ``PLIFConfig``) the module's settings compute, whatever its calls (a PLIF's ``tau`` is
    1/k of its *current* decay, k = sigmoid(w) now); raises :class:`Unsupported` saying why
    it has none. What ``kernelprof profile`` reports as the layer's canonical neuron.
    ``canonical(module, args, kwargs)``: the canonical neuron that this call computes, taking
    [T, ...] time first and returning only the spikes [T, ...], starting from rest; raises
    :class:`Unsupported` saying why not (another neuron, a surrogate with no canonical match, a
    state carried in from an earlier call, one time step a call, more outputs than spikes).
    Such a call can be run by kernelprof's fused reference kernels instead, and nothing of the
    module is needed afterwards. A PLIF call needs ``decay`` too (:class:`LearnedDecay`): the
    kernels then take the module's own w, and its gradient flows back into the module's
    parameter; without it a PLIF call gets no faster path. ``backends(module, device)``: the
    framework's own paths for the module on the device (none: it has one). ``fresh(module)``:
    a copy of the module at rest, to check a backend on the layer's own input without touching
    the model."""

    canonical: Callable[[object, tuple, dict], NeuronConfig] | None = None
    backends: Callable[[object, torch.device], tuple[Backend, ...]] | None = None
    fresh: Callable[[object], object] | None = None
    config: Callable[[object], NeuronConfig] | None = None
    decay: LearnedDecay | None = None


def one_value(value, what: str) -> float:
    """The one value of a number, or of a tensor whose elements are all equal (a per-neuron
    parameter set alike), as a float; :class:`Unsupported` where they differ."""
    if not isinstance(value, torch.Tensor):
        return float(value)
    flat = value.detach().double().flatten()
    if flat.numel() == 0 or bool((flat != flat[0]).any()):
        raise Unsupported(f"{what} is not one value (it differs across neurons): a layer is "
                          "named one canonical neuron")  # fmt: skip
    return float(flat[0])


def learned(value) -> bool:
    """Whether ``value`` is a parameter that training changes (requires_grad)."""
    return isinstance(value, torch.nn.Parameter) and value.requires_grad


def classes_in(module: object, names) -> tuple[type, ...]:
    """The classes of ``module`` with these names, leaving out those this release lacks."""
    found = (getattr(module, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type))


def node_kind(module, package: object, classes: Mapping[str, str], steps: tuple[str, ...]) -> str:
    """The kind ("if", "lif", "plif") of ``module``, an instance of one of ``package``'s neuron
    ``classes`` ({kind: class name}) or of a subclass that overrides none of its ``steps``;
    Unsupported (with why) for any other module."""
    kinds = {cls: kind for kind, name in classes.items()
             for cls in classes_in(package, (name,))}  # fmt: skip
    mro = type(module).__mro__
    origin = next((cls for cls in mro if cls in kinds), None)
    if origin is None:
        raise Unsupported(f"{type(module).__name__} is none of {', '.join(classes.values())}: "
                          "the neurons kernelprof maps")  # fmt: skip
    own = [step for step in steps if any(step in vars(cls) for cls in mro[: mro.index(origin)])]
    if own:
        raise Unsupported(f"{type(module).__name__} runs its own {own[0]}")
    return kinds[origin]


def categorised(module: object, named: Mapping[str, str]) -> dict[type, str]:
    """``{class: category}`` of a framework module's classes named ``{name: category}``, as
    :class:`NeuronLayers` ``categories()`` returns it (classes this release lacks left out)."""
    return {cls: category for name, category in named.items()
            for cls in classes_in(module, (name,))}  # fmt: skip


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Framework:
    """Everything kernelprof knows about one framework (see the module docstring).

    ``networks`` maps an e2e name to a builder ``(spec, lif_config, steps, seed) ->
    SpikingNetwork`` (:mod:`kernelprof.frameworks.networks`); ``converters`` maps a conversion
    name to ``(ann, calibration_batches, spec) -> ConvertedSNN`` or to a :class:`TrainedRoute`.
    Builders raise
    :class:`Unsupported` for what the framework cannot express."""

    name: str  # the CLI name, e.g. "spikingjelly"
    display: str  # e.g. "SpikingJelly"
    requires: tuple[Requirement, ...] = ()
    implementations: tuple[Implementation, ...] = ()
    networks: Mapping[str, Callable] = field(default_factory=dict)
    converters: Mapping[str, Callable] = field(default_factory=dict)
    no_converter: str = ""  # why the framework has no converter (shown as its conversion row)
    defaults: tuple[Default, ...] = ()
    # Its LIF with every setting at its documented default: canonical input [T, N] -> spikes
    # [T, N] (the same module its e2e network's make_default_lif builds), None where it has none.
    default_neuron: Callable[[torch.Tensor], torch.Tensor] | None = None
    # The same for its other neurons, by name ("if", "plif"), where kernelprof knows them.
    neuron_defaults: Mapping[str, NeuronDefaults] = field(default_factory=dict)
    description: str = ""
    neuron_layers: NeuronLayers | None = None  # what ``kernelprof profile`` recognises

    def __post_init__(self) -> None:
        object.__setattr__(self, "networks", _frozen(self.networks))
        object.__setattr__(self, "converters", _frozen(self.converters))
        object.__setattr__(self, "neuron_defaults", _frozen(self.neuron_defaults))
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"framework name must be letters, digits, - or _, got {self.name!r}")

    def defaults_of(self, neuron: str) -> NeuronDefaults:
        """Its ``neuron`` at the documented defaults (LIF's are ``defaults``/``default_neuron``;
        a neuron it has none for gives no settings and no module)."""
        if neuron == "lif":
            return NeuronDefaults(self.defaults, self.default_neuron)
        return self.neuron_defaults.get(neuron, NeuronDefaults(()))

    def problem(self, *, import_it: bool = True) -> str | None:
        """None when the framework's packages are installed and import, else why not."""
        return first_problem(self.requires, import_it=import_it)

    @property
    def distributions(self) -> tuple[str, ...]:
        """The pip names of everything it needs (recorded with every result)."""
        names = [r.distribution for r in self.requires]
        names += [r.distribution for impl in self.implementations for r in impl.requires]
        return tuple(dict.fromkeys(names))
