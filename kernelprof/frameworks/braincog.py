"""BrainCog (``braincog`` on PyPI): its LIF, IF and PLIF nodes, step by step and layer by
layer.

Read in BrainCog 0.2.7.19's sources (braincog/base/node/node.py, base/strategy/surrogate.py,
model_zoo/base_module.py, model_zoo/convnet.py) and checked by tests/test_impl_braincog.py:

* ``LIFNode(threshold=0.5, tau=2., act_fun=QGateGrad, **BaseNode kwargs)``. Per step
  (``integral`` then ``calc_spike``): mem = mem + (x - mem) / tau, the canonical decay_input
  charge with V_rest = 0 and the same operation order; spike = act_fun(mem - threshold); then
  mem = mem * (1 - spike.detach()). So BrainCog's LIF always resets hard to 0 with the reset
  cut from the gradient: v_reset must be 0, decay_input True and detach_reset True. The node's
  ``v_reset`` only sets the membrane that ``n_reset()`` restores; the dynamics ignore it.
* The node builds its surrogate as ``act_fun(alpha=2., requires_grad=False)`` whatever it is
  given, so another alpha means replacing ``node.act_fun`` after construction (BrainCog's own
  classes). ``SigmoidGrad(alpha)``: forward x >= 0, backward alpha*sig(alpha x)*(1 - sig): the
  canonical sigmoid exactly. ``AtanGrad(alpha)``: backward (alpha/2)/(1 + (pi/2 alpha x)^2), the
  canonical atan, but its forward fires on x > 0 (not on equality) and returns float32. There is
  no SuperSpike or piecewise exponential; the default QGateGrad (alpha - alpha^2 |x| within
  1/alpha, fires on x > 0) is no canonical surrogate.
* Multi-step: by default a node is called once per step (``step`` unused) and keeps ``mem``
  between calls; ``n_reset()`` clears it. With ``layer_by_layer=True, step=T`` it takes the
  time-folded input [(T*B), C] or [(T*B), C, H, W] (2-D or 4-D only) and loops over T inside.
  ``node.mem`` after a call is V after reset.
* Importing ``braincog.base.node.node`` runs ``braincog/base/__init__``, which imports every
  brain area, the model zoo and the datasets: torchvision, timm, scipy, matplotlib, seaborn,
  pandas, tonic, dv among them (installed with BrainCog's requirements), and it sets
  ``KMP_DUPLICATE_LIB_OK=TRUE``. About 6-12 s on the 2-core CPU.
* ``IFNode(threshold, act_fun=AtanGrad)``: mem = mem + x * dt (dt = 1), then the same spike and
  detached reset to 0: the canonical IF with hard reset to 0 and detach_reset.
* ``PLIFNode(threshold, tau, act_fun=AtanGrad)``: w = nn.Parameter(-log(tau - 1)) (one per
  layer: the canonical w0), mem = mem + ((x - mem) * w.sigmoid()) * dt: the canonical PLIF with
  decay_input, V_r = 0, in the same operation order; the same spike and detached reset. So
  w's gradient is the canonical dw. Its surrogate is built with ``requires_grad=True`` (a
  learnable alpha), IF's and LIF's with False; the replaced surrogate keeps each class's choice.
* BrainCog's own networks (model_zoo/convnet.py) are torch layers with LIFNode, run step by step
  in a Python loop over T after ``reset()``; ``BaseConvModule`` always adds a BatchNorm, so the
  e2e CNN uses ``nn.Conv2d`` + ``LIFNode`` as convnet.py's plain layers do.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from kernelprof.frameworks import base
from kernelprof.frameworks.networks import LayerPlan, SpikingNetwork, step_layer
from reference_kernels.model import NeuronConfig, make_config

REQUIREMENT = base.Requirement("braincog", ">=0.2.7,<0.3", module="braincog.base.node.node")
PATH_STEPS = "python loop over T: one node call per step (eager torch ops)"
PATH_LAYER = "node(layer_by_layer=True): the node's own python loop over T on folded input"
ATAN_TIES = "AtanGrad fires on H > theta, not on H == theta (its forward is x.gt(0))"
SURROGATES = {"sigmoid": "SigmoidGrad", "atan": "AtanGrad"}


NODE_CLASSES = {"lif": "LIFNode", "if": "IFNode", "plif": "PLIFNode"}


def node_parameters(config: NeuronConfig) -> dict:
    """The node's threshold and tau and the surrogate class name and alpha for ``config``, or
    Unsupported naming every part BrainCog cannot express."""
    problems = []
    node = NODE_CLASSES[config.neuron]
    if config.soft_reset:
        problems.append(f"soft reset: {node} resets to 0 (mem * (1 - spike))")
    elif config.v_reset != 0.0:
        moves = "resets to 0" if config.neuron == "if" else "leaks and resets towards 0"
        problems.append(f"v_reset={config.v_reset:g}: {node} {moves}")
    if config.neuron == "lif" and not config.decay_input:
        problems.append("decay_input=False: LIFNode charges mem + (x - mem)/tau")
    if config.neuron == "plif" and not config.decay_input:
        problems.append("decay_input=False: PLIFNode charges mem + (x - mem) * w.sigmoid()")
    if config.neuron == "plif" and config.per_channel:
        problems.append("a decay per channel: PLIFNode learns one w per layer")
    if not config.detach_reset:
        problems.append(f"detach_reset=False: {node}'s reset uses spike.detach()")
    if config.surrogate not in SURROGATES:
        problems.append(
            f"surrogate {config.surrogate}: BrainCog's canonical ones are SigmoidGrad and "
            "AtanGrad (no SuperSpike or piecewise exponential)"
        )
    if problems:
        raise base.Unsupported("braincog cannot express " + "; ".join(problems))
    found = {
        "threshold": float(config.v_threshold),
        "surrogate": SURROGATES[config.surrogate],
        "alpha": float(config.alpha),
    }
    if config.neuron != "if":
        found["tau"] = float(config.tau)  # PLIF: tau0, from which PLIFNode sets w
    return found


def make_node(config: NeuronConfig, device: torch.device, **kwargs) -> nn.Module:
    """The node for ``config`` with its surrogate replaced by BrainCog's class at the
    config's alpha (the constructors fix alpha at 2)."""
    from braincog.base.node import node as nodes
    from braincog.base.strategy import surrogate

    p = node_parameters(config)
    node_class = getattr(nodes, NODE_CLASSES[config.neuron])
    tau = {} if config.neuron == "if" else {"tau": p["tau"]}
    made = node_class(threshold=p["threshold"], **tau, **kwargs)
    made.act_fun = getattr(surrogate, p["surrogate"])(
        alpha=p["alpha"],
        requires_grad=config.neuron == "plif",  # as each class builds it
    )
    return made.to(device)


def _dw(config: NeuronConfig, checking: nn.Module):
    """PLIF's dw: PLIFNode's w is the canonical w."""
    return (lambda: checking.w.grad) if config.neuron == "plif" else None


def _clear(checking: nn.Module) -> None:
    """A node at rest, with no gradient left in its w from an earlier check."""
    checking.n_reset()
    if getattr(checking, "w", None) is not None:
        checking.w.grad = None


def _builds(
    config: NeuronConfig, dtype: torch.dtype, check, users: nn.Module, path: str, dw, **timed
) -> base.NeuronBuild:
    """``check`` and the timed build of the users' node ``users`` (``timed``: its run, code and
    any prepare), whose spikes are cast back to the input's dtype (AtanGrad's are float32)."""
    return base.NeuronBuild(
        check=check,
        timed=base.TimedBuild(spikes=lambda s: s.to(dtype), module=users, **timed),
        path=path,
        tie_notes=[ATAN_TIES] if config.surrogate == "atan" else [],
        dw=dw,
    )


def build_steps(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
    checking, users = make_node(config, device), make_node(config, device)

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        _clear(checking)
        spikes, membrane = [], []
        for step in x:
            spikes.append(checking(step))
            membrane.append(checking.mem)  # V after the reset of this step
        return torch.stack(spikes).to(x.dtype), torch.stack(membrane)

    def timed(x: torch.Tensor) -> torch.Tensor:
        # as model_zoo/convnet.py's forward: reset, then one call per step
        users.n_reset()
        return torch.stack([users(x[t]) for t in range(x.shape[0])])

    code = "node.n_reset(); torch.stack([node(x[t]) for t in range(T)])"
    dw = _dw(config, checking)
    return _builds(config, dtype, check, users, PATH_STEPS, dw, run=timed, code=code)


def build_layer_by_layer(
    config: NeuronConfig, device: torch.device, dtype: torch.dtype
) -> base.NeuronBuild:
    checking = make_node(config, device, layer_by_layer=True, requires_mem=True)
    users = make_node(config, device, layer_by_layer=True)

    def folded(x: torch.Tensor) -> torch.Tensor:
        # [T, N] is [(T*B), C] with B = 1; the node unfolds by its step, which must be T
        return x.reshape(x.shape[0], -1)

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        checking.step = x.shape[0]
        _clear(checking)
        spikes = checking(folded(x))
        membrane = torch.stack(checking.mem_collect)  # V after reset, one per step
        return spikes.reshape(x.shape).to(x.dtype), membrane.reshape(x.shape)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        users.step = x.shape[0]  # LIFNode(layer_by_layer=True, step=T), as its users build it
        return folded(x)

    def timed(x: torch.Tensor) -> torch.Tensor:
        users.n_reset()
        return users(x)

    code = (f"node = {NODE_CLASSES[config.neuron]}(..., layer_by_layer=True, step=T); "
            "node.n_reset(); node(x)")  # fmt: skip
    dw = _dw(config, checking)
    return _builds(config, dtype, check, users, PATH_LAYER, dw, run=timed, prepare=prepare,
                   code=code)  # fmt: skip


_implementation = partial(base.Implementation, framework="BrainCog", requires=(REQUIREMENT,),
                          neurons=("if", "lif", "plif"))  # fmt: skip
STEPS = _implementation(
    name="braincog",
    build=build_steps,
    description="LIFNode / IFNode / PLIFNode called once per step (BrainCog's default mode)",
)
LAYER_BY_LAYER = _implementation(
    name="braincog-lbl",
    build=build_layer_by_layer,
    description="LIFNode / IFNode / PLIFNode(layer_by_layer=True): all T steps of a layer in "
    "one call",
)


# ---- e2e network -------------------------------------------------------------------------------


class BrainCogNetwork(SpikingNetwork):
    """torch layers and ``LIFNode`` run step by step after a reset, as BrainCog's model zoo
    writes its networks' forward (model_zoo/convnet.py)."""

    framework = "braincog"
    neurons = default_neurons = ("if", "lif", "plif")

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        if layer.category != "lif":
            return step_layer(layer)
        if self.lif_config.surrogate == "atan":
            self.note_once(f"{self.neuron.upper()}: {ATAN_TIES}")
        return make_node(self.lif_config, torch.device("cpu"))

    def make_default_lif(self, layer: LayerPlan) -> nn.Module:
        return default_node("lif")

    def make_default_neuron(self, layer: LayerPlan) -> nn.Module:
        return default_node(self.neuron)

    def reset(self) -> None:
        for category, module in self.layers:
            if category == "lif":
                module.n_reset()

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        outputs = []
        for t in range(x_seq.shape[0]):
            y = x_seq[t]
            for _, module in self.layers:
                y = module(y)
            outputs.append(y)
        return torch.stack(outputs).mean(0)


# ---- the framework's own defaults --------------------------------------------------------------

_LIF = "braincog/base/node/node.py: LIFNode.__init__"
_BASE = "braincog/base/node/node.py: BaseNode.__init__"
DEFAULTS = (
    base.Default("tau", "2.0", _LIF, canonical="tau"),
    base.Default("threshold", "0.5", _LIF, canonical="v_threshold"),
    base.Default("reset",
                 "hard, to 0 (mem * (1 - spike)); v_reset=0.0 only sets n_reset()'s value",
                 "braincog/base/node/node.py: LIFNode.calc_spike", canonical="v_reset"),
    base.Default("input", "decayed with the leak: mem + (x - mem) / tau",
                 "braincog/base/node/node.py: LIFNode.integral", canonical="decay_input"),
    base.Default("reset gradient", "cut (spike.detach() in the reset)",
                 "braincog/base/node/node.py: LIFNode.calc_spike", canonical="detach_reset"),
    base.Default("act_fun",
                 "QGateGrad(alpha=2.0): alpha - alpha^2 |x| within 1/alpha; fires on x > 0",
                 _LIF + "; braincog/base/strategy/surrogate.py: quadratic_gate",
                 canonical="surrogate"),
    base.Default("step / layer_by_layer", "8 / False (one call per step)", _BASE),
)  # fmt: skip


def default_node(neuron: str) -> nn.Module:
    """``LIFNode()``, ``IFNode()`` or ``PLIFNode()``: every argument at its default."""
    from braincog.base.node import node as nodes

    return getattr(nodes, NODE_CLASSES[neuron])()


def default_spikes(x: torch.Tensor, neuron: str = "lif") -> torch.Tensor:
    """[T, N] -> [T, N]: the node at its defaults, called once per step."""
    node = default_node(neuron).to(x.device)
    node.n_reset()
    return torch.stack([node(step) for step in x]).to(x.dtype)


_IF = "braincog/base/node/node.py: IFNode.__init__"
_PLIF = "braincog/base/node/node.py: PLIFNode.__init__"
_DETACHED = base.Default("reset", "hard, to 0, its gradient cut (mem * (1 - spike.detach()))",
                         "braincog/base/node/node.py: BaseNode.calc_spike / IFNode.calc_spike",
                         canonical="v_reset")  # fmt: skip
_ATAN = "AtanGrad(alpha=2.0): alpha/2 / (1 + (pi/2 alpha x)^2); fires on x > 0"
NEURON_DEFAULTS = {
    "if": base.NeuronDefaults((
        base.Default("threshold", "0.5", _IF, canonical="v_threshold"),
        _DETACHED,
        base.Default("act_fun", _ATAN, _IF, canonical="surrogate"),
    ), partial(default_spikes, neuron="if")),
    "plif": base.NeuronDefaults((
        base.Default("tau", "2.0 (w0 = -log(tau - 1) = 0, one w per layer)", _PLIF,
                     canonical="tau"),
        base.Default("threshold", "1.0", _PLIF, canonical="v_threshold"),
        base.Default("input", "decayed with the leak: mem + (x - mem) * w.sigmoid()",
                     "braincog/base/node/node.py: PLIFNode.integral", canonical="decay_input"),
        _DETACHED,
        base.Default("act_fun", _ATAN + " (alpha learned: requires_grad=True)", _PLIF,
                     canonical="surrogate"),
    ), partial(default_spikes, neuron="plif")),
}  # fmt: skip


# ---- neuron modules in any model (kernelprof profile) ------------------------------------------

# BrainCog's nodes all derive from BaseNode (braincog/base/node/node.py: IFNode, LIFNode,
# PLIFNode, IzhNode, HHNode, aEIF, ...) or, multi-compartment, BaseMCNode (ThreeCompNode; one
# step per call on a dict of inputs). ReLUNode and BiasReLUNode (BrainCog's ANN stand-ins) are
# BaseNodes too, so they count.
_NODE_BASES = ("BaseNode", "BaseMCNode")
# Nodes whose own forward does one step and ignores layer_by_layer and n_groups.
_OWN_STEP_FORWARDS = ("ReLUNode", "BiasReLUNode", "SimHHNode", "HHNode", "aEIF")


def neuron_classes() -> tuple[type, ...]:
    from braincog.base.node import node as nodes

    return base.classes_in(nodes, _NODE_BASES)


def _folded(module) -> str | None:
    """How a multi-step node folds T into its input (BaseNode.forward's rearrange2node), or None
    for a node called once per step."""
    from braincog.base.node.node import BaseNode

    if not isinstance(module, BaseNode):
        return None
    owner = next(cls for cls in type(module).__mro__ if "forward" in vars(cls))
    if owner.__module__ == BaseNode.__module__ and owner.__name__ in _OWN_STEP_FORWARDS:
        return None
    if getattr(module, "groups", 1) != 1:
        return "n_groups: [B, (C*T), ...] unfolded by the node"
    if getattr(module, "layer_by_layer", False):
        return "layer_by_layer: [(T*B), ...] unfolded by the node"
    return None


def neuron_time_steps(module, args: tuple) -> int | None:
    """``module.step`` for a node in layer_by_layer (or n_groups) mode, which loops over that
    many steps of its folded input; one step per call otherwise (BrainCog's default)."""
    return int(module.step) if _folded(module) else None


def neuron_path(module) -> str:
    name = type(module).__name__
    folded = _folded(module)
    if folded:
        return f"{name}: BaseNode.forward's python loop over step={module.step} ({folded})"
    return f"one step per call: {name}.forward, eager torch ops (the script loops over T)"


_CANONICAL_SURROGATES = {name: canonical for canonical, name in SURROGATES.items()}
_NODE_STEPS = ("forward", "integral", "calc_spike", "get_thres")


def _node_kind(module) -> str:
    """The kind ("if", "lif" or "plif") of BrainCog's IFNode, LIFNode and PLIFNode (or a subclass
    without a step of its own); Unsupported for any other node."""
    from braincog.base.node import node as nodes

    return base.node_kind(module, nodes, NODE_CLASSES, _NODE_STEPS)


def node_config(module) -> NeuronConfig:
    """The canonical neuron a BrainCog ``IFNode``, ``LIFNode`` or ``PLIFNode`` computes with
    its settings (see :class:`base.FasterPaths`; the inverse of :func:`node_parameters`): hard
    reset to 0 with the reset detached, decay_input, PLIF at its current w (tau =
    1/sigmoid(w)); Unsupported where it computes something else."""
    kind = _node_kind(module)
    surrogate = _CANONICAL_SURROGATES.get(type(module.act_fun).__name__)
    if surrogate is None:
        raise base.Unsupported(f"surrogate {type(module.act_fun).__name__}: BrainCog's canonical "
                               "ones are SigmoidGrad and AtanGrad")  # fmt: skip
    threshold = module.threshold
    if module.sigmoid_thres or (isinstance(threshold, torch.Tensor) and threshold.requires_grad):
        raise base.Unsupported("a learned or sigmoid-bounded threshold")
    if getattr(module, "mem_detach", False) or float(module.dt) != 1.0:
        raise base.Unsupported("mem_detach or dt != 1: no canonical match")
    if float(module.v_reset) != 0.0:
        raise base.Unsupported(f"n_reset starts the membrane at v_reset={module.v_reset:g}, "
                               "its reset goes to 0")  # fmt: skip
    common = dict(v_threshold=float(threshold), v_reset=0.0, detach_reset=True,
                  surrogate=surrogate,
                  alpha=float(torch.as_tensor(module.act_fun.alpha).detach()))  # fmt: skip
    if kind == "if":
        return make_config("if", **common)
    if kind == "lif":
        return make_config("lif", tau=float(module.tau), **common)
    w = module.w
    if w.dim() != 0:
        raise base.Unsupported("its w is not one value (a 0-dim tensor)")
    k = float(torch.sigmoid(w.detach().double()))
    if not 0.0 < k < 1.0:
        raise base.Unsupported(f"its decay k = sigmoid(w) = {k:g} rounds to 0 or 1")
    return make_config("plif", tau=1.0 / k, **common)


def canonical_node(module, args: tuple, kwargs: dict) -> NeuronConfig:
    """No BrainCog call is a whole [T, ...] sequence from rest as kernelprof's kernels take it:
    says why (after the neuron's own reason, where it has one)."""
    node_config(module)
    if _folded(module):
        raise base.Unsupported(f"time folded into its input ({_folded(module)}), not [T, ...] "
                               "time first")  # fmt: skip
    raise base.Unsupported("one time step a call: the node keeps mem between calls (the script "
                           "loops over T)")  # fmt: skip


NEURON_LAYERS = base.NeuronLayers(
    package="braincog",
    classes=neuron_classes,
    time_steps=neuron_time_steps,
    path=neuron_path,
    faster=base.FasterPaths(
        canonical=canonical_node,
        config=node_config,
        decay=base.LearnedDecay(parameter=lambda node: node.w),  # PLIFNode's w is canonical
    ),
)

FRAMEWORK = base.Framework(
    name="braincog",
    display="BrainCog",
    requires=(REQUIREMENT,),
    implementations=(STEPS, LAYER_BY_LAYER),
    networks={"braincog": BrainCogNetwork},
    no_converter=(
        "not adapted: braincog.base.conversion.Convertor swaps nn.ReLU for soft-reset IF "
        "neurons scaled from a dataloader, and its hard-reset branch never resets "
        "(convertor.py: self.hard_reset without its call)"
    ),
    defaults=DEFAULTS,
    default_neuron=default_spikes,
    neuron_defaults=NEURON_DEFAULTS,
    description="eager PyTorch: LIFNode per step, or its layer-by-layer mode",
    neuron_layers=NEURON_LAYERS,
)
