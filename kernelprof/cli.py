"""The ``kernelprof`` command line: parsing and orchestration; it neither measures nor formats."""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

NEURONS = ("lif",)
FORMATS = ("table", "json")


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""


def main(argv: list[str] | None = None) -> int:
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
    compare.add_argument("--neuron", default="lif", help="neuron model (only: lif)")
    compare.add_argument("--T", default="8", help="time steps; a comma list sweeps (e.g. 4,8,16)")
    compare.add_argument(
        "--N",
        default=None,
        help="neurons per step; comma list sweeps (default 2^20 CPU, 2^22 CUDA)",
    )
    compare.add_argument("--dtype", default="fp32", help="fp32, fp16, bf16; a comma list sweeps")
    compare.add_argument(
        "--impls", default=None, help="comma list of implementations (default all)"
    )
    compare.add_argument("--skip", default="", help="comma list of implementations to leave out")
    compare.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    compare.add_argument("--reset", choices=("hard", "soft"), default="hard")
    compare.add_argument("--v-reset", type=float, default=0.0, help="V_reset for hard reset")
    compare.add_argument("--detach-reset", action="store_true")
    compare.add_argument("--no-decay-input", action="store_true")
    compare.add_argument("--tau", type=float, default=2.0)
    compare.add_argument("--v-threshold", type=float, default=1.0)
    compare.add_argument(
        "--surrogate", default="sigmoid:4", help="NAME[:ALPHA], e.g. atan:2 (default sigmoid:4)"
    )
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--repeat-s", type=float, default=0.25, help="timing budget per phase")
    compare.add_argument("--format", choices=FORMATS, default="table")
    compare.add_argument("--out", type=Path, default=None, help="also write JSON results here")
    compare.set_defaults(handler=_compare)
    return parser


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
    from kernelprof.lif import SURROGATES, LIFConfig

    name, _, alpha = args.surrogate.partition(":")
    if name not in SURROGATES:
        raise UsageError(f"--surrogate: unknown {name!r} (choose from {', '.join(SURROGATES)})")
    try:
        return LIFConfig(
            tau=args.tau,
            v_threshold=args.v_threshold,
            v_reset=None if args.reset == "soft" else args.v_reset,
            decay_input=not args.no_decay_input,
            detach_reset=args.detach_reset,
            surrogate=name,
            alpha=float(alpha) if alpha else 4.0,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def _impls(args: argparse.Namespace) -> list[str]:
    from reference_kernels import IMPLS

    chosen = list(IMPLS) if args.impls is None else [i for i in args.impls.split(",") if i]
    skipped = [i for i in args.skip.split(",") if i]
    for impl in chosen + skipped:
        if impl not in IMPLS:
            raise UsageError(f"unknown implementation {impl!r} (valid: {', '.join(IMPLS)})")
    return [impl for impl in chosen if impl not in skipped]


def _compare(args: argparse.Namespace) -> int:
    if args.neuron not in NEURONS:
        raise UsageError(f"--neuron: unknown {args.neuron!r} (valid: {', '.join(NEURONS)})")
    from rich.console import Console

    from kernelprof import kernel_bench, report
    from kernelprof.harness import device as device_facts

    config = _config(args)
    impls = _impls(args)
    steps_list = _int_list(args.T, "T")
    dtypes = [d for d in args.dtype.split(",") if d]
    for dtype in dtypes:
        if dtype not in kernel_bench.DTYPES:
            raise UsageError(f"--dtype: unknown {dtype!r} (valid: fp32, fp16, bf16)")
    try:
        device = device_facts.resolve_device(args.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    default_n = "4194304" if device.type == "cuda" else "1048576"
    neurons_list = _int_list(args.N or default_n, "N")

    console = Console(stderr=args.format != "table")
    if not console.is_terminal:
        console.width = 160  # files and pipes: keep table rows on one line

    def show(run: dict[str, Any]) -> None:
        if args.format == "table":
            console.print(report.kernel_table(run))

    document = kernel_bench.run_compare(
        config,
        impls,
        steps_list=steps_list,
        neurons_list=neurons_list,
        dtypes=dtypes,
        device=device,
        seed=args.seed,
        repeat_s=args.repeat_s,
        environment=environment(device),
        status=console.status,
        on_run=show,
    )
    notes = document["notes"]
    if args.format == "json":
        print(report.to_json(document))
    else:
        for note in notes:
            console.print(f"[dim]{note}[/]")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report.to_json(document))
    return 130 if document["interrupted"] else 0


def environment(device) -> dict[str, Any]:
    """What a result depends on: machine, device, library versions, kernelprof's commit."""
    import torch

    from kernelprof.harness.device import describe

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("triton", "cupy", "numpy"):
        try:
            versions[package] = __import__(package).__version__
        except Exception as error:  # noqa: BLE001 - a broken package is reported, not fatal
            versions[package] = f"unavailable: {type(error).__name__}: {error}".splitlines()[0]
    gpu = {}
    if device.type == "cuda":
        gpu = {"cuda": torch.version.cuda, "capability": torch.cuda.get_device_capability(device)}
    return {
        "device": {"type": device.type, "name": describe(device), **gpu},
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
