"""``kernelprof e2e``: each framework trains the same network in its own worker, then the
step-time differences are attributed to categories of work.

Attribution: for each framework, its median step breakdown minus the fastest framework's, per
category (data loading, host-to-device copy, forward and backward of each layer type, loss,
optimizer, other), largest first, e.g. "+41 ms/step: lif bwd +22, lif fwd +15, conv fwd +1".
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import torch

from kernelprof.e2e.data import load_dataset
from kernelprof.e2e.networks import NetworkSpec, build_network
from kernelprof.e2e.train import train_direct
from kernelprof.harness.energy import energy_counter
from kernelprof.impls.registry import Unsupported
from kernelprof.lif import LIFConfig


def run_framework(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: loads the data, builds ``task['framework']``'s network, trains it."""
    framework = task["framework"]
    row: dict[str, Any] = {"framework": framework}
    device = torch.device(task["device"])
    data = load_dataset(
        task["dataset"],
        task.get("data_dir"),
        seed=task["seed"],
        limit_train=task.get("limit_train"),
        limit_test=task.get("limit_test"),
    )
    spec = NetworkSpec(
        kind=task["model"],
        input_shape=data.input_shape,
        classes=data.classes,
        weight_gain=task["weight_gain"],
    )
    try:
        network = build_network(
            spec, framework, LIFConfig(**task["config"]), task["T"], task["seed"]
        )
    except Unsupported as error:
        return {**row, "status": "unsupported", "reason": str(error)}
    except RuntimeError as error:  # the framework is not installed
        return {**row, "status": "unavailable", "reason": str(error)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trace_path = None
    if task.get("trace_dir"):
        trace_path = (
            Path(task["trace_dir"]) / f"e2e_{framework}_{task['model']}_{task['dataset']}.json"
        )
    counter = energy_counter(device)
    energy_start = None if isinstance(counter, str) else counter.read_joules()
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
        trace_label=framework,
    )
    if isinstance(counter, str):
        energy = {"joules_per_epoch": None, "reason": counter}
    else:
        joules = counter.read_joules() - energy_start
        energy = {
            "joules_per_epoch": joules / max(1, task["epochs"]),
            "reason": f"{counter.name}, whole device, idle not subtracted",
        }
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        **row,
        "status": "ok",
        "dataset_source": data.source,
        "network": spec.describe(),
        "notes": network.notes,
        "peak_bytes": peak,
        "peak_kind": "CUDA allocator peak" if device.type == "cuda" else "process peak RSS",
        "energy": energy,
        "trace": None if trace_path is None else str(trace_path),
        **result,
    }


def attribution(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each trained framework's step-time difference from the fastest, split by category."""
    trained = [row for row in rows if row.get("status") == "ok"]
    if not trained:
        return {"fastest": None, "differences": {}}
    fastest = min(trained, key=lambda row: row["instrumented_step_s"])
    base = fastest["breakdown_s"]
    differences = {}
    for row in trained:
        if row is fastest:
            continue
        labels = set(base) | set(row["breakdown_s"])
        by_category = {
            label: row["breakdown_s"].get(label, 0.0) - base.get(label, 0.0) for label in labels
        }
        differences[row["framework"]] = {
            "total_s": row["instrumented_step_s"] - fastest["instrumented_step_s"],
            "by_category_s": dict(
                sorted(by_category.items(), key=lambda item: abs(item[1]), reverse=True)
            ),
        }
    return {"fastest": fastest["framework"], "differences": differences}


def describe_difference(framework: str, difference: dict[str, Any], top: int = 5) -> str:
    """One line: '+41.0 ms/step: lif bwd +22.1, lif fwd +15.3, ...'."""
    parts = [
        f"{label} {1e3 * seconds:+.1f}"
        for label, seconds in list(difference["by_category_s"].items())[:top]
    ]
    return f"{framework}: {1e3 * difference['total_s']:+.1f} ms/step: " + ", ".join(parts)
