"""``kernelprof compare``: every LIF implementation checked, then measured side by side.

For each implementation, in its own worker process: available here? (else the reason), does it
agree with the float64 oracle (the verdict, from :mod:`kernelprof.checking`), then forward,
backward and forward+backward times from the one timing harness, kernels launched, allocator
peak and bytes saved for backward, energy, and optionally a Chrome trace. The parent measures
the copy bandwidth once, computes GB/s and speedups, and hands the document to the reports.
Nothing here formats output: see :mod:`kernelprof.report`.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kernelprof import checking
from kernelprof.harness import device as device_facts
from kernelprof.harness.energy import EnergyMeasurement, measure_energy
from kernelprof.harness.timer import Measurement, cuda_graph_replay, measure
from kernelprof.harness.worker import run_task
from kernelprof.inputs import lif_input
from kernelprof.lif import LIFConfig
from kernelprof.profiling import profile_call, saved_for_backward_bytes

PHASES = ("fwd", "bwd", "fwd+bwd")
CHECK_NEURONS = 2**16  # neurons compared with the float64 oracle before timing
DTYPES = checking.DTYPES


def traffic_bytes(steps: int, neurons: int, dtype: torch.dtype) -> dict[str, int]:
    """Bytes the fused algorithm must move, at storage precision, per phase.

    Forward reads X and writes S and the state backward needs (3 passes over [T, N]); backward
    reads dS and that state and writes dX (3 passes). Every implementation is held to the same
    count, so GB/s compares times directly; one that moves more shows a lower figure.
    """
    one_pass = steps * neurons * torch.finfo(dtype).bits // 8
    return {"fwd": 3 * one_pass, "bwd": 3 * one_pass, "fwd+bwd": 6 * one_pass}


def measure_implementation(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: verdict, then timings, profile, memory and energy of one implementation."""
    device_facts.keep_host_memory()
    row, built = checking.prepare(task)
    if built is None:
        return row
    row.update(checking.verdict(built, task, min(task["N"], CHECK_NEURONS)))
    device, dtype = torch.device(task["device"]), DTYPES[task["dtype"]]
    config = LIFConfig(**task["config"])
    x = lif_input((task["T"], task["N"]), config, dtype=dtype, device=device, seed=task["seed"])
    x.requires_grad_(True)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(task["seed"] + 7)).to(x)

    def forward() -> torch.Tensor:
        return built.run(x)[0]

    def forward_backward():
        return torch.autograd.grad(forward(), x, grad)

    try:
        row.update(_measure(task, x, grad, forward, forward_backward, device))
    except (RuntimeError, torch.cuda.OutOfMemoryError) as error:  # keeps the verdict
        row["error"] = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    return row


def _measure(task, x, grad, forward, forward_backward, device) -> dict[str, Any]:
    name = task["impl"]
    repeat_s = task["repeat_s"]
    timings: dict[str, Measurement] = {
        "fwd": measure(forward, device=device, label=f"{name} fwd", repeat_s=repeat_s)
    }
    timings["bwd"] = _time_backward(forward(), x, grad, device, f"{name} bwd", repeat_s)
    timings["fwd+bwd"] = measure(
        forward_backward, device=device, label=f"{name} fwd+bwd", repeat_s=repeat_s
    )
    graph_timings = {}
    if task.get("cuda_graph") and device.type == "cuda":
        spikes = forward()
        closures = {
            "fwd": forward,
            "bwd": lambda: torch.autograd.grad(spikes, x, grad, retain_graph=True),
            "fwd+bwd": forward_backward,
        }
        for phase, closure in closures.items():
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
            torch.autograd.grad(spikes, x, grad)

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
        saved_bytes=saved_for_backward_bytes(forward, exclude=x),
        trace=call.trace_path,
        energy=energy.as_dict(),
    )


def _time_backward(spikes, x, grad, device, label, repeat_s) -> Measurement:
    """Backward alone: the graph of one forward, replayed with retain_graph (no accumulation)."""

    def backward():
        return torch.autograd.grad(spikes, x, grad, retain_graph=True)

    return measure(backward, device=device, label=label, repeat_s=repeat_s)


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


def run_compare(
    config: LIFConfig,
    impls: list[str],
    *,
    steps_list: list[int],
    neurons_list: list[int],
    dtypes: list[str],
    device: torch.device,
    seed: int = 0,
    repeat_s: float = 0.25,
    baseline: str | None = None,
    trace_dir: Path | None = None,
    pythons: dict[str, str] | None = None,
    timeout_s: float = 600.0,
    energy: bool = True,
    cuda_graph: bool = False,
    environment: dict[str, Any] | None = None,
    status: Callable[[str], contextlib.AbstractContextManager] = lambda _: contextlib.nullcontext(),
    on_run: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """Every implementation on every (T, N, dtype) case; returns the results document.

    ``on_run`` is called with each finished case (for display); Ctrl-C stops the sweep and the
    document keeps the rows finished so far, with ``interrupted`` set.
    """
    pythons = pythons or {}
    notes = [device_facts.keep_host_memory()]
    with status("measuring copy bandwidth"):
        copy_bandwidth = device_facts.copy_bandwidth(device)
    environment = environment or {"device": {"type": device.type}}
    document: dict[str, Any] = {
        "kernelprof": "compare",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "environment": environment,
        "config": config.as_dict(),
        "copy_bandwidth_gb_per_s": copy_bandwidth / 1e9,
        "notes": notes,
        "interrupted": False,
        "runs": [],
    }
    try:
        for steps in steps_list:
            for neurons in neurons_list:
                for dtype_name in dtypes:
                    case = {"T": steps, "N": neurons, "dtype": dtype_name}
                    run: dict[str, Any] = {
                        "case": case,
                        "device": environment["device"],
                        "copy_bandwidth_gb_per_s": copy_bandwidth / 1e9,
                        "rows": [],
                    }
                    document["runs"].append(run)
                    task = {
                        "kind": "compare",
                        "config": config.as_dict(),
                        "device": str(device),
                        "seed": seed,
                        "repeat_s": repeat_s,
                        "trace_dir": None if trace_dir is None else str(trace_dir),
                        "energy": energy,
                        "cuda_graph": cuda_graph,
                        **case,
                    }
                    for impl in impls:
                        # a row that cannot run here needs no worker (unless another
                        # interpreter, --python, is to run it)
                        row = (
                            None
                            if impl in pythons
                            else checking.unavailable_row(impl, device, quick=True)
                        )
                        if row is None:
                            with status(f"{impl}: T={steps} N={neurons:,} {dtype_name}"):
                                row = run_task(
                                    {**task, "impl": impl},
                                    python=pythons.get(impl),
                                    timeout_s=timeout_s,
                                )
                        row.setdefault("impl", impl)
                        row.setdefault("verdict", row.get("status", "error"))
                        run["rows"].append(row)
                    add_bandwidth_and_speedup(run, copy_bandwidth, baseline)
                    on_run(run)
    except KeyboardInterrupt:
        document["interrupted"] = True
        notes.append("interrupted: the rows finished so far are reported")
        if document["runs"] and not document["runs"][-1]["rows"]:
            document["runs"].pop()
        elif document["runs"]:
            add_bandwidth_and_speedup(document["runs"][-1], copy_bandwidth, baseline)
    return document


def add_bandwidth_and_speedup(run: dict[str, Any], copy_bandwidth: float, baseline: str | None):
    """GB/s and % of copy bandwidth per phase, and fwd+bwd speedup against the baseline row
    (``baseline``, else the fastest framework row with a trustworthy verdict)."""
    case = run["case"]
    traffic = traffic_bytes(case["T"], case["N"], DTYPES[case["dtype"]])
    timed = [row for row in run["rows"] if row.get("timings")]
    for row in timed:
        for phase, timing in row["timings"].items():
            bandwidth = traffic[phase] / timing["median_s"]
            timing.update(
                bytes=traffic[phase],
                gb_per_s=bandwidth / 1e9,
                copy_bandwidth_fraction=bandwidth / copy_bandwidth,
            )
    trusted = [row for row in timed if row["verdict"] in ("exact", "close")]
    candidates = [row for row in trusted if row.get("framework") != "kernelprof reference"]
    chosen = None
    if baseline is not None:
        chosen = next((row for row in timed if row["impl"] == baseline), None)
    elif candidates or trusted:
        chosen = min(candidates or trusted, key=lambda row: row["timings"]["fwd+bwd"]["median_s"])
    run["baseline"] = None if chosen is None else chosen["impl"]
    for row in timed:
        if chosen is not None:
            reference_s = chosen["timings"]["fwd+bwd"]["median_s"]
            row["speedup"] = reference_s / row["timings"]["fwd+bwd"]["median_s"]
