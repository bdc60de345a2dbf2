"""``kernelprof compare`` shown: per case, the verdicts with device time, speedup, bandwidth,
memory, energy and flags, then device, call and launch time per phase; the flat CSV and
Markdown of every row. Reads records only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from rich.console import Group

from kernelprof.results.check import JUDGED, NOT_RUN
from kernelprof.results.compare import PHASES, CompareCase, CompareDocument, CompareRow
from kernelprof.results.compare import PhaseTiming as Timing
from kernelprof.results.flags import BUSY
from kernelprof.results.timing import Measurement

from .tables import count, fill, megabytes, plain, significant, table, verdict_cell

ROUND_DRIFT = 1.25  # noise probes further apart than this: the machine changed between rounds
HEADERS = ("impl", "verdict", "fwd\nms", "bwd\nms", "fwd+bwd\nms", "speed-\nup", "95 %\ninterval",
           "%\ncopy", "peak\nMB", "saved\nMB", "mJ", "flag")  # fmt: skip
CAPTION = (
    "ms: device time, median ±half the IQR (as a share of the median), rounds pooled; "
    "speedup: fwd+bwd device time vs the baseline, median of the per-round ratios, with its "
    "bootstrap interval; % copy: fwd+bwd's traffic ({passes} passes over [T, N]) in its device "
    "time against the measured copy bandwidth (GB/s in --format json, csv, md); peak: allocator "
    "peak of one fwd+bwd; saved: bytes autograd keeps for backward; mJ: energy per fwd+bwd; "
    f"flag: busy? = {BUSY} (rounds that disagree beyond their page faults, or a part slower "
    "than the whole), faults = rounds that differ by their page faults (said below), warm? = a "
    "warm-up that never settled, launch = launch-bound, host = host-bound (CPU analogue)"
)


def document_renderables(document: CompareDocument, all_rows: bool = False) -> list:
    """Everything ``kernelprof compare`` prints for a document: each case, then the notes."""
    return [*(case_renderable(case, all_rows) for case in document.cases),
            *notes_renderables(document)]  # fmt: skip


def notes_renderables(document: CompareDocument) -> list[str]:
    return [f"[dim]{note}[/]" for note in document.notes]


def case_renderable(case: CompareCase, all_rows: bool = False) -> Group:
    """The tables of one case: verdicts and device times, then device, call and launch time per
    phase (see :func:`time_table`), in one renderable."""
    if not case.timed_rows:
        return Group(reasons_table(case, all_rows))  # nothing timed: no empty table
    return Group(verdict_table(case, all_rows), time_table(case))


def _title(case: CompareCase) -> str:
    return (f"{case.case.neuron.upper()} {case.case.label} on {case.device.name}\ncopy bandwidth "
            f"{case.copy_bandwidth_gb_per_s:.1f} GB/s (measured); speedups against "
            f"{case.baseline}")  # fmt: skip


def reasons_table(case: CompareCase, all_rows: bool = False):
    """A case in which no row was timed: each row's verdict and reason, nothing else."""
    result = table(f"{case.case.neuron.upper()} {case.case.label} on {case.device.name}: "
                   "nothing was timed")  # fmt: skip
    fill(result, ("impl", "verdict", "reason"), [
        [row.impl, verdict_cell(row.verdict), _why_not_timed(row)] for row in case.rows
        if all_rows or row.verdict not in NOT_RUN or len(case.rows) == 1
    ], left=3)  # fmt: skip
    hidden = [f"  {row.impl}: {row.verdict}: {row.reason}" for row in case.rows
              if not all_rows and row.verdict in NOT_RUN and len(case.rows) > 1]  # fmt: skip
    result.caption = plain(["not run here:", *hidden] if hidden else [])
    return result


def _why_not_timed(row: CompareRow) -> str:
    if not row.checked.judged:
        return row.reason
    problems = "; ".join(filter(None, [row.checked.error, *row.errors])) or "no timings"
    return f"not timed: {problems}"


def verdict_table(case: CompareCase, all_rows: bool = False):
    """Verdict, device time per phase, speedup with its interval, bandwidth, memory, energy and
    flags per implementation. Rows that did not run here (unavailable, unsupported) are listed
    under it with their reasons unless ``all_rows``; columns empty in every row are left out;
    each row's notes (path, flags, reasons) follow."""
    cells: list[list[str]] = []
    notes, not_run, energy_notes = [], [], set()
    for row in case.rows:
        shown = [row.impl, verdict_cell(row.verdict)]
        if row.verdict in NOT_RUN and not all_rows:
            not_run.append(f"{row.impl}: {row.verdict}: {row.reason}")
            continue
        notes += _row_notes(row)
        if not (row.verdict in JUDGED and row.timings):
            cells.append(shown + [""] * (len(HEADERS) - 2))
            continue
        energy = row.profile.energy if row.profile else None
        if energy is None or not energy.available:
            energy_notes.add(energy.unavailable_reason if energy else "n/a: not measured")
        cells.append(shown + [
            *(ms_iqr(row.timings[phase].device) for phase in PHASES),
            speedup(row.speedup), interval(row.speedup), _copy_percent(row),
            megabytes(row.profile.peak_bytes) if row.profile else "",
            megabytes(row.profile.saved_bytes) if row.profile else "",
            significant(1e3 * energy.joules_per_unit, 3) if energy and energy.available else "",
            flag_cell(row),
        ])  # fmt: skip
    result = table(_title(case))
    fill(result, HEADERS, cells, left=2)
    passes = 2 * (2 + case.case.saved)  # the traffic model's (results.analysis.traffic_bytes)
    result.caption = plain([CAPTION.format(passes=passes),
                            *(f"energy: {note}" for note in sorted(energy_notes)),
                            *machine_notes(case), *notes,
                            *(["not run here:", *[f"  {line}" for line in not_run]]
                              if not_run else [])])  # fmt: skip
    return result


def _copy_percent(row: CompareRow) -> str:
    total = row.bandwidth.get("fwd+bwd")
    return "" if total is None else f"{100 * total.copy_fraction:.1f}"


def _row_notes(row: CompareRow) -> list[str]:
    """Under the table: a judged row's path and reason, its flags, errors and graph replays;
    any other row's reason."""
    if row.verdict not in JUDGED:
        return [f"{row.impl}: {row.verdict}: {row.reason}"]
    notes = [f"{row.impl}: path: {row.checked.path or '?'}"]
    if row.verdict != "exact":
        notes.append(f"{row.impl}: {row.verdict}: {row.reason}")
    if not row.timings:
        reasons = "; ".join(filter(None, [row.checked.error, *row.errors])) or "no timings"
        return [*notes, f"{row.impl}: not timed: {reasons}"]
    notes += [flag_note(row.impl, flag) for flag in row.flags]
    if row.profile is not None:
        notes += [f"{row.impl}: energy: {flag.message}" for flag in row.profile.energy.flags]
        graphs = row.profile.graph_timings
        if graphs:
            parts = [
                f"{phase} {g.unavailable_reason}"
                if g.measurement is None
                else f"{phase} {ms_iqr(g.measurement)}"
                for phase, g in graphs.items()
            ]
            notes.append(f"{row.impl}: CUDA graph replay (ms): " + ", ".join(parts))
    return notes


def flag_note(impl: str, flag) -> str:
    if flag.inconsistent:
        return f"{impl}: {BUSY}: {flag.message}"
    if flag.kind in ("whole_slower", "faults"):
        return f"{impl}: {flag.message}"
    return flag.message if flag.message.startswith(impl) else f"{impl}: {flag.message}"


CELL_FLAGS = (("faults", "faults"), ("warm_up_unsettled", "warm?"), ("host_bound", "host"),
              ("launch_bound", "launch"))  # fmt: skip


def flag_cell(row: CompareRow) -> str:
    kinds = {flag.kind for flag in row.flags}
    flags = ["busy?"] if row.inconsistent else []
    return " ".join(flags + [name for kind, name in CELL_FLAGS if kind in kinds])


def machine_notes(case: CompareCase) -> list[str]:
    """The noise probe timed before each round: the machine's own drift between rounds."""
    if not case.noise_rounds:
        return []
    shown = ", ".join(significant(1e3 * probe.median_s, 3) for probe in case.noise_rounds)
    ratio = case.drift or 1.0
    drifted = " (the machine itself changed between rounds)" if ratio > ROUND_DRIFT else ""
    lines = [f"machine: a fixed noise probe (an allocating multiply over 32 MiB) took {shown} ms "
             f"before rounds 1-{len(case.noise_rounds)}, {ratio:.2f}x apart{drifted}"]  # fmt: skip
    if case.noise_spread is not None:
        lines.append(f"machine: the probe's calls spread by {case.noise_spread:.0%} of their "
                     f"median; a phase is flagged above {case.spread_limit:.0%}")  # fmt: skip
    return lines


def time_table(case: CompareCase):
    """Per timed row and phase: device time (CUDA: the summed durations of the kernels a call
    launched, from the profiler; CPU: the host does the work, so device = call = launch), call
    time (what one call takes in a loop: CUDA events, or the host clock) and the host's launch
    time; the fwd+bwd speedup on call time, kernels per fwd+bwd, warm-up calls and first calls."""
    timed = case.timed_rows
    headers = ("impl", *(f"\n{phase}\n{kind}" for phase in PHASES
                         for kind in ("device", "call", "launch")),
               "call\nspeed-\nup", "\n95 %\ninterval", "\nkern-\nels", "warm-\nup\ncalls",
               "\n1st\ns")  # fmt: skip
    cells = []
    for row in timed:
        timings = row.timings
        first_call = sum(t.first_call_s or 0.0 for t in timings.values())
        warm = [t.warm_up.calls for t in timings.values() if t.warm_up is not None]
        cells.append([
            row.impl,
            *(significant(1e3 * value, 4) for phase in PHASES
              for value in (timings[phase].device_s, timings[phase].call_s,
                            timings[phase].launch_s)),
            speedup(row.speedup_call), interval(row.speedup_call),
            count(row.profile.kernels_per_fwd_bwd) if row.profile else "",
            "/".join(str(calls) for calls in warm), f"{first_call:.2f}",
        ])  # fmt: skip
    result = table("device, call and launch time per phase (ms)")
    fill(result, headers, cells, left=1)
    kinds = {row.profile.kernel_kind for row in timed if row.profile}
    sources = {t.device_source for row in timed for t in row.timings.values()}
    result.caption = plain([
        ("device: summed kernel durations of a call (profiler); call: CUDA events around a call "
         "in a loop; launch: host time until the call returns"
         if "kernels" in sources else
         "CPU: the host does the work, so device = call = launch (host clock around a call)"),
        "kernels: " + " / ".join(sorted(kinds)) + " per fwd+bwd; warm-up calls: fwd/bwd/fwd+bwd "
        "calls before round 1 until the time was steady; 1st s: the first calls (compilation), "
        "not in the medians",
    ])  # fmt: skip
    return result


def speedup(value) -> str:
    return f"{value.value:.2f}x" if value else ""


def interval(value) -> str:
    return f"{value.low:.2f}-{value.high:.2f}" if value else ""


def ms_iqr(measurement: Measurement) -> str:
    """'72.87 ±3%': the median in ms to 4 significant digits, half the IQR as a share of it."""
    median = measurement.median_s
    share = measurement.iqr_s / 2 / median if median else float("nan")
    return f"{significant(1e3 * median, 4)} ±{100 * share:.0f}%"


# ---- flat: one line per case and implementation (CSV, Markdown) -------------------------------

FLAT_COLUMNS = (
    "neuron", "T", "N", "dtype", "impl", "verdict", "fwd_ms", "bwd_ms", "fwd+bwd_ms",
    "fwd_call_ms", "bwd_call_ms", "fwd+bwd_call_ms", "fwd_launch_ms", "bwd_launch_ms",
    "fwd+bwd_launch_ms", "speedup", "speedup_low", "speedup_high", "speedup_call", "kernels",
    "gb_per_s", "copy_bandwidth_pct", "peak_mb", "saved_mb", "energy_mj", "flags", "path", "reason",
)  # fmt: skip


def flat_rows(document: CompareDocument) -> Iterator[dict]:
    for case in document.cases:
        for row in case.rows:
            yield {"neuron": case.case.neuron, "T": case.case.T, "N": case.case.N,
                   "dtype": case.case.dtype,
                   "impl": row.impl, "verdict": row.verdict, **_flat_figures(row),
                   "path": row.checked.path,
                   "reason": row.reason or row.checked.error}  # fmt: skip


def _flat_figures(row: CompareRow) -> dict:
    timings: dict[str, Timing] = row.timings or {}
    figures = {f"{phase}_{kind}ms": 1e3 * value for phase, t in timings.items()
               for kind, value in (("", t.device_s), ("call_", t.call_s),
                                   ("launch_", t.launch_s))}  # fmt: skip
    total = row.bandwidth.get("fwd+bwd")
    profile = row.profile
    energy = profile.energy if profile else None
    return {
        **figures,
        "speedup": row.speedup.value if row.speedup else None,
        "speedup_low": row.speedup.low if row.speedup else None,
        "speedup_high": row.speedup.high if row.speedup else None,
        "speedup_call": row.speedup_call.value if row.speedup_call else None,
        "flags": flag_cell(row) or None,
        "kernels": profile.kernels_per_fwd_bwd if profile else None,
        "gb_per_s": total.gb_per_s if total else None,
        "copy_bandwidth_pct": 100 * total.copy_fraction if total else None,
        "peak_mb": profile.peak_bytes / 2**20 if profile and profile.peak_bytes else None,
        "saved_mb": profile.saved_bytes / 2**20 if profile and profile.saved_bytes else None,
        "energy_mj": 1e3 * energy.joules_per_unit if energy and energy.available else None,
    }


def flat_table(records: list[dict], columns: list[str], kind: str) -> str:
    """CSV or Markdown: one line per record."""

    def text(value) -> str:
        if value is None:
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

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


def flat(document: CompareDocument, kind: str) -> str:
    return flat_table(list(flat_rows(document)), list(FLAT_COLUMNS), kind)
