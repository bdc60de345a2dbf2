"""The requests of the commands that read what others measured: ``trace summary``, ``trace
diff``, ``report`` and ``frameworks``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kernelprof.requests.options import (
    Command,
    Request,
    RequestError,
    at_least,
    option,
    output_format,
    path,
    paths,
)
from kernelprof.requests.outputs import writable_file

REPORT_SUFFIXES = (".html", ".htm", ".md")


def readable(file: Path, flag: str) -> None:
    if not file.is_file():
        raise RequestError(f"{flag}: {file} is not a file" if file.exists() else
                           f"{flag}: {file} does not exist")  # fmt: skip


@dataclasses.dataclass(frozen=True, kw_only=True)
class TraceSummaryRequest(Request):
    COMMAND = "trace summary"

    trace: Path = option(help="a torch.profiler Chrome trace (.json or .json.gz)", parse=path,
                         positional=True, metavar="TRACE")  # fmt: skip
    top: int = option(15, "rows per table", parse=at_least(1))

    def check(self) -> None:
        readable(self.trace, "TRACE")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TraceDiffRequest(Request):
    COMMAND = "trace diff"

    a: Path = option(help="the trace to compare against", parse=path, positional=True,
                     metavar="A")  # fmt: skip
    b: Path = option(help="the trace compared", parse=path, positional=True, metavar="B")
    top: int = option(15, "rows per table", parse=at_least(1))

    def check(self) -> None:
        readable(self.a, "A")
        readable(self.b, "B")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportRequest(Request):
    COMMAND = "report"

    results: tuple[Path, ...] = option(help="results files written with --out", parse=paths,
                                       positional=True, nargs="+",
                                       metavar="RESULTS.json")  # fmt: skip
    out: Path = option(help="report.html, or report.md for Markdown", parse=path,
                       aliases=("-o",))  # fmt: skip

    def check(self) -> None:
        for file in self.results:
            readable(file, "RESULTS.json")
        if self.out.suffix.lower() not in REPORT_SUFFIXES:
            raise RequestError(f"-o: {self.out} must end in .html or .md")
        writable_file(self.out, "-o")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FrameworksRequest(Request):
    COMMAND = "frameworks"


TRACE_SUMMARY = Command(
    name="summary", help="what one trace spends its time on",
    description="Reads any torch.profiler Chrome trace (.json or .json.gz) in one streaming "
    "pass: top kernels, operators and record_function ranges, time per category, launch "
    "statistics and GPU idle time.",
    request=TraceSummaryRequest, display=(output_format("table", "json", "md"),),
)  # fmt: skip
TRACE_DIFF = Command(
    name="diff", help="B minus A per kernel, operator and category",
    description="The differences between two traces by impact; for two kernelprof training "
    "traces, the per-category step attribution with the operations behind each change.",
    request=TraceDiffRequest, display=(output_format("table", "json", "md"),),
)  # fmt: skip
REPORT = Command(
    name="report",
    help="results files as one self-contained HTML file, or Markdown",
    description="Turns results files written with --out (check, compare, e2e, conversion, "
    "study) into one HTML file with every chart embedded (opens offline), or, for a .md "
    "output, Markdown with the charts as PNG files beside it.",
    request=ReportRequest,
)
FRAMEWORKS = Command(
    name="frameworks",
    help="list the frameworks found (built in and installed plugins) and what each provides",
    description="Lists every framework kernelprof found: the built-in modules and every "
    "installed package declaring a 'kernelprof.frameworks' entry point, with its "
    "implementations (the rows of check and compare), e2e networks, converters, its own "
    "default neuron settings (--format json) and whether its packages are installed here.",
    request=FrameworksRequest,
    display=(output_format("table", "json"),),
)
