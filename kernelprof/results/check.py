"""Check records: a neuron implementation's checked build (its verdict against the float64
oracle, with the figures behind it, and whether its timed build computes the same), and the
document of ``kernelprof check``.

:class:`CheckedBuild` is the first record of both ``check`` and ``compare``: compare's workers
make it before anything is timed, and no timing is shown without it.
"""

from __future__ import annotations

from typing import Literal

from kernelprof.results.document import Document
from kernelprof.results.record import record
from reference_kernels.model import NeuronConfig

Verdict = Literal["exact", "close", "approximate", "WRONG", "unsupported", "unavailable", "error"]
Status = Literal["ok", "unsupported", "unavailable", "error"]
DType = Literal["fp32", "fp16", "bf16"]
JUDGED = ("exact", "close", "approximate", "WRONG")  # verdicts of a build that ran
TRUSTED = ("exact", "close")
NOT_RUN = ("unavailable", "unsupported")


@record
class OracleFigures:
    """An implementation's outputs against the float64 oracle on one input."""

    oracle_verdict: Literal["exact", "close", "WRONG"]  # before the build's declarations
    oracle_reason: str
    spike_mismatches: int
    spike_mismatch_fraction: float
    neurons_diverged: int
    threshold_ties: int
    firing_rate: float
    v_max_abs_diff: float | None  # None where the implementation does not expose V
    grad_max_abs_diff: float
    grad_cosine: float
    non_finite: str | None = None  # where NaN or Inf appeared
    # PLIF: the decay parameter's gradient dw against the oracle's (None where not compared):
    # the largest |dw - dw_oracle| / |dw_oracle| over its values, and whether every sign agrees
    dw_relative_error: float | None = None
    dw_sign_agrees: bool | None = None
    # CUBA's I or ALIF's A, where the build exposes it ("I", "A"; None where not compared), and
    # its largest |state - oracle| on the neurons whose spikes did not diverge
    states_compared: str | None = None
    state_max_abs_diff: float | None = None


@record
class TimedBuildAgreement:
    """The timed build against the checking build on sampled neurons of one input."""

    neurons: int  # neurons compared
    spike_mismatches: int
    neurons_diverged: int  # neurons whose spike trains differ
    threshold_ties: int  # of those, how many first differ at an exact threshold tie (excused)
    grad_excess: float  # > 0: some dX beyond atol = rtol = tolerance
    grad_max_abs_diff: float
    tolerance: float

    DERIVED = ("agrees", "reason")

    @property
    def agrees(self) -> bool:
        return self.neurons_diverged == self.threshold_ties and self.grad_excess <= 0

    @property
    def reason(self) -> str:
        if self.agrees:
            tied = (
                f"; {self.threshold_ties} differ at threshold ties" if self.threshold_ties else ""
            )
            return (
                f"timed build agrees with the checking build on {self.neurons:,} sampled neurons "
                f"of the timed input (spikes equal, dX within {self.tolerance:g}{tied})"
            )
        problems = []
        if self.neurons_diverged != self.threshold_ties:
            problems.append(
                f"spikes of {self.neurons_diverged - self.threshold_ties} of {self.neurons:,} "
                f"sampled neurons differ ({self.spike_mismatches} values)"
            )
        if self.grad_excess > 0:
            problems.append(
                f"dX differs by up to {self.grad_max_abs_diff:.3g} (tolerance {self.tolerance:g})"
            )
        return "timed build disagrees with the checking build on the timed input: " + "; ".join(
            problems
        )


@record
class TimedInputCheck:
    """The checking build against the oracle on sampled neurons of the timed input itself."""

    verdict: Verdict
    reason: str
    neurons: int
    spike_mismatch_fraction: float
    grad_cosine: float


@record
class CheckedBuild:
    """One implementation checked: its verdict and reason, the figures behind them, and what
    ran. ``timeable``: its timed build agrees with its checking build (compare may time it)."""

    impl: str
    framework: str
    verdict: Verdict
    status: Status = "ok"
    reason: str = ""
    reference: bool = False  # kernelprof's own kernels, not a framework's
    oracle: OracleFigures | None = None
    timed_build: TimedBuildAgreement | None = None
    timed_input: TimedInputCheck | None = None  # compare: on the timed input's neurons
    checking_verdict: Verdict | None = None  # the verdict before a timed build disagreed
    path: str | None = None  # the code path that ran
    timed_code: str | None = None  # what compare times, as its users write it
    python: str | None = None  # another interpreter ran it (--python)
    error: str | None = None  # what stopped a checked build from being timed
    timeable: bool = False

    @property
    def judged(self) -> bool:
        """The build ran and was compared with the oracle (exact, close, approximate, WRONG)."""
        return self.verdict in JUDGED

    @property
    def trusted(self) -> bool:
        return self.verdict in TRUSTED


@record
class CheckCase:
    T: int
    N: int
    dtype: DType
    device: str


@record
class CheckDocument(Document):
    kernelprof: Literal["check"] = "check"
    config: NeuronConfig
    case: CheckCase
    rows: tuple[CheckedBuild, ...] = ()

    @property
    def wrong(self) -> bool:
        return any(row.verdict == "WRONG" for row in self.rows)
