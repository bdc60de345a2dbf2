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
