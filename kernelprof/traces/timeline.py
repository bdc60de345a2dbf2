"""A trace's events in time order, per thread: the one parse behind the analyses that need to
know what ran inside what (:mod:`kernelprof.traces.ranges`, :mod:`kernelprof.traces.steps`).

What is kept of each complete event (``ph == "X"``):

* CPU spans, per (pid, tid), sorted by start, the longer first at equal starts (so a parent comes
  before the spans it holds): ``record_function`` ranges (``user_annotation``) and operators
  (``cpu_op``: aten ops, custom autograd Functions, autograd nodes run in backward), with the
  autograd sequence number and forward thread id Kineto writes on operators, and the args a
  range carries;
* launches (CUDA runtime or driver API calls with a correlation id): thread, time, name;
* GPU activities (kernels, memcpys, memsets): time, duration, name, kind, device and stream, and
  the correlation id that ties each to its launch.

A pure function of the events (e.g. :func:`kernelprof.traces.read.iter_events`); the summary of
huge traces (:mod:`kernelprof.traces.summary`) streams instead and keeps no events.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kernelprof.traces.read import (
    CPU_RANGE_CATEGORY,
    GPU_CATEGORIES,
    LAUNCH_CATEGORIES,
)

RANGE, OPERATOR = "range", "operator"


@dataclass(frozen=True)
class Span:
    """One CPU range or operator."""

    ts: float
    end: float
    name: str
    kind: str  # RANGE or OPERATOR
    thread: tuple
    sequence: int | None = None  # autograd sequence number (operators)
    forward_thread: int = 0  # > 0: an autograd node run in backward (its forward's thread)
    args: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def duration(self) -> float:
        return self.end - self.ts


@dataclass(frozen=True)
class Launch:
    ts: float
    thread: tuple
    name: str


@dataclass(frozen=True)
class Activity:
    """One kernel, memcpy or memset on the GPU."""

    ts: float
    end: float
    name: str
    category: str  # kernel, gpu_memcpy or gpu_memset
    stream: tuple  # (pid, device, stream)
    correlation: Any


@dataclass
class Timeline:
    spans: dict[tuple, list[Span]]  # per thread, sorted by (start, longest first)
    launches: dict[Any, Launch]  # by correlation id
    activities: list[Activity]  # sorted by start

    @classmethod
    def from_events(cls, events) -> Timeline:
        builder = TimelineBuilder()
        for event in events:
            builder.add(event)
        return builder.build()

    def ranges(self, prefix: str = "") -> list[Span]:
        """Every CPU range whose name starts with ``prefix``, in time order."""
        found = [s for spans in self.spans.values() for s in spans
                 if s.kind == RANGE and s.name.startswith(prefix)]  # fmt: skip
        return sorted(found, key=lambda span: (span.ts, -span.end))

    def within(self, thread: tuple, start: float, end: float) -> list[Span]:
        """The spans of ``thread`` that start in [start, end], in order."""
        spans = self.spans.get(thread, [])
        first = bisect.bisect_left(spans, start, key=lambda span: span.ts)
        last = bisect.bisect_right(spans, end, key=lambda span: span.ts)
        return spans[first:last]

    def launched_by(self) -> dict[tuple, list[tuple[float, Activity]]]:
        """Per launching thread, (launch time, activity) for every activity whose launch is in
        the trace, in launch order."""
        by_thread: dict[tuple, list[tuple[float, Activity]]] = defaultdict(list)
        for activity in self.activities:
            launch = self.launches.get(activity.correlation)
            if launch is not None:
                by_thread[launch.thread].append((launch.ts, activity))
        for items in by_thread.values():
            items.sort(key=lambda item: item[0])
        return dict(by_thread)


class TimelineBuilder:
    """A :class:`Timeline` made one event at a time (:meth:`add`), then :meth:`build`."""

    def __init__(self) -> None:
        self.spans: dict[tuple, list[Span]] = defaultdict(list)
        self.launches: dict[Any, Launch] = {}
        self.activities: list[Activity] = []

    def add(self, event: Any) -> None:
        if not isinstance(event, dict) or event.get("ph") != "X":
            return
        try:
            ts, duration = float(event["ts"]), float(event.get("dur", 0.0))
        except (KeyError, TypeError, ValueError):
            return
        category, args = event.get("cat"), event.get("args") or {}
        name = str(event.get("name", ""))
        thread = (event.get("pid"), event.get("tid"))
        if category == CPU_RANGE_CATEGORY:
            self.spans[thread].append(Span(ts, ts + duration, name, RANGE, thread, args=args))
        elif category == "cpu_op":
            sequence = args.get("Sequence number")
            self.spans[thread].append(Span(
                ts, ts + duration, name, OPERATOR, thread,
                sequence=None if sequence is None else int(sequence),
                forward_thread=int(args.get("Fwd thread id") or 0),
            ))  # fmt: skip
        elif category in LAUNCH_CATEGORIES and "correlation" in args:
            self.launches[args["correlation"]] = Launch(ts, thread, name)
        elif category in GPU_CATEGORIES and "correlation" in args:
            stream = (event.get("pid"), args.get("device"), args.get("stream"))
            self.activities.append(Activity(
                ts, ts + duration, name, category, stream, args["correlation"]
            ))  # fmt: skip

    def build(self) -> Timeline:
        for thread_spans in self.spans.values():
            thread_spans.sort(key=lambda span: (span.ts, -span.end))
        self.activities.sort(key=lambda activity: activity.ts)
        return Timeline(dict(self.spans), self.launches, self.activities)


def covered(intervals) -> float:
    """Length of the union of (start, end, ...) intervals sorted by start."""
    total, reach = 0.0, float("-inf")
    for start, end, *_ in intervals:
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total
