"""Pictures of compare results (matplotlib, headless): time vs T and % of copy bandwidth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402


def compare_plot(document: dict[str, Any], path: Path) -> Path:
    """Two panels per dtype and N: fwd+bwd median time vs T (log scale) and % of the measured
    copy bandwidth vs T, one line per implementation with a trustworthy verdict."""
    series: dict[tuple, dict[str, list[tuple[int, float, float]]]] = {}
    for run in document["runs"]:
        case = run["case"]
        key = (case["dtype"], case["N"])
        for row in run["rows"]:
            if not row.get("timings"):
                continue
            total = row["timings"]["fwd+bwd"]
            series.setdefault(key, {}).setdefault(row["impl"], []).append(
                (case["T"], 1e3 * total["median_s"], 100 * total["copy_bandwidth_fraction"])
            )
    if not series:
        raise ValueError("no timed rows to plot")
    figure, axes = plt.subplots(
        len(series), 2, figsize=(12, 4.2 * len(series)), squeeze=False, constrained_layout=True
    )
    for (dtype, neurons), (time_axis, bandwidth_axis) in zip(series, axes, strict=True):
        for impl, points in sorted(series[(dtype, neurons)].items()):
            points.sort()
            steps = [p[0] for p in points]
            marker = "o" if len(points) > 1 else "s"
            time_axis.plot(steps, [p[1] for p in points], marker=marker, label=impl)
            bandwidth_axis.plot(steps, [p[2] for p in points], marker=marker, label=impl)
        time_axis.set(
            xlabel="T (time steps)", ylabel="fwd+bwd median (ms)", yscale="log",
            title=f"LIF fwd+bwd time, N={neurons:,}, {dtype}",
        )  # fmt: skip
        bandwidth_axis.set(
            xlabel="T (time steps)", ylabel="% of measured copy bandwidth",
            title=f"achieved bandwidth (copy: {document['copy_bandwidth_gb_per_s']:.1f} GB/s)",
        )  # fmt: skip
        for axis in (time_axis, bandwidth_axis):
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
