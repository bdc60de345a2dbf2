"""``kernelprof profile``'s tables: the step by category, the layers (slowest first) with their
top operations, the neuron layers against the copy bandwidth, and ``profile diff``."""

from __future__ import annotations

import resource
import statistics

from rich.text import Text

from kernelprof.present.tables import WIDTH, fill, plain, significant, table
from kernelprof.results.energy import format_joules
from kernelprof.results.profile import Layer, ProfileDocument


def _ms(us: float) -> str:
    return significant(us / 1e3, 3)


def _share(us: float, step_us: float) -> str:
    return f"{100 * us / step_us:.1f}" if step_us else ""


def headline(document: ProfileDocument) -> str:
    """One line: the step, where it was measured, and how the profile went."""
    task = document.task
    if document.status == "error":
        return f"kernelprof profile: {document.reason}"
    breakdown = document.breakdown
    low, high = breakdown.profiled_over_plain_interval
    what = "device time (kernels)" if document.time_kind == "device" else "host time"
    line = (f"profiled step {_ms(document.step_us)} ms ({what}, the middle half of "
            f"{breakdown.coarse.steps} steps on {task.device}; steps end at {task.marker}); "
            f"plain step {_ms(breakdown.plain_step_us)} ms: profiled/plain "
            f"{breakdown.profiled_over_plain:.3f} (95 % interval {low:.3f}-"
            f"{high:.3f})")  # fmt: skip
    if document.status == "partial":
        line += f"; partial: {document.reason}"
    return line


def categories_table(document: ProfileDocument):
    step = document.step_us
    cells = [[name, _ms(us), _share(us, step)] for name, us in document.categories_us.items()]
    total = sum(document.categories_us.values())
    cells.append(["(sum)", _ms(total), _share(total, step)])
    into = table("the step by category")
    fill(into, ("category", "ms", "% step"), cells, 1)
    return into


def layers_table(document: ProfileDocument, top: int):
    step = document.step_us
    shown = document.layers[:top]
    cells = []
    for layer in shown:
        operations = ", ".join(f"{op.name.removeprefix('aten::')} {_ms(op.us)}"
                               for op in layer.operations[:3])  # fmt: skip
        cells.append([layer.name, _type(layer), layer.category, f"{layer.calls:g}",
                      _ms(layer.fwd_us), _ms(layer.bwd_us), _share(layer.total_us, step),
                      operations])  # fmt: skip
    kind = "kernels" if document.time_kind == "device" else "operators"
    into = table(f"layers, slowest first ({len(shown)} of {len(document.layers)})")
    fill(into, ("layer", "type", "category", "calls", "fwd ms", "bwd ms", "% step",
                f"top {kind} (ms)"), cells, 3)  # fmt: skip
    into.columns[-1].no_wrap = False
    into.columns[-1].max_width = 44
    return into


def _type(layer: Layer) -> str:
    return layer.type.rsplit(".", 1)[-1]


def roofline_table(document: ProfileDocument):
    roofline = document.roofline
    if roofline is None:
        return None
    cells = []
    for layer in document.layers:
        figures = layer.neuron
        if figures is None:
            continue
        fraction = "" if figures.copy_fraction is None else f"{100 * figures.copy_fraction:.1f}"
        framework = figures.framework + (f" ({figures.canonical})" if figures.canonical else "")
        cells.append([layer.name, framework, figures.path, str(figures.T),
                      f"{figures.neurons:,}", figures.dtype,
                      significant((figures.fwd_bytes + figures.bwd_bytes) / 2**20, 3),
                      _ms(figures.time_us), fraction, _ms(figures.saved_us or 0.0)])  # fmt: skip
    into = table(
        "neuron layers against the copy bandwidth "
        f"({significant(roofline.copy_bandwidth / 1e9, 3)} GB/s measured in this run)"
    )
    fill(into, ("layer", "framework (canonical neuron)", "code path", "T", "neurons", "dtype",
                "MiB moved", "ms", "% copy BW", "ms saved"), cells, 3)  # fmt: skip
    for column in (1, 2):
        into.columns[column].no_wrap = False
        into.columns[column].max_width = 36
    into.caption = (f"neuron layers: {100 * roofline.neuron_share:.0f} % of the step; at copy "
                    f"bandwidth {100 * roofline.at_copy_share:.1f} %: the step at most "
                    f"{roofline.max_speedup:.2f}x faster. Bytes: the canonical fused "
                    "algorithm's (3 passes over T x neurons forward, 3 backward), as compare "
                    "counts them.")  # fmt: skip
    return into


INSPECTION_HEADER = ("layer", "category", "saved MiB", "% saved", "rate %", "per t %",
                     "silent %", "synops", "MACs", "spikes from")  # fmt: skip


def inspection_rows(document: ProfileDocument) -> tuple[list[list[str]], str]:
    """The inspected step's rows (most bytes saved first), and the caption that reads them."""
    inspection = document.inspection
    categories = {layer.name: layer.category for layer in document.layers}
    saved = inspection.saved_bytes
    rows = []
    for counts in sorted(inspection.layers, key=lambda c: -c.saved_bytes):
        rate, silent = counts.rate, counts.silent
        spread = ""
        if counts.rate_per_step:
            low, high = min(counts.rate_per_step), max(counts.rate_per_step)
            spread = f"{100 * low:.1f}-{100 * high:.1f}"
        rows.append([counts.name, categories.get(counts.name, ""),
                     _mib(counts.saved_bytes),
                     _share(counts.saved_bytes, saved) if saved else "",
                     "" if rate is None else f"{100 * rate:.2f}", spread,
                     "" if silent is None else f"{100 * silent:.1f}",
                     _count(counts.synops), _count(counts.macs),
                     ", ".join(counts.sources)])  # fmt: skip
    neuron = sum(c.saved_bytes for c in inspection.layers if categories.get(c.name) == "neuron")
    peak = (f"peak {_mib(inspection.peak_bytes)} MiB"
            if inspection.peak_bytes is not None else f"peak {inspection.peak_source}")  # fmt: skip
    caption = (f"saved for backward: {_mib(saved)} MiB, neuron layers "
               f"{_share(neuron, saved) if saved else '0'} % of it; parameters saved "
               f"{_mib(inspection.parameter_bytes)} MiB (not counted); "
               f"{peak}. rate: spikes over outputs; per t: its range over the time steps; "
               "silent: (sample, neuron) pairs that never fired; synops: accumulates of "
               "spike inputs; MACs: of dense inputs, any value but 0 and 1 (spikes "
               "through an average pool, say); both exact, counted on the layer.")  # fmt: skip
    return rows, caption


def inspection_title(document: ProfileDocument) -> str:
    return (f"memory, spikes and operations (step {document.inspection.step + 1} of the "
            "script, untimed)")  # fmt: skip


def inspection_table(document: ProfileDocument):
    """Memory saved for backward, spikes and operations per layer, from the inspected step."""
    if document.inspection is None or not document.inspection.layers:
        return None
    rows, caption = inspection_rows(document)
    into = table(inspection_title(document))
    fill(into, INSPECTION_HEADER, rows, 2)
    into.caption = caption
    return into


def neuron_memory_lines(document: ProfileDocument) -> list[str]:
    """Each neuron layer's saved bytes, a time step's worth, and what a fused kernel keeps."""
    if document.inspection is None:
        return []
    lines = []
    for layer in document.layers:
        counts = document.inspection.of(layer.name)
        if layer.neuron is None or counts is None or not counts.saved_bytes:
            continue
        figures, saved = layer.neuron, counts.saved_bytes
        fused = figures.tensor_bytes
        lines.append(f"{layer.name}: saves {_mib(saved)} MiB for backward over T={figures.T} "
                     f"({_mib(saved / figures.T)} MiB a time step, {saved / fused:.1f} [T, "
                     f"neurons] tensors); kernelprof's fused LIF keeps one ({_mib(fused)} MiB: "
                     f"the margin, or with save=\"recompute\" only its input), "
                     f"{_mib(max(0, saved - fused))} MiB less")  # fmt: skip
    return lines


def _mib(nbytes: float) -> str:
    return significant(nbytes / 2**20, 3)


def _count(value: int | None) -> str:
    if value is None:
        return ""
    return f"{value / 1e6:.3g}M" if value >= 10**6 else f"{value:,}"


def energy_lines(document: ProfileDocument) -> list[str]:
    energy = document.energy
    if energy is None:
        return []
    per_sample = (f", {format_joules(energy.per_sample_j)} per sample (batch {energy.samples})"
                  if energy.per_sample_j is not None else "")  # fmt: skip
    lines = [f"energy estimated from operations: {format_joules(energy.forward_j)} a forward "
             f"pass{per_sample}: {energy.synops:,} synops x {energy.ac_pj} pJ + {energy.macs:,}"
             f" MACs x {energy.mac_pj} pJ ({energy.source})"]  # fmt: skip
    measured = energy.measured
    if measured is None or not measured.available:
        reason = measured.unavailable_reason if measured is not None else "n/a: not measured"
        lines.append(f"energy measured: {reason}")
    else:
        ratio = measured.joules_per_unit / energy.forward_j if energy.forward_j else None
        lines.append(f"energy measured: {format_joules(measured.joules_per_unit)} a training "
                     f"step above idle ({measured.counter}; {measured.scope})"
                     + (f": {ratio:,.0f}x the forward estimate" if ratio else ""))  # fmt: skip
        lines += [f"energy: {flag.message}" for flag in measured.flags]
    return lines


FASTER_HEADER = (
    "layers",
    "path",
    "checks",
    "step ms",
    "speedup (95 %)",
    "saved MiB",
    "peak MiB",
    "",
)


def faster_rows(document: ProfileDocument) -> list[list[str]]:
    """A row per path the search tried: the layers it stands in for, its checks, the step
    with the layers' own -> with it, the speedup, saved-for-backward and peak memory."""
    search, inspection = document.faster, document.inspection
    if search is None:
        return []
    base_ms = 1e3 * statistics.median(search.base_s) if search.base_s else None
    rows = []
    for path in search.paths:
        checks = "; ".join(f"{check.layer} {check.verdict}" + ("" if check.verdict in
                           ("exact", "close") else f" ({check.reason})")
                           for check in path.checks)  # fmt: skip
        speedup = document.faster_speedups.get(path.change)
        step = saved = peak = ""
        if speedup is not None and base_ms is not None:
            step = (f"{significant(base_ms, 3)} -> "
                    f"{significant(1e3 * statistics.median(path.step_s), 3)}")  # fmt: skip
        if path.saved_bytes is not None and inspection is not None:
            saved = f"{_mib(inspection.saved_bytes)} -> {_mib(path.saved_bytes)}"
        if path.peak_bytes is not None and inspection is not None and inspection.peak_bytes:
            peak = f"{_mib(inspection.peak_bytes)} -> {_mib(path.peak_bytes)}"
        rows.append([", ".join(path.layers) or "none", f"{path.change} ({path.path})", checks,
                     step, f"{speedup.value:.2f}x ({speedup.low:.2f}-{speedup.high:.2f})"
                     if speedup else "", saved, peak, path.problem])  # fmt: skip
    rows += [[layer, "no other path", why, "", "", "", "", ""]
             for layer, why in search.none.items()]  # fmt: skip
    return rows


def faster_lines(document: ProfileDocument) -> list[str]:
    """The faster-path search in lines: each path, its checks, its measured step and memory."""
    search = document.faster
    if search is None:
        return []
    lines = [f"faster paths for the neuron layers (checked on each layer's input in a step, "
             f"then {search.rounds} rounds of plain steps beside the layers' own):"]  # fmt: skip
    rows = faster_rows(document)
    for path, row in zip(search.paths, rows, strict=False):
        layers, change, checks, step, speedup, saved, peak, problem = row
        if not path.checks:
            lines.append(f"  {path.change}: {problem}")
            continue
        parts = [f"  {layers}: {change}: {checks}"]
        if step:
            measured = document.faster_speedups[path.change]
            parts.append(f"step {step} ms: {measured.value:.2f}x (95 % {measured.low:.2f}-"
                         f"{measured.high:.2f}, {measured.rounds} rounds)")  # fmt: skip
        parts += [f"saved for backward {saved} MiB"] if saved else []
        parts += [f"peak {peak} MiB"] if peak else []
        parts += [problem] if problem else []
        lines.append("; ".join(parts))
    lines += [f"  {layer}: no other path ({why})" for layer, why in search.none.items()]
    if not search.paths and not search.none and not search.problems:
        lines.append("  no neuron layer was called in the recording step")
    lines += [f"  problem: {problem}" for problem in search.problems]
    return lines


def notes(document: ProfileDocument) -> list[str]:
    lines = []
    breakdown = document.breakdown
    if breakdown is not None:
        if not breakdown.matches_plain_step:
            low, high = breakdown.profiled_over_plain_interval
            lines.append(f"profiled steps differ from plain ones beyond 5 % ({low:.3f}-"
                         f"{high:.3f}): the profiler's ranges cost this step that "
                         "much")  # fmt: skip
        faults = breakdown.faults_per_step
        if faults:  # pages first touched: memory mapped anew in every step
            touched = faults * resource.getpagesize() / 2**20
            lines.append(f"page faults: {faults:,.0f} a plain step ({touched:,.1f}"
                         " MiB touched anew: memory the allocator handed back to the system and"
                         " maps again, part of the step's time on the CPU)")  # fmt: skip
        lines.append(f"operations trace (every operator recorded): "
                     f"{100 * breakdown.detailed_overhead:+.0f} % over the plain step; "
                     f"traces: {breakdown.coarse.path}, {breakdown.detailed.path}")  # fmt: skip
    if document.uncategorised:
        names = ", ".join(name.rsplit(".", 1)[-1] for name in document.uncategorised)
        lines.append(f"layers of no category (counted as other): {names}")
    lines += [f"problem: {problem}" for problem in document.problems]
    if document.inspection is not None:
        lines += [f"problem: {problem}" for problem in document.inspection.problems]
    lines += [f"note: {note}" for note in document.notes]
    return lines


def renderables(document: ProfileDocument, top: int = 15) -> list:
    found: list = [Text(headline(document))]
    if document.status != "error":
        found += [categories_table(document), layers_table(document, top)]
        for extra in (roofline_table(document), inspection_table(document)):
            if extra is not None:
                found.append(extra)
    lines = (
        neuron_memory_lines(document)
        + energy_lines(document)
        + faster_lines(document)
        + notes(document)
    )
    if lines:
        found.append(plain(lines))
    return found


def summary_line(document: ProfileDocument, exit_code: int) -> str:
    """The one line after a script that failed: what was profiled and where it went."""
    if document.status == "error":
        return f"kernelprof profile: {document.reason}"
    return (
        f"kernelprof profile: the script exited with code {exit_code}; "
        f"{document.breakdown.coarse.steps} profiled steps were kept "
        f"({document.reason or 'complete'})"
    )


# ---- profile diff -----------------------------------------------------------------------------


def diff_renderables(comparison, a: str, b: str) -> list:
    step = comparison.step_us
    head = Text(f"B ({b}) minus A ({a}): step {_ms(step['a'])} -> {_ms(step['b'])} ms "
                f"({_ms(step['delta'])} ms)")  # fmt: skip
    found: list = [head]
    for title, rows in (("by category", comparison.categories_by),
                        ("by layer", comparison.layers_by)):  # fmt: skip
        cells = []
        for row in rows:
            operations = ", ".join(f"{op.name.removeprefix('aten::')} {_ms(op.delta_us)}"
                                   for op in row.operations[:3])  # fmt: skip
            cells.append([row.name, _ms(row.a_us), _ms(row.b_us), _ms(row.delta_us),
                          operations])  # fmt: skip
        into = table(f"{title}, largest change first")
        fill(into, ("", "A ms", "B ms", "B-A ms", f"top {comparison.named} changes (ms)"),
             cells, 1)  # fmt: skip
        into.columns[-1].no_wrap = False
        found.append(into)
    if comparison.counts_by:
        found.append(_counts_diff(comparison))
    return found


def _counts_diff(comparison):
    """The inspected steps side by side: memory saved for backward, firing rates, operations."""

    def rate(counts) -> str:
        return "" if counts is None or counts.rate is None else f"{100 * counts.rate:.2f}"

    def operations(counts) -> str:
        if counts is None or (counts.synops is None and counts.macs is None):
            return ""
        return "/".join(_count(value) for value in (counts.synops, counts.macs))

    cells = [[change.name, _mib(change.a.saved_bytes if change.a else 0),
              _mib(change.b.saved_bytes if change.b else 0), _mib(change.saved_delta),
              rate(change.a), rate(change.b), operations(change.a), operations(change.b)]
             for change in comparison.counts_by]  # fmt: skip
    into = table("memory, spikes and operations, largest memory change first")
    fill(into, ("layer", "A MiB", "B MiB", "B-A MiB", "A rate %", "B rate %",
                "A synops/MACs", "B synops/MACs"), cells, 1)  # fmt: skip
    saved, forward = comparison.saved_bytes, comparison.forward_j
    caption = f"saved for backward {_mib(saved['a'])} -> {_mib(saved['b'])} MiB"
    if forward:
        caption += (f"; energy estimate of a forward pass {format_joules(forward['a'])} -> "
                    f"{format_joules(forward['b'])}")  # fmt: skip
    into.caption = caption
    return into


__all__ = ["WIDTH", "renderables", "diff_renderables", "headline", "summary_line"]
