"""torch.profiler, in one place: kernel counts, device time, allocator peaks and Chrome traces.

:func:`profile_phases` profiles a few calls of each phase of a workload, each call in its own
``record_function`` range named ``<label>/<phase>``, and reads the trace back with
:func:`kernelprof.traces.range_activity`: per call, the kernels it launched and their summed
durations (the *device time*: what the GPU worked, however long the host took to enqueue it),
and the host time spent inside torch operators (on CPU the rest of the call is Python between
them). :func:`profile_call` profiles one call. Traces open unchanged in Perfetto
(ui.perfetto.dev) and chrome://tracing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from kernelprof.traces import iter_events, range_activity


@dataclass(frozen=True)
class CallProfile:
    kernels: int  # device kernels launched (CUDA), or aten operators run (CPU)
    kernel_kind: str  # "CUDA kernels" or "aten ops (CPU)"
    # the allocator's peak above its level at the start of the call, read from the trace's
    # memory events; on CUDA only when a trace is written (the caching allocator's own
    # statistics are the better source there)
    peak_bytes: int | None
    trace_path: str | None


def profile_call(
    fn: Callable[[], object], device: torch.device, trace_path: Path | None = None
) -> CallProfile:
    """Profiles one call of ``fn``; writes its Chrome trace to ``trace_path`` when given."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, profile_memory=True) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    if device.type == "cuda":
        kernels = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
        kind = "CUDA kernels"
    else:
        kernels = sum(1 for e in prof.events() if e.name.startswith("aten::"))
        kind = "aten ops (CPU)"
    peak = None
    if trace_path is not None or device.type != "cuda":  # CUDA peaks come from its allocator
        with tempfile.TemporaryDirectory() as scratch:
            path = trace_path or Path(scratch) / "trace.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            prof.export_chrome_trace(str(path))
            peak = allocator_peak(json.loads(path.read_text()), device)
    return CallProfile(kernels, kind, peak, None if trace_path is None else str(trace_path))


@dataclass(frozen=True)
class PhaseProfile:
    """Per phase, one value per profiled call."""

    device_s: dict[str, list[float]]  # summed kernel, memcpy and memset durations (CUDA)
    op_s: dict[str, list[float]]  # host time inside torch operators
    span_s: dict[str, list[float]]  # host time of each profiled call (its range)
    kernels: dict[str, list[int]]  # CUDA kernels launched, or aten operators run on CPU
    kernel_kind: str
    peak_bytes: int | None  # allocator peak over the profiled calls (CPU; CUDA with a trace)
    trace_path: str | None


def warm_up_profiler() -> None:
    """Starts and stops the profiler once: its first start imports torch._inductor (about 2 s
    on the 2-core CPU), which would otherwise land in the first profile taken."""
    with profile(activities=[ProfilerActivity.CPU]):
        torch.empty(0)


def prepared(closure: Callable[[], object]) -> Callable[[], object]:
    """``closure`` after its ``prepare()``, where it has one (compare's bwd: its graph, made
    again after other phases' forwards)."""
    getattr(closure, "prepare", lambda: None)()
    return closure


def profile_phases(
    phases: dict[str, Callable[[], object]],
    device: torch.device,
    *,
    label: str,
    calls: int = 3,
    before: Callable[[], None] = lambda: None,
    trace_path: Path | None = None,
) -> PhaseProfile:
    """Profiles ``calls`` calls of every phase (``before()`` between them, outside the ranges)
    and writes the Chrome trace to ``trace_path`` when given."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with profile(activities=activities, profile_memory=True) as prof:
        for phase, fn in phases.items():
            prepared(fn)  # a phase's own set-up, outside the ranges
            for _ in range(calls):
                before()
                with record_function(f"{label}/{phase}"):
                    fn()
                    if cuda:  # the range then holds the launches of everything it queued
                        torch.cuda.synchronize(device)
    with tempfile.TemporaryDirectory() as scratch:
        path = trace_path or Path(scratch) / "trace.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(path))
        # autograd's device threads launch the backward while the range waits: any thread
        found = range_activity(iter_events(path), prefix=f"{label}/", any_thread=True)
        peak = None if cuda and trace_path is None else allocator_peak(
            json.loads(path.read_text()), device)  # fmt: skip
    device_s, op_s, span_s, kernels = {}, {}, {}, {}
    for activity in found:
        phase = activity.name[len(label) + 1 :]
        device_s.setdefault(phase, []).append(activity.device_us / 1e6)
        op_s.setdefault(phase, []).append(activity.op_us / 1e6)
        span_s.setdefault(phase, []).append(activity.duration_us / 1e6)
        kernels.setdefault(phase, []).append(activity.kernels if cuda else activity.aten_ops)
    kind = "CUDA kernels" if cuda else "aten ops (CPU)"
    return PhaseProfile(device_s, op_s, span_s, kernels, kind, peak,
                        None if trace_path is None else str(trace_path))  # fmt: skip


def allocator_peak(trace: dict, device: torch.device) -> int | None:
    """Peak of the allocator's "Total Allocated" over the trace's [memory] events for the
    device, relative to the level before the first allocation (None without memory events)."""
    device_type = 1 if device.type == "cuda" else 0
    start, peak = None, None
    for event in trace.get("traceEvents", []):
        if event.get("name") != "[memory]":
            continue
        args = event.get("args", {})
        if args.get("Device Type") != device_type:
            continue
        total = args.get("Total Allocated")
        if total is None:
            continue
        if start is None:
            start = total - args.get("Bytes", 0)
        peak = total if peak is None else max(peak, total)
    return None if start is None else max(0, peak - start)


def saved_for_backward_bytes(forward: Callable[[], object], exclude: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves during ``forward()``, other than the
    input's own storage (saving the input costs no memory)."""
    seen = {exclude.untyped_storage().data_ptr()}
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return total


# ---- training steps -----------------------------------------------------------------------------

# What a coarse step profile records of the host: record_function ranges and the autograd nodes
# run in backward (each with its sequence number), not every operator: about 230 events per
# snnTorch CNN step instead of 2,650, and the profiled step within a few % of the plain one
# (every recorded operator costs about 1 us on the 2-core CPU: 12-30 % on those steps).
COARSE_SCOPES = ("USER_SCOPE", "BACKWARD_FUNCTION")


class StepProfile:
    """A torch.profiler session over training steps; ``coarse`` records only ranges and
    autograd nodes (:data:`COARSE_SCOPES`; CUDA activity is recorded in full either way).

    torch.profiler has no public knob for what it records: the scopes are passed to
    ``_enable_profiler`` (the C++ profiler takes them), by wrapping that function while the
    session starts. Whether it held is read back from the trace (:meth:`trace`): a coarse
    trace with aten operators in it says so in ``problems``."""

    def __init__(self, device: torch.device, coarse: bool) -> None:
        self.device = device
        self.coarse = coarse
        self.problems: list[str] = []
        activities = [ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self.profiler = profile(activities=activities)

    def __enter__(self) -> StepProfile:
        if not self.coarse:
            self.profiler.__enter__()
            return self
        import torch.autograd.profiler as autograd_profiler
        from torch._C._profiler import RecordScope

        original = getattr(autograd_profiler, "_enable_profiler", None)
        scopes = {getattr(RecordScope, name) for name in COARSE_SCOPES}
        if original is None:
            self.problems.append("torch.autograd.profiler._enable_profiler is gone: full profile")
            self.profiler.__enter__()
            return self

        def enable(config, activities, *args, **kwargs):
            return original(config, activities, scopes)

        autograd_profiler._enable_profiler = enable
        try:
            self.profiler.__enter__()
        finally:
            autograd_profiler._enable_profiler = original
        return self

    def __exit__(self, *exc) -> None:
        self.profiler.__exit__(*exc)

    def trace(self) -> dict:
        """The Chrome trace, as parsed JSON."""
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "trace.json"
            self.profiler.export_chrome_trace(str(path))
            trace = json.loads(path.read_text())
        if self.coarse and any(
            e.get("cat") == "cpu_op" and str(e.get("name", "")).startswith("aten::")
            for e in trace.get("traceEvents", [])
        ):
            self.problems.append(
                "the coarse profile recorded every operator (this torch ignores the scopes): "
                "its steps carry the full profiler overhead"
            )
        return trace


def sequence_counter():
    """The next autograd sequence number of this thread, without creating a node: a function
    to call (cheap enough for every layer call of a step)."""
    peek = getattr(torch.autograd, "_get_sequence_nr", None)
    if peek is not None:
        return peek
    probe = torch.zeros((), requires_grad=True)  # older torch: a node of our own, then + 1
    return lambda: probe.view(()).grad_fn._sequence_nr() + 1


def _range_functions():
    try:
        return (torch._C._autograd._record_function_with_args_enter,
                torch._C._autograd._record_function_with_args_exit)  # fmt: skip
    except AttributeError:  # pragma: no cover - another torch: the public, slower one
        return (lambda name: record_function(name).__enter__(),
                lambda handle: handle.__exit__(None, None, None))  # fmt: skip


# A ``record_function`` range for hooks that fire many times a step: the C++ entry point
# torch.profiler uses for its own step ranges (about 1.8 us a range while profiling, against
# 7 us for ``torch.profiler.record_function``, which goes through the dispatcher). Recorded as a
# user annotation, like ``record_function``. ``range_enter(name)`` returns the handle to give
# ``range_exit``.
range_enter, range_exit = _range_functions()


class FastRange:
    """``with FastRange(name):`` -- :data:`range_enter` and :data:`range_exit` as a context."""

    __slots__ = ("name", "handle")

    def __init__(self, name: str) -> None:
        self.name = name
        self.handle = None

    def __enter__(self) -> FastRange:
        self.handle = range_enter(self.name)
        return self

    def __exit__(self, *exc) -> None:
        range_exit(self.handle)
