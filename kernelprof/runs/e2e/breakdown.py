"""The step breakdown of e2e training, read from profiler traces of a few extra steps.

Nothing inside a step synchronises: the device is synchronised once, at the end of each step,
as in the plain steps. Each step is a range ``kernelprof/step``; the phases (data loading,
host-to-device copy, forward, loss, backward, optimizer) and every categorised layer's forward
(its ``forward`` wrapped) are ranges ``kernelprof/<label>`` that also note the autograd sequence
numbers taken while they were open, so that the backward nodes in the trace (which carry their
forward op's sequence number) are charged to the layer that created them. The attribution itself is
:mod:`kernelprof.traces.steps`, the same code ``kernelprof trace diff`` runs.

Two traces:

* the *breakdown* trace (``BREAKDOWN_ROUNDS`` steps) records only ranges and autograd nodes on
  the host (plus all GPU activity): its categories are the breakdown, and each of its steps is
  held to the plain step next to it: flagged when the median ratio's 95 % interval lies wholly
  beyond 5 %;
* the *operations* trace (``OPERATION_STEPS`` steps) records every operator: the named
  operations behind each category (counts are exact; times carry the profiler's cost of about
  1 us per operator on the 2-core CPU, 10-30 % of a step, which is why the categories come
  from the other trace).

Both alternate with plain steps, one profiled step per profiler session (sessions start and
stop in about 1 ms): see BREAKDOWN_ROUNDS.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kernelprof.frameworks.networks import SpikingNetwork
from kernelprof.harness.profiling import (
    StepProfile,
    range_enter,
    range_exit,
    sequence_counter,
    warm_up_profiler,
)
from kernelprof.harness.timer import minor_faults, synchronize
from kernelprof.results.analysis import median_interval
from kernelprof.results.e2e import StepAttribution, StepBreakdown
from kernelprof.results.record import decode
from kernelprof.traces import steps as trace_steps
from kernelprof.traces.timeline import Timeline

# A plain step and a profiled one (in a session of its own, after an unrecorded first step)
# alternate, ABBA: this machine's step times drift by 20-50 % over a fraction of a second, so
# blocks of several steps each compared drift, not the profiler (measured: block medians 8-21 %
# apart either way; profiler sessions start and stop in about 1 ms). Even paired, one step's
# ratio scatters by 10-15 % here: 24 pairs put the median's 95 % interval at about +-5 %.
BREAKDOWN_ROUNDS = 24
STEPS_PER_ROUND = 1
OPERATION_STEPS = 8  # rounds of the operations trace, alternating the same way
ADD_UP_TOLERANCE = 0.05


class StepRanges:
    """While entered: every categorised layer's forward is a range ``kernelprof/<category>
    fwd``; :meth:`phase` opens the others. ``calls`` holds [name, first, end] sequence numbers
    of every range, in the order they were opened."""

    def __init__(self, network: SpikingNetwork, calls: list[list] | None = None) -> None:
        self.network = network
        self.calls: list[list] = [] if calls is None else calls
        self._wrapped = Replaced()
        self._sequence = sequence_counter()

    # A framework that loops over time calls its layers T times a step (snnTorch: 53 calls),
    # so a layer's range costs as little as it can: its ``forward`` is wrapped (an instance
    # attribute, removed on exit) rather than hooked. Measured on snnTorch's CNN, 120 steps
    # interleaved, profiler off: a pre- and a post-hook per call made the step 4-6 % longer,
    # the wrapper 1-4 %, a wrapper doing nothing 0-1 %.
    def _wrap(self, module: nn.Module, name: str) -> None:
        forward, calls, sequence = module.forward, self.calls, self._sequence

        def ranged(*args, **kwargs):
            record = [name, sequence(), None]
            calls.append(record)
            handle = range_enter(name)
            try:
                return forward(*args, **kwargs)
            finally:
                range_exit(handle)
                record[2] = sequence()

        self._wrapped.set(module, "forward", ranged)

    def phase(self, label: str) -> _Range:
        """``with ranges.phase(label):`` -- a range ``kernelprof/<label>``."""
        return _Range(self, trace_steps.PREFIX + label)

    def __enter__(self) -> StepRanges:
        seen: set[int] = set()
        for category, module in self.network.layers:
            if id(module) not in seen:  # a layer listed twice gets one range, not two nested
                seen.add(id(module))
                self._wrap(module, f"{trace_steps.PREFIX}{category} fwd")
        return self

    def __exit__(self, *exc) -> None:
        self._wrapped.restore()


_ABSENT = object()


class Replaced:
    """Attributes set for a while and put back: an instance's ``forward`` or ``step``, a
    class's method. What was there is restored, or the attribute removed where the object had
    none of its own (an instance attribute shadowing its class's)."""

    def __init__(self) -> None:
        self.saved: list[tuple[object, str, object]] = []

    def set(self, owner: object, attribute: str, value: object) -> None:
        previous = owner.__dict__.get(attribute, _ABSENT)
        setattr(owner, attribute, value)  # first: an owner that refuses it is not saved
        self.saved.append((owner, attribute, previous))

    def restore(self) -> None:
        for owner, attribute, previous in reversed(self.saved):
            if previous is _ABSENT:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, previous)
        self.saved = []


class _Range:
    """One range of :class:`StepRanges`, as a context manager (a class: cheaper than
    ``contextlib.contextmanager``'s generator)."""

    __slots__ = ("ranges", "name", "record", "handle")

    def __init__(self, ranges: StepRanges, name: str) -> None:
        self.ranges, self.name = ranges, name

    def __enter__(self) -> _Range:
        self.record = [self.name, self.ranges._sequence(), None]
        self.ranges.calls.append(self.record)
        self.handle = range_enter(self.name)
        return self

    def __exit__(self, *exc) -> None:
        range_exit(self.handle)
        self.record[2] = self.ranges._sequence()


def phase_of(ranges: StepRanges | None) -> Callable[[str], Any]:
    """``ranges.phase``, or a no-op for plain steps."""
    return ranges.phase if ranges is not None else (lambda label: nullcontext())


def measure(
    network: SpikingNetwork,
    run_step: Callable[[Any, StepRanges | None], object],
    next_batch: Callable[[], Any],
    device: torch.device,
    trace_dir: Path,
    name: str,
    rounds: int = BREAKDOWN_ROUNDS,
    steps: int = STEPS_PER_ROUND,
) -> StepBreakdown:
    """``rounds`` rounds of ``steps`` plain and ``steps`` profiled (breakdown) steps, the
    profiled ones first every other round, then one operations profile. The two traces go to
    ``trace_dir`` as ``<name>.json`` (the breakdown rounds merged) and ``<name>_ops.json``, and
    are attributed."""
    warm_up_profiler()
    plain: list[float] = []
    faults: list[int] = []
    profiled_faults: list[int] = []  # of the coarse trace's profiled steps

    def plain_steps() -> None:
        for _ in range(steps):
            start, faulted = time.perf_counter(), minor_faults()
            batch = next_batch()
            run_step(batch, None)
            synchronize(device)
            plain.append(time.perf_counter() - start)
            faults.append(minor_faults() - faulted)

    def alternating(count: int, coarse: bool, path: Path, step_faults: list[int] | None = None):
        """``count`` rounds of a plain and a profiled step, ABBA; the profiled sessions merged
        into one trace, attributed. Nothing is exported or parsed between the steps: megabytes
        of Python objects made and freed there would have the allocator return memory that the
        next step faults in again (seen: norse's fill_ 4x slower in six of eight steps)."""
        calls: list[list] = []
        profilers, plain_of_round = [], []
        for number in range(count):
            before = len(plain)
            if number % 2 == 0:
                plain_steps()
            profilers.append(_profiled(network, run_step, next_batch, device, steps, calls,
                                       coarse, step_faults))  # fmt: skip
            if number % 2 == 1:
                plain_steps()
            plain_of_round.append(statistics.median(plain[before:]))
        return attributed_rounds(profilers, calls, plain_of_round, steps, path)

    coarse = alternating(rounds, True, trace_dir / f"{name}.json", profiled_faults)
    detailed = alternating(OPERATION_STEPS, False, trace_dir / f"{name}_ops.json")
    return breakdown_record(coarse, detailed, plain, faults, profiled_faults)


@dataclasses.dataclass(frozen=True)
class Rounds:
    """The profiled rounds of one trace: attributed, each round's profiled step over the plain
    step beside it, and what went wrong."""

    attributed: trace_steps.Attribution
    ratios: list[float]
    problems: list[str]


def attributed_rounds(profilers: list, calls: list, plain_of_round: list[float], steps: int,
                      path: Path) -> Rounds:  # fmt: skip
    """Profiler sessions of ``steps`` ranged steps each (one per round), merged into one trace
    written to ``path`` and attributed; per round, the median profiled step over that round's
    plain step (seconds)."""
    sessions = [profiler.trace() for profiler in profilers]
    problems = [problem for profiler in profilers for problem in profiler.problems]
    attributed = _written(trace_steps.merge(sessions), calls, path)
    lengths = [step.length_us for step in attributed.steps]  # in time order: round by round
    ratios = []
    count = len(profilers)
    if len(lengths) == count * steps:
        ratios = [statistics.median(lengths[n * steps : (n + 1) * steps]) / (1e6 * plain_s)
                  for n, plain_s in enumerate(plain_of_round)]  # fmt: skip
    else:
        problems.append(f"{len(lengths)} profiled steps in the trace, {count * steps} run")
    return Rounds(attributed, ratios, sorted(set(problems)) + attributed.problems)


def breakdown_record(coarse: Rounds, detailed: Rounds, plain: list[float], faults: list[int],
                     profiled_faults: list[int]) -> StepBreakdown:  # fmt: skip
    """The breakdown of a run: the coarse trace's categories, the detailed one's operations,
    and the profiled steps held against the plain ones (seconds; ``faults``: the minor page
    faults of each, ``profiled_faults`` those of the coarse profiled steps) beside them, round
    by round,
    so that drift cancels: flagged when the profiler shows itself beyond the noise, the
    interval of the median ratio wholly outside 5 %."""
    plain_us = 1e6 * statistics.median(plain)
    profiled_us = coarse.attributed.step_us
    ratios = coarse.ratios
    ratio, low, high = median_interval(ratios) if ratios else (profiled_us / plain_us,) * 3
    overhead = (statistics.median(detailed.ratios) if detailed.ratios
                else detailed.attributed.step_us / plain_us)  # fmt: skip
    return StepBreakdown(
        coarse=attribution_record(coarse.attributed),
        detailed=attribution_record(detailed.attributed),
        plain_step_us=plain_us,
        plain_steps_us=tuple(1e6 * s for s in plain),
        plain_step_faults=tuple(faults),
        profiled_step_faults=tuple(profiled_faults),
        profiled_step_us=profiled_us,
        paired_ratios=tuple(ratios),
        profiled_over_plain=ratio,
        profiled_over_plain_interval=(low, high),
        matches_plain_step=low <= 1.0 + ADD_UP_TOLERANCE and high >= 1.0 - ADD_UP_TOLERANCE,
        within_tolerance=abs(ratio - 1.0) <= ADD_UP_TOLERANCE,
        detailed_overhead=overhead - 1.0,
        problems=tuple(sorted(set(coarse.problems + detailed.problems))),
    )


def attribution_record(attributed: trace_steps.Attribution) -> StepAttribution:
    """One trace's attributed steps as their record (the medians over the steps)."""
    return decode(StepAttribution, attributed.as_dict())


def _profiled(network, run_step, next_batch, device, steps, calls: list, coarse: bool,
              step_faults: list[int] | None = None):  # fmt: skip
    """One profiler session of ``steps`` steps, not yet exported; the ranges' sequence numbers
    go to ``calls``, each ranged step's minor page faults to ``step_faults``."""
    ranges = StepRanges(network, calls)
    profiler = StepProfile(device, coarse=coarse)
    with profiler:
        run_step(next_batch(), None)  # the session's first step: outside any kernelprof range
        synchronize(device)
        with ranges:
            for _ in range(steps):
                faulted = minor_faults()
                with ranges.phase("step"):
                    with ranges.phase("data loading"):
                        batch = next_batch()
                    run_step(batch, ranges)
                    synchronize(device)
                if step_faults is not None:
                    step_faults.append(minor_faults() - faulted)
    return profiler


def _written(trace: dict, calls: list, path: Path) -> trace_steps.Attribution:
    trace_steps.annotate(trace, [tuple(call) for call in calls])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(trace))
    return trace_steps.attribute(Timeline.from_events(trace["traceEvents"]), str(path))
