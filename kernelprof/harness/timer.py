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
budget is spent; only then is a spread flagged. The first call is timed on its own and
reported as ``first_call_s``: it holds one-off work such as compilation (torch.compile, Triton,
CuPy) and never enters the statistics. The clock is injectable so the statistics are
unit-tested without real time.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from kernelprof.results.record import relative_spread
from kernelprof.results.timing import SPREAD_WARNING, Measurement

ADAPT_BUDGET = 3.0  # extra timing, in repeat budgets, spent on a large spread before warning
SYNCED_CALLS = 3  # host-timed, device-synchronised calls that cross-check CUDA event times
CUDA_FLUSH_BYTES = 256 * 2**20
CPU_FLUSH_BYTES = 64 * 2**20


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
    before = HostCounters.read()
    samples = timer.time_calls(fn, calls, flush)
    budget = ADAPT_BUDGET * repeat_s if adapt_s is None else adapt_s
    adapted = _adapt(timer, fn, flush, samples, budget, min_calls, max_calls)
    host = HostCounters.read().since(before, len(samples))
    figures = {"cache_flush": f"{CACHE_FLUSH} {_flush_bytes(device) // 2**20} MiB"
               if flush_cache else "none", "adapted_calls": adapted}  # fmt: skip
    if isinstance(timer, CudaEventTimer):
        figures.update(_device_cross_checks(timer, fn, flush, device, len(samples), min_calls))
    else:  # the host does the work: its page faults and the machine's load are part of it
        figures.update(host)
    return Measurement(samples_s=tuple(samples), first_call_s=first_call_s, label=label, **figures)


def _adapt(timer, fn, flush, samples: list[float], budget: float, min_calls: int,
           max_calls: int) -> int:  # fmt: skip
    """Times more calls, in blocks, into ``samples`` while their spread exceeds
    SPREAD_WARNING and the extra ``budget`` (seconds) allows; returns how many were added."""
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
    return adapted


def _device_cross_checks(timer: CudaEventTimer, fn, flush, device, sampled: int,
                         min_calls: int) -> dict[str, float]:  # fmt: skip
    """Events only see work on the current stream. A few host-timed calls with the whole device
    synchronised catch work hidden on another stream (or a host-side wait), and say how long
    the host takes to launch a call; events with the GPU held busy time the device's work."""
    synced, launches = HostTimer(device).time_calls_and_launches(fn, SYNCED_CALLS, flush)
    hold_s = min(HOLD_MAX_S, 1.5 * max(launches) + HOLD_MARGIN_S)
    busy = timer.time_calls(fn, min(sampled, max(min_calls, 10)), flush, hold_s=hold_s)
    return {
        "host_synced_median_s": statistics.median(synced),
        "host_launch_median_s": statistics.median(launches),
        "events_busy_median_s": statistics.median(busy),
        "events_busy_hold_s": hold_s,
    }


@dataclass(frozen=True)
class HostCounters:
    """What the host's counters say at one moment: this process's minor page faults (pages
    first touched, e.g. of memory the allocator just mapped), its system and total CPU time
    (getrusage), and the whole machine's busy CPU time, stolen time included (/proc/stat, in
    10 ms ticks; None where it cannot be read)."""

    wall_s: float
    faults: int
    system_s: float
    own_cpu_s: float
    machine_cpu_s: float | None

    @classmethod
    def read(cls) -> HostCounters:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(wall_s=time.perf_counter(), faults=usage.ru_minflt, system_s=usage.ru_stime,
                   own_cpu_s=usage.ru_utime + usage.ru_stime,
                   machine_cpu_s=machine_cpu_seconds())  # fmt: skip

    def since(self, before: HostCounters, calls: int) -> dict[str, float | None]:
        """Per call since ``before``: page faults and system time; and the share of the
        elapsed time the rest of the machine spent on a CPU (1.0: one core busy throughout)."""
        others = None
        elapsed = self.wall_s - before.wall_s
        if self.machine_cpu_s is not None and before.machine_cpu_s is not None and elapsed > 0:
            used = (self.machine_cpu_s - before.machine_cpu_s) - (self.own_cpu_s - before.own_cpu_s)
            others = max(0.0, used) / elapsed
        return {"minor_faults_per_call": (self.faults - before.faults) / calls,
                "system_s_per_call": (self.system_s - before.system_s) / calls,
                "others_cpu_share": others}  # fmt: skip


def minor_faults() -> int:
    """This process's minor page faults so far (pages first touched: on the CPU, mostly memory
    the allocator handed back to the system and maps again)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_cpu_seconds() -> float | None:
    """The whole machine's busy CPU seconds so far (user, nice, system, irq, softirq and the
    time the hypervisor stole), from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICKS_PER_S


HOLD_MARGIN_S = 20e-6  # the spinning kernel outlasts the host's launch by at least this
HOLD_MAX_S = 0.05


def _spread(samples: list[float]) -> float:
    return relative_spread(samples)


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
