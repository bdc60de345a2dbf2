"""The two-state neurons (CUBA, ALIF) under torch.compile: forward and backward each one fused
loop, as :mod:`reference_kernels.compiled` does for IF, LIF and PLIF.

Forward keeps the second state (CUBA's current I, ALIF's adaptation A) in the loop and saves for
backward only what the adjoints need: H (CUBA), or H and the step's threshold theta[t] (ALIF);
S is recomputed as H >= theta. Backward runs the adjoints of :mod:`reference_kernels.model` in
reverse time, both carried in the loop: gH and gI (CUBA: gI[t] = gH[t] c + gI[t+1] d_syn), or
gH and the adaptation's gA_d (ALIF: theta[t] passes -gS sg (and, soft reset, -S gV) to A_d[t],
A[t] = A_d[t] + S[t] passes A's adjoint to S[t]). Upstream gradients on the returned states
(V, and I or A) are taken in. Arithmetic is float32 for half inputs (float64 for float64).
"""

from __future__ import annotations

import functools

import torch
import torch._dynamo

from .model import NeuronConfig, charge, reset, surrogate_grad
from .torch_ref import compute_dtype

_DYNAMO_SETTINGS = {"recompile_limit": 1024, "fail_on_recompile_limit_hit": True}


def _forward(config: NeuronConfig, return_v: bool):
    alif = config.neuron == "alif"

    def forward(x: torch.Tensor):
        xc = x.to(compute_dtype(x.dtype))
        v = torch.full_like(xc[0], config.v_initial)
        state = torch.zeros_like(xc[0])
        spikes, charges, thresholds, membranes, states = [], [], [], [], []
        for t in range(xc.shape[0]):
            theta = config.v_threshold
            if alif:
                adapted = state * config.adapt_decay
                theta = config.v_threshold + config.beta_a * adapted
                current = xc[t]
            else:
                state = state * config.syn_decay + xc[t]
                current = state
            h = charge(v, current, config)
            spike = (h >= theta).to(xc.dtype)
            v = reset(h, spike, config, theta if alif else None)
            if alif:
                state = adapted + spike
                thresholds.append(theta)
            spikes.append(spike)
            charges.append(h)
            membranes.append(v)
            states.append(state)
        saved = (torch.stack(charges), torch.stack(thresholds) if alif else None)
        s = torch.stack(spikes).to(x.dtype)
        if return_v:
            return s, saved, torch.stack(membranes).to(x.dtype), torch.stack(states).to(x.dtype)
        return s, saved

    return forward


def _backward(config: NeuronConfig):
    alif = config.neuron == "alif"
    d_mem = 1.0 - 1.0 / config.tau
    scale = 1.0 / config.tau if config.decay_input else 1.0

    def backward(gs_in, gv_in, gstate_in, h, thetas):
        gs = gs_in.to(h.dtype)
        grad_h_next = torch.zeros_like(h[0])
        grad_state_next = torch.zeros_like(h[0])  # gI[t+1] (CUBA) or gA_d[t+1] (ALIF)
        grads = []
        for t in range(h.shape[0] - 1, -1, -1):
            ht = h[t]
            theta = thetas[t] if alif else config.v_threshold
            spike = (ht >= theta).to(h.dtype)
            sg = surrogate_grad(ht - theta, config.surrogate, config.alpha)
            gv = grad_h_next * d_mem
            if gv_in is not None:
                gv = gv + gv_in[t].to(h.dtype)
            gs_total = gs[t]
            if alif:  # A[t] = A_d[t] + S[t]: A's adjoint reaches S[t]
                ga = grad_state_next * config.adapt_decay
                if gstate_in is not None:
                    ga = ga + gstate_in[t].to(h.dtype)
                gs_total = gs_total + ga
            if not config.detach_reset:
                hit = -theta if config.soft_reset else config.v_reset - ht
                gs_total = gs_total + gv * hit
            gm = gs_total * sg
            grad_h = gm + (gv if config.soft_reset else gv * (1.0 - spike))
            if alif:
                g_theta = -gm - gv * spike if config.soft_reset else -gm
                g_adapted = g_theta * config.beta_a + ga
                grad_state_next = torch.zeros_like(ht) if config.detach_adaptation else g_adapted
                grads.append(grad_h * scale)
            else:
                gi = grad_h * scale + grad_state_next * config.syn_decay
                if gstate_in is not None:
                    gi = gi + gstate_in[t].to(h.dtype)
                grad_state_next = gi
                grads.append(gi)
            grad_h_next = grad_h
        grads.reverse()
        return torch.stack(grads).to(gs_in.dtype)

    return backward


@functools.cache
def _compiled_pair(config: NeuronConfig, return_v: bool):
    return (torch.compile(_forward(config, return_v), dynamic=False),
            torch.compile(_backward(config), dynamic=False))  # fmt: skip


class CompiledStates(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, config: NeuronConfig, return_v: bool):
        forward_fn, _ = _compiled_pair(config, return_v)
        with torch._dynamo.config.patch(**_DYNAMO_SETTINGS):
            outputs = forward_fn(x.detach())
        h, thetas = outputs[1]
        ctx.save_for_backward(h, thetas)
        ctx.set_materialize_grads(False)
        ctx.config, ctx.return_v, ctx.input_dtype = config, return_v, x.dtype
        return (outputs[0], outputs[2], outputs[3]) if return_v else outputs[0]

    @staticmethod
    def backward(ctx, grad_spikes, grad_v=None, grad_state=None):
        h, thetas = ctx.saved_tensors
        _, backward_fn = _compiled_pair(ctx.config, ctx.return_v)
        if grad_spikes is None:
            grad_spikes = torch.zeros(h.shape, dtype=ctx.input_dtype, device=h.device)
        with torch._dynamo.config.patch(**_DYNAMO_SETTINGS):
            grad_x = backward_fn(grad_spikes, grad_v, grad_state, h, thetas)
        return grad_x.to(ctx.input_dtype), None, None


def states_compiled(x: torch.Tensor, config: NeuronConfig, return_v: bool):
    """CUBA or ALIF over ``x`` [T, ...]; with ``return_v``, (S, V, {"i": I} or {"a": A})."""
    out = CompiledStates.apply(x, config, return_v)
    if not return_v:
        return out
    spikes, v, state = out
    return spikes, v, {"i" if config.neuron == "cuba" else "a": state}
