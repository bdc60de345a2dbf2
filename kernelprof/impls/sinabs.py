"""Sinabs (and its EXODUS CUDA kernels) as rows of the comparison.

Sinabs 3.1.3 is installed with --no-deps (requirements/no-deps.txt) and its row is checked over
the config grid (tests/test_impl_sinabs.py); sinabs-exodus, source-only and CUDA-only, has never
been built here. The mapping follows the Sinabs 3.x sources (sinabs/layers/lif.py,
layers/functional/lif.py, activation/spike_generation.py, reset_mechanism.py,
surrogate_gradient_fn.py, and sinabs-exodus's sinabs/exodus/layers/lif.py and spike.py):

* ``sinabs.layers.LIF(tau_mem, spike_threshold, spike_fn, reset_fn, surrogate_grad_fn,
  norm_input, record_states)`` takes batch-first [B, T, ...] and keeps its state between calls
  (``reset_states()`` zeroes it). Per step: v = alpha*v + (1 - alpha)*x (norm_input) or
  alpha*v + x, alpha = exp(-1/tau_mem); then spikes and reset. So the canonical 1 - 1/tau needs
  tau_mem = -1/ln(1 - 1/tau) (tau > 1), and v rests at 0: v_reset must be 0 for hard reset.
* ``SingleSpike``: (v - theta >= 0), one spike per step, fires on equality like the canonical
  model (the default MultiSpike emits several).
* ``MembraneReset(0.)``: v * (spikes == 0), a comparison with no gradient: hard reset with
  detach_reset=True only. ``MembraneSubtract()``: v - spikes*theta, attached: soft reset with
  detach_reset=False only.
* ``SingleExponential(grad_width, grad_scale)``: grad_scale/(theta*w) * exp(-|v - theta|/(theta*w))
  equals piecewise_exp(alpha) for w = 1/(alpha*theta), grad_scale = 1/2. Sinabs ships no
  sigmoid, atan or fast-sigmoid surrogate, so those raise Unsupported.
* ``record_states=True`` records v after reset in ``layer.recordings["v_mem"]`` ([B, T, ...]).
* EXODUS (``sinabs.exodus.layers.LIF``, CUDA only) accepts MembraneSubtract only (soft reset),
  returns v before reset from its kernel, and raises NotImplementedError when a gradient reaches
  v_mem, so its row returns V = None.
"""

from __future__ import annotations

import math

import torch

from kernelprof.impls.registry import Built, Implementation, Requirement, Unsupported, register
from kernelprof.lif import LIFConfig

PATH_SINABS = "python loop: sinabs functional.lif_forward, eager torch ops per step"
PATH_EXODUS = "EXODUS CUDA kernels: forward over T per neuron, backward O(T^2) in parallel"


def sinabs_parameters(config: LIFConfig, *, exodus: bool) -> dict:
    """Keyword arguments for sinabs.layers.LIF (or EXODUS's LIF) with the activation objects
    still to be instantiated by the caller: {"reset": "reset"|"subtract", "tau_mem", ...}."""
    problems = []
    if config.tau <= 1.0:
        problems.append(f"tau={config.tau:g}: alpha = exp(-1/tau_mem) = 1 - 1/tau needs tau > 1")
    if config.v_threshold <= 0:
        problems.append("a threshold <= 0 (SingleExponential's width is proportional to it)")
    if config.soft_reset:
        if config.detach_reset:
            problems.append(
                "soft reset with detach_reset=True: MembraneSubtract keeps the gradient of S"
            )
    else:
        if exodus:
            problems.append("hard reset: EXODUS accepts MembraneSubtract (soft reset) only")
        if config.v_reset != 0.0:
            problems.append(f"v_reset={config.v_reset:g}: the sinabs LIF leaks towards 0")
        if not config.detach_reset:
            problems.append(
                "hard reset with detach_reset=False: MembraneReset multiplies by (spikes == 0), "
                "which has no gradient"
            )
    if config.surrogate != "piecewise_exp":
        problems.append(
            f"surrogate {config.surrogate}: sinabs ships SingleExponential, Gaussian, "
            "MultiGaussian, Heaviside and PeriodicExponential only"
        )
    if problems:
        name = "sinabs-exodus" if exodus else "sinabs"
        raise Unsupported(f"{name} cannot express " + "; ".join(problems))
    return {
        "tau_mem": -1.0 / math.log(1.0 - 1.0 / config.tau),
        "spike_threshold": float(config.v_threshold),
        "grad_width": 1.0 / (config.alpha * config.v_threshold),
        "grad_scale": 0.5,
        "norm_input": config.decay_input,
        "reset": "subtract" if config.soft_reset else "reset",
    }


def _build_sinabs(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    from sinabs.activation import MembraneReset, MembraneSubtract, SingleExponential, SingleSpike
    from sinabs.layers import LIF

    p = sinabs_parameters(config, exodus=False)
    layer = LIF(
        tau_mem=p["tau_mem"],
        spike_threshold=torch.tensor(p["spike_threshold"]),
        spike_fn=SingleSpike,
        reset_fn=MembraneSubtract() if p["reset"] == "subtract" else MembraneReset(0.0),
        surrogate_grad_fn=SingleExponential(grad_width=p["grad_width"], grad_scale=p["grad_scale"]),
        norm_input=p["norm_input"],
        record_states=True,
    ).to(device)

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        layer.reset_states()  # the state persists between calls
        spikes = layer(x.movedim(0, 1))  # batch-first [B, T, ...]
        return spikes.movedim(1, 0), layer.recordings["v_mem"].movedim(1, 0)

    return Built(run=run, path=PATH_SINABS)


def _build_exodus(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    from sinabs.activation import MembraneSubtract, SingleExponential, SingleSpike
    from sinabs.exodus.layers import LIF

    p = sinabs_parameters(config, exodus=True)
    layer = LIF(
        tau_mem=p["tau_mem"],
        spike_threshold=p["spike_threshold"],
        spike_fn=SingleSpike,
        reset_fn=MembraneSubtract(),
        surrogate_grad_fn=SingleExponential(grad_width=p["grad_width"], grad_scale=p["grad_scale"]),
        norm_input=p["norm_input"],
    ).to(device)

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        layer.reset_states()
        spikes = layer(x.movedim(0, 1))
        # EXODUS's backward refuses gradients through v_mem: V is not offered.
        return spikes.movedim(1, 0), None

    return Built(run=run, path=PATH_EXODUS)


SINABS = register(
    Implementation(
        name="sinabs",
        framework="Sinabs",
        build=_build_sinabs,
        requires=(Requirement("sinabs", ">=3"),),
        devices=("cpu", "cuda"),
        description="sinabs.layers.LIF with SingleSpike: eager loop (not run here: not installed)",
    )
)
SINABS_EXODUS = register(
    Implementation(
        name="sinabs-exodus",
        framework="Sinabs",
        build=_build_exodus,
        requires=(
            Requirement("sinabs", ">=3"),
            Requirement("sinabs-exodus", module="sinabs.exodus"),
        ),
        devices=("cuda",),
        description="sinabs.exodus.layers.LIF: EXODUS CUDA kernels (not run here: not installed)",
    )
)
