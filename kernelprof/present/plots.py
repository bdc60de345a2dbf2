"""Pictures of results (matplotlib, headless): compare's times and bandwidth, e2e breakdowns,
attribution waterfalls, conversion accuracy against T, a profile's step by category and its
neuron layers against the copy bandwidth. Each function returns a Figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

from kernelprof.results.compare import CompareCase, CompareDocument  # noqa: E402
from kernelprof.results.e2e import ConversionDocument, E2EDocument  # noqa: E402
from kernelprof.results.profile import ProfileDocument  # noqa: E402

WATERFALL_BARS = 8  # categories drawn one by one in an attribution waterfall; the rest summed


def compare_plot(document: CompareDocument, path: Path) -> Path:
    """:func:`time_vs_t`, saved to ``path`` (PNG)."""
    figure = time_vs_t(document)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def time_vs_t(document: CompareDocument):
    """Two panels per neuron, dtype and N: fwd+bwd median time vs T (log scale) and % of the
    measured copy bandwidth vs T, one line per timed implementation."""
    series: dict[tuple, dict[str, list[tuple[int, float, float]]]] = {}
    for run in document.cases:
        case = run.case
        key = (case.neuron, case.dtype, case.N)
        for row in run.timed_rows:
            total = row.timings["fwd+bwd"]
            series.setdefault(key, {}).setdefault(row.impl, []).append(
                (case.T, 1e3 * total.device_s, 100 * row.bandwidth["fwd+bwd"].copy_fraction)
            )
    if not series:
        raise ValueError("no timed rows to plot")
    figure, axes = plt.subplots(
        len(series), 2, figsize=(12, 4.2 * len(series)), squeeze=False, constrained_layout=True
    )
    for (neuron, dtype, neurons), (time_axis, bandwidth_axis) in zip(series, axes, strict=True):
        for impl, points in sorted(series[(neuron, dtype, neurons)].items()):
            points.sort()
            steps = [p[0] for p in points]
            marker = "o" if len(points) > 1 else "s"
            time_axis.plot(steps, [p[1] for p in points], marker=marker, label=impl)
            bandwidth_axis.plot(steps, [p[2] for p in points], marker=marker, label=impl)
        time_axis.set(
            xlabel="T (time steps)", ylabel="fwd+bwd device time, median (ms)", yscale="log",
            title=f"{neuron.upper()} fwd+bwd time, N={neurons:,}, {dtype}",
        )  # fmt: skip
        bandwidth_axis.set(
            xlabel="T (time steps)", ylabel="% of measured copy bandwidth",
            title=f"achieved bandwidth (copy: {document.copy_bandwidth_gb_per_s:.1f} GB/s)",
        )  # fmt: skip
        for axis in (time_axis, bandwidth_axis):
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize=8)
    return figure


# ---- figures of `kernelprof report` (each returns a matplotlib Figure; the caller saves it) ----


def compare_bars(run: CompareCase):
    """fwd and bwd median (ms) per implementation, and % of copy bandwidth, for one case."""
    rows = run.timed_rows
    if not rows:
        raise ValueError("no timed rows in this case")
    names = [row.impl for row in rows]
    figure, (time_axis, bandwidth_axis) = plt.subplots(
        1, 2, figsize=(12, 0.45 * len(rows) + 2.0), constrained_layout=True
    )
    positions = list(range(len(rows)))
    height = 0.38
    for offset, phase in ((-height / 2, "fwd"), (height / 2, "bwd")):
        values = [1e3 * row.timings[phase].device_s for row in rows]
        time_axis.barh([p + offset for p in positions], values, height=height, label=phase)
    time_axis.set(yticks=positions, yticklabels=names, xlabel="device time, median ms",
                  xscale="log",
                  title="forward and backward")  # fmt: skip
    time_axis.invert_yaxis()
    time_axis.legend()
    fractions = [100 * row.bandwidth["fwd+bwd"].copy_fraction for row in rows]
    bandwidth_axis.barh(positions, fractions, color="tab:green")
    bandwidth_axis.set(yticks=positions, yticklabels=names, xlabel="% of measured copy bandwidth",
                       title="fwd+bwd achieved bandwidth")  # fmt: skip
    bandwidth_axis.invert_yaxis()
    for axis in (time_axis, bandwidth_axis):
        axis.grid(True, axis="x", alpha=0.3)
    figure.suptitle(f"{run.case.neuron.upper()} {run.case.label} on {run.device.name}")
    return figure


def breakdown_bars(document: E2EDocument):
    """e2e: each framework's median profiled step, stacked by category."""
    rows = document.trained
    if not rows:
        raise ValueError("no trained framework")
    labels = sorted({label for row in rows for label in row.training.breakdown_s})
    figure, axis = plt.subplots(figsize=(10, 0.55 * len(rows) + 2.2), constrained_layout=True)
    left = [0.0] * len(rows)
    colours = plt.get_cmap("tab20")
    positions = list(range(len(rows)))
    for index, label in enumerate(labels):
        values = [1e3 * row.training.breakdown_s.get(label, 0.0) for row in rows]
        axis.barh(positions, values, left=left, label=label, color=colours(index % 20))
        left = [a + b for a, b in zip(left, values, strict=True)]
    axis.set(yticks=positions, yticklabels=[row.framework for row in rows],
             xlabel="ms per training step (profiled)",
             title="where a training step goes")  # fmt: skip
    axis.invert_yaxis()
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axis.grid(True, axis="x", alpha=0.3)
    return figure


def attribution_waterfall(document: E2EDocument, framework: str):
    """e2e: from the fastest framework's step to ``framework``'s, one bar per category."""
    attribution = document.attribution
    difference = attribution.differences[framework]
    fastest = next(r for r in document.rows if r.framework == attribution.fastest)
    base = 1e3 * fastest.training.profiled_step_s
    items = list(difference.by_category_s.items())  # largest change first
    steps = [(label, 1e3 * value) for label, value in items[:WATERFALL_BARS]]
    rest = sum(value for _, value in items[WATERFALL_BARS:])
    if items[WATERFALL_BARS:]:
        steps.append((f"{len(items) - WATERFALL_BARS} more", 1e3 * rest))
    figure, axis = plt.subplots(figsize=(10, 3.6), constrained_layout=True)
    axis.bar(0, base, color="tab:gray")
    level = base
    for index, (_, delta) in enumerate(steps, start=1):
        axis.bar(index, delta, bottom=level, color="tab:red" if delta > 0 else "tab:green")
        level += delta
    axis.bar(len(steps) + 1, level, color="tab:blue")
    axis.set_xticks(range(len(steps) + 2))
    axis.set_xticklabels([attribution.fastest, *[label for label, _ in steps], framework],
                         rotation=35, ha="right", fontsize=8)  # fmt: skip
    axis.set(ylabel="ms per step", title=f"{framework} against {attribution.fastest}: "
             f"{1e3 * difference.total_s:+.2f} ms/step")  # fmt: skip
    axis.grid(True, axis="y", alpha=0.3)
    return figure


def accuracy_vs_t(document: ConversionDocument):
    """e2e conversion: each converted network's test accuracy against T, and the ANN's."""
    rows = document.converted
    if not rows:
        raise ValueError("no converted network")
    figure, axis = plt.subplots(figsize=(8, 4.2), constrained_layout=True)
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
    for index, row in enumerate(rows):
        accuracy = row.conversion.accuracy_by_T
        marker, line = styles[index % len(styles)]  # equal curves stay visible on each other
        axis.plot([int(t) for t in accuracy], [100 * a for a in accuracy.values()], marker=marker,
                  linestyle=line, markersize=8 - 1.5 * index, label=row.framework)  # fmt: skip
    ann = document.ann
    if ann is not None and ann.status == "ok":
        axis.axhline(100 * ann.test_accuracy, color="black", linestyle="--", label="ANN")
    axis.set(xscale="log", xlabel="T (time steps)", ylabel="test accuracy (%)",
             title="ANN-to-SNN conversion: accuracy against T")  # fmt: skip
    axis.set_xscale("log", base=2)
    axis.grid(True, alpha=0.3)
    axis.legend()
    return figure


def profile_bar(document: ProfileDocument):
    """profile: the median profiled step, one bar stacked by category."""
    figure, axis = plt.subplots(figsize=(10, 2.6), constrained_layout=True)
    left = 0.0
    colours = plt.get_cmap("tab20")
    for index, (label, us) in enumerate(document.categories_us.items()):
        value = max(0.0, us / 1e3)
        axis.barh([0], [value], left=left, label=label, color=colours(index % 20))
        left += value
    axis.set(yticks=[], xlabel="ms per training step (profiled)",
             title=f"where a training step goes ({document.time_kind} time)")  # fmt: skip
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    axis.grid(True, axis="x", alpha=0.3)
    return figure


def profile_memory(document: ProfileDocument):
    """profile: bytes saved for backward per layer, and each neuron layer's firing rate."""
    inspection = document.inspection
    categories = {layer.name: layer.category for layer in document.layers}
    layers = sorted(inspection.layers, key=lambda counts: -counts.saved_bytes)
    spiking = [counts for counts in layers if counts.rate is not None]
    figure, (memory, rates) = plt.subplots(
        1, 2, figsize=(10, 0.35 * max(len(layers), 3) + 1.6), constrained_layout=True,
        gridspec_kw={"width_ratios": (3, 2)})  # fmt: skip
    positions = list(range(len(layers)))
    memory.barh(positions, [counts.saved_bytes / 2**20 for counts in layers],
                color=["tab:orange" if categories.get(c.name) == "neuron" else "tab:blue"
                       for c in layers])  # fmt: skip
    memory.set(yticks=positions, yticklabels=[counts.name for counts in layers],
               xlabel="MiB saved for backward (orange: neuron layers)",
               title="memory the step keeps for its backward")  # fmt: skip
    memory.invert_yaxis()
    memory.grid(True, axis="x", alpha=0.3)
    if spiking:
        places = list(range(len(spiking)))
        rates.barh(places, [100 * counts.rate for counts in spiking], color="tab:orange")
        for place, counts in zip(places, spiking, strict=True):
            if counts.rate_per_step:  # the range over the time steps
                low, high = min(counts.rate_per_step), max(counts.rate_per_step)
                rates.plot([100 * low, 100 * high], [place, place], color="black", lw=1.5)
        rates.set(
            yticks=places,
            yticklabels=[counts.name for counts in spiking],
            xlabel="firing rate % (line: range over time steps)",
            title="spikes",
        )
        rates.invert_yaxis()
        rates.grid(True, axis="x", alpha=0.3)
    else:
        rates.set_axis_off()
        rates.text(0.5, 0.5, "no layer with binary outputs", ha="center", va="center")
    return figure


def profile_roofline(document: ProfileDocument):
    """profile: each neuron layer's measured time against its time at the copy bandwidth."""
    neurons = [layer for layer in document.layers if layer.neuron is not None]
    if not neurons or document.roofline is None:
        raise ValueError("no neuron layers against a measured copy bandwidth")
    figure, axis = plt.subplots(figsize=(10, 0.45 * len(neurons) + 1.8), constrained_layout=True)
    positions = list(range(len(neurons)))
    measured = [layer.neuron.time_us / 1e3 for layer in neurons]
    ideal = [(layer.neuron.at_copy_us or 0.0) / 1e3 for layer in neurons]
    axis.barh(positions, measured, color="tab:orange", label="measured (fwd + bwd)")
    axis.barh(positions, ideal, color="tab:blue", label="at the copy bandwidth")
    axis.set(yticks=positions, yticklabels=[layer.name for layer in neurons],
             xlabel="ms per training step",
             title=f"neuron layers against the copy bandwidth "
                   f"({document.roofline.copy_bandwidth / 1e9:.3g} GB/s)")  # fmt: skip
    axis.invert_yaxis()
    axis.legend(fontsize=8)
    axis.grid(True, axis="x", alpha=0.3)
    return figure
