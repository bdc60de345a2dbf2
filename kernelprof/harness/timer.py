"""The one timing harness: every figure kernelprof prints comes from :func:`measure`.

* CUDA: each call timed with its own pair of CUDA events on the current stream, the L2 cache
  flushed before each call by *reading* a 256 MiB buffer, outside the timed region. These event
  times are *call* times: when the host enqueues more slowly than the GPU works, the window
  holds the GPU's waits. Then the calls are timed again with the GPU held busy by a short
  spinning kernel queued before the start event (as nvbench does), longer than the host takes
  to enqueue the call, so that those events time the device's work alone
  (``events_busy_median_s``); and a few host-timed, device-synchronised calls give the host's
  launch time (``host_launch_median_s``).
* CPU: a synchronous host clock (``time.perf_counter``) around each call; the last-level cache
  is flushed the same way (64 MiB) unless ``flush_cache=False``.

The flush reads rather than writes: the eviction it causes writes the previous call's dirty
lines back during the flush, and leaves only clean lines of its own, so that no write-back of
the flush lands inside the next timed call (a ``zero_()`` flush leaves 256 MiB of dirty lines,
whose write-back the timed call would pay for).

Warm-up and repetitions are time budgets, turned into call counts from a first estimate. When
the calls' spread exceeds :data:`SPREAD_WARNING`, more calls are timed in blocks (as
``torch.utils.benchmark``'s ``adaptive_autorange`` does) until it settles or an extra time
budget is spent; only then is a spread warning given. The first call is timed on its own and
reported as ``first_call_s``: it holds one-off work such as compilation (torch.compile, Triton,
CuPy) and never enters the statistics. The clock is injectable so the statistics are
unit-tested without real time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

SPREAD_WARNING = 0.10  # warn when the interquartile range exceeds 10 % of the median
ADAPT_BUDGET = 3.0  # extra timing, in repeat budgets, spent on a large spread before warning
SYNCED_CALLS = 3  # host-timed, device-synchronised calls that cross-check CUDA event times
HIDDEN_WORK_MIN_S = 100e-6  # below this, launch and sync latency alone can exceed event times
CUDA_FLUSH_BYTES = 256 * 2**20
CPU_FLUSH_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Measurement:
    """Raw per-call times of one workload, with the statistics derived from them."""

    samples_s: tuple[float, ...]
    first_call_s: float | None = None
    label: str = ""
    metadata: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.samples_s:
            raise ValueError("a Measurement needs at least one sample")

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def quartiles_s(self) -> tuple[float, float]:
        if len(self.samples_s) < 2:
            return self.samples_s[0], self.samples_s[0]
        q1, _, q3 = statistics.quantiles(self.samples_s, n=4, method="inclusive")
        return q1, q3

    @property
    def iqr_s(self) -> float:
        q1, q3 = self.quartiles_s
        return q3 - q1

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return self.iqr_s / self.median_s if self.median_s > 0 else math.inf

    @property
    def warnings(self) -> list[str]:
        found = []
        synced = self.metadata.get("host_synced_median_s")
        launch = self.metadata.get("host_launch_median_s", 0.0)
        # A synchronised call lasts as long as the slower of the host's launching and the
        # device's work. Only what neither the events nor the launch time explain is hidden:
        # a short kernel behind 0.3 ms of Python launching is not (seen on an H200).
        if synced is not None and synced > HIDDEN_WORK_MIN_S:
            unexplained = synced - max(self.median_s, launch)
            if unexplained > 0.5 * synced:
                found.append(
                    f"{self.label or 'measurement'}: CUDA events saw {1e3 * self.median_s:.3f} "
                    f"ms and the host launched in {1e3 * launch:.3f} ms, but a "
                    f"device-synchronised call takes {1e3 * synced:.3f} ms: work outside the "
                    "current stream? (the synchronised time is the honest one)"
                )
        if self.spread > SPREAD_WARNING:
            adapted = " (after timing more calls)" if self.metadata.get("adapted_calls") else ""
            found.append(
                f"{self.label or 'measurement'}: large spread, IQR is {self.spread:.0%} of the "
                f"median over {len(self.samples_s)} calls{adapted}"
            )
        return found

    def as_dict(self) -> dict:
        q1, q3 = self.quartiles_s
        return {
            "label": self.label,
            "median_s": self.median_s,
            "q1_s": q1,
            "q3_s": q3,
            "iqr_s": self.iqr_s,
            "first_call_s": self.first_call_s,
            "samples_s": list(self.samples_s),
            "warnings": self.warnings,
            **self.metadata,
        }


class HostTimer:
    """Times calls with a host clock, synchronising the device after each call."""

    def __init__(self, device: torch.device, clock: Callable[[], float] = time.perf_counter):
        self.device = device
        self.clock = clock

    def time_calls(self, fn: Callable[[], object], count: int, before: Callable[[], None]):
        times = []
        for _ in range(count):
            before()
            synchronize(self.device)
            start = self.clock()
            fn()
            synchronize(self.device)
            times.append(self.clock() - start)
        return times

    def time_calls_and_launches(
        self, fn: Callable[[], object], count: int, before: Callable[[], None]
    ) -> tuple[list[float], list[float]]:
        """Per call: the time until the device is done, and until ``fn`` returned (launch)."""
        times, launches = [], []
        for _ in range(count):
            before()
            synchronize(self.device)
            start = self.clock()
            fn()
            launched = self.clock()
            synchronize(self.device)
            times.append(self.clock() - start)
            launches.append(launched - start)
        return times, launches


class CudaEventTimer:
    """Times each call with its own pair of CUDA events; one synchronisation at the end.

    With ``hold_s``, a spinning kernel of about that length is queued before each start event,
    so that the GPU is still busy while the host enqueues the call (nvbench's blocking kernel):
    the events then time the device's work, not the host's pace."""

    def __init__(self, device: torch.device):
        self.device = device
        self._cycles_per_s: float | None = None

    def time_calls(
        self, fn: Callable[[], object], count: int, before: Callable[[], None],
        hold_s: float | None = None,
    ):  # fmt: skip
        pairs = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(count)
        ]
        cycles = 0 if hold_s is None else int(hold_s * self.cycles_per_s())
        for start, end in pairs:
            before()
            if cycles:
                torch.cuda._sleep(cycles)
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(self.device)
        return [start.elapsed_time(end) / 1e3 for start, end in pairs]

    def cycles_per_s(self) -> float:
        """How many cycles of ``torch.cuda._sleep`` take a second on this device (measured)."""
        if self._cycles_per_s is None:
            cycles = 2**22
            torch.cuda._sleep(cycles)  # first launch: module load
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.cuda._sleep(cycles)
            end.record()
            end.synchronize()
            self._cycles_per_s = cycles / max(start.elapsed_time(end) / 1e3, 1e-6)
        return self._cycles_per_s


def measure(
    fn: Callable[[], object],
    *,
    device: torch.device | str = "cpu",
    label: str = "",
    warmup_s: float = 0.05,
    repeat_s: float = 0.25,
    min_calls: int = 5,
    max_calls: int = 10_000,
    adapt_s: float | None = None,
    first_call: bool = True,
    min_warmup_calls: int = 0,
    flush_cache: bool = True,
    timer: HostTimer | CudaEventTimer | None = None,
) -> Measurement:
    """Times ``fn()`` (a closure with its inputs already prepared) on ``device``.

    ``adapt_s`` (default ``ADAPT_BUDGET * repeat_s``; 0 turns it off) is the extra time spent
    timing more calls while their spread exceeds :data:`SPREAD_WARNING`. ``first_call=False``
    skips the separately reported first call, for a workload already run in this process.
    Warm-up is ``warmup_s`` of calls, at least ``min_warmup_calls``, after the estimate call."""
    device = torch.device(device)
    if timer is None:
        timer = CudaEventTimer(device) if device.type == "cuda" else HostTimer(device)
    flush = cache_flusher(device) if flush_cache else (lambda: None)

    first_call_s = timer.time_calls(fn, 1, flush)[0] if first_call else None
    (estimate_s,) = timer.time_calls(fn, 1, flush)  # also a warm-up call
    estimate_s = max(estimate_s, 1e-7)
    warmup_calls = min(max_calls, max(min_warmup_calls, int(warmup_s / estimate_s)))
    timer.time_calls(fn, warmup_calls, flush)
    calls = min(max_calls, max(min_calls, int(repeat_s / estimate_s)))
    samples = timer.time_calls(fn, calls, flush)
    budget = ADAPT_BUDGET * repeat_s if adapt_s is None else adapt_s
    adapted, spent = 0, 0.0
    while _spread(samples) > SPREAD_WARNING and len(samples) < max_calls:
        # blocks that fit in what is left of the budget: a slow call is not timed past it
        affordable = int((budget - spent) / statistics.median(samples))
        if affordable < 1:
            break
        block = min(max_calls - len(samples), max(min_calls, len(samples) // 2), affordable)
        more = timer.time_calls(fn, block, flush)
        samples += more
        adapted += block
        spent += sum(more)
    metadata = {"cache_flush": f"{CACHE_FLUSH} {_flush_bytes(device) // 2**20} MiB"
                if flush_cache else "none", "adapted_calls": adapted}  # fmt: skip
    if isinstance(timer, CudaEventTimer):
        # Events only see work on the current stream. A few host-timed calls with the whole
        # device synchronised catch work hidden on another stream (or a host-side wait), and
        # say how long the host takes to launch a call.
        synced, launches = HostTimer(device).time_calls_and_launches(fn, SYNCED_CALLS, flush)
        metadata["host_synced_median_s"] = statistics.median(synced)
        metadata["host_launch_median_s"] = statistics.median(launches)
        hold_s = min(HOLD_MAX_S, 1.5 * max(launches) + HOLD_MARGIN_S)
        busy = timer.time_calls(fn, min(len(samples), max(min_calls, 10)), flush, hold_s=hold_s)
        metadata["events_busy_median_s"] = statistics.median(busy)
        metadata["events_busy_hold_s"] = hold_s
    return Measurement(tuple(samples), first_call_s=first_call_s, label=label, metadata=metadata)


HOLD_MARGIN_S = 20e-6  # the spinning kernel outlasts the host's launch by at least this
HOLD_MAX_S = 0.05


def _spread(samples: list[float]) -> float:
    return Measurement(tuple(samples)).spread


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _flush_bytes(device: torch.device) -> int:
    return CUDA_FLUSH_BYTES if device.type == "cuda" else CPU_FLUSH_BYTES


CACHE_FLUSH = "read"  # how the flush works, recorded with every measurement


def cache_flusher(device: torch.device) -> Callable[[], None]:
    nbytes = _flush_bytes(device)
    buffer = torch.ones(nbytes // 4, dtype=torch.int32, device=device)
    # int32 accumulation: summing into int64 (the default) would first copy the buffer to int64
    return lambda: buffer.sum(dtype=torch.int32)  # reads every line once; writes one scalar


GRAPH_WARMUP_CALLS = 3


def cuda_graph_replay(fn: Callable[[], object], device: torch.device) -> Callable[[], None] | str:
    """``fn`` captured once into a CUDA graph: returns the replay (one launch for all its
    kernels, so timing it takes launch overhead out), or "n/a: ..." when capture fails (e.g. a
    host synchronisation or a CPU fallback inside ``fn``)."""
    if device.type != "cuda":
        return "n/a: CUDA graphs need a CUDA device"
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    try:
        with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
            for _ in range(GRAPH_WARMUP_CALLS):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
    except RuntimeError as error:
        torch.cuda.synchronize(device)
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"n/a: CUDA graph capture failed: {detail}"
    return graph.replay
