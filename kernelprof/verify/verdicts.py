"""Verdicts: the oracle comparison explained by what a build declares, and whether a neuron's
timed build computes what its checking build computes.

The checking build is what is compared with the float64 oracle; the timed build is what is
timed. :func:`timed_agreement` ties the two together on the input that is timed: the timed build
runs forward and backward on the whole tensor, the checking build on a sample of its neurons
spread over the whole tensor (the last ones included, where a kernel's tail block or a layout
change goes wrong first), and spikes and input gradients are compared neuron by neuron.
"""

from __future__ import annotations

import torch

from kernelprof.frameworks.base import Approximation, NeuronBuild
from kernelprof.results.check import TimedBuildAgreement
from kernelprof.verify.agreement import TIE_ATOL, TOLERANCE, OracleCheck, spike_agreement
from reference_kernels.model import LIFConfig

VERDICT_ORDER = ("exact", "close", "approximate", "WRONG")  # later is worse
SAMPLE_SPREAD = 4096  # neurons spread evenly over the tensor, first and last included
SAMPLE_TAIL = 64  # plus the last ones


def classify(result: OracleCheck, build: NeuronBuild) -> tuple[str, str]:
    """The final verdict: the oracle comparison, explained by what the build declares.

    NaN or Inf anywhere is WRONG whatever is declared. A difference beyond tolerance is
    approximate only when the build declares approximations and the measured spike mismatch,
    dX cosine and |dV| stay within their summed bounds; beyond them it is WRONG, with the
    figure and the bound."""
    if result.non_finite:
        return "WRONG", result.reason
    if result.verdict == "exact":
        return "exact", result.reason
    if result.verdict == "close":
        why = "; ".join(build.tie_notes) or "float rounding at the threshold"
        return "close", f"{why} ({result.reason})"
    if not build.approximations:
        return "WRONG", result.reason
    beyond = bound_problems(result, build.approximations)
    declared = "; ".join(a.reason for a in build.approximations)
    if beyond:
        return (
            "WRONG",
            f"beyond the declared approximations' bounds: {'; '.join(beyond)} "
            f"(declared: {declared})",
        )
    return "approximate", f"{declared} ({result.reason}; within the declared bounds)"


def bound_problems(result: OracleCheck, approximations: list[Approximation]) -> list[str]:
    """How the measured differences exceed the summed bounds of the approximations."""
    spikes = sum(a.spike_mismatch for a in approximations)
    cosine = 1.0 - sum(a.grad_cosine_drop for a in approximations)
    v_diff = sum(a.v_diff for a in approximations)
    problems = []
    if result.spikes.mismatch_fraction > spikes:
        problems.append(f"spike mismatch {result.spikes.mismatch_fraction:.4%} > {spikes:.4%}")
    if not result.grad_cosine >= cosine and result.grad_excess > 0:  # a NaN cosine fails too
        problems.append(f"dX cosine {result.grad_cosine:.4f} < {cosine:.4f}")
    if result.v_excess > v_diff:
        problems.append(f"|dV| beyond tolerance by {result.v_excess:.3g} > {v_diff:.3g}")
    return problems


def sample_neurons(neurons: int, spread: int = SAMPLE_SPREAD, tail: int = SAMPLE_TAIL):
    """Sorted indices into [0, neurons): ``spread`` evenly spaced (0 and neurons-1 among them)
    and the last ``tail``."""
    if neurons < 1:
        raise ValueError(f"neurons must be >= 1, got {neurons}")
    evenly = torch.linspace(0, neurons - 1, steps=min(spread, neurons)).round().long()
    last = torch.arange(max(0, neurons - tail), neurons)
    return torch.unique(torch.cat([evenly, last]))


def _grad_excess(actual: torch.Tensor, expected: torch.Tensor, tol: float, keep: torch.Tensor):
    """(largest excess of |actual - expected| over tol + tol*|expected|, max |difference|) over
    the neurons in ``keep``; NaN or Inf in the same places on both sides counts as equal."""
    a = actual.detach().to(torch.float64).cpu()[:, keep]
    e = expected.detach().to(torch.float64).cpu()[:, keep]
    if a.numel() == 0:
        return float("-inf"), 0.0
    finite = torch.isfinite(a) & torch.isfinite(e)
    same_special = (torch.isnan(a) & torch.isnan(e)) | (~finite & (a == e))
    difference = torch.where(finite, (a - e).abs(), torch.zeros_like(a))
    excess = torch.where(
        finite,
        difference - (tol + tol * e.abs()),
        torch.where(same_special, torch.full_like(a, -torch.inf), torch.full_like(a, torch.inf)),
    )
    return float(excess.max()), float(difference.max())


def timed_agreement(
    build: NeuronBuild, x: torch.Tensor, grad: torch.Tensor, config: LIFConfig
) -> TimedBuildAgreement:
    """Runs the timed build forward and backward (upstream gradient ``grad`` on the spikes) on
    the whole of ``x`` [T, ...], and the checking build on sampled neurons of the same input,
    and compares spikes exactly (threshold ties excused, judged by the float64 oracle's H) and
    dX within the dtype's tolerance. Neither run is timed."""
    from reference_kernels.torch_ref import lif_trajectory

    steps = x.shape[0]
    x_full = x.detach().clone().requires_grad_()
    spikes = build.timed.canonical(x_full)
    spikes.backward(grad)
    index = sample_neurons(x[0].numel()).to(x.device)
    timed_spikes = spikes.detach().reshape(steps, -1)[:, index]
    timed_grad = x_full.grad.reshape(steps, -1)[:, index]
    del x_full, spikes

    x_sample = x.detach().reshape(steps, -1)[:, index].clone().requires_grad_()
    check_spikes, _ = build.check(x_sample)
    check_spikes.backward(grad.reshape(steps, -1)[:, index])
    with torch.no_grad():
        _, _, oracle_h = lif_trajectory(x_sample.detach().to("cpu", torch.float64), config)
    spikes_compared = spike_agreement(
        timed_spikes, check_spikes, oracle_h, config.v_threshold, TIE_ATOL[x.dtype]
    )
    tolerance = TOLERANCE[x.dtype]
    excess, largest = _grad_excess(timed_grad, x_sample.grad, tolerance, spikes_compared.comparable)
    return TimedBuildAgreement(
        neurons=int(index.numel()),
        spike_mismatches=spikes_compared.mismatches,
        neurons_diverged=spikes_compared.neurons_diverged,
        threshold_ties=spikes_compared.ties,
        grad_excess=excess,
        grad_max_abs_diff=largest,
        tolerance=tolerance,
    )
