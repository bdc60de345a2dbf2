"""Training steps of a trace, attributed to categories of work and to the operations inside them.

The convention (kernelprof's e2e training writes it, :mod:`kernelprof.runs.e2e.breakdown`):

* each step is a CPU range ``kernelprof/step``; inside it, ranges ``kernelprof/<label>`` for the
  phases (``data loading``, ``host-to-device copy``, ``forward``, ``loss``, ``backward``,
  ``optimizer``, ``communication``) and for every categorised layer's forward
  (``kernelprof/lif fwd``, ``kernelprof/conv fwd``, ...), entered around each layer's forward
  without any synchronisation;
* every such range carries the arg ``kernelprof seq``: ``[first, end)`` of the autograd sequence
  numbers given out on the forward thread while it was open, i.e. the autograd nodes its work
  created.

Attribution, per step:

* a *unit* is a kernelprof range or an autograd node run in backward (an operator event with a
  forward thread id, as Kineto writes it for backward work, or an ``AccumulateGrad``). A range's
  category is its label (``forward`` is ``other fwd``, ``backward`` is ``other bwd``, the step
  itself ``other``); a backward node's is that of the forward range whose sequence numbers hold
  the node's (the innermost), with ``fwd`` replaced by ``bwd`` (``lif fwd`` -> ``lif bwd``,
  ``loss`` -> ``loss bwd``); a node no range created (``AccumulateGrad``) is ``other bwd``;
* host time: on the step's thread, each instant goes to the innermost unit around it;
* operators: each operator's self time (its duration less that of the operators directly inside
  it) goes to the innermost unit around its start, on its own thread; host time of a category that
  no operator covers is ``(outside operators)``: Python, framework glue, the profiler's own work;
* GPU work: each kernel, memcpy and memset goes to the unit around its launch (runtime or driver
  API call, linked by correlation id), on the launching thread; device time per category is the
  sum of their durations inside the step, ``GPU idle`` what no GPU work covers (launch gaps, host
  work, synchronisation) and ``GPU overlap`` (negative) what concurrent streams ran at once, so
  the device categories add up to the step.

A trace with GPU work is attributed in device time, one without in host time. A trace with aten
operators in it (a full profile) names operations; a coarse one (only ranges and autograd nodes
recorded, for low overhead) still gives every category.
"""

from __future__ import annotations

import bisect
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from kernelprof.traces.timeline import OPERATOR, RANGE, Span, Timeline, covered

PREFIX = "kernelprof/"
STEP = PREFIX + "step"
SEQ_ARG = "kernelprof seq"
PHASE_CATEGORIES = {"step": "other", "forward": "other fwd", "backward": "other bwd"}
OTHER_BACKWARD = "other bwd"
OUTSIDE_OPERATORS = "(outside operators)"
GPU_IDLE, GPU_OVERLAP = "GPU idle", "GPU overlap"
ACCUMULATE_GRAD = "torch::autograd::AccumulateGrad"
EVALUATE_PREFIX = "autograd::engine::evaluate_function: "
COMMUNICATION = PREFIX + "communication"  # opened on whichever thread runs DDP's hook: no seq


def range_category(name: str) -> str:
    label = name.removeprefix(PREFIX)
    return PHASE_CATEGORIES.get(label, label)


def backward_category(forward: str) -> str:
    """The category of the backward of work done in ``forward``: 'lif fwd' -> 'lif bwd'."""
    base = forward.removesuffix(" fwd")
    return OTHER_BACKWARD if base in ("other", "step") else f"{base} bwd"


def is_backward_node(span: Span) -> bool:
    return span.kind == OPERATOR and (span.forward_thread > 0 or span.name == ACCUMULATE_GRAD)


@dataclass
class Step:
    """One step: its length, time per category, and per category the named operators and GPU
    work (name -> [count, microseconds])."""

    ts_us: float
    length_us: float
    host_us: dict[str, float]
    device_us: dict[str, float] | None  # None: no GPU work in the trace
    operators: dict[str, dict[str, list[float]]]
    gpu: dict[str, dict[str, list[float]]]
    launch: dict[str, Any]


@dataclass
class Attribution:
    """The steps of one trace, and their medians."""

    path: str
    steps: list[Step]
    kind: str  # "device" (GPU work present) or "host"
    detailed: bool  # aten operators recorded: named operations are complete
    unlinked_nodes: int = 0  # backward nodes with no forward range around their sequence number
    problems: list[str] = field(default_factory=list)

    @property
    def categories_us(self) -> dict[str, float]:
        """Median time per category over the steps (device time on GPU, host time on CPU)."""
        key = "device_us" if self.kind == "device" else "host_us"
        return _medians([getattr(step, key) for step in self.steps])

    @property
    def host_categories_us(self) -> dict[str, float]:
        return _medians([step.host_us for step in self.steps])

    @property
    def step_us(self) -> float:
        return statistics.median(step.length_us for step in self.steps)

    def named(self, which: str) -> dict[str, dict[str, dict[str, float]]]:
        """Per category, per name: median count and time per step (``which``: 'operators' or
        'gpu')."""
        table: dict[str, dict[str, dict[str, float]]] = {}
        categories = {c for step in self.steps for c in getattr(step, which)}
        for category in categories:
            names = {n for step in self.steps for n in getattr(step, which).get(category, {})}
            table[category] = {}
            for name in names:
                values = [getattr(step, which).get(category, {}).get(name, [0, 0.0])
                          for step in self.steps]  # fmt: skip
                table[category][name] = {
                    "count": statistics.median(v[0] for v in values),
                    "us": statistics.median(v[1] for v in values),
                }
        return table

    @property
    def launch(self) -> dict[str, Any]:
        keys = {k for step in self.steps for k, v in step.launch.items() if v is not None}
        return {k: statistics.median(s.launch[k] for s in self.steps if s.launch.get(k) is not None)
                for k in sorted(keys)}  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "detailed": self.detailed,
            "steps": len(self.steps),
            "step_us": self.step_us,
            "step_lengths_us": [step.length_us for step in self.steps],
            "categories_us": self.categories_us,
            "host_categories_us": self.host_categories_us,
            "operators": self.named("operators"),
            "gpu": self.named("gpu"),
            "launch": self.launch,
            "unlinked_nodes": self.unlinked_nodes,
            "problems": self.problems,
            "per_step": [
                {"length_us": s.length_us, "host_us": s.host_us, "device_us": s.device_us}
                for s in self.steps
            ],
        }


def attribute(timeline: Timeline, path: str = "", step: str = STEP) -> Attribution:
    """Every ``step`` range of the trace attributed (see the module's docstring). ``step`` may
    name any range that marks a unit of work in a trace written by others (its inner ranges
    are then attributed only if they follow the kernelprof convention)."""
    steps_found = timeline.ranges(step)
    steps_found = [s for s in steps_found if s.name == step]
    launched = timeline.launched_by()
    on_gpu = bool(timeline.activities)
    detailed = any(s.kind == OPERATOR and s.name.startswith("aten::")
                   for spans in timeline.spans.values() for s in spans)  # fmt: skip
    result = Attribution(path, [], "device" if on_gpu else "host", detailed)
    starts = {thread: [s.ts for s in spans] for thread, spans in timeline.spans.items()}
    launch_times = {thread: [ts for ts, _ in items] for thread, items in launched.items()}

    def between(items: list, times: list[float], start: float, end: float) -> list:
        return items[bisect.bisect_left(times, start) : bisect.bisect_right(times, end)]

    for window in steps_found:
        sequences = _SequenceMap(
            [s for s in timeline.within(window.thread, window.ts, window.end)
             if s.kind == RANGE and s.name.startswith(PREFIX)]
        )  # fmt: skip
        host_us: dict[str, float] = defaultdict(float)
        operators: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(_zero))
        gpu: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(_zero))
        op_cover: list[tuple[float, float]] = []
        for thread, spans in timeline.spans.items():
            inside = [s for s in between(spans, starts[thread], window.ts, window.end)
                      if s.end <= window.end]  # fmt: skip
            launches = between(launched.get(thread, []), launch_times.get(thread, []),
                               window.ts, window.end)  # fmt: skip
            if not inside and not launches:
                continue
            own = thread == window.thread
            default = "other" if own else OTHER_BACKWARD
            sweep = _Sweep(sequences, default, result)
            sweep.run(inside, launches, window if own else None)
            if own:
                for category, us in sweep.exclusive.items():
                    host_us[category] += us
                op_cover += sweep.top_operators
                if detailed:  # what no operator of the step's thread covers, per category
                    for category, us in sweep.exclusive.items():
                        named = sum(v[1] for v in sweep.operators.get(category, {}).values())
                        if us - named > 0:
                            operators[category][OUTSIDE_OPERATORS][1] += us - named
            _add(operators, sweep.operators)
            _add(gpu, sweep.gpu)
        device_us = _device_categories(window, gpu, timeline) if on_gpu else None
        result.steps.append(Step(
            window.ts, window.duration, dict(host_us), device_us,
            {c: dict(n) for c, n in operators.items()}, {c: dict(n) for c, n in gpu.items()},
            _launch_stats(window, gpu, operators, op_cover, device_us, detailed),
        ))  # fmt: skip
    if not result.steps:
        result.problems.append(f"no '{step}' range in the trace")
    return result


def _zero() -> list[float]:
    return [0, 0.0]


def _add(into, named) -> None:
    """Adds one thread's [count, us] per category and name into the step's."""
    for category, names in named.items():
        for name, (count, us) in names.items():
            entry = into[category][name]
            entry[0] += count
            entry[1] += us


class _SequenceMap:
    """Forward ranges by the autograd sequence numbers they hold: the innermost range around a
    number (ranges nest, so walking back from the last start at or before it finds it first)."""

    def __init__(self, ranges: list[Span]) -> None:
        intervals = []
        for span in ranges:
            bounds = span.args.get(SEQ_ARG)
            if isinstance(bounds, (list, tuple)) and len(bounds) == 2 and bounds[1] > bounds[0]:
                intervals.append((int(bounds[0]), int(bounds[1]), range_category(span.name)))
        intervals.sort(key=lambda item: (item[0], -item[1]))
        self.intervals = intervals
        self.starts = [first for first, _, _ in intervals]

    def category(self, sequence: int | None) -> str | None:
        if sequence is None or sequence < 0:
            return None
        index = bisect.bisect_right(self.starts, sequence) - 1
        while index >= 0:
            first, end, category = self.intervals[index]
            if first <= sequence < end:
                return category
            index -= 1
        return None


class _Sweep:
    """One thread of one step, in time order: a stack of units (ranges and backward nodes) for
    categories, a stack of operators for self times, launches as points."""

    def __init__(self, sequences: _SequenceMap, default: str, result: Attribution) -> None:
        self.sequences = sequences
        self.default = default
        self.result = result
        self.exclusive: dict[str, float] = defaultdict(float)
        self.operators: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(_zero))
        self.gpu: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(_zero))
        self.top_operators: list[tuple[float, float]] = []

    def unit_category(self, span: Span) -> str | None:
        if span.kind == RANGE:
            return range_category(span.name) if span.name.startswith(PREFIX) else None
        if not is_backward_node(span):
            return None
        forward = self.sequences.category(span.sequence)
        if forward is None:
            if span.name != ACCUMULATE_GRAD and not span.name.startswith(EVALUATE_PREFIX):
                self.result.unlinked_nodes += 1
            return OTHER_BACKWARD
        return backward_category(forward)

    def run(self, spans: list[Span], launches: list, window: Span | None) -> None:
        units: list[list] = []  # [end, category, child time, start]
        if window is not None:  # the step itself is the outermost unit
            units.append([window.end, "other", 0.0, window.ts])
        ops: list[list] = []  # [end, name, child time, duration, category]
        points = iter(launches)
        point = next(points, None)

        def launches_before(ts: float) -> None:  # each goes to the unit open at its launch
            nonlocal point
            while point is not None and point[0] < ts:
                close_until(point[0])
                self._gpu(current(), point[1])
                point = next(points, None)

        def close_until(ts: float) -> None:
            while ops and ts >= ops[-1][0]:
                end, name, children, duration, category = ops.pop()
                entry = self.operators[category][name]
                entry[0] += 1
                entry[1] += duration - children
            while len(units) > (1 if window is not None else 0) and ts >= units[-1][0]:
                end, category, children, start = units.pop()
                self.exclusive[category] += (end - start) - children

        def current() -> str:
            return units[-1][1] if units else self.default

        for span in spans:
            launches_before(span.ts)
            close_until(span.ts)
            category = self.unit_category(span)
            if category is not None and span is not window:
                if units:
                    units[-1][2] += span.duration
                units.append([span.end, category, 0.0, span.ts])
            if span.kind == OPERATOR:
                if ops:
                    ops[-1][2] += span.duration
                else:
                    self.top_operators.append((span.ts, span.end))
                ops.append([span.end, span.name, 0.0, span.duration, current()])
        launches_before(float("inf"))
        close_until(float("inf"))
        if window is not None:
            end, category, children, start = units.pop()
            self.exclusive[category] += (end - start) - children

    def _gpu(self, category: str, activity) -> None:
        entry = self.gpu[category][activity.name]
        entry[0] += 1
        entry[1] += activity.end - activity.ts


def _device_categories(window: Span, gpu, timeline: Timeline) -> dict[str, float]:
    """Device time per category, with idle and overlap so that they add up to the step."""
    device = {category: sum(v[1] for v in names.values()) for category, names in gpu.items()}
    inside = [a for a in timeline.activities if a.end > window.ts and a.ts < window.end]
    busy = covered((max(a.ts, window.ts), min(a.end, window.end)) for a in inside)
    unlinked = sum(a.end - a.ts for a in inside) - sum(device.values())
    if unlinked > 1e-6:  # GPU work in the step whose launch is not in the trace
        device["other"] = device.get("other", 0.0) + unlinked
    summed = sum(device.values())
    device[GPU_IDLE] = max(0.0, window.duration - busy)
    if summed - busy > 1e-6:
        device[GPU_OVERLAP] = -(summed - busy)
    return device


def _launch_stats(window, gpu, operators, op_cover, device_us, detailed) -> dict[str, Any]:
    """Per step: kernels, their mean duration and the GPU's idle share (GPU); operators, their
    mean self time and the host time outside any operator (CPU, full profiles only)."""
    stats: dict[str, Any] = {"kernels": None, "mean_kernel_us": None, "gpu_idle_share": None,
                             "operators": None, "mean_operator_us": None,
                             "outside_operators_share": None}  # fmt: skip
    if device_us is not None:
        kernels = [(count, us) for names in gpu.values() for name, (count, us) in names.items()
                   if not name.startswith("Memcpy") and not name.startswith("Memset")]  # fmt: skip
        count = sum(c for c, _ in kernels)
        stats["kernels"] = count
        stats["mean_kernel_us"] = sum(us for _, us in kernels) / count if count else None
        stats["gpu_idle_share"] = device_us.get(GPU_IDLE, 0.0) / window.duration
    if detailed:
        named = [(count, us) for names in operators.values()
                 for name, (count, us) in names.items() if name != OUTSIDE_OPERATORS]  # fmt: skip
        count = sum(c for c, _ in named)
        stats["operators"] = count
        stats["mean_operator_us"] = sum(us for _, us in named) / count if count else None
        inside = covered(sorted(op_cover))
        stats["outside_operators_share"] = max(0.0, window.duration - inside) / window.duration
    return stats


def _medians(tables: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({key for table in tables for key in table})
    return {key: statistics.median(table.get(key, 0.0) for table in tables) for key in keys}


# ---- comparing two ------------------------------------------------------------------------------


def compare(
    base: dict[str, Any], other: dict[str, Any], top: int = 5, named: str | None = None
) -> dict[str, Any]:
    """``other`` minus ``base`` (two :meth:`Attribution.as_dict` results, or records holding
    their ``categories_us``, ``step_us``, ``operators``, ``gpu``): per category, largest change
    first, with the ``top`` named operations behind each change (operators, or GPU work when both
    were attributed in device time), count and time per step."""
    if named is None:
        named = "gpu" if base.get("kind") == other.get("kind") == "device" else "operators"
    categories = []
    a_categories, b_categories = base["categories_us"], other["categories_us"]
    for category in set(a_categories) | set(b_categories):
        a_us, b_us = a_categories.get(category, 0.0), b_categories.get(category, 0.0)
        a_named = (base.get(named) or {}).get(category, {})
        b_named = (other.get(named) or {}).get(category, {})
        operations = []
        for name in set(a_named) | set(b_named):
            a_entry = a_named.get(name, {"count": 0, "us": 0.0})
            b_entry = b_named.get(name, {"count": 0, "us": 0.0})
            operations.append({
                "name": name, "a_count": a_entry["count"], "b_count": b_entry["count"],
                "delta_count": b_entry["count"] - a_entry["count"],
                "a_us": a_entry["us"], "b_us": b_entry["us"],
                "delta_us": b_entry["us"] - a_entry["us"],
            })  # fmt: skip
        operations.sort(key=lambda row: (-abs(row["delta_us"]), row["name"]))
        categories.append({
            "name": category, "a_us": a_us, "b_us": b_us, "delta_us": b_us - a_us,
            "operations": operations[:top],
        })  # fmt: skip
    categories.sort(key=lambda row: (-abs(row["delta_us"]), row["name"]))
    return {
        "named": named,
        "step_us": {"a": base["step_us"], "b": other["step_us"],
                    "delta": other["step_us"] - base["step_us"]},
        "categories": categories,
        "launch": {"a": base.get("launch") or {}, "b": other.get("launch") or {}},
    }  # fmt: skip


def synchronisations_inside_steps(trace: dict[str, Any], tail: float = 0.02) -> list[str]:
    """The CUDA runtime's synchronising calls (``cudaDeviceSynchronize``,
    ``cudaStreamSynchronize``, ``cudaEventSynchronize``, a blocking ``cudaMemcpy``) made inside a
    ``kernelprof/step`` range before its last ``tail`` share (where the step's own closing
    synchronisation is): what "no synchronisation inside a step" rules out."""
    events = [e for e in trace.get("traceEvents", []) if isinstance(e, dict) and e.get("ph") == "X"]
    steps = [(float(e["ts"]), float(e.get("dur", 0.0))) for e in events if e.get("name") == STEP]
    found = []
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "cuda_runtime" or not (
            "Synchronize" in name or name in ("cudaMemcpy", "cudaMemcpyAsync_sync")
        ):
            continue
        ts = float(event["ts"])
        if any(start <= ts < start + (1 - tail) * length for start, length in steps):
            found.append(name)
    return found


# ---- writing the convention --------------------------------------------------------------------


def merge(traces: list[dict[str, Any]]) -> dict[str, Any]:
    """Several profiler sessions of one process as one trace: the first's metadata, every
    session's events, timestamps moved onto the first's base (Kineto writes them relative to
    ``baseTimeNanoseconds``)."""
    merged = {key: value for key, value in traces[0].items() if key != "traceEvents"}
    base = traces[0].get("baseTimeNanoseconds", 0)
    events = []
    for trace in traces:
        shift_us = (trace.get("baseTimeNanoseconds", 0) - base) / 1e3
        for event in trace.get("traceEvents", []):
            if shift_us and isinstance(event, dict) and "ts" in event:
                event = {**event, "ts": float(event["ts"]) + shift_us}
            events.append(event)
    merged["traceEvents"] = events
    return merged


def annotate(trace: dict[str, Any], calls: list[tuple[str, int, int]]) -> int:
    """Writes each kernelprof range's ``[first, end)`` sequence numbers into its args, in
    place: ``calls`` are (name, first, end) in the order the ranges were entered (all on one
    thread). Returns how many ranges were annotated; ValueError if the trace's ranges and the
    calls do not line up."""
    events = trace.get("traceEvents", trace) if isinstance(trace, dict) else trace
    ranges = [
        e
        for e in events
        if isinstance(e, dict)
        and e.get("ph") == "X"
        and e.get("cat") == "user_annotation"
        and str(e.get("name", "")).startswith(PREFIX)
        and e.get("name") != COMMUNICATION
    ]
    ranges.sort(key=lambda e: (float(e["ts"]), -float(e.get("dur", 0.0))))  # fmt: skip
    if len(ranges) != len(calls):
        raise ValueError(f"{len(ranges)} kernelprof ranges in the trace, {len(calls)} entered")
    for event, (name, first, end) in zip(ranges, calls, strict=True):
        if event["name"] != name:
            raise ValueError(f"range {event['name']!r} in the trace where {name!r} was entered")
        event.setdefault("args", {})[SEQ_ARG] = [first, end]
    return len(ranges)
