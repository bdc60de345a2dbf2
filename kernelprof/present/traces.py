"""``kernelprof trace`` shown: a trace's summary (launch statistics, categories, the top kernels,
operators and ranges) and the differences between two, with the step attribution of two
kernelprof training traces. Kernel names are shortened so that different names stay
different."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from kernelprof.results.e2e import CategoryChange, StepComparison

from .tables import markdown_table


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


def steps_diff_table(compared: StepComparison, categories: int = 8) -> Table:
    """Two kernelprof training traces: B - A per category of a step, and the operations behind
    each change (the e2e attribution, from the same code)."""
    step = compared.step_us
    table = Table(
        title=f"training steps (median): {step['a'] / 1e3:.2f} -> {step['b'] / 1e3:.2f} ms "
        f"({step['delta'] / 1e3:+.2f}); per category, largest change first",
        title_justify="left", show_header=False,
    )  # fmt: skip
    table.add_column("change")
    for category in compared.categories[:categories]:
        table.add_row(describe_operations(category, compared.named))
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
        delta = difference["steps"].step_us["delta"] / 1e3
        lines += ["", f"Training steps, B - A: {delta:+.2f} ms per step", ""]
        lines += markdown_table(*drill_down_rows(difference["steps"]))
    return "\n".join(lines) + "\n"


def describe_operations(category: CategoryChange, named: str, top: int = 4) -> str:
    """'lif fwd +6.9 ms: aten::mul 184 more calls +2.8 ms, aten::sub +1.9 ms, ...': the
    operations (operators, or GPU work) behind one category's change, largest first."""
    parts = []
    for operation in category.operations[:top]:
        count = operation.delta_count
        calls = "" if not count else (
            f" {abs(count):g} {'more' if count > 0 else 'fewer'} "
            f"{'kernels' if named == 'gpu' else 'calls'}"
        )  # fmt: skip
        name = short_name(operation.name, 48)
        parts.append(f"{name}{calls} {operation.delta_us / 1e3:+.2f} ms")
    return f"{category.name} {category.delta_us / 1e3:+.2f} ms: " + (
        ", ".join(parts) if parts else "no named operations"
    )


def drill_down_rows(difference, categories: int = 5, top: int = 4):
    """(category, change ms, operation, count change, time change ms) rows: the operations
    behind the largest category changes (of a Difference or a StepComparison), for Markdown
    and HTML."""
    rows = []
    for category in difference.categories[:categories]:
        for operation in category.operations[:top]:
            rows.append([
                category.name, f"{category.delta_us / 1e3:+.2f}", short_name(operation.name, 60),
                f"{operation.delta_count:+g}", f"{operation.delta_us / 1e3:+.3f}",
            ])  # fmt: skip
    unit = "kernel" if difference.named == "gpu" else "operation"
    return ["category", "change ms", unit, "count change", "time change ms"], rows
