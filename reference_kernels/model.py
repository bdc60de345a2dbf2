"""The canonical multi-step neurons (IF, LIF, PLIF, CUBA, ALIF): parameters, surrogates and
equations.

Every implementation kernelprof measures is judged against these definitions (SpikingJelly's
``IFNode``, ``LIFNode`` and ``ParametricLIFNode`` are the de-facto standard they follow).
Notation: X input, H membrane before reset, V membrane after reset, S spike, theta threshold,
V_r reset potential, k the decay per step (1/tau).

Forward, for t = 0 .. T-1, with V[-1] = V_r (hard reset) or 0 (soft reset); the charge is the
one line that differs between the neurons:

    LIF, decay_input=True:   H[t] = V[t-1] + (X[t] - (V[t-1] - V_r)) / tau
    LIF, decay_input=False:  H[t] = V[t-1] - (V[t-1] - V_r) / tau + X[t]
    IF:                      H[t] = V[t-1] + X[t]
    PLIF:                    LIF with 1/tau replaced by k = sigmoid(w), w a learnable scalar
                             (or one per channel) initialised to w0 = -log(tau0 - 1), so that
                             k = 1/tau0 at first:
                             decay_input=True:   H[t] = V[t-1] + (X[t] - (V[t-1] - V_r)) * k
                             decay_input=False:  H[t] = V[t-1] - (V[t-1] - V_r) * k + X[t]
                        (soft reset uses V_r = 0 in the charge)
    CUBA:                a synaptic current filters the input first (current-based LIF):
                             I[t] = (1 - 1/tau_syn) I[t-1] + X[t], I[-1] = 0 (I is never reset),
                             then LIF's charge with I[t] in place of X[t]
    ALIF:                LIF's charge, and a threshold that adapts to the neuron's own spikes:
                             A_d[t] = (1 - 1/tau_a) A[t-1], A[-1] = 0
                             theta[t] = theta0 + beta_a A_d[t]     (theta0 is v_threshold)
                             A[t] = A_d[t] + S[t]
    S[t] = Heaviside(H[t] - theta), with Heaviside(0) = 1: it fires on H >= theta (ALIF: theta[t])
    hard reset:         V[t] = S[t] * V_r + (1 - S[t]) * H[t]
    soft reset:         V[t] = H[t] - S[t] * theta          (ALIF: theta[t])

Backward (BPTT), in reverse time, with sg[t] = surrogate'(H[t] - theta), upstream gradients
gS[t] (spikes) and gV[t] (membrane, zero unless V is used), gH[T] = 0, and the decay
d = 1 - 1/tau (LIF), 1 (IF) or 1 - k (PLIF):

    gV_total[t] = gV[t] + gH[t+1] * d
    gS_total[t] = gS[t] + gV_total[t] * dV/dS        (the second term is dropped with detach_reset)
                  dV/dS = V_r - H[t] (hard) or -theta (soft)
    gH[t]       = gS_total[t] * sg[t] + gV_total[t] * dV/dH
                  dV/dH = 1 - S[t] (hard) or 1 (soft)
    gX[t]       = gH[t] / tau (LIF, decay_input=True), gH[t] * k (PLIF, decay_input=True),
                  gH[t] otherwise
    PLIF only:  dk = sum over t and the neurons (of a channel) of gH[t] * dH[t]/dk, with
                dH/dk = X[t] - (V[t-1] - V_r) (decay_input=True) or -(V[t-1] - V_r) (False),
                and dw = k (1 - k) dk.
    CUBA:       gI[t] = gH[t] * c + gI[t+1] (1 - 1/tau_syn), c = 1/tau (decay_input) or 1;
                gX[t] = gI[t].
    ALIF:       the surrogate is taken at H[t] - theta[t]; theta[t] passes -gS_total[t] sg[t]
                (and, soft reset, -S[t] gV_total[t]) back to A_d[t], and A's adjoint runs in
                reverse time through A[t] = A_d[t] + S[t], A_d[t+1] = (1 - 1/tau_a) A[t] (S[t]
                receives A's adjoint too), unless ``detach_adaptation`` (A a constant); the
                reset's share is dropped with detach_reset as for LIF.

Surrogates (the derivative used in place of Heaviside'(x), x = H - theta):

    sigmoid(alpha):        alpha * sig(alpha x) * (1 - sig(alpha x))
    atan(alpha):           (alpha / 2) / (1 + (pi/2 * alpha * x)^2)
    superspike(alpha):     1 / (1 + alpha |x|)^2          (Zenke & Ganguli; snnTorch fast_sigmoid)
    piecewise_exp(alpha):  (alpha / 2) * exp(-alpha |x|)

This module is pure: it holds definitions and small pure functions, no kernels. It lives in
reference_kernels, the lowest layer, so that the kernels and kernelprof both use it and neither
imports the other upward (reference_kernels imports nothing of kernelprof).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

SURROGATES = ("sigmoid", "atan", "superspike", "piecewise_exp")
DEFAULT_ALPHA = {"sigmoid": 4.0, "atan": 2.0, "superspike": 1.0, "piecewise_exp": 1.0}
# The integer each kernel (Triton, CUDA) uses to select a surrogate; one table for all of them.
SURROGATE_ID = {name: index for index, name in enumerate(SURROGATES)}


NEURONS = ("if", "lif", "plif", "cuba", "alif")
# The integer each kernel (Triton, CUDA) uses to select a neuron's charge; one table for all.
NEURON_ID = {"lif": 0, "if": 1, "plif": 2, "cuba": 3, "alif": 4}


def _check_finite(name: str, value, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        suffix = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a finite number{suffix}, got {value!r}")


class _Spiking:
    """What every neuron's config shares: threshold, reset, surrogate (validated here)."""

    # Written with the fields when a result is saved, so a stored config reads back as its
    # own neuron's (kernelprof.results.record checks a class constant listed here); files
    # written before IF and PLIF existed have none and hold LIF configs.
    DERIVED = ("neuron",)
    DERIVED_DEFAULTS = {"neuron": "lif"}

    def _check_spiking(self) -> None:
        _check_finite("v_threshold", self.v_threshold)
        _check_finite("v_reset", self.v_reset, allow_none=True)
        if self.surrogate not in SURROGATES:
            raise ValueError(
                f"surrogate must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}"
            )
        _check_finite("alpha", self.alpha)
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")

    @property
    def soft_reset(self) -> bool:
        return self.v_reset is None

    @property
    def v_initial(self) -> float:
        """Membrane potential before the first step: V_r for hard reset, 0 for soft reset."""
        return 0.0 if self.v_reset is None else float(self.v_reset)

    @property
    def v_rest(self) -> float:
        """The potential the membrane decays towards (V_r for hard reset, 0 for soft reset)."""
        return self.v_initial

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Leaky(_Spiking):
    """The fields LIF and PLIF share (each its own class: a PLIF config is never a LIF one)."""

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    decay_input: bool = True
    detach_reset: bool = False
    surrogate: str = "sigmoid"
    alpha: float = 4.0


@dataclass(frozen=True)
class LIFConfig(_Leaky):
    """Parameters of the canonical multi-step LIF neuron (see the module docstring).

    ``v_reset=None`` selects soft reset (subtract the threshold); a float selects hard reset.
    """

    neuron: ClassVar[str] = "lif"

    def __post_init__(self) -> None:
        if not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau) or self.tau <= 0:
            raise ValueError(f"tau must be a finite number > 0, got {self.tau!r}")
        self._check_spiking()


@dataclass(frozen=True)
class IFConfig(_Spiking):
    """The canonical multi-step IF neuron: LIF without leak, H[t] = V[t-1] + X[t]."""

    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    detach_reset: bool = False
    surrogate: str = "sigmoid"
    alpha: float = 4.0

    neuron: ClassVar[str] = "if"
    # The input enters unscaled, as LIF's decay_input=False does (code that sizes inputs by the
    # charge's form reads it).
    decay_input: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self._check_spiking()


@dataclass(frozen=True)
class PLIFConfig(_Leaky):
    """The canonical multi-step PLIF neuron: LIF whose 1/tau is k = sigmoid(w), w learnable.

    ``tau`` is tau0, the time constant w starts from (w0 = -log(tau0 - 1), so tau0 > 1);
    ``per_channel`` gives one w per channel (the dimension after T and the batch: x of shape
    [T, B, C, ...], or [T, C] where each of the C neurons is its own channel) instead of one.
    """

    per_channel: bool = False

    neuron: ClassVar[str] = "plif"

    def __post_init__(self) -> None:
        if not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau) or self.tau <= 1:
            raise ValueError(f"tau (tau0 of PLIF) must be a finite number > 1, got {self.tau!r}")
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"per_channel must be True or False, got {self.per_channel!r}")
        self._check_spiking()

    @property
    def w0(self) -> float:
        """The initial w: sigmoid(w0) = 1 / tau0."""
        return -math.log(self.tau - 1.0)

    def initial_w(self, channels: int = 1, **tensor_options) -> torch.Tensor:
        """w at its initial value: a 0-dim tensor, or [channels] with ``per_channel``."""
        shape = (channels,) if self.per_channel else ()
        return torch.full(shape, self.w0, **tensor_options)


def _check_time_constant(name: str, value) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1:
        raise ValueError(f"{name} must be a finite number >= 1 (its decay 1 - 1/{name} lies in "
                         f"[0, 1)), got {value!r}")  # fmt: skip


@dataclass(frozen=True)
class CUBAConfig(_Leaky):
    """The canonical current-based LIF: a synaptic current I with time constant ``tau_syn``
    filters the input before LIF's membrane (``tau``); I is not reset."""

    tau_syn: float = 4.0

    neuron: ClassVar[str] = "cuba"

    def __post_init__(self) -> None:
        if not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau) or self.tau <= 0:
            raise ValueError(f"tau must be a finite number > 0, got {self.tau!r}")
        _check_time_constant("tau_syn", self.tau_syn)
        self._check_spiking()

    @property
    def syn_decay(self) -> float:
        return 1.0 - 1.0 / self.tau_syn


@dataclass(frozen=True)
class ALIFConfig(_Leaky):
    """The canonical adaptive-threshold LIF: ``v_threshold`` is theta0, raised by ``beta_a``
    times the adaptation A, which decays with ``tau_a`` and grows by one per spike.
    ``detach_adaptation`` makes A a constant for autograd."""

    tau_a: float = 20.0
    beta_a: float = 0.1
    detach_adaptation: bool = False

    neuron: ClassVar[str] = "alif"

    def __post_init__(self) -> None:
        if not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau) or self.tau <= 0:
            raise ValueError(f"tau must be a finite number > 0, got {self.tau!r}")
        _check_time_constant("tau_a", self.tau_a)
        _check_finite("beta_a", self.beta_a)
        if not isinstance(self.detach_adaptation, bool):
            raise ValueError(f"detach_adaptation must be True or False, "
                             f"got {self.detach_adaptation!r}")  # fmt: skip
        self._check_spiking()

    @property
    def adapt_decay(self) -> float:
        return 1.0 - 1.0 / self.tau_a


NeuronConfig = LIFConfig | PLIFConfig | IFConfig | CUBAConfig | ALIFConfig
# The extra state each neuron keeps beside V (what return_state gives besides "v").
STATES = {"if": (), "lif": (), "plif": (), "cuba": ("i",), "alif": ("a",)}


def make_config(
    neuron: str, *, tau: float = 2.0, decay_input: bool = True, per_channel: bool = False,
    neuron_fields: dict | None = None, **common,
) -> NeuronConfig:  # fmt: skip
    """The config of ``neuron`` (one of NEURONS) from the fields any neuron may have
    (``common``: v_threshold, v_reset, detach_reset, surrogate, alpha); a field the neuron does
    not have (IF's tau and decay_input, LIF's per_channel) is not used. ``neuron_fields``: the
    neuron's own fields where not at their defaults (CUBA's tau_syn; ALIF's tau_a, beta_a,
    detach_adaptation), those of other neurons left out."""
    own = neuron_fields or {}
    if neuron == "if":
        return IFConfig(**common)
    if neuron == "plif":
        return PLIFConfig(tau=tau, decay_input=decay_input, per_channel=per_channel, **common)
    if neuron == "cuba":
        extra = {k: v for k, v in own.items() if k == "tau_syn"}
        return CUBAConfig(tau=tau, decay_input=decay_input, **extra, **common)
    if neuron == "alif":
        extra = {k: v for k, v in own.items() if k in ("tau_a", "beta_a", "detach_adaptation")}
        return ALIFConfig(tau=tau, decay_input=decay_input, **extra, **common)
    return LIFConfig(tau=tau, decay_input=decay_input, **common)


def kernel_tau(config: NeuronConfig) -> float:
    """The tau a fused kernel is given: LIF's, PLIF's tau0 (unused: PLIF reads k), or an unused
    1.0 for IF, which has none."""
    return float(getattr(config, "tau", 1.0))


def state_decay(config: NeuronConfig) -> float:
    """The per-step decay of the second state: CUBA's 1 - 1/tau_syn, ALIF's 1 - 1/tau_a (0.0 for
    the one-state neurons, which have none)."""
    if config.neuron == "cuba":
        return config.syn_decay
    if config.neuron == "alif":
        return config.adapt_decay
    return 0.0


def channel_shape(step_shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
    """(outer, channels, inner) of one step's shape: [B, C, ...] has C channels with
    prod(...) neurons each, repeated B times; [C] (a [T, C] input) has C of one neuron each."""
    dims = tuple(step_shape)
    if not dims:
        return 1, 1, 1
    if len(dims) == 1:
        return 1, dims[0], 1
    return dims[0], dims[1], math.prod(dims[2:])


def check_w(w, config: PLIFConfig, step_shape) -> None:
    """Raises ValueError unless ``w`` is PLIF's parameter for steps of ``step_shape``: a
    floating-point tensor, 0-dim, or [C] for ``per_channel``."""
    if w is None:
        raise ValueError("w: PLIF needs its decay parameter w (config.initial_w() gives w0)")
    if not isinstance(w, torch.Tensor) or not w.dtype.is_floating_point:
        raise ValueError(f"w must be a floating-point torch.Tensor, got {type(w).__name__}")
    if not config.per_channel:
        if w.dim() != 0:
            raise ValueError(f"w must be a 0-dim tensor (one decay), got shape {tuple(w.shape)}"
                             " (per_channel=True gives one per channel)")  # fmt: skip
        return
    channels = channel_shape(step_shape)[1]
    if tuple(w.shape) != (channels,):
        raise ValueError(f"w must have shape ({channels},) (one per channel), "
                         f"got {tuple(w.shape)}")  # fmt: skip


def decay_view(k: torch.Tensor, step_shape) -> torch.Tensor:
    """k (0-dim, or [C]) shaped to broadcast against one step of shape ``step_shape``."""
    if k.dim() == 0 or len(step_shape) <= 1:
        return k
    return k.view(k.shape[0], *[1] * (len(step_shape) - 2))


def surrogate_grad(x: torch.Tensor, surrogate: str, alpha: float) -> torch.Tensor:
    """The surrogate derivative at ``x = H - theta`` (see the module docstring)."""
    if surrogate == "sigmoid":
        sig = torch.sigmoid(alpha * x)
        return alpha * sig * (1.0 - sig)
    if surrogate == "atan":
        return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)
    if surrogate == "superspike":
        return 1.0 / (1.0 + alpha * x.abs()) ** 2
    if surrogate == "piecewise_exp":
        return (alpha / 2.0) * torch.exp(-alpha * x.abs())
    raise ValueError(f"surrogate must be one of {', '.join(SURROGATES)}, got {surrogate!r}")


def charge(v: torch.Tensor, x: torch.Tensor, config: NeuronConfig, k=None) -> torch.Tensor:
    """H[t] from V[t-1] and X[t]: the neuron's integration step (``k``: PLIF's sigmoid(w),
    already shaped to broadcast against ``v``). CUBA and ALIF charge as LIF (CUBA's ``x`` is
    its current I[t])."""
    if config.neuron == "if":
        return v + x
    v_rest = config.v_rest
    if config.neuron == "plif":
        if config.decay_input:
            return v + (x - (v - v_rest)) * k
        return v - (v - v_rest) * k + x
    if config.decay_input:
        return v + (x - (v - v_rest)) / config.tau
    return v - (v - v_rest) / config.tau + x


def reset(h: torch.Tensor, spike: torch.Tensor, config: NeuronConfig,
          theta=None) -> torch.Tensor:  # fmt: skip
    """V[t] from H[t] and S[t]; ``spike`` is already detached when detach_reset is on. ``theta``:
    ALIF's threshold of the step (a soft reset subtracts it), else v_threshold."""
    if config.v_reset is None:
        return h - spike * (config.v_threshold if theta is None else theta)
    return spike * config.v_reset + (1.0 - spike) * h
