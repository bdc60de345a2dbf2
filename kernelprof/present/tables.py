"""What every presenter shares: rich tables that fit the terminal, captions of plain text,
numbers written to a few significant digits, Markdown tables, energy in a few words."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table
from rich.text import Text

from kernelprof.results.energy import EnergyMeasurement, format_joules

VERDICT_STYLE = {
    "exact": "green",
    "close": "green",
    "approximate": "yellow",
    "WRONG": "bold red",
    "error": "red",
    "unsupported": "dim",
    "unavailable": "dim",
}
WIDTH = 120  # the compare and check tables fit this many columns


def table(title: str) -> Table:
    return Table(title=title, title_justify="left", caption_justify="left",
                 box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))  # fmt: skip


def fill(into: Table, headers: tuple[str, ...], cells: list[list[str]], left: int) -> None:
    """Adds the columns (the first ``left`` left-aligned) and rows, leaving out every column
    that is empty in all rows."""
    keep = [i for i in range(len(headers)) if i < left or any(row[i] for row in cells)]
    for i in keep:
        into.add_column(headers[i], justify="left" if i < left else "right", no_wrap=True)
    for row in cells:
        into.add_row(*(row[i] for i in keep))


def plain(lines: list[str]) -> Text:
    """A caption of free text (reasons, notes, shapes such as [out, in, k, k]): shown as
    written, never read as rich markup."""
    return Text("\n".join(lines))


def verdict_cell(verdict: str) -> str:
    return f"[{VERDICT_STYLE.get(verdict, '')}]{verdict}[/]"


def significant(value: float, digits: int) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def megabytes(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f}"


def count(value: int | None) -> str:
    return "n/a" if value is None else f"{value}"  # None: a runtime torch's profiler cannot see


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |"
          for row in rows),
    ]  # fmt: skip


def energy_line(energy: EnergyMeasurement) -> str:
    """One line: the energy per unit with its windows, idle power and counter, or why n/a."""
    if not energy.available:
        return f"energy: {energy.unavailable_reason}"
    low, high = energy.joules_range
    seconds = energy.seconds_per_window or 0.0
    per_unit = format_joules(energy.joules_per_unit)
    text = (f"energy: {per_unit}/{energy.unit} (windows {format_joules(low)}.."
            f"{format_joules(high)}; {len(energy.window_units)} x {seconds:.2f} s, "
            f"~{energy.units_per_window:,.0f} {energy.unit}s each; idle "
            f"{energy.idle_watts:.1f} W subtracted; {energy.counter}"
            + (f"; {energy.scope}" if energy.scope else "") + ")")  # fmt: skip
    if energy.flags:
        text += f" [{len(energy.flags)} warning{'s' if len(energy.flags) > 1 else ''}]"
    return text
