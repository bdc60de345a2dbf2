"""The ``kernelprof`` command line: parsing and orchestration; it neither measures nor formats."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

NEURONS = ("lif",)
FORMATS = ("table", "json", "csv", "md")
# SuperSpike with alpha 1 is the one surrogate SpikingJelly, snnTorch and Norse all express
# exactly (Norse 1.1's 'super' ignores alpha; SpikingJelly's SuperSpike(a) is a/(1+|x|)^2).
COMMON_SURROGATE = "superspike:1"
# The frameworks `kernelprof e2e` runs when --frameworks is not given, per mode.
E2E_DEFAULTS = {
    "direct": "spikingjelly,snntorch,norse,lava-dl,reference",
    "conversion": "spikingjelly,sinabs,lava-dl,reference",
}


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (e.g. from `timeout`) ends a sweep like Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"kernelprof {args.command}: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kernelprof",
        description="Where SNN training time and energy go: LIF kernels measured side by side.",
    )
    commands = parser.add_subparsers(dest="command")
    compare = commands.add_parser(
        "compare",
        help="verdict against the float64 oracle, then fwd/bwd timings and bandwidth",
        description="Checks each LIF implementation against the float64 oracle, then times "
        "forward, backward and forward+backward and reports achieved bandwidth against the "
        "device's measured copy bandwidth.",
    )
    _add_case_arguments(compare, surrogate=COMMON_SURROGATE)
    compare.add_argument("--T", default="8", help="time steps; a comma list sweeps (e.g. 4,8,16)")
    compare.add_argument(
        "--N",
        default=None,
        help="neurons per step; comma list sweeps (default 2^20 CPU, 2^22 CUDA)",
    )
    compare.add_argument("--dtype", default="fp32", help="fp32, fp16, bf16; a comma list sweeps")
    compare.add_argument("--repeat-s", type=float, default=0.25, help="timing budget per phase")
    compare.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of timings per implementation, order rotated (default 3)",
    )
    compare.add_argument(
        "--baseline",
        default=None,
        help="speedups against this impl (default: the fastest framework row)",
    )
    compare.add_argument(
        "--trace-dir",
        type=Path,
        default=None,
        help="write one Chrome trace per implementation here",
    )
    compare.add_argument("--plot", type=Path, default=None, help="draw time and bandwidth vs T")
    compare.add_argument(
        "--cuda-graph",
        action="store_true",
        help="also time each phase as a CUDA graph replay (launch overhead removed; GPU only)",
    )
    compare.add_argument(
        "--no-energy",
        action="store_true",
        help="skip the energy windows (about 4 s per implementation where a counter exists)",
    )
    compare.add_argument(
        "--keep-host-memory",
        action="store_true",
        help="CPU: keep freed memory in the glibc heap (mallopt) while measuring; off by "
        "default, since it speeds frameworks unequally (benchmarks/host_allocator.py)",
    )
    compare.set_defaults(handler=_compare)

    check = commands.add_parser(
        "check",
        help="every framework's LIF against the float64 oracle, with a verdict",
        description="Builds each implementation's LIF for the canonical config, runs it on the "
        "same input as the float64 oracle in its own worker process, and gives a verdict: "
        "exact, close, approximate, WRONG, unsupported, unavailable or error. Exit code 1 if "
        "any verdict is WRONG.",
    )
    _add_case_arguments(check, surrogate=COMMON_SURROGATE)
    check.add_argument("--T", type=int, default=8, help="time steps")
    check.add_argument("--N", default="4096", help="neurons per step")
    check.add_argument("--dtype", default="fp32", help="fp32, fp16 or bf16")
    check.set_defaults(handler=_check)

    e2e = commands.add_parser(
        "e2e",
        help="train the same network with each framework; attribute the step-time differences",
        description="Trains the same network (same seeded weights, data order, encoding, loss "
        "and optimizer) with each framework in its own worker, times epochs and steps, splits "
        "a step into categories of work and attributes each framework's difference from the "
        "fastest to them.",
    )
    e2e.add_argument("--model", choices=("cnn", "fc"), default="cnn")
    e2e.add_argument(
        "--dataset", default="digits", help="mnist, fmnist, cifar10, digits, synthetic"
    )
    e2e.add_argument("--data-dir", type=Path, default=None, help="where datasets are (or go)")
    e2e.add_argument(
        "--frameworks",
        default=None,
        help="comma list of e2e networks (direct) or conversion routes (conversion), as listed "
        f"by `kernelprof check`'s frameworks. Default: {E2E_DEFAULTS['direct']} (direct), "
        f"{E2E_DEFAULTS['conversion']} (conversion)",
    )
    e2e.add_argument(
        "--mode", choices=("direct", "conversion"), default="direct",
        help="direct: surrogate-gradient BPTT; conversion: train the ANN once, convert it with "
        "each framework, report accuracy against T (powers of two up to --T)",
    )  # fmt: skip
    e2e.add_argument(
        "--neuron-setting", choices=("canonical", "framework-defaults"), default="canonical",
        help="canonical: the same LIF in every framework (differences are speed only); "
        "framework-defaults: each framework's LIF as its documentation builds it by default, "
        "with how it differs from the canonical one (direct mode)",
    )  # fmt: skip
    e2e.add_argument("--epochs", type=int, default=1)
    e2e.add_argument("--steps", type=int, default=None, help="stop each run after this many steps")
    e2e.add_argument("--T", type=int, default=8, help="time steps")
    e2e.add_argument("--batch-size", type=int, default=64)
    e2e.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    e2e.add_argument(
        "--weight-gain",
        type=float,
        default=4.0,
        help="scale of the kaiming initial weights (1 leaves deep layers silent)",
    )
    e2e.add_argument("--limit-train", type=int, default=None)
    e2e.add_argument("--limit-test", type=int, default=None)
    e2e.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    e2e.add_argument("--seed", type=int, default=0)
    e2e.add_argument("--format", choices=("table", "json", "md"), default="table")
    e2e.add_argument("--out", type=Path, default=None, help="also write JSON results here")
    e2e.add_argument(
        "--trace-dir",
        type=Path,
        default=None,
        help="write one Chrome trace of a training step per framework here",
    )
    e2e.add_argument("--timeout", type=float, default=3600.0, help="seconds per framework")
    e2e.set_defaults(handler=_e2e)

    frameworks = commands.add_parser(
        "frameworks",
        help="list the frameworks found (built in and installed plugins) and what each provides",
        description="Lists every framework kernelprof found: the built-in modules and every "
        "installed package declaring a 'kernelprof.frameworks' entry point, with its neurons "
        "(the rows of check and compare), e2e networks, converters, its own default neuron "
        "settings (--format json) and whether its packages are installed here.",
    )
    frameworks.add_argument("--format", choices=("table", "json"), default="table")
    frameworks.set_defaults(handler=_frameworks)

    trace = commands.add_parser(
        "trace",
        help="summarise a torch.profiler Chrome trace, or diff two",
        description="Reads any torch.profiler Chrome trace (.json or .json.gz) in one streaming "
        "pass: top kernels, operators and record_function ranges, time per category, launch "
        "statistics and GPU idle time; or the differences between two traces by impact.",
    )
    trace_commands = trace.add_subparsers(dest="trace_command", required=True)
    summary = trace_commands.add_parser("summary", help="what one trace spends its time on")
    summary.add_argument("trace", type=Path)
    diff = trace_commands.add_parser("diff", help="B minus A per kernel, operator and category")
    diff.add_argument("a", type=Path, metavar="A")
    diff.add_argument("b", type=Path, metavar="B")
    for command in (summary, diff):
        command.add_argument("--top", type=int, default=15, help="rows per table")
        command.add_argument("--format", choices=("table", "json", "md"), default="table")
    trace.set_defaults(handler=_trace)

    report_command = commands.add_parser(
        "report",
        help="compare and e2e results as one self-contained HTML file, or Markdown",
        description="Turns results files written with --out (compare and e2e) into one HTML "
        "file with every chart embedded (opens offline), or, for a .md output, Markdown with "
        "the charts as PNG files beside it.",
    )
    report_command.add_argument("results", type=Path, nargs="+", metavar="RESULTS.json")
    report_command.add_argument(
        "-o", "--out", type=Path, required=True, help="report.html, or report.md for Markdown"
    )
    report_command.set_defaults(handler=_report)
    return parser


def _add_case_arguments(command: argparse.ArgumentParser, surrogate: str) -> None:
    """The options that say which neuron, config, implementations and device (shared)."""
    command.add_argument("--neuron", default="lif", help="neuron model (only: lif)")
    command.add_argument(
        "--impls", default=None, help="comma list of implementations (default all)"
    )
    command.add_argument("--skip", default="", help="comma list of implementations to leave out")
    command.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    command.add_argument("--reset", choices=("hard", "soft"), default="hard")
    command.add_argument("--v-reset", type=float, default=0.0, help="V_reset for hard reset")
    command.add_argument("--detach-reset", action="store_true")
    command.add_argument("--no-decay-input", action="store_true")
    command.add_argument("--tau", type=float, default=2.0)
    command.add_argument("--v-threshold", type=float, default=1.0)
    command.add_argument(
        "--surrogate", default=surrogate, help=f"NAME[:ALPHA], e.g. atan:2 (default {surrogate})"
    )
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--format", choices=FORMATS, default="table")
    command.add_argument(
        "--all-rows",
        action="store_true",
        help="keep unavailable and unsupported rows in the table (default: listed under it)",
    )
    command.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="IMPL=PATH",
        help="run IMPL's worker under another interpreter (repeatable)",
    )
    command.add_argument("--timeout", type=float, default=600.0, help="seconds per implementation")
    command.add_argument("--out", type=Path, default=None, help="also write JSON results here")


def _int_list(text: str, name: str) -> list[int]:
    values = []
    for part in text.split(","):
        try:
            value = int(eval_power(part.strip()))
        except ValueError:
            raise UsageError(f"--{name}: {part!r} is not a whole number") from None
        if value < 1:
            raise UsageError(f"--{name}: must be >= 1, got {value}")
        values.append(value)
    return values


def eval_power(text: str) -> int:
    """Parses '1048576' or '2^20'."""
    if "^" in text:
        base, exponent = text.split("^", 1)
        return int(base) ** int(exponent)
    return int(text)


def _config(args: argparse.Namespace):
    from reference_kernels.model import DEFAULT_ALPHA, SURROGATES, LIFConfig

    name, _, alpha = args.surrogate.partition(":")
    if name not in SURROGATES:
        raise UsageError(f"--surrogate: unknown {name!r} (choose from {', '.join(SURROGATES)})")
    try:
        alpha_value = float(alpha) if alpha else DEFAULT_ALPHA[name]
    except ValueError:
        raise UsageError(f"--surrogate: alpha {alpha!r} is not a number") from None
    try:
        return LIFConfig(
            tau=args.tau,
            v_threshold=args.v_threshold,
            v_reset=None if args.reset == "soft" else args.v_reset,
            decay_input=not args.no_decay_input,
            detach_reset=args.detach_reset,
            surrogate=name,
            alpha=alpha_value,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _impls(args: argparse.Namespace, valid: list[str]) -> list[str]:
    chosen = list(valid) if args.impls is None else [i for i in args.impls.split(",") if i]
    skipped = [i for i in args.skip.split(",") if i]
    for impl in chosen + skipped:
        if impl not in valid:
            raise UsageError(f"unknown implementation {impl!r} (valid: {', '.join(valid)})")
    return [impl for impl in chosen if impl not in skipped]


def _pythons(args: argparse.Namespace, names: list[str]) -> dict[str, str]:
    pythons = {}
    for item in args.python:
        impl, sep, path = item.partition("=")
        if not sep or impl not in names:
            raise UsageError(f"--python: expected IMPL=PATH with IMPL one of {', '.join(names)}")
        pythons[impl] = path
    return pythons


PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output the command will write is checked before anything is measured, so that a
    long run never ends in losing its results: --out and --plot must be files that can be
    created, --trace-dir a folder, --timeout positive."""
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not timeout > 0:
        raise UsageError(f"--timeout: must be > 0 seconds, got {timeout:g}")
    if getattr(args, "out", None) is not None:
        _writable_file(args.out, "--out")
    if getattr(args, "plot", None) is not None:
        if args.plot.suffix.lower() not in PLOT_SUFFIXES:
            raise UsageError(f"--plot: {args.plot} must end in {', '.join(PLOT_SUFFIXES)}")
        _writable_file(args.plot, "--plot")
    if getattr(args, "trace_dir", None) is not None:
        _writable_folder(args.trace_dir, "--trace-dir")


def _writable_folder(folder: Path, option: str) -> None:
    """Creates ``folder`` if needed and proves a file can be written in it."""
    import tempfile

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{option}: {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kernelprof-probe-"):
            pass
    except OSError as error:
        reason = error.strerror or error
        raise UsageError(f"{option}: cannot write in {folder} ({reason})") from None


def _writable_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder, not a file")
    _writable_folder(path.parent, option)


def _check_neuron(args: argparse.Namespace) -> None:
    if args.neuron not in NEURONS:
        raise UsageError(f"--neuron: unknown {args.neuron!r} (valid: {', '.join(NEURONS)})")


def _device(args: argparse.Namespace):
    from kernelprof.harness.device import resolve_device

    try:
        return resolve_device(args.device)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _write_out(args: argparse.Namespace, document: dict[str, Any]) -> None:
    from kernelprof.present import report

    if args.format == "json":
        print(report.to_json(document))
    elif args.format in ("csv", "md"):
        print(report.flat_table(document, args.format), end="")
    if args.out is not None:
        save(document, args.out)


def _registry():
    """The framework registry, and a note per plugin that failed to load."""
    from kernelprof.frameworks import registry

    return registry, registry.problems()


def save(document: dict[str, Any], path: Path) -> Path:
    """Writes the results document to ``path``; should that fail after all (checked before the
    run, but a disk can fill), it goes to a file in the temporary folder instead, and stderr says
    where: a result already measured is never lost."""
    import tempfile

    from kernelprof.present import report

    text = report.to_json(document)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
    except OSError as error:
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="kernelprof-results-",
                                         delete=False) as fallback:  # fmt: skip
            fallback.write(text)
        print(f"kernelprof: cannot write {path} ({error.strerror or error}); the results are in "
              f"{fallback.name}", file=sys.stderr)  # fmt: skip
        return Path(fallback.name)


def _check(args: argparse.Namespace) -> int:
    _check_neuron(args)
    _check_outputs(args)
    from rich.console import Console

    from kernelprof.harness.worker import run_task
    from kernelprof.inputs import DTYPES
    from kernelprof.present import report
    from kernelprof.results import schema
    from kernelprof.runs import check
    from kernelprof.runs.environment import environment

    registry, problems = _registry()
    config = _config(args)
    names = list(registry.neurons())
    impls = _impls(args, names)
    if args.dtype not in DTYPES:
        raise UsageError(f"--dtype: unknown {args.dtype!r} (valid: {', '.join(DTYPES)})")
    (neurons,) = _int_list(args.N, "N")[:1]
    if args.T < 1:
        raise UsageError(f"--T: must be >= 1, got {args.T}")
    pythons = _pythons(args, names)
    device = _device(args)

    console = Console(stderr=args.format != "table")
    if not console.is_terminal:
        console.width = 180
    case = {"T": args.T, "N": neurons, "dtype": args.dtype, "device": str(device)}
    document = schema.new_document("check", environment(device))
    document.update(config=config.as_dict(), case=case, notes=problems, rows=[])
    try:
        for impl in impls:
            task = {"function": check.FUNCTION, "impl": impl, "config": config.as_dict(),
                    "seed": args.seed, **case}  # fmt: skip
            row = None if impl in pythons else check.unavailable_row(impl, device, quick=True)
            if row is None:  # no worker for what cannot run here
                with console.status(f"checking {impl}"):
                    row = run_task(task, python=pythons.get(impl), timeout_s=args.timeout)
            row.setdefault("impl", impl)
            row.setdefault("verdict", row.get("status", "error"))
            if impl in pythons:
                row["python"] = pythons[impl]
            document["rows"].append(row)
    except KeyboardInterrupt:
        document["interrupted"] = True
    if args.format == "table":
        console.print(report.check_table(document, all_rows=args.all_rows))
        for note in problems:
            console.print(f"[dim]{note}[/]")
    _write_out(args, document)
    if document["interrupted"]:
        return 130
    return 1 if any(row["verdict"] == "WRONG" for row in document["rows"]) else 0


def _compare(args: argparse.Namespace) -> int:
    _check_neuron(args)
    _check_outputs(args)
    from rich.console import Console

    from kernelprof.inputs import DTYPES
    from kernelprof.present import report
    from kernelprof.runs.compare import CompareRequest, run_compare
    from kernelprof.runs.environment import environment

    registry, problems = _registry()
    config = _config(args)
    names = list(registry.neurons())
    impls = _impls(args, names)
    pythons = _pythons(args, names)
    if args.baseline is not None and args.baseline not in impls:
        raise UsageError(f"--baseline: {args.baseline!r} is not among the compared impls")
    steps_list = _int_list(args.T, "T")
    dtypes = [d for d in args.dtype.split(",") if d]
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise UsageError(f"--dtype: unknown {dtype!r} (valid: {', '.join(DTYPES)})")
    device = _device(args)
    if args.rounds < 1:
        raise UsageError(f"--rounds: must be at least 1, got {args.rounds}")
    if not args.repeat_s > 0:
        raise UsageError(f"--repeat-s: must be > 0 seconds, got {args.repeat_s:g}")
    if args.cuda_graph and device.type != "cuda":
        raise UsageError("--cuda-graph: CUDA graphs need a CUDA device")
    default_n = "4194304" if device.type == "cuda" else "1048576"
    neurons_list = _int_list(args.N or default_n, "N")
    request = CompareRequest(
        config=config,
        impls=tuple(impls),
        steps=tuple(steps_list),
        neurons=tuple(neurons_list),
        dtypes=tuple(dtypes),
        device=str(device),
        seed=args.seed,
        repeat_s=args.repeat_s,
        baseline=args.baseline,
        trace_dir=args.trace_dir,
        pythons=pythons,
        timeout_s=args.timeout,
        energy=not args.no_energy,
        cuda_graph=args.cuda_graph,
        keep_host_memory=args.keep_host_memory,
        rounds=args.rounds,
    )

    console = Console(stderr=args.format != "table")
    if not console.is_terminal:
        console.width = 180  # files and pipes: keep table rows on one line

    def show(run: dict[str, Any]) -> None:
        if args.format == "table":
            console.print(report.kernel_table(run, all_rows=args.all_rows))

    document = run_compare(
        request, environment=environment(device), status=console.status, on_run=show
    )
    document["notes"] += problems
    if args.format == "table":
        for note in document["notes"]:
            console.print(f"[dim]{note}[/]")
    _write_out(args, document)
    if args.plot is not None:
        from kernelprof.present.plots import compare_plot

        try:
            console.print(f"plot: {compare_plot(document, args.plot)}")
        except ValueError as error:
            console.print(f"plot: not drawn: {error}")
    return 130 if document["interrupted"] else 0


def _e2e(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from kernelprof.harness.worker import run_task
    from kernelprof.present import report
    from kernelprof.results import schema
    from kernelprof.results.analysis import attribution
    from kernelprof.runs.e2e import run as e2e_run
    from kernelprof.runs.e2e.data import DATASETS
    from kernelprof.runs.e2e.distributed import agree_on_ports, torchrun_environment
    from kernelprof.runs.environment import environment
    from reference_kernels.model import LIFConfig

    if args.dataset not in DATASETS:
        raise UsageError(f"--dataset: unknown {args.dataset!r} (valid: {', '.join(DATASETS)})")
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(f"--data-dir: {args.data_dir} is not a folder")
    registry, problems = _registry()
    valid = list(registry.networks() if args.mode == "direct" else registry.conversion_routes())
    frameworks = [f for f in (args.frameworks or E2E_DEFAULTS[args.mode]).split(",") if f]
    if not frameworks:
        raise UsageError("--frameworks: name at least one framework")
    for framework in frameworks:
        if framework not in valid:
            raise UsageError(
                f"--frameworks: unknown {framework!r} for --mode {args.mode} "
                f"(valid: {', '.join(valid)})"
            )
    for name in ("epochs", "T", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')}: must be >= 1")
    _check_outputs(args)
    if args.mode == "conversion" and args.neuron_setting != "canonical":
        raise UsageError(
            "--neuron-setting framework-defaults is for --mode direct: each converter builds "
            "its own spiking neurons"
        )
    launch = torchrun_environment()
    if launch is not None and args.mode != "direct":
        raise UsageError("--mode conversion runs in one process: torchrun is for direct training")
    device = _device(args)
    if launch is not None and device.type == "cuda":
        device = torch.device("cuda", launch["local_rank"])
    quiet = launch is not None and launch["rank"] != 0  # rank 0 reports for every rank
    console = Console(stderr=args.format != "table" or quiet, quiet=quiet)
    if not console.is_terminal:
        console.width = 180
    config = LIFConfig(surrogate="superspike", alpha=1.0)
    task = {
        "function": e2e_run.DIRECT, "model": args.model, "dataset": args.dataset,
        "data_dir": None if args.data_dir is None else str(args.data_dir),
        "device": str(device), "seed": args.seed, "epochs": args.epochs, "steps": args.steps,
        "T": args.T, "batch_size": args.batch_size, "lr": args.lr,
        "weight_gain": args.weight_gain, "limit_train": args.limit_train,
        "limit_test": args.limit_test, "config": config.as_dict(),
        "neuron_setting": args.neuron_setting,
        "trace_dir": None if args.trace_dir is None else str(args.trace_dir),
    }  # fmt: skip
    document = schema.new_document("e2e", environment(device))
    document.update(
        mode=args.mode,
        task={k: v for k, v in task.items() if k != "function"},
        notes=problems,
        rows=[],
    )
    ports: list[int | None] = [None] * len(frameworks)
    if launch is not None:
        import torch.distributed as dist

        dist.init_process_group("gloo")  # torchrun's rendezvous, only to agree on the ports
        ports = agree_on_ports(len(frameworks), launch["master_addr"])
        document["world_size"] = launch["world_size"]
    try:
        if args.mode == "conversion":
            _e2e_conversion(args, task, frameworks, document, console)
        else:
            for framework, port in zip(frameworks, ports, strict=True):
                framework_task = {**task, "framework": framework}
                if launch is not None:
                    framework_task["distributed"] = {
                        "rank": launch["rank"], "world_size": launch["world_size"],
                        "master_addr": launch["master_addr"], "port": port,
                        "backend": "nccl" if device.type == "cuda" else "gloo",
                    }  # fmt: skip
                row = _with_progress(
                    console, args.format == "table" and not quiet,
                    f"training {framework} ({args.dataset})",
                    lambda on_progress, t=framework_task: run_task(
                        t, timeout_s=args.timeout, on_progress=on_progress),
                )  # fmt: skip
                row.setdefault("framework", framework)
                document["rows"].append(row)
                if row.get("status") == "error" and "DatasetUnavailable" in row.get("reason", ""):
                    break  # every framework would fail the same way: say it once
    except KeyboardInterrupt:
        document["interrupted"] = True
    if launch is not None:
        import torch.distributed as dist

        dist.destroy_process_group()
        if quiet:  # the other ranks' figures are in rank 0's report
            return 130 if document["interrupted"] else 0
    if args.mode == "direct":
        document["attribution"] = attribution(document["rows"])
    if args.format == "table":
        for renderable in report.e2e_tables(document):
            console.print(renderable)
    elif args.format == "md":
        print(report.e2e_markdown(document), end="")
    else:
        print(report.to_json(document))
    if args.out is not None:
        save(document, args.out)
    if document.get("ann", {}).get("status", "ok") != "ok":
        return 1
    failed = [row for row in document["rows"] if row.get("status") == "error"]
    if failed and all(row.get("status") == "error" for row in document["rows"]):
        return 1
    return 130 if document["interrupted"] else 0


def _with_progress(console, show: bool, label: str, run):
    """``run(on_progress)`` under a progress bar fed by the worker's reports (steps done of
    total, epoch, ETA) where ``show`` and the console is a terminal; else a spinner line (which
    rich leaves out when the output is not a terminal)."""
    if not (show and console.is_terminal):
        with console.status(label):
            return run(None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("steps, {task.fields[where]}"), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None, where="starting")

        def on_progress(report: dict) -> None:
            training = report.get("phase") == "training"
            where = f"epoch {report.get('epoch')}/{report.get('epochs')}" if training else str(
                report.get("phase"))  # fmt: skip
            bar.update(task, completed=report.get("done"), total=report.get("total"),
                       where=where)  # fmt: skip

        return run(on_progress)


def _e2e_conversion(args, task, frameworks, document, console) -> None:
    """Trains the ANN once in a worker, then converts it with each framework in its own."""
    import tempfile

    from kernelprof.harness.worker import run_task
    from kernelprof.runs.e2e import run as e2e_run

    with tempfile.TemporaryDirectory(prefix="kernelprof-ann-") as scratch:
        ann_task = {**task, "function": e2e_run.ANN, "ann_path": str(Path(scratch) / "ann.pt")}
        show = args.format == "table"
        document["ann"] = _with_progress(
            console, show, f"training the ANN ({args.model} on {args.dataset})",
            lambda on_progress: run_task(ann_task, timeout_s=args.timeout,
                                         on_progress=on_progress),
        )  # fmt: skip
        if document["ann"].get("status") != "ok":
            return
        for framework in frameworks:
            row = _with_progress(  # a route that trains its own SNN reports its steps
                console, show, f"{framework}: converting (or training), testing T = 1..{args.T}",
                lambda on_progress, f=framework: run_task(
                    {**ann_task, "function": e2e_run.CONVERT, "framework": f},
                    timeout_s=args.timeout, on_progress=on_progress),
            )  # fmt: skip
            row.setdefault("framework", framework)
            document["rows"].append(row)


def _frameworks(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kernelprof.present import report

    registry, problems = _registry()
    listing = {"frameworks": [], "problems": problems}
    for framework in registry.frameworks().values():
        listing["frameworks"].append({
            "name": framework.name,
            "display": framework.display,
            "description": framework.description,
            "problem": framework.problem(import_it=False),
            "source": registry.source(framework.name),
            "neurons": [neuron.name for neuron in framework.neurons],
            "networks": list(framework.networks),
            "converters": list(framework.converters),
            "no_converter": framework.no_converter,
            "defaults": [vars(default) for default in framework.defaults],
        })  # fmt: skip
    if args.format == "json":
        print(report.to_json(listing))
    else:
        console = Console()
        if not console.is_terminal:
            console.width = 180
        console.print(report.frameworks_table(listing))
    return 0


def _trace(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kernelprof import traces
    from kernelprof.present import report
    from kernelprof.traces import steps
    from kernelprof.traces.timeline import Timeline

    if args.top < 1:
        raise UsageError("--top: must be >= 1")
    paths = [args.trace] if args.trace_command == "summary" else [args.a, args.b]
    summaries = []
    for path in paths:
        try:
            summary = traces.summarize(path)
        except traces.TraceError as error:
            raise UsageError(str(error)) from None
        if not summary.complete_events:
            print(f"{path}: no events" + (
                f" (none of its {summary.events:,} events has a duration)"
                if summary.events else ""))  # fmt: skip
            return 0
        summaries.append(summary)
    if args.trace_command == "summary":
        document = summaries[0].as_dict(top=args.top)
        tables = report.trace_summary_tables(document)
        markdown = report.trace_summary_markdown
    else:
        document = traces.diff(*summaries, top=args.top)
        if all(steps.STEP in summary.ranges for summary in summaries):
            # two kernelprof training traces: the e2e attribution between them, same code
            found = [steps.attribute(Timeline.from_events(traces.iter_events(path)), str(path))
                     for path in paths]  # fmt: skip
            document["steps"] = steps.compare(*(a.as_dict() for a in found), top=args.top)
        tables = report.trace_diff_tables(document)
        markdown = report.trace_diff_markdown
    if args.format == "json":
        print(report.to_json(document))
    elif args.format == "md":
        print(markdown(document), end="")
    else:
        console = Console()
        if not console.is_terminal:
            console.width = 160
        for table in tables:
            console.print(table)
    return 0


def _report(args: argparse.Namespace) -> int:
    try:
        from kernelprof.present import documents
    except ImportError as error:  # matplotlib draws the charts
        print(f"kernelprof report: unavailable: {error} (pip install 'kernelprof[plots]')",
              file=sys.stderr)  # fmt: skip
        return 1

    suffix = args.out.suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise UsageError(f"-o: {args.out} must end in .html or .md")
    _writable_file(args.out, "-o")
    try:
        loaded = [(path.name, documents.load(path)) for path in args.results]
    except documents.ReportError as error:
        raise UsageError(str(error)) from None
    write = documents.write_markdown if suffix == ".md" else documents.write_html
    charts = write(loaded, args.out)
    print(f"{args.out}: {len(loaded)} results file(s), {charts} chart(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
