"""The autograd wrapper shared by the fused kernels (Triton, CUDA through CuPy).

A fused backend provides two kernels over a contiguous [T, N] layout:

* forward: one pass over T with V in registers; writes the spikes and the membrane before reset,
  which is all backward needs, saved as ``H - theta`` in the storage dtype: the surrogate is a
  function of that margin, and near the threshold, where the surrogate matters, the margin keeps
  far more precision than H itself in fp16/bf16. For float32, backward recomputes S exactly as
  margin >= 0; for half dtypes the spikes are also saved as uint8, since a margin rounded to
  fp16/bf16 could land on the other side of zero. Optionally V after reset;
* backward: the reverse time loop of BPTT (see :mod:`reference_kernels.model`), from the saved
  margin (and uint8 spikes) and the upstream gradients of S (and of V when it was returned).

Arithmetic inside both kernels is float32 for every storage dtype.
"""

from __future__ import annotations

from typing import Protocol

import torch

from .model import LIFConfig

FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class FusedKernels(Protocol):
    """What a fused backend implements; outputs are preallocated by :class:`FusedLIF`."""

    name: str

    def forward(
        self,
        x: torch.Tensor,
        spikes: torch.Tensor,
        margin: torch.Tensor,
        spikes_u8: torch.Tensor | None,
        v: torch.Tensor | None,
        config: LIFConfig,
    ) -> None: ...

    def backward(
        self,
        grad_spikes: torch.Tensor,
        grad_v: torch.Tensor | None,
        margin: torch.Tensor,
        spikes_u8: torch.Tensor | None,
        grad_x: torch.Tensor,
        config: LIFConfig,
    ) -> None: ...


def saves_spikes(dtype: torch.dtype) -> bool:
    """Whether forward keeps uint8 spikes for backward (half dtypes only, see module doc)."""
    return dtype != torch.float32


class FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, kernels: FusedKernels, config: LIFConfig, return_v: bool):
        shape = x.shape
        x2d = x.detach().reshape(shape[0], -1).contiguous()
        spikes = torch.empty_like(x2d)
        margin = torch.empty_like(x2d)
        spikes_u8 = (
            torch.empty(x2d.shape, dtype=torch.uint8, device=x.device)
            if saves_spikes(x.dtype)
            else None
        )
        v = torch.empty_like(x2d) if return_v else None
        kernels.forward(x2d, spikes, margin, spikes_u8, v, config)
        ctx.save_for_backward(margin, spikes_u8)
        ctx.set_materialize_grads(False)  # an unused V output costs no gradient pass
        ctx.kernels = kernels
        ctx.config = config
        ctx.shape = shape
        if return_v:
            return spikes.view(shape), v.view(shape)
        return spikes.view(shape)

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None = None):
        margin, spikes_u8 = ctx.saved_tensors
        steps = ctx.shape[0]
        if grad_spikes is None:  # only V was used downstream
            grad_spikes = torch.zeros_like(margin)
        grad_s2d = grad_spikes.reshape(steps, -1).contiguous()
        grad_v2d = None if grad_v is None else grad_v.reshape(steps, -1).contiguous()
        grad_x = torch.empty_like(margin)
        ctx.kernels.backward(grad_s2d, grad_v2d, margin, spikes_u8, grad_x, ctx.config)
        return grad_x.view(ctx.shape), None, None, None


def lif_fused(x: torch.Tensor, kernels: FusedKernels, config: LIFConfig, return_v: bool):
    return FusedLIF.apply(x, kernels, config, return_v)
