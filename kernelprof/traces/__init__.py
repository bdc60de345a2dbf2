"""Profiler traces: reading (:mod:`.read`), a streamed summary and diff (:mod:`.summary`), the
time-ordered parse (:mod:`.timeline`) behind range activity (:mod:`.ranges`) and the training-step
attribution (:mod:`.steps`). All pure functions of a trace's events."""

from kernelprof.traces.ranges import RangeActivity, range_activity
from kernelprof.traces.read import TraceError, iter_events
from kernelprof.traces.summary import (
    Totals,
    TraceSummary,
    diff,
    summarize,
    summarize_with_timeline,
)

__all__ = [
    "RangeActivity",
    "TraceError",
    "TraceSummary",
    "Totals",
    "diff",
    "iter_events",
    "range_activity",
    "summarize",
    "summarize_with_timeline",
]
