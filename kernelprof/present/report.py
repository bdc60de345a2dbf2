"""Reporting: turns measured results into terminal tables and JSON. It never measures."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from kernelprof.results.analysis import ROUND_TOLERANCE

VERDICT_STYLE = {
    "exact": "green",
    "close": "green",
    "approximate": "yellow",
    "WRONG": "bold red",
    "error": "red",
    "unsupported": "dim",
    "unavailable": "dim",
}


NOT_RUN = ("unavailable", "unsupported")  # rows listed under a table, not in it
WIDTH = 120  # the compare and check tables fit this many columns


def kernel_table(run: dict[str, Any], all_rows: bool = False):
    """The tables of one compare case: verdicts and device times, then device, call and launch
    time per phase (see :func:`time_table`), in one renderable."""
    from rich.console import Group

    return Group(verdict_table(run, all_rows), time_table(run))


def verdict_table(run: dict[str, Any], all_rows: bool = False) -> Table:
    """Verdict, device time per phase, speedup with its interval, bandwidth, memory, energy and
    flags per implementation. Rows that did not run here (unavailable, unsupported) are listed
    under it with their reasons unless ``all_rows``; columns empty in every row are left out;
    each row's notes (path, warnings, reasons, flags) follow."""
    case = run["case"]
    table = _table(
        f"LIF T={case['T']} N={case['N']:,} {case['dtype']} on {run['device']['name']}\n"
        f"copy bandwidth {run['copy_bandwidth_gb_per_s']:.1f} GB/s (measured); speedups "
        f"against {run.get('baseline')}"
    )
    headers = ("impl", "verdict", "fwd\nms", "bwd\nms", "fwd+bwd\nms", "speed-\nup",
               "95 %\ninterval", "%\ncopy", "peak\nMB", "saved\nMB", "mJ", "flag")  # fmt: skip
    cells: list[list[str]] = []
    notes, not_run = [], []
    energy_notes: set[str] = set()
    for row in run["rows"]:
        verdict = row["verdict"]
        style = VERDICT_STYLE.get(verdict, "")
        shown = [row["impl"], f"[{style}]{verdict}[/]"]
        if verdict in NOT_RUN and not all_rows:
            not_run.append(f"{row['impl']}: {verdict}: {row.get('reason', '')}")
            continue
        if verdict not in ("exact", "close", "approximate", "WRONG"):
            cells.append(shown + [""] * (len(headers) - 2))
            notes.append(f"{row['impl']}: {verdict}: {row.get('reason', '')}")
            continue
        notes.append(f"{row['impl']}: path: {row.get('path', '?')}")
        if verdict != "exact":
            notes.append(f"{row['impl']}: {verdict}: {row['reason']}")
        if "timings" not in row:
            notes.append(f"{row['impl']}: not timed: {row.get('error', 'no timings')}")
            cells.append(shown + [""] * (len(headers) - 2))
            continue
        timings = row["timings"]
        total = timings["fwd+bwd"]
        notes += [w for t in timings.values() for w in t["warnings"]]
        notes += [f"{row['impl']}: {error}" for error in row.get("round_errors", [])]
        notes += _flag_notes(row)
        graphs = row.get("graph_timings") or {}
        if graphs:
            parts = [
                f"{phase} {g['unavailable_reason']}" if "unavailable_reason" in g
                else f"{phase} {_ms_iqr(g)}"
                for phase, g in graphs.items()
            ]  # fmt: skip
            notes.append(f"{row['impl']}: CUDA graph replay (ms): " + ", ".join(parts))
        energy = row.get("energy") or {}
        notes += energy.get("warnings", [])
        if energy.get("joules_per_call") is None:
            energy_text = ""
            energy_notes.add(energy.get("unavailable_reason") or "n/a: not measured")
        else:
            energy_text = _significant(1e3 * energy["joules_per_call"], 3)
        cells.append(shown + [
            *(_ms_iqr(timings[phase], "device") for phase in PHASES),
            _speedup(row.get("speedup")),
            _interval(row.get("speedup_interval")),
            f"{100 * total['copy_bandwidth_fraction']:.1f}",
            _megabytes(row.get("peak_bytes")),
            _megabytes(row.get("saved_bytes")),
            energy_text,
            _flags(row),
        ])  # fmt: skip
    _fill(table, headers, cells, left=2)
    table.caption = _plain(
        [
            "ms: device time, median ±half the IQR (as a share of the median), rounds pooled; "
            "speedup: fwd+bwd device time vs the baseline, median of the per-round ratios, with "
            "its bootstrap interval; % copy: fwd+bwd's traffic (6 passes over [T, N]) in its "
            "device time against the measured copy bandwidth (GB/s in --format json, csv, md); "
            "peak: allocator peak of one fwd+bwd; saved: bytes autograd keeps for backward; "
            "mJ: energy per fwd+bwd; flag: busy? = inconsistent (machine busy?), launch = "
            "launch-bound, host = host-bound (CPU analogue)"
        ]
        + [f"energy: {note}" for note in sorted(energy_notes)]
        + _machine_notes(run)
        + notes
        + (["not run here:", *[f"  {line}" for line in not_run]] if not_run else [])
    )
    return table


PHASES = ("fwd", "bwd", "fwd+bwd")


def time_table(run: dict[str, Any]) -> Table:
    """Per timed row and phase: device time (CUDA: the summed durations of the kernels a call
    launched, from the profiler; CPU: the host does the work, so device = call = launch), call
    time (what one call takes in a loop: CUDA events, or the host clock) and the host's launch
    time; the fwd+bwd speedup on call time, kernels per fwd+bwd and the first calls."""
    timed = [row for row in run["rows"] if row.get("timings")]
    table = _table("device, call and launch time per phase (ms)")
    headers = ("impl", *(f"\n{phase}\n{kind}" for phase in PHASES
                         for kind in ("device", "call", "launch")),
               "call\nspeed-\nup", "\n95 %\ninterval", "\nkern-\nels", "\n1st\ns")  # fmt: skip
    cells = []
    for row in timed:
        timings = row["timings"]
        first_call = sum(t["first_call_s"] or 0.0 for t in timings.values())
        cells.append([
            row["impl"],
            *(_significant(1e3 * timings[phase][key], 4) for phase in PHASES
              for key in ("device_s", "call_s", "launch_s")),
            _speedup(row.get("speedup_call")),
            _interval(row.get("speedup_call_interval")),
            _count(row.get("kernels_per_fwd_bwd", "")),
            f"{first_call:.2f}",
        ])  # fmt: skip
    _fill(table, headers, cells, left=1)
    kinds = {row.get("kernel_kind") for row in timed if row.get("kernel_kind")}
    sources = {t.get("device_source") for row in timed for t in row["timings"].values()}
    table.caption = _plain([
        ("device: summed kernel durations of a call (profiler); call: CUDA events around a call "
         "in a loop; launch: host time until the call returns"
         if "kernels" in sources else
         "CPU: the host does the work, so device = call = launch (host clock around a call)"),
        "kernels: " + " / ".join(sorted(kinds)) + " per fwd+bwd; 1st s: the first calls "
        "(compilation), not in the medians",
    ])  # fmt: skip
    return table


def _machine_notes(run: dict[str, Any]) -> list[str]:
    """The noise probe timed before each round: the machine's own drift between rounds."""
    probes = run.get("noise_rounds_s") or []
    if not probes:
        return []
    shown = ", ".join(_significant(1e3 * probe, 3) for probe in probes)
    ratio = max(probes) / min(probes)
    drifted = " (the machine itself changed between rounds)" if ratio > 1 + ROUND_TOLERANCE else ""
    lines = [f"machine: a fixed noise probe (an allocating multiply over 32 MiB) took {shown} ms "
             f"before rounds 1-{len(probes)}, {ratio:.2f}x apart{drifted}"]  # fmt: skip
    if run.get("noise_spread") is not None:
        lines.append(
            f"machine: the probe's calls spread by {run['noise_spread']:.0%} of their median; "
            f"a phase is warned about above {run['spread_limit']:.0%}"
        )
    return lines


def _speedup(value: float | None) -> str:
    return f"{value:.2f}x" if value else ""


def _interval(bounds: list[float] | None) -> str:
    return f"{bounds[0]:.2f}-{bounds[1]:.2f}" if bounds else ""


def _flags(row: dict[str, Any]) -> str:
    flags = ["busy?"] if row.get("inconsistent") else []
    bases = {bound["basis"] for bound in (row.get("launch_bound") or {}).values()}
    flags += ["host" if "CPU" in basis else "launch" for basis in sorted(bases)]
    return " ".join(dict.fromkeys(flags))


def _flag_notes(row: dict[str, Any]) -> list[str]:
    notes = [f"{row['impl']}: inconsistent (machine busy?): {reason}"
             for reason in row.get("inconsistent") or []]  # fmt: skip
    for phase, bound in (row.get("launch_bound") or {}).items():
        if "device_s" in bound:
            notes.append(
                f"{row['impl']}: {phase} launch-bound: call {1e3 * bound['call_s']:.4g} ms vs "
                f"device {1e3 * bound['device_s']:.4g} ms (+"
                f"{bound['call_s'] / bound['device_s'] - 1:.0%}); the host launches in "
                f"{1e3 * bound['launch_s']:.4g} ms"
            )
        else:
            notes.append(
                f"{row['impl']}: {phase} host-bound (CPU analogue of launch-bound): "
                f"{1 - bound['in_ops_s'] / bound['call_s']:.0%} of the {1e3 * bound['call_s']:.4g} "
                "ms call is outside torch operators"
            )
    return notes


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", caption_justify="left",
                 box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))  # fmt: skip


def _fill(table: Table, headers: tuple[str, ...], cells: list[list[str]], left: int) -> None:
    """Adds the columns (the first ``left`` left-aligned) and rows, leaving out every column
    that is empty in all rows."""
    keep = [i for i in range(len(headers)) if i < left or any(row[i] for row in cells)]
    for i in keep:
        table.add_column(headers[i], justify="left" if i < left else "right", no_wrap=True)
    for row in cells:
        table.add_row(*(row[i] for i in keep))


def _plain(lines: list[str]) -> Text:
    """A caption of free text (reasons, notes, shapes such as [out, in, k, k]): shown as
    written, never read as rich markup."""
    return Text("\n".join(lines))


def _count(value) -> str:
    return "n/a" if value is None else f"{value}"  # None: a runtime torch's profiler cannot see


def _megabytes(value: int | None) -> str:
    return "n/a" if value is None else f"{_mebibytes(value):.1f}"


def _mebibytes(value: int | None) -> float | None:
    return None if value is None else value / 2**20


def _ms_iqr(timing: dict[str, Any], kind: str = "call") -> str:
    """'72.87 ±3%': the median (call or device time) in ms to 4 significant digits, half the
    IQR as a share of it."""
    median = timing.get("device_s", timing["median_s"]) if kind == "device" else timing["median_s"]
    iqr = timing.get("device_iqr_s", timing["iqr_s"]) if kind == "device" else timing["iqr_s"]
    share = iqr / 2 / median if median else float("nan")
    return f"{_significant(1e3 * median, 4)} ±{100 * share:.0f}%"


def _significant(value: float, digits: int) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def describe_difference(framework: str, difference: dict[str, Any], top: int = 5) -> str:
    """One line: '+41.0 ms/step: lif bwd +22.1, lif fwd +15.3, ...'."""
    parts = [
        f"{label} {1e3 * seconds:+.1f}"
        for label, seconds in list(difference["by_category_s"].items())[:top]
    ]
    plain = difference.get("plain_total_s")
    also = "" if plain is None else f" (plain steps {1e3 * plain:+.1f})"
    return f"{framework}: {1e3 * difference['total_s']:+.1f} ms/step{also}: " + ", ".join(parts)


def describe_operations(category: dict[str, Any], named: str, top: int = 4) -> str:
    """'lif fwd +6.9 ms: aten::mul 184 more calls +2.8 ms, aten::sub +1.9 ms, ...': the
    operations (operators, or GPU work) behind one category's change, largest first."""
    parts = []
    for operation in category["operations"][:top]:
        count = operation["delta_count"]
        calls = "" if not count else (
            f" {abs(count):g} {'more' if count > 0 else 'fewer'} "
            f"{'kernels' if named == 'gpu' else 'calls'}"
        )  # fmt: skip
        name = short_name(operation["name"], 48)
        parts.append(f"{name}{calls} {operation['delta_us'] / 1e3:+.2f} ms")
    return f"{category['name']} {category['delta_us'] / 1e3:+.2f} ms: " + (
        ", ".join(parts) if parts else "no named operations"
    )


def drill_down_rows(difference: dict[str, Any], categories: int = 5, top: int = 4):
    """(category, change ms, operation, count change, time change ms) rows: the operations
    behind the largest category changes, for Markdown and HTML."""
    rows = []
    for category in difference.get("categories", [])[:categories]:
        for operation in category["operations"][:top]:
            rows.append([
                category["name"], f"{category['delta_us'] / 1e3:+.2f}",
                short_name(operation["name"], 60), f"{operation['delta_count']:+g}",
                f"{operation['delta_us'] / 1e3:+.3f}",
            ])  # fmt: skip
    unit = "kernel" if difference.get("named") == "gpu" else "operation"
    return ["category", "change ms", unit, "count change", "time change ms"], rows


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, default=str)


def check_table(document: dict[str, Any], all_rows: bool = False) -> Table:
    """The table of ``kernelprof check``: one row per implementation that ran, its code path
    and reasons underneath, then what did not run here (unless ``all_rows``)."""
    case, config = document["case"], document["config"]
    reset = "soft" if config["v_reset"] is None else f"hard (V_r={config['v_reset']:g})"
    table = _table(
        f"LIF vs float64 oracle: T={case['T']} N={case['N']:,} {case['dtype']} on "
        f"{document['environment']['device']['name']}\ntau={config['tau']:g}, {reset}, "
        f"detach_reset={config['detach_reset']}, decay_input={config['decay_input']}, "
        f"{config['surrogate']}({config['alpha']:g})"
    )
    headers = ("impl", "verdict", "spike\nmismatches", "ties", "max\n|dV|", "max\n|d dX|",
               "cos\ndX", "timed\nbuild")  # fmt: skip
    cells: list[list[str]] = []
    reasons, paths, not_run = [], [], []
    for row in document["rows"]:
        verdict = row["verdict"]
        shown = [row["impl"], f"[{VERDICT_STYLE.get(verdict, '')}]{verdict}[/]"]
        if verdict in NOT_RUN and not all_rows:
            not_run.append(f"{row['impl']}: {verdict}: {row.get('reason', '')}")
            continue
        if row.get("status") != "ok":
            cells.append(shown + [""] * 5 + [_timed_build(row)])
            reasons.append(f"{row['impl']}: {verdict}: {row.get('reason', '')}")
            continue
        v_diff = row["v_max_abs_diff"]
        cells.append(shown + [
            f"{row['spike_mismatches']:,} ({100 * row['spike_mismatch_fraction']:.3f} %)",
            str(row["threshold_ties"]),
            "not exposed" if v_diff is None else f"{v_diff:.2e}",
            f"{row['grad_max_abs_diff']:.2e}",
            f"{row['grad_cosine']:.6f}",
            _timed_build(row),
        ])  # fmt: skip
        paths.append(f"{row['impl']}: path: {row['path']}")
        if verdict != "exact":
            reasons.append(f"{row['impl']}: {verdict}: {row['reason']}")
    _fill(table, headers, cells, left=2)
    table.caption = _plain(
        [
            "ties: neurons whose spikes first differ where the oracle's |H - theta| <= 1e-5",
            "timed build: what the framework's users run (timed by compare), against the "
            "checking build on the same input (spikes and dX)",
        ]
        + paths
        + reasons
        + (["not run here:", *[f"  {line}" for line in not_run]] if not_run else [])
    )
    return table


def _timed_build(row: dict[str, Any]) -> str:
    agreement = row.get("timed_build")
    if agreement is None:
        return ""
    return "agrees" if agreement["agrees"] else "[red]DIFFERS[/]"


def frameworks_table(listing: dict[str, Any]) -> Table:
    """``kernelprof frameworks``: every framework found, what it provides and whether it runs."""
    table = Table(title="frameworks (built in, and installed plugins)", title_justify="left",
                  caption_justify="left")  # fmt: skip
    for column in ("framework", "status", "neurons (check, compare)", "e2e networks",
                   "conversion", "source"):  # fmt: skip
        table.add_column(column)
    for fw in listing["frameworks"]:
        status = "[green]ok[/]" if fw["problem"] is None else f"[dim]{fw['problem']}[/]"
        conversion = ", ".join(fw["converters"]) or "[dim]none[/]"
        table.add_row(
            f"{fw['name']} ({fw['display']})", status, ", ".join(fw["neurons"]),
            ", ".join(fw["networks"]), conversion, fw["source"],
        )  # fmt: skip
    table.caption = _plain(listing["problems"])
    return table


FLAT_COLUMNS = (
    "T", "N", "dtype", "impl", "verdict", "fwd_ms", "bwd_ms", "fwd+bwd_ms",
    "fwd_call_ms", "bwd_call_ms", "fwd+bwd_call_ms", "fwd_launch_ms", "bwd_launch_ms",
    "fwd+bwd_launch_ms", "speedup", "speedup_low", "speedup_high", "speedup_call", "kernels",
    "gb_per_s", "copy_bandwidth_pct", "peak_mb", "saved_mb", "energy_mj", "flags", "path", "reason",
)  # fmt: skip


def flat_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat record per (case, implementation) of a compare document, or per row of check."""
    if document.get("kernelprof") == "check":
        case = document["case"]
        return [{**case, **{k: v for k, v in row.items() if not isinstance(v, dict)}}
                for row in document["rows"]]  # fmt: skip
    records = []
    for run in document["runs"]:
        for row in run["rows"]:
            timings = row.get("timings") or {}
            total = timings.get("fwd+bwd", {})
            energy = (row.get("energy") or {}).get("joules_per_call")
            records.append(
                {
                    **run["case"],
                    "impl": row["impl"],
                    "verdict": row["verdict"],
                    **{
                        f"{p}_ms": 1e3 * t.get("device_s", t["median_s"])
                        for p, t in timings.items()
                    },
                    **{
                        f"{p}_call_ms": 1e3 * t["call_s"]
                        for p, t in timings.items()
                        if "call_s" in t
                    },
                    **{
                        f"{p}_launch_ms": 1e3 * t["launch_s"]
                        for p, t in timings.items()
                        if "launch_s" in t
                    },
                    "speedup": row.get("speedup"),
                    "speedup_low": (row.get("speedup_interval") or [None, None])[0],
                    "speedup_high": (row.get("speedup_interval") or [None, None])[1],
                    "speedup_call": row.get("speedup_call"),
                    "flags": _flags(row) or None,
                    "kernels": row.get("kernels_per_fwd_bwd"),
                    "gb_per_s": total.get("gb_per_s"),
                    "copy_bandwidth_pct": 100 * total["copy_bandwidth_fraction"] if total else None,
                    "peak_mb": None if row.get("peak_bytes") is None else row["peak_bytes"] / 2**20,
                    "saved_mb": None
                    if row.get("saved_bytes") is None
                    else row["saved_bytes"] / 2**20,
                    "energy_mj": None if energy is None else 1e3 * energy,
                    "path": row.get("path"),
                    "reason": row.get("reason") or row.get("error"),
                }
            )
    return records


def flat_table(document: dict[str, Any], kind: str) -> str:
    """CSV or Markdown: one line per (case, implementation)."""
    records = flat_rows(document)
    columns = (
        list(FLAT_COLUMNS)
        if document.get("kernelprof") != "check"
        else list(dict.fromkeys(key for record in records for key in record))
    )

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    if kind == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for record in records:
            writer.writerow([text(record.get(column)) for column in columns])
        return buffer.getvalue()
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in records:
        cells = [text(record.get(column)).replace("|", "\\|") for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def neuron_difference_line(differences: dict[str, Any]) -> str:
    """A framework-defaults neuron against the canonical one, in a line: the written defaults
    that differ from their canonical values, then what check's machinery measured."""
    differing = [
        f"{s['setting']} {s['default']} (canonical {s['canonical']})"
        for s in differences["settings"]
        if s["canonical"] is not None and not s["default"].startswith(s["canonical"].split()[0])
    ]
    check = differences["check"]
    measured = "no default neuron to check"
    if check is not None and check["same_neuron"]:
        measured = f"the same neuron as the canonical LIF (check: {check['verdict']})"
    elif check is not None:
        measured = (
            f"on check's input {100 * check['spike_mismatch_fraction']:.1f} % of spikes differ "
            f"(firing rate {100 * check['default_firing_rate']:.1f} % vs canonical "
            f"{100 * check['canonical_firing_rate']:.1f} %), dX cosine {check['grad_cosine']:.2f}"
        )
    return "; ".join([*differing, measured])


def _setting_notes(row: dict[str, Any]) -> list[str]:
    if "neuron_differences" not in row:
        return []
    return [f"{row['framework']}: its default neuron: "
            f"{neuron_difference_line(row['neuron_differences'])}"]  # fmt: skip


def e2e_tables(document: dict[str, Any]) -> list[Table]:
    """The per-framework table, the step breakdown by category, and the attribution lines."""
    if document.get("mode") == "conversion":
        return conversion_tables(document)
    task = document["task"]
    summary = Table(
        title=f"{task['model']} on {task['dataset']}, T={task['T']}, batch {task['batch_size']}, "
        f"{task['epochs']} epoch(s) on {document['environment']['device']['name']}, neurons: "
        f"{task.get('neuron_setting', 'canonical')}",
        title_justify="left",
        caption_justify="left",
    )
    summary.add_column("framework", no_wrap=True)
    columns = ("status", "test acc", "epoch s", "step ms", "samples/s", "peak MB", "energy J/ep")
    for column in columns:
        summary.add_column(column, justify="right", no_wrap=True)
    notes = []
    for row in document["rows"]:
        if row.get("status") != "ok":
            summary.add_row(row["framework"], row.get("status", "error"), *[""] * 6, style="dim")
            notes.append(f"{row['framework']}: {row.get('status')}: {row.get('reason', '')}")
            continue
        energy = row["energy"]
        summary.add_row(
            row["framework"],
            "ok",
            f"{100 * row['test_accuracy']:.1f} %",
            f"{statistics.median(row['epoch_s']):.2f}",
            f"{1e3 * row['step_median_s']:.2f}",
            f"{row['samples_per_s']:.0f}",
            _megabytes(row["peak_bytes"]),
            "n/a" if energy["joules_per_epoch"] is None else f"{energy['joules_per_epoch']:.1f}",
        )
        notes += _setting_notes(row)
        notes += [f"{row['framework']}: {note}" for note in row.get("notes", [])]
        measured = row.get("breakdown") or {}
        if measured:
            low, high = measured.get("profiled_over_plain_interval") or [float("nan")] * 2
            ratio = measured.get("profiled_over_plain", float("nan"))
            line = (
                f"{row['framework']}: profiled step {1e3 * row['instrumented_step_s']:.2f} ms vs "
                f"plain {measured.get('plain_step_us', 0) / 1e3:.2f} ms, paired "
                f"{100 * (ratio - 1):+.1f} % (95 % {100 * (low - 1):+.0f}..{100 * (high - 1):+.0f})"
            )
            if not row["breakdown_matches_plain_step"]:
                notes.append(line + ": more than 5 % apart, read the breakdown with care")
            elif not measured.get("within_tolerance", True):
                notes.append(line + ": beyond 5 %, but not resolved from the machine's noise")
        notes += [f"{row['framework']}: breakdown: {problem}"
                  for problem in measured.get("problems", [])]  # fmt: skip
        notes.append(f"{row['framework']}: energy {energy['reason']}")
        notes += [f"{row['framework']}: energy: {w}" for w in energy.get("warnings", [])]
    summary.caption = _plain(notes)

    trained = [row for row in document["rows"] if row.get("status") == "ok"]
    kinds = {row.get("breakdown_kind", "host") for row in trained}
    kind = (
        "device time (GPU)"
        if kinds == {"device"}
        else ("host time (CPU)" if kinds == {"host"} else "device time where a GPU ran, else host")
    )
    breakdown = Table(title=f"median step breakdown (ms), profiled steps, {kind}",
                      title_justify="left", caption_justify="left")  # fmt: skip
    breakdown.add_column("category", no_wrap=True)
    for row in trained:
        breakdown.add_column(row["framework"], justify="right", no_wrap=True)
    labels = sorted({label for row in trained for label in row["breakdown_s"]})
    for label in labels:
        breakdown.add_row(
            label, *(f"{1e3 * r['breakdown_s'].get(label, 0.0):.2f}" for r in trained)
        )
    breakdown.add_row(
        "step (profiled)", *(f"{1e3 * r['instrumented_step_s']:.2f}" for r in trained),
        style="bold",
    )  # fmt: skip
    breakdown.add_row("plain step (alternating)", *(
        f"{(r.get('breakdown') or {}).get('plain_step_us', float('nan')) / 1e3:.2f}"
        for r in trained))  # fmt: skip
    breakdown.caption = _plain([
        "categories from a trace recording only ranges and autograd nodes (no operator "
        "events), no synchronisation inside a step; the operations from a second trace that "
        "records every operator (their times carry its overhead: "
        + ", ".join(f"{r['framework']} {100 * r['breakdown']['detailed_overhead']:+.0f} %"
                    for r in trained if r.get("breakdown")) + " over plain steps)"
    ])  # fmt: skip
    fastest = document["attribution"]["fastest"]
    attribution = Table(
        title=f"where the time goes, against the fastest ({fastest}), and the operations behind it",
        title_justify="left",
        show_header=False,
    )
    attribution.add_column("difference")
    for framework, difference in document["attribution"]["differences"].items():
        attribution.add_row(describe_difference(framework, difference), style="bold")
        for category in difference.get("categories", [])[:3]:
            attribution.add_row("  " + describe_operations(category, difference["named"]))
    for framework, launch in (document["attribution"].get("launch") or {}).items():
        attribution.add_row(f"{framework}: {launch['text']}", style="dim")
    tables = [summary, breakdown, attribution]
    if document.get("world_size"):
        tables.append(ranks_table(document))
    return tables


def ranks_table(document: dict[str, Any]) -> Table:
    """Data-parallel runs: each rank's throughput and communication, and the total."""
    table = Table(
        title=f"data-parallel over {document['world_size']} processes (DistributedDataParallel)",
        title_justify="left",
        caption_justify="left",
    )
    for column in ("framework", "rank", "steps", "step ms", "samples/s", "communication ms"):
        table.add_column(column, justify="left" if column == "framework" else "right")
    totals = []
    for row in document["rows"]:
        for rank in row.get("ranks") or []:
            table.add_row(
                row["framework"],
                str(rank["rank"]),
                str(rank["steps"]),
                f"{1e3 * rank['step_median_s']:.2f}",
                f"{rank['samples_per_s']:.0f}",
                f"{1e3 * rank['communication_s']:.2f}",
            )
        if row.get("ranks"):
            totals.append(f"{row['framework']}: {row['total_samples_per_s']:.0f} samples/s in all")
    table.caption = _plain(
        totals
        + [
            "communication: the gradient all-reduce per profiled step, made blocking there; "
            "plain steps overlap it with backward"
        ]
    )
    return table


def _ann_line(document: dict[str, Any]) -> str:
    ann = document.get("ann") or {}
    if ann.get("status") != "ok":
        return f"ANN: {ann.get('status', 'not trained')}: {ann.get('reason', 'interrupted')}"
    return (
        f"ANN (ReLU twin, same initial weights): test accuracy {100 * ann['test_accuracy']:.1f} "
        f"%, {statistics.median(ann['epoch_s']):.2f} s/epoch, "
        f"{1e3 * ann['step_median_s']:.2f} ms/step"
    )


def _conversion_times(row: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """A conversion row's training and conversion seconds: a route that trains its own SNN
    has its training time and no conversion; a converter shares the ANN's training time."""
    if row.get("training"):
        return [f"{row['training']['train_s']:.1f}", "-"]
    ann = document.get("ann") or {}
    shared = f"{sum(ann['epoch_s']):.1f} (ANN)" if ann.get("status") == "ok" else "-"
    return [shared, f"{row['convert_s']:.2f}"]


def conversion_tables(document: dict[str, Any]) -> list[Table]:
    """ANN-to-SNN conversion: one row per framework, then accuracy against T."""
    task = document["task"]
    summary = Table(
        title=f"{task['model']} on {task['dataset']}: ANN-to-SNN conversion, T up to {task['T']}, "
        f"on {document['environment']['device']['name']}",
        title_justify="left",
        caption_justify="left",
    )
    summary.add_column("framework", no_wrap=True)
    columns = ("status", f"acc T={task['T']}", "train s", "convert s", "ms/batch", "samples/s",
               "peak MB")  # fmt: skip
    for column in columns:
        summary.add_column(column, justify="right", no_wrap=True)
    notes = [_ann_line(document)]
    ok = []
    for row in document["rows"]:
        if row.get("status") != "ok":
            summary.add_row(row["framework"], row.get("status", "error"), *[""] * 6, style="dim")
            notes.append(f"{row['framework']}: {row.get('status')}: {row.get('reason', '')}")
            continue
        ok.append(row)
        summary.add_row(
            row["framework"],
            "ok",
            f"{100 * row['test_accuracy']:.1f} %",
            *_conversion_times(row, document),
            f"{1e3 * row['inference_batch_median_s']:.1f}",
            f"{row['inference_samples_per_s']:.0f}",
            _megabytes(row["peak_bytes"]),
        )
        notes += [note for note in row.get("notes", [])]
    notes.append(f"ms/batch: one test batch of {task['batch_size']} through all T steps")
    summary.caption = _plain(notes)
    by_t = Table(title="test accuracy against T", title_justify="left")
    by_t.add_column("T", justify="right")
    for row in ok:
        by_t.add_column(row["framework"], justify="right", no_wrap=True)
    ann = document.get("ann") or {}
    if ann.get("status") == "ok":
        by_t.add_column("ANN", justify="right", no_wrap=True)
    steps = list(ok[0]["accuracy_by_T"]) if ok else []
    for t in steps:
        cells = [f"{100 * row['accuracy_by_T'][t]:.1f} %" for row in ok]
        if ann.get("status") == "ok":
            cells.append(f"{100 * ann['test_accuracy']:.1f} %")
        by_t.add_row(t, *cells)
    return [summary, by_t]


def e2e_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Direct training's per-framework table as (header, rows) of text, for Markdown and HTML."""
    header = ["framework", "status", "test acc", "epoch s", "step ms", "samples/s"]
    rows = []
    for row in document["rows"]:
        if row.get("status") != "ok":
            status = f"{row.get('status')}: {row.get('reason', '')}"
            rows.append([row["framework"], status, *[""] * 4])
            continue
        rows.append([
            row["framework"], "ok", f"{100 * row['test_accuracy']:.1f} %",
            f"{statistics.median(row['epoch_s']):.2f}", f"{1e3 * row['step_median_s']:.2f}",
            f"{row['samples_per_s']:.0f}",
        ])  # fmt: skip
    return header, rows


def conversion_rows(document: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Conversion's table (accuracy at each T, conversion and inference time) as (header,
    rows) of text, for Markdown and HTML."""
    ok = [row for row in document["rows"] if row.get("status") == "ok"]
    steps = list(ok[0]["accuracy_by_T"]) if ok else []
    header = ["framework", "status", *[f"T={t}" for t in steps], "train s", "convert s",
              "ms/batch"]  # fmt: skip
    rows = []
    for row in document["rows"]:
        if row.get("status") != "ok":
            status = f"{row.get('status')}: {row.get('reason', '')}"
            rows.append([row["framework"], status, *[""] * (len(steps) + 3)])
            continue
        accuracies = [f"{100 * row['accuracy_by_T'][t]:.1f} %" for t in steps]
        times = [*_conversion_times(row, document), f"{1e3 * row['inference_batch_median_s']:.1f}"]
        rows.append([row["framework"], "ok", *accuracies, *times])
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def conversion_markdown(document: dict[str, Any]) -> str:
    return "\n".join([_ann_line(document), "", *markdown_table(*conversion_rows(document))]) + "\n"


def e2e_markdown(document: dict[str, Any]) -> str:
    if document.get("mode") == "conversion":
        return conversion_markdown(document)
    setting = document["task"].get("neuron_setting", "canonical")
    lines = [f"Neurons: {setting}", "", *markdown_table(*e2e_rows(document)), ""]
    lines += [f"- {note}" for row in document["rows"] for note in _setting_notes(row)]
    attribution = document["attribution"]
    for framework, difference in attribution["differences"].items():
        lines += [f"- {describe_difference(framework, difference)}", ""]
        lines += [*markdown_table(*drill_down_rows(difference)), ""]
    for framework, launch in (attribution.get("launch") or {}).items():
        lines.append(f"- {framework}: {launch['text']}")
    return "\n".join(lines) + "\n"


# ---- traces --------------------------------------------------------------------------------------


def _ms(us: float | None) -> str:
    return "" if us is None else f"{us / 1e3:.3f}"


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else ""


def short_name(name: str, width: int = 80, depth: int = 2) -> str:
    """A demangled C++ kernel name made readable: no "void ", no parameter list, template
    arguments nested deeper than ``depth`` levels shown as <…>, then cut to ``width``."""
    name = name.removeprefix("void ").replace("(anonymous namespace)", "{anonymous}")
    if len(name) <= width:
        return name
    out, level = [], 0
    for char in name:
        if char == "(" and level == 0:
            break  # the parameter list
        if char == "<":
            level += 1
            if level == depth:
                out.append("<…>")
            if level >= depth:
                continue
        elif char == ">":
            level -= 1
            if level >= depth - 1:
                continue
        elif level >= depth:
            continue
        out.append(char)
    short = "".join(out)
    return short if len(short) <= width else short[: width - 1] + "…"


def distinct_short_names(names: list[str], width: int = 80) -> dict[str, str]:
    """Each name shortened (see :func:`short_name`) so that different names stay different:
    where two shorten alike, deeper template levels are kept, and as a last resort the part
    where they first differ is shown after the common start."""
    shorts = {name: short_name(name, width) for name in names}
    for depth in (3, 4, 6, 1000):
        clashing = _clashes(shorts)
        if not clashing:
            return shorts
        for name in clashing:
            shorts[name] = short_name(name, width, depth)
    for group in _groups(shorts).values():
        if len(group) < 2:
            continue
        common = len(_common_prefix(group))
        for name in group:
            keep = max(0, width // 2 - 1)
            start = max(0, common - 8)
            shorts[name] = (name[:keep] + "…" + name[start : start + width - keep - 1])[:width]
    return shorts


def _groups(shorts: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, short in shorts.items():
        groups.setdefault(short, []).append(name)
    return groups


def _clashes(shorts: dict[str, str]) -> list[str]:
    return [name for group in _groups(shorts).values() if len(group) > 1 for name in group]


def _common_prefix(names: list[str]) -> str:
    first, last = min(names), max(names)
    length = 0
    while length < min(len(first), len(last)) and first[length] == last[length]:
        length += 1
    return first[:length]


def _name_table(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("name", overflow="fold", max_width=90)
    for header, _ in columns:
        table.add_column(header, justify="right", no_wrap=True)
    shorts = distinct_short_names([row["name"] for row in rows])
    for row in rows:
        table.add_row(shorts[row["name"]], *(render(row) for _, render in columns))
    return table


def trace_summary_tables(summary: dict[str, Any]) -> list[Table | Text]:
    """`kernelprof trace summary`: launch statistics, categories, then the top tables."""
    launch = summary["launch"]
    heading = Text(
        f"{summary['path']}: {summary['events']:,} events over {_ms(summary['span_us'])} ms",
        style="bold",
    )
    overview = Table(show_header=False)
    overview.add_column("what")
    overview.add_column("value", justify="right")
    if summary["cpu_only"]:
        overview.add_row("GPU activity", "none (kernels, memcpy, memset): a CPU-only trace")
    else:
        overview.add_row("kernels", f"{launch['kernel_count']:,}")
        overview.add_row("kernel time ms", _ms(launch["kernel_time_us"]))
        overview.add_row("mean kernel µs", f"{launch['mean_kernel_us']:.1f}")
        overview.add_row(
            f"kernels < {launch['tiny_kernel_us']:g} µs",
            f"{100 * launch['tiny_kernel_share']:.1f} %",
        )
        overview.add_row("GPU idle (active window)", f"{100 * launch['gpu_idle_fraction']:.1f} %")
        kinds = summary["gpu_kinds_us"]
        total = sum(kinds.values())
        for kind, us in sorted(kinds.items(), key=lambda item: -item[1]):
            overview.add_row(f"GPU {kind}", f"{_ms(us)} ms ({_share(us, total)})")
    if launch["launch_calls"]:
        overview.add_row("launch calls", f"{launch['launch_calls']:,}")
        overview.add_row("mean launch µs", f"{launch['mean_launch_us']:.1f}")
    categories = Table(title="time per event category (ms, summed)", title_justify="left")
    categories.add_column("category")
    categories.add_column("ms", justify="right")
    for name, us in summary["categories_us"].items():
        categories.add_row(name, _ms(us))
    tables = [heading, overview, categories]
    kernel_total = launch["kernel_time_us"]
    if summary["kernels"]:
        tables.append(_name_table("top kernels by total time", summary["kernels"], [
            ("count", lambda r: f"{r['count']:,}"), ("total ms", lambda r: _ms(r["total_us"])),
            ("mean µs", lambda r: f"{r['total_us'] / r['count']:.1f}"),
            ("% kernel time", lambda r: _share(r["total_us"], kernel_total)),
        ]))  # fmt: skip
    if summary["operators"]:
        tables.append(_name_table("top operators by self time", summary["operators"], [
            ("count", lambda r: f"{r['count']:,}"), ("self ms", lambda r: _ms(r["self_us"])),
            ("total ms", lambda r: _ms(r["total_us"])),
        ]))  # fmt: skip
    titles = {"ranges": "record_function ranges on the CPU (host time)",
              "gpu_ranges": "record_function ranges on the GPU (device time)"}  # fmt: skip
    for key, title in titles.items():
        if summary.get(key):
            tables.append(_name_table(title, summary[key], [
                ("count", lambda r: f"{r['count']:,}"), ("total ms", lambda r: _ms(r["total_us"])),
            ]))  # fmt: skip
    return tables


def trace_diff_tables(difference: dict[str, Any]) -> list[Table | Text]:
    """`kernelprof trace diff A B`: B - A per category, kernel, operator and range."""
    span = difference["span_us"]
    columns = [
        ("A ms", lambda r: _ms(r["a_us"])), ("B ms", lambda r: _ms(r["b_us"])),
        ("B - A ms", lambda r: f"{r['delta_us'] / 1e3:+.3f}"),
    ]  # fmt: skip
    counted = columns + [("A / B count", lambda r: f"{r['a_count']:,} / {r['b_count']:,}")]
    tables: list[Table | Text] = [
        Text(
            f"A = {difference['a']}\nB = {difference['b']}\ntrace span {_ms(span['a'])} -> "
            f"{_ms(span['b'])} ms ({span['delta'] / 1e3:+.3f})",
            style="bold",
        ),
        _name_table("event categories, largest change first", difference["categories"], columns),
    ]
    prefixes = difference.get("range_prefixes")
    ranges_title = "record_function ranges" + (
        f" (matched without their prefixes {prefixes[0]!r} and {prefixes[1]!r})"
        if prefixes else ""
    )  # fmt: skip
    for key, title in (("kernels", "kernels (total time)"),
                       ("operators", "operators (self time)"),
                       ("ranges", ranges_title),
                       ("gpu_ranges", "record_function ranges on the GPU")):  # fmt: skip
        if difference.get(key):
            tables.append(_name_table(f"{title}, largest change first", difference[key], counted))
    if difference.get("steps"):
        tables.append(steps_diff_table(difference["steps"]))
    return tables


def steps_diff_table(compared: dict[str, Any], categories: int = 8) -> Table:
    """Two kernelprof training traces: B - A per category of a step, and the operations behind
    each change (the e2e attribution, from the same code)."""
    step = compared["step_us"]
    table = Table(
        title=f"training steps (median): {step['a'] / 1e3:.2f} -> {step['b'] / 1e3:.2f} ms "
        f"({step['delta'] / 1e3:+.2f}); per category, largest change first",
        title_justify="left", show_header=False,
    )  # fmt: skip
    table.add_column("change")
    for category in compared["categories"][:categories]:
        table.add_row(describe_operations(category, compared["named"]))
    return table


def trace_summary_markdown(summary: dict[str, Any]) -> str:
    launch = summary["launch"]
    lines = [
        f"**{summary['path']}**: {summary['events']:,} events, span {_ms(summary['span_us'])} ms"
    ]
    if summary["cpu_only"]:
        lines.append("\nNo GPU activity: a CPU-only trace.")
    else:
        lines.append(
            f"\n{launch['kernel_count']:,} kernels, {_ms(launch['kernel_time_us'])} ms; mean "
            f"{launch['mean_kernel_us']:.1f} µs; {100 * launch['tiny_kernel_share']:.1f} % under "
            f"{launch['tiny_kernel_us']:g} µs; GPU idle {100 * launch['gpu_idle_fraction']:.1f} %"
        )
    for key, title, value in (("kernels", "kernel", "total_us"), ("operators", "operator",
                              "self_us"), ("ranges", "CPU range", "total_us"),
                              ("gpu_ranges", "GPU range", "total_us")):  # fmt: skip
        if summary.get(key):
            lines += ["", f"| {title} | count | ms |", "|---|---|---|"]
            lines += [f"| `{r['name']}` | {r['count']} | {_ms(r[value])} |" for r in summary[key]]
    return "\n".join(lines) + "\n"


def trace_diff_markdown(difference: dict[str, Any]) -> str:
    lines = [f"A = `{difference['a']}`, B = `{difference['b']}`"]
    for key in ("categories", "kernels", "operators", "ranges", "gpu_ranges"):
        if difference.get(key):
            lines += ["", f"| {key} | A ms | B ms | B - A ms |", "|---|---|---|---|"]
            lines += [
                f"| `{r['name']}` | {_ms(r['a_us'])} | {_ms(r['b_us'])} | "
                f"{r['delta_us'] / 1e3:+.3f} |"
                for r in difference[key]
            ]
    if difference.get("steps"):
        delta = difference["steps"]["step_us"]["delta"] / 1e3
        lines += ["", f"Training steps, B - A: {delta:+.2f} ms per step", ""]
        lines += markdown_table(*drill_down_rows(difference["steps"]))
    return "\n".join(lines) + "\n"
