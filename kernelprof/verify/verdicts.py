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
from kernelprof.verify.agreement import (
    TIE_ATOL,
    TOLERANCE,
    OracleCheck,
    compare_dw,
    spike_agreement,
)
from reference_kernels.model import NeuronConfig

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
    state_diff = sum(a.state_diff + a.state_diff_per_unit * result.state_scale
                     for a in approximations)  # fmt: skip
    if result.state_excess > state_diff:
        problems.append(f"|d{result.states_compared}| beyond tolerance by "
                        f"{result.state_excess:.3g} > {state_diff:.3g}")  # fmt: skip
    if result.dw_problem:  # an approximation bounds spikes, dX and V, never PLIF's dw
        problems.append(result.dw_problem)
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
    build: NeuronBuild, x: torch.Tensor, grad: torch.Tensor, config: NeuronConfig
) -> TimedBuildAgreement:
    """Runs the timed build forward and backward (upstream gradient ``grad`` on the spikes) on
    the whole of ``x`` [T, ...], and the checking build on sampled neurons of the same input,
    and compares spikes exactly (threshold ties excused, judged by the float64 oracle's H) and
    dX within the dtype's tolerance. Neither run is timed."""
    from reference_kernels.torch_ref import trajectory

    steps = x.shape[0]
    x_full = x.detach().clone().requires_grad_()
    spikes = build.timed.canonical(x_full)
    spikes.backward(grad)
    index = sample_neurons(x[0].numel()).to(x.device)
    timed_spikes = spikes.detach().reshape(steps, -1)[:, index]
    timed_grad = x_full.grad.reshape(steps, -1)[:, index]
    del x_full, spikes

    x_sample = x.detach().reshape(steps, -1)[:, index].clone().requires_grad_()
    check_spikes, *_ = build.check(x_sample)
    check_spikes.backward(grad.reshape(steps, -1)[:, index])
    with torch.no_grad():
        _, _, oracle_h = trajectory(x_sample.detach().to("cpu", torch.float64), config)
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


def same_neuron(spikes: torch.Tensor, grad_x: torch.Tensor | None, expected_spikes: torch.Tensor,
                expected_grad_x: torch.Tensor | None, x: torch.Tensor,
                config: NeuronConfig | None) -> tuple[str, str]:  # fmt: skip
    """(verdict, reason): whether another path for a neuron layer computes what the layer
    itself computed on its own input ``x`` [T, ...] in a training step: its spikes and its
    input's gradient, given the same upstream gradient.

    Spikes are compared exactly; where they differ, the float64 oracle of ``config`` (the
    canonical LIF the layer computes) judges whether the first difference of each neuron is a
    threshold tie, which float rounding may put either side ("close"); without a config every
    differing spike is a difference. dX is compared within the dtype's atol = rtol on the
    neurons whose spikes agree. "exact", "close" or "WRONG"."""
    from reference_kernels.torch_ref import trajectory

    steps = x.shape[0]
    if spikes.shape != expected_spikes.shape:
        return "WRONG", f"spikes of shape {list(spikes.shape)}, not {list(expected_spikes.shape)}"
    if not bool(torch.isfinite(spikes).all()):
        return "WRONG", "NaN or Inf in the spikes"
    got = spikes.detach().reshape(steps, -1)
    want = expected_spikes.detach().reshape(steps, -1)
    differ = got != want
    diverged = differ.any(dim=0)
    count = int(diverged.sum())
    if count and config is None:
        return "WRONG", f"{count:,} neurons' spikes differ (no oracle to judge ties)"
    if count:
        index = diverged.nonzero().squeeze(1)
        with torch.no_grad():
            _, _, h = trajectory(x.detach().reshape(steps, -1)[:, index]
                                     .to("cpu", torch.float64), config)  # fmt: skip
        first = differ[:, index].to(torch.int8).argmax(dim=0).cpu()
        margin = (h.gather(0, first.unsqueeze(0)).squeeze(0) - config.v_threshold).abs()
        away = int((margin > TIE_ATOL[x.dtype]).sum())
        if away:
            return "WRONG", (f"{away:,} neurons' spikes differ away from the threshold (of "
                             f"{got.shape[1]:,})")  # fmt: skip
    tolerance = TOLERANCE[x.dtype]
    compared = "spikes equal"
    if grad_x is not None and expected_grad_x is not None:
        if grad_x.shape != expected_grad_x.shape:
            return "WRONG", f"dX of shape {list(grad_x.shape)}, not {list(x.shape)}"
        excess, largest = _grad_excess(grad_x.reshape(steps, -1),
                                       expected_grad_x.reshape(steps, -1), tolerance,
                                       (~diverged).cpu())  # fmt: skip
        if excess > 0:
            return "WRONG", f"dX differs by up to {largest:.3g} (atol=rtol={tolerance:g})"
        compared += f"; dX within atol=rtol={tolerance:g} (largest difference {largest:.2g})"
    else:
        compared += "; dX not compared (the layer's input needs no gradient)"
    if count:
        return "close", (f"{count:,} neurons differ at threshold ties (|H - theta| <= "
                         f"{TIE_ATOL[x.dtype]:g}); otherwise {compared}")  # fmt: skip
    return "exact", compared


def same_decay_grad(grad: torch.Tensor | None, expected: torch.Tensor,
                    dtype: torch.dtype) -> str:  # fmt: skip
    """Empty when another path gave a PLIF layer's learned decay parameter the gradient the layer
    itself gave it (in the parameter's own terms: a w, a beta), within the dtype's atol = rtol
    and with the same sign; else why not, in one line."""
    if grad is None:
        return "its learned decay got no gradient"
    if grad.shape != expected.shape:
        return f"its decay's gradient of shape {list(grad.shape)}, not {list(expected.shape)}"
    _, _, problem = compare_dw(grad, expected.detach().to("cpu", torch.float64),
                               TOLERANCE[dtype], 0)  # fmt: skip
    return problem.replace("dw", "the decay's gradient", 1)
