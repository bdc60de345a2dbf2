"""Fused multi-step LIF in Triton: one forward kernel over T, one reverse-time backward kernel.

Each program owns BLOCK neurons and keeps their membrane in registers for the whole sequence.
Forward reads X once and writes S and the margin H - theta once (plus uint8 spikes for half
dtypes, and V when asked); backward reads dS (and dV) and the margin once and writes dX once: the
minimum traffic of this algorithm (see :mod:`reference_kernels.fused` for what is saved and why).
Arithmetic is float32 whatever the storage dtype. Division is correctly rounded (``div_rn``) so
float32 results match the eager oracle bit for bit.

On CPU tensors the kernels run only under the Triton interpreter (``TRITON_INTERPRET=1`` set
before this module is imported): slow, meant for tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .model import SURROGATE_ID, LIFConfig

BLOCK = 1024
NUM_WARPS = 4


@triton.jit
def _surrogate_grad(x, alpha, SURROGATE: tl.constexpr):
    if SURROGATE == 0:  # sigmoid
        sig = 1.0 / (1.0 + tl.exp(-alpha * x))
        grad = alpha * sig * (1.0 - sig)
    elif SURROGATE == 1:  # atan
        scaled = 1.5707963267948966 * alpha * x
        grad = (alpha * 0.5) / (1.0 + scaled * scaled)
    elif SURROGATE == 2:  # superspike
        denominator = 1.0 + alpha * tl.abs(x)
        grad = 1.0 / (denominator * denominator)
    else:  # piecewise_exp
        grad = (alpha * 0.5) * tl.exp(-alpha * tl.abs(x))
    return grad


# The launcher turns an int argument equal to 1 into a compile-time constant (a Python int in
# the kernel body), so T=1 would get code where `steps.to(...)` fails to compile: `steps` is
# never specialised. `n` is: the launcher then learns when N is a multiple of 16, which proves
# every row start 16-byte aligned, and the loads and stores become 128-bit (tests/triton_aot.py
# counts them in the sm_90 PTX); odd or unaligned N keeps the scalar, masked path.
@triton.jit(do_not_specialize=["steps"])
def _lif_forward_kernel(
    x_ptr,
    spikes_ptr,
    margin_ptr,
    spikes_u8_ptr,
    v_ptr,
    n,
    steps,
    tau,
    v_threshold,
    v_rest,
    SOFT_RESET: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    SAVE_SPIKES: tl.constexpr,
    WRITE_V: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    v = tl.zeros([BLOCK], dtype=tl.float32) + v_rest
    index = offsets
    for _ in range(steps):
        x = tl.load(x_ptr + index, mask=mask, other=0.0).to(tl.float32)
        if DECAY_INPUT:
            h = v + tl.math.div_rn(x - (v - v_rest), tau)
        else:
            h = v - tl.math.div_rn(v - v_rest, tau) + x
        spike = (h >= v_threshold).to(tl.float32)
        if SOFT_RESET:
            v = h - spike * v_threshold
        else:
            v = spike * v_rest + (1.0 - spike) * h
        tl.store(spikes_ptr + index, spike.to(spikes_ptr.dtype.element_ty), mask=mask)
        tl.store(margin_ptr + index, (h - v_threshold).to(margin_ptr.dtype.element_ty), mask=mask)
        if SAVE_SPIKES:
            tl.store(spikes_u8_ptr + index, spike.to(tl.uint8), mask=mask)
        if WRITE_V:
            tl.store(v_ptr + index, v.to(v_ptr.dtype.element_ty), mask=mask)
        index += n


@triton.jit(do_not_specialize=["steps"])
def _lif_backward_kernel(
    grad_spikes_ptr,
    grad_v_ptr,
    margin_ptr,
    spikes_u8_ptr,
    grad_x_ptr,
    n,
    steps,
    tau,
    decay,
    v_threshold,
    v_rest,
    alpha,
    SOFT_RESET: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    HAS_GRAD_V: tl.constexpr,
    SAVED_SPIKES: tl.constexpr,
    SURROGATE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    grad_h_next = tl.zeros([BLOCK], dtype=tl.float32)
    index = offsets + (steps - 1).to(tl.int64) * n
    for _ in range(steps):
        margin = tl.load(margin_ptr + index, mask=mask, other=0.0).to(tl.float32)
        h = margin + v_threshold
        if SAVED_SPIKES:
            spike = tl.load(spikes_u8_ptr + index, mask=mask, other=0).to(tl.float32)
        else:  # float32 H - theta keeps the sign of the comparison exactly
            spike = (margin >= 0.0).to(tl.float32)
        sg = _surrogate_grad(margin, alpha, SURROGATE)
        grad_v_total = grad_h_next * decay
        if HAS_GRAD_V:
            grad_v_total += tl.load(grad_v_ptr + index, mask=mask, other=0.0).to(tl.float32)
        grad_s = tl.load(grad_spikes_ptr + index, mask=mask, other=0.0).to(tl.float32)
        if SOFT_RESET:
            if not DETACH_RESET:
                grad_s = grad_s - grad_v_total * v_threshold
            grad_h = grad_s * sg + grad_v_total
        else:
            if not DETACH_RESET:
                grad_s = grad_s + grad_v_total * (v_rest - h)
            grad_h = grad_s * sg + grad_v_total * (1.0 - spike)
        if DECAY_INPUT:
            grad_x = tl.math.div_rn(grad_h, tau)
        else:
            grad_x = grad_h
        tl.store(grad_x_ptr + index, grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)
        grad_h_next = grad_h
        index -= n


def interpreted() -> bool:
    """Whether the kernels were built for the Triton interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(_lif_forward_kernel, triton.runtime.JITFunction)


class TritonKernels:
    """The Triton backend of :class:`reference_kernels.fused.FusedLIF`."""

    name = "triton"

    def forward(self, x, spikes, margin, spikes_u8, v, config: LIFConfig) -> None:
        steps, n = x.shape
        if steps == 0 or n == 0:
            return
        _lif_forward_kernel[(triton.cdiv(n, BLOCK),)](
            x,
            spikes,
            margin,
            margin if spikes_u8 is None else spikes_u8,  # unused pointers get a placeholder
            margin if v is None else v,
            n,
            steps,
            float(config.tau),
            float(config.v_threshold),
            config.v_rest,
            SOFT_RESET=config.soft_reset,
            DECAY_INPUT=config.decay_input,
            SAVE_SPIKES=spikes_u8 is not None,
            WRITE_V=v is not None,
            BLOCK=BLOCK,
            num_warps=NUM_WARPS,
        )

    def backward(self, grad_spikes, grad_v, margin, spikes_u8, grad_x, config: LIFConfig) -> None:
        steps, n = margin.shape
        if steps == 0 or n == 0:
            return
        _lif_backward_kernel[(triton.cdiv(n, BLOCK),)](
            grad_spikes,
            margin if grad_v is None else grad_v,
            margin,
            margin if spikes_u8 is None else spikes_u8,
            grad_x,
            n,
            steps,
            float(config.tau),
            1.0 - 1.0 / config.tau,
            float(config.v_threshold),
            config.v_rest,
            float(config.alpha),
            SOFT_RESET=config.soft_reset,
            DECAY_INPUT=config.decay_input,
            DETACH_RESET=config.detach_reset,
            HAS_GRAD_V=grad_v is not None,
            SAVED_SPIKES=spikes_u8 is not None,
            SURROGATE=SURROGATE_ID[config.surrogate],
            BLOCK=BLOCK,
            num_warps=NUM_WARPS,
        )


def check_device(device: torch.device) -> None:
    """Raises ValueError when the kernels cannot run on ``device``."""
    if device.type == "cuda" or (device.type == "cpu" and interpreted()):
        return
    if device.type == "cpu":
        raise ValueError(
            "device: impl='triton' runs on CUDA tensors; on CPU only under the Triton interpreter "
            "(set TRITON_INTERPRET=1 before importing reference_kernels)"
        )
    raise ValueError(f"device: impl='triton' cannot run on {device.type!r} tensors")
