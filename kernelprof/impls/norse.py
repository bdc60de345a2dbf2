"""Norse as a row of the comparison: its own multi-step LIF modules mapped onto the canonical LIF.

Read from the Norse 1.1.0 sources (norse/torch/functional/lif.py, lif_box.py, threshold.py,
superspike.py, reset.py and module/snn.py, lift.py):

* ``norse.torch.LIF(p, dt)`` takes [T, N, ...] and loops over ``lif_feed_forward_step`` in Python
  (no fused kernel, no JIT). One step: i' = i + x; v' = v + dt*tau_mem_inv*((v_leak - v) + i');
  i_next = i' - dt*tau_syn_inv*i'; z = heaviside(v' - v_th) with ``torch.gt`` (fires on v' > v_th);
  v_next = (1 - z)*v' + z*v_reset, the reset *not* detached (only the recurrent ``lif_step``
  detaches it). With dt=1 and tau_syn_inv=1 the synaptic current is exactly zero after every
  step, so v' = V + (X - (V - V_r))/tau: the canonical hard reset with decay_input.
  ``record_states=True`` (an argument of Norse's ``SNN`` base module) stacks the state of every
  step, so V after reset is returned.
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
"""

from __future__ import annotations

import torch

from kernelprof.impls.registry import Built, Implementation, Requirement, Unsupported, register
from kernelprof.lif import LIFConfig, surrogate_grad

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
PATH_SOFT = (
    "python loop: norse.torch.Lift(LIFBoxCell) with reset_subtract (norse 1.1.0: no fused kernel)"
)
TIE_NOTES = ["fires on H > theta, not >= (norse heaviside is torch.gt)"]


def _probe_surrogate(method: str, norse_alpha: float, config: LIFConfig) -> bool:
    """Whether Norse's ``threshold(x, method, alpha)`` backward equals the canonical surrogate."""
    from norse.torch.functional.threshold import threshold

    x = _PROBE.clone().requires_grad_()
    threshold(x, method, torch.as_tensor(norse_alpha, dtype=torch.float64)).sum().backward()
    expected = surrogate_grad(_PROBE, config.surrogate, config.alpha)
    return x.grad is not None and torch.allclose(x.grad, expected, rtol=1e-9, atol=1e-12)


def norse_method(config: LIFConfig) -> tuple[str, float]:
    """The Norse threshold method and alpha whose derivative is the config's surrogate."""
    name, alpha = config.surrogate, config.alpha
    if name in _NO_EQUIVALENT:
        raise Unsupported(f"surrogate {name}(alpha={alpha:g}): {_NO_EQUIVALENT[name]}")
    method, norse_alpha = _CANDIDATES[name](alpha)
    if not _probe_surrogate(method, norse_alpha, config):
        raise Unsupported(f"surrogate {name}(alpha={alpha:g}): {_WHY_NOT[name]}")
    return method, norse_alpha


def _problems(config: LIFConfig) -> list[str]:
    problems = []
    if config.detach_reset:
        problems.append(
            "detach_reset=True: norse.torch.LIF and LIFBoxCell keep the reset attached "
            "(only the recurrent lif_step detaches it, and it needs weight matrices)"
        )
    try:
        norse_method(config)
    except Unsupported as error:
        problems.append(str(error))
    return problems


def build(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    """Maps the canonical config onto Norse's LIF (hard reset) or Lift(LIFBoxCell) (soft reset)."""
    problems = _problems(config)
    if problems:
        raise Unsupported("norse cannot express " + "; ".join(problems))

    import norse.torch as norse_torch

    method, norse_alpha = norse_method(config)
    # Norse's default state is float32; float64 inputs get float64 parameters and state so that
    # 1/tau is not rounded to float32. Half inputs are computed in float32, as Norse does.
    compute = torch.float64 if dtype == torch.float64 else torch.float32

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=compute, device=device)

    tau = config.tau
    # decay_input=False: H = V - (V - V_r)/tau + X. Norse always multiplies its input by
    # tau_mem_inv, so the input is scaled by tau first.
    scale = None if config.decay_input else tau
    path_suffix = "" if config.decay_input else "; input pre-scaled by tau (decay_input=False)"

    if config.soft_reset:
        params = norse_torch.LIFBoxParameters(
            tau_mem_inv=scalar(1.0 / tau),
            v_leak=scalar(0.0),  # canonical soft reset leaks towards 0
            v_th=scalar(config.v_threshold),
            v_reset=scalar(0.0),  # unused by reset_subtract
            method=method,
            alpha=scalar(norse_alpha),
            reset_method=norse_torch.reset_subtract,
        )
        module = norse_torch.Lift(norse_torch.LIFBoxCell(params, dt=1.0)).to(device)

        def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            # LIFBoxCell would start from its 0-dim v_leak, which lets half inputs set the
            # precision; a full state in the compute precision keeps float32 arithmetic, as
            # norse.torch.LIF's own float32 state does. Lift takes (input, state) tuples.
            state = norse_torch.LIFBoxFeedForwardState(
                v=torch.zeros(x.shape[1:], dtype=compute, device=x.device)
            )
            spikes, _ = module((x if scale is None else x * scale, state))
            return spikes, None  # Lift keeps only the last state: no V sequence

        return Built(run=run, path=PATH_SOFT + path_suffix, tie_notes=list(TIE_NOTES))

    v_reset = float(config.v_reset)
    params = norse_torch.LIFParameters(
        tau_syn_inv=scalar(1.0),  # with dt=1 the synaptic current is zeroed after every step
        tau_mem_inv=scalar(1.0 / tau),
        v_leak=scalar(v_reset),  # canonical hard reset leaks towards V_r
        v_th=scalar(config.v_threshold),
        v_reset=scalar(v_reset),
        method=method,
        alpha=scalar(norse_alpha),
    )
    module = norse_torch.LIF(params, dt=1.0, record_states=True).to(device)

    def run_lif(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # The state Norse would create itself (v = v_leak, i = 0), in the compute precision.
        state = norse_torch.LIFFeedForwardState(
            v=torch.full(x.shape[1:], v_reset, dtype=compute, device=x.device),
            i=torch.zeros(x.shape[1:], dtype=compute, device=x.device),
        )
        spikes, states = module(x if scale is None else x * scale, state)
        return spikes, states.v  # record_states: V after reset at every step

    return Built(run=run_lif, path=PATH_LIF + path_suffix, tie_notes=list(TIE_NOTES))


NORSE = register(
    Implementation(
        name="norse",
        framework="Norse",
        build=build,
        requires=(Requirement("norse", ">=1.0"),),
        devices=("cpu", "cuda"),
        description="norse.torch.LIF (hard reset) / Lift(LIFBoxCell) (soft reset): eager loop",
    )
)
