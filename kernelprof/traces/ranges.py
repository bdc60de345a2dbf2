"""What happened inside each occurrence of a ``record_function`` range: the GPU work it launched
and the host time inside CPU operators (the profiler harness reads its own traces with this)."""

from __future__ import annotations

from dataclasses import dataclass

from kernelprof.traces.timeline import OPERATOR, Timeline, covered


@dataclass(frozen=True)
class RangeActivity:
    """What happened inside one occurrence of a CPU ``record_function`` range."""

    name: str
    ts_us: float
    duration_us: float  # host time of the range
    kernels: int  # GPU kernels launched from inside it
    device_us: float  # summed durations of the kernels, memcpys and memsets it launched
    op_us: float  # host time covered by CPU operators inside it (overlaps merged)
    aten_ops: int  # aten operators run inside it, nested ones included


def range_activity(events, prefix: str = "", any_thread: bool = False) -> list[RangeActivity]:
    """Each CPU range whose name starts with ``prefix``, in time order, with the GPU work
    launched from inside it (launch calls, linked to their kernels by correlation id) and the
    time spent inside CPU operators. Only the range's own thread counts unless ``any_thread``:
    for a trace of one workload at a time, where autograd's device threads launch the backward
    while the range waits. A pure function of the events (e.g. :func:`iter_events`), shared by
    the profiler harness and the trace tools."""
    timeline = Timeline.from_events(events)
    launched = timeline.launched_by()
    found = []
    for span in timeline.ranges(prefix):
        threads = list(timeline.spans) if any_thread else [span.thread]
        launching = list(launched) if any_thread else [span.thread]
        activities = [activity for thread in launching for ts, activity in launched.get(thread, ())
                      if span.ts <= ts <= span.end]  # fmt: skip
        inside = sorted(
            (max(s.ts, span.ts), min(s.end, span.end), s.name.startswith("aten::"))
            for thread in threads for s in timeline.spans.get(thread, ())
            if s.kind == OPERATOR and s.ts < span.end and s.end > span.ts
        )  # fmt: skip
        found.append(RangeActivity(
            span.name, span.ts, span.duration,
            kernels=sum(a.category == "kernel" for a in activities),
            device_us=sum(a.end - a.ts for a in activities), op_us=covered(inside),
            aten_ops=sum(aten for _, _, aten in inside),
        ))  # fmt: skip
    return found
