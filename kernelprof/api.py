"""The Python API: what the command line does, for notebooks and scripts.

Each function takes the command's options as keyword arguments, named as on the command line
(``--no-energy`` is ``no_energy=True``, ``--T 4,8`` is ``T=(4, 8)`` or ``T="4,8"``), or a request
object (:mod:`kernelprof.requests`), and returns a :class:`Result`. An invalid request raises
:class:`~kernelprof.requests.RequestError` with the same one-line message the command line
prints before exiting with code 2. Progress goes to stderr only when it is a terminal.

    import kernelprof

    result = kernelprof.compare(T=8, N=2**16, impls="ref-torch,spikingjelly", rounds=3)
    result.table()                      # what `kernelprof compare` prints
    fastest = min(result.rows, key=lambda row: row.timings["fwd+bwd"].device_s)
    result.save("compare.json")
    again = kernelprof.load("compare.json")
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernelprof.requests import CheckRequest, CompareRequest, E2ERequest, RequestError
from kernelprof.requests.profile import ProfileRequest
from kernelprof.requests.study import StudyRequest
from kernelprof.results import files
from kernelprof.results.document import Document

__all__ = ["Result", "RequestError", "check", "compare", "e2e", "load", "profile", "step"]


class Result:
    """A results document (a record of :mod:`kernelprof.results`) with what a notebook needs.

    ``document``: the record itself; ``rows``: its rows (compare: every case's); ``to_json()``,
    ``save(path)``; ``table()`` prints what the command line prints. ``messages``: what the run
    said about its outputs (where a plot or a fallback file went)."""

    def __init__(self, document: Document, messages: tuple[str, ...] = ()) -> None:
        self.document = document
        self.messages = messages

    @property
    def kind(self) -> str:
        return self.document.kernelprof

    @property
    def rows(self) -> tuple:
        return getattr(self.document, "rows", ())

    def to_json(self) -> str:
        return files.dumps(self.document)

    def save(self, path: str | Path) -> Path:
        """Writes the document; should that fail, to a temporary file instead (said on
        stderr), so that a result already measured is never lost. Returns where it went."""
        written, problem = files.save(self.document, path)
        if problem is not None:
            print(f"kernelprof: {problem}; the results are in {written}", file=sys.stderr)
        return written

    def renderables(self, all_rows: bool = False) -> list:
        from kernelprof import present

        return present.renderables(self.document, all_rows=all_rows)

    def table(self, all_rows: bool = False, console=None) -> None:
        """Prints the tables the command line prints for this document."""
        from rich.console import Console

        console = console if console is not None else Console()
        for renderable in self.renderables(all_rows):
            console.print(renderable)

    def __repr__(self) -> str:
        return f"<kernelprof {self.kind} result: {len(self.rows)} rows>"


def _request(kind: type, request: Any, options: dict[str, Any]):
    if request is not None and options:
        raise RequestError(f"{kind.COMMAND}: give a request or options, not both")
    if request is None:
        return kind.from_options(**options)
    if not isinstance(request, kind):
        raise RequestError(f"{kind.COMMAND}: expected a {kind.__name__}, got "
                           f"{type(request).__name__}")  # fmt: skip
    return request


def _progress():
    from kernelprof.present.progress import Progress

    return Progress()


def _notes() -> tuple[str, ...]:
    """Plugins that failed to load: said on every document."""
    from kernelprof.frameworks import registry

    return tuple(registry.problems())


def _saved(document: Document, out: Path | None) -> tuple[str, ...]:
    if out is None:
        return ()
    written, problem = files.save(document, out)
    return () if problem is None else (f"{problem}; the results are in {written}",)


def check(request: CheckRequest | None = None, /, **options: Any) -> Result:
    """``kernelprof check``: every implementation against the float64 oracle."""
    from kernelprof.runs import check as run
    from kernelprof.runs.environment import environment

    request = _request(CheckRequest, request, options)
    run.preflight(request)
    document = run.run_check(request, environment=environment(request.device), notes=_notes(),
                             status=_progress().status)  # fmt: skip
    return Result(document, _saved(document, request.out))


def compare(request: CompareRequest | None = None, /, *,
            on_case: Callable | None = None, **options: Any) -> Result:  # fmt: skip
    """``kernelprof compare``: every implementation checked, then timed side by side.
    ``on_case`` gets each analysed case as it finishes."""
    from kernelprof.runs.compare import run
    from kernelprof.runs.environment import environment

    request = _request(CompareRequest, request, options)
    run.preflight(request)
    document = run.run_compare(request, environment=environment(request.device), notes=_notes(),
                               status=_progress().status,
                               on_case=on_case or (lambda _: None))  # fmt: skip
    messages = _saved(document, request.out)
    if request.plot is not None:
        messages += (_plot(document, request.plot),)
    return Result(document, messages)


def _plot(document, path: Path) -> str:
    try:
        from kernelprof.present.plots import compare_plot
    except ImportError as error:
        return f"plot: unavailable: {error} (pip install 'kernelprof[plots]')"
    try:
        return f"plot: {compare_plot(document, path)}"
    except ValueError as error:
        return f"plot: not drawn: {error}"


def e2e(request: E2ERequest | None = None, /, **options: Any) -> Result:
    """``kernelprof e2e``: the same network trained (or converted) by each framework."""
    from kernelprof.runs.e2e import run
    from kernelprof.runs.environment import environment

    request = _request(E2ERequest, request, options)
    try:
        run.preflight(request)
    except run.DatasetUnavailable as error:
        raise RequestError(f"--dataset: {error}") from None
    progress = _progress()
    document = run.run_e2e(request, environment=environment(request.device), notes=_notes(),
                           progress=progress.training)  # fmt: skip
    return Result(document, _saved(document, request.out) if run.reports_here() else ())


class StudyResult:
    """What ``kernelprof.study(...)`` returns, made from the study's store: ``summary`` (a
    :class:`~kernelprof.results.study.SeedsStudy`: every column over its seeds and the claims
    judged over them), ``studies`` (the documents seed by seed), ``problems`` (what the store
    could not read, the cells that failed) and whether the run was interrupted."""

    def __init__(self, found: tuple, interrupted: bool) -> None:
        self.summary, self.studies, problems = found
        self.problems, self.interrupted = tuple(problems), interrupted

    def markdown(self) -> str:
        from kernelprof.present.study import seeds_markdown

        return seeds_markdown(self.summary, self.studies, self.problems)


def study(request: StudyRequest | None = None, /, **options: Any) -> StudyResult:
    """``kernelprof study``: the study's cells that its folder (``out``) lacks, run one at a
    time here or as Ray tasks (``executor="ray"``), each written as it ends; or, with
    ``source``, the tables of a folder as it is."""
    from kernelprof.results.store import Store
    from kernelprof.runs.study import run

    request = _request(StudyRequest, request, options)
    if request.source is not None:
        return StudyResult(run.documents_of(Store(request.source), request.study_preset), False)
    run.preflight(request)
    with _progress().summary("study: starting") as live:
        result = StudyResult(*run.run_study(request, say=run.stderr, live=live))
    (request.out / "study.md").write_text(result.markdown())
    written = ["study.md"]
    try:
        from kernelprof.present import pages
        from kernelprof.present.study import over_seeds_sections

        pages.write_html([(f"seed {seed}", study) for seed, study in result.studies.items()],
                         request.out / "study.html",
                         intro=over_seeds_sections(result.summary) if result.summary.cells
                         else ())  # fmt: skip
        written.append("study.html")
    except ImportError as error:
        run.stderr(f"study.html: unavailable: {error}")
    run.stderr(f"written: {', '.join(str(request.out / name) for name in written)}")
    return result


def profile(model=None, request: ProfileRequest | None = None, /, **options: Any):
    """``kernelprof profile`` for a notebook or a custom loop::

        with kernelprof.profile(model, steps=10) as prof:
            for x, y in loader:
                ...  # forward, loss, backward, optimizer step
                prof.step()
        prof.result.table()

    ``model``: the module (or a list of modules) whose layers are named; without one, the
    models are the modules the warm-up steps call, and steps end at ``optimizer.step()`` (as
    for a script run by ``kernelprof profile``) until ``prof.step()`` is called. The options are the
    command's (``warmup``, ``steps``, ``op_steps``, ``device``, ``out``, ``trace_dir``); the
    loop must step ``warmup + 1 + 3 * (steps + op_steps)`` times for the whole schedule (leaving
    the block earlier keeps what was profiled). ``prof.result`` is a :class:`Result` holding
    the same document the command line writes."""
    from kernelprof.runs.profile import run

    class Profile(run.Profile):
        @property
        def result(self) -> Result:
            """The profile (a :class:`Result`), once the schedule is done or the block left."""
            return Result(*self.profiled())

    request = _request(ProfileRequest, request, options)
    if request.script:
        raise RequestError("profile: a command is for the command line; the Python API "
                           "profiles the model it is given")  # fmt: skip
    if request.stop:
        raise RequestError("profile: --stop is for the command line (leave the `with` block)")
    return Profile(model, request, notes=_notes())


def step() -> None:
    """Marks the end of a training step for ``kernelprof profile`` (a no-op when nothing is
    profiled): for scripts whose steps are not one optimizer step each."""
    from kernelprof.runs.profile.run import step as mark

    mark()


def load(path: str | Path) -> Result:
    """Any results document written with ``--out`` (or :meth:`Result.save`), read back into its
    records; :class:`~kernelprof.results.files.DocumentError` in one line for a file that is
    not one this kernelprof reads."""
    return Result(files.load(path))
