"""The inputs of a case: dtypes by their CLI names, and input currents that exercise each
neuron (a realistic share of neurons fires, about 20-30 %)."""

from __future__ import annotations

import torch

from reference_kernels.model import NeuronConfig

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def lif_input(
    shape: tuple[int, ...],
    config: NeuronConfig,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> torch.Tensor:
    """Gaussian input currents [T, ...] centred so the membrane hovers around the threshold.

    Without spikes the membrane settles at V_rest + X (decay_input) or V_rest + tau * X, so the
    mean puts that level at the threshold and the spread equals the threshold's distance from rest;
    this makes 10-40 % of neuron-steps fire for the configurations kernelprof tests. PLIF starts
    at 1/tau0, so it is sized as LIF with tau0. IF integrates without leak, so a mean of 0.3 of
    the threshold's distance per step (spread 0.5 of it) fires it about every third step.
    CUBA's current settles at tau_syn times its input, so its mean is divided by tau_syn (and
    raised by a third: the current builds up over the first steps) and its spread by
    sqrt(tau_syn) (the current sums about tau_syn steps of independent noise), widened by half
    so that some neurons fire in the first steps. ALIF's threshold
    rises with its firing: at a third of the steps, A settles near tau_a / 3, so the mean aims
    at theta0 + beta_a tau_a / 3.
    """
    generator = torch.Generator().manual_seed(seed)
    threshold = config.v_threshold
    if config.neuron == "alif":
        threshold = threshold + config.beta_a * config.tau_a / 3
    gap = abs(threshold - config.v_rest) or 1.0
    if config.neuron == "if":
        mean, std = 0.3 * gap, 0.5 * gap
    else:
        mean, std = threshold - config.v_rest, gap
        if not config.decay_input:
            mean, std = mean / config.tau, std / config.tau
        if config.neuron == "cuba":
            mean, std = 4 / 3 * mean / config.tau_syn, 1.5 * std / config.tau_syn**0.5
    x = mean + std * torch.randn(shape, generator=generator, dtype=torch.float64)
    return x.to(dtype=dtype, device=device)
