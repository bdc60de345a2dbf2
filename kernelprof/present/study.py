"""The study shown: accuracy and training time per framework, dataset and network, for direct
training in each neuron setting and for conversion, and the study's claims with the numbers
behind each verdict. Markdown, and the sections of the HTML report. Reads records only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kernelprof.results.e2e import ConversionDocument, ConversionRow, E2EDocument, TrainingRow
from kernelprof.results.study import Claim, ColumnSeeds, FrameworkSeeds, SeedsStudy, StudyDocument

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
    return document.task.column


def grid(columns: list[tuple[str, Sequence]], render: Callable,
         first: list[str] | None = None) -> tuple[list[str], list[list[str]]]:  # fmt: skip
    """(header, rows): a row per framework, a column per (name, items that each have a
    ``framework``), ``first`` a row above them."""
    header = ["framework", *(name for name, _ in columns)]
    frameworks = list(dict.fromkeys(item.framework for _, items in columns for item in items))
    rows = [first] if first is not None else []
    for framework in frameworks:
        found = [next((i for i in items if i.framework == framework), None) for _, items in columns]
        rows.append([framework, *("" if item is None else render(item) for item in found)])
    return header, rows


def table(documents, render: Callable, ann_row: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a row per framework, a column per dataset and network."""
    first = ["ANN (shared)", *(ann_cell(doc) for doc in documents)] if ann_row else None
    return grid([(_key(d), d.rows) for d in documents], render, first)


def claim_lines(claims: tuple[Claim, ...]) -> list[str]:
    """Each claim as Markdown: the verdict, then the numbers per column."""
    lines = []
    for claim in claims:
        verdict = "reproduced" if claim.reproduced else "not reproduced"
        lines.append(f"- **{claim.claim}**: {verdict} ({claim.wins} of {len(claim.columns)} "
                     f"columns; {claim.measure})")  # fmt: skip
        for column in claim.columns:
            where = column.column + (f", {column.setting}" if column.setting else "")
            if claim.kind == "speed" and column.test:
                lines.append(f"  - {where}: {_speed_over_seeds(column)}")
                continue
            if claim.kind == "accuracy" and column.test:
                lines.append(f"  - {where}: {_accuracy_over_seeds(column)}")
                continue
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


def _speed_over_seeds(column) -> str:
    """A speed column judged over seeds: the fastest, the runner-up's ratio with its interval,
    SpikingJelly's, and the verdict."""
    if column.fastest is None:
        return "no framework (yardsticks aside) trained"
    text = f"fastest {column.fastest} ({1e3 * column.step_s[column.fastest]:.1f} ms/step)"
    if column.runner_up is not None:
        low, high = column.runner_up_interval
        text += (f", then {column.runner_up} at {column.runner_up_over_fastest:.2f}x "
                 f"(95 % {low:.2f}-{high:.2f})")  # fmt: skip
    sj = column.spikingjelly_over_fastest
    if sj is not None and column.fastest != "spikingjelly" and column.runner_up != "spikingjelly":
        text += f", SpikingJelly at {sj:.2f}x"
    verdict = "resolved" if column.resolved else "not resolved"
    return f"{text}: {verdict} ({column.seeds} seed(s); {column.test})"


def _accuracy_over_seeds(column) -> str:
    """An accuracy column judged over seeds: the leader, its lead and the test's figure."""
    if not column.best:
        return "no framework (yardsticks aside) has a result"
    text = f"most accurate {' and '.join(column.best)}"
    if column.runner_up is not None:
        text += f" by {column.lead_points:.1f} points over {column.runner_up}"
    if column.p_value is not None:
        test = f"{column.test}, p = {column.p_value:.3g}"
    elif column.standard_error_points is not None:
        test = f"{column.test} {column.standard_error_points:.1f} points"
    else:
        test = column.test
    verdict = "resolved" if column.resolved else "not resolved"
    if len(column.best) > 1:
        verdict += ", tied at the top"
    accuracies = ", ".join(
        f"{fw} {100 * a:.1f}" + (f" ± {100 * column.accuracy_sd[fw]:.1f}"
                                 if fw in column.accuracy_sd else "") + " %"
        for fw, a in column.accuracy.items())  # fmt: skip
    return f"{text}: {verdict} ({column.seeds} seed(s); {test}); {accuracies}"


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


def markdown(study: StudyDocument, claims: bool = True) -> str:
    lines = [
        run_line(study), "", f"Sizes: {study.preset.sizes}.", "",
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
    if claims:
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


SEEDS_LEGEND = ("Each cell: mean test accuracy ± its standard deviation over seeds / mean time "
                "to the result (training; conversion: to the SNN), then (seeds × epochs) it "
                "had.")  # fmt: skip


def seeds_cell(summary: FrameworkSeeds) -> str:
    """A framework in a column over its seeds: accuracy mean ± sd / time (seeds × epochs)."""
    if summary.status != "ok":
        return summary.status
    spread = "" if summary.accuracy_sd is None else f" ± {100 * summary.accuracy_sd:.1f}"
    time = "" if summary.time_s is None else f" / {summary.time_s:.1f} s"
    return (
        f"{100 * summary.accuracy_mean:.1f}{spread} %{time} "
        f"({summary.seeds}×{summary.epochs if summary.epochs is not None else '?'})"
    )


def seeds_table(columns: list[ColumnSeeds], ann_row: bool = False) -> tuple[list, list]:
    """(header, rows): a row per framework, a column per dataset and network."""
    first = None
    if ann_row:
        first = ["ANN (shared)", *("" if c.ann is None else seeds_cell(c.ann) for c in columns)]
    return grid([(c.name, c.frameworks) for c in columns], seeds_cell, first)


def _seeds_sections(study: SeedsStudy) -> list[tuple[str, list[ColumnSeeds], bool]]:
    """(heading, columns, with the ANN row) per table: by device, then setting and mode."""
    found = []
    for device in study.devices:
        mine = [c for c in study.columns if c.device == device]
        where = f" on {device}" if len(study.devices) > 1 else ""
        for setting in SETTINGS:
            chosen = [c for c in mine if c.mode == "direct" and c.setting == setting]
            if chosen:
                found.append((f"Direct training, {setting} neurons{where}", chosen, False))
        converted = [c for c in mine if c.mode == "conversion"]
        if converted:
            found.append((f"ANN-to-SNN conversion at T max{where}", converted, True))
    return found


def _seeds_notes(study: SeedsStudy) -> list[str]:
    return [
        f"{study.cells} finished cells, seeds {', '.join(map(str, study.seeds))}, on "
        f"{'; '.join(study.devices)}, at commit {', '.join(study.commits)}; "
        f"{study.cells_wall_s / 60:.1f} minutes of cells.",
        f"Sizes: {study.preset.sizes}.",
        f"{SEEDS_LEGEND} {YARDSTICK_NOTE}",
    ]  # fmt: skip


CLAIMS_OVER_SEEDS = "The study's claims, judged over seeds"


def over_seeds_markdown(study: SeedsStudy) -> str:
    """The study over its seeds: every table, and the claims judged with seed-based tests."""
    lines = [line for note in _seeds_notes(study) for line in (note, "")]
    for heading, columns, ann in _seeds_sections(study):
        lines += [f"### {heading}", "", *markdown_table(*seeds_table(columns, ann)), ""]
    lines += [f"### {CLAIMS_OVER_SEEDS}", "", *claim_lines(study.claims), ""]
    return "\n".join(lines)


def over_seeds_sections(study: SeedsStudy) -> list[tuple]:
    """The same as report sections (see :mod:`kernelprof.present.pages`)."""
    items: list[tuple] = [("h2", f"The study over {len(study.seeds)} seed(s)"),
                          *(("note", note) for note in _seeds_notes(study))]  # fmt: skip
    for heading, columns, ann in _seeds_sections(study):
        items += [("h3", heading), ("table", *seeds_table(columns, ann))]
    items += [("h3", CLAIMS_OVER_SEEDS), *(("note", line) for line in claim_lines(study.claims))]
    return items


def seeds_markdown(summary: SeedsStudy | None, studies: dict[int, StudyDocument],
                   problems: tuple[str, ...] = ()) -> str:  # fmt: skip
    """A study run as cells (kernelprof study): its tables and claims over the seeds, then
    each seed's own tables, then what the store could not read and the cells that failed."""
    lines = []
    if summary is not None and summary.cells:
        lines += [f"## Over {len(summary.seeds)} seed(s)", "", over_seeds_markdown(summary), ""]
    for seed, study in sorted(studies.items()):
        lines += [f"## Seed {seed}", "", markdown(study, claims=False), ""]
    if not studies:
        lines += ["No cell of the study has finished yet.", ""]
    if problems:
        lines += ["Cells without a result:", "", *[f"- {problem}" for problem in problems], ""]
    return "\n".join(lines)
