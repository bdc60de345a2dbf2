"""Why is round 1 of ``kernelprof compare`` slow on CPU? Each timed build's calls one by one,
with their page faults, in a worker started exactly as compare starts it.

Every implementation runs in its own worker process, started, checked and given its task by
compare's own :class:`~kernelprof.runs.compare.run.CaseRun` (the task is compare's
``ImplementationTask`` with this script's allocator and warm-up settings beside it), running
compare's own ``measure_implementation`` (check, builds, ``timed_closures`` on the timed input,
the profiler's warm-up). Its :class:`~kernelprof.runs.compare.worker.TimingWorker` serves
compare's round requests unchanged, every call its timer makes logged; this script only adds a
trace request. Per call it records the time (``time.perf_counter`` after compare's cache
flush), the minor page faults (``ru_minflt``), system and user CPU time, glibc's heap and
mmapped bytes (``mallinfo2``) and the CPU time the *rest of the machine* used meanwhile
(/proc/stat less the worker's own; stolen time apart, where compare's ``HostCounters`` count it
as busy), so that a call slowed by another process is seen as such ("busy").

``trace``: every phase (``--order``; compare's fwd, bwd, fwd+bwd) called ``--calls`` times in a
fresh worker, then something in between (``--between``: another worker's compare round, its
round 1 with compare's warm-up, then 2, 3, ...; an idle pause or nothing), then ``--after``
calls more. Per phase: call 1, calls 2-4, 5-10, the steady state, faults and system time early
and steady, the first calls after the pause, and what compare's warm-up rule
(:mod:`kernelprof.harness.warmup`, with the larger of ``--tolerance`` and the noise probe's
spread, as compare takes it) would do on this sequence.
``--malloc``: ``default`` (glibc, as compare runs), ``fixed`` (M_MMAP_THRESHOLD 128 KiB: the
dynamic threshold off, every tensor >= 128 KiB a fresh mmap), ``keep`` (compare's
--keep-host-memory).

``rounds``: compare's own rounds (``CaseRun.round``: the noise probe before each round, the
order rotated; ``TimingWorker.time_round`` in each worker, whose round 1 times call 1 apart and
then warms each phase up until steady), the rows pooled (``PhaseTiming``) and flagged by
compare's analysis (``analysis.row_flags``: rounds that differ by their page faults are
``faults``, the rest ``rounds_disagree``), every call its timer made logged. ``--warm-up``:
``rule`` (compare's warm-up as it runs: ``--tolerance``, ``--window``, ``--max-calls``,
``--max-s`` default to the worker's WARM_UP_* constants, and are patched into them where
changed), ``none`` (``TimingWorker._settle`` patched to time call 1 apart and nothing more) or
calls:K (the WARM_UP_* constants patched so that the rule makes K calls a phase and never
compares). ``--ballast GiB``: a process holds that much touched memory meanwhile, taking the
VM's host-backed free memory.

``bytes``: the fault counts checked against the kernel's record (needs strace): with every
tensor its own mmap (``fixed``), the bytes the worker maps per call against its faults.

    .venv/bin/python benchmarks/warmup.py trace [--impls ref-torch,norse] [--calls 40]
        [--malloc default,fixed,keep] [--between spikingjelly|idle:5|none] [--show-calls]
    .venv/bin/python benchmarks/warmup.py rounds [--warm-up none,rule,calls:10] [--ballast 6]
    .venv/bin/python benchmarks/warmup.py bytes [--impls norse,ref-torch]

Defaults: ref-torch, ref-compile, spikingjelly, snntorch, norse, lava-dl at T=8, N=2^20, fp32,
CPU, SuperSpike alpha 1 (compare's defaults); ``--json OUT`` keeps every call.

What it showed on the 2-core Firecracker VM (2026-12-06, on the previous code, before compare
warmed round 1 up itself):

* A fresh worker has no multi-call warm-up: only call 1 is slower (1.0-1.65x, 2-4x the faults),
  calls 2-4 are within 0.90-1.05x of the steady state; compare already leaves call 1 and the
  estimate call out of its samples (and now also warms each phase up in round 1 before timing
  it: ``TimingWorker._settle``).
* Slow rounds come from page faults that cost more or happen more often: (1) memory beyond the
  VM's host-backed pool (about 5-7 GiB here; the host takes freed memory back within seconds)
  costs 9-15 us of system time per 4 KiB fault instead of 1.8-2 us, and the workers' first
  timed calls, when their working sets first grow, are the likeliest to get it; (2) how many
  faults a phase takes per call (0 or 65k for ref-torch's bwd) is a state of glibc's heap that
  flips between rounds (each round rebuilds bwd's graph), with or without a warm-up. compare's
  analysis now tells these apart itself, from the counters its timer keeps per round
  (``faults`` flags, each with its cause).
* Norse's fwd+bwd above its fwd plus its bwd is page faults: a fwd+bwd call without faults
  (117-122 ms) is fwd plus bwd (~110 ms); with 60-90k faults it takes 155-200 ms.
* Another process on the 2 cores slows a call up to 10-15x (two OpenMP threads on two
  cores): far more than any of the above; the per-call "busy" check tells them apart (compare's
  analysis says so too: rounds that disagree while the rest of the machine used >= 25 % of a
  CPU are flagged ``rounds_disagree``, with that share).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find kernelprof
import torch  # noqa: E402

from kernelprof.harness import device as device_facts  # noqa: E402
from kernelprof.harness import timer as timer_module  # noqa: E402
from kernelprof.harness.timer import HostTimer, cache_flusher  # noqa: E402
from kernelprof.harness.warmup import warm_up  # noqa: E402
from kernelprof.harness.worker import Session, WorkerSession  # noqa: E402
from kernelprof.requests import CompareRequest, RequestError  # noqa: E402
from kernelprof.results import record as records  # noqa: E402
from kernelprof.results.compare import PHASES, CompareCase, NoiseProbe  # noqa: E402
from kernelprof.results.document import DeviceInfo, Environment  # noqa: E402
from kernelprof.runs.check import ImplementationTask  # noqa: E402
from kernelprof.runs.compare import worker as compare_worker  # noqa: E402
from kernelprof.runs.compare.run import CaseRun  # noqa: E402

IMPLS = ("ref-torch", "ref-compile", "spikingjelly", "snntorch", "norse", "lava-dl")
FUNCTION = "benchmarks.warmup:traced_worker"  # what this script's workers run
PAGE = resource.getpagesize()
LARGE = 128 * 2**10  # glibc's initial mmap threshold
# compare's warm-up constants (kernelprof.runs.compare.worker) and this script's options for them
RULE = {"WARM_UP_FLOOR": "tolerance", "WARM_UP_WINDOW": "window",
        "WARM_UP_MAX_CALLS": "max_calls", "WARM_UP_MAX_S": "max_s"}  # fmt: skip


@records.record
class TracedTask(ImplementationTask):
    """compare's task for one implementation (as ``CaseRun.task`` makes it), with this script's
    settings for its worker."""

    malloc: str = "default"  # default, fixed, keep: set before anything is allocated
    warm_up: str = "rule"  # none (TimingWorker._settle patched), rule, calls:K
    rule: Mapping[str, float] = field(default_factory=records.FrozenDict)  # WARM_UP_* patched


# ---- in the worker ---------------------------------------------------------------------------

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
_libc = ctypes.CDLL(ctypes.util.find_library("c"))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]  # fmt: skip


_libc.mallinfo2.restype = _MallInfo2


def set_malloc(mode: str) -> str:
    """Applies a glibc allocator setting in this process (before anything is allocated)."""
    if mode == "default":
        return "glibc defaults"
    if mode == "keep":  # the task says keep_host_memory too: compare's worker applies it again
        return device_facts.keep_host_memory()
    if mode == "fixed":  # setting the threshold turns glibc's dynamic threshold off
        ok = _libc.mallopt(M_MMAP_THRESHOLD, LARGE) == 1
        return f"mmap threshold fixed at 128 KiB ({'ok' if ok else 'refused'})"
    raise ValueError(f"unknown --malloc {mode!r}")


def _first_call_only(self, closure: Callable[[], object]):
    """``TimingWorker._settle`` for ``--warm-up none``: call 1 timed apart, no warm-up."""
    timer = compare_worker.HostTimer(self.device)  # the logging timer while a round runs
    (first_call_s,) = timer.time_calls(closure, 1, compare_worker.cache_flusher(self.device))
    return first_call_s, None


def set_warm_up(task: TracedTask) -> None:
    """The round-1 warm-up this worker's compare rounds make: compare's own (``rule``, with
    the task's WARM_UP_* constants patched into compare's worker module), or none."""
    if task.warm_up == "none":
        compare_worker.TimingWorker._settle = _first_call_only
    for name, value in task.rule.items():
        setattr(compare_worker, name, type(getattr(compare_worker, name))(value))


COUNTERS = ("s", "minflt", "majflt", "utime", "stime", "nivcsw", "others", "steal", "mmapped",
            "heap", "rss")  # fmt: skip
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> tuple[float, float]:
    """The whole machine's busy and stolen CPU seconds so far (/proc/stat, 10 ms ticks), apart
    (``kernelprof.harness.timer.machine_cpu_seconds`` counts stolen time as busy)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / _TICK, steal / _TICK


def _snapshot() -> tuple[float, resource.struct_rusage, tuple[float, float]]:
    return time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), cpu_seconds()


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def trace_calls(fn, calls: int, flush) -> dict[str, list]:
    """``calls`` calls of ``fn``, each after ``flush`` (as compare's timer does), with the time
    and the counters of each call, and the allocator's state after it."""
    record: dict[str, list] = {name: [] for name in COUNTERS}
    for _ in range(calls):
        flush()
        (t0, r0, m0) = _snapshot()
        fn()
        (t1, r1, m1) = _snapshot()
        info = _libc.mallinfo2()
        record["s"].append(t1 - t0)
        record["minflt"].append(r1.ru_minflt - r0.ru_minflt)
        record["majflt"].append(r1.ru_majflt - r0.ru_majflt)
        record["utime"].append(r1.ru_utime - r0.ru_utime)
        record["stime"].append(r1.ru_stime - r0.ru_stime)
        record["nivcsw"].append(r1.ru_nivcsw - r0.ru_nivcsw)
        own = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        # CPU time the rest of the machine used during the call (ticks: +-20 ms)
        record["others"].append(m1[0] - m0[0] - own)
        record["steal"].append(m1[1] - m0[1])
        record["mmapped"].append(info.hblkhd)
        record["heap"].append(info.arena)
        record["rss"].append(_rss())
    return record


class LoggedTimer(HostTimer):
    """compare's host timer, logging each call it times with its counters (in the worker, for
    compare's own rounds): which phase (known by its closure), which request to the timer in
    the round (round 1: the first call, each warm-up call, then the estimate, the samples and
    any more samples; later rounds: the estimate, the samples, more samples), the time, the
    faults and the others' CPU."""

    log: list[dict[str, Any]] = []
    closures: list[tuple[Callable[[], object], str]] = []  # this round's phases, by identity
    requests: dict[str, int] = {}

    @classmethod
    def naming(cls, phases: dict[str, Callable[[], object]]) -> dict[str, Callable[[], object]]:
        cls.closures = [(fn, phase) for phase, fn in phases.items()]
        return phases

    def time_calls(self, fn, count, before):
        phase = next((name for closure, name in LoggedTimer.closures if closure is fn), "?")
        LoggedTimer.requests[phase] = request = LoggedTimer.requests.get(phase, 0) + 1
        record = trace_calls(fn, count, before)
        for i in range(count):
            LoggedTimer.log.append({"phase": phase, "request": request,
                                    **{name: record[name][i] for name in COUNTERS}})  # fmt: skip
        return record["s"]


def logged_round(worker: compare_worker.TimingWorker, message: dict[str, Any]) -> dict[str, Any]:
    """compare's round through its own handler, every timed call logged: the logging timer
    stands in for the host timer of compare's worker (its warm-up) and of the harness's
    ``measure`` (the timed calls)."""
    LoggedTimer.log, LoggedTimer.requests = [], {}
    real = timer_module.HostTimer, compare_worker.HostTimer
    timer_module.HostTimer = compare_worker.HostTimer = LoggedTimer
    try:
        reply = worker.handle(message)
    finally:
        timer_module.HostTimer, compare_worker.HostTimer = real
    return {**reply, "calls": LoggedTimer.log}


def traced_worker(data: dict[str, Any]):
    """The worker: compare's ``measure_implementation``, its ``TimingWorker`` serving compare's
    requests (each round's calls logged) and this script's trace request."""
    task = records.decode(TracedTask, data)
    note = set_malloc(task.malloc)
    set_warm_up(task)
    outcome = compare_worker.measure_implementation(data)
    if not isinstance(outcome, Session):  # the checked build's record: not timeable
        return {**outcome, "malloc": note}
    worker = getattr(outcome.handle, "__self__", None)
    if not isinstance(worker, compare_worker.TimingWorker):
        raise TypeError("compare's worker no longer serves its rounds from a TimingWorker")
    phases = worker.closures.phases
    worker.closures.phases = lambda: LoggedTimer.naming(phases())  # each round's closures

    def handle(message: dict[str, Any]) -> dict[str, Any]:
        command, order = message.get("command"), message.get("order", list(PHASES))
        if command == "trace":
            closures = phases()  # as each round makes them (bwd: one forward's graph)
            return {phase: trace_calls(closures[phase], message["calls"],
                                       cache_flusher(worker.device))
                    for phase in order}  # fmt: skip
        if command == "round":  # compare's own round, its calls logged
            return logged_round(worker, message)
        return worker.handle(message)  # compare's other requests (the profile)

    return Session({**outcome.result, "malloc": note}, handle)


# ---- in the parent ---------------------------------------------------------------------------


def rule_constants(warm: str, args) -> dict[str, float]:
    """The WARM_UP_* constants of compare's worker that ``--warm-up`` changes: for ``rule``
    the options that differ from compare's own; for calls:K a rule that makes K calls a phase
    and never compares (its first comparison would be after 2K)."""
    if warm == "rule":
        return {name: getattr(args, option) for name, option in RULE.items()
                if getattr(args, option) != getattr(compare_worker, name)}  # fmt: skip
    if warm.startswith("calls:"):
        calls = int(warm.split(":", 1)[1])
        return {"WARM_UP_FLOOR": 0.0, "WARM_UP_WINDOW": calls, "WARM_UP_MAX_CALLS": calls,
                "WARM_UP_MAX_S": 1e9}  # fmt: skip
    return {}


def describe_warm_up(warm: str, args) -> str:
    if warm == "none":
        return "none (TimingWorker._settle patched: call 1 timed apart, nothing more)"
    rule = (f"tolerance max({args.tolerance:.0%}, the noise spread), window {args.window}, at "
            f"most {args.max_calls} calls or {args.max_s:g} s a phase")  # fmt: skip
    if warm == "rule":
        patched = rule_constants(warm, args)
        how = (f"patched: {', '.join(f'{k}={v}' for k, v in patched.items())}" if patched
               else "compare's own constants")  # fmt: skip
        return f"rule (compare's round-1 warm-up: {rule}; {how})"
    return f"{warm} (the WARM_UP_* constants patched: {warm.split(':')[1]} calls a phase)"


class TracedRun(CaseRun):
    """compare's run of one case (its request, tasks, workers, checks, rounds, pooling and
    analysis, as ``run_compare`` runs them), its workers running this script's
    :func:`traced_worker`: the calls each round's timer made are kept per row and round."""

    def __init__(self, args, impls: list[str], noise: NoiseProbe, malloc: str = "default",
                 warm: str = "rule") -> None:  # fmt: skip
        request = CompareRequest(impls=tuple(impls), T=args.T, N=args.N, device="cpu",
                                 no_energy=True, rounds=args.rounds, timeout=1800,
                                 keep_host_memory=malloc == "keep")  # fmt: skip
        # no copy bandwidth is measured: the analysis' bandwidth figures are NaN, and unused
        super().__init__(request, request.cases[0], Environment(device=DeviceInfo(type="cpu")),
                         float("nan"), noise, lambda _: contextlib.nullcontext())  # fmt: skip
        self.settings = {"malloc": malloc, "warm_up": warm, "rule": rule_constants(warm, args)}
        self.calls: dict[str, list[list[dict[str, Any]]]] = {}

    def task(self, impl: str) -> TracedTask:
        return records.derive(TracedTask, super().task(impl), function=FUNCTION, **self.settings)

    def start(self) -> None:
        super().start()
        for impl, session in self.sessions.items():
            self.calls[impl] = []
            session.request = self._keeping_calls(impl, session.request)

    def _keeping_calls(self, impl: str, request):
        def logged(message: dict[str, Any], timeout_s: float = 300.0) -> dict[str, Any]:
            reply = request(message, timeout_s=timeout_s)
            if "round" in reply:
                self.calls[impl].append(reply.pop("calls", []))
            return reply

        return logged


def start(impl: str, args, noise: NoiseProbe, malloc: str = "default") -> WorkerSession | None:
    """A worker for ``impl``, started and checked as compare starts it; None (said) if it
    cannot be timed."""
    run = TracedRun(args, [impl], noise, malloc)
    run.start()
    session = run.sessions.get(impl)
    if session is None:
        checked = run.checked[impl]
        print(f"{impl}: not timeable: {checked.verdict}: {checked.error or checked.reason}",
              file=sys.stderr)  # fmt: skip
    return session


def machine() -> str:
    load = os.getloadavg()[0]
    return f"load {load:.2f} on {os.cpu_count()} CPUs"


def traced(session: WorkerSession, calls: int, order: list[str]) -> dict[str, Any]:
    """One trace request, with the CPU time the rest of the machine used meanwhile (busy CPU
    seconds of the whole machine less the worker's own in its traced calls) and stolen."""
    (busy, steal), started = cpu_seconds(), time.perf_counter()
    record = session.request({"command": "trace", "calls": calls, "order": order},
                             timeout_s=1800)  # fmt: skip
    (busy_end, steal_end), wall = cpu_seconds(), time.perf_counter() - started
    if "status" not in record:
        own = sum(sum(r["utime"]) + sum(r["stime"]) for r in record.values())
        record["_machine"] = {"wall_s": wall, "others_cpu_s": busy_end - busy - own,
                              "steal_s": steal_end - steal}  # fmt: skip
    return record


def settles_after(times: list[float], steady: float, band: float, window: int = 5) -> int:
    """Calls before the time is steady: the first call from which every ``window``-call median
    stays within ``band`` (relative) of ``steady``."""
    medians = [statistics.median(times[i : i + window]) for i in range(len(times) - window + 1)]
    settled = len(times)
    for index in range(len(medians) - 1, -1, -1):
        if abs(medians[index] - steady) > band * steady:
            break
        settled = index
    return settled


def replay(times: list[float], args, tolerance: float) -> dict[str, Any]:
    """What compare's warm-up rule would do on this recorded sequence, and how slow the calls
    right after it are (what round 1 would time then) against the steady state."""
    if len(times) < 4:
        return {"calls": 0, "seconds": 0.0, "settled": False, "next_median_s": None}
    feed = iter(times)
    result = warm_up(lambda: None, time_call=lambda _fn: next(feed), tolerance=tolerance,
                     window=args.window, max_calls=min(args.max_calls, len(times) - 3),
                     max_s=args.max_s)  # fmt: skip
    following = times[result.calls : result.calls + 3]
    return {"calls": result.calls, "seconds": result.seconds, "settled": result.settled,
            "next_median_s": statistics.median(following) if following else None}  # fmt: skip


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.4g}"


BUSY_SHARE = 0.25  # a call during which the rest of the machine used this share of it (or 30 ms)


def busy_calls(record: dict[str, list]) -> list[int]:
    """The calls (1-based) during which something else ran on the machine."""
    return [i + 1 for i, (t, o) in enumerate(zip(record["s"], record["others"], strict=True))
            if o > max(0.03, BUSY_SHARE * t)]  # fmt: skip


def median(values: list[float]) -> float:
    """The median, NaN for none (a short trace)."""
    return statistics.median(values) if values else float("nan")


def summarise(record: dict[str, list], after: dict[str, list] | None, args,
              noise: NoiseProbe) -> dict[str, Any]:  # fmt: skip
    times, faults, stime = record["s"], record["minflt"], record["stime"]
    half = len(times) // 2
    steady = median(times[half:])
    summary = {
        "first_s": times[0],
        "calls_2_4_s": median(times[1:4]),
        "calls_5_10_s": median(times[4:10]),
        "steady_s": steady,
        "settles_after": settles_after(times, steady, args.band),
        "faults_first": faults[0],
        "faults_2_4": median(faults[1:4]),
        "faults_steady": median(faults[half:]),
        "stime_first_s": stime[0],
        "stime_2_4_s": median(stime[1:4]),
        "stime_steady_s": median(stime[half:]),
        "utime_2_4_s": median(record["utime"][1:4]),
        "utime_steady_s": median(record["utime"][half:]),
        "nivcsw_steady": median(record["nivcsw"][half:]),
        "rule": replay(times, args, max(args.tolerance, noise.spread)),  # compare's tolerance
        "busy_calls": busy_calls(record),
    }
    summary["settle_s"] = sum(times[: summary["settles_after"]])
    if after:
        summary.update(after_first_s=after["s"][0], after_next_s=median(after["s"][1:5]),
                       after_faults_first=after["minflt"][0],
                       after_faults_next=median(after["minflt"][1:5]))  # fmt: skip
    return summary


def run_between(between: str, args, neighbours: dict[str, list], noise: NoiseProbe) -> str:
    """What happens between the two traces: another worker's round (its rounds numbered as
    compare numbers them: round 1, with the warm-up, then 2, 3, ...), an idle pause, nothing."""
    if between == "none":
        return "nothing in between"
    if between.startswith("idle:"):
        time.sleep(float(between.split(":", 1)[1]))
        return f"idle {between.split(':', 1)[1]} s in between"
    if between not in neighbours:
        neighbours[between] = [start(between, args, noise), 0]
    neighbour = neighbours[between]
    if neighbour[0] is None:
        return f"{between} unavailable: nothing in between"
    neighbour[1] += 1
    neighbour[0].request({"command": "round", "round": neighbour[1]}, timeout_s=900)
    return f"compare's round {neighbour[1]} of {between} in another worker in between"


def trace_mode(args) -> dict[str, Any]:
    results: dict[str, Any] = {}
    neighbours: dict[str, list] = {}  # IMPL: [its worker, its rounds so far]
    # the probe compare takes before a case: its spread sets the workers' warm-up tolerance
    run_noise = device_facts.noise_floor(torch.device("cpu"))
    try:
        for impl in args.impls:
            for malloc in args.malloc:
                session = start(impl, args, run_noise, malloc)
                if session is None:
                    continue
                try:
                    load = machine()
                    noise = device_facts.noise_floor(torch.device("cpu"), repeat_s=0.2)
                    first = traced(session, args.calls, args.order)
                    between = run_between(args.between, args, neighbours, run_noise)
                    after = traced(session, args.after, args.order)
                finally:
                    session.close()
                if "status" in first:
                    print(f"{impl} {malloc}: {first}", file=sys.stderr)
                    continue
                key = f"{impl} [{malloc}]"
                results[key] = {"impl": impl, "malloc": malloc, "load": load, "noise": noise,
                                "allocator": session.first.get("malloc"),
                                "machine": first.pop("_machine"),
                                "between": between, "trace": first,
                                "after": after if "status" not in after else None,
                                "summary": {p: summarise(first[p], (after or {}).get(p), args,
                                                         noise) for p in args.order}}  # fmt: skip
                print_trace(key, results[key], args)
    finally:
        for session, _ in neighbours.values():
            if session is not None:
                session.close()
    return results


def print_trace(key: str, result: dict[str, Any], args) -> None:
    noise = result["noise"]
    print(f"\n## {key}: {result['load']}, noise probe {ms(noise.median_s)} ms spread "
          f"{noise.spread:.0%}; after the first {args.calls} calls per phase: "
          f"{result['between']}, then {args.after} calls per phase")  # fmt: skip
    print(f"allocator: {result['allocator']}")
    busy = result["machine"]
    print(f"while traced: {busy['wall_s']:.1f} s, the rest of the machine used "
          f"{busy['others_cpu_s']:.1f} CPU s (flush and harness included), {busy['steal_s']:.1f} "
          "s stolen")  # fmt: skip
    print("times in ms; faults = minor page faults per call (x4 KiB); sys = system CPU ms")
    print("| phase | call 1 | calls 2-4 | calls 5-10 | steady | settled after | faults 1 / 2-4 / "
          "steady | sys 1 / 2-4 / steady | user 2-4 / steady | rule: calls, s, next 3 / "
          "steady | after pause: call 1, 2-5 (faults) | busy calls |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for phase, s in result["summary"].items():
        rule = s["rule"]
        shown_rule = (f"{rule['calls']}{'' if rule['settled'] else ' (bound)'}, "
                      f"{rule['seconds']:.2f} s, {rule['next_median_s'] / s['steady_s']:.2f}x"
                      if rule["next_median_s"] else "n/a")  # fmt: skip
        pause = (f"{ms(s['after_first_s'])}, {ms(s['after_next_s'])} ({s['after_faults_first']},"
                 f" {s['after_faults_next']:.0f})" if "after_first_s" in s else "n/a")  # fmt: skip
        print(f"| {phase} | {ms(s['first_s'])} | {ms(s['calls_2_4_s'])} | "
              f"{ms(s['calls_5_10_s'])} | {ms(s['steady_s'])} | {s['settles_after']} calls, "
              f"{s['settle_s']:.2f} s | {s['faults_first']} / {s['faults_2_4']:.0f} / "
              f"{s['faults_steady']:.0f} | {ms(s['stime_first_s'])} / {ms(s['stime_2_4_s'])} / "
              f"{ms(s['stime_steady_s'])} | {ms(s['utime_2_4_s'])} / {ms(s['utime_steady_s'])} "
              f"| {shown_rule} | {pause} | {_calls(s['busy_calls'])} |")  # fmt: skip
    if args.show_calls:
        for phase, record in result["trace"].items():
            calls = calls_shown(record)
            print(f"  {phase} ms/faults/others' CPU ms: {calls}")
            heap = " ".join(f"{h >> 20}+{m >> 20}" for h, m in
                            zip(record["heap"], record["mmapped"], strict=True))  # fmt: skip
            print(f"  {phase} heap+mmapped MiB after each call: {heap}")
        for phase, record in (result["after"] or {}).items():
            if phase.startswith("_"):
                continue
            calls = calls_shown(record)
            print(f"  {phase} after the pause, ms/faults/others' CPU ms: {calls}")


def _calls(numbers: list[int]) -> str:
    """Call numbers, the first 8 of them."""
    if not numbers:
        return "none"
    more = f" (+{len(numbers) - 8})" if len(numbers) > 8 else ""
    return ",".join(map(str, numbers[:8])) + more


BALLAST = """
import ctypes, mmap, resource, sys
held, costs = [], []
for _ in range(int(sys.argv[1])):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    m = mmap.mmap(-1, 2**30)
    ctypes.memset((ctypes.c_char * 2**30).from_buffer(m), 1, 2**30)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    held.append(m)
    costs.append(1e6 * (r1.ru_stime - r0.ru_stime) / (r1.ru_minflt - r0.ru_minflt))
print(" ".join(f"{c:.1f}" for c in costs), flush=True)
sys.stdin.read()  # held until the parent closes stdin
"""


@contextlib.contextmanager
def ballast(gib: int):
    """A process holding ``gib`` GiB of touched memory for the block: it takes the VM's
    host-backed free memory, so that the workers' new pages must come from memory the host
    has to back first (what a freshly booted VM, or one whose freed memory the host took back,
    gives). Prints the system time per fault of each GiB it touched."""
    if gib <= 0:
        yield
        return
    holder = subprocess.Popen([sys.executable, "-c", BALLAST, str(gib)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        print(f"ballast: {gib} GiB held; us of system time per fault, per GiB touched: "
              f"{holder.stdout.readline().strip()}")  # fmt: skip
        yield
    finally:
        holder.stdin.close()
        holder.wait()


def calls_shown(record: dict[str, list]) -> str:
    """Each call as ms/faults/others' CPU ms."""
    return " ".join(f"{1e3 * t:.0f}/{f}/{1e3 * o:.0f}" for t, f, o in zip(
        record["s"], record["minflt"], record["others"], strict=True))  # fmt: skip


def rounds_mode(args) -> dict[str, Any]:
    """compare's rounds (its ``CaseRun``: the noise probe before each round, rotated order;
    ``TimingWorker.time_round`` in each worker; its pooling and flags), with compare's warm-up
    in round 1, without, or a fixed count; every call the timer made logged with its faults
    and the others' CPU."""
    results = {}
    for warm in args.warm_up:
        with ballast(args.ballast):
            results[warm] = one_compare(warm, args)
            print_rounds(warm, results[warm], args)
    return results


def one_compare(warm: str, args) -> dict[str, Any]:
    """One compare run of the case, as ``run_compare`` runs it: the noise probe, the workers
    (checked a few at a time), the rounds, pooled and flagged by compare's analysis."""
    noise = device_facts.noise_floor(torch.device("cpu"))  # its spread: the warm-up tolerance
    run = TracedRun(args, args.impls, noise, warm=warm)
    try:
        run.start()
        for number in range(1, args.rounds + 1):
            run.round(number)
    finally:
        run.close()
    case = run.result()
    return {"case": case, "calls": run.calls, "noise_spread": case.noise_spread}


def print_rounds(warm: str, result: dict[str, Any], args) -> None:
    case: CompareCase = result["case"]
    print(f"\n## compare's rounds, {case.case.label}, warm-up in round 1: "
          f"{describe_warm_up(warm, args)} ({machine()}, noise spread "
          f"{result['noise_spread']:.0%})")  # fmt: skip
    print("per round: median ms of its timed calls [their faults per call, median; system CPU "
          "per fault over all the round's calls] (calls timed / untimed before them in the "
          "round; busy: timed calls during which the rest of the machine used >= 25 % of the "
          "call); flagged: the kinds of compare's flags on the phase, listed below")  # fmt: skip
    rounds = " | ".join(f"round {n}" for n in range(1, args.rounds + 1))
    print(f"| impl | phase | warm-up calls, s | {rounds} | flagged |")
    print("|---|---|---|" + "---|" * args.rounds + "---|")
    for row in case.rows:
        if row.timings is None:
            why = row.checked.error or row.reason or "; ".join(row.errors)
            print(f"| {row.impl} | | not timed: {row.verdict}: {why} |{' |' * args.rounds} "
                  f"{', '.join(f.kind for f in row.flags) or '-'} |")  # fmt: skip
            continue
        for phase, timing in row.timings.items():
            shown = []
            for r, logged in zip(timing.rounds, result["calls"][row.impl], strict=True):
                mine = [c for c in logged if c["phase"] == phase]
                timed = mine[len(mine) - len(r.call.samples_s) :]
                busy = sum(c["others"] > max(0.03, BUSY_SHARE * c["s"]) for c in timed)
                faults = statistics.median(c["minflt"] for c in timed)
                cost = kernel_us_per_fault(mine)
                busy = f", busy {busy}" if busy else ""
                shown.append(f"{ms(r.call.median_s)} [{faults / 1e3:.0f}k{cost}] "
                             f"({len(timed)}/{len(mine) - len(timed)}{busy})")  # fmt: skip
            w = timing.warm_up
            warmed = f"{w.calls}{'' if w.settled else ' (bound)'}, {w.seconds:.2f}" if w else "-"
            kinds = [f.kind for f in row.flags if f.subject == f"{row.impl} {phase}"]
            print(f"| {row.impl} | {phase} | {warmed} | {' | '.join(shown)} | "
                  f"{', '.join(kinds) or '-'} |")  # fmt: skip
        subjects = {f"{row.impl} {phase}" for phase in row.timings}
        other = [f.kind for f in row.flags if f.subject not in subjects]
        if other:
            print(f"| {row.impl} | | |{' |' * args.rounds} {', '.join(other)} |")
    flags = [flag for row in case.rows for flag in row.flags]
    print("flags:" if flags else "flags: none")
    for flag in flags:
        print(f"- {flag.subject} [{flag.kind}] {flag.message}")
    if args.show_calls:
        for impl, rounds in result["calls"].items():
            for number, logged in enumerate(rounds, 1):
                for phase in PHASES:
                    shown = " ".join(f"{1e3 * c['s']:.0f}/{c['minflt']}/{1e3 * c['others']:.0f}"
                                     for c in logged if c["phase"] == phase)  # fmt: skip
                    print(f"  {impl} round {number} {phase} ms/faults/others' CPU ms: {shown}")


def kernel_us_per_fault(calls: list[dict[str, Any]]) -> str:
    """System CPU time per page fault over calls that fault (CPU time: little moved by other
    processes); about 2 us on memory the VM's host backs, 10-15 us on memory it must back
    first."""
    faulting = [c for c in calls if c["minflt"] > 2000]
    if not faulting:
        return ""
    cost = sum(c["stime"] for c in faulting) / sum(c["minflt"] for c in faulting)
    return f", {1e6 * cost:.1f} us"


def bytes_mode(args) -> dict[str, Any]:
    """The fault counts checked against the kernel's own record: with every tensor of 128 KiB
    or more its own mmap (``fixed``), strace records the worker's mmap calls during 5 calls of
    each phase; the bytes mapped per call / 4 KiB bound the faults (pages never written map
    but do not fault)."""
    if shutil.which("strace") is None:
        print("bytes: needs strace")
        return {}
    results = {}
    noise = device_facts.noise_floor(torch.device("cpu"), repeat_s=0.2)  # for the tasks
    print("\n| impl | phase | MiB mapped per call (strace) | pages | faults per call (counted) "
          "| faulted / mapped |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for impl in args.impls:
        session = start(impl, args, noise, "fixed")
        if session is None:
            continue
        results[impl] = {}
        try:
            for phase in args.order:
                traced(session, 3, [phase])  # past the first call
                with tempfile.NamedTemporaryFile("r", suffix=".strace") as log:
                    command = ["strace", "-f", "-qq", "-e", "trace=mmap", "-o", log.name,
                               "-p", str(session.process.pid)]  # fmt: skip
                    tracer = subprocess.Popen(command)
                    time.sleep(1.0)  # attached
                    record = traced(session, 5, [phase])[phase]
                    time.sleep(0.3)
                    tracer.terminate()
                    tracer.wait()
                    sizes = [int(size) for size in re.findall(
                        r"mmap\(NULL, (\d+), PROT_READ\|PROT_WRITE", log.read())]  # fmt: skip
                # one 64 MiB cache-flush buffer per trace request, not the phase's
                flush = compare_flush_bytes()
                mapped = (sum(sizes) - sum(s for s in sizes if s == flush)) / 5
                faults = statistics.median(record["minflt"])
                results[impl][phase] = {"mapped_bytes": mapped, "faults": record["minflt"]}
                print(f"| {impl} | {phase} | {mapped / 2**20:.0f} | {mapped / PAGE:.0f} | "
                      f"{faults:.0f} | {faults * PAGE / mapped:.0%} |")  # fmt: skip
        finally:
            session.close()
    return results


def compare_flush_bytes() -> int:
    """The size glibc maps for compare's CPU cache-flush buffer (its tensor and a page)."""
    return timer_module.CPU_FLUSH_BYTES + PAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("trace", "rounds", "bytes"))
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--N", type=int, default=2**20)
    parser.add_argument("--calls", type=int, default=40, help="calls per phase traced")  # fmt: skip
    parser.add_argument("--after", type=int, default=10, help="calls per phase after the pause")
    parser.add_argument("--order", default=",".join(PHASES))
    parser.add_argument("--malloc", default="default", help="default,fixed,keep")
    parser.add_argument(
        "--between",
        default="spikingjelly",
        help="IMPL (its worker runs a compare round), idle:SECONDS, or none",
    )
    parser.add_argument(
        "--band",
        type=float,
        default=0.10,
        help="settled: every 5-call median within this of the steady state",
    )
    parser.add_argument(
        "--warm-up", default="none,rule", help="rounds mode: none, rule, calls:K (comma list)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ballast", type=int, default=0,
                        help="rounds: GiB held by another process meanwhile")  # fmt: skip
    # the rule's settings: compare's own by default (kernelprof/runs/compare/worker.py)
    parser.add_argument("--tolerance", type=float, default=compare_worker.WARM_UP_FLOOR,
                        help="the rule's tolerance (the noise spread if larger)")  # fmt: skip
    parser.add_argument("--window", type=int, default=compare_worker.WARM_UP_WINDOW,
                        help="the rule's window")  # fmt: skip
    parser.add_argument("--max-calls", type=int, default=compare_worker.WARM_UP_MAX_CALLS,
                        help="the rule's bound in calls")  # fmt: skip
    parser.add_argument("--max-s", type=float, default=compare_worker.WARM_UP_MAX_S,
                        help="the rule's bound in seconds")  # fmt: skip
    parser.add_argument("--show-calls", action="store_true", help="every call's ms/faults")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.impls = [i for i in args.impls.split(",") if i]
    args.order = [p for p in args.order.split(",") if p]
    args.malloc = [m for m in args.malloc.split(",") if m]
    args.warm_up = [w for w in args.warm_up.split(",") if w]
    for warm in args.warm_up:
        if warm not in ("none", "rule") and not re.fullmatch(r"calls:[1-9]\d*", warm):
            parser.error(f"--warm-up: none, rule or calls:K (K >= 1), not {warm!r}")
    try:  # the implementations and the case, refused as compare refuses them
        CompareRequest(impls=tuple(args.impls), T=args.T, N=args.N, device="cpu",
                       rounds=args.rounds)  # fmt: skip
    except RequestError as error:
        parser.error(str(error))
    started = time.perf_counter()
    print(f"T={args.T}, N={args.N:,}, fp32, CPU, {torch.get_num_threads()} threads; {machine()}")
    mode = {"trace": trace_mode, "rounds": rounds_mode, "bytes": bytes_mode}[args.mode]
    results = mode(args)
    print(f"\n({time.perf_counter() - started:.0f} s; {machine()})")
    if args.json:
        args.json.write_text(json.dumps(records.encode(results), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
