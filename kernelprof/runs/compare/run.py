"""``kernelprof compare``'s parent: every implementation checked, then its timed build measured
side by side, case by case.

For each case (T, N, dtype), every implementation's worker is started (a few at a time: checking
is never timed; :mod:`kernelprof.runs.compare.worker`), and those whose timed build may be timed
stay alive for ``rounds`` interleaved rounds of timings, one worker at a time, the order rotated
each round, so that a machine's drift lands on every row alike; a fixed noise probe is timed
before each round. Last, each worker profiles its build once. The rows are then pooled and
analysed (:mod:`kernelprof.results.analysis`) into a
:class:`~kernelprof.results.compare.CompareCase`. Nothing here formats output.
"""

from __future__ import annotations

import collections
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from kernelprof.harness import device as device_facts
from kernelprof.harness.worker import WorkerSession
from kernelprof.requests import RequestError
from kernelprof.results import analysis
from kernelprof.results.check import CheckedBuild
from kernelprof.results.compare import (
    PHASES,
    Case,
    CompareCase,
    CompareDocument,
    MeasuredRow,
    NoiseProbe,
    PhaseTiming,
    Profile,
    RoundTiming,
    WallTimes,
)
from kernelprof.results.document import Environment
from kernelprof.results.record import decode, encode
from kernelprof.runs import check
from kernelprof.runs import preflight as machine
from kernelprof.runs.check import ImplementationTask
from kernelprof.runs.compare.worker import FUNCTION

NOISE_ROUND_S = 0.2  # the noise probe before each round
SETUP_PARALLEL = 2  # workers checking at once (nothing is timed while they check)
Status = Callable[[str], contextlib.AbstractContextManager]


def _no_status(_: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def preflight(request) -> None:
    """What must hold on this machine before anything starts (RequestError in one line): the
    interpreters of --python run, each case's tensors fit the device's memory, and at least one
    implementation can run here."""
    machine.interpreters(request.python)
    machine.case_memory(request.cases, request.device)
    refused = {impl: check.unavailable(impl, request.device, quick=True)
               for impl in request.impls if impl not in request.python}  # fmt: skip
    if all(refused.get(impl) is not None for impl in request.impls):
        reasons = "; ".join(
            f"{impl}: {found.verdict}: {found.reason}" for impl, found in refused.items()
        )
        raise RequestError(f"nothing to compare on {request.device}: {reasons}")


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
    request,
    *,
    environment: Environment,
    notes: tuple[str, ...] = (),
    status: Status = _no_status,
    on_case: Callable[[CompareCase], None] = lambda _: None,
) -> CompareDocument:
    """Every implementation of ``request`` (a :class:`~kernelprof.requests.CompareRequest`) on
    every case; ``on_case`` gets each analysed case as it finishes (for display). Ctrl-C stops
    the sweep; the document keeps the rows finished so far and says it was interrupted."""
    device = torch.device(request.device)
    with status("measuring copy bandwidth and the machine's noise"):
        copy_bandwidth = device_facts.copy_bandwidth(device)
        noise = device_facts.noise_floor(device)
    notes = (
        *notes,
        host_memory_note(request.keep_host_memory),
        f"rounds: {request.rounds} per implementation, interleaved, order rotated",
    )
    cases: list[CompareCase] = []
    interrupted = False
    for case in request.cases:
        run = CaseRun(request, case, environment, copy_bandwidth, noise, status)
        try:
            run.measure()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            run.close()
        if run.checked:
            cases.append(run.result())
            on_case(cases[-1])
        if interrupted:
            notes = (*notes, "interrupted: the rows finished so far are reported")
            break
    return CompareDocument(environment=environment, config=request.config,
                           copy_bandwidth_gb_per_s=copy_bandwidth / 1e9, noise_probe=noise,
                           rounds=request.rounds, repeat_s=request.repeat_s, cases=tuple(cases),
                           notes=notes, interrupted=interrupted)  # fmt: skip


class CaseRun:
    """One case being measured: the workers, what each has answered so far, and the noise
    probes. Its state is the run's own; :meth:`result` makes the case's records from it."""

    def __init__(self, request, case: Case, environment: Environment, copy_bandwidth: float,
                 noise: NoiseProbe, status: Status) -> None:  # fmt: skip
        self.request, self.case, self.status = request, case, status
        self.environment, self.copy_bandwidth, self.noise = environment, copy_bandwidth, noise
        self.checked: dict[str, CheckedBuild] = {}
        self.sessions: dict[str, WorkerSession] = {}
        self.rounds: dict[str, list[dict[str, RoundTiming]]] = {}
        self.profiles: dict[str, Profile] = {}
        self.walls: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, list[str]] = collections.defaultdict(list)
        self.probes: list[NoiseProbe] = []

    def task(self, impl: str) -> ImplementationTask:
        request, case = self.request, self.case
        return ImplementationTask(
            function=FUNCTION, impl=impl, config=request.config_for(case.neuron), T=case.T,
            N=case.N,
            dtype=case.dtype, device=request.device, seed=request.seed,
            repeat_s=request.repeat_s, noise_spread=self.noise.spread,
            trace_dir=None if request.trace_dir is None else str(request.trace_dir),
            energy=not request.no_energy, cuda_graph=request.cuda_graph,
            keep_host_memory=request.keep_host_memory,
        )  # fmt: skip

    def measure(self) -> None:
        self.start()
        for number in range(1, self.request.rounds + 1):
            self.round(number)
        self.profile()

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()

    def start(self) -> None:
        """Every implementation's worker: its verdict and builds, a few workers at a time
        (checking is not timed); timeable ones keep their worker for the rounds."""
        pending: collections.deque = collections.deque()
        parallel = max(1, min(SETUP_PARALLEL, os.cpu_count() or 1))
        try:
            for impl in self.request.impls:
                python = self.request.python.get(impl)
                # no worker for what cannot run here (unless another interpreter is to run it)
                found = None if python else check.unavailable(impl, self.request.device,
                                                               quick=True)  # fmt: skip
                if found is not None:
                    self.checked[impl] = found
                    continue
                session = WorkerSession(encode(self.task(impl)), python=python,
                                        timeout_s=self.request.timeout, wait=False)  # fmt: skip
                pending.append((impl, session, time.monotonic()))
                if len(pending) >= parallel:
                    self._finish(*pending.popleft())
            while pending:
                self._finish(*pending.popleft())
        finally:
            for _, session, _ in pending:  # interrupted: no worker outlives the run
                session.close()

    def _finish(self, impl: str, session: WorkerSession, started: float) -> None:
        with self.status(f"{self.case.label}: checking {impl}"):
            reply = session.receive_first(self.request.timeout)
        checked = check.received(impl, reply)
        python = self.request.python.get(impl)
        self.checked[impl] = checked if python is None else replace(checked, python=python)
        self.walls[impl] = {"check_s": time.monotonic() - started, "rounds_s": []}
        if checked.timeable:
            self.sessions[impl] = session
            self.rounds[impl] = []
        else:
            session.close()

    def round(self, number: int) -> None:
        """Round ``number`` of every live worker, the order rotated by one each round."""
        order = [impl for impl in self.request.impls if impl in self.sessions]
        if not order:
            return
        # the same fixed work each round: did the machine itself change between rounds?
        self.probes.append(device_facts.noise_floor(torch.device(self.request.device),
                                                    repeat_s=NOISE_ROUND_S))  # fmt: skip
        shift = (number - 1) % len(order)
        for impl in order[shift:] + order[:shift]:
            started = time.monotonic()
            with self.status(f"{impl}: {self.case.label}: round {number}"):
                reply = self.sessions[impl].request({"command": "round", "round": number},
                                                    timeout_s=self.request.timeout)  # fmt: skip
            self.walls[impl]["rounds_s"].append(time.monotonic() - started)
            if "round" in reply:
                self.rounds[impl].append({phase: decode(RoundTiming, timing)
                                          for phase, timing in reply["round"].items()})  # fmt: skip
            else:
                self._lost(impl, f"round {number}", reply)

    def profile(self) -> None:
        for impl in [impl for impl in self.request.impls if impl in self.sessions]:
            with self.status(f"{impl}: {self.case.label}: profiling"):
                started = time.monotonic()
                reply = self.sessions[impl].request({"command": "profile"},
                                                    timeout_s=self.request.timeout)  # fmt: skip
                self.walls[impl]["profile_s"] = time.monotonic() - started
            if "profile" in reply:
                self.profiles[impl] = decode(Profile, reply["profile"])
            else:
                self._lost(impl, "profile", reply)

    def _lost(self, impl: str, what: str, reply: dict[str, Any]) -> None:
        """A request that failed: said on the row; a worker that died takes no more."""
        self.errors[impl].append(
            f"{what}: {reply.get('error') or reply.get('reason', 'no result')}"
        )
        if not self.sessions[impl].alive:
            self.sessions.pop(impl).close()

    def measured(self, impl: str) -> MeasuredRow:
        """One implementation's record: its rounds pooled per phase (with, on CPU, the share of
        each phase's host time inside torch operators, from its profile)."""
        rounds, profile = self.rounds.get(impl), self.profiles.get(impl)
        timings = None
        if rounds:
            fractions = profile.op_fraction if profile is not None else {}
            timings = {phase: PhaseTiming(
                rounds=tuple(r[phase] for r in rounds),
                op_fraction=fractions.get(phase) if rounds[0][phase].device_source == "host clock"
                else None) for phase in PHASES}  # fmt: skip
        errors = list(self.errors.get(impl, []))
        if rounds is not None and not rounds and not errors:
            errors.append("no round of timings came back")
        wall = self.walls.get(impl)
        return MeasuredRow(
            checked=self.checked[impl], timings=timings, profile=profile,
            wall=None if wall is None else WallTimes(check_s=wall["check_s"],
                                                     rounds_s=tuple(wall["rounds_s"]),
                                                     profile_s=wall.get("profile_s")),
            errors=tuple(errors),
        )  # fmt: skip

    def result(self) -> CompareCase:
        rows = [self.measured(impl) for impl in self.request.impls if impl in self.checked]
        noise_spread = statistics.median([self.noise.spread, *(p.spread for p in self.probes)])
        return analysis.compare_case(
            self.case, self.environment.device, rows, copy_bandwidth=self.copy_bandwidth,
            baseline=self.request.baseline, noise_rounds=tuple(self.probes),
            noise_spread=noise_spread, config=self.request.config_for(self.case.neuron),
        )  # fmt: skip
