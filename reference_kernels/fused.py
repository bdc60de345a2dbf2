"""The autograd wrapper shared by the fused kernels (Triton, CUDA through CuPy), as PyTorch
custom ops, for the one-state neurons (IF, LIF, PLIF; :mod:`reference_kernels.model`; CUBA and
ALIF: :mod:`reference_kernels.fused_states`).

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

PLIF's decay k = sigmoid(w) reaches the kernels as a :class:`LearnedDecay` (k in float32, one
value or one per channel, computed by torch outside the kernels, so autograd carries dk on to
w). Backward then also returns dk's partial sums: the backend accumulates gH[t] * dH[t]/dk over
the time loop in registers and writes one float32 per program (or per thread, CUDA) for a
single k, or one per neuron for a per-channel k; this module reduces them (a sum, or a sum per
channel) and divides by k once for decay_input (the kernels accumulate gH * (H[t] - V[t-1]),
which is k times dH/dk, from the margins of steps t and t-1: backward reads nothing more than
LIF's). No [T, N] temporary is made for dk.

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
from dataclasses import dataclass
from typing import Protocol

import torch

from .model import NeuronConfig, channel_shape, kernel_tau, make_config

FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SAVES = ("margin", "recompute")


@dataclass(frozen=True)
class LearnedDecay:
    """PLIF's k for the kernels: float32, contiguous, one value or one per channel; the neuron
    at flat index n of a [T, N] row has channel (n // inner) % channels."""

    k: torch.Tensor
    channels: int
    inner: int

    @property
    def per_channel(self) -> bool:
        """More than one k: the kernels read each lane's, and backward's dk partials are one
        per neuron (one per program or thread otherwise)."""
        return self.channels > 1


def decay_inner(k: torch.Tensor | None, step_shape) -> int:
    """Neurons per channel run of a [T, N] row for ``k`` (1 for one k, or none)."""
    return channel_shape(step_shape)[2] if k is not None and k.dim() else 1


def learned_decay(k: torch.Tensor | None, inner: int) -> LearnedDecay | None:
    """The kernels' view of ``k`` (0-dim or [C]), ``inner`` neurons per channel run."""
    if k is None:
        return None
    return LearnedDecay(k.detach().float().reshape(-1).contiguous(), k.numel(), inner)


def reduce_dk(partials: torch.Tensor, decay: LearnedDecay, k: torch.Tensor,
              config: NeuronConfig) -> torch.Tensor:  # fmt: skip
    """dk, shaped like ``k``, from a backend's partial sums."""
    if decay.per_channel:
        total = partials.view(-1, decay.channels, decay.inner).sum(dim=(0, 2))
    else:
        total = partials.sum().reshape(k.shape)
    if config.decay_input:
        total = total / decay.k.reshape(total.shape)
    return total.to(k.dtype)


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
        config: NeuronConfig,
        decay: LearnedDecay | None = None,
    ) -> None:
        """Writes each output that is not None: spikes, the margin H - theta, V after reset.
        ``decay`` is PLIF's k (None for IF and LIF)."""

    def backward(
        self,
        grad_spikes: torch.Tensor,
        grad_v: torch.Tensor | None,
        margin: torch.Tensor,
        grad_x: torch.Tensor,
        config: NeuronConfig,
        decay: LearnedDecay | None = None,
    ) -> torch.Tensor | None:
        """Writes grad_x from the upstream gradients and the margin (S from its sign bit); for
        PLIF returns dk's float32 partial sums (see the module doc), else None."""


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
def _config(neuron, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, alpha,
            per_channel) -> NeuronConfig:  # fmt: skip
    # Validated once per distinct parameter set, not once per call.
    return make_config(neuron, tau=tau, decay_input=decay_input, per_channel=per_channel,
                       v_threshold=v_threshold, v_reset=v_reset, detach_reset=detach_reset,
                       surrogate=surrogate, alpha=alpha)  # fmt: skip


def _fields(config: NeuronConfig) -> tuple:
    """The config as the custom ops' plain arguments (IF's tau is an unused 1.0)."""
    return (
        config.neuron,
        kernel_tau(config),
        float(config.v_threshold),
        None if config.v_reset is None else float(config.v_reset),
        bool(config.decay_input),
        config.detach_reset,
        config.surrogate,
        float(config.alpha),
        bool(getattr(config, "per_channel", False)),
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


def _call(method, args: tuple, decay: LearnedDecay | None):
    """A backend's forward or backward; without a learned decay (IF, LIF) in LIF's own
    signature, which stubs and older backends implement."""
    return method(*args) if decay is None else method(*args, decay)


def _run_forward(
    kernels: FusedKernels,
    config: NeuronConfig,
    x: torch.Tensor,
    return_v: bool,
    save_margin: bool,
    decay: LearnedDecay | None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Runs the forward kernel over [T, ...] ``x``: (spikes, margin or None, V or None), each
    shaped like ``x``. They are new tensors, never views: an autograd.Function output that is a
    view of something cost ~4 us more per forward and ~9 us per backward on the 2-core CPU."""
    spikes, spikes_rows = _empty_rows(x)
    margin, margin_rows = _empty_rows(x) if save_margin else (None, None)
    v, v_rows = _empty_rows(x) if return_v else (None, None)
    _call(kernels.forward, (_rows(x), spikes_rows, margin_rows, v_rows, config), decay)
    return spikes, margin, v


def _run_backward(
    kernels: FusedKernels,
    config: NeuronConfig,
    saved: torch.Tensor,
    recompute: bool,
    grad_spikes: torch.Tensor,
    grad_v: torch.Tensor | None,
    decay: LearnedDecay | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(dX shaped like ``saved`` [T, ...], dk's partial sums or None) from dS (and dV);
    ``saved`` is the margin, or X itself when ``recompute``."""
    saved_rows = _rows(saved)
    if recompute:
        margin_rows = torch.empty_like(saved_rows)
        _call(kernels.forward, (saved_rows, None, margin_rows, None, config), decay)
    else:
        margin_rows = saved_rows
    grad_x, grad_x_rows = _empty_rows(saved)
    grad_v_rows = None if grad_v is None else _rows(grad_v)
    args = (_rows(grad_spikes), grad_v_rows, margin_rows, grad_x_rows, config)
    partials = _call(kernels.backward, args, decay)
    return grad_x, None if decay is None else partials


class _FusedNeuron(torch.autograd.Function):
    """The eager path: [T, ...] X (and PLIF's k) -> spikes (and V), backward through the same
    kernels."""

    @staticmethod
    def forward(ctx, x, k, spec):
        # the non-tensor arguments travel as one tuple: apply() inspects every argument, and
        # one tuple instead of four saves ~0.4 us a call
        kernels, config, return_v, save_margin = spec
        decay = learned_decay(k, decay_inner(k, x.shape[1:]))
        spikes, margin, v = _run_forward(kernels, config, x, return_v, save_margin, decay)
        ctx.save_for_backward(margin if save_margin else x, k)
        ctx.kernels, ctx.config, ctx.recompute = kernels, config, not save_margin
        ctx.decay = decay
        ctx.set_materialize_grads(False)  # an unused V output costs no gradient read
        if return_v:
            return spikes, v
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes, grad_v=None):
        saved, k = ctx.saved_tensors
        if grad_spikes is None:  # only V was used downstream
            grad_spikes = torch.zeros_like(saved)
        grad_x, partials = _run_backward(ctx.kernels, ctx.config, saved, ctx.recompute,
                                         grad_spikes, grad_v, ctx.decay)  # fmt: skip
        grad_k = None if partials is None else reduce_dk(partials, ctx.decay, k, ctx.config)
        return grad_x, grad_k, None


@torch.library.custom_op("reference_kernels::lif_fused_forward", mutates_args=())
def lif_fused_forward(
    x: torch.Tensor,
    k: torch.Tensor | None,
    backend_name: str,
    neuron: str,
    tau: float,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
    per_channel: bool,
    inner: int,
    return_v: bool,
    save_margin: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[T, N] X -> (spikes, margin, V); margin and V are empty (0 elements) when not asked for.
    ``k`` is PLIF's decay (None otherwise), ``inner`` its neurons per channel run."""
    config = _config(neuron, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate,
                     alpha, per_channel)  # fmt: skip
    spikes, margin, v = _run_forward(backend(backend_name), config, x.contiguous(), return_v,
                                     save_margin, learned_decay(k, inner))  # fmt: skip
    # a custom op returns tensors only: the outputs not asked for are empty
    return spikes, x.new_empty(0) if margin is None else margin, x.new_empty(0) if v is None else v


@lif_fused_forward.register_fake
def _(x, k, backend_name, neuron, tau, v_threshold, v_reset, decay_input, detach_reset,
      surrogate, alpha, per_channel, inner, return_v, save_margin):  # fmt: skip
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
    k: torch.Tensor | None,
    backend_name: str,
    neuron: str,
    tau: float,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
    per_channel: bool,
    inner: int,
    recompute: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dX, dk) from dS (and dV); ``saved`` is the margin, or X itself when ``recompute``; dk
    is shaped like ``k``, empty when ``k`` is None."""
    config = _config(neuron, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate,
                     alpha, per_channel)  # fmt: skip
    decay = learned_decay(k, inner)
    grad_x, partials = _run_backward(backend(backend_name), config, saved, recompute,
                                     grad_spikes, grad_v, decay)  # fmt: skip
    if partials is None:
        return grad_x, saved.new_empty(0)
    return grad_x, reduce_dk(partials, decay, k, config)


@lif_fused_backward.register_fake
def _(grad_spikes, grad_v, saved, k, backend_name, neuron, tau, v_threshold, v_reset,
      decay_input, detach_reset, surrogate, alpha, per_channel, inner, recompute):  # fmt: skip
    grad_k = saved.new_empty(0) if k is None else torch.empty_like(k)
    return torch.empty_like(saved, memory_format=torch.contiguous_format), grad_k


def _op_setup_context(ctx, inputs, output) -> None:
    x, k, backend_name, *fields, _return_v, save_margin = inputs
    _spikes, margin, _v = output
    ctx.save_for_backward(margin if save_margin else x, k)
    ctx.backend_name = backend_name
    ctx.fields = tuple(fields)
    ctx.recompute = not save_margin
    ctx.set_materialize_grads(False)  # an unused V output costs no gradient read
    ctx.mark_non_differentiable(margin)


def _op_backward(ctx, grad_spikes, _grad_margin, grad_v):
    saved, k = ctx.saved_tensors
    if grad_spikes is None:  # only V was used downstream
        grad_spikes = torch.zeros_like(saved)
    if grad_v is not None and grad_v.numel() == 0:  # V was not returned
        grad_v = None
    grad_x, grad_k = lif_fused_backward(
        grad_spikes, grad_v, saved, k, ctx.backend_name, *ctx.fields, ctx.recompute
    )
    return (grad_x, None if k is None else grad_k, *[None] * 13)


lif_fused_forward.register_autograd(_op_backward, setup_context=_op_setup_context)


def neuron_fused(
    x: torch.Tensor,
    kernels: FusedKernels,
    config: NeuronConfig,
    return_v: bool,
    save: str = "margin",
    k: torch.Tensor | None = None,
):
    """The fused multi-step neuron over ``x`` [T, ...] through ``kernels`` (see module doc);
    ``k`` is PLIF's sigmoid(w), 0-dim or [C], differentiable (None for IF and LIF)."""
    if save not in SAVES:
        raise ValueError(f"save must be one of {', '.join(SAVES)}, got {save!r}")
    if not torch.compiler.is_compiling():
        return _FusedNeuron.apply(x, k, (kernels, config, return_v, save == "margin"))
    shape = x.shape
    name = kernels.name
    if _BACKENDS.get(name) is not kernels:
        # Registering here, while torch.compile traces, would be replayed only after the
        # compiled graph ran its ops, which would then find no backend.
        raise ValueError(
            f"fused backend {name!r} is not registered: call reference_kernels.fused.register() "
            "on it before torch.compile traces a call"
        )
    inner = decay_inner(k, shape[1:])
    spikes, _margin, v = lif_fused_forward(x.reshape(shape[0], -1), k, name, *_fields(config),
                                           inner, return_v, save == "margin")  # fmt: skip
    if return_v:
        return spikes.view(shape), v.view(shape)
    return spikes.view(shape)


def lif_fused(x, kernels: FusedKernels, config: NeuronConfig, return_v: bool,
              save: str = "margin"):  # fmt: skip
    """:func:`neuron_fused` for a neuron without a learned decay (LIF, IF)."""
    return neuron_fused(x, kernels, config, return_v, save)
