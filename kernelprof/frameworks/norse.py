"""Norse: its multi-step LIF modules mapped onto the canonical LIF, and the e2e network.

The timed build is what Norse's documentation does: ``spikes, state = lif(x)`` with no state
passed (Norse creates its own initial state) and ``record_states`` left at its default, False.
The checking build passes an initial state in the compute precision and, for hard reset,
records the states (``record_states=True``) to expose V after reset.

Read from the Norse 1.1.0 sources (norse/torch/functional/lif.py, lif_box.py, threshold.py,
superspike.py, reset.py and module/snn.py, lift.py):

* ``norse.torch.LIF(p, dt)`` takes [T, N, ...] and loops over ``lif_feed_forward_step`` in Python
  (no fused kernel, no JIT). One step: i' = i + x; v' = v + dt*tau_mem_inv*((v_leak - v) + i');
  i_next = i' - dt*tau_syn_inv*i'; z = heaviside(v' - v_th) with ``torch.gt`` (fires on v' > v_th);
  v_next = (1 - z)*v' + z*v_reset, the reset *not* detached (only the recurrent ``lif_step``
  detaches it). With dt=1 and tau_syn_inv=1 the synaptic current is exactly zero after every
  step, so v' = V + (X - (V - V_r))/tau: the canonical hard reset with decay_input.
  ``record_states=True`` (an argument of Norse's ``SNN`` base module) stacks the state of every
  step, so the checking build returns V after reset.
* Norse's LIF has no subtractive reset, but ``LIFBoxCell`` (the same LIF without the current term)
  takes a ``reset_method``, and Norse ships ``reset_subtract`` = V - z*theta, attached. Soft reset
  therefore runs ``norse.torch.Lift(LIFBoxCell(...))``, Norse's documented way to run a cell over
  time; Lift returns only the last state, so V is None for soft reset.
* decay_input=False has no switch in Norse: the input is multiplied by tau before the call, so
  tau_mem_inv * (tau * X) = X (equal up to float rounding).
* Surrogates (``threshold(x, method, alpha)``): 'super' is 1/(|x| + 1)^2 and ignores alpha in
  1.1.0, i.e. canonical superspike(1) only; 'tanh' is 1 - tanh(kx)^2 = 4*sig(2kx)*(1 - sig(2kx)),
  i.e. canonical sigmoid(4) with k = 2 and no other alpha; 'triangle', 'circ' (alpha^3/(alpha^2 +
  x^2)^1.5) and 'heavi_erfc' (a Gaussian) match none of the canonical surrogates, and nothing
  matches atan or piecewise_exp. Each candidate is checked against the canonical derivative when
  a config is built, so a Norse release that honours alpha in 'super' is picked up.
* detach_reset=True cannot be expressed by the feed-forward modules; raising Unsupported.
* IF is ``norse.torch.IAF(IAFParameters(v_th, v_reset, method, alpha))``: v' = v + x (dt
  unused), z = heaviside(v' - v_th) (torch.gt), v = (1 - z) v' + z v_reset, the reset attached;
  its initial state is v_reset. So the canonical IF with hard reset to any V_r and
  detach_reset=False; IAF has no subtractive reset (soft reset unsupported).
* PLIF is not mapped yet: Norse's LIF is current-based, and a learnable tau_mem_inv in its
  parameter tuple is not a module parameter.
* CUBA is Norse's LIF as it is: the step adds the input to the current first (i' = i + x), the
  membrane charges with i', and the current decays after (i_next = (1 - dt tau_syn_inv) i'),
  so i' is the canonical I[t] = (1 - 1/tau_syn) I[t-1] + X[t] with dt*tau_syn_inv = 1/tau_syn:
  no shift in time (Norse's recorded state i is the decayed (1 - 1/tau_syn) I[t]). Hard reset
  only (LIFBoxCell, the soft-reset route, has no current); decay_input=False scales the input
  by tau as for LIF (the current is linear in it).
* ALIF is ``norse.torch.LSNN`` (lsnn_feed_forward_step): v' = v + dt tau_mem_inv ((v_leak - v)
  + i), the current i of the *previous* step (the input jumps into i at the end of a step), so
  the membrane sees X one step late; the threshold b relaxes to v_th (b' = b + dt
  tau_adapt_inv (v_th - b)), z = heaviside(v' - b'), v = (1 - z) v' + z v_reset (attached),
  b = b' + beta z (attached). With dt tau_syn_inv = 1 the current is X[t-1] exactly, and
  b - v_th = beta_a A: so LSNN's z[t+1] is the canonical S[t] with tau_adapt_inv = 1/tau_a,
  beta = beta_a. The mapping runs T + 1 steps (the input, then a zero row no kept output
  reads) and drops LSNN's first step, as for Spyx's latency; LSNN starts from v = v_leak,
  i = 0, b = v_th, the canonical rest. Hard reset attached, adaptation attached, Norse's
  surrogates only.
"""

from __future__ import annotations

import torch
from torch import nn

from kernelprof.frameworks import base
from kernelprof.frameworks.networks import LayerPlan, SpikingNetwork, step_layer
from reference_kernels.model import IFConfig, LIFConfig, NeuronConfig, make_config, surrogate_grad

# Which Norse threshold method could stand for each canonical surrogate, and the Norse alpha
# it would take. Whether it really is the same derivative is verified by _probe_surrogate.
_CANDIDATES = {
    "superspike": lambda alpha: ("super", alpha),
    "sigmoid": lambda alpha: ("tanh", alpha / 2.0),  # 1 - tanh(kx)^2 = 4 sig(2kx)(1 - sig(2kx))
}
_NO_EQUIVALENT = {
    "atan": "Norse has no atan surrogate ('circ' is alpha^3/(alpha^2 + x^2)^1.5, not a Lorentzian)",
    "piecewise_exp": "Norse has no exponential surrogate (only heaviside, super, triangle, tanh, "
    "circ, heavi_erfc)",
}
_WHY_NOT = {
    "superspike": "Norse's 'super' computes 1/(|x| + 1)^2 whatever its alpha, "
    "so only superspike(alpha=1) maps",
    "sigmoid": "Norse's 'tanh' gives 1 - tanh(kx)^2 = 4*sig(2kx)*(1 - sig(2kx)), "
    "which equals alpha*sig(alpha x)*(1 - sig(alpha x)) only for alpha = 4",
}
# Where the derivatives are compared, in units of x = H - theta.
_PROBE = torch.linspace(-3.0, 3.0, 25, dtype=torch.float64)

PATH_LIF = "python loop: norse.torch.LIF over lif_feed_forward_step (norse 1.1.0: no fused kernel)"
PATH_IAF = "python loop: norse.torch.IAF over iaf_feed_forward_step (norse 1.1.0: no fused kernel)"
PATH_LSNN = (
    "python loop: norse.torch.LSNN over lsnn_feed_forward_step, T + 1 steps (its membrane sees "
    "the input one step late)"
)
PATH_SOFT = (
    "python loop: norse.torch.Lift(LIFBoxCell) with reset_subtract (norse 1.1.0: no fused kernel)"
)
TIE_NOTES = ["fires on H > theta, not >= (norse heaviside is torch.gt)"]


def _probe_surrogate(method: str, norse_alpha: float, config: NeuronConfig) -> bool:
    """Whether Norse's ``threshold(x, method, alpha)`` backward equals the canonical surrogate."""
    from norse.torch.functional.threshold import threshold

    x = _PROBE.clone().requires_grad_()
    threshold(x, method, torch.as_tensor(norse_alpha, dtype=torch.float64)).sum().backward()
    expected = surrogate_grad(_PROBE, config.surrogate, config.alpha)
    return x.grad is not None and torch.allclose(x.grad, expected, rtol=1e-9, atol=1e-12)


def norse_method(config: NeuronConfig) -> tuple[str, float]:
    """The Norse threshold method and alpha whose derivative is the config's surrogate."""
    name, alpha = config.surrogate, config.alpha
    if name in _NO_EQUIVALENT:
        raise base.Unsupported(f"surrogate {name}(alpha={alpha:g}): {_NO_EQUIVALENT[name]}")
    method, norse_alpha = _CANDIDATES[name](alpha)
    if not _probe_surrogate(method, norse_alpha, config):
        raise base.Unsupported(f"surrogate {name}(alpha={alpha:g}): {_WHY_NOT[name]}")
    return method, norse_alpha


REQUIREMENT = base.Requirement("norse", ">=1.0")


def _problems(config: NeuronConfig) -> list[str]:
    problems = []
    if config.neuron == "if" and config.soft_reset:
        problems.append("soft reset: norse.torch.IAF resets to v_reset only (no reset_method)")
    if config.neuron == "alif" and config.soft_reset:
        problems.append("soft reset: norse.torch.LSNN resets to v_reset only")
    if config.neuron == "alif" and config.detach_adaptation:
        problems.append("detach_adaptation: LSNN's threshold b = b' + beta z keeps the spike's "
                        "gradient")  # fmt: skip
    if config.neuron == "cuba" and config.soft_reset:
        problems.append("soft reset: norse.torch.LIF resets to v_reset only, and LIFBoxCell "
                        "(reset_subtract) has no synaptic current")  # fmt: skip
    if config.detach_reset and config.neuron == "if":
        problems.append("detach_reset=True: norse.torch.IAF keeps the reset attached")
    elif config.detach_reset:
        problems.append(
            "detach_reset=True: norse.torch.LIF and LIFBoxCell keep the reset attached "
            "(only the recurrent lif_step detaches it, and it needs weight matrices)"
        )
    try:
        norse_method(config)
    except base.Unsupported as error:
        problems.append(str(error))
    return problems


def check_expressible(config: NeuronConfig) -> tuple[str, float]:
    """The Norse threshold method and alpha for ``config``; Unsupported with every reason why
    Norse cannot express it. (The surrogate is checked by differentiating Norse's threshold,
    so gradients are enabled here even under no_grad.)"""
    with torch.enable_grad():
        problems = _problems(config)
        if problems:
            raise base.Unsupported("norse cannot express " + "; ".join(problems))
        return norse_method(config)


def parameters(config: NeuronConfig, method: str, norse_alpha: float, device, dtype):
    """Norse's parameter tuple for ``config``: ``LIFParameters`` for hard reset (the canonical
    LIF), ``LIFBoxParameters`` with ``reset_subtract`` for soft reset, tensors on ``device``."""
    import norse.torch as norse_torch

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=dtype, device=device)

    if config.soft_reset:
        return norse_torch.LIFBoxParameters(
            tau_mem_inv=scalar(1.0 / config.tau),
            v_leak=scalar(0.0),  # canonical soft reset leaks towards 0
            v_th=scalar(config.v_threshold),
            v_reset=scalar(0.0),  # unused by reset_subtract
            method=method,
            alpha=scalar(norse_alpha),
            reset_method=norse_torch.reset_subtract,
        )
    v_reset = float(config.v_reset)
    return norse_torch.LIFParameters(
        # LIF: with dt=1 the synaptic current is zeroed after every step; CUBA: its decay
        tau_syn_inv=scalar(1.0 / config.tau_syn if config.neuron == "cuba" else 1.0),
        tau_mem_inv=scalar(1.0 / config.tau),
        v_leak=scalar(v_reset),  # canonical hard reset leaks towards V_r
        v_th=scalar(config.v_threshold),
        v_reset=scalar(v_reset),
        method=method,
        alpha=scalar(norse_alpha),
    )


def _users_call(users):
    """The timed call: Norse's own initial state, no recorded states, spikes only."""

    def timed(x: torch.Tensor) -> torch.Tensor:
        spikes, _ = users(x)
        return spikes

    return timed


def iaf(config: NeuronConfig, method: str, norse_alpha: float, device, dtype: torch.dtype):
    """``norse.torch.IAF(IAFParameters(v_th, v_reset, method, alpha), dt=1)`` for the canonical
    IF (hard reset, attached), its parameters on ``device`` in ``dtype``."""
    import norse.torch as norse_torch

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=dtype, device=device)

    p = norse_torch.IAFParameters(v_th=scalar(config.v_threshold),
                                  v_reset=scalar(config.v_reset), method=method,
                                  alpha=scalar(norse_alpha))  # fmt: skip
    return norse_torch.IAF(p, dt=1.0).to(device)


def build_iaf(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
    """Maps the canonical IF (hard reset, attached) onto norse.torch.IAF."""
    method, norse_alpha = check_expressible(config)
    import norse.torch as norse_torch

    compute = torch.float64 if dtype == torch.float64 else torch.float32
    # IAF's constructor takes no record_states; the attribute is Norse's SNN base module's own
    checking = iaf(config, method, norse_alpha, device, compute)
    checking.record_states = True
    users = iaf(config, method, norse_alpha, device, compute)

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # the state IAF would start from (v_reset), full and in the compute precision
        state = norse_torch.IAFFeedForwardState(
            v=torch.full(x.shape[1:], float(config.v_reset), dtype=compute, device=x.device)
        )
        spikes, states = checking(x, state)
        return spikes, states.v  # record_states: V after reset at every step

    timed = _users_call(users)
    return base.NeuronBuild(
        check=check,
        timed=base.TimedBuild(
            run=timed,
            spikes=lambda s: s.to(dtype),
            module=users,
            code="spikes, state = norse.torch.IAF(p)(x)",
        ),  # fmt: skip
        path=PATH_IAF,
        tie_notes=list(TIE_NOTES),
    )


def build_lsnn(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
    """Maps the canonical ALIF onto norse.torch.LSNN, one step late (see the module doc)."""
    method, norse_alpha = check_expressible(config)
    import norse.torch as norse_torch

    compute = torch.float64 if dtype == torch.float64 else torch.float32

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=compute, device=device)

    v_reset = float(config.v_reset)
    p = norse_torch.LSNNParameters(
        tau_syn_inv=scalar(1.0), tau_mem_inv=scalar(1.0 / config.tau),
        tau_adapt_inv=scalar(1.0 / config.tau_a), v_leak=scalar(v_reset),
        v_th=scalar(config.v_threshold), v_reset=scalar(v_reset), beta=scalar(config.beta_a),
        method=method, alpha=scalar(norse_alpha),
    )  # fmt: skip
    checking = norse_torch.LSNN(p, dt=1.0, record_states=True).to(device)
    users = norse_torch.LSNN(p, dt=1.0).to(device)
    scale = 1.0 if config.decay_input else config.tau

    def prepare(x: torch.Tensor) -> torch.Tensor:  # the input, then the row no output reads
        rows = x * scale if scale != 1.0 else x
        return torch.cat([rows, torch.zeros_like(rows[:1])])

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        shape = x.shape[1:]
        state = norse_torch.LSNNFeedForwardState(
            v=torch.full(shape, v_reset, dtype=compute, device=x.device),
            i=torch.zeros(shape, dtype=compute, device=x.device),
            b=torch.full(shape, float(config.v_threshold), dtype=compute, device=x.device),
        )
        spikes, states = checking(prepare(x), state)
        # LSNN's step t + 1 is the canonical step t; its threshold b = v_th + beta_a A
        adaptation = {} if config.beta_a == 0 else {
            "a": (states.b[1:] - float(config.v_threshold)) / float(config.beta_a)}  # fmt: skip
        return spikes[1:], states.v[1:], adaptation

    return base.NeuronBuild(
        check=check,
        timed=base.TimedBuild(
            run=_users_call(users),
            prepare=prepare,
            spikes=lambda s: s[1:].to(dtype),
            code="spikes, state = norse.torch.LSNN(p, dt=1)(x)  # T + 1 steps",
            module=users,
        ),  # fmt: skip
        path=PATH_LSNN + ("" if config.decay_input else "; input pre-scaled by tau"),
        tie_notes=list(TIE_NOTES),
    )


def build(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
    """Maps the canonical config onto Norse's LIF (hard reset) or Lift(LIFBoxCell) (soft reset),
    IF onto its IAF and ALIF onto its LSNN."""
    if config.neuron == "if":
        return build_iaf(config, device, dtype)
    if config.neuron == "alif":
        return build_lsnn(config, device, dtype)
    method, norse_alpha = check_expressible(config)
    import norse.torch as norse_torch

    # Norse's default state is float32; float64 inputs get float64 parameters and state so that
    # 1/tau is not rounded to float32. Half inputs are computed in float32, as Norse does.
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    p = parameters(config, method, norse_alpha, device, compute)
    # decay_input=False: H = V - (V - V_r)/tau + X. Norse always multiplies its input by
    # tau_mem_inv, so the input is scaled by tau first (what a user's synapse would hold).
    scale = None if config.decay_input else config.tau
    path_suffix = "" if config.decay_input else "; input pre-scaled by tau (decay_input=False)"

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return x if scale is None else x * scale

    def canonical_spikes(spikes: torch.Tensor) -> torch.Tensor:
        return spikes.to(dtype)

    if config.soft_reset:
        # Lift keeps only the last state, so one module serves both builds.
        users = norse_torch.Lift(norse_torch.LIFBoxCell(p, dt=1.0)).to(device)
        code, path = "spikes = norse.torch.Lift(LIFBoxCell(p))(x)", PATH_SOFT

        def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            # LIFBoxCell would start from its 0-dim v_leak, which lets half inputs set the
            # precision; a full state in the compute precision keeps float32 arithmetic, as
            # norse.torch.LIF's own float32 state does. Lift takes (input, state) tuples.
            state = norse_torch.LIFBoxFeedForwardState(
                v=torch.zeros(x.shape[1:], dtype=compute, device=x.device)
            )
            spikes, _ = users((prepare(x), state))
            return spikes, None  # Lift keeps only the last state: no V sequence

    else:
        checking = norse_torch.LIF(p, dt=1.0, record_states=True).to(device)
        users = norse_torch.LIF(p, dt=1.0).to(device)
        code, path = "spikes, state = norse.torch.LIF(p, dt=1)(x)", PATH_LIF

        def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            # The state Norse would create itself (v = v_leak, i = 0), in the compute precision.
            state = norse_torch.LIFFeedForwardState(
                v=torch.full(x.shape[1:], float(config.v_reset), dtype=compute, device=x.device),
                i=torch.zeros(x.shape[1:], dtype=compute, device=x.device),
            )
            spikes, states = checking(prepare(x), state)
            if config.neuron != "cuba" or config.syn_decay == 0:
                return spikes, states.v  # record_states: V after reset at every step
            # Norse records the decayed current (1 - 1/tau_syn) I[t], of the scaled input
            current = states.i / (config.syn_decay * (1.0 if scale is None else scale))
            return spikes, states.v, {"i": current}

    timed = _users_call(users)
    return base.NeuronBuild(
        check=check,
        timed=base.TimedBuild(
            run=timed, prepare=prepare, spikes=canonical_spikes, code=code, module=users
        ),
        path=path + path_suffix,
        tie_notes=list(TIE_NOTES),
    )


# ---- e2e network -------------------------------------------------------------------------------


NO_PLIF = (
    "Norse's LIF is current-based (a synaptic current before the membrane), and a learnable "
    "tau_mem_inv in its parameter tuple is not a module parameter: kernelprof does not map PLIF "
    "onto it yet"
)


NO_ALIF_NETWORK = (
    "Norse's LSNN charges its membrane with the previous step's input, so each ALIF layer of a "
    "network would add a step of delay that the canonical ALIF has not (check and compare map "
    "it by running one more step, which a stack of layers cannot)"
)


class NorseNetwork(SpikingNetwork):
    """``norse.torch.SequentialState``: torch layers (``Lift`` -ed over T where they need
    [B, ...]) and Norse's LIF on [T, B, ...], called without a state as Norse's users do. CUBA
    is that LIF with its own synaptic current (tau_syn), as Norse's users run it; its
    framework-defaults neuron is ``norse.torch.LIF()`` itself, which is current-based."""

    framework = "norse"
    neurons = default_neurons = ("if", "lif", "cuba")
    neuron_reasons = {"plif": NO_PLIF, "alif": NO_ALIF_NETWORK}

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        import norse.torch as norse_torch

        if layer.category in ("conv", "pool"):
            return norse_torch.Lift(step_layer(layer))
        if layer.category == "flatten":
            return nn.Flatten(start_dim=2)  # keeps [T, B]
        if layer.category in ("linear", "readout"):
            # nn.Linear maps the last axis, so [T, B, F] needs no Lift.
            return step_layer(layer)
        for note in TIE_NOTES:
            self.note_once(f"{self.neuron.upper()}: {note}")
        config = self.lif_config
        method, norse_alpha = check_expressible(config)
        if config.neuron == "if":
            return NorseDefaultLIF(iaf(config, method, norse_alpha, "cpu", torch.float32))
        if not config.decay_input:
            self.note_once(f"{config.neuron.upper()}: input multiplied by tau "
                           "(decay_input=False)")  # fmt: skip
        return NorseLIF(config, method, norse_alpha)

    def make_default_lif(self, layer: LayerPlan) -> nn.Module:
        return NorseDefaultLIF()

    def make_default_neuron(self, layer: LayerPlan) -> nn.Module:
        if self.neuron == "cuba":  # Norse's default LIF is current-based: tau_syn 5 ms, dt 1 ms
            self.note_once("CUBA: framework-defaults is norse.torch.LIF(), Norse's own LIF, "
                           "which filters its input through a synaptic current")  # fmt: skip
            return NorseDefaultLIF()
        return _default_if()  # IF: IAFParameters() and dt at their defaults

    def container(self, modules: list[nn.Module]) -> nn.Module:
        import norse.torch as norse_torch

        return norse_torch.SequentialState(*modules)

    def weight_of(self, module: nn.Module) -> nn.Parameter:
        return getattr(module, "lifted_module", module).weight

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        # No state passed: every LIF starts from Norse's initial state, so calls are independent.
        out, _ = self.body(x_seq)
        return out.mean(0)


class NorseLIF(nn.Module):
    """Norse's LIF module on [T, B, ...] with its parameters kept on the input's device
    (``module.to()`` does not move Norse's parameter namedtuple) and, for decay_input=False,
    the input multiplied by tau first. Its ``state`` argument makes ``SequentialState`` treat it
    as stateful; with no state, Norse creates its own initial state."""

    def __init__(self, config: LIFConfig, method: str, norse_alpha: float) -> None:
        super().__init__()
        import norse.torch as norse_torch

        self.config, self.method, self.norse_alpha = config, method, norse_alpha
        self.scale = 1.0 if config.decay_input else float(config.tau)
        p = parameters(config, method, norse_alpha, "cpu", torch.float32)
        if config.soft_reset:
            self.neuron = norse_torch.Lift(norse_torch.LIFBoxCell(p, dt=1.0))
        else:
            self.neuron = norse_torch.LIF(p, dt=1.0)
        self._device = torch.device("cpu")

    def forward(self, x: torch.Tensor, state: object = None) -> tuple[torch.Tensor, object]:
        if x.device != self._device:
            cell = self.neuron.lifted_module if self.config.soft_reset else self.neuron
            cell.p = parameters(self.config, self.method, self.norse_alpha, x.device,
                                torch.float32)  # fmt: skip
            self._device = x.device
        if self.scale != 1.0:
            x = x * self.scale
        if self.config.soft_reset:
            return self.neuron(x if state is None else (x, state))
        return self.neuron(x, state)


class NorseDefaultLIF(nn.Module):
    """``norse.torch.LIF()``: Norse's LIF with ``LIFParameters()`` and ``dt=0.001`` at their
    defaults (DEFAULTS: a synaptic current, tau_mem 10 ms, tau_syn 5 ms, SuperSpike alpha 100),
    or the Norse module given (an ``IAF``), its parameters moved to the input's device
    (``module.to()`` does not move them)."""

    def __init__(self, module: nn.Module | None = None) -> None:
        super().__init__()
        import norse.torch as norse_torch

        self.neuron = norse_torch.LIF() if module is None else module
        self._device = torch.device("cpu")

    def forward(self, x: torch.Tensor, state: object = None) -> tuple[torch.Tensor, object]:
        if x.device != self._device:
            p = self.neuron.p
            self.neuron.p = type(p)(*[v.to(x.device) if isinstance(v, torch.Tensor) else v
                                      for v in p])  # fmt: skip
            self._device = x.device
        return self.neuron(x, state)


def default_spikes(x: torch.Tensor) -> torch.Tensor:
    return NorseDefaultLIF()(x)[0]  # [T, N] in, [T, N] out, from Norse's initial state


# ---- the framework's own defaults --------------------------------------------------------------

_PARAMETERS = "norse/torch/functional/lif.py: LIFParameters"
DEFAULTS = (
    base.Default("tau_mem_inv", "100.0 (1/s: tau_mem = 10 ms)", _PARAMETERS, canonical="tau"),
    base.Default("tau_syn_inv", "200.0 (1/s: a synaptic current with tau_syn = 5 ms)", _PARAMETERS),
    base.Default("v_leak", "0.0", _PARAMETERS),
    base.Default("v_th", "1.0", _PARAMETERS, canonical="v_threshold"),
    base.Default("v_reset", "0.0 (hard reset, attached)", _PARAMETERS, canonical="v_reset"),
    base.Default("method", "'super' (SuperSpike)", _PARAMETERS, canonical="surrogate"),
    base.Default("alpha", "100.0", _PARAMETERS, canonical="alpha"),
    base.Default("dt", "0.001 (s)", "norse/torch/module/snn.py: SNN.__init__"),
    base.Default("record_states", "False", "norse/torch/module/snn.py: SNN.__init__"),
)

_IAF_PARAMETERS = "norse/torch/functional/iaf.py: IAFParameters"
NEURON_DEFAULTS = {
    "if": base.NeuronDefaults((
        base.Default("v_th", "1.0", _IAF_PARAMETERS, canonical="v_threshold"),
        base.Default("v_reset", "0.0 (hard reset, attached)", _IAF_PARAMETERS,
                     canonical="v_reset"),
        base.Default("method", "'super' (SuperSpike)", _IAF_PARAMETERS, canonical="surrogate"),
        base.Default("alpha", "100.0", _IAF_PARAMETERS, canonical="alpha"),
        base.Default("dt", "0.001 (s; IF's v' = v + x does not use it)",
                     "norse/torch/module/snn.py: SNN.__init__"),
    ), lambda x: _default_if()(x)[0]),
    # CUBA: Norse's default LIF is current-based (dt tau_syn_inv = 0.2: tau_syn 5 steps)
    "cuba": base.NeuronDefaults(base.reading(DEFAULTS, "tau_syn_inv", "tau_syn"), default_spikes),
}  # fmt: skip


def _default_if() -> nn.Module:
    import norse.torch as norse_torch

    return NorseDefaultLIF(norse_torch.IAF())


# ---- neuron modules in any model (kernelprof profile) ------------------------------------------

# Norse's neuron modules derive from four bases in norse/torch/module/snn.py: SNN and
# SNNRecurrent take [T, ...] and loop over T in their forward; SNNCell and SNNRecurrentCell do
# one step per call. A few cells are plain nn.Modules (one step per call). The leaky integrators
# (LI, LICell, LIBoxCell: no spikes) are SNN/SNNCell modules, so they count as neurons; Lift is
# a container that calls its cell once per step, and is not one.
_SEQUENCE_BASES = ("SNN", "SNNRecurrent")
_STEP_BASES = ("SNNCell", "SNNRecurrentCell")
_OTHER_CELLS = ("CobaLIFCell", "LILinearCell", "LIFCorrelation")


def _bases(names: tuple[str, ...]) -> tuple[type, ...]:
    from norse.torch.module import snn

    return base.classes_in(snn, names)


def neuron_classes() -> tuple[type, ...]:
    import norse.torch as norse_torch

    cells = base.classes_in(norse_torch, _OTHER_CELLS)
    return _bases(_SEQUENCE_BASES) + _bases(_STEP_BASES) + cells


def neuron_time_steps(module, args: tuple) -> int | None:
    """[T, ...] for SNN/SNNRecurrent modules; one step per call for the cells."""
    return int(args[0].shape[0]) if isinstance(module, _bases(_SEQUENCE_BASES)) else None


def neuron_path(module) -> str:
    activation = getattr(module, "activation", None)
    step = getattr(activation, "__name__", None) or getattr(
        getattr(activation, "func", None), "__name__", None
    )  # a function, or a functools.partial of one
    step = step or f"{type(module).__name__}.forward"
    if isinstance(module, _bases(_SEQUENCE_BASES)):
        return f"python loop over T: {step} once per step, eager torch ops (no fused kernel)"
    return f"one step per call: {step}, eager torch ops (the script, or Lift, loops over T)"


# Norse's threshold methods -> the canonical surrogates they may compute, from Norse's alpha
# (the inverse of _CANDIDATES; 'super' ignores its alpha in 1.1.0, so superspike(1) is tried
# too); each is probed against the canonical derivative before it is named.
_METHOD_CANDIDATES = {
    "super": lambda alpha: (("superspike", alpha), ("superspike", 1.0)),
    "tanh": lambda alpha: (("sigmoid", 2.0 * alpha),),
}


def _canonical_surrogate(method: str, norse_alpha: float) -> tuple[str, float]:
    """The canonical surrogate (name, alpha) whose derivative Norse's ``threshold(x, method,
    alpha)`` computes; Unsupported where none does."""
    for name, alpha in _METHOD_CANDIDATES.get(method, lambda _: ())(norse_alpha):
        if alpha > 0:
            with torch.enable_grad():
                if _probe_surrogate(method, norse_alpha, IFConfig(surrogate=name, alpha=alpha)):
                    return name, alpha
    why = _WHY_NOT["sigmoid"] if method == "tanh" else "no canonical surrogate matches it"
    raise base.Unsupported(f"method {method!r} (alpha={norse_alpha:g}): {why}")


def _parameters(p, fields: tuple[str, ...]) -> dict[str, float]:
    """The named fields of a Norse parameter tuple, each one fixed value."""
    found = {}
    for name in fields:
        value = getattr(p, name)
        if base.learned(value):  # (IAF's initial state sets requires_grad on p.v_reset)
            raise base.Unsupported(f"a learned {name}: kernelprof maps no PLIF onto Norse")
        found[name] = base.one_value(value, name)
    return found


def _norse_kind(module) -> str:
    """The kind of a norse.torch.IAF ("if"), LIF ("lif") or LSNN ("alif") that runs its
    feed-forward step (not the adjoint one); Unsupported for any other module."""
    import norse.torch as norse_torch
    from norse.torch.functional.iaf import iaf_feed_forward_step
    from norse.torch.functional.lif import lif_feed_forward_step
    from norse.torch.functional.lsnn import lsnn_feed_forward_step

    steps = {"if": iaf_feed_forward_step, "lif": lif_feed_forward_step,
             "alif": lsnn_feed_forward_step}  # fmt: skip
    kind = base.node_kind(module, norse_torch, {"if": "IAF", "lif": "LIF", "alif": "LSNN"},
                          ("forward",))  # fmt: skip
    if module.activation is not steps[kind]:
        name = getattr(module.activation, "__name__", type(module.activation).__name__)
        raise base.Unsupported(f"its step is {name}, not {steps[kind].__name__}")
    return kind


def module_config(module) -> NeuronConfig:
    """The canonical neuron a Norse ``IAF``, ``LIF`` or ``LSNN`` computes with its parameters
    (see :class:`base.FasterPaths`; the inverse of :func:`iaf`, :func:`parameters` and
    :func:`build_lsnn`): IAF is IF, hard reset to v_reset, attached; LIF is LIF with
    decay_input, tau = 1/(dt tau_mem_inv), where dt tau_syn_inv = 1 clears the synaptic current
    every step, and CUBA with tau_syn = 1/(dt tau_syn_inv) where it does not; both need
    v_leak = v_reset. All fire on v > v_th (the canonical model on >=: they differ at exact
    ties only). LSNN is the canonical ALIF one step late, which no canonical neuron is: the
    reason says so and names that ALIF. Unsupported, with why, for anything else."""
    kind = _norse_kind(module)
    p = module.p
    surrogate, alpha = _canonical_surrogate(p.method, base.one_value(p.alpha, "alpha"))
    if kind == "if":
        found = _parameters(p, ("v_th", "v_reset"))
        return IFConfig(v_threshold=found["v_th"], v_reset=found["v_reset"], detach_reset=False,
                        surrogate=surrogate, alpha=alpha)  # fmt: skip
    found = _parameters(p, ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset"))
    if found["v_leak"] != found["v_reset"]:
        raise base.Unsupported(
            f"v_leak={found['v_leak']:g} != v_reset={found['v_reset']:g}: "
            "the canonical LIF leaks towards its reset potential"
        )
    # the step's own products, in the parameters' precision: i' - (dt tau_syn_inv) i'
    syn = base.one_value(module.dt * torch.as_tensor(p.tau_syn_inv), "dt*tau_syn_inv")
    decay = base.one_value(module.dt * torch.as_tensor(p.tau_mem_inv), "dt*tau_mem_inv")
    if not 0 < decay <= 1 or not 0 < syn <= 1:
        raise base.Unsupported(f"dt*tau_mem_inv = {decay:g}, dt*tau_syn_inv = {syn:g}: each "
                               "decay must lie in (0, 1]")  # fmt: skip
    common = dict(tau=1.0 / decay, v_threshold=found["v_th"], v_reset=found["v_reset"],
                  decay_input=True, detach_reset=False, surrogate=surrogate,
                  alpha=alpha)  # fmt: skip
    if kind == "alif":
        _lsnn_reason(module, syn, common)
    if syn != 1.0:
        return make_config("cuba", neuron_fields={"tau_syn": 1.0 / syn}, **common)
    return make_config("lif", **common)


def _lsnn_reason(module, syn: float, common: dict) -> None:
    """An LSNN's reason: the canonical ALIF it computes one step late (see the module doc)."""
    if syn != 1.0:
        raise base.Unsupported(f"LSNN with dt*tau_syn_inv = {syn:g}: an adaptive threshold "
                               "and a synaptic current together, which no canonical neuron "
                               "has")  # fmt: skip
    p = module.p
    adapt = base.one_value(module.dt * torch.as_tensor(p.tau_adapt_inv), "dt*tau_adapt_inv")
    beta = base.one_value(p.beta, "beta")
    if not 0 < adapt <= 1:
        raise base.Unsupported(f"dt*tau_adapt_inv = {adapt:g}: not in (0, 1]")
    alif = make_config("alif", neuron_fields={"tau_a": 1.0 / adapt, "beta_a": beta}, **common)
    raise base.Unsupported(
        f"LSNN is the canonical ALIF (tau {alif.tau:g}, tau_a {alif.tau_a:g}, beta_a "
        f"{alif.beta_a:g}, theta0 {alif.v_threshold:g}, hard reset to {alif.v_reset:g}, "
        f"{alif.surrogate}({alif.alpha:g})) one step late: its membrane charges with the "
        "previous step's input"
    )


def canonical_module(module, args: tuple, kwargs: dict) -> NeuronConfig:
    """A Norse IAF or LIF takes [T, ...] time first, but its call returns (spikes, state), which
    kernelprof's kernels (spikes only) cannot stand in for: says why."""
    module_config(module)
    if len(args) > 1 and args[1] is not None or kwargs.get("state") is not None:
        raise base.Unsupported("a state passed in from an earlier call, not from rest")
    raise base.Unsupported("returns (spikes, state): kernelprof's kernels return the spikes only")


NEURON_LAYERS = base.NeuronLayers(
    package="norse",
    classes=neuron_classes,
    time_steps=neuron_time_steps,
    path=neuron_path,
    faster=base.FasterPaths(canonical=canonical_module, config=module_config),
)

NORSE = base.Implementation(
    name="norse",
    framework="Norse",
    build=build,
    requires=(REQUIREMENT,),
    description="norse.torch.LIF (hard reset) / Lift(LIFBoxCell) (soft reset), IAF for IF: "
    "eager loop",
    neurons=("if", "lif", "cuba", "alif"),
    not_mapped={"plif": NO_PLIF},
)
FRAMEWORK = base.Framework(
    name="norse",
    display="Norse",
    requires=(REQUIREMENT,),
    implementations=(NORSE,),
    networks={"norse": NorseNetwork},
    default_neuron=default_spikes,
    neuron_defaults=NEURON_DEFAULTS,
    no_converter="Norse ships no ANN-to-SNN converter",
    defaults=DEFAULTS,
    description="eager PyTorch, a Python loop over lif_feed_forward_step",
    neuron_layers=NEURON_LAYERS,
)
