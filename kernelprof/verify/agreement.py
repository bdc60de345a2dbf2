"""How closely an implementation's outputs agree with the float64 oracle.

Spikes are compared exactly. A spike that differs is excused only when it is a threshold tie:
the oracle's membrane H at that first differing step lies within rounding distance of the
threshold, so float32 arithmetic may fall on either side. After such a flip the neuron follows
another trajectory, so its later steps and its gradients are not comparable: those neurons are
left out of the V and gradient comparisons, and counted.

PLIF's decay parameter gets its gradient dw from every neuron and step, so it is compared only
where no neuron diverged (a tie changes a neuron's whole contribution): within the dtype's
atol = rtol, and with the same sign wherever the oracle's is beyond that tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernelprof.results.check import OracleFigures
from reference_kernels.model import NeuronConfig, channel_shape

# |H - theta| within which a float32 computation may land on the other side of the threshold.
# float32 rounds each step's H by ~6e-8 relative; over T steps errors add up but stay far below.
TIE_ATOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}


@dataclass(frozen=True)
class SpikeAgreement:
    """Spike comparison of one implementation with the oracle over a [T, N] sequence."""

    total: int  # spike values compared (T * N)
    mismatches: int  # spike values that differ
    neurons_diverged: int  # neurons whose spike train differs anywhere
    ties: int  # of those neurons, how many first differ at a threshold tie
    non_ties: int  # neurons that first differ where the oracle is not near the threshold
    comparable: torch.Tensor  # [N] bool: neurons whose spike train equals the oracle's

    @property
    def mismatch_fraction(self) -> float:
        return self.mismatches / self.total if self.total else 0.0


def spike_agreement(
    spikes: torch.Tensor,
    oracle_spikes: torch.Tensor,
    oracle_h: torch.Tensor,
    v_threshold: float,
    tie_atol: float,
) -> SpikeAgreement:
    """Compares spikes [T, ...] with the oracle's; ``oracle_h`` is the oracle's H (float64)."""
    steps = spikes.shape[0]
    s = spikes.detach().reshape(steps, -1).to(torch.float64).cpu()
    ref = oracle_spikes.detach().reshape(steps, -1).to(torch.float64).cpu()
    h = oracle_h.detach().reshape(steps, -1).to(torch.float64).cpu()
    differ = s != ref
    diverged = differ.any(dim=0)
    first = differ.to(torch.int8).argmax(dim=0)  # first differing step of each neuron
    h_first = h.gather(0, first.unsqueeze(0)).squeeze(0)
    is_tie = (h_first - v_threshold).abs() <= tie_atol
    ties = int((diverged & is_tie).sum())
    neurons_diverged = int(diverged.sum())
    return SpikeAgreement(
        total=differ.numel(),
        mismatches=int(differ.sum()),
        neurons_diverged=neurons_diverged,
        ties=ties,
        non_ties=neurons_diverged - ties,
        comparable=~diverged,
    )


def max_abs_excess(
    actual: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float, keep: torch.Tensor
) -> float:
    """Largest amount by which |actual - expected| exceeds atol + rtol*|expected| over the
    neurons in ``keep`` ([N] bool); <= 0 means every value is within tolerance."""
    steps = actual.shape[0]
    a = actual.detach().reshape(steps, -1).to(torch.float64).cpu()[:, keep]
    e = expected.detach().reshape(steps, -1).to(torch.float64).cpu()[:, keep]
    if a.numel() == 0:
        return float("-inf")
    if not torch.isfinite(a).all():
        return float("inf")
    return float(((a - e).abs() - (atol + rtol * e.abs())).max())


def cosine(actual: torch.Tensor | None, expected: torch.Tensor) -> float:
    """Cosine similarity of two gradients (nan when either is missing or all zero)."""
    if actual is None:
        return float("nan")
    a = actual.detach().reshape(-1).to(torch.float64).cpu()
    e = expected.detach().reshape(-1).to(torch.float64).cpu()
    norms = a.norm() * e.norm()
    return float(a @ e / norms) if norms > 0 else float("nan")


def max_abs_diff(actual: torch.Tensor, expected: torch.Tensor, keep: torch.Tensor) -> float:
    """max |actual - expected| over the neurons in ``keep`` (0.0 when none are kept)."""
    steps = actual.shape[0]
    a = actual.detach().reshape(steps, -1).to(torch.float64).cpu()[:, keep]
    e = expected.detach().reshape(steps, -1).to(torch.float64).cpu()[:, keep]
    return float((a - e).abs().max()) if a.numel() else 0.0


# atol = rtol for V and gradients, by the dtype an implementation computes in.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}


@dataclass(frozen=True)
class OracleCheck:
    """An implementation's outputs against the float64 oracle on one input."""

    verdict: str  # "exact", "close" (threshold ties only) or "WRONG"
    reason: str
    spikes: SpikeAgreement
    firing_rate: float
    v_max_abs_diff: float | None  # None where the implementation does not expose V
    grad_max_abs_diff: float
    grad_cosine: float  # cosine similarity of dX with the oracle's, over all neurons
    v_excess: float  # > 0: some V beyond atol + rtol*|V|
    grad_excess: float
    non_finite: str = ""  # where NaN or Inf appeared (spikes, V, dX), "" when nowhere
    dw_relative_error: float | None = None  # PLIF, where dw was compared
    dw_sign_agrees: bool | None = None
    dw_problem: str = ""  # PLIF: how dw is wrong (magnitude, sign, NaN), "" when it is not
    states_compared: str | None = None  # "I" (CUBA) or "A" (ALIF) where the build exposes it
    state_max_abs_diff: float | None = None
    state_excess: float = float("-inf")  # > 0: some exposed state beyond atol + rtol*|state|
    state_scale: float = 0.0  # the oracle's largest |state| where compared (scales a bound)

    def figures(self) -> OracleFigures:
        """The record of this comparison (what a results document keeps of it)."""
        return OracleFigures(
            oracle_verdict=self.verdict,
            oracle_reason=self.reason,
            spike_mismatches=self.spikes.mismatches,
            spike_mismatch_fraction=self.spikes.mismatch_fraction,
            neurons_diverged=self.spikes.neurons_diverged,
            threshold_ties=self.spikes.ties,
            firing_rate=self.firing_rate,
            v_max_abs_diff=self.v_max_abs_diff,
            grad_max_abs_diff=self.grad_max_abs_diff,
            grad_cosine=self.grad_cosine,
            non_finite=self.non_finite or None,
            dw_relative_error=self.dw_relative_error,
            dw_sign_agrees=self.dw_sign_agrees,
            states_compared=self.states_compared,
            state_max_abs_diff=self.state_max_abs_diff,
        )


def check_against_oracle(
    run: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    x: torch.Tensor,
    config: NeuronConfig,
    *,
    seed: int = 0,
    with_grad_v: bool = True,
    dw: Callable[[], torch.Tensor | None] | None = None,
) -> OracleCheck:
    """Runs ``run(x) -> (spikes, V)`` and the float64 oracle on the same input and upstream
    gradients (random for S, and for V when ``with_grad_v``), and compares outputs and dX.

    ``run`` may return ``V = None`` when the implementation does not expose V after reset;
    then only spikes and dX (from the spikes' gradient alone) are compared. For PLIF, ``dw()``
    gives the build's canonical dw after the backward (its w at w0: one value, or one per
    channel), compared with the oracle's at w0; without it dw is not compared, and the reason
    says so."""
    x_impl, s, v, states, upstream = _run_backward(run, x, seed, with_grad_v)
    s_ref, v_ref, h_ref, x_ref, w_ref, states_ref = _oracle(x, config, *upstream)

    tol = TOLERANCE[x.dtype]
    non_finite = _non_finite({"spikes": s, "V": v, **_named(states), "dX": x_impl.grad})
    spikes = spike_agreement(s, s_ref, h_ref, config.v_threshold, TIE_ATOL[x.dtype])
    keep = spikes.comparable
    v_excess = float("-inf") if v is None else max_abs_excess(v, v_ref, tol, tol, keep)
    grad_excess = max_abs_excess(x_impl.grad, x_ref.grad, tol, tol, keep)
    state_diff, state_excess, state_scale, state_problems = _compare_states(
        states, states_ref, tol, keep
    )
    problems = [f"NaN or Inf in {non_finite}"] if non_finite else []
    problems += state_problems
    if spikes.non_ties:
        problems.append(f"{spikes.non_ties} neurons' spikes differ away from the threshold")
    if v_excess > 0:
        problems.append(f"V beyond atol=rtol={tol:g}")
    if grad_excess > 0:
        problems.append(f"dX beyond atol=rtol={tol:g}")
    dw_figures, dw_note, dw_problem = (None, None), "", ""
    if w_ref is not None:
        got = None if dw is None else dw()
        dw_figures, dw_note, dw_problem = compare_dw(got, w_ref.grad, tol, spikes.neurons_diverged)
    problems += [dw_problem] if dw_problem else []
    if problems:
        verdict, reason = "WRONG", "; ".join(problems)
    elif spikes.ties:
        verdict = "close"
        reason = (
            f"{spikes.ties} neurons differ at threshold ties (|H - theta| <= {TIE_ATOL[x.dtype]:g})"
        )
    else:
        compared = _compared(v is not None, states, dw_figures[0] is not None)
        verdict, reason = "exact", f"spikes equal; {compared} within atol=rtol={tol:g}"
    if dw_note:
        reason = f"{reason}; {dw_note}"
    return OracleCheck(
        verdict=verdict,
        reason=reason,
        spikes=spikes,
        firing_rate=float(s_ref.detach().mean()),
        v_max_abs_diff=None if v is None else max_abs_diff(v, v_ref, keep),
        grad_max_abs_diff=max_abs_diff(x_impl.grad, x_ref.grad, keep),
        grad_cosine=cosine(x_impl.grad, x_ref.grad),
        v_excess=v_excess,
        grad_excess=grad_excess,
        non_finite=non_finite,
        dw_relative_error=dw_figures[0],
        dw_sign_agrees=dw_figures[1],
        dw_problem=dw_problem,
        states_compared=", ".join(_named(states)) or None,
        state_max_abs_diff=state_diff,
        state_excess=state_excess,
        state_scale=state_scale,
    )


def _run_backward(run, x: torch.Tensor, seed: int, with_grad_v: bool):
    """``run`` on a fresh leaf copy of ``x``, and its backward from random upstream gradients
    on S, on V (when exposed and ``with_grad_v``) and on each exposed state: (the leaf, S, V,
    the states, (dS, dV or None, {name: d-state}) for the oracle)."""
    generator = torch.Generator().manual_seed(seed + 1)

    def gradient() -> torch.Tensor:
        return torch.randn(x.shape, generator=generator).to(dtype=x.dtype, device=x.device)

    grad_s, grad_v = gradient(), gradient()
    x_impl = x.detach().clone().requires_grad_()
    s, v, *more = run(x_impl)
    states = dict(more[0]) if more and more[0] else {}  # CUBA's I, ALIF's A, where exposed
    grad_states = {name: gradient() for name in sorted(states)}
    with_grad_v = with_grad_v and v is not None  # no V: compare the spikes' gradient alone
    outputs, grads = [s], [grad_s]
    if with_grad_v:
        outputs.append(v)
        grads.append(grad_v)
    outputs += [states[name] for name in grad_states]
    grads += list(grad_states.values())
    torch.autograd.backward(outputs, grads)
    return x_impl, s, v, states, (grad_s, grad_v if with_grad_v else None, grad_states)


def _compared(with_v: bool, states: dict, with_dw: bool) -> str:
    """What an exact verdict compared: "dX", "V and dX", "V, I and dX", "... and dw"."""
    *others, last = ["V"] * with_v + list(_named(states)) + ["dX"]
    compared = f"{', '.join(others)} and {last}" if others else last
    return compared + " and dw" if with_dw else compared


def _named(states: dict) -> dict:
    """The states under the names the reasons give them: {"I": ...} or {"A": ...}."""
    return {name.upper(): tensor for name, tensor in sorted(states.items())}


def _compare_states(states: dict, states_ref: dict, tol: float, keep):
    """(largest |state - oracle| over the exposed states or None, the largest excess over
    atol + rtol*|oracle|, the oracle's largest |state|, problems) for CUBA's I and ALIF's A, on
    the neurons whose spikes did not diverge."""
    largest, excess, scale, problems = None, float("-inf"), 0.0, []
    for name, got in sorted(states.items()):
        want = states_ref[name]
        diff = max_abs_diff(got, want, keep)
        largest = diff if largest is None else max(largest, diff)
        scale = max(scale, max_abs_diff(want, torch.zeros_like(want), keep))  # max |oracle|
        beyond = max_abs_excess(got, want, tol, tol, keep)
        excess = max(excess, beyond)
        if beyond > 0:
            problems.append(f"{name.upper()} beyond atol=rtol={tol:g}")
    return largest, excess, scale, problems


def _oracle(x: torch.Tensor, config: NeuronConfig, grad_s: torch.Tensor,
            grad_v: torch.Tensor | None, grad_states: dict | None = None):  # fmt: skip
    """The float64 oracle on ``x`` with these upstream gradients (PLIF at w0; ``grad_states``
    on the states the implementation exposes): (S, V, H, its input and its w, both leaves
    holding their gradients, and its other states)."""
    from reference_kernels.torch_ref import run_states

    x_ref = x.detach().to(device="cpu", dtype=torch.float64).requires_grad_()
    w_ref = None
    if config.neuron == "plif":
        channels = channel_shape(x.shape[1:])[1]
        w_ref = config.initial_w(channels, dtype=torch.float64).requires_grad_()
    s_ref, v_ref, h_ref, states_ref = run_states(x_ref, config, w_ref)
    loss = (s_ref * grad_s.double().cpu()).sum()
    if grad_v is not None:
        loss = loss + (v_ref * grad_v.double().cpu()).sum()
    for name, grad in (grad_states or {}).items():
        loss = loss + (states_ref[name] * grad.double().cpu()).sum()
    loss.backward()
    return s_ref, v_ref, h_ref, x_ref, w_ref, states_ref


def compare_dw(got: torch.Tensor | None, want: torch.Tensor, tol: float, diverged: int):
    """((relative error, signs agree) or (None, None), note, problem or "") for PLIF's dw."""
    if got is None:
        return (None, None), "dw not compared (the build does not expose its decay's gradient)", ""
    if diverged:
        return (None, None), f"dw not compared ({diverged} neurons' spikes diverged)", ""
    got = got.detach().to("cpu", torch.float64).reshape(want.shape)
    if not bool(torch.isfinite(got).all()):
        return (None, None), "", "NaN or Inf in dw"
    relative = float(((got - want).abs() / want.abs().clamp_min(1e-300)).max())
    significant = want.abs() > tol
    signs = bool(torch.equal(got.sign()[significant], want.sign()[significant]))
    problem = ""
    if not signs:
        problem = "dw has the wrong sign"
    elif float(((got - want).abs() - (tol + tol * want.abs())).max()) > 0:
        problem = f"dw beyond atol=rtol={tol:g} (relative error {relative:.3g})"
    return (relative, signs), f"dw relative error {relative:.2g}", problem


def _non_finite(outputs: dict[str, torch.Tensor | None]) -> str:
    """'dX (12 values)' for every output holding NaN or Inf; "" when all are finite."""
    found = []
    for name, tensor in outputs.items():
        if tensor is None:
            continue
        bad = int((~torch.isfinite(tensor.detach())).sum())
        if bad:
            found.append(f"{name} ({bad:,} values)")
    return ", ".join(found)
