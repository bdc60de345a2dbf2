"""lava-dl (SLAYER) as a row of the comparison: its Loihi CUBA neuron mapped onto the canonical LIF.

Read from the lava-dl 0.6.0 sources (lava/lib/dl/slayer/neuron/base.py, cuba.py,
neuron/dynamics/leaky_integrator.py and .cu, spike/spike.py):

* ``cuba.Neuron(threshold, current_decay, voltage_decay, tau_grad, scale_grad, scale=64)`` takes a
  time-last [N, C, ..., T] tensor; ``persistent_state=False`` starts every call from zero.
* Fixed point: states are integers in units of 1/4096 (s_scale = 64 * 64). Per step
  u = trunc(u_prev * (4096 - Di) / 4096) + trunc(4096 * x) and likewise v with Dv and u, where
  Di, Dv = round(4096 * decay). With current_decay=1 the current is just X truncated to 1/4096, so
  v follows H = V * (1 - Dv/4096) + X: the canonical charge with 1/tau = Dv/4096 (rounded), the
  input divided by tau beforehand when decay_input.
* The threshold is truncated to 1/64 steps (``int(threshold * 64) / 64``); a neuron fires and
  resets to 0 when v >= theta + 0.01/4096, i.e. v > theta in fixed point. The CPU loop never
  fires nor resets at v == theta; the CUDA kernel casts the threshold to int and resets there
  without a spike. ``dynamics`` returns v *before* reset, so V after reset is not exposed: run
  returns None for it.
* Reset is always to 0 and multiplicative: no soft reset. V_r != 0 is a shift of coordinates
  (U = V - V_r rests and resets at 0, threshold theta - V_r), exact.
* Backward: the voltage's backward is the leak alone, grad[t] = (1 - Dv/4096) grad[t+1] + g[t];
  the reset is ignored whatever detach_reset says (SLAYER's approximation). The spike's surrogate
  is scale_rho/(2 tau_rho) * exp(-|v - theta|/tau_rho) with tau_rho = tau_grad * theta_q * 100
  and scale_rho = scale_grad * 0.1. That equals piecewise_exp(alpha) exactly for
  tau_rho = 1/alpha and scale_rho = 1. For the other surrogates the exponential is chosen with
  the canonical surrogate's value at the threshold and its area (the gradient a whole threshold
  crossing passes): an approximation, listed in ``approximations``.
* Paths: on CPU an int64 Python loop over time (``_li_dynamics_fwd``, twice: current and
  voltage); on CUDA ``leaky_integrator.cu`` (int32, float32 tensors only), compiled with
  torch.utils.cpp_extension.load at first use, which needs nvcc and ninja.

The verdict for this row is "approximate": spikes differ near the threshold (fixed point) and
dX differs wherever a neuron spiked earlier in the sequence (reset ignored in backward).
"""

from __future__ import annotations

import math
import os

import torch

from kernelprof.impls.registry import Built, Implementation, Requirement, Unsupported, register
from kernelprof.lif import LIFConfig

STATE_SCALE = 4096  # lava's s_scale = scale * 64 with the default scale = 1 << 6
THRESHOLD_STEP = 64  # lava's w_scale: the threshold is truncated to 1/64 steps
PATH_CPU = "CPU int64 python loop (lava _li_dynamics_fwd, current then voltage)"
PATH_CUDA = "CUDA: JIT-compiled leaky_integrator.cu (int32 fixed point, one thread per neuron)"
TIE_NOTES = ["fires on H > theta in fixed point (v >= theta + 0.01/4096), not >="]


def surrogate_peak_and_area(surrogate: str, alpha: float) -> tuple[float, float]:
    """The canonical surrogate's value at x = 0 and its integral over x (see kernelprof.lif)."""
    if surrogate == "sigmoid":
        return alpha / 4.0, 1.0
    if surrogate == "atan":
        return alpha / 2.0, 1.0
    if surrogate == "superspike":
        return 1.0, 2.0 / alpha
    if surrogate == "piecewise_exp":
        return alpha / 2.0, 1.0
    raise ValueError(f"unknown surrogate {surrogate!r}")


def lava_parameters(config: LIFConfig) -> dict:
    """The cuba.Neuron arguments for the config, plus what the mapping had to approximate.

    Raises Unsupported for what the CUBA neuron cannot express."""
    from lava.lib.dl.slayer.neuron import cuba

    if config.soft_reset:
        raise Unsupported(
            "soft reset (v_reset=None): lava-dl's CUBA neuron resets v to 0 by multiplying with "
            "(1 - spike); it has no subtractive reset"
        )
    if config.tau < 1.0:
        raise Unsupported(
            f"tau={config.tau:g} < 1: the voltage decay 1/tau must lie in [0, 1] "
            "(lava clamps it to [0, 4096]/4096)"
        )
    # Shifted coordinates U = V - V_r: rest and reset at 0, threshold theta - V_r.
    threshold = config.v_threshold - float(config.v_reset)
    threshold_q = int(threshold * THRESHOLD_STEP) / THRESHOLD_STEP  # what base.Neuron stores
    if threshold_q <= 0:
        raise Unsupported(
            f"threshold - v_reset = {threshold:g} truncates to {threshold_q:g} at 1/64 steps: "
            "lava's reset and surrogate width need a positive threshold"
        )
    # Exponential surrogate peak * exp(-rate |x|) with the canonical peak and area.
    peak, area = surrogate_peak_and_area(config.surrogate, config.alpha)
    rate = 2.0 * peak / area
    tau_rho = 1.0 / rate  # wanted: tau_grad * threshold_q * TAU_RHO_MULT
    scale_rho = 2.0 * peak * tau_rho  # wanted: scale_grad * SCALE_RHO_MULT
    decay_q = round(STATE_SCALE / config.tau)  # lava's quantize(4096 * voltage_decay)

    approximations = [
        "fixed point: input and membrane truncated to 1/4096 steps every step (lava s_scale=4096)",
        "backward ignores the reset (SLAYER): dV/dH = 1 and no gradient through S in the reset"
        + (", so detach_reset makes no difference" if config.detach_reset else ""),
    ]
    if threshold_q != threshold:
        approximations.append(f"threshold {threshold:g} truncated to {threshold_q:g} (1/64 steps)")
    if decay_q / STATE_SCALE != 1.0 / config.tau:
        approximations.append(
            f"voltage decay 1/tau = {1.0 / config.tau:.6g} rounded to {decay_q}/4096 "
            f"= {decay_q / STATE_SCALE:.6g}"
        )
    if config.surrogate != "piecewise_exp":
        approximations.append(
            f"surrogate is {peak:.4g}*exp(-|x|/{tau_rho:.4g}) (lava's exponential, same value "
            f"at the threshold and same area), not {config.surrogate}(alpha={config.alpha:g})"
        )
    return {
        "kwargs": {
            "threshold": threshold,
            "current_decay": 1.0,  # no synaptic current: u[t] = X[t]
            "voltage_decay": 1.0 / config.tau,
            "tau_grad": tau_rho / (threshold_q * cuba.TAU_RHO_MULT),
            "scale_grad": scale_rho / cuba.SCALE_RHO_MULT,
            "persistent_state": False,
            "requires_grad": False,
        },
        "tau_rho": tau_rho,
        "scale_rho": scale_rho,
        "approximations": approximations,
    }


def _prepare_cuda_arch(device: torch.device) -> None:
    """lava's jitconfig pins TORCH_CUDA_ARCH_LIST='8.0' on every GPU of compute capability >= 8;
    an sm_80 binary does not load on sm_90 (H100/H200). jitconfig is lava's documented knob for
    the JIT build, so it is pointed at the device's own architecture before the first build."""
    from lava.lib.dl.slayer import jitconfig

    major, minor = torch.cuda.get_device_capability(device)
    own = f"{major}.{minor}"
    if jitconfig.TORCH_CUDA_ARCH_LIST is not None and own not in jitconfig.TORCH_CUDA_ARCH_LIST:
        jitconfig.TORCH_CUDA_ARCH_LIST = own


def build(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    """Maps the canonical config onto lava-dl's cuba.Neuron (see the module docstring)."""
    from lava.lib.dl.slayer.neuron import cuba
    from lava.lib.dl.slayer.neuron.dynamics import leaky_integrator

    mapping = lava_parameters(config)
    if device.type == "cuda":
        if dtype != torch.float32:
            raise Unsupported(f"{dtype}: lava's leaky_integrator.cu reads float32 tensors only")
        _prepare_cuda_arch(device)
    neuron = cuba.Neuron(**mapping["kwargs"]).to(device)
    # The surrogate width lava derives from tau_grad must be the one asked for.
    if not math.isclose(neuron.tau_rho * cuba.TAU_RHO_MULT, mapping["tau_rho"], rel_tol=1e-9):
        raise RuntimeError(
            f"lava tau_rho {neuron.tau_rho * cuba.TAU_RHO_MULT} != {mapping['tau_rho']}: "
            "its threshold quantisation changed"
        )
    tau = config.tau
    decay_input = config.decay_input

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        steps = x.shape[0]
        flat = x.reshape(steps, -1)
        if decay_input:
            flat = flat / tau  # CUBA adds its input undecayed
        # Time last, every neuron its own batch entry: [M, 1, T]. The neuron's shape stays (1,),
        # so one built neuron serves every input shape.
        lava_in = flat.t().unsqueeze(1).contiguous()
        spikes = neuron(lava_in)
        # dynamics() returns v before reset: V after reset is not exposed.
        return spikes.squeeze(1).t().reshape(x.shape), None

    def detect_path() -> str:
        if device.type != "cuda":
            return PATH_CPU
        loaded = leaky_integrator.Accelerated.module is not None
        return PATH_CUDA if loaded else PATH_CUDA + " (not loaded yet)"

    return Built(
        run=run,
        path=PATH_CUDA if device.type == "cuda" else PATH_CPU,
        approximations=mapping["approximations"],
        tie_notes=list(TIE_NOTES),
        detect_path=detect_path,
    )


def _device_problem(device: torch.device) -> str | None:
    if device.type != "cuda":
        return None
    from torch.utils import cpp_extension

    if cpp_extension.CUDA_HOME is None or not os.path.exists(
        os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc")
    ):
        home = cpp_extension.CUDA_HOME
        return f"leaky_integrator.cu is compiled at first use: no nvcc (CUDA_HOME={home})"
    if not cpp_extension.is_ninja_available():
        return "leaky_integrator.cu is compiled at first use with torch's JIT: ninja is missing"
    return None


LAVA_DL = register(
    Implementation(
        name="lava-dl",
        framework="lava-dl",
        build=build,
        requires=(Requirement("lava-dl", "==0.6.*", module="lava.lib.dl.slayer"),),
        devices=("cpu", "cuda"),
        description="slayer cuba.Neuron: Loihi fixed point, SLAYER backward (approximate)",
        device_problem=_device_problem,
    )
)
