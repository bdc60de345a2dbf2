"""Reference multi-step neuron kernels: the yardstick every framework is measured against.

One public entry point, :func:`multistep`, for every canonical neuron (IF, LIF, PLIF, CUBA,
ALIF; see :mod:`reference_kernels.model`), with up to four implementations of each
(:data:`IMPL_NEURONS`), and :func:`lif_multistep`, LIF's shorthand with its parameters as
keywords:

* ``torch``   eager PyTorch, differentiated by autograd: the oracle (also in float64);
* ``compile`` the same step under torch.compile, forward and backward each one fused loop;
* ``triton``  fused Triton kernels (forward over T, reverse-time backward), fp32/fp16/bf16;
* ``cupy``    the same algorithm as CUDA C (``cuda/lif.cu``) compiled once through CuPy.
"""

from __future__ import annotations

import torch

from .fused import FUSED_DTYPES, SAVES, neuron_fused
from .fused_states import STATE_NEURONS, states_fused
from .model import NEURONS, LIFConfig, NeuronConfig, check_w

IMPLS = ("torch", "compile", "triton", "cupy")
FUSED_IMPLS = ("triton", "cupy")
# The neurons each implementation runs (the eager oracle runs every one).
IMPL_NEURONS = {"torch": NEURONS, "compile": NEURONS,
                "triton": NEURONS, "cupy": NEURONS}  # fmt: skip


# Fused backends already checked for a device: (impl, device) -> the backend object.
_READY: dict[tuple[str, torch.device], object] = {}


class ImplementationUnavailable(RuntimeError):
    """An implementation whose package or device is missing on this machine."""


def lif_multistep(
    x: torch.Tensor,
    *,
    tau: float = 2.0,
    v_threshold: float = 1.0,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = False,
    surrogate: str = "sigmoid",
    alpha: float = 4.0,
    impl: str = "torch",
    return_v: bool = False,
    save: str = "margin",
):
    """Runs the canonical multi-step LIF over ``x`` of shape [T, ...].

    Returns the spikes (same shape and dtype as ``x``, differentiable w.r.t. ``x`` through the
    surrogate), and with ``return_v=True`` the pair (spikes, V) where V is the membrane after reset.
    ``v_reset=None`` selects soft reset. ``save`` picks what the fused impls keep for backward:
    ``"margin"`` (H - theta, written by forward) or ``"recompute"`` (only X; backward recomputes
    the margin), see :mod:`reference_kernels.fused`. Invalid arguments raise ``ValueError``
    naming the argument; an implementation whose package or device is missing raises
    :class:`ImplementationUnavailable`.
    """
    config = LIFConfig(
        tau=tau,
        v_threshold=v_threshold,
        v_reset=v_reset,
        decay_input=decay_input,
        detach_reset=detach_reset,
        surrogate=surrogate,
        alpha=alpha,
    )
    return run(x, config, impl=impl, return_v=return_v, save=save)


def multistep(
    x: torch.Tensor,
    config: NeuronConfig,
    *,
    impl: str = "torch",
    return_state: bool = False,
    w: torch.Tensor | None = None,
    save: str = "margin",
):
    """Runs the canonical neuron of ``config`` (IFConfig, LIFConfig, PLIFConfig, CUBAConfig or
    ALIFConfig) over ``x`` of shape [T, ...].

    Returns the spikes (same shape and dtype as ``x``, differentiable w.r.t. ``x`` through the
    surrogate), and with ``return_state=True`` the pair ``(spikes, {"v": V})``, V the membrane
    after reset (CUBA adds "i", its current; ALIF "a", its adaptation after the step's spike).
    For PLIF, ``w`` is the decay parameter (k = sigmoid(w)): a 0-dim tensor, or one value per
    channel with ``config.per_channel``; it receives its gradient through
    autograd (``config.initial_w()`` gives w0). ``save`` is as for :func:`lif_multistep`.
    """
    out = run(x, config, impl=impl, return_v=return_state, save=save, w=w)
    if return_state:
        spikes, v, *others = out
        return spikes, {"v": v, **(others[0] if others else {})}
    return out


def run(
    x: torch.Tensor,
    config: NeuronConfig,
    *,
    impl: str = "torch",
    return_v: bool = False,
    save: str = "margin",
    w: torch.Tensor | None = None,
):
    """:func:`lif_multistep` with a ready config (any neuron's; ``w`` for PLIF). With
    ``return_v``, (spikes, V), and for a neuron with more states (CUBA, ALIF) (spikes, V,
    {name: state})."""
    _check_input(x, impl)
    if config.neuron not in IMPL_NEURONS[impl]:
        raise ImplementationUnavailable(
            f"impl={impl!r} runs {', '.join(n.upper() for n in IMPL_NEURONS[impl])} so far, not "
            f"{config.neuron.upper()} (impl='torch' runs every neuron)"
        )
    if config.neuron == "plif":
        check_w(w, config, x.shape[1:])
    elif w is not None:
        raise ValueError(f"w: only PLIF has a learned decay, not {config.neuron.upper()}")
    if save not in SAVES:
        raise ValueError(f"save must be one of {', '.join(SAVES)}, got {save!r}")
    if save != "margin" and impl not in FUSED_IMPLS:
        raise ValueError(
            f"save: {save!r} applies to the fused impls ({', '.join(FUSED_IMPLS)}); "
            f"impl={impl!r} keeps what autograd saves"
        )
    if impl == "torch":
        from .torch_ref import neuron_torch

        return neuron_torch(x, config, return_v, w)
    if impl == "compile" and config.neuron in ("cuba", "alif"):
        from .compiled_states import states_compiled

        return states_compiled(x, config, return_v)
    if impl == "compile":
        from .compiled import neuron_compiled

        return neuron_compiled(x, config, return_v, w)
    key = (impl, x.device)
    kernels = _READY.get(key)
    if kernels is None:  # checked once per impl and device, not on every call
        kernels = _READY[key] = fused_kernels(impl, key[1])
    if config.neuron in STATE_NEURONS:
        return states_fused(x, kernels, config, return_v, save)
    k = None if w is None else torch.sigmoid(w.float())
    return neuron_fused(x, kernels, config, return_v, save, k)


def fused_kernels(impl: str, device: torch.device):
    """The fused backend object of ``impl`` ('triton' or 'cupy'), checked for ``device``."""
    if impl == "triton":
        try:
            from . import triton_lif
        except ImportError as error:
            raise ImplementationUnavailable(
                f"impl='triton' is unavailable: triton cannot be imported ({error})"
            ) from error
        triton_lif.check_device(device)
        return triton_lif.KERNELS
    if impl == "cupy":
        if device.type != "cuda":
            raise ValueError(f"device: impl='cupy' runs on CUDA tensors, got {device.type!r}")
        from . import cupy_lif

        reason = cupy_lif.cupy_unavailable_reason()
        if reason is not None:
            raise ImplementationUnavailable(f"impl='cupy' is unavailable: {reason}")
        return cupy_lif.KERNELS
    raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")


def unavailable_reason(impl: str, device: torch.device | str) -> str | None:
    """None when ``impl`` can run on ``device`` here, else a one-line reason."""
    device = torch.device(device)
    if impl not in IMPLS:
        return f"unknown impl {impl!r} (choose from {', '.join(IMPLS)})"
    if device.type == "cuda" and not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    if impl in ("triton", "cupy"):
        try:
            fused_kernels(impl, device)
        except (ValueError, ImplementationUnavailable) as error:
            return str(error)
    return None


def _check_input(x: torch.Tensor, impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape [T, ...], got {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError("x must have a leading time dimension T, got a 0-d tensor")
    if x.shape[0] == 0:
        raise ValueError("x: T (its first dimension) must be >= 1, got 0")
    if not x.dtype.is_floating_point:
        raise ValueError(f"dtype: x must be a floating-point tensor, got {x.dtype}")
    if impl in ("triton", "cupy") and x.dtype not in FUSED_DTYPES:
        raise ValueError(
            f"dtype: impl={impl!r} supports float32, float16 and bfloat16, got {x.dtype}"
        )
    if impl in ("torch", "compile") and x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: impl={impl!r} supports cpu and cuda, got {x.device.type!r}")
