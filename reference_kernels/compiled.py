"""The canonical neurons' step under torch.compile: forward and backward each one fused loop.

Forward runs the step functions of :mod:`reference_kernels.model` (``charge``, ``reset``) over
T; backward runs the BPTT equations of the same module in reverse time. Each is compiled once per
(config, T, dtype, device) with the parameters as constants, so Inductor fuses the whole time loop
into one kernel that reads X once and writes S and H once (forward), and reads dS and H once and
writes dX once (backward). Only H is saved; S is recomputed from it as H >= theta, and PLIF's
V[t-1] from H[t-1] and its spike. Arithmetic is float32 for half inputs (float64 for float64),
as in the oracle.

PLIF's k = sigmoid(w) enters as a tensor (so a new w needs no recompilation); backward returns
its gradient dk = sum of gH[t] * dH[t]/dk, where decay_input's dH/dk = X[t] - (V[t-1] - V_r) is
(H[t] - V[t-1]) / k: accumulated as gH * (H - V[t-1]) and divided by k once, so X is not kept.
"""

from __future__ import annotations

import functools

import torch
import torch._dynamo

from .model import NeuronConfig, charge, reset, surrogate_grad
from .torch_ref import compute_dtype, decay_of

# Every (config, T, dtype) is its own graph; dynamo's default limit of 8 would silently fall back
# to eager beyond it. Raise the limit and make hitting it an error, never a silent slow path.
_DYNAMO_SETTINGS = {"recompile_limit": 1024, "fail_on_recompile_limit_hit": True}


def _decay(config: NeuronConfig, k):
    """dH[t+1]/dV[t]: the share of the membrane a step keeps."""
    if config.neuron == "if":
        return 1.0
    if config.neuron == "plif":
        return 1.0 - k
    return 1.0 - 1.0 / config.tau


@functools.cache
def _compiled_pair(config: NeuronConfig, return_v: bool):
    def forward(x: torch.Tensor, k: torch.Tensor | None):
        xc = x.to(compute_dtype(x.dtype))
        v = torch.full_like(xc[0], config.v_initial)
        spikes, charges, membranes = [], [], []
        for t in range(xc.shape[0]):
            h = charge(v, xc[t], config, k)
            spike = (h >= config.v_threshold).to(xc.dtype)
            v = reset(h, spike, config)
            spikes.append(spike)
            charges.append(h)
            membranes.append(v)
        s = torch.stack(spikes).to(x.dtype)
        hs = torch.stack(charges)
        if return_v:
            return s, hs, torch.stack(membranes).to(x.dtype)
        return s, hs

    def backward(grad_spikes, grad_v, h: torch.Tensor, k: torch.Tensor | None):
        gs = grad_spikes.to(h.dtype)
        gv = None if grad_v is None else grad_v.to(h.dtype)
        decay = _decay(config, k)
        grad_h_next = torch.zeros_like(h[0])
        dk = torch.zeros_like(h[0]) if k is not None else None
        grads = []
        for t in range(h.shape[0] - 1, -1, -1):
            ht = h[t]
            spike = (ht >= config.v_threshold).to(h.dtype)
            sg = surrogate_grad(ht - config.v_threshold, config.surrogate, config.alpha)
            gv_total = grad_h_next * decay
            if gv is not None:
                gv_total = gv_total + gv[t]
            gs_total = gs[t]
            if config.soft_reset:
                if not config.detach_reset:
                    gs_total = gs_total - gv_total * config.v_threshold
                grad_h = gs_total * sg + gv_total
            else:
                if not config.detach_reset:
                    gs_total = gs_total + gv_total * (config.v_reset - ht)
                grad_h = gs_total * sg + gv_total * (1.0 - spike)
            if k is not None:  # PLIF: V[t-1] from step t-1's H and spike
                if t == 0:
                    v_prev = torch.full_like(ht, config.v_initial)
                else:
                    fired = (h[t - 1] >= config.v_threshold).to(h.dtype)
                    v_prev = reset(h[t - 1], fired, config)
                if config.decay_input:
                    dk = dk + grad_h * (ht - v_prev)
                else:
                    dk = dk - grad_h * (v_prev - config.v_rest)
            if config.neuron == "lif" and config.decay_input:
                grads.append(grad_h / config.tau)
            elif config.neuron == "plif" and config.decay_input:
                grads.append(grad_h * k)
            else:
                grads.append(grad_h)
            grad_h_next = grad_h
        grads.reverse()
        grad_x = torch.stack(grads).to(grad_spikes.dtype)
        if k is None:
            return grad_x, None
        dk = dk.sum() if k.dim() == 0 else dk.sum_to_size(k.shape)
        return grad_x, dk / k if config.decay_input else dk

    return torch.compile(forward, dynamic=False), torch.compile(backward, dynamic=False)


class CompiledNeuron(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, k: torch.Tensor | None, config: NeuronConfig,
                return_v: bool):  # fmt: skip
        forward_fn, _ = _compiled_pair(config, return_v)
        k_plain = None if k is None else k.detach()
        with torch._dynamo.config.patch(**_DYNAMO_SETTINGS):
            outputs = forward_fn(x.detach(), k_plain)
        ctx.save_for_backward(outputs[1], k_plain)
        ctx.set_materialize_grads(False)
        ctx.config = config
        ctx.return_v = return_v
        ctx.input_dtype = x.dtype
        return (outputs[0], outputs[2]) if return_v else outputs[0]

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None = None):
        h, k = ctx.saved_tensors
        _, backward_fn = _compiled_pair(ctx.config, ctx.return_v)
        if grad_spikes is None:
            grad_spikes = torch.zeros(h.shape, dtype=ctx.input_dtype, device=h.device)
        with torch._dynamo.config.patch(**_DYNAMO_SETTINGS):
            grad_x, grad_k = backward_fn(grad_spikes, grad_v, h, k)
        return grad_x.to(ctx.input_dtype), grad_k, None, None


def neuron_compiled(x: torch.Tensor, config: NeuronConfig, return_v: bool, w=None):
    k = decay_of(w, config, compute_dtype(x.dtype), x.shape[1:])
    return CompiledNeuron.apply(x, k, config, return_v)
