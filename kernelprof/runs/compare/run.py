"""``kernelprof compare``: every LIF neuron checked, then its timed build measured side by side.

For each neuron, in its own worker process (a few at a time: checking is never timed):
available here? (else the reason), does its checking build agree with the float64 oracle (the
verdict, from :mod:`kernelprof.runs.check`, on two check inputs and on sampled neurons of the
timed input itself), does its timed build compute what its checking build computes on the very
input that is timed (sampled neurons; a mismatch is an error row). Then the workers stay alive
and are timed in ``rounds`` interleaved rounds, one worker at a time, the order rotated each
round, so that a machine's drift lands on every row alike (each round: forward, backward and
forward+backward from the one timing harness; on CUDA also their device time, the summed
kernel durations from the profiler); a fixed noise probe is timed before each round. Last, each
worker profiles its build once: kernels, the host's share inside torch operators, allocator peak,
bytes saved for backward, energy, optionally a Chrome trace and CUDA graph replays. Only the
timed build is ever timed: what the framework's users write to get spikes, with the input
already in the layout they hold it in (:class:`~kernelprof.frameworks.base.TimedBuild`). The
parent hands the rounds to :mod:`kernelprof.results.analysis` (pooling, GB/s, paired speedups
with intervals, launch-bound and inconsistent rows) and the document to the presentation.
Nothing here formats output.
"""

from __future__ import annotations

import collections
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kernelprof.harness import device as device_facts
from kernelprof.harness.energy import EnergyMeasurement, measure_energy
from kernelprof.harness.profiling import (
    profile_phases,
    saved_for_backward_bytes,
    warm_up_profiler,
)
from kernelprof.harness.timer import cache_flusher, cuda_graph_replay, measure
from kernelprof.harness.worker import Session, WorkerSession
from kernelprof.inputs import DTYPES, lif_input
from kernelprof.results import schema
from kernelprof.results.analysis import add_bandwidth_and_speedup, pool_rounds, spread_limit
from kernelprof.runs import check
from reference_kernels.model import LIFConfig

PHASES = ("fwd", "bwd", "fwd+bwd")
CHECK_NEURONS = 2**16  # neurons compared with the float64 oracle before timing
FUNCTION = "kernelprof.runs.compare:measure_implementation"  # what a compare worker runs


@dataclass(frozen=True)
class CompareRequest:
    """What ``kernelprof compare`` is asked to measure: every neuron on every (T, N, dtype)."""

    config: LIFConfig
    impls: tuple[str, ...]
    steps: tuple[int, ...] = (8,)
    neurons: tuple[int, ...] = (2**20,)
    dtypes: tuple[str, ...] = ("fp32",)
    device: str = "cpu"
    seed: int = 0
    repeat_s: float = 0.25  # timing budget per phase
    baseline: str | None = None  # speedups against this row (default: the fastest framework)
    trace_dir: Path | None = None
    pythons: Mapping[str, str] = field(default_factory=dict)  # impl -> another interpreter
    timeout_s: float = 600.0
    energy: bool = True
    cuda_graph: bool = False
    # glibc keeps freed memory in the heap (mallopt) in the workers: an explicit option, off by
    # default, since it does not speed every framework alike (benchmarks/host_allocator.py).
    keep_host_memory: bool = False
    rounds: int = 3  # interleaved rounds of timings per implementation

    def cases(self) -> list[dict[str, Any]]:
        return [
            {"T": steps, "N": neurons, "dtype": dtype}
            for steps in self.steps
            for neurons in self.neurons
            for dtype in self.dtypes
        ]

    def task(self, case: dict[str, Any], impl: str) -> dict[str, Any]:
        """The worker's task for one neuron on one case (JSON)."""
        return {
            "function": FUNCTION,
            "impl": impl,
            "config": self.config.as_dict(),
            "device": self.device,
            "seed": self.seed,
            "repeat_s": self.repeat_s,
            "trace_dir": None if self.trace_dir is None else str(self.trace_dir),
            "energy": self.energy,
            "cuda_graph": self.cuda_graph,
            "keep_host_memory": self.keep_host_memory,
            **case,
        }


@dataclass
class TimedClosures:
    """The timed build bound to one prepared input: what the harness times."""

    x: torch.Tensor  # the input as the framework's users hold it (a leaf that requires grad)
    grad: torch.Tensor  # the upstream gradient of the spikes, in the framework's layout
    forward: Callable[[], torch.Tensor]
    forward_backward: Callable[[], object]
    # A build that torch's autograd does not differentiate brings its own phase closures
    # (TimedBuild.phases); torch's profiler, allocator and saved tensors do not see its work.
    own_phases: dict[str, Callable[[], object]] | None = None

    def backward_of(self, spikes: torch.Tensor) -> Callable[[], object]:
        """Backward alone: the graph of one forward, replayed with retain_graph."""
        return lambda: torch.autograd.grad(spikes, self.x, self.grad, retain_graph=True)


OUTSIDE_TORCH = "not seen: the framework's own runtime does the work, invisible to torch"


def timed_closures(timed, x: torch.Tensor, seed: int) -> TimedClosures:
    """Prepares ``x`` (canonical [T, ...]) for the timed build outside any timed region, and
    returns the closures that call only the build's ``run`` (or the build's own phases)."""
    if timed.phases is not None:
        grad = check.upstream_gradient(x.shape, x, seed)
        own = timed.phases(x.detach(), grad)
        missing = set(PHASES) - set(own)
        if missing:
            raise RuntimeError(f"the timed build's phases lack {', '.join(sorted(missing))}")
        return TimedClosures(x, grad, own["fwd"], own["fwd+bwd"], own_phases=dict(own))
    prepared = timed.prepare(x.detach()).detach().requires_grad_(True)
    with torch.no_grad():
        shape = timed.run(prepared).shape  # the spikes as the framework returns them
    grad = check.upstream_gradient(shape, prepared, seed)

    def forward() -> torch.Tensor:
        return timed.run(prepared)

    def forward_backward():
        return torch.autograd.grad(forward(), prepared, grad)

    return TimedClosures(prepared, grad, forward, forward_backward)


def measure_implementation(task: dict[str, Any]) -> dict[str, Any] | Session:
    """Runs in a worker: the verdict and the agreement of the builds, then the timed build bound
    to the timed input. A row that may be timed keeps its worker, which then serves
    ``{"command": "round", "round": r}`` (one round of timings; every round alike) and
    ``{"command": "profile"}`` (kernels, memory, energy, the optional trace)."""
    if task.get("keep_host_memory"):
        device_facts.keep_host_memory()
    row, build = check.prepare(task)
    if build is None:
        return row
    row.update(check.verdict(build, task, min(task["N"], CHECK_NEURONS)))
    device, dtype = torch.device(task["device"]), DTYPES[task["dtype"]]
    config = LIFConfig(**task["config"])
    x = lif_input((task["T"], task["N"]), config, dtype=dtype, device=device, seed=task["seed"])
    row["path"] = build.path
    try:
        check.recheck_on(row, build, x, task)
        if not check.compare_builds(row, build, x, task):
            return row  # no timing without a timed build known to compute the checked result
        closures = timed_closures(build.timed, x, task["seed"])
        del x
    except (RuntimeError, torch.cuda.OutOfMemoryError) as error:  # keeps the verdict
        row["error"] = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        return row
    row["path"] = build.detect_path() if build.detect_path is not None else build.path
    row["timeable"] = True
    warm_up_profiler()  # here, while checking: its first start costs seconds

    def handle(message: dict[str, Any]) -> dict[str, Any]:
        command = message.get("command")
        try:
            if command == "round":
                # the round being timed, for the code in this worker to see (tests plant drift)
                os.environ["KERNELPROF_ROUND"] = str(message.get("round", "?"))
                return {"round": time_round(task, closures, device, message.get("round", 1))}
            if command == "profile":
                return {"profile": _profile(task, closures, device)}
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            return {"error": f"{type(error).__name__}: {error}".strip().splitlines()[0]}
        raise ValueError(f"unknown request {message!r}")

    return Session(row, handle)


def time_round(task, closures: TimedClosures, device, number: int = 1) -> dict[str, Any]:
    """One round: every phase timed by the harness (in round 1 its first call, timed apart, and
    a warm-up: the host allocator settles over the first calls of a process; in every round an
    untimed call first, since the other workers ran in between); on CUDA also
    profiled for its device time (the summed durations of the kernels each call launched).
    Every round is timed alike."""
    name, repeat_s = task["impl"], task["repeat_s"] / ROUND_SHARE
    phases = _phases(closures)
    timings, started = {}, time.time()
    for phase, closure in phases.items():
        timing = measure(closure, device=device, label=f"{name} {phase}", repeat_s=repeat_s,
                         warmup_s=ROUND1_WARMUP_S if number == 1 else 0.0,
                         min_warmup_calls=1 if number == 1 else 0,
                         min_calls=ROUND_MIN_CALLS, first_call=number == 1)  # fmt: skip
        timings[phase] = {**timing.as_dict(), "started_at": started, "round": number}
    if device.type == "cuda" and closures.own_phases is None:
        profiled = profile_phases(phases, device, label=name, calls=PROFILED_CALLS,
                                  before=cache_flusher(device))  # fmt: skip
        for phase, timing in timings.items():
            timing.update(device_samples_s=profiled.device_s[phase], device_source="kernels",
                          launch_s=timing["host_launch_median_s"])  # fmt: skip
    else:  # the host does the work (or a runtime torch's profiler cannot see, waited for in
        # each closure): device, call and launch time are one
        for timing in timings.values():
            timing.update(device_samples_s=timing["samples_s"], device_source="host clock",
                          launch_s=timing["median_s"])  # fmt: skip
    if device.type == "cuda":
        torch.cuda.empty_cache()  # idle between rounds: hand back what the allocator cached
    return timings


NOISE_ROUND_S = 0.2  # the noise probe before each round
ROUND1_WARMUP_S = 0.05
ROUND_SHARE = 3  # each round times for repeat_s / ROUND_SHARE per phase (before adapting)
ROUND_MIN_CALLS = 3
PROFILED_CALLS = 5  # profiled calls per phase (CUDA: per round, for the device time)
CPU_PROFILED_CALLS = 3  # CPU: once, for the operator counts and the time inside operators


def _phases(closures: TimedClosures) -> dict[str, Callable[[], object]]:
    if closures.own_phases is not None:
        return {phase: closures.own_phases[phase] for phase in PHASES}
    forward = closures.forward
    return {"fwd": forward, "bwd": closures.backward_of(forward()),
            "fwd+bwd": closures.forward_backward}  # fmt: skip


def _profile(task, closures: TimedClosures, device) -> dict[str, Any]:
    """What one round does not time: kernels, the share of host time inside torch operators,
    CUDA graph replays, memory, energy and the optional Chrome trace."""
    if closures.own_phases is not None:
        return _profile_outside_torch(task, closures, device)
    name, repeat_s = task["impl"], task["repeat_s"]
    phases = _phases(closures)
    graph_timings = {}
    if task.get("cuda_graph") and device.type == "cuda":
        for phase, closure in phases.items():
            replay = cuda_graph_replay(closure, device)
            graph_timings[phase] = (
                {"unavailable_reason": replay}
                if isinstance(replay, str)
                else measure(replay, device=device, label=f"{name} {phase} (CUDA graph)",
                             repeat_s=repeat_s).as_dict()
            )  # fmt: skip
    trace_path = None
    if task.get("trace_dir"):
        trace_name = f"{name}_T{task['T']}_N{task['N']}_{task['dtype']}.json"
        trace_path = Path(task["trace_dir"]) / trace_name
    calls = PROFILED_CALLS if device.type == "cuda" else CPU_PROFILED_CALLS
    profiled = profile_phases(phases, device, label=name, calls=calls,
                              before=cache_flusher(device), trace_path=trace_path)  # fmt: skip
    op_fraction = {
        phase: statistics.median(op / span for op, span in zip(
            profiled.op_s[phase], profiled.span_s[phase], strict=True) if span > 0)
        for phase in phases
    }  # fmt: skip
    energy = _energy(task, closures, device)
    return dict(
        op_fraction=op_fraction,
        graph_timings=graph_timings,
        kernels_per_fwd_bwd=int(statistics.median(profiled.kernels["fwd+bwd"])),
        kernel_kind=profiled.kernel_kind,
        peak_bytes=_peak_bytes(closures.forward_backward, device, profiled.peak_bytes),
        saved_bytes=saved_for_backward_bytes(closures.forward, exclude=closures.x),
        trace=profiled.trace_path,
        energy=energy.as_dict(),
    )


def _energy(task, closures: TimedClosures, device) -> EnergyMeasurement:
    """Energy per fwd+bwd of the timed build, or why it was not measured."""
    if not task.get("energy", True):
        return EnergyMeasurement.unavailable("n/a: not measured (--no-energy)")
    label = f"{task['impl']} fwd+bwd"
    return measure_energy(closures.forward_backward, device=device, label=label)


def _profile_outside_torch(task, closures: TimedClosures, device) -> dict[str, Any]:
    """The profile of a build that runs in its own runtime: torch's profiler, allocator and
    saved tensors see none of its work, so kernels, memory and the host's share inside torch
    operators are not measured (and said so); energy is measured like any row's."""
    energy = _energy(task, closures, device)
    graphs = {}
    if task.get("cuda_graph") and device.type == "cuda":
        graphs = {phase: {"unavailable_reason": OUTSIDE_TORCH} for phase in PHASES}
    return dict(
        op_fraction={},
        graph_timings=graphs,
        kernels_per_fwd_bwd=None,
        kernel_kind=OUTSIDE_TORCH,
        peak_bytes=None,
        saved_bytes=None,
        trace=None,
        energy=energy.as_dict(),
    )


def _peak_bytes(forward_backward, device: torch.device, profiled_peak: int | None) -> int | None:
    """Peak memory of one fwd+bwd above what was allocated before it: the CUDA allocator's
    statistics (reset first) on GPU, the profiler's allocator events on CPU."""
    if device.type != "cuda":
        return profiled_peak
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    forward_backward()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def host_memory_note(keep: bool) -> str:
    """The run's note on the host allocator (applying the setting in this process when kept)."""
    if not keep:
        return (
            "host allocator: glibc defaults, as the frameworks' users run them "
            "(--keep-host-memory keeps freed memory in the heap instead)"
        )
    return (
        f"{device_facts.keep_host_memory()} (--keep-host-memory; it does not speed every "
        "framework alike: benchmarks/host_allocator.py)"
    )


def run_compare(
    request: CompareRequest,
    *,
    environment: dict[str, Any],
    status: Callable[[str], contextlib.AbstractContextManager] = lambda _: contextlib.nullcontext(),
    on_run: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """Every neuron on every (T, N, dtype) case; returns the results document.

    Per case, every neuron's worker is started in turn (its verdict and builds); the workers
    then stay alive for ``request.rounds`` rounds of timings, each in a rotated order, and a
    profile. ``on_run`` is called with each finished case (for display); Ctrl-C stops the
    sweep and the document keeps the rows finished so far, with ``interrupted`` set.
    """
    device = torch.device(request.device)
    notes = [
        host_memory_note(request.keep_host_memory),
        f"rounds: {request.rounds} per implementation, interleaved, order rotated",
    ]
    with status("measuring copy bandwidth and the machine's noise"):
        copy_bandwidth = device_facts.copy_bandwidth(device)
        noise = device_facts.noise_floor(device)
    document = schema.new_document("compare", environment)
    document.update(
        config=request.config.as_dict(),
        copy_bandwidth_gb_per_s=copy_bandwidth / 1e9,
        noise_probe=noise,
        notes=notes,
        interrupted=False,
        runs=[],
    )
    try:
        for case in request.cases():
            run: dict[str, Any] = {
                "case": case,
                "device": environment["device"],
                "copy_bandwidth_gb_per_s": copy_bandwidth / 1e9,
                "rows": [],
            }
            document["runs"].append(run)
            sessions: dict[str, WorkerSession] = {}
            try:
                _start(request, case, run, sessions, status)
                for number in range(1, request.rounds + 1):
                    _round(request, case, run, sessions, number, status)
                _profile_all(request, case, run, sessions, status)
            finally:
                for session in sessions.values():
                    session.close()
                spreads = [noise["spread"], *(p["spread"] for p in run.get("noise_rounds", []))]
                run["noise_spread"] = statistics.median(spreads)
                run["spread_limit"] = spread_limit(run["noise_spread"])
                for row in run["rows"]:
                    pool(row, run["noise_spread"])
            add_bandwidth_and_speedup(run, copy_bandwidth, request.baseline)
            on_run(run)
    except KeyboardInterrupt:
        document["interrupted"] = True
        notes.append("interrupted: the rows finished so far are reported")
        if document["runs"] and not document["runs"][-1]["rows"]:
            document["runs"].pop()
        elif document["runs"]:
            add_bandwidth_and_speedup(document["runs"][-1], copy_bandwidth, request.baseline)
    return document


SETUP_PARALLEL = 2  # workers checking at once (nothing is timed while they check)


def _start(request, case, run, sessions, status) -> None:
    """Every neuron's worker: its verdict and builds, a few workers at a time (checking is not
    timed); timeable rows keep their worker for the rounds."""
    device = torch.device(request.device)
    rows: list[dict[str, Any] | None] = []
    pending: collections.deque = collections.deque()
    parallel = max(1, min(SETUP_PARALLEL, os.cpu_count() or 1))

    def finish() -> None:
        index, impl, session, started = pending.popleft()
        with status(f"T={case['T']} N={case['N']:,} {case['dtype']}: checking {impl}"):
            row = session.receive_first(request.timeout_s)
        row["wall_s"] = {"check": time.monotonic() - started}
        if row.pop("timeable", False):
            sessions[impl] = session
            row["rounds"] = []
        else:
            session.close()
        rows[index] = row

    try:
        for impl in request.impls:
            # a row that cannot run here needs no worker (unless another interpreter,
            # --python, is to run it)
            python = request.pythons.get(impl)
            rows.append(None if python else check.unavailable_row(impl, device, quick=True))
            if rows[-1] is None:
                session = WorkerSession(request.task(case, impl), python=python,
                                        timeout_s=request.timeout_s, wait=False)  # fmt: skip
                pending.append((len(rows) - 1, impl, session, time.monotonic()))
                if len(pending) >= parallel:
                    finish()
        while pending:
            finish()
    finally:
        for _, _, session, _ in pending:  # interrupted: no worker outlives the run
            session.close()
    for impl, row in zip(request.impls, rows, strict=True):
        row.setdefault("impl", impl)
        row.setdefault("verdict", row.get("status", "error"))
        if request.pythons.get(impl):
            row["python"] = request.pythons[impl]
        run["rows"].append(row)


def _round(request, case, run, sessions, number: int, status) -> None:
    """Round ``number`` of timings of every live worker, the order rotated by one each round."""
    rows = {row["impl"]: row for row in run["rows"]}
    order = [impl for impl in request.impls if impl in sessions]
    if order:  # the same fixed work each round: did the machine itself change between rounds?
        probe = device_facts.noise_floor(torch.device(request.device), repeat_s=NOISE_ROUND_S)
        run.setdefault("noise_rounds", []).append(probe)
        run.setdefault("noise_rounds_s", []).append(probe["median_s"])
    shift = (number - 1) % len(order) if order else 0
    for impl in order[shift:] + order[:shift]:
        label = f"{impl}: T={case['T']} N={case['N']:,} {case['dtype']}: round {number}"
        started = time.monotonic()
        with status(label):
            reply = sessions[impl].request({"command": "round", "round": number},
                                           timeout_s=request.timeout_s)  # fmt: skip
        rows[impl]["wall_s"].setdefault("rounds", []).append(time.monotonic() - started)
        if "round" in reply:
            rows[impl]["rounds"].append(reply["round"])
        else:
            _lost(rows[impl], sessions, f"round {number}", reply)


def _profile_all(request, case, run, sessions, status) -> None:
    for row in run["rows"]:
        if row["impl"] not in sessions:
            continue
        with status(f"{row['impl']}: T={case['T']} N={case['N']:,} {case['dtype']}: profiling"):
            started = time.monotonic()
            reply = sessions[row["impl"]].request({"command": "profile"},
                                                  timeout_s=request.timeout_s)  # fmt: skip
            row["wall_s"]["profile"] = time.monotonic() - started
        if "profile" in reply:
            row.update(reply["profile"])
        else:
            _lost(row, sessions, "profile", reply)


def _lost(row, sessions, what: str, reply: dict[str, Any]) -> None:
    """A request that failed: said on the row; a worker that died takes no more requests."""
    reason = reply.get("error") or reply.get("reason", "no result")
    row.setdefault("round_errors", []).append(f"{what}: {reason}")
    if not sessions[row["impl"]].alive:
        sessions.pop(row["impl"]).close()


def pool(row: dict[str, Any], noise: float | None = None) -> None:
    """A row's rounds become its pooled timings (:func:`pool_rounds`); on CPU each phase also
    gets the share of its host time spent inside torch operators."""
    rounds = row.pop("rounds", None)
    if not rounds:
        if rounds is not None:  # timeable, but no round came back
            row["error"] = "; ".join(row.get("round_errors", [])) or "no round of timings"
        return
    row["timings"] = {phase: pool_rounds([r[phase] for r in rounds], noise) for phase in PHASES}
    row["rounds"] = len(rounds)
    for phase, fraction in (row.pop("op_fraction", None) or {}).items():
        if row["timings"][phase].get("device_source") == "host clock":
            row["timings"][phase]["op_fraction"] = fraction
