"""``kernelprof frameworks`` shown: every framework found, what it provides and whether it runs
here. Reads records only."""

from __future__ import annotations

from rich.table import Table

from kernelprof.results.frameworks import FrameworkListing

from .tables import plain


def frameworks_table(listing: FrameworkListing) -> Table:
    result = Table(title="frameworks (built in, and installed plugins)", title_justify="left",
                   caption_justify="left")  # fmt: skip
    for column in ("framework", "status", "implementations (neurons; check, compare)",
                   "e2e networks", "conversion", "source"):  # fmt: skip
        result.add_column(column)
    for fw in listing.frameworks:
        status = "[green]ok[/]" if fw.problem is None else f"[dim]{fw.problem}[/]"
        conversion = ", ".join(fw.converters) or "[dim]none[/]"
        rows = [f"{impl} ({', '.join(fw.neurons.get(impl, ('lif',)))})"
                for impl in fw.implementations]  # fmt: skip
        result.add_row(f"{fw.name} ({fw.display})", status, ", ".join(rows),
                       ", ".join(fw.networks), conversion, fw.source)  # fmt: skip
    result.caption = plain(list(listing.problems))
    return result
