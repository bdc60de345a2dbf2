"""``kernelprof e2e`` shown: direct training's per-framework table, the step breakdown by
category and the attribution of each framework's difference from the fastest; conversion's
accuracy against T. Terminal tables, and Markdown. Reads records only."""

from __future__ import annotations

from rich.table import Table

from kernelprof.results.e2e import (
    ConversionDocument,
    ConversionRow,
    Difference,
    E2EDocument,
    NeuronDifferences,
    TrainingRow,
)

from .tables import energy_line, markdown_table, megabytes, plain
from .traces import describe_operations, drill_down_rows


def _table(title: str, columns: tuple[str, ...], first: str = "framework",
           justify: str = "left") -> Table:  # fmt: skip
    result = Table(title=title, title_justify="left", caption_justify="left")
    result.add_column(first, no_wrap=True, justify=justify)
    for column in columns:
        result.add_column(column, justify="right", no_wrap=True)
    return result


def neuron_difference_line(differences: NeuronDifferences) -> str:
    """A framework-defaults neuron against the canonical one, in a line: the written defaults
    that differ from their canonical values, then what check's machinery measured."""
    differing = [
        f"{s.setting} {s.default} (canonical {s.canonical})"
        for s in differences.settings
        if s.canonical is not None and not s.default.startswith(s.canonical.split()[0])
    ]
    check = differences.check
    measured = "no default neuron to check"
    if check is not None and check.same_neuron:
        measured = f"the same neuron as the canonical LIF (check: {check.verdict})"
    elif check is not None:
        measured = (
            f"on check's input {100 * check.spike_mismatch_fraction:.1f} % of spikes differ "
            f"(firing rate {100 * check.default_firing_rate:.1f} % vs canonical "
            f"{100 * check.canonical_firing_rate:.1f} %), dX cosine {check.grad_cosine:.2f}"
        )
    return "; ".join([*differing, measured])


def _not_run(table: Table, row: TrainingRow | ConversionRow) -> str:
    """A framework that did not train or convert: a dim row, and its reason for the caption."""
    table.add_row(row.framework, row.status, *[""] * (len(table.columns) - 2), style="dim")
    return f"{row.framework}: {row.status}: {row.reason}"


def setting_notes(row: TrainingRow) -> list[str]:
    if row.neuron_differences is None:
        return []
    return [f"{row.framework}: its default neuron: "
            f"{neuron_difference_line(row.neuron_differences)}"]  # fmt: skip


def describe_difference(framework: str, difference: Difference, top: int = 5) -> str:
    """One line: '+41.0 ms/step (plain steps +39.2): lif bwd +22.1, lif fwd +15.3, ...'."""
    parts = [f"{label} {1e3 * seconds:+.1f}"
             for label, seconds in list(difference.by_category_s.items())[:top]]  # fmt: skip
    return (f"{framework}: {1e3 * difference.total_s:+.1f} ms/step (plain steps "
            f"{1e3 * difference.plain_total_s:+.1f}): " + ", ".join(parts))  # fmt: skip


# ---- direct training ---------------------------------------------------------------------------


def document_renderables(document: E2EDocument | ConversionDocument) -> list:
    """Everything ``kernelprof e2e`` prints for a document (no empty table: a run in which no
    framework trained shows why each did not)."""
    if isinstance(document, ConversionDocument):
        return conversion_tables(document)
    tables = [summary_table(document)]
    if document.trained:
        tables += [breakdown_table(document), attribution_table(document)]
    if document.world_size:
        tables.append(ranks_table(document))
    return tables


def summary_table(document: E2EDocument) -> Table:
    """A row per framework: accuracy, epoch and step times, throughput, memory, energy; every
    row's notes (why it did not run, its default neuron, its profiler overhead, energy)."""
    task = document.task
    summary = _table(
        f"{task.model} on {task.dataset}, T={task.T}, batch {task.batch_size}, {task.epochs} "
        f"epoch(s) on {document.environment.device.name}, neurons: {task.neuron_setting}",
        ("status", "test acc", "epoch s", "step ms", "samples/s", "peak MB", "energy J/ep"),
    )
    notes = []
    for row in document.rows:
        run = row.training
        if run is None:
            notes.append(_not_run(summary, row))
            continue
        energy = run.energy
        summary.add_row(
            row.framework, "ok", f"{100 * run.test_accuracy:.1f} %", f"{run.epoch_median_s:.2f}",
            f"{1e3 * run.step_median_s:.2f}", f"{run.samples_per_s:.0f}",
            megabytes(run.peak_bytes),
            f"{energy.joules_per_unit:.1f}" if energy.available else "n/a",
        )  # fmt: skip
        notes += [*setting_notes(row), *(f"{row.framework}: {note}" for note in run.notes),
                  *_breakdown_notes(row), f"{row.framework}: {energy_line(energy)}",
                  *(f"{row.framework}: energy: {f.message}" for f in energy.flags)]  # fmt: skip
    summary.caption = plain(notes)
    return summary


def _breakdown_notes(row: TrainingRow) -> list[str]:
    """How far the profiled steps are from the plain steps beside them, when it matters."""
    measured = row.training.breakdown
    low, high = measured.profiled_over_plain_interval
    line = (f"{row.framework}: profiled step {measured.profiled_step_us / 1e3:.2f} ms vs plain "
            f"{measured.plain_step_us / 1e3:.2f} ms, paired "
            f"{100 * (measured.profiled_over_plain - 1):+.1f} % (95 % {100 * (low - 1):+.0f}.."
            f"{100 * (high - 1):+.0f})")  # fmt: skip
    notes = []
    if not measured.matches_plain_step:
        notes.append(line + ": more than 5 % apart, read the breakdown with care")
    elif not measured.within_tolerance:
        notes.append(line + ": beyond 5 %, but not resolved from the machine's noise")
    return notes + [f"{row.framework}: breakdown: {problem}" for problem in measured.problems]


def breakdown_table(document: E2EDocument) -> Table:
    """The median profiled step per category and framework, the profiled and plain steps."""
    trained = document.trained
    kinds = {row.training.breakdown.coarse.kind for row in trained}
    kind = ("device time (GPU)" if kinds == {"device"} else "host time (CPU)"
            if kinds == {"host"} else "device time where a GPU ran, else host")  # fmt: skip
    result = _table(f"median step breakdown (ms), profiled steps, {kind}",
                    tuple(row.framework for row in trained), first="category")  # fmt: skip
    labels = sorted({label for row in trained for label in row.training.breakdown_s})
    for label in labels:
        result.add_row(label, *(f"{1e3 * r.training.breakdown_s.get(label, 0.0):.2f}"
                                for r in trained))  # fmt: skip
    result.add_row("step (profiled)", *(f"{1e3 * r.training.profiled_step_s:.2f}"
                                        for r in trained), style="bold")  # fmt: skip
    result.add_row("plain step (alternating)", *(
        f"{r.training.breakdown.plain_step_us / 1e3:.2f}" for r in trained))  # fmt: skip
    overheads = ", ".join(f"{r.framework} {100 * r.training.breakdown.detailed_overhead:+.0f} %"
                          for r in trained)  # fmt: skip
    result.caption = plain(
        [
            "categories from a trace recording only ranges and autograd nodes (no operator "
            "events), no synchronisation inside a step; the operations from a second trace that "
            f"records every operator (their times carry its overhead: {overheads} over plain steps)"
        ]
    )
    return result


def attribution_table(document: E2EDocument) -> Table:
    attribution = document.attribution
    result = Table(title="where the time goes, against the fastest "
                   f"({attribution.fastest}), and the operations behind it",
                   title_justify="left", show_header=False)  # fmt: skip
    result.add_column("difference")
    for framework, difference in attribution.differences.items():
        result.add_row(describe_difference(framework, difference), style="bold")
        for category in difference.categories[:3]:
            result.add_row("  " + describe_operations(category, difference.named))
    for framework, launch in attribution.launch.items():
        result.add_row(f"{framework}: {launch.text}", style="dim")
    return result


def ranks_table(document: E2EDocument) -> Table:
    """Data-parallel runs: each rank's throughput and communication, and the total."""
    result = Table(title=f"data-parallel over {document.world_size} processes "
                   "(DistributedDataParallel)", title_justify="left",
                   caption_justify="left")  # fmt: skip
    for column in ("framework", "rank", "steps", "step ms", "samples/s", "communication ms"):
        result.add_column(column, justify="left" if column == "framework" else "right")
    totals = []
    for row in document.trained:
        for rank in row.training.ranks:
            result.add_row(row.framework, str(rank.rank), str(rank.steps),
                           f"{1e3 * rank.step_median_s:.2f}", f"{rank.samples_per_s:.0f}",
                           f"{1e3 * rank.communication_s:.2f}")  # fmt: skip
        if row.training.ranks:
            totals.append(f"{row.framework}: {row.training.total_samples_per_s:.0f} samples/s "
                          "in all")  # fmt: skip
    result.caption = plain(
        [
            *totals,
            "communication: the gradient all-reduce per profiled step, "
            "made blocking there; plain steps overlap it with backward",
        ]
    )
    return result


def e2e_rows(document: E2EDocument) -> tuple[list[str], list[list[str]]]:
    """Direct training's per-framework table as (header, rows) of text, for Markdown and HTML."""
    header = ["framework", "status", "test acc", "epoch s", "step ms", "samples/s"]
    rows = []
    for row in document.rows:
        run = row.training
        if run is None:
            rows.append([row.framework, f"{row.status}: {row.reason}", *[""] * 4])
            continue
        rows.append([row.framework, "ok", f"{100 * run.test_accuracy:.1f} %",
                     f"{run.epoch_median_s:.2f}", f"{1e3 * run.step_median_s:.2f}",
                     f"{run.samples_per_s:.0f}"])  # fmt: skip
    return header, rows


def e2e_markdown(document: E2EDocument | ConversionDocument) -> str:
    if isinstance(document, ConversionDocument):
        return conversion_markdown(document)
    lines = [f"Neurons: {document.task.neuron_setting}", "", *markdown_table(*e2e_rows(document)),
             ""]  # fmt: skip
    lines += [f"- {note}" for row in document.rows for note in setting_notes(row)]
    if document.attribution is not None:
        for framework, difference in document.attribution.differences.items():
            lines += [f"- {describe_difference(framework, difference)}", ""]
            lines += [*markdown_table(*drill_down_rows(difference)), ""]
        for framework, launch in document.attribution.launch.items():
            lines.append(f"- {framework}: {launch.text}")
    return "\n".join(lines) + "\n"


# ---- conversion --------------------------------------------------------------------------------


def ann_line(document: ConversionDocument) -> str:
    ann = document.ann
    if ann is None or ann.status != "ok":
        status, reason = ("not trained", "interrupted") if ann is None else (ann.status, ann.reason)
        return f"ANN: {status}: {reason}"
    return (f"ANN (ReLU twin, same initial weights): test accuracy {100 * ann.test_accuracy:.1f} "
            f"%, {_median(ann.fit.epoch_s):.2f} s/epoch, {1e3 * ann.fit.step_median_s:.2f} "
            "ms/step")  # fmt: skip


def _median(values) -> float:
    import statistics

    return statistics.median(values)


def conversion_times(row: ConversionRow, document: ConversionDocument) -> list[str]:
    """A row's training and conversion seconds: a route that trains its own SNN has its
    training time and no conversion; a converter shares the ANN's training time."""
    converted = row.conversion
    if converted.training is not None:
        return [f"{converted.training.train_s:.1f}", "-"]
    ann = document.ann
    shared = f"{sum(ann.fit.epoch_s):.1f} (ANN)" if ann and ann.status == "ok" else "-"
    return [shared, f"{converted.convert_s:.2f}"]


def conversion_tables(document: ConversionDocument) -> list[Table]:
    """ANN-to-SNN conversion: one row per framework, then accuracy against T."""
    task = document.task
    summary = _table(f"{task.model} on {task.dataset}: ANN-to-SNN conversion, T up to {task.T}, "
                     f"on {document.environment.device.name}",
                     ("status", f"acc T={task.T}", "train s", "convert s", "ms/batch",
                      "samples/s", "peak MB"))  # fmt: skip
    notes = [ann_line(document)]
    for row in document.rows:
        converted = row.conversion
        if converted is None:
            notes.append(_not_run(summary, row))
            continue
        summary.add_row(row.framework, "ok", f"{100 * converted.test_accuracy:.1f} %",
                        *conversion_times(row, document),
                        f"{1e3 * converted.inference_batch_median_s:.1f}",
                        f"{converted.inference_samples_per_s:.0f}",
                        megabytes(converted.peak_bytes))  # fmt: skip
        notes += list(converted.notes)
    notes.append(f"ms/batch: one test batch of {task.batch_size} through all T steps")
    summary.caption = plain(notes)
    if not document.converted:
        return [summary]
    return [summary, _accuracy_table(document)]


def _accuracy_table(document: ConversionDocument) -> Table:
    converted = document.converted
    ann = document.ann if document.ann and document.ann.status == "ok" else None
    columns = (*(row.framework for row in converted), *(("ANN",) if ann else ()))
    result = _table("test accuracy against T", columns, first="T", justify="right")
    for t in converted[0].conversion.accuracy_by_T:
        cells = [f"{100 * row.conversion.accuracy_by_T[t]:.1f} %" for row in converted]
        result.add_row(t, *cells, *([f"{100 * ann.test_accuracy:.1f} %"] if ann else []))
    return result


def conversion_rows(document: ConversionDocument) -> tuple[list[str], list[list[str]]]:
    """Conversion's table (accuracy at each T, conversion and inference time) as (header,
    rows) of text, for Markdown and HTML."""
    converted = document.converted
    steps = list(converted[0].conversion.accuracy_by_T) if converted else []
    header = ["framework", "status", *[f"T={t}" for t in steps], "train s", "convert s",
              "ms/batch"]  # fmt: skip
    rows = []
    for row in document.rows:
        if row.conversion is None:
            rows.append([row.framework, f"{row.status}: {row.reason}", *[""] * (len(steps) + 3)])
            continue
        accuracies = [f"{100 * row.conversion.accuracy_by_T[t]:.1f} %" for t in steps]
        times = [*conversion_times(row, document),
                 f"{1e3 * row.conversion.inference_batch_median_s:.1f}"]  # fmt: skip
        rows.append([row.framework, "ok", *accuracies, *times])
    return header, rows


def conversion_markdown(document: ConversionDocument) -> str:
    return "\n".join([ann_line(document), "", *markdown_table(*conversion_rows(document))]) + "\n"
