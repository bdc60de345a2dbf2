"""What a compare worker does for one implementation: check it, bind its timed build to the
timed input, then serve the parent's requests.

In the worker, before anything is timed: the verdict on two check inputs, the checking build
against the oracle on sampled neurons of the timed input itself, and the timed build against
the checking build on that input (:mod:`kernelprof.runs.check`); the first reply is the
:class:`~kernelprof.results.check.CheckedBuild`. A timeable build then keeps its worker, which
serves ``{"command": "round", "round": r}`` (one round: each phase timed by the one timing
harness, a :class:`~kernelprof.results.compare.RoundTiming` per phase; round 1 first warms each
phase up until its call time is steady) and ``{"command": "profile"}`` (kernels, memory,
energy, the optional trace and CUDA graph replays: a :class:`~kernelprof.results.compare.Profile`).
Only the timed build is ever timed: what the framework's users write to get spikes, with the
input already in the layout they hold it in (:class:`~kernelprof.frameworks.base.TimedBuild`).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from kernelprof.harness import device as device_facts
from kernelprof.harness.energy import measure_energy
from kernelprof.harness.profiling import (
    prepared,
    profile_phases,
    saved_for_backward_bytes,
    warm_up_profiler,
)
from kernelprof.harness.timer import (
    CudaEventTimer,
    HostTimer,
    cache_flusher,
    cuda_graph_replay,
    measure,
)
from kernelprof.harness.warmup import warm_up
from kernelprof.harness.worker import Session
from kernelprof.results.compare import PHASES, GraphTiming, Profile, RoundTiming
from kernelprof.results.energy import EnergyMeasurement
from kernelprof.results.record import decode, encode
from kernelprof.runs import check
from kernelprof.runs.check import ImplementationTask

FUNCTION = "kernelprof.runs.compare.worker:measure_implementation"
CHECK_NEURONS = 2**16  # neurons compared with the float64 oracle before timing
ROUND_SHARE = 3  # each round times for repeat_s / ROUND_SHARE per phase (before adapting)
ROUND_MIN_CALLS = 3
PROFILED_CALLS = 5  # profiled calls per phase (CUDA: per round, for the device time)
CPU_PROFILED_CALLS = 3  # CPU: once, for the operator counts and the time inside operators
# Round 1 warms each phase up until two windows of calls agree within max(WARM_UP_FLOOR, the
# noise probe's spread), at most WARM_UP_MAX_CALLS or WARM_UP_MAX_S (benchmarks/warmup.py: on
# the 2-core VM 10-20 calls a phase, 21-30 s a compare run; the first call alone is slower in a
# fresh worker, and a round-1 slowdown comes from page faults on memory the VM's host has to
# back, which this removes in most rows).
WARM_UP_FLOOR = 0.10
WARM_UP_WINDOW = 5
WARM_UP_MAX_CALLS = 40
WARM_UP_MAX_S = 5.0
OUTSIDE_TORCH = "not seen: the framework's own runtime does the work, invisible to torch"


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

    def phases(self) -> dict[str, Callable[[], object]]:
        """fwd, bwd (the graph of one forward, replayed with retain_graph) and fwd+bwd.

        bwd's graph is made again after any other phase's forward: a framework may reset, in
        place, the states that graph saved (Sinabs' ``reset_states`` zeroes and detaches its
        state buffers, the last step's current among the saved tensors). Its ``prepare()``
        makes it outside a timed or profiled call; a call that finds it gone makes it first."""
        if self.own_phases is not None:
            return {phase: self.own_phases[phase] for phase in PHASES}
        graph: list[torch.Tensor] = []  # the spikes bwd replays; emptied by any other forward

        def forward() -> torch.Tensor:
            graph.clear()
            return self.forward()

        def forward_backward():
            graph.clear()
            return self.forward_backward()

        def prepare() -> None:
            if not graph:
                graph.append(self.forward())

        def backward():
            prepare()
            return torch.autograd.grad(graph[0], self.x, self.grad, retain_graph=True)

        backward.prepare = prepare
        return {"fwd": forward, "bwd": backward, "fwd+bwd": forward_backward}


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


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip().splitlines()[0]


def measure_implementation(data: dict[str, Any]) -> dict[str, Any] | Session:
    """Runs in a worker: the verdict and the agreement of the builds, then the timed build bound
    to the timed input; a timeable build keeps its worker for the rounds and the profile."""
    task = decode(ImplementationTask, data)
    if task.keep_host_memory:
        device_facts.keep_host_memory()
    checked, build = check.prepare(task)
    if build is None:
        return encode(checked)
    checked = check.judge(checked, build, task, min(task.N, CHECK_NEURONS))
    x = task.input(task.N, task.seed)
    try:
        checked = check.recheck_on(checked, build, x, task)
        checked = check.compare_builds(checked, build, x, task)
        if not checked.timed_build.agrees:
            return encode(checked)  # no timing without a timed build known to compute it
        closures = timed_closures(build.timed, x, task.seed)
        del x
    except (RuntimeError, torch.cuda.OutOfMemoryError) as error:  # keeps the verdict
        return encode(replace(checked, error=_one_line(error)))
    checked = replace(checked, path=check.detected_path(build), timeable=True)
    warm_up_profiler()  # here, while checking: its first start costs seconds
    return Session(encode(checked), TimingWorker(task, closures).handle)


class TimingWorker:
    """The rounds and the profile of one timeable build, in its worker."""

    def __init__(self, task: ImplementationTask, closures: TimedClosures) -> None:
        self.task, self.closures = task, closures
        self.device = task.torch_device

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        command = message.get("command")
        try:
            if command == "round":
                number = message.get("round", 1)
                # the round being timed, for the code in this worker to see (tests plant drift)
                os.environ["KERNELPROF_ROUND"] = str(number)
                return {
                    "round": {
                        phase: encode(timing) for phase, timing in self.time_round(number).items()
                    }
                }
            if command == "profile":
                return {"profile": encode(self.profile())}
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            return {"error": _one_line(error)}
        raise ValueError(f"unknown request {message!r}")

    def time_round(self, number: int) -> dict[str, RoundTiming]:
        """One round: every phase timed by the harness. In round 1 each phase's first call is
        timed apart (it holds compilation), then the phase is called until its time is steady
        (:func:`~kernelprof.harness.warmup.warm_up`); every later round starts with one untimed
        call, since the other workers ran in between. On CUDA each phase is also profiled for
        its device time (the summed durations of the kernels each call launched)."""
        name, repeat_s = self.task.impl, self.task.repeat_s / ROUND_SHARE
        phases = self.closures.phases()
        timings: dict[str, RoundTiming] = {}
        for phase, closure in phases.items():
            prepared(closure)
            started = time.time()
            first_call_s, settled = None, None
            if number == 1:
                first_call_s, settled = self._settle(closure)
            call = measure(closure, device=self.device, label=f"{name} {phase}",
                           repeat_s=repeat_s, warmup_s=0.0, min_warmup_calls=0,
                           min_calls=ROUND_MIN_CALLS, first_call=False)  # fmt: skip
            call = replace(call, first_call_s=first_call_s)
            timings[phase] = RoundTiming(round=number, started_at=started, call=call, device=call,
                                         device_source="host clock", launch_s=call.median_s,
                                         warm_up=settled)  # fmt: skip
        if self.device.type == "cuda" and self.closures.own_phases is None:
            timings = self._device_times(phases, timings)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # idle between rounds: hand back what the allocator cached
        return timings

    def _settle(self, closure: Callable[[], object]):
        """The first call timed apart, then calls until the time is steady."""
        timer = (
            CudaEventTimer(self.device) if self.device.type == "cuda" else HostTimer(self.device)
        )
        flush = cache_flusher(self.device)
        (first_call_s,) = timer.time_calls(closure, 1, flush)
        tolerance = max(WARM_UP_FLOOR, self.task.noise_spread or 0.0)
        settled = warm_up(closure, tolerance=tolerance, window=WARM_UP_WINDOW,
                          max_calls=WARM_UP_MAX_CALLS, max_s=WARM_UP_MAX_S,
                          time_call=lambda fn: timer.time_calls(fn, 1, flush)[0])  # fmt: skip
        return first_call_s, settled

    def _device_times(self, phases, timings: dict[str, RoundTiming]) -> dict[str, RoundTiming]:
        """CUDA: each phase's device time per call, from the kernels the profiler saw."""
        profiled = profile_phases(phases, self.device, label=self.task.impl, calls=PROFILED_CALLS,
                                  before=cache_flusher(self.device))  # fmt: skip
        result = {}
        for phase, timing in timings.items():
            device = replace(timing.call, samples_s=tuple(profiled.device_s[phase]),
                             label=f"{timing.call.label} (kernels)")  # fmt: skip
            result[phase] = replace(timing, device=device, device_source="kernels",
                                    launch_s=timing.call.host_launch_median_s or 0.0)  # fmt: skip
        return result

    def profile(self) -> Profile:
        """What a round does not time: kernels, the share of host time inside torch operators,
        CUDA graph replays, memory, energy and the optional Chrome trace."""
        if self.closures.own_phases is not None:
            return self._profile_outside_torch()
        task, device = self.task, self.device
        phases = self.closures.phases()
        trace_path = None
        if task.trace_dir:
            trace_path = Path(task.trace_dir) / f"{task.impl}_T{task.T}_N{task.N}_{task.dtype}.json"
        calls = PROFILED_CALLS if device.type == "cuda" else CPU_PROFILED_CALLS
        profiled = profile_phases(phases, device, label=task.impl, calls=calls,
                                  before=cache_flusher(device), trace_path=trace_path)  # fmt: skip
        op_fraction = {
            phase: statistics.median(op / span for op, span in zip(
                profiled.op_s[phase], profiled.span_s[phase], strict=True) if span > 0)
            for phase in phases
        }  # fmt: skip
        return Profile(
            kernels_per_fwd_bwd=int(statistics.median(profiled.kernels["fwd+bwd"])),
            kernel_kind=profiled.kernel_kind,
            peak_bytes=_peak_bytes(self.closures.forward_backward, device, profiled.peak_bytes),
            saved_bytes=saved_for_backward_bytes(self.closures.forward, exclude=self.closures.x),
            energy=self._energy(),
            op_fraction=op_fraction,
            graph_timings=self._graph_timings(phases),
            trace=profiled.trace_path,
        )

    def _graph_timings(self, phases) -> dict[str, GraphTiming]:
        if not (self.task.cuda_graph and self.device.type == "cuda"):
            return {}
        timings = {}
        for phase, closure in phases.items():
            replay = cuda_graph_replay(prepared(closure), self.device)
            if isinstance(replay, str):
                timings[phase] = GraphTiming(unavailable_reason=replay)
                continue
            measured = measure(replay, device=self.device, repeat_s=self.task.repeat_s,
                               label=f"{self.task.impl} {phase} (CUDA graph)")  # fmt: skip
            timings[phase] = GraphTiming(measurement=measured)
        return timings

    def _energy(self) -> EnergyMeasurement:
        """Energy per fwd+bwd of the timed build, or why it was not measured."""
        if not self.task.energy:
            return EnergyMeasurement.unavailable("n/a: not measured (--no-energy)")
        return measure_energy(self.closures.forward_backward, device=self.device,
                              label=f"{self.task.impl} fwd+bwd")  # fmt: skip

    def _profile_outside_torch(self) -> Profile:
        """A build that runs in its own runtime: torch's profiler, allocator and saved tensors
        see none of its work, so kernels, memory and the host's share inside torch operators
        are not measured (and said so); energy is measured like any row's."""
        graphs = {}
        if self.task.cuda_graph and self.device.type == "cuda":
            graphs = {phase: GraphTiming(unavailable_reason=OUTSIDE_TORCH) for phase in PHASES}
        return Profile(kernels_per_fwd_bwd=None, kernel_kind=OUTSIDE_TORCH, peak_bytes=None,
                       saved_bytes=None, energy=self._energy(), graph_timings=graphs)  # fmt: skip


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
