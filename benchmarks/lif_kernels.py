"""Benchmark of the reference LIF kernels against the device's measured copy bandwidth.

Prints, for each reference implementation on the current device: the verdict against the float64
oracle, fwd / bwd / fwd+bwd median times, achieved GB/s and % of the measured copy bandwidth, then
the project's targets and whether this run met them:

* 2-core CPU, T=8, N=2^20, fp32: the fastest reference impl reaches >= 25 % of copy bandwidth;
* H100/H200, T=8, N=2^22, fp32: triton and cupy each reach >= 90 % in forward and in backward
  (device time: the GPU held busy before the start event, see kernelprof.harness.timer), and
  >= 85 % for fwd+bwd replayed as one CUDA graph.

On CPU the workers keep freed memory in the glibc heap (``--keep-host-memory`` of compare):
the copy bandwidth is measured on buffers allocated once, so the kernels are held to the same
protocol rather than paying a fresh mmap's page faults per call. ``--glibc-defaults`` measures
them as compare does by default.

    .venv/bin/python benchmarks/lif_kernels.py [--device cuda] [--dtype fp32,fp16,bf16]
        [--glibc-defaults] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from kernelprof.harness.device import resolve_device
from kernelprof.present import report
from kernelprof.runs.compare import CompareRequest, run_compare
from kernelprof.runs.environment import environment
from reference_kernels import IMPLS
from reference_kernels.model import LIFConfig

REFERENCE_ROWS = [f"ref-{impl}" for impl in IMPLS]

CPU_TARGET = 0.25
# GPU: each direction's device time against the copy bandwidth, and fwd+bwd replayed as one
# CUDA graph (launch overhead out), for each fused reference impl.
GPU_DIRECTION_TARGET = 0.90
GPU_GRAPH_TARGET = 0.85
FUSED_ROWS = ("ref-triton", "ref-cupy")


def targets(document: dict) -> list[dict]:
    """The targets that apply to this run's fp32 T=8 case, each with its measured value."""
    found = []
    for run in document["runs"]:
        case = run["case"]
        if case["dtype"] != "fp32" or case["T"] != 8:
            continue
        trusted = {
            row["impl"]: row
            for row in run["rows"]
            if row.get("timings") and row["verdict"] in ("exact", "close")
        }
        if document["environment"]["device"]["type"] == "cpu":
            fractions = {
                impl: row["timings"]["fwd+bwd"]["copy_bandwidth_fraction"]
                for impl, row in trusted.items()
            }
            best = max(fractions, key=fractions.get, default=None)
            found.append(
                {
                    "target": f"CPU N={case['N']:,}: fastest reference impl >= 25 % of copy bw",
                    "impl": best,
                    "fraction": fractions.get(best),
                    "met": best is not None and fractions[best] >= CPU_TARGET,
                }
            )
            continue
        copy_bytes_per_s = run["copy_bandwidth_gb_per_s"] * 1e9
        for impl in FUSED_ROWS:
            row = trusted.get(impl)
            for phase in ("fwd", "bwd"):
                fraction = None if row is None else row["timings"][phase]["copy_bandwidth_fraction"]
                found.append(_gpu_target(case, impl, f"{phase} device time", fraction,
                                         GPU_DIRECTION_TARGET))  # fmt: skip
            graph = {} if row is None else (row.get("graph_timings") or {}).get("fwd+bwd", {})
            fraction = None
            if "median_s" in graph:
                moved = row["timings"]["fwd+bwd"]["bytes"]
                fraction = moved / graph["median_s"] / copy_bytes_per_s
            found.append(_gpu_target(case, impl, "fwd+bwd as a CUDA graph", fraction,
                                     GPU_GRAPH_TARGET))  # fmt: skip
    return found


def _gpu_target(case: dict, impl: str, what: str, fraction: float | None, bound: float) -> dict:
    return {
        "target": f"GPU N={case['N']:,}: {impl} {what} >= {100 * bound:.0f} % of copy bw",
        "impl": impl,
        "fraction": fraction,
        "met": fraction is not None and fraction >= bound,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--N", type=int, default=None, help="default 2^20 on CPU, 2^22 on CUDA")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--impls", default=",".join(REFERENCE_ROWS))
    parser.add_argument("--repeat-s", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="glibc's allocator defaults (compare's default)")  # fmt: skip
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    neurons = args.N or (2**22 if device.type == "cuda" else 2**20)
    console = Console(width=160)
    request = CompareRequest(
        LIFConfig(surrogate="superspike", alpha=1.0),
        tuple(args.impls.split(",")),
        steps=(args.T,),
        neurons=(neurons,),
        dtypes=tuple(args.dtype.split(",")),
        device=str(device),
        repeat_s=args.repeat_s,
        keep_host_memory=not args.glibc_defaults,
        cuda_graph=device.type == "cuda",
    )
    document = run_compare(
        request,
        environment=environment(device),
        status=console.status,
        on_run=lambda run: console.print(report.kernel_table(run)),
    )
    for note in document["notes"]:
        console.print(f"[dim]{note}[/]")
    document["targets"] = targets(document)
    for target in document["targets"]:
        fraction = target["fraction"]
        measured = "n/a" if fraction is None else f"{100 * fraction:.1f} %"
        console.print(
            f"target {target['target']}: {target['impl']} {measured} -> "
            + ("[green]met[/]" if target["met"] else "[red]NOT met[/]")
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
