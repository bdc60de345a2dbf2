"""Reporting: turns measured results into terminal tables and JSON. It never measures."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

VERDICT_STYLE = {"exact": "green", "close": "green", "WRONG": "bold red"}


def kernel_table(run: dict[str, Any]) -> Table:
    """The table of one compare case; the notes of each row are printed under it."""
    case = run["case"]
    copy_gbs = run["copy_bandwidth_gb_per_s"]
    table = Table(
        title=(
            f"LIF T={case['T']} N={case['N']:,} {case['dtype']} on {run['device']['name']}  "
            f"(measured copy bandwidth {copy_gbs:.1f} GB/s)"
        ),
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("impl")
    table.add_column("verdict")
    for column in ("fwd ms", "bwd ms", "fwd+bwd ms", "GB/s", "% copy", "1st call s"):
        table.add_column(column, justify="right", no_wrap=True)
    notes = []
    for row in run["rows"]:
        if row["status"] != "ok":
            table.add_row(row["impl"], row["status"], *[""] * 6, style="dim")
            notes.append(f"{row['impl']}: {row['status']}: {row['reason']}")
            continue
        verdict = row["check"]["verdict"]
        timings = row["timings"]
        total = timings["fwd+bwd"]
        first_call = sum(t["first_call_s"] or 0.0 for t in timings.values())
        if verdict != "exact":
            notes.append(f"{row['impl']}: {verdict}: {row['reason']}")
        notes += [w for t in timings.values() for w in t["warnings"]]
        table.add_row(
            row["impl"],
            f"[{VERDICT_STYLE.get(verdict, '')}]{verdict}[/]",
            *(_ms_iqr(timings[phase]) for phase in ("fwd", "bwd", "fwd+bwd")),
            f"{total['gb_per_s']:.1f}",
            f"{100 * total['copy_bandwidth_fraction']:.1f}",
            f"{first_call:.2f}",
        )
    table.caption = "\n".join(
        [
            "ms: median ±half the interquartile range; GB/s and % copy: fwd+bwd; "
            "1st call: one-off compilation, not in the medians"
        ]
        + notes
    )
    return table


def _ms_iqr(timing: dict[str, Any]) -> str:
    return f"{1e3 * timing['median_s']:.3f} ±{1e3 * timing['iqr_s'] / 2:.3f}"


def print_runs(runs: list[dict[str, Any]], console: Console, notes: list[str]) -> None:
    for run in runs:
        console.print(kernel_table(run))
    for note in notes:
        console.print(f"[dim]{note}[/]")


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, default=str)


CHECK_STYLE = {
    "exact": "green",
    "close": "green",
    "approximate": "yellow",
    "WRONG": "bold red",
    "error": "red",
    "unsupported": "dim",
    "unavailable": "dim",
}


def check_table(document: dict[str, Any]) -> Table:
    """The table of ``kernelprof check``: one row per implementation, reasons underneath."""
    case, config = document["case"], document["config"]
    reset = "soft" if config["v_reset"] is None else f"hard (V_r={config['v_reset']:g})"
    table = Table(
        title=(
            f"LIF vs float64 oracle: T={case['T']} N={case['N']:,} {case['dtype']} on "
            f"{document['environment']['device']['name']}; tau={config['tau']:g}, {reset}, "
            f"detach_reset={config['detach_reset']}, decay_input={config['decay_input']}, "
            f"{config['surrogate']}({config['alpha']:g})"
        ),
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("impl")
    table.add_column("verdict")
    for column in ("spike mismatches", "ties", "max |dV|", "max |d dX|", "cos dX"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("code path")
    reasons = []
    for row in document["rows"]:
        verdict = row["verdict"]
        style = CHECK_STYLE.get(verdict, "")
        if row.get("status") != "ok":
            table.add_row(row["impl"], f"[{style}]{verdict}[/]", *[""] * 5, "")
            reasons.append(f"{row['impl']}: {verdict}: {row.get('reason', '')}")
            continue
        v_diff = row["v_max_abs_diff"]
        table.add_row(
            row["impl"],
            f"[{style}]{verdict}[/]",
            f"{row['spike_mismatches']:,} ({100 * row['spike_mismatch_fraction']:.3f} %)",
            str(row["threshold_ties"]),
            "not exposed" if v_diff is None else f"{v_diff:.2e}",
            f"{row['grad_max_abs_diff']:.2e}",
            f"{row['grad_cosine']:.6f}",
            row["path"],
        )
        if verdict != "exact":
            reasons.append(f"{row['impl']}: {verdict}: {row['reason']}")
    table.caption = "\n".join(
        ["ties: neurons whose spikes first differ where the oracle's |H - theta| <= 1e-5"] + reasons
    )
    return table
