"""The canonical multi-step LIF neuron: its parameters, surrogates and equations.

Every implementation kernelprof measures is judged against this definition (SpikingJelly's
``LIFNode`` is the de-facto standard it follows). Notation: X input, H membrane before reset,
V membrane after reset, S spike, theta threshold, V_r reset potential.

Forward, for t = 0 .. T-1, with V[-1] = V_r (hard reset) or 0 (soft reset):

    decay_input=True:   H[t] = V[t-1] + (X[t] - (V[t-1] - V_r)) / tau
    decay_input=False:  H[t] = V[t-1] - (V[t-1] - V_r) / tau + X[t]
                        (soft reset uses V_r = 0 in these two lines)
    S[t] = Heaviside(H[t] - theta), with Heaviside(0) = 1: it fires on H >= theta
    hard reset:         V[t] = S[t] * V_r + (1 - S[t]) * H[t]
    soft reset:         V[t] = H[t] - S[t] * theta

Backward (BPTT), in reverse time, with sg[t] = surrogate'(H[t] - theta), upstream gradients
gS[t] (spikes) and gV[t] (membrane, zero unless V is used), and gH[T] = 0:

    gV_total[t] = gV[t] + gH[t+1] * (1 - 1/tau)
    gS_total[t] = gS[t] + gV_total[t] * dV/dS        (the second term is dropped with detach_reset)
                  dV/dS = V_r - H[t] (hard) or -theta (soft)
    gH[t]       = gS_total[t] * sg[t] + gV_total[t] * dV/dH
                  dV/dH = 1 - S[t] (hard) or 1 (soft)
    gX[t]       = gH[t] / tau (decay_input=True) or gH[t] (decay_input=False)

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

import torch

SURROGATES = ("sigmoid", "atan", "superspike", "piecewise_exp")
DEFAULT_ALPHA = {"sigmoid": 4.0, "atan": 2.0, "superspike": 1.0, "piecewise_exp": 1.0}
# The integer each kernel (Triton, CUDA) uses to select a surrogate; one table for all of them.
SURROGATE_ID = {name: index for index, name in enumerate(SURROGATES)}


@dataclass(frozen=True)
class LIFConfig:
    """Parameters of the canonical multi-step LIF neuron (see the module docstring).

    ``v_reset=None`` selects soft reset (subtract the threshold); a float selects hard reset.
    """

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    decay_input: bool = True
    detach_reset: bool = False
    surrogate: str = "sigmoid"
    alpha: float = 4.0

    def __post_init__(self) -> None:
        if not isinstance(self.tau, (int, float)) or not math.isfinite(self.tau) or self.tau <= 0:
            raise ValueError(f"tau must be a finite number > 0, got {self.tau!r}")
        if not isinstance(self.v_threshold, (int, float)) or not math.isfinite(self.v_threshold):
            raise ValueError(f"v_threshold must be a finite number, got {self.v_threshold!r}")
        if self.v_reset is not None and (
            not isinstance(self.v_reset, (int, float)) or not math.isfinite(self.v_reset)
        ):
            raise ValueError(f"v_reset must be a finite number or None, got {self.v_reset!r}")
        if self.surrogate not in SURROGATES:
            raise ValueError(
                f"surrogate must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}"
            )
        if not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha):
            raise ValueError(f"alpha must be a finite number, got {self.alpha!r}")
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


def charge(v: torch.Tensor, x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """H[t] from V[t-1] and X[t]: the leaky integration step."""
    v_rest = config.v_rest
    if config.decay_input:
        return v + (x - (v - v_rest)) / config.tau
    return v - (v - v_rest) / config.tau + x


def reset(h: torch.Tensor, spike: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """V[t] from H[t] and S[t]; ``spike`` is already detached when detach_reset is on."""
    if config.v_reset is None:
        return h - spike * config.v_threshold
    return spike * config.v_reset + (1.0 - spike) * h
