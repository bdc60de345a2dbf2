"""The autograd wrapper shared by the fused kernels (Triton, CUDA through CuPy), as PyTorch
custom ops.

A fused backend provides two kernels over a contiguous [T, N] layout:

* forward: one pass over T with V in registers; writes the spikes and the membrane before reset,
  which is all backward needs, saved as the margin ``H - theta`` in the storage dtype: the
  surrogate is a function of that margin, and near the threshold, where the surrogate matters,
  the margin keeps far more precision than H itself in fp16/bf16. Backward recovers S from the
  margin's sign bit, exactly for every dtype: in float32, fl(H - theta) >= 0 iff H >= theta (it
  is +0.0 when they are equal), and rounding a negative margin to fp16/bf16 keeps its sign even
  where it underflows to -0.0 (which ``>= 0`` would misread as a spike). Optionally V after reset;
* backward: the reverse time loop of BPTT (see :mod:`reference_kernels.model`), from the saved
  margin and the upstream gradients of S (and of V when it was returned).

What is kept for backward (``save``):

* ``"margin"`` (default): the margin, one new [T, N] tensor, written by forward;
* ``"recompute"``: nothing new, only a reference to X; backward first runs the forward kernel
  again into a transient margin (it cannot run the recurrence backwards: a reset loses V), then
  the backward kernel. One more read of X and one more write and read of the margin in backward,
  in exchange for no activation memory held between forward and backward beyond X itself.

Arithmetic inside both kernels is float32 for every storage dtype.

Two ways in, one body (:func:`_run_forward` and :func:`_run_backward` allocate the outputs and
call the backend):

* eagerly, a ``torch.autograd.Function`` (:class:`_FusedLIF`): the host's work per call is a
  few microseconds of Python around the two launches (benchmarks/host_overhead.py measures it);
* under torch.compile, PyTorch custom ops (``torch.library.custom_op``) with their autograd
  registered, so the compiled graph keeps forward and backward as single nodes (no graph
  break). A custom op takes no Python objects, so backends are looked up by name in a registry
  (:func:`register`). Called eagerly, a custom op costs ~60 us more per direction in
  ``torch.library``'s Python (argument defaults, redispatch), which is why eager calls take the
  Function.

Both capture in CUDA graphs: the launches go on the current stream, the outputs come from
torch's allocator.
"""

from __future__ import annotations

import functools
from typing import Protocol

import torch

from .model import LIFConfig

FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SAVES = ("margin", "recompute")


class FusedKernels(Protocol):
    """What a fused backend implements; outputs are preallocated by the ops below.

    The contract: every tensor of a call is a contiguous [T, N] tensor of one dtype on one
    device, the outputs included (this module allocates them from the input, so a backend
    checks the tensor it sizes the launch by, not each of the others: each check of a tensor
    costs its Python call about a microsecond). ``name`` identifies the backend in the
    registry, so it must differ between backends (or launch geometries) that behave
    differently."""

    name: str

    def forward(
        self,
        x: torch.Tensor,
        spikes: torch.Tensor | None,
        margin: torch.Tensor | None,
        v: torch.Tensor | None,
        config: LIFConfig,
    ) -> None:
        """Writes each output that is not None: spikes, the margin H - theta, V after reset."""

    def backward(
        self,
        grad_spikes: torch.Tensor,
        grad_v: torch.Tensor | None,
        margin: torch.Tensor,
        grad_x: torch.Tensor,
        config: LIFConfig,
    ) -> None:
        """Writes grad_x from the upstream gradients and the margin (S from its sign bit)."""


_BACKENDS: dict[str, FusedKernels] = {}


def register(kernels: FusedKernels) -> str:
    """Makes ``kernels`` callable from the custom ops under ``kernels.name``; returns the name.
    The built-in backends register themselves when their module is imported."""
    _BACKENDS[kernels.name] = kernels
    return kernels.name


def backend(name: str) -> FusedKernels:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"no fused backend registered as {name!r}") from None


@functools.lru_cache(maxsize=64)
def _config(tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, alpha) -> LIFConfig:
    # Validated once per distinct parameter set, not once per call.
    return LIFConfig(tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, alpha)


def _fields(config: LIFConfig) -> tuple:
    return (
        float(config.tau),
        float(config.v_threshold),
        None if config.v_reset is None else float(config.v_reset),
        config.decay_input,
        config.detach_reset,
        config.surrogate,
        float(config.alpha),
    )


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """[T, ...] as the kernels' contiguous [T, N] (the tensor itself when it already is one)."""
    if tensor.dim() != 2:
        tensor = tensor.reshape(tensor.shape[0], -1)
    return tensor if tensor.is_contiguous() else tensor.contiguous()


def _empty_rows(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A new contiguous tensor shaped like ``like`` [T, ...], and its [T, N] view for the
    kernels to write."""
    out = torch.empty_like(like, memory_format=torch.contiguous_format)
    return out, out if out.dim() == 2 else out.view(out.shape[0], -1)


def _run_forward(
    kernels: FusedKernels, config: LIFConfig, x: torch.Tensor, return_v: bool, save_margin: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Runs the forward kernel over [T, ...] ``x``: (spikes, margin or None, V or None), each
    shaped like ``x``. They are new tensors, never views: an autograd.Function output that is a
    view of something cost ~4 us more per forward and ~9 us per backward on the 2-core CPU."""
    spikes, spikes_rows = _empty_rows(x)
    margin, margin_rows = _empty_rows(x) if save_margin else (None, None)
    v, v_rows = _empty_rows(x) if return_v else (None, None)
    kernels.forward(_rows(x), spikes_rows, margin_rows, v_rows, config)
    return spikes, margin, v


def _run_backward(
    kernels: FusedKernels,
    config: LIFConfig,
    saved: torch.Tensor,
    recompute: bool,
    grad_spikes: torch.Tensor,
    grad_v: torch.Tensor | None,
) -> torch.Tensor:
    """dX, shaped like ``saved`` [T, ...], from dS (and dV); ``saved`` is the margin, or X
    itself when ``recompute``."""
    saved_rows = _rows(saved)
    if recompute:
        margin_rows = torch.empty_like(saved_rows)
        kernels.forward(saved_rows, None, margin_rows, None, config)
    else:
        margin_rows = saved_rows
    grad_x, grad_x_rows = _empty_rows(saved)
    grad_v_rows = None if grad_v is None else _rows(grad_v)
    kernels.backward(_rows(grad_spikes), grad_v_rows, margin_rows, grad_x_rows, config)
    return grad_x


class _FusedLIF(torch.autograd.Function):
    """The eager path: [T, ...] X -> spikes (and V), backward through the same kernels."""

    @staticmethod
    def forward(ctx, x, spec):
        # the non-tensor arguments travel as one tuple: apply() inspects every argument, and
        # one tuple instead of four saves ~0.4 us a call
        kernels, config, return_v, save_margin = spec
        spikes, margin, v = _run_forward(kernels, config, x, return_v, save_margin)
        ctx.save_for_backward(margin if save_margin else x)
        ctx.kernels, ctx.config, ctx.recompute = kernels, config, not save_margin
        ctx.set_materialize_grads(False)  # an unused V output costs no gradient read
        if return_v:
            return spikes, v
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes, grad_v=None):
        (saved,) = ctx.saved_tensors
        if grad_spikes is None:  # only V was used downstream
            grad_spikes = torch.zeros_like(saved)
        grad_x = _run_backward(ctx.kernels, ctx.config, saved, ctx.recompute, grad_spikes, grad_v)
        return grad_x, None


@torch.library.custom_op("reference_kernels::lif_fused_forward", mutates_args=())
def lif_fused_forward(
    x: torch.Tensor,
    backend_name: str,
    tau: float,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
    return_v: bool,
    save_margin: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[T, N] X -> (spikes, margin, V); margin and V are empty (0 elements) when not asked for."""
    config = _config(tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, alpha)
    spikes, margin, v = _run_forward(
        backend(backend_name), config, x.contiguous(), return_v, save_margin
    )
    # a custom op returns tensors only: the outputs not asked for are empty
    return spikes, x.new_empty(0) if margin is None else margin, x.new_empty(0) if v is None else v


@lif_fused_forward.register_fake
def _(x, backend_name, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, alpha,
      return_v, save_margin):  # fmt: skip
    empty = x.new_empty(0)
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        torch.empty_like(x, memory_format=torch.contiguous_format) if save_margin else empty,
        torch.empty_like(x, memory_format=torch.contiguous_format) if return_v else empty.clone(),
    )


@torch.library.custom_op("reference_kernels::lif_fused_backward", mutates_args=())
def lif_fused_backward(
    grad_spikes: torch.Tensor,
    grad_v: torch.Tensor | None,
    saved: torch.Tensor,
    backend_name: str,
    tau: float,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
    recompute: bool,
) -> torch.Tensor:
    """dX from dS (and dV); ``saved`` is the margin, or X itself when ``recompute``."""
    config = _config(tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, alpha)
    return _run_backward(backend(backend_name), config, saved, recompute, grad_spikes, grad_v)


@lif_fused_backward.register_fake
def _(grad_spikes, grad_v, saved, backend_name, tau, v_threshold, v_reset, decay_input,
      detach_reset, surrogate, alpha, recompute):  # fmt: skip
    return torch.empty_like(saved, memory_format=torch.contiguous_format)


def _op_setup_context(ctx, inputs, output) -> None:
    x, backend_name, *fields, _return_v, save_margin = inputs
    _spikes, margin, _v = output
    ctx.save_for_backward(margin if save_margin else x)
    ctx.backend_name = backend_name
    ctx.fields = tuple(fields)
    ctx.recompute = not save_margin
    ctx.set_materialize_grads(False)  # an unused V output costs no gradient read
    ctx.mark_non_differentiable(margin)


def _op_backward(ctx, grad_spikes, _grad_margin, grad_v):
    (saved,) = ctx.saved_tensors
    if grad_spikes is None:  # only V was used downstream
        grad_spikes = torch.zeros_like(saved)
    if grad_v is not None and grad_v.numel() == 0:  # V was not returned
        grad_v = None
    grad_x = lif_fused_backward(
        grad_spikes, grad_v, saved, ctx.backend_name, *ctx.fields, ctx.recompute
    )
    return (grad_x, *[None] * 10)


lif_fused_forward.register_autograd(_op_backward, setup_context=_op_setup_context)


def lif_fused(
    x: torch.Tensor,
    kernels: FusedKernels,
    config: LIFConfig,
    return_v: bool,
    save: str = "margin",
):
    """The fused multi-step LIF over ``x`` [T, ...] through ``kernels`` (see module doc)."""
    if save not in SAVES:
        raise ValueError(f"save must be one of {', '.join(SAVES)}, got {save!r}")
    if not torch.compiler.is_compiling():
        return _FusedLIF.apply(x, (kernels, config, return_v, save == "margin"))
    shape = x.shape
    name = kernels.name
    if _BACKENDS.get(name) is not kernels:
        # Registering here, while torch.compile traces, would be replayed only after the
        # compiled graph ran its ops, which would then find no backend.
        raise ValueError(
            f"fused backend {name!r} is not registered: call reference_kernels.fused.register() "
            "on it before torch.compile traces a call"
        )
    spikes, _margin, v = lif_fused_forward(
        x.reshape(shape[0], -1), name, *_fields(config), return_v, save == "margin"
    )
    if return_v:
        return spikes.view(shape), v.view(shape)
    return spikes.view(shape)
