"""``kernelprof trace summary`` and ``trace diff``: a trace read once into its summary (and, for
two kernelprof training traces, the step attribution between them, by the same code as
``kernelprof e2e``'s)."""

from __future__ import annotations

from typing import Any

from kernelprof import traces
from kernelprof.requests import RequestError
from kernelprof.results.e2e import StepComparison
from kernelprof.results.record import decode
from kernelprof.traces import steps


def _read(path, *, timeline: bool):
    try:
        if timeline:
            return traces.summarize_with_timeline(path)
        return traces.summarize(path), None
    except traces.TraceError as error:
        raise RequestError(str(error)) from None


def empty_reason(summary: traces.TraceSummary) -> str | None:
    """Why a trace has nothing to show, else None."""
    if summary.complete_events:
        return None
    extra = f" (none of its {summary.events:,} events has a duration)" if summary.events else ""
    return f"{summary.path}: no events{extra}"


def summarize(request) -> tuple[dict[str, Any] | None, str | None]:
    """(the summary, None), or (None, why it is empty)."""
    summary, _ = _read(request.trace, timeline=False)
    empty = empty_reason(summary)
    return (None, empty) if empty else (summary.as_dict(top=request.top), None)


def diff(request) -> tuple[dict[str, Any] | None, str | None]:
    """B minus A, each trace read once; with the step attribution between two kernelprof
    training traces (``steps``: a StepComparison). A trace's timeline is attributed as soon as
    it is read and then dropped, so one is held at a time."""
    summaries, attributed = [], []
    for path in (request.a, request.b):
        summary, timeline = _read(path, timeline=True)
        empty = empty_reason(summary)
        if empty:
            return None, empty
        summaries.append(summary)
        if steps.STEP in summary.ranges:
            attributed.append(steps.attribute(timeline, summary.path).as_dict())
        del timeline
    document = traces.diff(*summaries, top=request.top)
    if len(attributed) == 2:
        document["steps"] = decode(StepComparison, steps.compare(*attributed, top=request.top))
    return document, None
