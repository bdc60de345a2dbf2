"""The canonical LIF step under torch.compile: forward and backward each one fused loop.

Forward runs the step functions of :mod:`reference_kernels.model` (``charge``, ``reset``) over
T; backward runs the BPTT equations of the same module in reverse time. Each is compiled once per
(config, T, dtype, device) with the parameters as constants, so Inductor fuses the whole time loop
into one kernel that reads X once and writes S and H once (forward), and reads dS and H once and
writes dX once (backward). Only H is saved; S is recomputed from it as H >= theta. Arithmetic is
float32 for half inputs (float64 for float64), as in the oracle.
"""

from __future__ import annotations

import functools

import torch
import torch._dynamo

from .model import LIFConfig, charge, reset, surrogate_grad
from .torch_ref import compute_dtype

# Every (config, T, dtype) is its own graph; dynamo's default limit of 8 would silently fall back
# to eager beyond it. Raise the limit and make hitting it an error, never a silent slow path.
_DYNAMO_SETTINGS = {"recompile_limit": 1024, "fail_on_recompile_limit_hit": True}


@functools.cache
def _compiled_pair(config: LIFConfig, return_v: bool):
    def forward(x: torch.Tensor):
        xc = x.to(compute_dtype(x.dtype))
        v = torch.full_like(xc[0], config.v_initial)
        spikes, charges, membranes = [], [], []
        for t in range(xc.shape[0]):
            h = charge(v, xc[t], config)
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

    def backward(grad_spikes: torch.Tensor, grad_v: torch.Tensor | None, h: torch.Tensor):
        gs = grad_spikes.to(h.dtype)
        gv = None if grad_v is None else grad_v.to(h.dtype)
        decay = 1.0 - 1.0 / config.tau
        grad_h_next = torch.zeros_like(h[0])
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
            grads.append(grad_h / config.tau if config.decay_input else grad_h)
            grad_h_next = grad_h
        grads.reverse()
        return torch.stack(grads).to(grad_spikes.dtype)

    return torch.compile(forward, dynamic=False), torch.compile(backward, dynamic=False)


class CompiledLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, config: LIFConfig, return_v: bool):
        forward_fn, _ = _compiled_pair(config, return_v)
        with torch._dynamo.config.patch(**_DYNAMO_SETTINGS):
            outputs = forward_fn(x.detach())
        ctx.save_for_backward(outputs[1])
        ctx.set_materialize_grads(False)
        ctx.config = config
        ctx.return_v = return_v
        ctx.input_dtype = x.dtype
        return (outputs[0], outputs[2]) if return_v else outputs[0]

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None = None):
        (h,) = ctx.saved_tensors
        _, backward_fn = _compiled_pair(ctx.config, ctx.return_v)
        if grad_spikes is None:
            grad_spikes = torch.zeros(h.shape, dtype=ctx.input_dtype, device=h.device)
        with torch._dynamo.config.patch(**_DYNAMO_SETTINGS):
            grad_x = backward_fn(grad_spikes, grad_v, h)
        return grad_x.to(ctx.input_dtype), None, None


def lif_compiled(x: torch.Tensor, config: LIFConfig, return_v: bool):
    return CompiledLIF.apply(x, config, return_v)
