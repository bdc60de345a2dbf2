"""``kernelprof e2e``'s workers: each framework trains the same network in its own worker
(:func:`run_framework`); in conversion mode one worker trains the ANN (:func:`run_ann`) and each
converter converts that same ANN in its own (:func:`run_conversion`, see
:mod:`kernelprof.runs.e2e.conversion`). The networks come from the framework modules' builders
(:mod:`kernelprof.frameworks.registry`); the step-time attribution of the results is in
:mod:`kernelprof.results.analysis`.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import torch

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import TrainedRoute, Unsupported
from kernelprof.frameworks.networks import NetworkSpec, SpikingNetwork
from kernelprof.harness.profiling import profile_call
from kernelprof.runs.e2e import conversion, settings
from kernelprof.runs.e2e.data import load_dataset
from kernelprof.runs.e2e.distributed import Distributed, gather_ranks
from kernelprof.runs.e2e.train import train_direct
from reference_kernels.model import LIFConfig

# What each kind of e2e worker runs (the task's "function").
DIRECT = "kernelprof.runs.e2e.run:run_framework"
ANN = "kernelprof.runs.e2e.run:run_ann"
CONVERT = "kernelprof.runs.e2e.run:run_conversion"


def build_network(
    spec: NetworkSpec, name: str, lif: LIFConfig | None, steps: int, seed: int
) -> SpikingNetwork:
    """Builds ``spec`` with the e2e network ``name`` (a framework module's builder), weights
    drawn from ``seed``; ``lif=None`` gives the framework's own default neuron.

    Raises ValueError for an unknown name, RuntimeError when the framework is not installed,
    and :class:`~kernelprof.frameworks.base.Unsupported` (with the framework's reason) for a
    LIF config it cannot express."""
    known = registry.networks()
    if name not in known:
        raise ValueError(f"no e2e network named {name!r} (valid: {', '.join(known)})")
    framework = known[name]
    problem = framework.problem()
    if problem is not None:
        raise RuntimeError(f"{name} is unavailable: {problem}")
    return framework.networks[name](spec, lif, steps, seed)


def run_framework(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: loads the data, builds ``task['framework']``'s network, trains it."""
    framework = task["framework"]
    row: dict[str, Any] = {"framework": framework}
    device = torch.device(task["device"])
    data = _load(task)
    spec = _spec(task, data)
    canonical = LIFConfig(**task["config"])
    setting = task.get("neuron_setting", "canonical")
    defaults = setting == "framework-defaults"
    try:
        network = build_network(
            spec, framework, None if defaults else canonical, task["T"], task["seed"]
        )
    except Unsupported as error:
        return {**row, "status": "unsupported", "reason": str(error)}
    except RuntimeError as error:  # the framework is not installed
        return {**row, "status": "unavailable", "reason": str(error)}
    row["neuron_setting"] = setting
    if defaults:  # how this framework's own neuron differs from the canonical one, and why
        row["neuron_differences"] = settings.neuron_differences(framework, canonical)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    distributed = Distributed.from_task(task)
    trace_path = None
    if task.get("trace_dir"):
        rank = "" if distributed is None else f"_rank{distributed.rank}"
        trace_path = Path(task["trace_dir"]) / (
            f"e2e_{framework}_{task['model']}_{task['dataset']}{rank}.json"
        )
    if distributed is not None:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        distributed.join()
    try:
        result = train_direct(
            network,
            data,
            device=device,
            epochs=task["epochs"],
            batch_size=task["batch_size"],
            lr=task["lr"],
            seed=task["seed"],
            max_steps=task.get("steps"),
            trace_path=trace_path,
            distributed=distributed,
        )
        if distributed is not None:
            result.update(_across_ranks(result, distributed))
    finally:
        if distributed is not None:
            Distributed.leave()
    return {
        **row,
        "status": "ok",
        "dataset_source": data.source,
        "test_samples": len(data.test_y),
        "network": spec.describe(),
        "notes": network.notes,
        "peak_bytes": _peak_bytes(device),
        "peak_kind": _peak_kind(device),
        **result,
    }


def _across_ranks(result: dict[str, Any], distributed: Distributed) -> dict[str, Any]:
    """Each rank's throughput and communication, gathered on rank 0; the total throughput."""
    mine = {
        "rank": distributed.rank,
        "steps": result["steps"],
        "step_median_s": result["step_median_s"],
        "samples_per_s": result["samples_per_s"],
        "communication_s": result["breakdown_s"].get("communication", 0.0),
        "profiled_step_s": result["instrumented_step_s"],
    }
    ranks = gather_ranks(mine)
    extra: dict[str, Any] = {"rank": distributed.rank, "world_size": distributed.world_size}
    if ranks is not None:
        extra["ranks"] = ranks
        extra["total_samples_per_s"] = sum(r["samples_per_s"] for r in ranks)
    return extra


def _spec(task: dict[str, Any], data) -> NetworkSpec:
    return NetworkSpec(
        kind=task["model"],
        input_shape=data.input_shape,
        classes=data.classes,
        weight_gain=task["weight_gain"],
    )


def _load(task: dict[str, Any]):
    return load_dataset(
        task["dataset"],
        task.get("data_dir"),
        seed=task["seed"],
        limit_train=task.get("limit_train"),
        limit_test=task.get("limit_test"),
    )


def run_ann(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: trains the ANN twin of the network once and saves it for the converters."""
    device = torch.device(task["device"])
    data = _load(task)
    spec = _spec(task, data)
    ann = conversion.build_ann(spec, task["seed"])
    result = conversion.train_ann(
        ann, data, device=device, epochs=task["epochs"], batch_size=task["batch_size"],
        lr=task["lr"], seed=task["seed"], max_steps=task.get("steps"),
    )  # fmt: skip
    conversion.save_ann(ann, Path(task["ann_path"]))
    return {"status": "ok", "dataset_source": data.source, "network": spec.describe(), **result}


def run_conversion(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: converts the saved ANN with ``task['framework']`` (or, for a route
    that trains its own SNN, trains it) and tests it over T."""
    framework = task["framework"]
    row: dict[str, Any] = {"framework": framework}
    try:
        route = conversion.check_route(framework)  # before any data is loaded
    except Unsupported as error:
        return {**row, "status": "unsupported", "reason": str(error)}
    except RuntimeError as error:  # the framework is not installed
        return {**row, "status": "unavailable", "reason": str(error)}
    device = torch.device(task["device"])
    data = _load(task)
    spec = _spec(task, data)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if isinstance(route, TrainedRoute):  # the framework trains its own SNN from the data
        try:
            snn = route.build(spec, task["T"], task["seed"], task.get("steps"))
        except Unsupported as error:
            return {**row, "status": "unsupported", "reason": str(error)}
        snn.to(device)
        row["route"] = route.summary
        row["training"] = conversion.train_route(
            snn, data, device=device, epochs=task["epochs"], batch_size=task["batch_size"],
            seed=task["seed"], max_steps=task.get("steps"),
        )  # fmt: skip
        convert_s = None  # nothing is converted: its time is the training's
    else:
        ann = conversion.load_ann(spec, task["seed"], Path(task["ann_path"]), device)
        calibration = conversion.calibration_batches(data, task["batch_size"])
        calibration = [x.to(device) for x in calibration]
        row["route"] = "converts the shared trained ANN"
        start = time.perf_counter()
        snn = conversion.convert(framework, ann, calibration, spec)
        convert_s = time.perf_counter() - start
    result = conversion.evaluate_over_t(
        snn, data, device=device, steps=task["T"], batch_size=task["batch_size"]
    )
    trace_path = None
    if task.get("trace_dir"):
        # one test batch through all T steps, with the converted network's layers as ranges
        trace_path = Path(task["trace_dir"]) / (
            f"e2e_conversion_{framework}_{task['model']}_{task['dataset']}.json"
        )
        x = data.test_x[: task["batch_size"]].to(device)
        profile_call(lambda: snn.readout(x, task["T"]), device, trace_path)
    return {
        **row,
        "status": "ok",
        "trace": None if trace_path is None else str(trace_path),
        "notes": snn.notes,
        "convert_s": convert_s,
        "peak_bytes": _peak_bytes(device),
        "peak_kind": _peak_kind(device),
        **result,
    }


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_kind(device: torch.device) -> str:
    return "CUDA allocator peak" if device.type == "cuda" else "process peak RSS"
