"""``kernelprof report``: results documents (compare and e2e JSON) as one HTML file or Markdown.

The HTML file is self-contained: every chart is a PNG embedded as a data URI and the style is
inline, so it opens offline and can be mailed or attached as one file. A small inline script
records whether every chart decoded and whether any script error happened (on ``<body>``, as
``data-charts-rendered`` and ``data-errors``), which is what the headless-browser test reads.
The Markdown variant has the same tables, with the charts written as PNG files in a folder next
to it (``NAME_files/``), for pasting into issues and papers.

This module only formats: the figures come from :mod:`kernelprof.present.plots`, the numbers
from the documents as measured.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
from pathlib import Path
from typing import Any

from kernelprof.present import plots, report
from kernelprof.results import schema

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


class ReportError(Exception):
    """A results file that cannot be reported: one line naming the file and why."""


def load(path: Path) -> dict[str, Any]:
    """A compare or e2e results document (as written by --out), checked against the schema."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ReportError(f"{path}: cannot read ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        detail = f"{error.msg} at line {error.lineno}" if hasattr(error, "lineno") else error
        raise ReportError(f"{path}: not JSON ({detail})") from None
    try:
        schema.validate(document, kinds=("compare", "e2e"))
    except schema.SchemaError as error:
        raise ReportError(f"{path}: {error}") from None
    return document


# ---- the content, format-neutral: sections of headings, tables, figures and notes ------------


def sections(document: dict[str, Any], source: str) -> list[tuple]:
    """``("h2"|"h3", text)``, ``("table", header, rows)``, ``("figure", name, Figure)``,
    ``("note", text)`` items in order."""
    if document["kernelprof"] == "compare":
        return _compare_sections(document, source)
    if document.get("mode") == "conversion":
        return _conversion_sections(document, source)
    return _direct_sections(document, source)


def _environment(document: dict[str, Any]) -> str:
    environment = document.get("environment", {})
    device = environment.get("device", {}).get("name", "?")
    versions = environment.get("versions", {})
    torch_version = versions.get("torch", "?")
    return f"{device}; torch {torch_version}"


def _compare_sections(document: dict[str, Any], source: str) -> list[tuple]:
    items: list[tuple] = [("h2", f"compare ({source})"), ("note", _environment(document))]
    header = ["impl", "verdict", "fwd ms", "bwd ms", "fwd+bwd ms", "speedup", "95 % interval",
              "fwd+bwd call ms", "% copy bw", "flags"]  # fmt: skip
    for run in document["runs"]:
        case = run["case"]
        items.append(("h3", f"T={case['T']}, N={case['N']:,}, {case['dtype']}"))
        rows = []
        for row in run["rows"]:
            timings = row.get("timings") or {}

            def ms(phase: str, timings=timings, kind: str = "device_s") -> str:
                if phase not in timings:
                    return ""
                return f"{1e3 * timings[phase].get(kind, timings[phase]['median_s']):.3f}"

            fraction = timings.get("fwd+bwd", {}).get("copy_bandwidth_fraction")
            speedup, interval = row.get("speedup"), row.get("speedup_interval")
            flags = ", ".join([*(["inconsistent (machine busy?)"] if row.get("inconsistent")
                                 else []), *(f"{phase} launch-bound" for phase in
                                             row.get("launch_bound") or {})])  # fmt: skip
            rows.append([
                row["impl"], row.get("verdict", row.get("status", "")), ms("fwd"), ms("bwd"),
                ms("fwd+bwd"), "" if speedup is None else f"{speedup:.2f}x",
                "" if not interval else f"{interval[0]:.2f}-{interval[1]:.2f}",
                ms("fwd+bwd", kind="call_s"),
                "" if fraction is None else f"{100 * fraction:.1f} %", flags,
            ])  # fmt: skip
        for row in run["rows"]:
            for reason in row.get("inconsistent") or []:
                items.append(("note", f"{row['impl']}: inconsistent (machine busy?): {reason}"))
        items.append(("table", header, rows))
        if any(row.get("timings") for row in run["rows"]):
            name = f"compare_T{case['T']}_N{case['N']}_{case['dtype']}"
            items.append(("figure", name, plots.compare_bars(run)))
        for row in run["rows"]:
            if row.get("verdict") in ("unavailable", "unsupported", "error", "WRONG"):
                items.append(("note", f"{row['impl']}: {row['verdict']}: {row.get('reason', '')}"))
    if len({run["case"]["T"] for run in document["runs"]}) > 1:
        items.append(("figure", "compare_time_vs_T", plots.time_vs_t(document)))
    return items


def _direct_sections(document: dict[str, Any], source: str) -> list[tuple]:
    task = document["task"]
    items: list[tuple] = [
        ("h2", f"e2e: {task['model']} on {task['dataset']}, T={task['T']} ({source})"),
        ("note", _environment(document)),
    ]
    items.append(("table", *report.e2e_rows(document)))
    if any(row.get("status") == "ok" for row in document["rows"]):
        items.append(("figure", "e2e_breakdown", plots.breakdown_bars(document)))
    attribution = document.get("attribution") or {}
    for framework, difference in (attribution.get("differences") or {}).items():
        items.append(("note", report.describe_difference(framework, difference)))
        items.append(
            ("figure", f"e2e_waterfall_{framework}",
             plots.attribution_waterfall(document, framework))
        )  # fmt: skip
        if difference.get("categories"):  # the operations behind the bars
            items.append(("table", *report.drill_down_rows(difference)))
    for framework, launch in (attribution.get("launch") or {}).items():
        items.append(("note", f"{framework}: {launch['text']}"))
    return items


def _conversion_sections(document: dict[str, Any], source: str) -> list[tuple]:
    task = document["task"]
    items: list[tuple] = [
        ("h2", f"e2e conversion: {task['model']} on {task['dataset']}, T up to {task['T']} "
               f"({source})"),
        ("note", _environment(document)),
    ]  # fmt: skip
    ann = document.get("ann") or {}
    if ann.get("status") == "ok":
        items.append(("note", f"ANN test accuracy {100 * ann['test_accuracy']:.1f} %"))
    items.append(("table", *report.conversion_rows(document)))
    if any(row.get("status") == "ok" for row in document["rows"]):
        items.append(("figure", "conversion_accuracy_vs_T", plots.accuracy_vs_t(document)))
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


def write_html(
    documents: list[tuple[str, dict[str, Any]]], out: Path, intro: list[tuple] = ()
) -> int:
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


def write_markdown(documents: list[tuple[str, dict[str, Any]]], out: Path) -> int:
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
                lines += [*report.markdown_table(item[1], item[2]), ""]
            else:
                folder.mkdir(parents=True, exist_ok=True)
                image = folder / f"{item[1]}.png"
                image.write_bytes(_png(item[2]))
                lines += [f"![{item[1]}]({folder.name}/{image.name})", ""]
                charts += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    return charts
