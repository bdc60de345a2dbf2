"""The eager PyTorch oracle: the canonical neurons written step by step, differentiated by
autograd.

It is the definition every other implementation is checked against, so it stays plain: one time
loop, the equations of :mod:`reference_kernels.model`, and a Heaviside whose backward is the
surrogate.
It computes in float64 for float64 inputs and in float32 otherwise (half inputs are upcast and
the results cast back), the same arithmetic precision as the fused kernels.
"""

from __future__ import annotations

import torch

from .model import STATES, NeuronConfig, channel_shape, charge, decay_view, reset, surrogate_grad


class SpikeFunction(torch.autograd.Function):
    """S = Heaviside(H - theta) (fires on equality); backward uses the surrogate derivative."""

    @staticmethod
    def forward(ctx, h_minus_threshold: torch.Tensor, surrogate: str, alpha: float):
        ctx.save_for_backward(h_minus_threshold)
        ctx.surrogate = surrogate
        ctx.alpha = alpha
        return (h_minus_threshold >= 0).to(h_minus_threshold.dtype)

    @staticmethod
    def backward(ctx, grad_spike: torch.Tensor):
        (h_minus_threshold,) = ctx.saved_tensors
        return grad_spike * surrogate_grad(h_minus_threshold, ctx.surrogate, ctx.alpha), None, None


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The arithmetic precision used for an input dtype: float64 stays, everything else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def decay_of(w: torch.Tensor | None, config: NeuronConfig, dtype: torch.dtype, step_shape):
    """PLIF's k = sigmoid(w) in the compute dtype, shaped for one step (None for IF and LIF).
    Differentiable: the gradient reaches ``w`` through it. Without ``w``, PLIF runs at its
    initial w0 (``config.initial_w``), a constant."""
    if config.neuron != "plif":
        return None
    if w is None:
        w = config.initial_w(channel_shape(step_shape)[1], dtype=dtype)
    return decay_view(torch.sigmoid(w.to(dtype)), step_shape)


def trajectory(
    x: torch.Tensor, config: NeuronConfig, w: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs the canonical neuron over ``x`` ([T, ...]); returns (S, V, H), each [T, ...].

    H (the membrane before reset) is what threshold-tie analysis needs; it is returned in the
    compute precision, S and V in the input dtype. For ALIF, whose threshold moves, the third
    is H - beta_a A_d[t]: its distance from theta0 is the spike's margin H - theta[t]. ``w`` is
    PLIF's decay parameter (ignored by the others); it receives its gradient through autograd.
    """
    spikes, membranes, charges, _ = run_states(x, config, w)
    return spikes, membranes, charges


def run_states(x: torch.Tensor, config: NeuronConfig, w: torch.Tensor | None = None):
    """:func:`trajectory`'s (S, V, H) and the neuron's other states over time, {"i": I} (CUBA)
    or {"a": A} (ALIF, A after the step's spike), in the input dtype."""
    dtype = compute_dtype(x.dtype)
    xc = x.to(dtype)
    k = decay_of(w, config, dtype, xc.shape[1:])
    v = torch.full_like(xc[0], config.v_initial)
    state = torch.zeros_like(xc[0])  # CUBA's I or ALIF's A, from 0
    spikes, membranes, charges, states = [], [], [], []
    for t in range(xc.shape[0]):
        current, theta = xc[t], config.v_threshold
        if config.neuron == "cuba":
            state = state * config.syn_decay + xc[t]
            current = state
        elif config.neuron == "alif":
            adapted = (state.detach() if config.detach_adaptation else state) * config.adapt_decay
            theta = config.v_threshold + config.beta_a * adapted
        h = charge(v, current, config, k)
        spike = SpikeFunction.apply(h - theta, config.surrogate, config.alpha)
        v = reset(h, spike.detach() if config.detach_reset else spike, config, theta)
        if config.neuron == "alif":
            state = adapted + spike
            h = h - (theta - config.v_threshold)  # the margin, measured from theta0
        spikes.append(spike)
        membranes.append(v)
        charges.append(h)
        states.append(state)
    named = {name: torch.stack(states).to(x.dtype) for name in STATES[config.neuron]}
    return (torch.stack(spikes).to(x.dtype), torch.stack(membranes).to(x.dtype),
            torch.stack(charges), named)  # fmt: skip


lif_trajectory = trajectory  # the name LIF's callers know


def neuron_torch(x: torch.Tensor, config: NeuronConfig, return_v: bool, w=None):
    spikes, membranes, _, states = run_states(x, config, w)
    if not return_v:
        return spikes
    return (spikes, membranes, states) if states else (spikes, membranes)
