"""Analysis of results documents: traffic and bandwidth, speedups, e2e attribution.

Pure functions over measured records; nothing here measures or formats.
"""

from __future__ import annotations

from typing import Any

import torch

from kernelprof.inputs import DTYPES

TRUSTED_VERDICTS = ("exact", "close")


def traffic_bytes(steps: int, neurons: int, dtype: torch.dtype) -> dict[str, int]:
    """Bytes the fused algorithm must move, at storage precision, per phase.

    Forward reads X and writes S and the state backward needs (3 passes over [T, N]); backward
    reads dS and that state and writes dX (3 passes). Every implementation is held to the same
    count, so GB/s compares times directly; one that moves more shows a lower figure.
    """
    one_pass = steps * neurons * torch.finfo(dtype).bits // 8
    return {"fwd": 3 * one_pass, "bwd": 3 * one_pass, "fwd+bwd": 6 * one_pass}


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
    trusted = [row for row in timed if row["verdict"] in TRUSTED_VERDICTS]
    candidates = [row for row in trusted if not row.get("reference")]
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
