"""A pytest plugin for benchmarks/gpu_check.sh: appends each failing test's report to the file
named by $KERNELPROF_FAILURE_LOG the moment it fails, and each test slower than 5 s as one line,
so a run cut off by its time limit still says what failed and why (pytest's own summary and
JUnit file are only written at the end). Load it with ``-p pytest_failure_log``."""

from __future__ import annotations

import os

MAX_REPORT_CHARS = 2500


def pytest_runtest_logreport(report) -> None:
    path = os.environ.get("KERNELPROF_FAILURE_LOG")
    if not path:
        return
    if report.failed:
        text = report.longreprtext
        if len(text) > MAX_REPORT_CHARS:  # the end holds the assertion and its message
            text = "...\n" + text[-MAX_REPORT_CHARS:]
        entry = f"FAILED {report.nodeid} ({report.when}, {report.duration:.2f} s)\n{text}\n\n"
    elif report.when == "call" and report.duration > 5:
        entry = f"slow {report.nodeid}: {report.duration:.1f} s\n"
    else:
        return
    with open(path, "a", encoding="utf-8") as file:
        file.write(entry)
