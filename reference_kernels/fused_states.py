"""The autograd wrapper of the fused two-state neurons (CUBA, ALIF), eager and as PyTorch custom
ops, beside :mod:`reference_kernels.fused` (IF, LIF, PLIF), whose registry of backends and
conventions it shares.

A backend provides ``forward_states`` and ``backward_states`` over contiguous [T, N] tensors
(see :class:`StateKernels`). Forward keeps V and the second state (CUBA's current I, ALIF's
adaptation A) in registers for the whole sequence and writes the spikes, plus what backward
needs (``save="margin"``, the default):

* the margin H - theta (S from its sign bit, the surrogate at it), for both neurons: CUBA's
  adjoint needs no saved I, since gI[t] = gH[t] c + d_syn gI[t+1] runs from gH alone;
* ALIF's threshold theta[t] too, unless detach_reset: the reset's gradient needs it (V_r - H
  for a hard reset, -theta for a soft one) and it cannot be recovered in reverse time
  (A[t-1] = (A[t] - S[t]) / d_a would amplify rounding step after step).

``save="recompute"`` keeps only X; backward runs the forward kernel again into transient
buffers first. V and the state are written only when returned (``return_v``), and backward
takes upstream gradients on them.
"""

from __future__ import annotations

import functools
from typing import Protocol

import torch

from .fused import _BACKENDS, _empty_rows, _rows, backend
from .model import STATES, NeuronConfig, make_config

STATE_NEURONS = ("cuba", "alif")


class StateKernels(Protocol):
    """What a fused backend implements for CUBA and ALIF (every tensor contiguous [T, N], one
    dtype and device; outputs preallocated here; an output that is None is not written)."""

    name: str

    def forward_states(self, x, spikes, margin, theta, v, state, config: NeuronConfig) -> None:
        """Writes spikes, the margin H - theta, ALIF's theta[t], and V with the state (both or
        neither)."""

    def backward_states(self, grad_spikes, grad_v, grad_state, margin, theta, grad_x,
                        config: NeuronConfig) -> None:  # fmt: skip
        """Writes grad_x from dS (and dV, the state's gradient) and the margin (and theta)."""


def saves_theta(config: NeuronConfig) -> bool:
    """Whether backward needs ALIF's theta[t] (a [T, N] tensor more than the margin)."""
    return config.neuron == "alif" and not config.detach_reset


def _run_forward(kernels: StateKernels, config: NeuronConfig, x: torch.Tensor, return_v: bool,
                 save_margin: bool) -> tuple:  # fmt: skip
    """(spikes, margin, theta, V, state), each shaped like ``x`` or None where not written."""
    outputs, rows = [], []
    wanted = (True, save_margin, save_margin and saves_theta(config), return_v, return_v)
    for want in wanted:
        out, out_rows = _empty_rows(x) if want else (None, None)
        outputs.append(out)
        rows.append(out_rows)
    kernels.forward_states(_rows(x), *rows, config)
    return tuple(outputs)


def _run_backward(kernels: StateKernels, config: NeuronConfig, saved: tuple, recompute: bool,
                  grad_spikes, grad_v, grad_state) -> torch.Tensor:  # fmt: skip
    """dX from dS (and dV, d-state); ``saved`` is (margin, theta or None), or (X,) when
    ``recompute``."""
    if recompute:
        x_rows = _rows(saved[0])
        margin = torch.empty_like(x_rows)
        theta = torch.empty_like(x_rows) if saves_theta(config) else None
        kernels.forward_states(x_rows, None, margin, theta, None, None, config)
        like = saved[0]
    else:
        like, theta = saved
        margin = _rows(like)
        theta = None if theta is None else _rows(theta)
    grad_x, grad_x_rows = _empty_rows(like)
    kernels.backward_states(
        _rows(grad_spikes),
        None if grad_v is None else _rows(grad_v),
        None if grad_state is None else _rows(grad_state),
        margin,
        theta,
        grad_x_rows,
        config,
    )
    return grad_x


class _FusedStates(torch.autograd.Function):
    """The eager path: [T, ...] X -> spikes (or spikes, V, state)."""

    @staticmethod
    def forward(ctx, x, spec):
        kernels, config, return_v, save_margin = spec
        spikes, margin, theta, v, state = _run_forward(kernels, config, x, return_v, save_margin)
        ctx.save_for_backward(*((margin, theta) if save_margin else (x,)))
        ctx.kernels, ctx.config, ctx.recompute = kernels, config, not save_margin
        ctx.set_materialize_grads(False)
        return (spikes, v, state) if return_v else spikes

    @staticmethod
    def backward(ctx, grad_spikes, grad_v=None, grad_state=None):
        saved = ctx.saved_tensors
        if grad_spikes is None:  # only V or the state was used downstream
            grad_spikes = torch.zeros_like(saved[0])
        grad_x = _run_backward(ctx.kernels, ctx.config, saved, ctx.recompute, grad_spikes,
                               grad_v, grad_state)  # fmt: skip
        return grad_x, None


@functools.lru_cache(maxsize=64)
def _config(neuron, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate, alpha,
            state_tau, beta_a, detach_adaptation) -> NeuronConfig:  # fmt: skip
    own = (
        {"tau_syn": state_tau}
        if neuron == "cuba"
        else {"tau_a": state_tau, "beta_a": beta_a, "detach_adaptation": detach_adaptation}
    )
    return make_config(neuron, tau=tau, decay_input=decay_input, neuron_fields=own,
                       v_threshold=v_threshold, v_reset=v_reset, detach_reset=detach_reset,
                       surrogate=surrogate, alpha=alpha)  # fmt: skip


def _fields(config: NeuronConfig) -> tuple:
    """The config as the custom ops' plain arguments."""
    alif = config.neuron == "alif"
    return (
        config.neuron,
        float(config.tau),
        float(config.v_threshold),
        None if config.v_reset is None else float(config.v_reset),
        bool(config.decay_input),
        config.detach_reset,
        config.surrogate,
        float(config.alpha),
        float(config.tau_a if alif else config.tau_syn),
        float(config.beta_a) if alif else 0.0,
        bool(config.detach_adaptation) if alif else False,
    )


@torch.library.custom_op("reference_kernels::states_fused_forward", mutates_args=())
def states_fused_forward(
    x: torch.Tensor,
    backend_name: str,
    neuron: str,
    tau: float,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
    state_tau: float,
    beta_a: float,
    detach_adaptation: bool,
    return_v: bool,
    save_margin: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """[T, N] X -> (spikes, margin, theta, V, state), each empty (0 elements) when not written."""
    config = _config(neuron, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate,
                     alpha, state_tau, beta_a, detach_adaptation)  # fmt: skip
    outputs = _run_forward(backend(backend_name), config, x.contiguous(), return_v, save_margin)
    return tuple(x.new_empty(0) if out is None else out for out in outputs)


@states_fused_forward.register_fake
def _(x, backend_name, neuron, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate,
      alpha, state_tau, beta_a, detach_adaptation, return_v, save_margin):  # fmt: skip
    theta = save_margin and neuron == "alif" and not detach_reset
    wanted = (True, save_margin, theta, return_v, return_v)
    return tuple(torch.empty_like(x, memory_format=torch.contiguous_format) if want
                 else x.new_empty(0) for want in wanted)  # fmt: skip


@torch.library.custom_op("reference_kernels::states_fused_backward", mutates_args=())
def states_fused_backward(
    grad_spikes: torch.Tensor,
    grad_v: torch.Tensor | None,
    grad_state: torch.Tensor | None,
    saved: torch.Tensor,
    theta: torch.Tensor | None,
    backend_name: str,
    neuron: str,
    tau: float,
    v_threshold: float,
    v_reset: float | None,
    decay_input: bool,
    detach_reset: bool,
    surrogate: str,
    alpha: float,
    state_tau: float,
    beta_a: float,
    detach_adaptation: bool,
    recompute: bool,
) -> torch.Tensor:
    """dX; ``saved`` is the margin (``theta`` ALIF's threshold or None), or X when
    ``recompute``."""
    config = _config(neuron, tau, v_threshold, v_reset, decay_input, detach_reset, surrogate,
                     alpha, state_tau, beta_a, detach_adaptation)  # fmt: skip
    kept = (saved,) if recompute else (saved, theta)
    return _run_backward(backend(backend_name), config, kept, recompute, grad_spikes, grad_v,
                         grad_state)  # fmt: skip


@states_fused_backward.register_fake
def _(grad_spikes, grad_v, grad_state, saved, theta, *rest):
    return torch.empty_like(saved, memory_format=torch.contiguous_format)


def _op_setup_context(ctx, inputs, output) -> None:
    x, backend_name, *fields, _return_v, save_margin = inputs
    _spikes, margin, theta, _v, _state = output
    if save_margin:
        ctx.save_for_backward(margin, theta if theta.numel() else None)
    else:
        ctx.save_for_backward(x, None)
    ctx.backend_name, ctx.fields, ctx.recompute = backend_name, tuple(fields), not save_margin
    ctx.set_materialize_grads(False)
    ctx.mark_non_differentiable(margin, theta)


def _op_backward(ctx, grad_spikes, _grad_margin, _grad_theta, grad_v, grad_state):
    saved, theta = ctx.saved_tensors
    if grad_spikes is None:
        grad_spikes = torch.zeros_like(saved)
    grad_v = None if grad_v is None or grad_v.numel() == 0 else grad_v
    grad_state = None if grad_state is None or grad_state.numel() == 0 else grad_state
    grad_x = states_fused_backward(grad_spikes, grad_v, grad_state, saved, theta,
                                   ctx.backend_name, *ctx.fields, ctx.recompute)  # fmt: skip
    return (grad_x, *[None] * 14)


states_fused_forward.register_autograd(_op_backward, setup_context=_op_setup_context)


def states_fused(x: torch.Tensor, kernels: StateKernels, config: NeuronConfig, return_v: bool,
                 save: str = "margin"):  # fmt: skip
    """CUBA or ALIF over ``x`` [T, ...] through ``kernels``: the spikes, or with ``return_v``
    (spikes, V, {"i": I} or {"a": A})."""
    if config.neuron not in STATE_NEURONS:
        raise ValueError(f"states_fused runs CUBA and ALIF, not {config.neuron.upper()}")
    if not hasattr(kernels, "forward_states"):
        raise ValueError(f"fused backend {kernels.name!r} has no CUBA/ALIF kernels")
    if not torch.compiler.is_compiling():
        out = _FusedStates.apply(x, (kernels, config, return_v, save == "margin"))
    else:
        if _BACKENDS.get(kernels.name) is not kernels:
            raise ValueError(f"fused backend {kernels.name!r} is not registered: call "
                             "reference_kernels.fused.register() on it before torch.compile "
                             "traces a call")  # fmt: skip
        shape = x.shape
        spikes, _m, _t, v, state = states_fused_forward(
            x.reshape(shape[0], -1), kernels.name, *_fields(config), return_v, save == "margin"
        )
        out = (spikes.view(shape), v.view(shape), state.view(shape)) if return_v else (
            spikes.view(shape))  # fmt: skip
    if not return_v:
        return out
    spikes, v, state = out
    (name,) = STATES[config.neuron]
    return spikes, v, {name: state}
