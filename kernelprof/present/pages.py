"""``kernelprof report``: results documents (check, compare, e2e, conversion, study, profile) as
one HTML file or Markdown.

The HTML file is self-contained: every chart is a PNG embedded as a data URI and the style is
inline, so it opens offline and can be mailed or attached as one file. A small inline script
records whether every chart decoded and whether any script error happened (on ``<body>``, as
``data-charts-rendered`` and ``data-errors``), which is what the headless-browser test reads.
The Markdown variant has the same tables, with the charts written as PNG files in a folder next
to it (``NAME_files/``), for pasting into issues and papers.

This module only formats: the figures come from :mod:`kernelprof.present.plots`, the numbers
from the records as measured.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
from pathlib import Path
from typing import Any

from kernelprof.results.check import CheckDocument
from kernelprof.results.compare import CompareDocument
from kernelprof.results.document import Document
from kernelprof.results.e2e import ConversionDocument, E2EDocument
from kernelprof.results.flags import BUSY
from kernelprof.results.profile import ProfileDocument
from kernelprof.results.study import StudyDocument

from . import check, e2e, plots, study
from . import profile as profiles
from .tables import markdown_table
from .traces import drill_down_rows

SELF_CHECK = """
<script>
(function () {
  var errors = 0;
  window.addEventListener("error", function () { errors += 1; }, true);
  window.addEventListener("load", function () {
    var charts = document.querySelectorAll("img.chart");
    var rendered = 0;
    charts.forEach(function (img) { if (img.complete && img.naturalWidth > 0) rendered += 1; });
    document.body.dataset.charts = String(charts.length);
    document.body.dataset.chartsRendered = String(rendered);
    document.body.dataset.errors = String(errors);
  });
})();
</script>
"""
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
img.chart { max-width: 100%; display: block; margin: 0.8em 0; }
.note { color: #555; font-size: 0.85em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
"""


def sections(document: Document, source: str) -> list[tuple]:
    """``("h2"|"h3", text)``, ``("table", header, rows)``, ``("figure", name, Figure)``,
    ``("note", text)`` items in order."""
    if isinstance(document, CompareDocument):
        return _compare_sections(document, source)
    if isinstance(document, CheckDocument):
        return _check_sections(document, source)
    if isinstance(document, ConversionDocument):
        return _conversion_sections(document, source)
    if isinstance(document, ProfileDocument):
        return _profile_sections(document, source)
    if isinstance(document, StudyDocument):
        return [
            *study.sections(document),
            *(item for run in document.documents for item in sections(run, _run_name(run))),
        ]
    return _direct_sections(document, source)


def _run_name(document) -> str:
    setting = getattr(document.task, "neuron_setting", "")
    return f"{document.kernelprof} {setting}".strip()


def _environment(document: Document) -> str:
    versions = document.environment.versions
    return f"{document.environment.device.name}; torch {versions.get('torch', '?')}"


def _check_sections(document: CheckDocument, source: str) -> list[tuple]:
    rows = check.flat_rows(document)
    header = ["impl", "verdict", "spike mismatch %", "max |d dX|", "cos dX", "timed build",
              "reason"]  # fmt: skip
    table = [[r["impl"], r["verdict"],
              "" if "spike_mismatch_fraction" not in r else
              f"{100 * r['spike_mismatch_fraction']:.3f}",
              "" if "grad_max_abs_diff" not in r else f"{r['grad_max_abs_diff']:.2e}",
              "" if "grad_cosine" not in r else f"{r['grad_cosine']:.6f}",
              {None: "", True: "agrees", False: "DIFFERS"}[r["timed_build"]], r["reason"]]
             for r in rows]  # fmt: skip
    case = document.case
    return [("h2", f"check: T={case.T}, N={case.N:,}, {case.dtype} ({source})"),
            ("note", _environment(document)), ("table", header, table)]  # fmt: skip


def _compare_sections(document: CompareDocument, source: str) -> list[tuple]:
    items: list[tuple] = [("h2", f"compare ({source})"), ("note", _environment(document))]
    header = ["impl", "verdict", "fwd ms", "bwd ms", "fwd+bwd ms", "speedup", "95 % interval",
              "fwd+bwd call ms", "% copy bw", "flags"]  # fmt: skip
    for case in document.cases:
        items.append(("h3", f"T={case.case.T}, N={case.case.N:,}, {case.case.dtype}"))
        rows = [_compare_row(row) for row in case.rows]
        items += [("note", f"{row.impl}: {BUSY}: {flag.message}") for row in case.rows
                  for flag in row.inconsistent]  # fmt: skip
        items.append(("table", header, rows))
        if case.timed_rows:
            name = f"compare_T{case.case.T}_N{case.case.N}_{case.case.dtype}"
            items.append(("figure", name, plots.compare_bars(case)))
        items += [("note", f"{row.impl}: {row.verdict}: {row.reason}") for row in case.rows
                  if row.verdict in ("unavailable", "unsupported", "error", "WRONG")]  # fmt: skip
    if len({case.case.T for case in document.cases}) > 1:
        items.append(("figure", "compare_time_vs_T", plots.time_vs_t(document)))
    return items


def _compare_row(row) -> list[str]:
    timings = row.timings or {}

    def ms(phase: str, kind: str = "device_s") -> str:
        return "" if phase not in timings else f"{1e3 * getattr(timings[phase], kind):.3f}"

    total = row.bandwidth.get("fwd+bwd")
    flags = [BUSY] if row.inconsistent else []
    flags += [flag.subject.split(" ", 1)[-1] + " launch-bound" for flag in row.flags
              if flag.kind in ("launch_bound", "host_bound")]  # fmt: skip
    return [row.impl, row.verdict, ms("fwd"), ms("bwd"), ms("fwd+bwd"),
            "" if row.speedup is None else f"{row.speedup.value:.2f}x",
            "" if row.speedup is None else f"{row.speedup.low:.2f}-{row.speedup.high:.2f}",
            ms("fwd+bwd", "call_s"), "" if total is None else f"{100 * total.copy_fraction:.1f} %",
            ", ".join(flags)]  # fmt: skip


def _direct_sections(document: E2EDocument, source: str) -> list[tuple]:
    task = document.task
    items: list[tuple] = [
        ("h2", f"e2e: {task.model} on {task.dataset}, T={task.T} ({source})"),
        ("note", _environment(document)),
        ("table", *e2e.e2e_rows(document)),
    ]
    if document.trained:
        items.append(("figure", "e2e_breakdown", plots.breakdown_bars(document)))
    attribution = document.attribution
    for framework, difference in (attribution.differences if attribution else {}).items():
        items.append(("note", e2e.describe_difference(framework, difference)))
        items.append(("figure", f"e2e_waterfall_{framework}",
                      plots.attribution_waterfall(document, framework)))  # fmt: skip
        if difference.categories:  # the operations behind the bars
            items.append(("table", *drill_down_rows(difference)))
    for framework, launch in (attribution.launch if attribution else {}).items():
        items.append(("note", f"{framework}: {launch.text}"))
    return items


def _conversion_sections(document: ConversionDocument, source: str) -> list[tuple]:
    task = document.task
    items: list[tuple] = [
        ("h2", f"e2e conversion: {task.model} on {task.dataset}, T up to {task.T} ({source})"),
        ("note", _environment(document)),
        ("note", e2e.ann_line(document)),
        ("table", *e2e.conversion_rows(document)),
    ]
    if document.converted:
        items.append(("figure", "conversion_accuracy_vs_T", plots.accuracy_vs_t(document)))
    return items


def _profile_sections(document: ProfileDocument, source: str) -> list[tuple]:
    command = " ".join(document.task.command) or "the Python API"
    items: list[tuple] = [("h2", f"profile: {command} ({source})"),
                          ("note", _environment(document)),
                          ("note", profiles.headline(document))]  # fmt: skip
    if document.status == "error":
        return items
    step = document.step_us
    items.append(("figure", "profile_categories", plots.profile_bar(document)))
    items.append(("table", ["category", "ms", "% step"],
                  [[name, f"{us / 1e3:.3f}", f"{100 * us / step:.1f}"]
                   for name, us in document.categories_us.items()]))  # fmt: skip
    items.append(("table", ["layer", "type", "category", "calls", "fwd ms", "bwd ms", "% step",
                            "top operations (ms)"],
                  [[layer.name, layer.type, layer.category, f"{layer.calls:g}",
                    f"{layer.fwd_us / 1e3:.3f}", f"{layer.bwd_us / 1e3:.3f}",
                    f"{100 * layer.total_us / step:.1f}",
                    ", ".join(f"{op.name} {op.us / 1e3:.3f}" for op in layer.operations[:3])]
                   for layer in document.layers]))  # fmt: skip
    if document.roofline is not None:
        items.append(("figure", "profile_roofline", plots.profile_roofline(document)))
    if document.inspection is not None and document.inspection.layers:
        rows, caption = profiles.inspection_rows(document)
        items += [("h3", profiles.inspection_title(document)),
                  ("figure", "profile_memory", plots.profile_memory(document)),
                  ("table", list(profiles.INSPECTION_HEADER), rows), ("note", caption)]  # fmt: skip
    if document.faster is not None:
        items += [
            (
                "h3",
                f"faster paths for the neuron layers ({document.faster.rounds} rounds "
                "of plain steps beside the layers' own, each path checked first)",
            ),
            ("table", list(profiles.FASTER_HEADER), profiles.faster_rows(document)),
        ]
        items += [("note", f"problem: {problem}") for problem in document.faster.problems]
    lines = profiles.neuron_memory_lines(document) + profiles.energy_lines(document)
    items += [("note", line) for line in lines + profiles.notes(document)]
    return items


# ---- rendering -----------------------------------------------------------------------------------


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plots.plt.close(figure)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    text = str(value)
    numeric = text[:1].isdigit() or text[:1] in "+-" or not text
    return (
        f"<td>{html.escape(text)}</td>" if numeric else f'<td class="text">{html.escape(text)}</td>'
    )


def write_html(documents: list[tuple[str, Document]], out: Path, intro: list[tuple] = ()) -> int:
    """Writes the self-contained HTML report; returns the number of charts. ``intro`` items
    (as :func:`sections` gives them) come first, e.g. a study's summary tables."""
    body = ["<h1>kernelprof report</h1>"]
    charts = 0
    # lazily, a document at a time: each chart is closed once drawn into the page
    items = itertools.chain(intro, (item for source, document in documents
                                    for item in sections(document, source)))  # fmt: skip
    for item in items:
        kind = item[0]
        if kind in ("h2", "h3"):
            body.append(f"<{kind}>{html.escape(item[1])}</{kind}>")
        elif kind == "note":
            body.append(f'<p class="note">{html.escape(item[1])}</p>')
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in item[1])
            rows = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in item[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(_png(item[2])).decode("ascii")
            body.append(
                f'<img class="chart" alt="{html.escape(item[1])}" '
                f'src="data:image/png;base64,{data}">'
            )
            charts += 1
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>kernelprof report</title><style>{STYLE}</style>{SELF_CHECK}</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return charts


def write_markdown(documents: list[tuple[str, Document]], out: Path) -> int:
    """Writes the Markdown report and its charts (PNG files in ``NAME_files/``)."""
    out = Path(out)
    folder = out.with_name(out.stem + "_files")
    lines = ["# kernelprof report", ""]
    charts = 0
    for source, document in documents:
        for item in sections(document, source):
            kind = item[0]
            if kind == "h2":
                lines += [f"## {item[1]}", ""]
            elif kind == "h3":
                lines += [f"### {item[1]}", ""]
            elif kind == "note":
                lines += [item[1], ""]
            elif kind == "table":
                lines += [*markdown_table(item[1], item[2]), ""]
            else:
                folder.mkdir(parents=True, exist_ok=True)
                image = folder / f"{item[1]}.png"
                image.write_bytes(_png(item[2]))
                lines += [f"![{item[1]}]({folder.name}/{image.name})", ""]
                charts += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    return charts
