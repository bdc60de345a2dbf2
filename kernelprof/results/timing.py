"""Timing records: one workload's raw call times (:class:`Measurement`), a warm-up, and the
statistics every figure derives from them.

A :class:`Measurement` keeps the raw per-call times and what the harness saw beside them; its
median, quartiles and spread are computed from the samples (one implementation:
:func:`~kernelprof.results.record.quartiles`) and written with it for readers of the file.
Measurements of the same workload taken apart (compare's interleaved rounds) are pooled with
:meth:`Measurement.merge`, as ``torch.utils.benchmark``'s ``Measurement.merge`` does.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from functools import cached_property

from kernelprof.results.flags import Flag
from kernelprof.results.record import quartiles, record, relative_spread

SPREAD_WARNING = 0.10  # a spread (IQR over the median) above this is warned about
HIDDEN_WORK_MIN_S = 100e-6  # below this, launch and sync latency alone can exceed event times


@record
class Measurement:
    """Raw per-call times of one workload (seconds), with what the harness saw beside them."""

    samples_s: tuple[float, ...]
    first_call_s: float | None = None  # timed apart: compilation and other one-off work
    label: str = ""
    adapted_calls: int = 0  # calls added because the spread was large
    cache_flush: str = ""
    # CUDA: host-timed calls with the whole device synchronised, and their launch time
    host_synced_median_s: float | None = None
    host_launch_median_s: float | None = None
    # CUDA: call times with the GPU held busy before each start event (the device's work alone)
    events_busy_median_s: float | None = None
    events_busy_hold_s: float | None = None
    # CPU: per timed call, minor page faults (memory first touched inside the call) and the
    # system time they and other kernel work took (getrusage); and the share of the elapsed
    # time the rest of the machine spent on a CPU meanwhile (/proc/stat; 1.0 is a whole core)
    minor_faults_per_call: float | None = None
    system_s_per_call: float | None = None
    others_cpu_share: float | None = None

    DERIVED = ("median_s", "q1_s", "q3_s", "iqr_s", "spread")

    def __post_init__(self) -> None:
        if not self.samples_s:
            raise ValueError("a Measurement needs at least one sample")

    @cached_property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @cached_property
    def quartiles_s(self) -> tuple[float, float]:
        return quartiles(self.samples_s)

    @property
    def q1_s(self) -> float:
        return self.quartiles_s[0]

    @property
    def q3_s(self) -> float:
        return self.quartiles_s[1]

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s

    @cached_property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return relative_spread(self.samples_s)

    @classmethod
    def merge(cls, measurements: Sequence[Measurement]) -> Measurement:
        """One measurement of the same workload from several taken apart: every sample, in
        order; the first call and label of the first; the added calls summed; the CUDA
        cross-checks' medians over the measurements that have them; the host's counters per
        call over all their calls."""
        if not measurements:
            raise ValueError("nothing to merge")
        first = measurements[0]

        def median_of(name: str) -> float | None:
            values = [getattr(m, name) for m in measurements if getattr(m, name) is not None]
            return statistics.median(values) if values else None

        def per_call(name: str) -> float | None:  # over every call of those that have it
            counted = [m for m in measurements if getattr(m, name) is not None]
            calls = sum(len(m.samples_s) for m in counted)
            return (sum(getattr(m, name) * len(m.samples_s) for m in counted) / calls
                    if counted else None)  # fmt: skip

        return cls(
            samples_s=tuple(s for m in measurements for s in m.samples_s),
            first_call_s=first.first_call_s,
            label=first.label,
            adapted_calls=sum(m.adapted_calls for m in measurements),
            cache_flush=first.cache_flush,
            host_synced_median_s=median_of("host_synced_median_s"),
            host_launch_median_s=median_of("host_launch_median_s"),
            events_busy_median_s=median_of("events_busy_median_s"),
            events_busy_hold_s=median_of("events_busy_hold_s"),
            minor_faults_per_call=per_call("minor_faults_per_call"),
            system_s_per_call=per_call("system_s_per_call"),
            others_cpu_share=per_call("others_cpu_share"),
        )

    def hidden_work(self) -> Flag | None:
        """A synchronised call lasts as long as the slower of the host's launching and the
        device's work. Only what neither the events nor the launch time explain is hidden: a
        short kernel behind 0.3 ms of Python launching is not (seen on an H200)."""
        synced = self.host_synced_median_s
        launch = self.host_launch_median_s or 0.0
        if synced is None or synced <= HIDDEN_WORK_MIN_S:
            return None
        if synced - max(self.median_s, launch) <= 0.5 * synced:
            return None
        return Flag(
            kind="hidden_work",
            subject=self.label,
            message=f"{self.label or 'measurement'}: CUDA events saw {1e3 * self.median_s:.3f} ms "
            f"and the host launched in {1e3 * launch:.3f} ms, but a device-synchronised call "
            f"takes {1e3 * synced:.3f} ms: work outside the current stream? (the synchronised "
            "time is the honest one)",
            figures={"events_s": self.median_s, "launch_s": launch, "synced_s": synced},
        )

    def spread_flag(self, limit: float = SPREAD_WARNING) -> Flag | None:
        if self.spread <= limit:
            return None
        adapted = " (after timing more calls)" if self.adapted_calls else ""
        return Flag(
            kind="spread",
            subject=self.label,
            message=f"{self.label or 'measurement'}: large spread, IQR is {self.spread:.0%} of "
            f"the median over {len(self.samples_s)} calls{adapted}",
            figures={"spread": self.spread, "limit": limit},
        )

    @property
    def flags(self) -> tuple[Flag, ...]:
        """What a reader of this measurement alone must know: hidden work, a large spread."""
        return tuple(f for f in (self.hidden_work(), self.spread_flag()) if f is not None)


@record
class WarmUp:
    """Calls made before timing until the call time settled (or a bound was reached)."""

    calls: int
    seconds: float
    settled: bool  # False: a bound ended it before two windows of calls agreed
    tolerance: float  # two consecutive windows' medians this close (relative) = settled
    medians_s: tuple[float, ...]  # the median of the last window, at each comparison
    times_s: tuple[float, ...] = ()  # every call's time, in order

    @property
    def first_over_last(self) -> float | None:
        """The first calls' median over the last window's: how much the warm-up removed."""
        if len(self.times_s) < 2 or not self.medians_s or self.medians_s[-1] <= 0:
            return None
        head = self.times_s[: max(1, len(self.times_s) // 4)]
        return statistics.median(head) / self.medians_s[-1]
