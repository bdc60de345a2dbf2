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

from kernelprof import api
from kernelprof.present import compare as shown
from kernelprof.results.compare import CompareDocument
from kernelprof.results.record import encode
from reference_kernels import IMPLS

REFERENCE_ROWS = [f"ref-{impl}" for impl in IMPLS]

CPU_TARGET = 0.25
# GPU: each direction's device time against the copy bandwidth, and fwd+bwd replayed as one
# CUDA graph (launch overhead out), for each fused reference impl.
GPU_DIRECTION_TARGET = 0.90
GPU_GRAPH_TARGET = 0.85
FUSED_ROWS = ("ref-triton", "ref-cupy")


def targets(document: CompareDocument) -> list[dict]:
    """The targets that apply to this run's fp32 T=8 case, each with its measured value."""
    found = []
    for run in document.cases:
        case = run.case
        if case.dtype != "fp32" or case.T != 8:
            continue
        trusted = {row.impl: row for row in run.timed_rows if row.checked.trusted}
        if document.environment.device.type == "cpu":
            fractions = {impl: row.bandwidth["fwd+bwd"].copy_fraction
                         for impl, row in trusted.items()}  # fmt: skip
            best = max(fractions, key=fractions.get, default=None)
            found.append({
                "target": f"CPU N={case.N:,}: fastest reference impl >= 25 % of copy bw",
                "impl": best, "fraction": fractions.get(best),
                "met": best is not None and fractions[best] >= CPU_TARGET,
            })  # fmt: skip
            continue
        copy_bytes_per_s = run.copy_bandwidth_gb_per_s * 1e9
        for impl in FUSED_ROWS:
            row = trusted.get(impl)
            for phase in ("fwd", "bwd"):
                fraction = None if row is None else row.bandwidth[phase].copy_fraction
                found.append(_gpu_target(case.N, impl, f"{phase} device time", fraction,
                                         GPU_DIRECTION_TARGET))  # fmt: skip
            graph = None if row is None or row.profile is None else (
                row.profile.graph_timings.get("fwd+bwd"))  # fmt: skip
            fraction = None
            if graph is not None and graph.measurement is not None:
                moved = row.bandwidth["fwd+bwd"].bytes
                fraction = moved / graph.measurement.median_s / copy_bytes_per_s
            found.append(_gpu_target(case.N, impl, "fwd+bwd as a CUDA graph", fraction,
                                     GPU_GRAPH_TARGET))  # fmt: skip
    return found


def _gpu_target(neurons: int, impl: str, what: str, fraction: float | None,
                bound: float) -> dict:  # fmt: skip
    return {
        "target": f"GPU N={neurons:,}: {impl} {what} >= {100 * bound:.0f} % of copy bw",
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
    parser.add_argument("--json", type=Path, default=None,
                        help="write the targets and the compare document here")  # fmt: skip
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="glibc's allocator defaults (compare's default)")  # fmt: skip
    args = parser.parse_args(argv)

    console = Console(width=160)
    result = api.compare(
        impls=args.impls, T=args.T, N=args.N, dtype=args.dtype, device=args.device,
        repeat_s=args.repeat_s, keep_host_memory=not args.glibc_defaults,
        cuda_graph=(args.device or "cuda").startswith("cuda") and _cuda(),
        on_case=lambda case: console.print(shown.case_renderable(case)),
    )  # fmt: skip
    for note in result.document.notes:
        console.print(f"[dim]{note}[/]")
    found = targets(result.document)
    for target in found:
        fraction = target["fraction"]
        measured = "n/a" if fraction is None else f"{100 * fraction:.1f} %"
        console.print(
            f"target {target['target']}: {target['impl']} {measured} -> "
            + ("[green]met[/]" if target["met"] else "[red]NOT met[/]")
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"targets": found, "compare": encode(result.document)},
                                        indent=2, default=str))  # fmt: skip
    return 0


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
