"""Watching the training steps of code kernelprof did not write: a script or a notebook loop.

A :class:`Session` is told where each step ends (:meth:`Session.boundary`): by a global optimizer
hook (the first optimizer whose ``step()`` is called), or by ``kernelprof.step()`` /
``prof.step()``. It then runs the same schedule as e2e's breakdown, one step at a time, as the
script's steps come: ``warmup`` steps left alone, then rounds of a plain step and a profiled one
(ABBA, each profiled step in a profiler session of its own, after one unrecorded step of that
session), first ``steps`` coarse rounds (ranges and autograd nodes only: the categories), then
``op_steps`` detailed ones (every operator: the operations). With ``faster_rounds``, the
faster-path search follows (:mod:`.faster`): one recording step, then for each path that passed
its checks one inspected step with it in place, then rounds of plain steps (the layers' own and
each path's, their order turning each round). Each boundary synchronises the device; nothing
inside a step does.

In a profiled step, global module hooks open a range ``kernelprof/<qualified name> fwd`` around
every layer's forward (a leaf module, or a neuron module with whatever is inside it), a range
``kernelprof/forward`` around a top-level model call, ``kernelprof/loss`` around loss modules and
``torch.nn.functional``'s losses, and the step's other phases around what marks them:
``torch.autograd.backward`` / ``grad`` (backward), the optimizer's ``step`` and ``zero_grad``
(optimizer), a DataLoader iterator's ``__next__`` (data loading), ``Tensor.to`` / ``cuda``
outside every other range (host-to-device copy). Each range notes the autograd sequence numbers
given out while it was open, so that backward nodes are charged to the layer that made them
(:mod:`kernelprof.traces.steps`). Hooks and patches exist only during profiled steps: plain steps
run the script's own code.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from kernelprof.harness.energy import StepEnergy
from kernelprof.harness.profiling import (
    StepProfile,
    range_enter,
    range_exit,
    sequence_counter,
    warm_up_profiler,
)
from kernelprof.harness.timer import minor_faults, synchronize
from kernelprof.results.profile import (
    FasterPath,
    FasterSearch,
    LayerSeen,
    NeuronCall,
    ProfileRun,
)
from kernelprof.runs.e2e.breakdown import Replaced, attributed_rounds, breakdown_record
from kernelprof.runs.profile import layers as layer_index
from kernelprof.runs.profile.faster import Recorder
from kernelprof.runs.profile.inspect import Inspector
from kernelprof.traces import steps as trace_steps

PLAIN, OPEN, RANGED, WARMUP, INSPECT = "plain", "open", "profiled", "warm-up", "inspected"
# the faster-path search's steps, after the schedule: the recording step, then per path one
# inspected step with it, then rounds of plain steps (the round's number: which path, 0 none)
RECORD, PATH_INSPECT, PATH_PLAIN = "recorded", "inspected with a path", "plain with a path"
SYNAPTIC = ("conv", "linear")
FUNCTIONAL_LOSSES = ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
                     "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                     "kl_div", "poisson_nll_loss")  # fmt: skip


class StopScript(BaseException):
    """Raised at the last profiled step's end when the script is to stop there (``--stop``):
    a BaseException, so that the script's own ``except Exception`` does not catch it."""


def schedule(warmup: int, steps: int, op_steps: int) -> list[tuple[str, bool, int]]:
    """(kind, detailed, round) of every step the session watches, in order: the warm-up, one
    inspected step (memory, spikes, operations: :mod:`.inspect`), then the rounds."""
    order = [(WARMUP, False, 0)] * warmup + [(INSPECT, False, 0)]
    for detailed, count in ((False, steps), (True, op_steps)):
        for number in range(count):
            kinds = (PLAIN, OPEN, RANGED) if number % 2 == 0 else (OPEN, RANGED, PLAIN)
            order += [(kind, detailed, number) for kind in kinds]
    return order


class _Rounds:
    """The profiled rounds of one kind (coarse or detailed) as they are run."""

    def __init__(self) -> None:
        self.profilers: list[StepProfile] = []
        self.plain: dict[int, float] = {}  # round -> its plain step, seconds
        self.calls: list[list] = []

    def complete(self) -> tuple[list[StepProfile], list[float]]:
        """The rounds with both their steps run, in order."""
        count = min(len(self.profilers), len(self.plain))
        return self.profilers[:count], [self.plain[n] for n in range(count)]


class Session:
    """The schedule, the hooks and what they saw (see the module docstring). ``roots``: the
    models to name layers from (the API's); None: found from the modules the warm-up steps
    call (a script's). ``on_done(run)`` gets the :class:`ProfileRun` when the schedule ends."""

    def __init__(self, *, warmup: int, steps: int, op_steps: int, device: str | None,
                 trace_dir: Path, roots: list[nn.Module] | None, marker: str,
                 on_done: Callable[[ProfileRun], None], stop: bool = False,
                 faster_rounds: int = 0) -> None:  # fmt: skip
        self.order = schedule(warmup, steps, op_steps)
        self.faster_rounds = faster_rounds
        self.scheduled_steps = len(self.order)
        if faster_rounds:  # the search comes after the schedule: a script may stop before it
            self.order.append((RECORD, False, 0))
        self.device = None if device in (None, "auto") else torch.device(device)
        self.trace_dir = trace_dir
        self.given_roots = roots
        self.marker = marker
        self.on_done = on_done
        self.stop = stop
        self.position = 0  # boundaries passed: the step now running
        self.finished = False
        self.problems: list[str] = []
        self.rounds = {False: _Rounds(), True: _Rounds()}
        self.plain_all: list[float] = []
        self.plain_faults: list[int] = []
        self.profiled_faults: list[int] = []  # the coarse profiled steps'
        self._ranged_faulted: int | None = None
        self.index: layer_index.Index | None = None
        self.counts: list[Counter] = []
        self.neuron_calls: dict[str, NeuronCall] = {}
        self.stack: list[tuple[object, object, list]] = []  # (owner, range handle, call record)
        self._sequence = sequence_counter()
        self._step_handle = None
        self._step_record: list | None = None
        self._profiler: StepProfile | None = None
        self._started, self._faulted = time.perf_counter(), minor_faults()
        self._hooks: list = []
        self._replaced = Replaced()  # what profiled steps wrap and patch
        self._wrapped_ids: set[int] = set()
        self._counter: Counter | None = None
        # modules called in the warm-up steps, and in which of them
        self._seen: dict[int, tuple[nn.Module, set[int]]] = {}
        self._discovery = None
        self._optimizer_hooks: list = []
        self._primary = None  # the optimizer whose steps end the training steps
        self._first_pending = False
        self._step_wrapped = Replaced()  # the primary optimizer's step, for the session
        self._explicit = marker != "optimizer.step()"
        self._inspector: Inspector | None = None
        self._energy: StepEnergy | None = None
        self.inspection = None
        self._layer_ranges: dict[str, str] = {}  # a layer's range -> its name
        self._recorder: Recorder | None = None
        self._searched = False
        self._candidates: list = []  # the paths measured (faster.Candidate)
        self._unmeasured: list[FasterPath] = []
        self._none: dict[str, str] = {}
        self._path_steps: dict[int, dict[int, float]] = {}  # path (0: none) -> round -> s
        self._path_memory: dict[int, object] = {}  # path -> its inspected step (Inspection)

    # ---- lifetime --------------------------------------------------------------------------------

    def start(self) -> Session:
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        # Kineto prints a line at every profiler start and stop (USDT, STAGE) unless told
        # otherwise before its first use; the user's own setting wins
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")
        warm_up_profiler()
        self._optimizer_hooks = [
            register_optimizer_step_pre_hook(self._optimizer_pre),
            register_optimizer_step_post_hook(self._optimizer_post),
        ]
        if self.given_roots is None:
            self._discovery = nn.modules.module.register_module_forward_pre_hook(self._discover)
        self._started, self._faulted = time.perf_counter(), minor_faults()
        return self

    def close(self) -> None:
        """Ends the session where it is: what was profiled is analysed (once)."""
        for handle in self._optimizer_hooks:
            handle.remove()
        self._optimizer_hooks = []
        self._step_wrapped.restore()
        self._end_discovery()
        if not self.finished:
            self._abort_step()
            self._finish()

    @property
    def scheduled(self) -> bool:
        """The schedule ran (the faster-path search, which may follow, is not counted)."""
        return self.finished or self.position >= self.scheduled_steps

    # ---- steps -----------------------------------------------------------------------------------

    def mark(self) -> None:
        """An explicit step end (``kernelprof.step()``, ``prof.step()``)."""
        if not self._explicit:
            self._explicit = True
            self.marker = "kernelprof.step()"
            if self.position:  # optimizer steps were counted: count again from here
                if self.order[self.position][0] != WARMUP:
                    self.problems.append(f"kernelprof.step() first called after "
                                         f"{self.position} optimizer steps: what was profiled "
                                         "before is dropped, steps counted from there")  # fmt: skip
                self._restart()
                return
        self.boundary()

    def boundary(self) -> None:
        """The step now running has ended."""
        if self.finished:
            return
        if self.device is None:
            self.device = self._guess_device()
        kind, detailed, number = self.order[self.position]
        # a round's kind; a faster-path step's second field is its path's number instead
        rounds = self.rounds[detailed] if kind in (PLAIN, RANGED) else None
        if kind == PLAIN:
            synchronize(self.device)
            elapsed = time.perf_counter() - self._started
            if self._energy is not None:
                self._energy.end()
            rounds.plain[number] = elapsed
            self.plain_all.append(elapsed)
            self.plain_faults.append(minor_faults() - self._faulted)
        elif kind == RANGED:
            self._end_ranged(rounds)
        elif kind == INSPECT:
            self.inspection = self._end_inspected()
            self._energy = StepEnergy(self.device)  # idle power now, between two steps
        elif kind == RECORD:
            self._end_recorded()
        elif kind == PATH_INSPECT:
            self._path_memory[number] = self._end_inspected()
            self._candidates[number - 1].exit()
        elif kind == PATH_PLAIN:
            synchronize(self.device)
            elapsed = time.perf_counter() - self._started
            if detailed:  # the path's number
                self._candidates[detailed - 1].exit()
            self._path_steps.setdefault(detailed, {})[number] = elapsed
        elif kind == WARMUP and self.position + 1 < len(self.order) and \
                self.order[self.position + 1][0] != WARMUP:  # fmt: skip
            self._end_discovery()
        self.position += 1
        if self.position == len(self.order):
            self._finish()
            if self.stop:
                raise StopScript
            return
        kind, detailed, number = self.order[self.position]
        if kind == OPEN:
            self._profiler = StepProfile(self.device, coarse=not detailed)
            self._profiler.__enter__()
        elif kind == RANGED:
            self._begin_ranged(self.rounds[detailed], detailed)
        elif kind == INSPECT:
            self._begin_inspected()
        elif kind == PLAIN and self._energy is not None:
            self._energy.begin()
        elif kind == RECORD:
            self._begin_recorded()
        elif kind == PATH_INSPECT:
            self._candidates[number - 1].enter()
            self._begin_inspected()
        elif kind == PATH_PLAIN and detailed:
            self._candidates[detailed - 1].enter()
        self._started, self._faulted = time.perf_counter(), minor_faults()

    def _guess_device(self) -> torch.device:
        for root in self.given_roots or [module for module, _ in self._seen.values()]:
            for parameter in nn.Module.parameters(root):  # torch's, as above
                return parameter.device
        return torch.device("cpu")

    def _restart(self) -> None:
        self._abort_step()
        self.position = 0
        self.rounds = {False: _Rounds(), True: _Rounds()}
        self.plain_all, self.plain_faults, self.counts = [], [], []
        self.profiled_faults, self.inspection, self._energy = [], None, None
        self.order = [entry for entry in self.order if entry[0] not in (PATH_INSPECT, PATH_PLAIN)]
        self._searched, self._candidates, self._unmeasured, self._none = False, [], [], {}
        self._path_steps, self._path_memory = {}, {}

    def _ensure_index(self) -> None:
        if self.index is None:
            if self.given_roots is not None:
                self.index = layer_index.Index(self.given_roots)
            else:
                self.index = layer_index.Index(self._roots(), transient=self._transient())
                self._seen = {}  # the warm-up's modules are not kept alive
            self.problems += self.index.problems
            self._layer_ranges = {entry.range: entry.name for entry in self.index.layers()}

    def _begin_inspected(self) -> None:
        self._ensure_index()
        self.calls, self._counter = [], None
        # torch's parameters(): a Rockpool module's own returns a dict of names
        parameters = [parameter for module in self.index.modules.values()
                      for parameter in nn.Module.parameters(module)]  # fmt: skip
        self._inspector = Inspector(self._running_layer, self._time_steps, parameters)
        self._install()
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._step_handle = range_enter(trace_steps.STEP)  # ranges open only inside a step
        self._inspector.__enter__()

    def _end_inspected(self):
        inspector, self._inspector = self._inspector, None
        inspector.__exit__(None, None, None)
        while self.stack:
            self._close()
        synchronize(self.device)
        range_exit(self._step_handle)
        self._step_handle = None
        self._uninstall()
        if self.device.type == "cuda":
            peak, source = torch.cuda.max_memory_allocated(self.device), \
                "torch.cuda.max_memory_allocated in the step"  # fmt: skip
        else:
            peak, source = None, ("n/a: the CPU allocator keeps no peak; the bytes saved for "
                                  "backward are the step's own")  # fmt: skip
        return inspector.result(self.position, peak, source)

    # ---- the faster-path search (:mod:`.faster`) -----------------------------------------------

    def _begin_recorded(self) -> None:
        self._ensure_index()
        self._recorder = Recorder(self.device)
        self._recorder.install([(entry, self.index.modules[key])
                                for key, entry in self.index.by_id.items()
                                if entry.kind == "layer" and entry.neuron is not None
                                and key in self.index.modules])  # fmt: skip

    def _end_recorded(self) -> None:
        recorder, self._recorder = self._recorder, None
        synchronize(self.device)
        recorder.uninstall()
        self._candidates, self._unmeasured = recorder.search()
        self._none, self._searched = dict(recorder.none), True
        self.problems += recorder.problems
        # (kind, the path's number (0: the layers' own), the round) of every step to come
        more = [(PATH_INSPECT, path, path) for path in range(1, len(self._candidates) + 1)]
        variants = len(self._candidates) + 1
        for number in range(self.faster_rounds if self._candidates else 0):
            turn = number % variants
            more += [(PATH_PLAIN, path, number)
                     for path in [*range(turn, variants), *range(turn)]]  # fmt: skip
        self.order += more

    def _faster(self) -> FasterSearch | None:
        if not self.faster_rounds:
            return None
        if not self._searched:
            return FasterSearch(
                rounds=self.faster_rounds,
                problems=(
                    "not searched: the script ended before the step after the profiled ones",
                ),
            )
        steps = self._path_steps
        done = sorted(
            set.intersection(
                *(set(steps.get(path, {})) for path in range(len(self._candidates) + 1))
            )
        )
        paths = []
        for path, candidate in enumerate(self._candidates, start=1):
            memory = self._path_memory.get(path)
            paths.append(FasterPath(
                change=candidate.change, path=candidate.path, checks=candidate.checks,
                step_s=tuple(steps[path][number] for number in done),
                saved_bytes=memory.saved_bytes if memory else None,
                saved_by_layer={layer.name: layer.saved_bytes for layer in memory.layers
                                if layer.saved_bytes} if memory else {},
                peak_bytes=memory.peak_bytes if memory else None,
                problem="" if done else "not measured: the script ended before its rounds",
            ))  # fmt: skip
        return FasterSearch(rounds=self.faster_rounds,
                            base_s=tuple(steps[0][number] for number in done),
                            paths=tuple(paths) + tuple(self._unmeasured), none=self._none,
                            problems=() if len(done) == self.faster_rounds or not
                            self._candidates else (f"{len(done)} of {self.faster_rounds} rounds "
                                                   "measured: the script ended",))  # fmt: skip

    def _running_layer(self) -> str | None:
        for _, _, record in reversed(self.stack):
            name = self._layer_ranges.get(record[0])
            if name is not None:
                return name
        return None

    def _time_steps(self, name: str, module: nn.Module, args) -> int | None:
        entry = self.index.by_id.get(id(module)) if self.index else None
        declaration = entry.neuron.declaration if entry and entry.neuron else None
        if declaration is None or declaration.time_steps is None:
            return None
        return declaration.time_steps(module, args)

    def _begin_ranged(self, rounds: _Rounds, detailed: bool) -> None:
        self._ensure_index()
        self.calls = rounds.calls
        self._counter = None if detailed else Counter()  # calls counted in coarse steps only
        if self._counter is not None:
            self.counts.append(self._counter)
        self._install()
        self._step_record = [trace_steps.STEP, self._sequence(), None]
        self.calls.append(self._step_record)
        self._step_handle = range_enter(trace_steps.STEP)
        self._ranged_faulted = minor_faults() if not detailed else None

    def _end_ranged(self, rounds: _Rounds) -> None:
        while self.stack:  # a range an exception left open
            self._close()
        synchronize(self.device)
        range_exit(self._step_handle)
        if self._ranged_faulted is not None:
            self.profiled_faults.append(minor_faults() - self._ranged_faulted)
        self._step_record[2] = self._sequence()
        self._step_handle = None
        self._counter = None
        self._uninstall()
        self._profiler.__exit__(None, None, None)
        rounds.profilers.append(self._profiler)
        self._profiler = None

    def _abort_step(self) -> None:
        """Leaves a step half run (the script ended or failed inside it) without a trace."""
        if self.position >= len(self.order):
            return
        kind, detailed, _ = self.order[self.position]
        if kind == RECORD and self._recorder is not None:
            self._recorder.uninstall()
            self._recorder = None
        if kind in (INSPECT, PATH_INSPECT) and self._inspector is not None:
            self._inspector.__exit__(None, None, None)
            self._inspector = None
            while self.stack:
                self._close()
            if self._step_handle is not None:
                range_exit(self._step_handle)
                self._step_handle = None
            self._uninstall()
        if kind in (PATH_INSPECT, PATH_PLAIN) and detailed:
            self._candidates[detailed - 1].exit()
        if kind == RANGED and self._step_handle is not None:
            while self.stack:
                self._close()
            range_exit(self._step_handle)
            self._step_handle = None
            # this step's ranges (its record and all after it): its trace is never kept
            del self.calls[self.calls.index(self._step_record) :]
            self._uninstall()
            if not detailed and self.counts:
                self.counts.pop()
        if self._profiler is not None:
            self._profiler.__exit__(None, None, None)
            self._profiler = None

    # ---- what the run returns ------------------------------------------------------------------

    def _finish(self) -> None:
        self.finished = True
        self._end_discovery()
        run = ProfileRun(layers=self._layers_seen(), breakdown=self._breakdown(),
                         copy_bandwidth=self._copy_bandwidth(), steps_seen=self.position,
                         uncategorised=self.index.uncategorised() if self.index else (),
                         problems=tuple(self.problems), inspection=self.inspection,
                         energy=self._energy.result() if self._energy else None,
                         faster=self._faster())  # fmt: skip
        self.on_done(run)

    def _breakdown(self):
        coarse_profilers, coarse_plain = self.rounds[False].complete()
        if not coarse_profilers:
            return None
        coarse = attributed_rounds(coarse_profilers, self.rounds[False].calls, coarse_plain, 1,
                                   self.trace_dir / "profile.json")  # fmt: skip
        detailed_profilers, detailed_plain = self.rounds[True].complete()
        if detailed_profilers:
            detailed = attributed_rounds(detailed_profilers, self.rounds[True].calls,
                                         detailed_plain, 1,
                                         self.trace_dir / "profile_ops.json")  # fmt: skip
        else:
            detailed = coarse
            self.problems.append("no operations trace: the script ended before its steps; "
                                 "operations are those of the coarse trace (ranges "
                                 "only)")  # fmt: skip
        return breakdown_record(coarse, detailed, self.plain_all, self.plain_faults,
                                self.profiled_faults[: len(coarse_profilers)])  # fmt: skip

    def _copy_bandwidth(self) -> float | None:
        from kernelprof.harness.device import copy_bandwidth

        if self.device is None:
            return None
        try:
            return copy_bandwidth(self.device, nbytes=2**28)
        except (RuntimeError, MemoryError) as error:  # out of memory after the script's own
            self.problems.append(f"copy bandwidth not measured: {str(error).splitlines()[0]}")
            return None

    def _layers_seen(self) -> tuple[LayerSeen, ...]:
        if self.index is None:
            return ()
        seen = []
        for layer in self.index.layers():
            calls = tuple(counts.get(layer.name, 0) for counts in self.counts)
            if not any(calls):
                continue
            seen.append(LayerSeen(name=layer.name, type=layer.type, category=layer.category,
                                  calls=calls,
                                  neuron=self.neuron_calls.get(layer.name)))  # fmt: skip
        return tuple(seen)

    # ---- discovery (a script's warm-up steps) ------------------------------------------------

    def _discover(self, module: nn.Module, args) -> None:
        self._seen.setdefault(id(module), (module, set()))[1].add(self.position)

    def _transient(self) -> set[int]:
        """Modules the warm-up steps called in one step only (made for a call), when there
        were several warm-up steps to tell."""
        if len({step for _, steps in self._seen.values() for step in steps}) < 2:
            return set()
        return {key for key, (_, steps) in self._seen.items() if len(steps) == 1}

    def _end_discovery(self) -> None:
        if self._discovery is not None:
            self._discovery.remove()
            self._discovery = None

    def _roots(self) -> list[nn.Module]:
        """The modules called in the warm-up steps that no other called module holds."""
        inside: set[int] = set()
        for module, _ in self._seen.values():
            for child in module.modules():
                if child is not module:
                    inside.add(id(child))
        return [module for key, (module, _) in self._seen.items() if key not in inside]

    # ---- ranges ----------------------------------------------------------------------------------

    def _open(self, owner: object, name: str) -> None:
        record = [name, self._sequence(), None]
        self.calls.append(record)
        self.stack.append((owner, range_enter(name), record))

    def _close(self) -> None:
        _, handle, record = self.stack.pop()
        range_exit(handle)
        record[2] = self._sequence()

    # Every indexed module gets its ``forward`` wrapped for the profiled step (an instance
    # attribute, removed after it), as e2e's breakdown does: a global module hook would put
    # every module call of the step on torch's slow path (measured in e2e: hooks 4-6 % of a
    # snnTorch step, a wrapper 1-4 %). Global hooks are added only where modules made anew for
    # each call were seen in the warm-up (they cannot be wrapped ahead of their call).
    def _enter(self, owner: object, entry) -> bool:
        """Opens ``entry``'s range unless it is nested where it must not be."""
        if entry.kind == "root" and self.stack:
            return False  # a container inside the model: its glue is the model's forward
        if entry.kind == "loss" and self.stack and self.stack[-1][2][0] == entry.range:
            return False
        if entry.kind == "layer" and self._counter is not None:
            self._counter[entry.name] += 1
        self._open(owner, entry.range)
        return True

    def _leave(self, owner: object, entry, module: nn.Module, args) -> None:
        if self.stack and self.stack[-1][0] is owner:
            self._close()
            if entry.neuron is not None and entry.name not in self.neuron_calls:
                self._note_neuron(entry, module, args)  # after the call: the path it took

    def _wrap(self, module: nn.Module, entry) -> None:
        forward = module.forward

        def ranged(*args, **kwargs):
            if self._inspector is not None:
                return self._inspected(ranged, entry, module, forward, args, kwargs)
            if not self._enter(ranged, entry):
                return forward(*args, **kwargs)
            try:
                return forward(*args, **kwargs)
            finally:
                self._leave(ranged, entry, module, args)

        def pre(m, args) -> None:  # a hook's return would replace the input: None
            if self._inspector is not None and entry.category in SYNAPTIC:
                self._inspector.synaptic_input(entry.name, m, args)
            self._enter(m, entry)

        def post(m, args, output) -> None:
            self._leave(m, entry, m, args)
            if self._inspector is not None and entry.neuron is not None:
                self._inspector.neuron_output(entry.name, m, args, output)

        try:
            self._replaced.set(module, "forward", ranged)
        except (AttributeError, TypeError, RuntimeError):  # a module refusing it: its own hooks
            self._hooks += [module.register_forward_pre_hook(pre),
                            module.register_forward_hook(post, always_call=True)]  # fmt: skip

    def _inspected(self, owner, entry, module: nn.Module, forward, args, kwargs):
        """A layer's call in the inspected step: its input's operations counted first, its
        output's spikes after."""
        inspector = self._inspector
        if entry.kind == "layer" and entry.category in SYNAPTIC:
            inspector.synaptic_input(entry.name, module, args)
        elif entry.kind == "root" and not self.stack:
            inspector.model_input(args)
        if not self._enter(owner, entry):
            return forward(*args, **kwargs)
        try:
            output = forward(*args, **kwargs)
        finally:
            self._leave(owner, entry, module, args)
        if entry.neuron is not None:
            inspector.neuron_output(entry.name, module, args, output)
        return output

    def _module_pre(self, module: nn.Module, args) -> None:
        """The global hook (modules made for each call): those no wrapper covers."""
        if id(module) in self._wrapped_ids:
            return
        entry = self.index.entry(module, top_level=not self.stack)
        if entry is not None:
            if self._inspector is not None and entry.kind == "layer" and \
                    entry.category in SYNAPTIC:  # fmt: skip
                self._inspector.synaptic_input(entry.name, module, args)
            self._enter(module, entry)

    def _module_post(self, module: nn.Module, args, output) -> None:
        if self.stack and self.stack[-1][0] is module:  # a range this hook opened
            entry = self.index.entry(module, top_level=True)
            self._leave(module, entry, module, args)
            if self._inspector is not None and entry is not None and entry.neuron is not None:
                self._inspector.neuron_output(entry.name, module, args, output)

    def _note_neuron(self, entry, module: nn.Module, args) -> None:
        try:
            self.neuron_calls[entry.name] = layer_index.neuron_call(entry, module, args)
        except Exception as error:  # noqa: BLE001 - never break the user's step
            self.problems.append(f"{entry.name}: its input not read ({type(error).__name__}: "
                                 f"{error})")  # fmt: skip

    # torch runs the optimizer's step hooks inside its own ``Optimizer.step#...`` range: a
    # profiler session started or stopped there ends a range it did not see begin (seen: a
    # segfault exporting the trace). So the first optimizer to step gets its ``step`` wrapped
    # (an instance attribute, removed at the end), and the boundary comes after that range.
    # Its first call is already under way: that one step ends in the post-hook, where nothing
    # profiles yet (a warm-up step, or the first plain one follows).
    def _optimizer_pre(self, optimizer, args, kwargs) -> None:
        if self._primary is None:
            self._primary = optimizer
            self._wrap_step(optimizer)
            self._first_pending = True
        elif self._step_handle is not None and not self.stack:
            self._open(optimizer, trace_steps.PREFIX + "optimizer")

    def _optimizer_post(self, optimizer, args, kwargs) -> None:
        if self.stack and self.stack[-1][0] is optimizer:
            self._close()
        if optimizer is self._primary and self._first_pending:
            self._first_pending = False
            if not self._explicit:
                self.boundary()

    def _wrap_step(self, optimizer) -> None:
        original = optimizer.step
        name = trace_steps.PREFIX + "optimizer"

        def step(*args, **kwargs):
            opened = self._step_handle is not None and not self.stack
            if opened:
                self._open(step, name)
            try:
                return original(*args, **kwargs)
            finally:
                if opened and self.stack and self.stack[-1][0] is step:
                    self._close()
                if not self._explicit:
                    self.boundary()

        self._step_wrapped.set(optimizer, "step", step)

    def _ranged(self, label: str, function: Callable, *, top_only: bool = True) -> Callable:
        """``function`` with a range ``kernelprof/<label>`` around it when nothing else is
        open (``top_only``) or nothing of the same label."""
        name = trace_steps.PREFIX + label
        stack = self.stack

        def ranged(*args, **kwargs):
            if self._step_handle is None or (stack and (top_only or stack[-1][2][0] == name)):
                return function(*args, **kwargs)
            self._open(ranged, name)
            try:
                return function(*args, **kwargs)
            finally:
                if stack and stack[-1][0] is ranged:
                    self._close()

        return ranged

    def _install(self) -> None:
        for key, module in list(self.index.modules.items()):
            self._wrap(module, self.index.by_id[key])
        self._wrapped_ids = set(self.index.modules)
        if self.index.by_class:
            module_hooks = nn.modules.module
            self._hooks += [
                module_hooks.register_module_forward_pre_hook(self._module_pre),
                module_hooks.register_module_forward_hook(self._module_post, always_call=True),
            ]
        from torch.utils.data import dataloader

        functional = torch.nn.functional
        for loss in FUNCTIONAL_LOSSES:
            if hasattr(functional, loss):
                self._patch(functional, loss, "loss", top_only=False)
        for framework in self.index.frameworks:  # loss functions that are not modules
            for owner, attribute in framework.losses:
                self._patch(owner, attribute, "loss", top_only=False)
        self._patch(torch.autograd, "backward", "backward")
        self._patch(torch.autograd, "grad", "backward")
        self._patch(torch.optim.Optimizer, "zero_grad", "optimizer")
        self._patch(nn.Module, "zero_grad", "optimizer")
        self._patch(dataloader._BaseDataLoaderIter, "__next__", "data loading")
        self._patch(torch.Tensor, "to", "host-to-device copy")
        self._patch(torch.Tensor, "cuda", "host-to-device copy")

    def _patch(self, owner: object, attribute: str, label: str, top_only: bool = True) -> None:
        ranged = self._ranged(label, getattr(owner, attribute), top_only=top_only)
        self._replaced.set(owner, attribute, ranged)

    def _uninstall(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self._replaced.restore()
