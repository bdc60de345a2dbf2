"""Compare records, stage by stage: each implementation's timings of one round
(:class:`RoundTiming`, made in its worker), the rounds pooled (:class:`PhaseTiming`), what the
profile saw (:class:`Profile`), the measured row (:class:`MeasuredRow`), the analysed row with
bandwidth, speedups and flags (:class:`CompareRow`), one case of the sweep
(:class:`CompareCase`) and the document (:class:`CompareDocument`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import field
from functools import cached_property
from typing import Literal

from kernelprof.results.check import CheckedBuild, DType
from kernelprof.results.document import DeviceInfo, Document
from kernelprof.results.energy import EnergyMeasurement
from kernelprof.results.flags import Flag
from kernelprof.results.record import FrozenDict, record
from kernelprof.results.timing import Measurement, WarmUp
from reference_kernels.model import NeuronConfig

PHASES = ("fwd", "bwd", "fwd+bwd")
DeviceSource = Literal["kernels", "host clock"]


@record
class Case:
    """One point of a sweep: T time steps of N neurons each, in one dtype, of one neuron (its
    canonical config is its :class:`CompareCase`'s). For PLIF, ``channels`` is how many decays
    it learns (1, or N with --per-channel: the check's [T, N] input has one neuron per
    channel)."""

    T: int
    N: int
    dtype: DType
    neuron: str = "lif"
    channels: int = 1
    saved: int = 1  # [T, N] tensors the canonical fused algorithm saves for backward

    @property
    def label(self) -> str:
        return f"T={self.T} N={self.N:,} {self.dtype}"


@record
class RoundTiming:
    """One phase of one implementation, timed in one round (in its worker)."""

    round: int
    started_at: float  # wall clock (time.time) when this round's timing began
    call: Measurement  # call times: CUDA events around each call, or the host clock
    device: Measurement  # per call: summed kernel durations (CUDA), or the call itself (CPU)
    device_source: DeviceSource
    launch_s: float  # the host's time until the call returns (median)
    warm_up: WarmUp | None = None  # round 1: the calls made until the time settled


@record
class PhaseTiming:
    """One phase's rounds, pooled: call and device times over every round's calls."""

    rounds: tuple[RoundTiming, ...]
    op_fraction: float | None = None  # CPU: the share of the call inside torch operators

    DERIVED = ("call_s", "device_s", "launch_s", "first_call_s", "device_source")

    def __post_init__(self) -> None:
        if not self.rounds:
            raise ValueError("a PhaseTiming needs at least one round")

    @cached_property
    def call(self) -> Measurement:
        return Measurement.merge([r.call for r in self.rounds])

    @cached_property
    def device(self) -> Measurement:
        return Measurement.merge([r.device for r in self.rounds])

    @property
    def call_s(self) -> float:
        return self.call.median_s

    @property
    def device_s(self) -> float:
        return self.device.median_s

    @property
    def device_source(self) -> str:
        return self.rounds[0].device_source

    @property
    def launch_s(self) -> float:
        if self.device_source == "host clock":  # the host does the work: launch is the call
            return self.call_s
        return statistics.median(r.launch_s for r in self.rounds)

    @property
    def first_call_s(self) -> float | None:
        return self.rounds[0].call.first_call_s

    @property
    def warm_up(self) -> WarmUp | None:
        return self.rounds[0].warm_up

    @property
    def minor_faults_per_call(self) -> float | None:
        """CPU: minor page faults per timed call, over every round's calls."""
        return self.call.minor_faults_per_call


@record
class GraphTiming:
    """A phase replayed as a CUDA graph, or why it could not be captured."""

    measurement: Measurement | None = None
    unavailable_reason: str | None = None


@record
class Profile:
    """What the rounds do not time, from one profile of the timed build."""

    kernels_per_fwd_bwd: int | None  # None: a runtime torch's profiler cannot see
    kernel_kind: str
    peak_bytes: int | None
    saved_bytes: int | None
    energy: EnergyMeasurement
    op_fraction: Mapping[str, float] = field(default_factory=FrozenDict)
    graph_timings: Mapping[str, GraphTiming] = field(default_factory=FrozenDict)
    trace: str | None = None


@record
class WallTimes:
    """How long the parent waited for each request of a row's worker (seconds)."""

    check_s: float
    rounds_s: tuple[float, ...] = ()
    profile_s: float | None = None


@record
class MeasuredRow:
    """One implementation on one case: checked, then (when timeable) timed and profiled."""

    checked: CheckedBuild
    timings: Mapping[str, PhaseTiming] | None = None  # None: not timed
    profile: Profile | None = None
    wall: WallTimes | None = None
    errors: tuple[str, ...] = ()  # requests to its worker that failed

    @property
    def impl(self) -> str:
        return self.checked.impl

    @property
    def verdict(self) -> str:
        return self.checked.verdict

    @property
    def reason(self) -> str:
        return self.checked.reason

    @property
    def timed(self) -> bool:
        return self.timings is not None


@record
class Bandwidth:
    """The bytes a phase must move, and the rate its device (and call) time gives."""

    bytes: int
    gb_per_s: float
    copy_fraction: float  # of the measured copy bandwidth, on device time
    call_copy_fraction: float  # the same on call time


@record
class Speedup:
    """The baseline's time over this row's: the median over paired rounds of the per-round
    ratio, with its 95 % bootstrap interval."""

    value: float
    low: float
    high: float
    rounds: int


@record
class CompareRow(MeasuredRow):
    """A measured row with what the analysis found: bandwidth, speedups and flags."""

    bandwidth: Mapping[str, Bandwidth] = field(default_factory=FrozenDict)
    speedup: Speedup | None = None  # fwd+bwd device time against the baseline
    speedup_call: Speedup | None = None  # the same on call time
    flags: tuple[Flag, ...] = ()

    @property
    def inconsistent(self) -> tuple[Flag, ...]:
        return tuple(flag for flag in self.flags if flag.inconsistent)


@record
class NoiseProbe:
    """A fixed workload timed like any implementation: what the machine itself varies by."""

    workload: str
    median_s: float
    spread: float
    calls: int


@record
class CompareCase:
    """One case of a compare sweep: every implementation's row, analysed."""

    case: Case
    device: DeviceInfo
    copy_bandwidth_gb_per_s: float
    rows: tuple[CompareRow, ...] = ()
    baseline: str | None = None
    noise_rounds: tuple[NoiseProbe, ...] = ()  # the probe before each round
    noise_spread: float | None = None  # its calls' median spread over the probes
    spread_limit: float | None = None  # a phase's spread above this is flagged
    config: NeuronConfig | None = None  # the case's neuron config (None in older files)

    @property
    def timed_rows(self) -> tuple[CompareRow, ...]:
        return tuple(row for row in self.rows if row.timed)

    @property
    def drift(self) -> float | None:
        """The slowest noise probe over the fastest: how much the machine changed."""
        medians = [probe.median_s for probe in self.noise_rounds]
        return max(medians) / min(medians) if len(medians) > 1 and min(medians) > 0 else None


@record
class CompareDocument(Document):
    """A compare run. ``config`` is its first neuron's config; a sweep over neurons gives each
    case its own (:attr:`CompareCase.config`)."""

    kernelprof: Literal["compare"] = "compare"
    config: NeuronConfig
    copy_bandwidth_gb_per_s: float
    noise_probe: NoiseProbe
    rounds: int = 3
    repeat_s: float = 0.25
    cases: tuple[CompareCase, ...] = ()

    @property
    def rows(self) -> tuple[CompareRow, ...]:
        """Every case's rows, in order."""
        return tuple(row for case in self.cases for row in case.rows)
