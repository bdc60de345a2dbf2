"""The study shown: accuracy and training time per framework, dataset and network, for direct
training in each neuron setting and for conversion, and the study's claims with the numbers
behind each verdict. Markdown, and the sections of the HTML report. Reads records only."""

from __future__ import annotations

from collections.abc import Callable

from kernelprof.results.e2e import ConversionDocument, ConversionRow, E2EDocument, TrainingRow
from kernelprof.results.study import Claim, StudyDocument

from .e2e import neuron_difference_line
from .tables import markdown_table

SETTINGS = ("canonical", "framework-defaults")
RESOLVED = 0.05  # step-time ratios closer than this are not told apart on a noisy machine
YARDSTICK_NOTE = ("The claims' contenders are the frameworks; reference, reference-compile "
                  "(kernelprof's own kernels) are shown as the yardstick only.")  # fmt: skip


def cell(row: TrainingRow) -> str:
    """A direct-training cell: accuracy / training time, or why there is none."""
    if row.training is None:
        return row.status
    return f"{100 * row.training.test_accuracy:.1f} % / {sum(row.training.epoch_s):.1f} s"


def conversion_cell(row: ConversionRow) -> str:
    """A conversion cell: accuracy at T / the time to get the SNN (its own training for a
    route that trains, else the conversion), or why there is none."""
    converted = row.conversion
    if converted is None:
        return row.status
    if converted.training is not None:
        return (f"{100 * converted.test_accuracy:.1f} % / {converted.training.train_s:.1f} s "
                "trained")  # fmt: skip
    return f"{100 * converted.test_accuracy:.1f} % / {converted.convert_s:.2f} s"


def ann_cell(document: ConversionDocument) -> str:
    ann = document.ann
    if ann is None or ann.status != "ok":
        return "error" if ann is None else ann.status
    return f"{100 * ann.test_accuracy:.1f} % / {sum(ann.fit.epoch_s):.1f} s"


def _key(document) -> str:
    return f"{document.task.dataset} {document.task.model}"


def table(documents, render: Callable, ann_row: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a row per framework, a column per dataset and network."""
    header = ["framework", *(_key(d) for d in documents)]
    frameworks = list(dict.fromkeys(r.framework for doc in documents for r in doc.rows))
    rows = [["ANN (shared)", *(ann_cell(doc) for doc in documents)]] if ann_row else []
    for framework in frameworks:
        cells = []
        for document in documents:
            row = next((r for r in document.rows if r.framework == framework), None)
            cells.append("" if row is None else render(row))
        rows.append([framework, *cells])
    return header, rows


def claim_lines(claims: tuple[Claim, ...]) -> list[str]:
    """Each claim as Markdown: the verdict, then the numbers per column."""
    lines = []
    for claim in claims:
        verdict = "reproduced" if claim.reproduced else "not reproduced"
        lines.append(f"- **{claim.claim}**: {verdict} ({claim.wins} of {len(claim.columns)} "
                     f"columns; {claim.measure})")  # fmt: skip
        for column in claim.columns:
            where = column.column + (f", {column.setting}" if column.setting else "")
            if claim.kind == "speed":
                sj, runner = column.spikingjelly_over_fastest, column.runner_up_over_fastest
                close = runner is not None and runner - 1 < RESOLVED
                lines.append(
                    f"  - {where}: fastest {column.fastest}"
                    + ("" if sj is None else f", SpikingJelly at {sj:.2f}x its step time")
                    + (" (the next within 5 %: not resolved from noise)" if close else "")
                )
                continue
            accuracies = ", ".join(f"{fw} {100 * a:.1f} %" for fw, a in column.accuracy.items())
            lead, error = column.lead_points, column.standard_error_points
            lines.append(
                f"  - {where}: most accurate {' and '.join(column.best) or 'none'}"
                + ("" if lead is None else f" by {lead:.1f} points")
                + ("" if error is None else f" (standard error {error:.1f})")
                + ("" if column.resolved else ": not resolved")
                + f"; {accuracies}"
            )
    return lines


def run_line(study: StudyDocument) -> str:
    return (f"Run {study.date} at commit {study.commit} on {study.device} ({study.device_name}), "
            f"{study.wall_s / 60:.1f} minutes.")  # fmt: skip


def _sources(study: StudyDocument) -> list[str]:
    """Where each dataset's images came from, as the runs said."""
    found: dict[str, str] = {}
    for document in study.direct:
        for row in document.trained:
            found.setdefault(document.task.dataset, row.training.dataset_source)
    for document in study.conversion:
        if document.ann is not None and document.ann.dataset_source:
            found.setdefault(document.task.dataset, document.ann.dataset_source)
    return [f"- {name}: {source}" for name, source in found.items()] + ([""] if found else [])


def _direct(study: StudyDocument, setting: str) -> list[E2EDocument]:
    return [d for d in study.direct if d.task.neuron_setting == setting]


def markdown(study: StudyDocument) -> str:
    preset = study.preset
    lines = [
        run_line(study), "",
        f"Sizes: {preset.epochs} epoch(s), batch {preset.batch_size}, Adam {preset.lr:g}, "
        f"T={preset.T} (conversion up to T={preset.conversion_T}), training images per dataset: "
        f"{preset.limit_train or 'all'}, test images: {preset.limit_test or 'all'}.", "",
        *_sources(study), YARDSTICK_NOTE, "",
    ]  # fmt: skip
    for setting in SETTINGS:
        documents = _direct(study, setting)
        if not documents:
            continue
        lines += [f"### Direct training, {setting} neurons: test accuracy / training time", ""]
        lines += [*markdown_table(*table(documents, cell)), ""]
        if setting == "framework-defaults":
            notes = {row.framework: neuron_difference_line(row.neuron_differences)
                     for document in documents for row in document.rows
                     if row.neuron_differences is not None}  # fmt: skip
            lines += [f"- {fw}: {line}" for fw, line in notes.items()] + [""]
    if study.conversion:
        lines += ["### ANN-to-SNN conversion: test accuracy at T max / time to the SNN", ""]
        lines += [*markdown_table(*table(study.conversion, conversion_cell, ann_row=True)), ""]
    lines += ["### The study's claims", "", *claim_lines(study.claims), ""]
    problems = [f"- {doc.kernelprof} {_key(doc)} {row.framework}: {row.status}: {row.reason}"
                for doc in study.documents for row in doc.rows if row.status != "ok"]  # fmt: skip
    if problems:
        lines += ["Rows without a result:", "", *problems, ""]
    return "\n".join(lines)


def sections(study: StudyDocument) -> list[tuple]:
    """The study's tables and claims as report sections (see :mod:`kernelprof.present.pages`);
    each run's own sections follow them in the report."""
    items: list[tuple] = [("h2", "The study's table"), ("note", run_line(study))]
    for setting in SETTINGS:
        chosen = _direct(study, setting)
        if chosen:
            items += [("h3", f"Direct training, {setting} neurons"),
                      ("table", *table(chosen, cell))]  # fmt: skip
    if study.conversion:
        items += [("h3", "ANN-to-SNN conversion"),
                  ("table", *table(study.conversion, conversion_cell, ann_row=True))]  # fmt: skip
    items += [("h3", "The study's claims"), *(("note", line) for line in claim_lines(study.claims))]
    return items


def seeds_markdown(studies: dict[int, StudyDocument], problems: tuple[str, ...] = ()) -> str:
    """A study run as cells (kernelprof study): its tables and claims seed by seed, then what
    the store could not read and the cells that failed."""
    lines = []
    for seed, study in sorted(studies.items()):
        lines += [f"## Seed {seed}", "", markdown(study), ""]
    if not studies:
        lines += ["No cell of the study has finished yet.", ""]
    if problems:
        lines += ["Cells without a result:", "", *[f"- {problem}" for problem in problems], ""]
    return "\n".join(lines)
