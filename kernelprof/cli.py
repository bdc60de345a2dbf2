"""The ``kernelprof`` command line: parses arguments into a request, dispatches it (to
:mod:`kernelprof.api` and :mod:`kernelprof.runs`) and prints the result. Each command's options
are declared on its request (:mod:`kernelprof.requests`); a request refused is one line on
stderr and exit code 2, before anything runs."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import Any

from kernelprof.requests import RequestError, tools
from kernelprof.requests import check as check_request
from kernelprof.requests import compare as compare_request
from kernelprof.requests import e2e as e2e_request
from kernelprof.requests import profile as profile_request
from kernelprof.requests import study as study_request
from kernelprof.requests.options import Command


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (and exit code 2)."""

    def error(self, message: str) -> None:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (e.g. from `timeout`) ends a sweep like Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["profile", "diff"]:  # a command of its own: `profile` takes a script
        argv = ["profile diff", *argv[2:]]
    args = vars(parser.parse_args(argv))
    command = args.pop("command_spec", None)
    if command is None:
        parser.print_help()
        return 2
    name = args.pop("command_name")
    for parsed in ("command", "trace_command"):  # the subcommands' own names
        args.pop(parsed, None)
    display = {item.name: args.pop(item.name) for item in command.display if item.name in args}
    try:
        request = command.request.from_options(**args)
        return HANDLERS[command.name](request, **command.display_values(display))
    except RequestError as error:
        print(f"kernelprof {name}: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="kernelprof", description="Where SNN training time and energy go: "
                    "neuron kernels and frameworks measured side by side.")  # fmt: skip
    commands = parser.add_subparsers(dest="command", parser_class=Parser)
    for command in (compare_request.COMMAND, check_request.COMMAND, e2e_request.COMMAND,
                    profile_request.COMMAND, profile_request.DIFF, study_request.COMMAND,
                    tools.FRAMEWORKS):  # fmt: skip
        _add(commands, command, command.name)
    trace = commands.add_parser("trace", help="summarise a torch.profiler Chrome trace, or diff "
                                "two", description=tools.TRACE_SUMMARY.description)  # fmt: skip
    inner = trace.add_subparsers(dest="trace_command", required=True, parser_class=Parser)
    for command in (tools.TRACE_SUMMARY, tools.TRACE_DIFF):
        _add(inner, command, f"trace {command.name}").set_defaults(trace_command=None)
    _add(commands, tools.REPORT, "report")
    return parser


def _add(commands, command: Command, full_name: str) -> argparse.ArgumentParser:
    """A subcommand whose arguments are the request's options and the command's display
    options (defaults stay with the request: an option not given is not passed)."""
    parser = commands.add_parser(command.name, help=command.help,
                                 description=command.description)  # fmt: skip
    options = [(name, how, default) for name, how, default in command.request.options()]
    options += [(item.name, item.option, item.default) for item in command.display]
    for name, how, default in options:
        empty = default is None or default is False or default == () or default == {}
        shown = "" if empty or how.action else f" (default: {_text(default)})"
        if how.positional:
            parser.add_argument(name, metavar=how.metavar, nargs=how.nargs, help=how.help)
            continue
        extra: dict[str, Any] = {"action": how.action} if how.action else {}
        if how.action in (None, "append"):
            extra["metavar"] = how.metavar
        parser.add_argument(how.flag_of(name), *how.aliases, dest=name, default=argparse.SUPPRESS,
                            help=how.help + shown, **extra)  # fmt: skip
    parser.set_defaults(command_spec=command, command_name=full_name, command=None)
    return parser


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.width = 180  # files and pipes: keep table rows on one line
    return console


def _print_document(result, format: str, all_rows: bool = False, shown: bool = False) -> None:
    """The result as the format asks; ``shown``: its tables were printed as they came."""
    from kernelprof import present

    if format == "json":
        print(result.to_json())
    elif format in ("csv", "md"):
        print(present.text(result.document, format), end="")
    elif not shown:
        console = _console()
        for renderable in result.renderables(all_rows):
            console.print(renderable)
    for message in result.messages:
        print(message, file=sys.stderr)


def _check(request, format: str, all_rows: bool) -> int:
    from kernelprof import api

    result = api.check(request)
    _print_document(result, format, all_rows)
    document = result.document
    if document.interrupted:
        return 130
    failed = document.rows and all(row.verdict == "error" for row in document.rows)
    return 1 if document.wrong or failed else 0


def _compare(request, format: str, all_rows: bool) -> int:
    from kernelprof import api
    from kernelprof.present import compare as shown

    console = _console()

    def on_case(case) -> None:  # each case's tables as soon as it is measured
        if format == "table":
            console.print(shown.case_renderable(case, all_rows))

    result = api.compare(request, on_case=on_case)
    if format == "table":
        for note in shown.notes_renderables(result.document):
            console.print(note)
    _print_document(result, format, all_rows, shown=True)
    if result.document.interrupted:
        return 130
    return 0 if any(case.timed_rows for case in result.document.cases) else 1


def _e2e(request, format: str) -> int:
    from kernelprof import api
    from kernelprof.runs.e2e.run import reports_here

    result = api.e2e(request)
    if not reports_here():  # the other ranks' figures are in rank 0's report
        return 130 if result.document.interrupted else 0
    _print_document(result, format)
    document = result.document
    if getattr(document, "ann", None) is not None and document.ann.status != "ok":
        return 1
    if document.interrupted:
        return 130
    return 0 if any(row.status == "ok" for row in document.rows) else 1


def _study(request, format: str) -> int:
    from kernelprof import api

    result = api.study(request)
    print(result.markdown())
    if result.interrupted:
        return 130
    return 0 if result.studies else 1


def _profile(request, format: str, top: int) -> int:
    from kernelprof.present import profile as shown
    from kernelprof.runs.profile import run

    try:
        document, code = run.run_script(request)
    except run.ScriptFailed as error:
        print(f"kernelprof profile: {error}", file=sys.stderr)
        return 1
    if format == "json":
        from kernelprof.results import files

        print(files.dumps(document))
    else:
        console = _console()
        console.width = min(console.width, shown.WIDTH)  # its tables fit 120 columns
        for renderable in shown.renderables(document, top):
            console.print(renderable)
    if code != 0:
        print(shown.summary_line(document, code), file=sys.stderr)
        return code if code > 0 else 128 - code  # killed by signal N: the shell's 128 + N
    return 1 if document.status == "error" else 0


def _profile_diff(request, format: str) -> int:
    import json

    from kernelprof.present import profile as shown
    from kernelprof.results.record import encode
    from kernelprof.runs.profile import run

    comparison = run.diff(request)
    if format == "json":
        print(json.dumps(encode(comparison), indent=2))
    else:
        for renderable in shown.diff_renderables(comparison, str(request.a), str(request.b)):
            _console().print(renderable)
    return 0


def _frameworks(request, format: str) -> int:
    from kernelprof.present.frameworks import frameworks_table
    from kernelprof.results.record import encode
    from kernelprof.runs.frameworks import list_frameworks

    listing = list_frameworks()
    if format == "json":
        import json

        print(json.dumps(encode(listing), indent=2))
    else:
        _console().print(frameworks_table(listing))
    return 0


def _trace(run: Callable, tables: Callable, markdown: Callable):
    def handle(request, format: str) -> int:
        import json

        from kernelprof.results.record import encode

        document, empty = run(request)
        if empty is not None:
            print(empty)
            return 0
        if format == "json":
            print(json.dumps(encode(document), indent=2, default=str))
        elif format == "md":
            print(markdown(document), end="")
        else:
            console = _console()
            console.width = 160 if not console.is_terminal else console.width
            for table in tables(document):
                console.print(table)
        return 0

    return handle


def _trace_summary(request, format: str) -> int:
    from kernelprof.present import traces as shown
    from kernelprof.runs import traces

    return _trace(traces.summarize, shown.trace_summary_tables,
                  shown.trace_summary_markdown)(request, format)  # fmt: skip


def _trace_diff(request, format: str) -> int:
    from kernelprof.present import traces as shown
    from kernelprof.runs import traces

    return _trace(traces.diff, shown.trace_diff_tables, shown.trace_diff_markdown)(request, format)


def _report(request) -> int:
    try:
        from kernelprof.present import pages
    except ImportError as error:  # matplotlib draws the charts
        print(f"kernelprof report: unavailable: {error} (pip install 'kernelprof[plots]')",
              file=sys.stderr)  # fmt: skip
        return 1
    from kernelprof.results import files

    try:
        loaded = [(path.name, files.load(path)) for path in request.results]
    except files.DocumentError as error:
        raise RequestError(str(error)) from None
    write = pages.write_markdown if request.out.suffix.lower() == ".md" else pages.write_html
    charts = write(loaded, request.out)
    print(f"{request.out}: {len(loaded)} results file(s), {charts} chart(s)")
    return 0


HANDLERS: dict[str, Callable[..., int]] = {
    "check": _check,
    "compare": _compare,
    "e2e": _e2e,
    "profile": _profile,
    "profile diff": _profile_diff,
    "study": _study,
    "frameworks": _frameworks,
    "summary": _trace_summary,
    "diff": _trace_diff,
    "report": _report,
}


if __name__ == "__main__":
    sys.exit(main())
