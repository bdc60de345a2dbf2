"""``kernelprof compare``: every LIF neuron checked, then its timed build measured side by side.

For each neuron, in its own worker process: available here? (else the reason), does its
checking build agree with the float64 oracle (the verdict, from :mod:`kernelprof.runs.check`,
on two check inputs and on sampled neurons of the timed input itself),
does its timed build compute what its checking build computes on the very input that is timed
(sampled neurons; a mismatch is an error row), then forward, backward and forward+backward times
of the timed build from the one timing harness, kernels launched, allocator peak and bytes saved
for backward, energy, and optionally a Chrome trace. Only the timed build is ever timed: what
the framework's users write to get spikes, with the input already in the layout they hold it in
(:class:`~kernelprof.frameworks.base.TimedBuild`). The parent measures the copy bandwidth once and
hands the document to :mod:`kernelprof.results.analysis` (GB/s, speedups) and the presentation.
Nothing here formats output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kernelprof.harness import device as device_facts
from kernelprof.harness.energy import EnergyMeasurement, measure_energy
from kernelprof.harness.profiling import profile_call, saved_for_backward_bytes
from kernelprof.harness.timer import Measurement, cuda_graph_replay, measure
from kernelprof.harness.worker import run_task
from kernelprof.inputs import DTYPES, lif_input
from kernelprof.results import schema
from kernelprof.results.analysis import add_bandwidth_and_speedup
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

    def backward_of(self, spikes: torch.Tensor) -> Callable[[], object]:
        """Backward alone: the graph of one forward, replayed with retain_graph."""
        return lambda: torch.autograd.grad(spikes, self.x, self.grad, retain_graph=True)


def timed_closures(timed, x: torch.Tensor, seed: int) -> TimedClosures:
    """Prepares ``x`` (canonical [T, ...]) for the timed build outside any timed region, and
    returns the closures that call only the build's ``run``."""
    prepared = timed.prepare(x.detach()).detach().requires_grad_(True)
    with torch.no_grad():
        shape = timed.run(prepared).shape  # the spikes as the framework returns them
    grad = check.upstream_gradient(shape, prepared, seed)

    def forward() -> torch.Tensor:
        return timed.run(prepared)

    def forward_backward():
        return torch.autograd.grad(forward(), prepared, grad)

    return TimedClosures(prepared, grad, forward, forward_backward)


def measure_implementation(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: verdict, agreement of the builds, then timings, profile, memory and
    energy of one neuron's timed build."""
    if task.get("keep_host_memory"):
        device_facts.keep_host_memory()
    row, build = check.prepare(task)
    if build is None:
        return row
    row.update(check.verdict(build, task, min(task["N"], CHECK_NEURONS)))
    device, dtype = torch.device(task["device"]), DTYPES[task["dtype"]]
    config = LIFConfig(**task["config"])
    x = lif_input((task["T"], task["N"]), config, dtype=dtype, device=device, seed=task["seed"])
    try:
        check.recheck_on(row, build, x, task)
        if not check.compare_builds(row, build, x, task):
            return row  # no timing without a timed build known to compute the checked result
        closures = timed_closures(build.timed, x, task["seed"])
        del x
        row.update(_measure(task, closures, device))
    except (RuntimeError, torch.cuda.OutOfMemoryError) as error:  # keeps the verdict
        row["error"] = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    row["path"] = build.detect_path() if build.detect_path is not None else build.path
    return row


def _measure(task, closures: TimedClosures, device) -> dict[str, Any]:
    name = task["impl"]
    repeat_s = task["repeat_s"]
    forward, forward_backward = closures.forward, closures.forward_backward
    timings: dict[str, Measurement] = {
        "fwd": measure(forward, device=device, label=f"{name} fwd", repeat_s=repeat_s)
    }
    timings["bwd"] = measure(
        closures.backward_of(forward()), device=device, label=f"{name} bwd", repeat_s=repeat_s
    )
    timings["fwd+bwd"] = measure(
        forward_backward, device=device, label=f"{name} fwd+bwd", repeat_s=repeat_s
    )
    graph_timings = {}
    if task.get("cuda_graph") and device.type == "cuda":
        phases = {"fwd": forward, "bwd": closures.backward_of(forward()),
                  "fwd+bwd": forward_backward}  # fmt: skip
        for phase, closure in phases.items():
            replay = cuda_graph_replay(closure, device)
            graph_timings[phase] = (
                {"unavailable_reason": replay}
                if isinstance(replay, str)
                else measure(replay, device=device, label=f"{name} {phase} (CUDA graph)",
                             repeat_s=repeat_s).as_dict()
            )  # fmt: skip

    def traced():
        with torch.profiler.record_function(f"{name}/fwd"):
            spikes = forward()
        with torch.profiler.record_function(f"{name}/bwd"):
            torch.autograd.grad(spikes, closures.x, closures.grad)

    trace_path = None
    if task.get("trace_dir"):
        trace_name = f"{name}_T{task['T']}_N{task['N']}_{task['dtype']}.json"
        trace_path = Path(task["trace_dir"]) / trace_name
    call = profile_call(traced, device, trace_path)
    if task.get("energy", True):
        energy = measure_energy(forward_backward, device=device, label=f"{name} fwd+bwd")
    else:
        energy = EnergyMeasurement.unavailable("n/a: not measured (--no-energy)")
    return dict(
        timings={phase: timing.as_dict() for phase, timing in timings.items()},
        graph_timings=graph_timings,
        kernels_per_fwd_bwd=call.kernels,
        kernel_kind=call.kernel_kind,
        peak_bytes=_peak_bytes(forward_backward, device, call.peak_bytes),
        saved_bytes=saved_for_backward_bytes(forward, exclude=closures.x),
        trace=call.trace_path,
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

    ``on_run`` is called with each finished case (for display); Ctrl-C stops the sweep and the
    document keeps the rows finished so far, with ``interrupted`` set.
    """
    device = torch.device(request.device)
    notes = [host_memory_note(request.keep_host_memory)]
    with status("measuring copy bandwidth"):
        copy_bandwidth = device_facts.copy_bandwidth(device)
    document = schema.new_document("compare", environment)
    document.update(
        config=request.config.as_dict(),
        copy_bandwidth_gb_per_s=copy_bandwidth / 1e9,
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
            for impl in request.impls:
                # a row that cannot run here needs no worker (unless another interpreter,
                # --python, is to run it)
                python = request.pythons.get(impl)
                row = None if python else check.unavailable_row(impl, device, quick=True)
                if row is None:
                    label = f"{impl}: T={case['T']} N={case['N']:,} {case['dtype']}"
                    with status(label):
                        row = run_task(request.task(case, impl), python=python,
                                       timeout_s=request.timeout_s)  # fmt: skip
                row.setdefault("impl", impl)
                row.setdefault("verdict", row.get("status", "error"))
                if python:
                    row["python"] = python
                run["rows"].append(row)
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
