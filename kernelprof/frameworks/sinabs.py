"""Sinabs (and its EXODUS CUDA kernels): its LIF layers (and IAF, and LIF with trained
alphas as PLIF) and its ANN-to-SNN converter.

The timed build is the layer as Sinabs users call it, on their batch-first input
(``layer.reset_states(); spikes = layer(x)`` with x [B, T, ...], ``record_states`` at its
default, False); putting kernelprof's [T, N] input batch-first is ``TimedBuild.prepare``. The
checking build records the membrane (``record_states=True``) to expose V.

Sinabs 3.1.3 is installed with --no-deps (requirements/no-deps.txt) and its row is checked over
the config grid (tests/test_impl_sinabs.py); sinabs-exodus, source-only and CUDA-only, has never
been built here. The mapping follows the Sinabs 3.x sources (sinabs/layers/lif.py,
layers/functional/lif.py, activation/spike_generation.py, reset_mechanism.py,
surrogate_gradient_fn.py, and sinabs-exodus's sinabs/exodus/layers/lif.py and spike.py):

* ``sinabs.layers.LIF(tau_mem, spike_threshold, spike_fn, reset_fn, surrogate_grad_fn,
  norm_input, record_states)`` takes batch-first [B, T, ...] and keeps its state between calls
  (``reset_states()`` zeroes it). Per step: v = alpha*v + (1 - alpha)*x (norm_input) or
  alpha*v + x, alpha = exp(-1/tau_mem); then spikes and reset. So the canonical 1 - 1/tau needs
  tau_mem = -1/ln(1 - 1/tau) (tau > 1), and v rests at 0: v_reset must be 0 for hard reset.
* ``SingleSpike``: (v - theta >= 0), one spike per step, fires on equality like the canonical
  model (the default MultiSpike emits several).
* ``MembraneReset(0.)``: v * (spikes == 0), a comparison with no gradient: hard reset with
  detach_reset=True only. ``MembraneSubtract()``: v - spikes*theta, attached: soft reset with
  detach_reset=False only.
* ``SingleExponential(grad_width, grad_scale)``: grad_scale/(theta*w) * exp(-|v - theta|/(theta*w))
  equals piecewise_exp(alpha) for w = 1/(alpha*theta), grad_scale = 1/2. Sinabs ships no
  sigmoid, atan or fast-sigmoid surrogate, so those raise Unsupported.
* CUBA is ``LIF(tau_mem, tau_syn)``: i_syn = alpha_syn (i_syn + x), then the LIF charge with
  i_syn as its input. alpha_syn = exp(-1/tau_syn) = 1 - 1/tau_syn, and the input times
  1/alpha_syn (``input_scale``, untimed, as a user's weights would hold it) makes i_syn the
  canonical current I, recorded as ``recordings["i_syn"]``.
* ``record_states=True`` records v after reset in ``layer.recordings["v_mem"]`` ([B, T, ...]).
* IF is ``sinabs.layers.IAF`` (LIF with tau_mem = inf, so alpha = 1, and norm_input False):
  v = v + x, with the same spike, reset and surrogate rules.
* PLIF is ``LIF(tau_mem, train_alphas=True)``: alpha_mem = exp(-1/tau_mem) is the parameter,
  set to 1 - 1/tau0 (rounded in float32), and norm_input scales the input by (1 - alpha_mem),
  the same learned alpha: v = alpha v + (1 - alpha) x is the canonical decay_input charge with
  k = 1 - alpha (V_r = 0; rounded in another order), alpha v + x the other. So dw = -k (1 - k)
  dalpha. Per channel, tau_mem has one value per neuron of a step (a [T, N] input is Sinabs'
  [B = N, T]: the state is [N]).
* EXODUS (``sinabs.exodus.layers.LIF``, CUDA only) accepts MembraneSubtract only (soft reset),
  returns v before reset from its kernel, and raises NotImplementedError when a gradient reaches
  v_mem, so its row returns V = None.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from kernelprof.frameworks import base
from kernelprof.frameworks.networks import PERCENTILE, ConvertedSNN, NetworkSpec
from reference_kernels.model import NeuronConfig, make_config

PATH_SINABS = "python loop: sinabs functional.lif_forward, eager torch ops per step"
PATH_EXODUS = "EXODUS CUDA kernels: forward over T per neuron, backward O(T^2) in parallel"


def _alif_problems(config: NeuronConfig) -> list[str]:
    """What sinabs.layers.ALIF cannot express of a canonical ALIF (see ALIF_NOTE)."""
    problems = []
    if config.tau_a <= 1.0:
        problems.append("tau_a = 1: an adaptation that decays in one step (ALIF is then LIF), "
                        "and adapt_scale = beta_a rho / (1 - rho) needs rho > 0")  # fmt: skip
    if config.soft_reset or not config.detach_adaptation:
        problems.append(
            "the threshold's gradient: SingleSpike passes none to it (BackwardClass returns "
            "None for spike_threshold), so ALIF matches the canonical neuron only where none "
            "is asked for: detach_adaptation, and a hard reset (MembraneReset, no gradient)"
        )
    return problems


ALIF_NOTE = (
    "surrogate width: SingleExponential's is spike_threshold * grad_width, so it widens with "
    "the adapted threshold theta[t] (canonical piecewise_exp's is 1/alpha at every step): dX "
    "differs wherever theta[t] > theta0, spikes and V do not"
)


ALIF_V = (
    "V not compared: ALIF's record_states appends the state dict that the next step goes on "
    "updating in place before its reset replaces it (functional/alif.py: alif_forward), so the "
    "recorded v_mem[t] is the next step's charge H[t + 1]"
)


def sinabs_parameters(config: NeuronConfig, *, exodus: bool) -> dict:
    """Keyword arguments for sinabs.layers.LIF (or EXODUS's LIF) with the activation objects
    still to be instantiated by the caller: {"reset": "reset"|"subtract", "tau_mem", ...};
    IF has no tau_mem (IAF)."""
    problems = []
    if config.neuron == "alif":
        problems += _alif_problems(config)
    if config.neuron in ("lif", "alif", "cuba") and config.tau <= 1.0:
        problems.append(f"tau={config.tau:g}: alpha = exp(-1/tau_mem) = 1 - 1/tau needs tau > 1")
    if config.neuron == "cuba" and config.syn_decay == 0.0:
        problems.append("tau_syn = 1: alpha_syn = 0 passes no input (i_syn = alpha_syn (i_syn + "
                        "x)), and a current that decays in one step is LIF's")  # fmt: skip
    if config.v_threshold <= 0:
        problems.append("a threshold <= 0 (SingleExponential's width is proportional to it)")
    if config.soft_reset:
        if config.detach_reset:
            problems.append(
                "soft reset with detach_reset=True: MembraneSubtract keeps the gradient of S"
            )
    else:
        if exodus:
            problems.append("hard reset: EXODUS accepts MembraneSubtract (soft reset) only")
        if config.v_reset != 0.0:
            what = "IAF resets" if config.neuron == "if" else "LIF leaks"
            problems.append(f"v_reset={config.v_reset:g}: the sinabs {what} towards 0")
        if not config.detach_reset:
            problems.append(
                "hard reset with detach_reset=False: MembraneReset multiplies by (spikes == 0), "
                "which has no gradient"
            )
    if config.surrogate != "piecewise_exp":
        problems.append(
            f"surrogate {config.surrogate}: sinabs ships SingleExponential, Gaussian, "
            "MultiGaussian, Heaviside and PeriodicExponential only"
        )
    if problems:
        name = "sinabs-exodus" if exodus else "sinabs"
        raise base.Unsupported(f"{name} cannot express " + "; ".join(problems))
    found = {
        "spike_threshold": float(config.v_threshold),
        "grad_width": 1.0 / (config.alpha * config.v_threshold),
        "grad_scale": 0.5,
        "reset": "subtract" if config.soft_reset else "reset",
    }
    if config.neuron != "if":  # PLIF: tau0, from which alpha_mem starts
        found["tau_mem"] = -1.0 / math.log(1.0 - 1.0 / config.tau)
        found["norm_input"] = config.decay_input
    if config.neuron == "cuba":  # i_syn = alpha_syn (i_syn + x): see input_scale
        found["tau_syn"] = -1.0 / math.log(config.syn_decay)
    if config.neuron == "alif":  # b = rho b + (1 - rho) S is (1 - rho) / rho times A_d[t + 1]
        rho = config.adapt_decay
        found["tau_adapt"] = -1.0 / math.log(rho)
        found["adapt_scale"] = config.beta_a * rho / (1.0 - rho)
    return found


def _batch_first(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(0, 1).contiguous()  # [T, B, ...] -> [B, T, ...], as Sinabs users hold it


def _time_first(spikes: torch.Tensor) -> torch.Tensor:
    return spikes.movedim(1, 0)


def input_scale(layer) -> float:
    """What a CUBA layer's input is multiplied by: 1/alpha_syn (its float32 value), so that
    Sinabs' i_syn = alpha_syn (i_syn + x) is the canonical current (a user's synaptic weights
    would hold the scale); 1 without a synapse."""
    alpha_syn = getattr(layer, "alpha_syn_calculated", None)
    return 1.0 if alpha_syn is None else 1.0 / float(alpha_syn.detach())


def _timed(layer) -> base.TimedBuild:
    """The layer as Sinabs users call it, on their batch-first input."""
    scale = input_scale(layer)

    def run(x: torch.Tensor) -> torch.Tensor:
        layer.reset_states()  # the state persists between calls
        return layer(x)

    return base.TimedBuild(
        run=run, prepare=lambda x: _batch_first(x) * scale, spikes=_time_first, module=layer,
        code="layer.reset_states(); spikes = layer(x)  # x batch-first [B, T, ...]",
    )  # fmt: skip


def _sinabs_layer(config: NeuronConfig, p: dict, device: torch.device, record_states: bool,
                  neurons: int = 1):  # fmt: skip
    """sinabs.layers.LIF (IAF for IF; trained alphas for PLIF, one per neuron of ``neurons``
    with ``per_channel``) for ``config``'s parameters ``p``."""
    from sinabs.activation import MembraneReset, MembraneSubtract, SingleExponential, SingleSpike
    from sinabs.layers import IAF, LIF

    common = {
        "spike_threshold": torch.tensor(p["spike_threshold"]),
        "spike_fn": SingleSpike,
        "reset_fn": MembraneSubtract() if p["reset"] == "subtract" else MembraneReset(0.0),
        "surrogate_grad_fn": SingleExponential(
            grad_width=p["grad_width"], grad_scale=p["grad_scale"]
        ),  # fmt: skip
        "record_states": record_states,
    }
    if config.neuron == "if":
        return IAF(**common).to(device)
    if config.neuron == "alif":
        from sinabs.layers import ALIF

        return ALIF(tau_mem=p["tau_mem"], tau_adapt=p["tau_adapt"], adapt_scale=p["adapt_scale"],
                    norm_input=p["norm_input"], **common).to(device)  # fmt: skip
    tau_mem = p["tau_mem"]
    if config.neuron == "plif" and config.per_channel:
        tau_mem = torch.full((neurons,), tau_mem)
    return LIF(tau_mem=tau_mem, tau_syn=p.get("tau_syn"), norm_input=p["norm_input"],
               train_alphas=config.neuron == "plif", **common).to(device)  # fmt: skip


def _alpha_dw(checked: list):
    """PLIF's dw from the checking layer's trained alpha = 1 - k."""
    return base.retention_dw(checked[0].alpha_mem if checked else None)


def _timed_lazily(make) -> base.TimedBuild:
    """:func:`_timed` of a layer made at the first call, sized by its batch-first input."""
    layer = base.made_once(make)

    def run(x: torch.Tensor) -> torch.Tensor:
        made = layer(x)
        made.reset_states()  # the state persists between calls
        return made(x)

    return base.TimedBuild(
        run=run, prepare=_batch_first, spikes=_time_first,
        code="layer.reset_states(); spikes = layer(x)  # x batch-first [B, T, ...]",
    )  # fmt: skip


def _build_sinabs(
    config: NeuronConfig, device: torch.device, dtype: torch.dtype
) -> base.NeuronBuild:
    p = sinabs_parameters(config, exodus=False)
    learned = config.neuron == "plif"
    checked: list = []  # PLIF: the checking call's layer, made fresh (alpha at w0) each call
    standing = None if learned else _sinabs_layer(config, p, device, True)

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        checking = _sinabs_layer(config, p, device, True, x[0].numel()) if learned else standing
        checked[:] = [checking]
        checking.reset_states()  # the state persists between calls
        spikes = checking(_batch_first(x) * input_scale(checking))
        recorded = {name: _time_first(state) for name, state in checking.recordings.items()}
        if config.neuron == "alif":  # its recordings alias one state dict: see ALIF_V
            return _time_first(spikes), None
        if config.neuron == "cuba":  # i_syn is the canonical current of the scaled input
            return _time_first(spikes), recorded["v_mem"], {"i": recorded["i_syn"]}
        return _time_first(spikes), recorded["v_mem"]

    if learned and config.per_channel:  # one alpha per neuron of the first timed input
        timed = _timed_lazily(lambda x: _sinabs_layer(config, p, device, False, x[:, 0].numel()))
    else:
        timed = _timed(_sinabs_layer(config, p, device, False))
    approximations = base.half_current(
        config, dtype, "input times 1/alpha_syn (the scale a user's weights would hold) "
        "rounded to {dtype} before Sinabs' float32 current",
    )  # fmt: skip
    path = PATH_SINABS
    if config.neuron == "alif":
        path = f"{PATH_SINABS.replace('lif_forward', 'alif_forward')}; {ALIF_V}"
        # The surrogate drifts as far as the threshold adapts, about beta_a tau_a / theta0
        # (r): measured worst drops 0.001 (r 0.5), 0.011 (r 2), 0.065 (r 6), 0.24 (r 20) over
        # T 8-32, tau 2 and 4, both decay_input, 2 seeds; the bound 0.02 r leaves 1.7-4x room.
        # b's reparametrisation rounds in float32: a spike may flip at a tie (1 in 16,000 seen).
        spread = config.beta_a * config.tau_a / config.v_threshold
        approximations.append(base.Approximation(
            ALIF_NOTE, grad_cosine_drop=min(1.0, 0.02 * spread), spike_mismatch=1e-3,
        ))  # fmt: skip
    return base.NeuronBuild(check=check, timed=timed, path=path,
                            approximations=approximations,
                            dw=partial(_alpha_dw, checked) if learned else None)  # fmt: skip


def _build_exodus(
    config: NeuronConfig, device: torch.device, dtype: torch.dtype
) -> base.NeuronBuild:
    from sinabs.activation import MembraneSubtract, SingleExponential, SingleSpike
    from sinabs.exodus.layers import LIF

    p = sinabs_parameters(config, exodus=True)
    layer = LIF(
        tau_mem=p["tau_mem"],
        spike_threshold=p["spike_threshold"],
        spike_fn=SingleSpike,
        reset_fn=MembraneSubtract(),
        surrogate_grad_fn=SingleExponential(grad_width=p["grad_width"], grad_scale=p["grad_scale"]),
        norm_input=p["norm_input"],
    ).to(device)

    timed = _timed(layer)

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # EXODUS's backward refuses gradients through v_mem: V is not offered.
        return timed.canonical(x), None

    return base.NeuronBuild(check=check, timed=timed, path=PATH_EXODUS)


REQUIREMENT = base.Requirement("sinabs", ">=3")
_implementation = partial(base.Implementation, framework="Sinabs", requires=(REQUIREMENT,))
SINABS = _implementation(
    name="sinabs",
    build=_build_sinabs,
    description="sinabs.layers.LIF (IAF for IF, train_alphas for PLIF, tau_syn for CUBA) with "
    "SingleSpike: eager loop",
    neurons=("if", "lif", "plif", "cuba", "alif"),
)
SINABS_EXODUS = _implementation(
    name="sinabs-exodus",
    build=_build_exodus,
    requires=(REQUIREMENT, base.Requirement("sinabs-exodus", module="sinabs.exodus")),
    devices=("cuda",),
    description="sinabs.exodus.layers.LIF: EXODUS CUDA kernels (not run here: not installed)",
)


# ---- ANN-to-SNN conversion ---------------------------------------------------------------------


def convert(ann: nn.Sequential, calibration: list[torch.Tensor], spec: NetworkSpec) -> ConvertedSNN:
    """``sinabs.utils.normalize_weights`` (weights rescaled so each layer's activation
    percentile is 1), then ``sinabs.from_model`` with its defaults: IAFSqueeze neurons,
    MultiSpike (several spikes per step where v allows), MembraneSubtract, threshold 1,
    v >= -1. Run on all T steps at once, batch and time folded."""
    import copy

    import sinabs
    from sinabs.utils import normalize_weights

    device = next(ann.parameters()).device
    ann = copy.deepcopy(ann)  # normalize_weights rescales in place
    names = [name for name, _ in ann.named_children()]
    relus = [i for i, m in enumerate(ann) if isinstance(m, nn.ReLU)]
    params = [max(j for j in range(i) if isinstance(ann[j], (nn.Conv2d, nn.Linear))) for i in relus]
    normalize_weights(
        ann,
        torch.cat(calibration).to(device),
        output_layers=[names[i] for i in relus],
        param_layers=[names[j] for j in params],
        percentile=PERCENTILE,
    )
    converted: dict[int, object] = {}

    @torch.no_grad()
    def readout(x: torch.Tensor, steps: int) -> torch.Tensor:
        if steps not in converted:  # IAFSqueeze folds batch and time: built per T
            converted[steps] = sinabs.from_model(
                ann, input_shape=spec.input_shape, num_timesteps=steps
            ).to(device)
        network = converted[steps]
        network.reset_states()
        folded = x.unsqueeze(1).expand(-1, steps, *x.shape[1:]).flatten(0, 1)
        return network(folded).unflatten(0, (x.shape[0], steps)).transpose(0, 1)

    return ConvertedSNN(
        readout,
        [f"sinabs: normalize_weights(percentile={PERCENTILE}) then from_model defaults "
         "(IAFSqueeze, MultiSpike, MembraneSubtract, threshold 1, min_v_mem -1)"],
    )  # fmt: skip


# ---- the framework's own defaults --------------------------------------------------------------

_LIF = "sinabs/layers/lif.py: LIF.__init__"
DEFAULTS = (
    base.Default("tau_mem", "required (no default)", _LIF, canonical="tau"),
    base.Default("tau_syn", "None (no synaptic current)", _LIF),
    base.Default("spike_threshold", "1.0", _LIF, canonical="v_threshold"),
    base.Default("spike_fn", "MultiSpike (several spikes per step)", _LIF),
    base.Default("reset_fn", "MembraneSubtract(subtract_value=None) (soft reset)", _LIF,
                 canonical="v_reset"),
    base.Default("surrogate_grad_fn", "SingleExponential(grad_width=0.5, grad_scale=1.0)", _LIF,
                 canonical="surrogate"),
    base.Default("norm_input", "True (input scaled by 1 - alpha)", _LIF, canonical="decay_input"),
    base.Default("record_states", "False", _LIF),
)  # fmt: skip

# ---- neuron modules in any model (kernelprof profile) ------------------------------------------

# StatefulLayer is the base sinabs itself treats as its neuron layers (network.py resets them,
# synopcounter.py counts their spikes): LIF, IAF, ALIF, their Recurrent and Squeeze variants,
# ExpLeak, and EXODUS's layers (sinabs.exodus.layers.LIF derives from sinabs' LIF). ExpLeak is a
# leaky integrator with no spikes (LIF with spike_fn=None); it counts as a neuron: it runs the
# same lif_forward loop over T, and as a LIF subclass it could not be told apart by class anyway.
# Its path says that it does not spike (StatefulLayer.does_spike).


def neuron_classes() -> tuple[type, ...]:
    from sinabs.layers import StatefulLayer

    return (StatefulLayer,)


def neuron_time_steps(module, args: tuple) -> int:
    """Batch-first [B, T, ...]; a Squeeze layer takes [B*T, ...] and unflattens it with its own
    ``num_timesteps`` or ``batch_size`` (the other one is -1: SqueezeMixin.squeeze_init)."""
    from sinabs.layers import SqueezeMixin

    x = args[0]
    if isinstance(module, SqueezeMixin):
        if module.num_timesteps > 0:
            return int(module.num_timesteps)
        return int(x.shape[0]) // int(module.batch_size)
    return int(x.shape[1])


def neuron_path(module) -> str:
    from sinabs import layers

    if any(cls.__module__.startswith("sinabs.exodus") for cls in type(module).__mro__):
        return PATH_EXODUS
    kinds = (("ALIFRecurrent", "alif_recurrent"), ("ALIF", "alif_forward"),
             ("LIFRecurrent", "lif_recurrent"), ("LIF", "lif_forward"))  # fmt: skip
    function = next(
        (name for cls, name in kinds if isinstance(module, getattr(layers, cls, ()))), None
    )
    if function is None:
        return f"{type(module).__name__}.forward (a StatefulLayer of its own) on [B, T, ...]"
    path = f"python loop over T: sinabs functional.{function}, eager torch ops per step"
    if not getattr(module, "does_spike", True):
        path += "; no spikes (a leaky integrator)"
    if isinstance(module, layers.SqueezeMixin):
        path += "; batch and time folded in dim 0 (Squeeze), unflattened around the loop"
    return path


def layer_categories() -> dict[type, str]:
    """Sinabs' pooling layers: SumPool2d is an LPPool2d, SpikingMaxPooling2dLayer a Module."""
    from sinabs import layers

    return base.categorised(layers, {"SumPool2d": "pool", "SpikingMaxPooling2dLayer": "pool"})


# IAF, LIF and their Squeeze forms (the same neuron on [B*T, ...]), and ALIF; a subclass that runs
# its own forward (LIFRecurrent, IAFRecurrent, ALIFRecurrent, ALIFSqueeze) or decay is another
# neuron.
_LAYER_KINDS = {"if": "IAF", "lif": "LIF", "if-squeeze": "IAFSqueeze", "lif-squeeze": "LIFSqueeze",
                "alif": "ALIF"}  # fmt: skip
_LAYER_STEPS = ("forward", "alpha_mem_calculated")


def _layer_reset(reset_fn, threshold: float) -> dict:
    """The canonical reset fields of a Sinabs reset_fn (the inverse of _sinabs_layer's)."""
    from sinabs.activation import MembraneReset, MembraneSubtract

    if type(reset_fn) is MembraneSubtract:
        value = reset_fn.subtract_value
        if value is not None and float(value) != threshold:
            raise base.Unsupported(
                f"MembraneSubtract(subtract_value={float(value):g}): it "
                f"subtracts another value than the threshold {threshold:g}"
            )
        return {"v_reset": None, "detach_reset": False}  # V - S*theta, attached
    if type(reset_fn) is MembraneReset:
        if float(reset_fn.reset_value) != 0.0:
            raise base.Unsupported(
                f"MembraneReset(reset_value={reset_fn.reset_value:g}): sinabs "
                "adds reset_value at every step (v*(spikes == 0) + value)"
            )
        return {"v_reset": 0.0, "detach_reset": True}  # (spikes == 0) has no gradient
    raise base.Unsupported(f"reset_fn {type(reset_fn).__name__}: the canonical resets are "
                           "MembraneSubtract and MembraneReset(0)")  # fmt: skip


def _layer_surrogate(surrogate_grad_fn, threshold: float) -> float:
    """piecewise_exp's alpha of SingleExponential(grad_width, grad_scale=1/2): 1/(theta w)."""
    from sinabs.activation import SingleExponential

    name = type(surrogate_grad_fn).__name__
    if type(surrogate_grad_fn) is not SingleExponential:
        raise base.Unsupported(f"surrogate_grad_fn {name}: only SingleExponential "
                               "(piecewise_exp) has a canonical match")  # fmt: skip
    if not math.isclose(float(surrogate_grad_fn.grad_scale), 0.5, rel_tol=1e-6):
        raise base.Unsupported(f"SingleExponential(grad_scale={surrogate_grad_fn.grad_scale:g}):"
                               " piecewise_exp(alpha) is (alpha/2) exp(-alpha|x|), grad_scale "
                               "0.5")  # fmt: skip
    return 1.0 / (threshold * float(surrogate_grad_fn.grad_width))


def layer_config(module) -> NeuronConfig:
    """The canonical neuron a Sinabs ``IAF``, ``LIF`` (or its Squeeze form) or ``ALIF`` computes
    with its settings (see :class:`base.FasterPaths`; the inverse of :func:`sinabs_parameters`):
    IAF is IF; LIF is LIF (tau = 1/(1 - alpha_mem), decay_input = norm_input) or, with
    ``train_alphas``, PLIF at its current alpha_mem (k = 1 - alpha_mem), and with ``tau_syn``
    CUBA (tau_syn = 1/(1 - alpha_syn); Sinabs' i_syn = alpha_syn (i_syn + x) is alpha_syn times
    the canonical current, a scale of the input that the user's weights hold); SingleSpike,
    reset MembraneSubtract (soft) or MembraneReset(0) (hard, detached), SingleExponential with
    grad_scale 1/2 (piecewise_exp). ALIF computes the canonical ALIF only approximately: the
    reason names it. Unsupported, with why, for anything else."""
    from sinabs import layers

    kind = base.node_kind(module, layers, _LAYER_KINDS, _LAYER_STEPS).removesuffix("-squeeze")
    if kind == "alif":
        _alif_reason(module)
    common = _spiking_fields(module, base.one_value(_threshold(module), "spike_threshold"))
    alpha_mem = module.alpha_mem_calculated  # the decay the layer multiplies by, as it does
    a = base.one_value(alpha_mem, "alpha_mem")
    syn = _synapse_decay(module)
    if kind == "if" or (a == 1.0 and not module.norm_input):
        if syn is not None:
            raise base.Unsupported("IF with a synaptic current (tau_syn): no canonical neuron")
        return make_config("if", **common)
    if module.train_alphas and base.learned(alpha_mem):
        if syn is not None:
            raise base.Unsupported("trained alphas with tau_syn: kernelprof's CUBA has fixed "
                                   "decays")  # fmt: skip
        if not 0.0 < a < 1.0:
            raise base.Unsupported(f"learned alpha_mem={a:g}: the decay 1 - alpha is not in (0, 1)")
        return make_config("plif", tau=1.0 / (1.0 - a), decay_input=bool(module.norm_input),
                           **common)  # fmt: skip
    if not 0.0 <= a < 1.0:
        raise base.Unsupported(f"alpha_mem={a:g}: not in [0, 1) (norm_input scales by 1 - alpha)")
    fields = {} if syn is None else {"tau_syn": 1.0 / (1.0 - syn)}
    return make_config("cuba" if fields else "lif", tau=1.0 / (1.0 - a), neuron_fields=fields,
                       decay_input=bool(module.norm_input), **common)  # fmt: skip


def _threshold(module):
    return module.b0 if hasattr(module, "b0") else module.spike_threshold  # ALIF's is b0


def _spiking_fields(module, threshold: float) -> dict:
    """The canonical threshold, reset and surrogate of a Sinabs layer (SingleSpike only)."""
    from sinabs.activation import SingleSpike

    if module.spike_fn is not SingleSpike and module.spike_fn is not None:
        spike_fn = getattr(module.spike_fn, "__name__", repr(module.spike_fn))
        raise base.Unsupported(
            f"spike_fn {spike_fn}: only SingleSpike fires one spike a step "
            "on v >= theta (MultiSpike, the default, fires several)"
        )
    if module.spike_fn is None:
        raise base.Unsupported("spike_fn None: no spikes (a leaky integrator)")
    if module.min_v_mem is not None:
        raise base.Unsupported(f"min_v_mem={float(module.min_v_mem):g}: v_mem clipped every step")
    if base.learned(_threshold(module)):
        raise base.Unsupported("a learned spike_threshold")
    if threshold <= 0:
        raise base.Unsupported(f"spike_threshold={threshold:g} <= 0")
    return dict(v_threshold=threshold, surrogate="piecewise_exp",
                alpha=_layer_surrogate(module.surrogate_grad_fn, threshold),
                **_layer_reset(module.reset_fn, threshold))  # fmt: skip


def _synapse_decay(module) -> float | None:
    """alpha_syn, the synaptic current's decay (None: no tau_syn); fixed, in (0, 1)."""
    value = getattr(module, "alpha_syn_calculated", None)
    if value is None:
        return None
    if module.train_alphas and base.learned(value):  # (tau_syn itself, as tau_mem, is read now)
        raise base.Unsupported("a trained alpha_syn: kernelprof's CUBA has a fixed tau_syn")
    syn = base.one_value(value, "alpha_syn")
    if not 0.0 < syn < 1.0:
        raise base.Unsupported(f"alpha_syn={syn:g}: not in (0, 1)")
    return syn


def _alif_reason(module) -> None:
    """A Sinabs ALIF's reason: the canonical ALIF it computes but for the threshold's gradient
    and the surrogate's width (ALIF_NOTE); b = rho b + (1 - rho) S is (1 - rho)/rho times A_d,
    so beta_a = adapt_scale (1 - rho)/rho and tau_a = 1/(1 - rho)."""
    if module.train_alphas or module.tau_syn is not None:
        raise base.Unsupported("ALIF with trained alphas or a tau_syn: no canonical neuron")
    theta0 = base.one_value(module.b0, "spike_threshold")
    common = _spiking_fields(module, theta0)
    a = base.one_value(module.alpha_mem_calculated, "alpha_mem")
    rho = base.one_value(module.alpha_adapt_calculated, "alpha_adapt")
    if not 0.0 <= a < 1.0 or not 0.0 < rho < 1.0:
        raise base.Unsupported(f"alpha_mem={a:g}, alpha_adapt={rho:g}: not in (0, 1)")
    beta_a = base.one_value(module.adapt_scale, "adapt_scale") * (1.0 - rho) / rho
    reset = "soft reset" if common["v_reset"] is None else "hard reset to 0"
    raise base.Unsupported(
        f"ALIF computes the canonical ALIF (tau {1 / (1 - a):.4g}, tau_a {1 / (1 - rho):.4g}, "
        f"beta_a {beta_a:.4g}, theta0 {theta0:g}, {reset}, "
        f"{'decay_input' if module.norm_input else 'input not decayed'}) only approximately: "
        "SingleSpike passes the threshold no gradient, and its surrogate widens with the "
        "adapted threshold"
    )


def canonical_layer(module, args: tuple, kwargs: dict) -> NeuronConfig:
    """No Sinabs call is [T, ...] time first as kernelprof's kernels take it: says why (after
    the neuron's own reason, where it has one)."""
    from sinabs.layers import SqueezeMixin

    layer_config(module)
    if isinstance(module, SqueezeMixin):
        raise base.Unsupported("batch and time folded into dim 0 ([B*T, ...], Squeeze), not "
                               "[T, ...] time first")  # fmt: skip
    raise base.Unsupported("batch-first [B, T, ...], not [T, ...] time first (and its v_mem "
                           "is kept between calls until reset_states())")  # fmt: skip


NEURON_LAYERS = base.NeuronLayers(
    package="sinabs",
    classes=neuron_classes,
    time_steps=neuron_time_steps,
    path=neuron_path,
    categories=layer_categories,
    faster=base.FasterPaths(canonical=canonical_layer, config=layer_config),
)

FRAMEWORK = base.Framework(
    name="sinabs",
    display="Sinabs",
    requires=(REQUIREMENT,),
    implementations=(SINABS, SINABS_EXODUS),
    converters={"sinabs": convert},
    defaults=DEFAULTS,
    description="batch-first LIF layers; EXODUS CUDA kernels where sinabs-exodus is built",
    neuron_layers=NEURON_LAYERS,
)
