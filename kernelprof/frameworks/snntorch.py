"""snnTorch: its ``snn.Leaky`` neuron (looped over T, as its users do) as LIF, IF (beta = 1)
and PLIF (``learn_beta=True``), and the e2e networks.

The timed build is the loop of snnTorch's tutorials: ``mem = lif.reset_mem()``, then
``spk, mem = lif(x[t], mem)`` for each step and ``torch.stack`` of the spikes; the checking build
also stacks ``mem`` (V after reset where it is V). The input scaling the mapping needs (X/tau,
see below) is what a user's synapse weights would hold, so it is applied to the input before the
timed loop (``TimedBuild.prepare``), not inside it.

What snnTorch 1.0.0 does, read from its sources (``_neurons/leaky.py``, ``_neurons/neurons.py``,
``surrogate.py``), with U its membrane ``mem``, r the reset signal, s the spike:

* One step per call: r = Heaviside(U_prev - theta) *detached* (``mem_reset``), then
  'zero':     U = beta * (1 - r) * U_prev + I
  'subtract': U = beta * U_prev + I - r * theta
  s = spike_grad(U - theta), which fires on U > theta (strict; the canonical model fires on >=).
  With ``reset_delay=False`` the reset of this step is applied at once, through the *attached*
  spike: U <- U - (s - r) * U ('zero') or U - (s - r) * theta ('subtract'); the ``- r`` undoes
  the reset already applied from U_prev ("avoid double reset"). With ``reset_delay=True`` the
  returned U is H (before reset) and the reset happens at the next step through the detached r.
* Hence, with beta = 1 - 1/tau and I = X/tau (decay_input) or X:
  hard reset to 0, detach_reset=False: 'zero', reset_delay=False. r is always 0 when theta >= 0
  (U after reset is 0 or H <= theta), so U is the canonical V after reset and the reset's
  gradient flows through s, as in the canonical model (dV/dS = -H).
  hard reset to 0, detach_reset=True: 'zero', reset_delay=True. r of step t equals s of step t-1,
  so U_prev * (1 - r) is V after reset with the spike detached; the returned U is H, not V, so
  no V is returned.
  soft reset, detach_reset=False: 'subtract', reset_delay=False; exact while V after reset stays
  <= theta. Where V after reset > theta (H > 2 theta for theta > 0), r = 1 at the next step and
  snnTorch subtracts theta before firing, so it fires on H > 2 theta there and evaluates the
  surrogate at H - 2 theta: an approximation, recorded in ``approximations``.
  soft reset, detach_reset=True: not expressible (reset_delay=False keeps the spike's gradient in
  the reset; reset_delay=True subtracts theta undecayed: beta * H + I - theta).
* snnTorch resets to 0 only and its leak beta * U has no rest potential, so a hard reset to
  V_r != 0 is unsupported. beta is clamped to [0, 1], so tau < 1 is unsupported.
* Surrogates: atan(alpha) is the canonical atan; fast_sigmoid(slope=alpha) is the canonical
  superspike; sigmoid(slope=alpha) computes slope * e^(-slope x) / (e^(-slope x) + 1)^2, the
  canonical sigmoid' in exact arithmetic, but e^(-slope x) overflows to inf for very negative x
  and inf/inf gives NaN gradients there (recorded in ``approximations``). There is no built-in
  piecewise-exponential surrogate (``spike_rate_escape`` is centred at x = 1).
* Spikes come out as float32 whatever the input dtype (``(x > 0).float()``), so for half inputs
  the membrane is float32 from the first reset on; spikes are cast back to the input's dtype.
* IF is ``Leaky(beta=1.0)`` with the input as it is (the reset cases as above).
* PLIF is ``Leaky(beta=1 - 1/tau0, learn_beta=True)``: U = beta U_prev + I, the canonical
  decay_input=False charge with 1 - k = beta learned (clamped to [0, 1], whose gradient is 1
  inside). dw = dbeta * dbeta/dw = -k (1 - k) dbeta. decay_input=True would need the input
  scaled by the same learned k (X k), which Leaky does not do: unsupported. Per channel, beta
  has one value per neuron of a [N] step (it broadcasts over the last dimension).
* CUBA is ``Synaptic(alpha=1 - 1/tau_syn, beta=1 - 1/tau)``: syn = alpha syn + I, then
  mem = beta mem + syn, so syn is the canonical current I[t] and mem LIF's membrane with input
  I[t] (decay_input=False; decay_input scales the input by 1/tau, which the linear current
  carries). Its reset rules are Leaky's (the same ``mem_reset`` and reset_delay code, and
  "zero" resets mem only, never syn), except that the delayed zero reset (reset_delay=True,
  which detach_reset needs) clears beta mem + syn, the step's current with it: unsupported.
  Its users loop ``spk, syn, mem = lif(x[t], syn, mem)``.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from kernelprof.frameworks import base
from kernelprof.frameworks.networks import LayerPlan, SpikingNetwork, step_layer
from reference_kernels.model import NeuronConfig, make_config

REQUIREMENT = base.Requirement("snntorch", ">=0.9,<2")
PATH = "eager PyTorch: Python loop over T of snn.Leaky (a handful of aten ops per step), autograd"
TIE_NOTE = "fires on H > theta, not >= (snnTorch's surrogates compute (x > 0).float())"


def leaky_kwargs(config: NeuronConfig) -> dict:
    """``snn.Leaky`` keyword arguments for ``config`` (without the surrogate); raises
    :class:`Unsupported` where snnTorch cannot express it (see the module docstring)."""
    if config.neuron == "plif" and config.decay_input:
        raise base.Unsupported(
            "PLIF with decay_input needs the input scaled by the same learned k "
            "(H = V + (X - V) k); snn.Leaky learns beta = 1 - k but adds its input unscaled"
        )
    if config.neuron in ("lif", "cuba") and config.tau < 1:
        raise base.Unsupported(
            f"beta = 1 - 1/tau = {1 - 1 / config.tau:g} < 0 for tau={config.tau:g}, and "
            "snnTorch clamps beta to [0, 1]"
        )
    if config.v_reset is not None and config.v_reset != 0:
        raise base.Unsupported(
            f"snnTorch resets to 0 only (its leak beta*U has no rest potential), "
            f"got v_reset={config.v_reset:g}"
        )
    if config.v_reset is None:
        if config.detach_reset:
            raise base.Unsupported(
                "snnTorch cannot detach a subtractive reset: with reset_delay=False the reset "
                "term (spk - reset) * threshold keeps the spike's gradient, and reset_delay=True "
                "subtracts the threshold after the decay (beta*H + I - theta, not "
                "beta*(H - theta) + I)"
            )
        mechanism, reset_delay = "subtract", False
    elif config.detach_reset and config.neuron == "cuba":
        raise base.Unsupported(
            "detach_reset with a hard reset needs reset_delay=True, and Synaptic's delayed zero "
            "reset clears the whole next membrane, beta mem + syn, dropping that step's current "
            "(snntorch/_neurons/synaptic.py: _base_zero), where Leaky's keeps it"
        )
    elif config.detach_reset:
        # The delayed reset multiplies by the detached (1 - reset): canonical detach_reset=True.
        mechanism, reset_delay = "zero", True
    else:
        if config.v_threshold < 0:
            raise base.Unsupported(
                "with reset_delay=False snnTorch re-applies the reset when V after reset (0) "
                f"exceeds the threshold, which happens for v_threshold={config.v_threshold:g} < 0"
            )
        mechanism, reset_delay = "zero", False
    return {
        "beta": 1.0 if config.neuron == "if" else 1.0 - 1.0 / config.tau,
        "threshold": float(config.v_threshold),
        "reset_mechanism": mechanism,
        "reset_delay": reset_delay,
    }


def spike_grad(config: NeuronConfig, dtype: torch.dtype) -> tuple[object, list[str]]:
    """snnTorch's surrogate for ``config`` and the approximations it brings."""
    from snntorch import surrogate

    alpha = float(config.alpha)
    if config.surrogate == "atan":
        return surrogate.atan(alpha=alpha), []
    if config.surrogate == "superspike":
        return surrogate.fast_sigmoid(slope=alpha), []
    if config.surrogate == "sigmoid":
        # exp(-slope*x) overflows below -log(max)/slope; for half inputs the first step runs
        # in half, later ones in float32 (see the module docstring), so this is the worst case.
        limit = math.log(torch.finfo(dtype).max) / alpha
        # A NaN is WRONG whatever is declared: this says where one would come from, and
        # allows no other difference (bounds 0).
        return surrogate.sigmoid(slope=alpha), [
            base.Approximation(
                "sigmoid surrogate: snnTorch computes slope*exp(-slope*x)/(exp(-slope*x)+1)^2, "
                f"which gives NaN gradients where H - theta < -{limit:.4g} (exp overflows in "
                f"{str(dtype).removeprefix('torch.')}); the canonical sigmoid' is ~0 there"
            )
        ]
    raise base.Unsupported(
        f"snnTorch 1.0.0 has no built-in {config.surrogate} surrogate (spike_rate_escape is "
        "centred at x = 1; a custom_surrogate would be kernelprof's code, not snnTorch's)"
    )


def _leaky(config: NeuronConfig, kwargs: dict, grad, device: torch.device, dtype: torch.dtype,
           x: torch.Tensor | None = None):  # fmt: skip
    """A Leaky; PLIF's learns beta (one, or one per neuron of x's steps)."""
    import snntorch as snn

    if config.neuron == "cuba":
        return snn.Synaptic(alpha=config.syn_decay, spike_grad=grad,
                            **kwargs).to(device=device, dtype=dtype)  # fmt: skip
    if config.neuron != "plif":
        return snn.Leaky(spike_grad=grad, **kwargs).to(device=device, dtype=dtype)
    beta = torch.tensor(kwargs["beta"])
    if config.per_channel:
        beta = beta.expand(x.shape[-1]).clone()
    made = snn.Leaky(spike_grad=grad, learn_beta=True, **{**kwargs, "beta": beta})
    return made.to(device=device, dtype=dtype)


def _canonical_dw(checked: list):
    """PLIF's dw from the checking Leaky's learned beta = 1 - k."""
    return base.retention_dw(checked[0].beta if checked else None)


def _path(config: NeuronConfig, dtype: torch.dtype) -> str:
    path = PATH.replace("snn.Leaky", "snn.Synaptic") if config.neuron == "cuba" else PATH
    if dtype.itemsize == 4:
        return path
    current = f", the current syn in {str(dtype).removeprefix('torch.')}" if config.neuron == \
        "cuba" else ""  # fmt: skip
    return f"{path}; membrane float32 after the first step{current}"


def _double_reset(config: NeuronConfig) -> base.Approximation:
    """Soft reset's approximation: snnTorch's reset rules re-apply the reset where V after
    reset exceeds theta."""
    # Only neuron-steps with H > 2*theta are affected: 0.4-0.7 % of spike values with
    # kernelprof's inputs (T = 8 to 32), dX cosine 0.996-0.997; the bounds leave 3x room.
    # CUBA's current keeps pushing after a spike, so more steps pass 2*theta: up to 6.4 %,
    # dX cosine down to 0.926 (T 8-32, tau_syn 1-8, tau 2 and 4, both decay_input, three
    # surrogates, 2 seeds); its bounds leave about 2x room.
    bound = 0.15 if config.neuron == "cuba" else 0.02
    return base.Approximation(
        "soft reset: where V after reset exceeds theta (H > 2*theta), snnTorch's "
        "reset_delay=False subtracts theta again before the next spike decision, so that "
        "step fires on H > 2*theta and its surrogate is taken at H - 2*theta",
        spike_mismatch=bound, grad_cosine_drop=bound, v_diff=2.0 * abs(config.v_threshold),
    )  # fmt: skip


def _tutorial_loop(timed_lif, *, synaptic: bool):
    """The timed call: snnTorch's tutorial loop over T, as its users write it (tutorial 5's
    for Synaptic), on the Leaky ``timed_lif(current)`` gives."""

    def timed(current: torch.Tensor) -> torch.Tensor:
        lif = timed_lif(current)
        mem = lif.reset_mem()
        spk_rec = []
        for step in range(current.shape[0]):
            spk, mem = lif(current[step], mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec)

    def timed_synaptic(current: torch.Tensor) -> torch.Tensor:
        lif = timed_lif(current)
        syn, mem = lif.reset_mem()
        spk_rec = []
        for step in range(current.shape[0]):
            spk, syn, mem = lif(current[step], syn, mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec)

    return timed_synaptic if synaptic else timed


def build(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
    kwargs = leaky_kwargs(config)
    grad, approximations = spike_grad(config, dtype)
    learned = config.neuron == "plif"
    make = partial(_leaky, config, kwargs, grad, device, dtype)

    build_lif = None if learned else make()
    checked: list = []  # PLIF: the checking call's Leaky (a fresh one per call, beta at w0)
    # PLIF: the timed build's Leaky, made at its first call (sized by its input)
    timed_lif = base.made_once(make) if learned else lambda _current: build_lif
    scale = 1.0 / config.tau if config.neuron in ("lif", "cuba") and config.decay_input else 1.0
    returns_v = not kwargs["reset_delay"]  # with reset_delay=True, mem is H (before reset)
    if config.v_reset is None:
        approximations.append(_double_reset(config))
    approximations += base.half_current(
        config, dtype, "current syn kept in {dtype}, not float32 (Synaptic's alpha buffer "
        "takes the module's dtype)",
    )  # fmt: skip

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return x * scale if scale != 1.0 else x

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        current = prepare(x)
        lif = make(x) if learned else build_lif
        checked[:] = [lif]
        state = lif.reset_mem()  # no state leaks between sequences: mem, or (syn, mem)
        spikes, membrane, currents = [], [], []
        for t in range(current.shape[0]):
            if isinstance(state, tuple):  # Synaptic
                spk, syn, mem = lif(current[t], *state)
                state = (syn, mem)
                currents.append(syn)
            else:
                spk, mem = lif(current[t], state)
                state = mem
            spikes.append(spk)
            membrane.append(mem)
        s = torch.stack(spikes).to(x.dtype)
        v = torch.stack(membrane) if returns_v else None
        if not currents:
            return s, v
        # Synaptic's syn is the canonical I[t] of the scaled input (X / tau with decay_input)
        return s, v, {"i": torch.stack(currents) / scale}

    cuba = config.neuron == "cuba"

    def canonical_spikes(spikes: torch.Tensor) -> torch.Tensor:
        return spikes.to(dtype)  # snnTorch's spikes are float32 whatever the input dtype

    return base.NeuronBuild(
        check=check,
        timed=base.TimedBuild(
            run=_tutorial_loop(timed_lif, synaptic=cuba),
            prepare=prepare,
            spikes=canonical_spikes,
            code="syn, mem = lif.reset_mem(); for t: spk, syn, mem = lif(x[t], syn, mem); "
            "torch.stack(spks)"
            if cuba
            else "mem = lif.reset_mem(); for t: spk, mem = lif(x[t], mem); torch.stack(spks)",
            module=build_lif,
        ),
        path=_path(config, dtype),
        approximations=approximations,
        tie_notes=[TIE_NOTE],
        dw=partial(_canonical_dw, checked) if learned else None,
    )


# ---- e2e network -------------------------------------------------------------------------------


class SnnTorchNetwork(SpikingNetwork):
    """torch.nn layers and ``snn.Leaky`` applied step by step in a Python loop over T, as
    snnTorch's tutorials write a network's forward. The input scaling of the mapping (X/tau for
    decay_input) multiplies the synaptic current before each Leaky."""

    framework = "snntorch"
    neurons = ("if", "lif", "plif", "cuba")  # CUBA: snn.Synaptic, stepped as Leaky is
    default_neurons = ("lif", "cuba")
    no_default_neuron = (
        "snnTorch has no IF or PLIF neuron of its own to take at its defaults: its users write "
        "Leaky(beta=1) or Leaky(learn_beta=True) with a beta of their choosing"
    )

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        if layer.category != "lif":
            return step_layer(layer)

        config = self.lif_config
        kwargs = leaky_kwargs(config)
        grad, approximations = spike_grad(config, torch.float32)
        for note in [*approximations, TIE_NOTE]:
            self.note_once(f"{self.neuron.upper()}: {note}")
        if config.soft_reset and not any(n.startswith("LIF: soft reset:") for n in self.notes):
            self.notes.append(
                "LIF: soft reset: where V after reset exceeds theta (H > 2*theta), snnTorch "
                "subtracts theta again before the next spike decision (see "
                "kernelprof/frameworks/snntorch.py)"
            )
        decays_input = getattr(config, "decay_input", False)  # IF has no decay
        self.input_scale = 1.0 / config.tau if decays_input else 1.0
        return _leaky(config, kwargs, grad, torch.device("cpu"), torch.float32)

    def make_default_lif(self, layer: LayerPlan) -> nn.Module:
        self.input_scale = 1.0  # snnTorch adds the synaptic current undecayed
        return default_lif()

    def make_default_neuron(self, layer: LayerPlan) -> nn.Module:
        self.input_scale = 1.0
        self.note_once(f"CUBA: snn.Synaptic(alpha={DOC_SYNAPTIC['alpha']}, "
                       f"beta={DOC_SYNAPTIC['beta']}), the values of its docstring's example "
                       f"({_SYNAPTIC}), every other argument at its default")  # fmt: skip
        return default_synaptic()

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        # Leaky's state is mem; Synaptic's is (syn, mem): spk, syn, mem = lif(x, syn, mem)
        states = {
            index: module.reset_mem()
            for index, (category, module) in enumerate(self.layers)
            if category == "lif"
        }
        outputs = []
        for t in range(x_seq.shape[0]):
            y = x_seq[t]
            for index, (category, module) in enumerate(self.layers):
                if category != "lif":
                    y = module(y)
                    continue
                current = y * self.input_scale if self.input_scale != 1.0 else y
                y, states[index] = step_neuron(module, current, states[index])
            outputs.append(y)
        return torch.stack(outputs).mean(0)


# ---- the framework's own defaults --------------------------------------------------------------

_LEAKY = "snntorch/_neurons/leaky.py: Leaky.__init__"
DEFAULTS = (
    base.Default("beta", "required (no default; snnTorch's tutorials use 0.95)", _LEAKY),
    base.Default("threshold", "1.0", _LEAKY, canonical="v_threshold"),
    base.Default("spike_grad", "None, which is surrogate.atan(alpha=2.0)",
                 "snntorch/_neurons/neurons.py: SpikingNeuron.__init__ (spike_grad == None -> "
                 "atan()); snntorch/surrogate.py: atan(alpha=2.0)", canonical="surrogate"),
    base.Default("reset_mechanism", "'subtract' (soft reset, V - theta)", _LEAKY,
                 canonical="v_reset"),
    base.Default("reset_delay", "True (the reset of step t applies at step t+1)", _LEAKY,
                 canonical="detach_reset"),
    base.Default("input", "added undecayed: U = beta*U + I (no 1/tau on the input)",
                 "snntorch/_neurons/leaky.py: Leaky._base_state_function", canonical="decay_input"),
)  # fmt: skip

# beta has no default; snnTorch's tutorials (tutorial_5, "Training SNNs") write beta = 0.95.
TUTORIAL_BETA = 0.95


def default_lif() -> nn.Module:
    """``snn.Leaky(beta=0.95)``: the tutorials' beta, every other argument at its default
    (DEFAULTS: atan surrogate, subtractive reset, reset_delay)."""
    import snntorch as snn

    return snn.Leaky(beta=TUTORIAL_BETA)


def step_neuron(lif, current: torch.Tensor, state):
    """One step of a Leaky (its state mem) or a Synaptic (its state (syn, mem)), as the
    tutorials call each: (spikes, the next state)."""
    if isinstance(state, tuple):
        spike, *following = lif(current, *state)
        return spike, tuple(following)
    return lif(current, state)


def _stepped(lif, x: torch.Tensor) -> torch.Tensor:
    """[T, N] -> [T, N]: ``lif`` from its reset state, stepped over T."""
    state = lif.reset_mem()
    spikes = []
    for current in x:
        spike, state = step_neuron(lif, current, state)
        spikes.append(spike)
    return torch.stack(spikes).to(x.dtype)


def default_spikes(x: torch.Tensor) -> torch.Tensor:
    """[T, N] -> [T, N]: the default Leaky stepped over T as the tutorials loop it."""
    return _stepped(default_lif(), x)


# Synaptic's alpha and beta have no defaults either; its docstring's example network writes
# alpha = 0.9, beta = 0.5 (snntorch/_neurons/synaptic.py).
_SYNAPTIC = "snntorch/_neurons/synaptic.py: Synaptic"
DOC_SYNAPTIC = {"alpha": 0.9, "beta": 0.5}
SYNAPTIC_DEFAULTS = (
    base.Default("alpha", "required (no default; its docstring's example uses 0.9)", _SYNAPTIC,
                 canonical="tau_syn"),
    base.Default("beta", "required (no default; its docstring's example uses 0.5)", _SYNAPTIC,
                 canonical="tau"),
    *(d for d in DEFAULTS if d.setting not in ("beta", "input")),
    base.Default("input", "added undecayed: syn = alpha*syn + I, mem = beta*mem + syn",
                 "snntorch/_neurons/synaptic.py: Synaptic._base_state_function",
                 canonical="decay_input"),
)  # fmt: skip


def default_synaptic() -> nn.Module:
    """``snn.Synaptic(alpha=0.9, beta=0.5)``: the docstring's values, every other argument at its
    default (atan surrogate, subtractive reset, reset_delay)."""
    import snntorch as snn

    return snn.Synaptic(**DOC_SYNAPTIC)


def default_synaptic_spikes(x: torch.Tensor) -> torch.Tensor:
    """[T, N] -> [T, N]: the default Synaptic stepped over T."""
    return _stepped(default_synaptic(), x)


# ---- neuron modules in any model (kernelprof profile) ------------------------------------------

# Every snnTorch neuron derives from SpikingNeuron (Leaky, Synaptic, Alpha, Lapicque, RLeaky,
# RSynaptic, SLSTM, SConv2dLSTM, StateLeaky, LinearLeaky, AssociativeLeaky, DeltaLeaky) except
# LeakyParallel, a plain nn.Module around nn.RNN.
_NEURON_BASES = ("SpikingNeuron", "LeakyParallel")
# The neurons that take the whole [T, B, ...] sequence in one call, and what that call runs (the
# first that matches: LinearLeaky is a StateLeaky). Every other neuron is one step per call.
_SEQUENCE_NEURONS = (
    ("LinearLeaky", "multi-step: nn.Linear, then a causal depthwise conv1d over T with the "
     "exponential kernel (no reset) and the threshold; one call per sequence"),
    ("StateLeaky", "multi-step: causal depthwise conv1d over T with the exponential kernel "
     "(no reset), then the threshold; one call per sequence"),
    ("AssociativeLeaky", "multi-step: projections, cumulative sums and einsum over T "
     "(vectorised), then the threshold; one call per sequence"),
    ("LeakyParallel", "multi-step: torch.nn.RNN (ReLU) over T (cuDNN on CUDA), then the "
     "threshold; one call per sequence"),
)  # fmt: skip


def neuron_classes() -> tuple[type, ...]:
    import snntorch

    return base.classes_in(snntorch, _NEURON_BASES)


def _sequence_path(module) -> str | None:
    import snntorch

    for name, path in _SEQUENCE_NEURONS:
        cls = getattr(snntorch, name, None)
        if isinstance(cls, type) and isinstance(module, cls):
            return path
    return None


def neuron_time_steps(module, args: tuple) -> int | None:
    """[T, B, ...] for the sequence neurons; one step per call for the others."""
    return int(args[0].shape[0]) if _sequence_path(module) else None


def neuron_path(module) -> str:
    return _sequence_path(module) or (
        f"per-step call: {type(module).__name__}.forward, eager torch ops (the script loops over T)"
    )


def loss_functions() -> tuple[tuple[type, str], ...]:
    """snntorch.functional's losses: objects called as ``loss_fn(spk_rec, targets)`` (the rate
    and count losses share ``LossFunctions.__call__``), not modules."""
    from snntorch.functional import loss

    return tuple((cls, "__call__") for cls in base.classes_in(
        loss, ("LossFunctions", "mse_temporal_loss", "ce_temporal_loss")))  # fmt: skip


# snnTorch's surrogate factories (snntorch.surrogate) -> the canonical surrogate they compute,
# read from the closure snnTorch returns (its one free variable: alpha or slope).
_LEAKY_SURROGATES = {"atan": "atan", "fast_sigmoid": "superspike", "sigmoid": "sigmoid"}


def _leaky_surrogate(spike_grad) -> tuple[str, float]:
    factory = getattr(spike_grad, "__qualname__", "").removesuffix(".<locals>.inner")
    cells = getattr(spike_grad, "__closure__", None) or ()
    values = [cell.cell_contents for cell in cells]
    if getattr(spike_grad, "__module__", "") != "snntorch.surrogate" or \
            factory not in _LEAKY_SURROGATES or len(values) != 1 or \
            not isinstance(values[0], (int, float)):  # fmt: skip
        raise base.Unsupported(f"spike_grad {factory or type(spike_grad).__name__}: no "
                               "canonical match")  # fmt: skip
    return _LEAKY_SURROGATES[factory], float(values[0])


def _leaky_reset(module) -> dict:
    """The canonical reset fields of a Leaky's reset_mechanism and reset_delay (the inverse of
    :func:`leaky_kwargs`)."""
    mechanism, delay = module.reset_mechanism, bool(module.reset_delay)
    if mechanism == "zero":
        return {"v_reset": 0.0, "detach_reset": delay}
    if mechanism == "subtract" and delay:
        raise base.Unsupported("reset_mechanism='subtract' with reset_delay: snnTorch subtracts "
                               "theta after the decay (beta*H + I - theta)")  # fmt: skip
    if mechanism == "subtract":
        raise base.Unsupported("reset_mechanism='subtract': snnTorch subtracts theta again where "
                               "V after reset exceeds it (H > 2 theta)")  # fmt: skip
    raise base.Unsupported(f"reset_mechanism={mechanism!r}: no canonical reset")


def leaky_config(module) -> NeuronConfig:
    """The canonical neuron an ``snn.Leaky`` or ``snn.Synaptic`` computes with its settings (see
    :class:`base.FasterPaths`): for Leaky, IF (beta = 1), LIF with the input not decayed
    (beta = 1 - 1/tau) or, with ``learn_beta``, PLIF (k = 1 - beta now); for Synaptic, CUBA
    (tau_syn = 1/(1 - alpha)); the inverse of :func:`leaky_kwargs`. It fires on H > theta (the
    canonical model on H >= theta): the two differ at exact threshold ties only."""
    import snntorch as snn

    synaptic = _own(module, snn.Synaptic)
    if not synaptic and not _own(module, snn.Leaky):
        raise base.Unsupported(f"{type(module).__name__} is neither snn.Leaky nor snn.Synaptic: "
                               "kernelprof maps snnTorch's Leaky onto IF, LIF and PLIF and its "
                               "Synaptic onto CUBA")  # fmt: skip
    if module.inhibition or module.state_quant:
        raise base.Unsupported("inhibition or state_quant: no canonical match")
    threshold, beta = module.threshold, module.beta
    if isinstance(threshold, nn.Parameter) and threshold.requires_grad:
        raise base.Unsupported("learn_threshold: a learned threshold")
    if not isinstance(beta, torch.Tensor) or beta.numel() != 1:
        raise base.Unsupported("beta is not one value (one per neuron)")
    b = float(beta.detach())
    surrogate, alpha = _leaky_surrogate(module.spike_grad)
    common = dict(v_threshold=float(threshold), surrogate=surrogate, alpha=alpha,
                  **_leaky_reset(module))  # fmt: skip
    if not common["detach_reset"] and common["v_threshold"] < 0:
        raise base.Unsupported("reset_delay=False with a threshold < 0: snnTorch re-applies the "
                               "reset where V after reset (0) exceeds it")  # fmt: skip
    if synaptic:
        return _synaptic_config(module, b, common)
    if isinstance(beta, nn.Parameter) and beta.requires_grad:
        if not 0.0 < b < 1.0:
            raise base.Unsupported(f"learned beta={b:g}: the decay 1 - beta is not in (0, 1)")
        return make_config("plif", tau=1.0 / (1.0 - b), decay_input=False, **common)
    if b == 1.0:
        return make_config("if", **common)
    if not 0.0 <= b < 1.0:
        raise base.Unsupported(f"beta={b:g}: snnTorch clamps beta to [0, 1]")
    return make_config("lif", tau=1.0 / (1.0 - b), decay_input=False, **common)


def _own(module, cls: type) -> bool:
    """Whether ``module`` is a ``cls`` that runs ``cls``'s own forward."""
    return isinstance(module, cls) and type(module).forward is cls.forward


def _synaptic_config(module, beta: float, common: dict) -> NeuronConfig:
    """CUBA from a Synaptic's alpha (the current's decay) and beta (the membrane's)."""
    alpha = module.alpha
    if base.learned(alpha) or base.learned(module.beta):
        raise base.Unsupported("learn_alpha or learn_beta: kernelprof's CUBA has fixed decays")
    if not isinstance(alpha, torch.Tensor) or alpha.numel() != 1:
        raise base.Unsupported("alpha is not one value (one per neuron)")
    a = float(alpha.detach())
    if common["detach_reset"]:
        raise base.Unsupported("reset_delay=True: Synaptic's delayed zero reset clears the "
                               "whole next membrane, beta mem + syn, dropping that step's "
                               "current")  # fmt: skip
    if not 0.0 <= a < 1.0 or not 0.0 <= beta < 1.0:
        raise base.Unsupported(f"alpha={a:g}, beta={beta:g}: CUBA needs both decays in [0, 1) "
                               "(snnTorch clamps them to [0, 1]; 1 never decays)")  # fmt: skip
    return make_config("cuba", tau=1.0 / (1.0 - beta), decay_input=False,
                       neuron_fields={"tau_syn": 1.0 / (1.0 - a)}, **common)  # fmt: skip


def canonical_leaky(module, args: tuple, kwargs: dict) -> NeuronConfig:
    """A Leaky's or Synaptic's call never computes a whole [T, ...] sequence: the script loops
    over T."""
    leaky_config(module)  # another neuron: that reason first
    raise base.Unsupported(f"one time step a call: {type(module).__name__} takes one step's "
                           "input and its states (the script loops over T)")  # fmt: skip


NEURON_LAYERS = base.NeuronLayers(
    package="snntorch",
    classes=neuron_classes,
    time_steps=neuron_time_steps,
    path=neuron_path,
    losses=loss_functions,
    faster=base.FasterPaths(
        canonical=canonical_leaky,
        config=leaky_config,
        # PLIF learns beta = 1 - k: w = logit(1 - beta), its gradient back into beta
        decay=base.LearnedDecay(parameter=lambda leaky: leaky.beta, to_w=base.retention_w),
    ),
)

NEURON = base.Implementation(
    name="snntorch",
    framework="snnTorch",
    build=build,
    requires=(REQUIREMENT,),
    description="snn.Leaky looped over T (beta = 1 - 1/tau, 1 for IF, learned for PLIF; "
    "reset_delay per detach_reset); snn.Synaptic for CUBA",
    neurons=("if", "lif", "plif", "cuba"),
)
FRAMEWORK = base.Framework(
    name="snntorch",
    display="snnTorch",
    requires=(REQUIREMENT,),
    implementations=(NEURON,),
    networks={"snntorch": SnnTorchNetwork},
    no_converter="snnTorch ships no ANN-to-SNN converter",
    defaults=DEFAULTS,
    default_neuron=default_spikes,
    neuron_defaults={"cuba": base.NeuronDefaults(SYNAPTIC_DEFAULTS, default_synaptic_spikes)},
    description="eager PyTorch, one snn.Leaky call per time step",
    neuron_layers=NEURON_LAYERS,
)
