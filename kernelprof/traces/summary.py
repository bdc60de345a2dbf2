"""Reading profiler traces: one streaming pass over a Chrome trace, a summary, a diff of two.

Any torch.profiler (Kineto) Chrome trace, kernelprof's or anyone's, ``.json`` or ``.json.gz``
(gzip is recognised by its magic bytes, not the name). The events are streamed with ijson, so a
trace is never held in memory as text or as parsed JSON: what is kept is per-name totals, and
for the two analyses that need time order, compact arrays: the start and end of every GPU
activity (kernel, memcpy, memset), and of every CPU operator per thread (for self times).

What a summary holds (all times in microseconds, as the trace has them):

* kernels, CPU operators (inclusive and self time: self excludes the operators nested in it on
  the same thread) and ``record_function`` ranges, each by name: count and total. A range is
  recorded twice by Kineto, on the CPU (``user_annotation``: host time) and on the GPU
  (``gpu_user_annotation``: the device work it enclosed), under the same name; the two are kept
  apart (``ranges`` and ``gpu_ranges``), since adding host and device time means nothing;
* time per event category (``cat``: kernel, gpu_memcpy, cpu_op, cuda_runtime, ...), and GPU
  time by kind as Holistic Trace Analysis names it (computation, communication: NCCL kernels,
  memory: memcpy and memset);
* launch statistics: kernel count, mean kernel duration, the share of kernels shorter than
  ``TINY_KERNEL_US``, the launch calls and their mean duration (runtime API ``cudaLaunchKernel``
  under ``cuda_runtime`` and driver API ``cuLaunchKernel`` under ``cuda_driver``, which is how
  Triton, CuPy and NVRTC kernels are launched), and the GPU idle fraction:
  the part of each device's active window (first GPU activity to last) that no kernel, memcpy
  or memset covers, all streams merged.

A CPU-only trace has no GPU events: its summary says so and keeps the operator and range tables.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelprof.traces.read import (
    CPU_RANGE_CATEGORY,
    GPU_CATEGORIES,
    GPU_RANGE_CATEGORY,
    LAUNCH_CATEGORIES,
    LAUNCH_NAMES,
    TINY_KERNEL_US,
    iter_events,
)
from kernelprof.traces.timeline import Timeline, TimelineBuilder, covered


@dataclass
class Totals:
    count: int = 0
    total_us: float = 0.0
    self_us: float = 0.0

    def add(self, duration: float) -> None:
        self.count += 1
        self.total_us += duration


@dataclass
class TraceSummary:
    path: str
    events: int = 0
    complete_events: int = 0
    kernels: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    operators: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    ranges: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    gpu_ranges: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    categories: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    gpu_kinds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tiny_kernels: int = 0
    launches: Totals = field(default_factory=Totals)
    gpu_busy_us: float = 0.0
    gpu_window_us: float = 0.0
    devices: int = 0
    span_us: float = 0.0

    @property
    def kernel_count(self) -> int:
        return sum(t.count for t in self.kernels.values())

    @property
    def kernel_time_us(self) -> float:
        return sum(t.total_us for t in self.kernels.values())

    @property
    def cpu_only(self) -> bool:
        return self.devices == 0

    @property
    def idle_fraction(self) -> float | None:
        if not self.gpu_window_us:
            return None
        return max(0.0, 1.0 - self.gpu_busy_us / self.gpu_window_us)

    def as_dict(self, top: int | None = None) -> dict[str, Any]:
        def table(totals: dict[str, Totals], key: str = "total_us") -> list[dict[str, Any]]:
            rows = sorted(totals.items(), key=lambda item: getattr(item[1], key), reverse=True)
            return [
                {"name": name, "count": t.count, "total_us": t.total_us, "self_us": t.self_us}
                for name, t in rows[:top]
            ]

        kernels = self.kernel_count
        return {
            "path": self.path,
            "events": self.events,
            "span_us": self.span_us,
            "cpu_only": self.cpu_only,
            "kernels": table(self.kernels),
            "operators": table(self.operators, "self_us"),
            "ranges": table(self.ranges),
            "gpu_ranges": table(self.gpu_ranges),
            "categories_us": dict(sorted(self.categories.items(), key=lambda i: -i[1])),
            "gpu_kinds_us": dict(self.gpu_kinds),
            "launch": {
                "kernel_count": kernels,
                "kernel_time_us": self.kernel_time_us,
                "mean_kernel_us": self.kernel_time_us / kernels if kernels else None,
                "tiny_kernel_share": self.tiny_kernels / kernels if kernels else None,
                "tiny_kernel_us": TINY_KERNEL_US,
                "launch_calls": self.launches.count,
                "mean_launch_us": (
                    self.launches.total_us / self.launches.count if self.launches.count else None
                ),
                "gpu_devices": self.devices,
                "gpu_idle_fraction": self.idle_fraction,
            },
        }


class Summarizer:
    """A :class:`TraceSummary` made one event at a time (:meth:`add`), then :meth:`finish`."""

    def __init__(self, path: str) -> None:
        self.summary = TraceSummary(path=path)
        self.gpu: dict[Any, tuple[array, array]] = {}
        self.threads: dict[Any, tuple[array, array, array]] = {}
        self.names: dict[str, int] = {}
        self.first_ts, self.last_end = float("inf"), float("-inf")

    def add(self, event: Any) -> None:
        summary = self.summary
        summary.events += 1
        if not isinstance(event, dict) or event.get("ph") != "X":
            return
        try:
            ts = float(event["ts"])
            duration = float(event.get("dur", 0.0))
        except (KeyError, TypeError, ValueError):
            return  # a complete event without a usable time: nothing to add up
        summary.complete_events += 1
        name = str(event.get("name", "?"))
        category = str(event.get("cat", "?"))
        self.first_ts, self.last_end = min(self.first_ts, ts), max(self.last_end, ts + duration)
        summary.categories[category] += duration
        if category in GPU_CATEGORIES:
            self._gpu(event, name, category, ts, duration)
        elif category == "cpu_op":
            summary.operators[name].add(duration)
            starts, ends, ids = self.threads.setdefault(
                (event.get("pid"), event.get("tid")), (array("d"), array("d"), array("q"))
            )
            starts.append(ts)
            ends.append(ts + duration)
            ids.append(self.names.setdefault(name, len(self.names)))
        elif category == CPU_RANGE_CATEGORY:
            summary.ranges[name].add(duration)
        elif category == GPU_RANGE_CATEGORY:
            summary.gpu_ranges[name].add(duration)
        elif category in LAUNCH_CATEGORIES and name in LAUNCH_NAMES:
            summary.launches.add(duration)

    def _gpu(self, event: dict, name: str, category: str, ts: float, duration: float) -> None:
        summary = self.summary
        if category == "kernel":
            summary.kernels[name].add(duration)
            summary.tiny_kernels += duration < TINY_KERNEL_US
            kind = "communication" if "nccl" in name.lower() else "computation"
        else:
            kind = "memory"
        summary.gpu_kinds[kind] += duration
        device = (event.get("pid"), (event.get("args") or {}).get("device"))
        starts, ends = self.gpu.setdefault(device, (array("d"), array("d")))
        starts.append(ts)
        ends.append(ts + duration)

    def finish(self) -> TraceSummary:
        summary = self.summary
        if summary.complete_events:
            summary.span_us = self.last_end - self.first_ts
        summary.devices = len(self.gpu)
        for starts, ends in self.gpu.values():
            busy, window = _busy_and_window(starts, ends)
            summary.gpu_busy_us += busy
            summary.gpu_window_us += window
        _self_times(summary, self.threads, {index: name for name, index in self.names.items()})
        return summary


def summarize(path: Path) -> TraceSummary:
    """One streaming pass over the trace at ``path``."""
    summarizer = Summarizer(str(path))
    for event in iter_events(path):
        summarizer.add(event)
    return summarizer.finish()


def summarize_with_timeline(path: Path) -> tuple[TraceSummary, Timeline]:
    """One streaming pass over the trace at ``path`` that makes both its summary and its
    time-ordered :class:`~kernelprof.traces.timeline.Timeline` (which holds every span, so it
    costs memory that :func:`summarize` does not)."""
    summarizer, builder = Summarizer(str(path)), TimelineBuilder()
    for event in iter_events(path):
        summarizer.add(event)
        builder.add(event)
    return summarizer.finish(), builder.build()


def _sorted(*columns: array, keys: tuple[array, ...]) -> list[array]:
    """``columns`` reordered by ``keys`` (first key first), 8 bytes per value: numpy sorts, and
    the result goes back into compact arrays (a Python list of tuples would cost ~100 B each)."""
    import numpy as np

    order = np.lexsort(tuple(np.frombuffer(key, dtype=np.float64) for key in reversed(keys)))
    result = []
    for column in columns:
        values = np.frombuffer(column, dtype=np.float64 if column.typecode == "d" else np.int64)
        result.append(array(column.typecode, values[order].tobytes()))
    return result


def _busy_and_window(starts: array, ends: array) -> tuple[float, float]:
    """The union length of [start, end) intervals, and the window from first start to last end."""
    starts, ends = _sorted(starts, ends, keys=(starts,))
    busy = covered(zip(starts, ends, strict=True))
    return busy, max(ends) - min(starts) if len(starts) else 0.0


def _self_times(summary: TraceSummary, threads, names: dict[int, str]) -> None:
    """Self time of each operator: its duration minus that of the operators directly inside it
    (same thread, nested in time). Sorted by start, longest first at equal starts, so a parent
    comes before the children it holds."""
    self_time: dict[int, float] = defaultdict(float)
    for starts, ends, ids in threads.values():
        negated = array("d", (-end for end in ends))
        starts, ends, ids = _sorted(starts, ends, ids, keys=(starts, negated))
        stack: list[list] = []  # [end, name id, time of direct children, duration]
        for start, end, name_id in zip(starts, ends, ids, strict=True):
            while stack and start >= stack[-1][0]:
                done = stack.pop()
                self_time[done[1]] += done[3] - done[2]
            if stack:
                stack[-1][2] += end - start
            stack.append([end, name_id, 0.0, end - start])
        for done in stack:
            self_time[done[1]] += done[3] - done[2]
    for name_id, seconds in self_time.items():
        summary.operators[names[name_id]].self_us = seconds


# ---- diff --------------------------------------------------------------------------------------


def diff(a: TraceSummary, b: TraceSummary, top: int | None = None) -> dict[str, Any]:
    """B minus A per kernel, operator (self time), range and category, largest change first."""

    def compare(left: dict[str, Totals], right: dict[str, Totals], key: str) -> list[dict]:
        rows = []
        for name in set(left) | set(right):
            before = getattr(left[name], key) if name in left else 0.0
            after = getattr(right[name], key) if name in right else 0.0
            rows.append({
                "name": name, "a_us": before, "b_us": after, "delta_us": after - before,
                "a_count": left[name].count if name in left else 0,
                "b_count": right[name].count if name in right else 0,
            })  # fmt: skip
        rows.sort(key=lambda row: abs(row["delta_us"]), reverse=True)
        return rows[:top]

    ranges_a, ranges_b, prefixes = _matched_ranges(a.ranges, b.ranges)
    gpu_ranges_a, gpu_ranges_b, _ = _matched_ranges(a.gpu_ranges, b.gpu_ranges)
    categories = [
        {"name": name, "a_us": a.categories.get(name, 0.0), "b_us": b.categories.get(name, 0.0),
         "delta_us": b.categories.get(name, 0.0) - a.categories.get(name, 0.0)}
        for name in set(a.categories) | set(b.categories)
    ]  # fmt: skip
    categories.sort(key=lambda row: abs(row["delta_us"]), reverse=True)
    return {
        "a": a.path,
        "b": b.path,
        "span_us": {"a": a.span_us, "b": b.span_us, "delta": b.span_us - a.span_us},
        "kernels": compare(a.kernels, b.kernels, "total_us"),
        "operators": compare(a.operators, b.operators, "self_us"),
        "ranges": compare(ranges_a, ranges_b, "total_us"),
        "gpu_ranges": compare(gpu_ranges_a, gpu_ranges_b, "total_us"),
        "range_prefixes": prefixes,
        "categories": categories[:top],
    }


def _matched_ranges(a: dict[str, Totals], b: dict[str, Totals]):
    """Ranges named '<label>/<what>' (kernelprof names them '<impl>/fwd', '<framework>/lif fwd')
    are compared by '<what>' when each trace has one label and the labels differ, so that two
    implementations' or frameworks' traces line up. Returns both maps and the labels dropped."""

    def labels(ranges: dict[str, Totals]) -> set[str]:
        return {name.split("/", 1)[0] for name in ranges if "/" in name}

    left, right = labels(a), labels(b)
    if len(left) != 1 or len(right) != 1 or left == right:
        return a, b, None

    def strip(ranges: dict[str, Totals]) -> dict[str, Totals]:
        stripped: dict[str, Totals] = defaultdict(Totals)
        for name, totals in ranges.items():
            key = name.split("/", 1)[1] if "/" in name else name
            stripped[key].count += totals.count
            stripped[key].total_us += totals.total_us
        return stripped

    return strip(a), strip(b), [left.pop() + "/", right.pop() + "/"]
