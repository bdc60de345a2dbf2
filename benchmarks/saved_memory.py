"""The memory-lean fused LIF (``save="recompute"``) against the default (``save="margin"``):
what each keeps for backward, and what it costs in time.

For each fused backend this device has, on one [T, N] input:

* correctness first: each mode against the float64 oracle on a check input (check's verdict),
  and recompute's spikes and dX equal to the default's bit for bit on the timed input;
* bytes autograd keeps between forward and backward (distinct storages other than the input's,
  through saved-tensor hooks), and on CUDA the peak memory a fwd+bwd allocates;
* fwd, bwd and fwd+bwd times from the one timing harness, the two modes interleaved in rounds
  (order rotated), and recompute over margin per round (median, lowest-highest round);
* the traffic each mode must move, in passes over [T, N]: margin 3 forward (X, S, margin) and 3
  backward (dS, margin, dX); recompute 2 forward (X, S) and 5 backward (X, margin written and
  read back, dS, dX); on CUDA, that traffic over the device time as % of copy bandwidth.

Backends: on CUDA, triton and cupy (T=8, N=2^22 by default). On a CPU, the CUDA C kernels'
host build (``reference_kernels.cuda_host``: lif.cu compiled by g++, run serially; T=8, N=2^18):
a serial loop says nothing of a GPU's speed, but it is the same kernel source doing the same
extra pass, so its ratio shows the extra work the recompute path does.

    .venv/bin/python benchmarks/saved_memory.py [--device cuda] [--T 8] [--N ...]
        [--rounds 3] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find benchmarks/
import reference_kernels  # noqa: E402
from benchmarks.rounds import run_rounds  # noqa: E402
from kernelprof.harness.device import copy_bandwidth, resolve_device  # noqa: E402
from kernelprof.harness.profiling import saved_for_backward_bytes  # noqa: E402
from kernelprof.harness.timer import measure  # noqa: E402
from kernelprof.inputs import lif_input  # noqa: E402
from kernelprof.verify.agreement import check_against_oracle  # noqa: E402
from reference_kernels.fused import SAVES, lif_fused  # noqa: E402
from reference_kernels.model import LIFConfig  # noqa: E402

CONFIG = LIFConfig(surrogate="superspike", alpha=1.0)  # compare's and the GPU check's neuron
PASSES = {"margin": {"fwd": 3, "bwd": 3}, "recompute": {"fwd": 2, "bwd": 5}}
PHASES = ("fwd", "bwd", "fwd+bwd")
CHECK_NEURONS = 4096


def backends(device: torch.device) -> dict[str, object]:
    """name -> the backend's kernels object, or the one-line reason it is unavailable here."""
    found = {}
    if device.type == "cuda":
        for impl in reference_kernels.FUSED_IMPLS:
            reason = reference_kernels.unavailable_reason(impl, device)
            found[impl] = (
                f"unavailable: {reason}"
                if reason
                else reference_kernels.fused_kernels(impl, device)
            )
        return found
    from reference_kernels import cuda_host

    try:
        found["cuda-host"] = cuda_host.HostKernels(cuda_host.load(cuda_host.build()))
    except (cuda_host.HostBuildError, OSError) as error:
        found["cuda-host"] = f"unavailable: {error}"
    return found


def verdicts(kernels, x: torch.Tensor, device: torch.device) -> dict[str, object]:
    """Each mode's verdict against the oracle, and recompute equal to margin on ``x``."""
    found = {}
    check_x = lif_input((x.shape[0], CHECK_NEURONS), CONFIG, device=device, seed=1)
    for save in SAVES:
        result = check_against_oracle(
            lambda x, save=save: lif_fused(x, kernels, CONFIG, True, save), check_x, CONFIG
        )
        found[save] = {"verdict": result.verdict, "reason": result.reason}
    grad = torch.randn_like(x)
    outputs = {}
    for save in SAVES:
        leaf = x.detach().clone().requires_grad_()
        spikes = lif_fused(leaf, kernels, CONFIG, False, save)
        (grad_x,) = torch.autograd.grad(spikes, leaf, grad)
        outputs[save] = (spikes.detach(), grad_x)
    same = all(
        torch.equal(a, b) for a, b in zip(outputs["margin"], outputs["recompute"], strict=True)
    )
    found["recompute_equals_margin"] = same
    return found


def memory(kernels, x: torch.Tensor, device: torch.device) -> dict[str, dict]:
    found = {}
    grad = torch.ones_like(x)
    for save in SAVES:
        leaf = x.detach().clone().requires_grad_()
        entry = {
            "saved_bytes": saved_for_backward_bytes(
                lambda leaf=leaf, save=save: lif_fused(leaf, kernels, CONFIG, False, save), leaf
            )
        }
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            torch.autograd.grad(lif_fused(leaf, kernels, CONFIG, False, save), leaf, grad)
            torch.cuda.synchronize(device)
            entry["peak_extra_bytes"] = torch.cuda.max_memory_allocated(device) - before
        found[save] = entry
    return found


def timings(kernels, x: torch.Tensor, device: torch.device, rounds: int, repeat_s: float):
    leaf = x.detach().clone().requires_grad_()
    grad = torch.randn_like(x)
    closures = {}
    for save in SAVES:

        def forward(save=save):
            return lif_fused(leaf, kernels, CONFIG, False, save)

        spikes = forward()
        closures[save] = {
            "fwd": forward,
            "bwd": lambda spikes=spikes: torch.autograd.grad(spikes, leaf, grad, retain_graph=True),
            "fwd+bwd": lambda forward=forward: torch.autograd.grad(forward(), leaf, grad),
        }

    def one(save: str, _round: int) -> dict[str, float]:
        figures = {}
        for phase in PHASES:
            result = measure(
                closures[save][phase], device=device, label=f"{save} {phase}",
                repeat_s=repeat_s, first_call=False,
            )  # fmt: skip
            # on CUDA the device's own time (GPU held busy before the start event), else call
            figures[phase] = result.events_busy_median_s or result.median_s
        return figures

    return run_rounds(list(SAVES), rounds, one)


def summarise(per_round: list[dict], one_pass: int, copy_bytes_per_s: float | None) -> dict:
    summary = {}
    for save in SAVES:
        summary[save] = {}
        for phase in PHASES:
            values = [r[save][phase] for r in per_round]
            ratios = [r["recompute"][phase] / r["margin"][phase] for r in per_round]
            passes = sum(PASSES[save].values()) if phase == "fwd+bwd" else PASSES[save][phase]
            entry = {"median_s": statistics.median(values), "passes": passes}
            if save == "recompute":
                entry["recompute_over_margin"] = _spread(ratios)
            if copy_bytes_per_s:
                entry["copy_bandwidth_fraction"] = (
                    passes * one_pass / entry["median_s"] / copy_bytes_per_s
                )
            summary[save][phase] = entry
    return summary


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--N", type=int, default=None, help="default 2^22 on CUDA, 2^18 on CPU")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat-s", type=float, default=0.25, help="timing budget per figure")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    neurons = args.N or (2**22 if device.type == "cuda" else 2**18)
    if args.T < 1 or neurons < 1 or args.rounds < 1 or args.repeat_s <= 0:
        parser.error("--T, --N and --rounds must be >= 1, --repeat-s > 0")

    console = Console(width=150)
    x = lif_input((args.T, neurons), CONFIG, device=device, seed=0)
    one_pass = x.numel() * x.element_size()
    copy_bytes_per_s = copy_bandwidth(device) if device.type == "cuda" else None
    document = {
        "device": str(device),
        "T": args.T,
        "N": neurons,
        "dtype": "fp32",
        "config": CONFIG.as_dict(),
        "copy_bandwidth_gb_per_s": None if copy_bytes_per_s is None else copy_bytes_per_s / 1e9,
        "backends": {},
    }
    for name, kernels in backends(device).items():
        if isinstance(kernels, str):
            console.print(f"{name}: {kernels}")
            document["backends"][name] = {"status": kernels}
            continue
        with console.status(f"{name}: checking, then timing {args.rounds} rounds"):
            entry = {"status": "ok", "checks": verdicts(kernels, x, device)}
            entry["memory"] = memory(kernels, x, device)
            trusted = entry["checks"]["recompute_equals_margin"] and all(
                entry["checks"][save]["verdict"] in ("exact", "close") for save in SAVES
            )
            if trusted:
                per_round = timings(kernels, x, device, args.rounds, args.repeat_s)
                entry["timings"] = summarise(per_round, one_pass, copy_bytes_per_s)
            else:
                entry["status"] = "not timed: a mode disagrees with the oracle or the other mode"
        document["backends"][name] = entry
        _print(console, name, entry, document)
    if "triton" in document["backends"]:
        from reference_kernels import triton_lif

        # what the autotuner picked for each kernel and key, beside the timings
        document["triton_configs"] = triton_lif.chosen_configs()
        for chosen in document["triton_configs"]:
            console.print(
                f"triton autotuned {chosen['kernel']}: BLOCK={chosen['BLOCK']}, "
                f"num_warps={chosen['num_warps']} for {chosen['key']}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2))
    return 0


def _print(console: Console, name: str, entry: dict, document: dict) -> None:
    table = Table(
        title=f"{name}: save=margin vs save=recompute, T={document['T']}, N={document['N']:,} "
        f"fp32 on {document['device']}"
    )
    columns = ["save", "verdict", "saved for bwd", "peak fwd+bwd"]
    columns += [f"{phase} ms" for phase in PHASES] + ["recompute / margin, fwd+bwd"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("save", "verdict") else "right")
    for save in SAVES:
        memory = entry["memory"][save]
        timing = entry.get("timings", {}).get(save, {})
        cells = [
            save,
            entry["checks"][save]["verdict"],
            f"{memory['saved_bytes'] / 2**20:.1f} MiB",
            f"{memory['peak_extra_bytes'] / 2**20:.1f} MiB" if "peak_extra_bytes" in memory
            else "n/a (CPU)",
        ]  # fmt: skip
        for phase in PHASES:
            if phase not in timing:
                cells.append("not timed")
                continue
            figure = f"{1e3 * timing[phase]['median_s']:.3f}"
            if "copy_bandwidth_fraction" in timing[phase]:
                figure += f" ({100 * timing[phase]['copy_bandwidth_fraction']:.0f} % copy)"
            cells.append(figure)
        ratio = timing.get("fwd+bwd", {}).get("recompute_over_margin")
        cells.append(
            f"{ratio['median']:.2f}x ({ratio['low']:.2f}-{ratio['high']:.2f})"
            if ratio and save == "recompute"
            else ""
        )
        table.add_row(*cells)
    console.print(table)
    same = entry["checks"]["recompute_equals_margin"]
    console.print(
        f"recompute's spikes and dX equal the default's bit for bit: {'yes' if same else 'NO'}; "
        "passes over [T, N]: margin 3 fwd + 3 bwd, recompute 2 fwd + 5 bwd"
    )
    if entry["status"] != "ok":
        console.print(f"[red]{entry['status']}[/]")


if __name__ == "__main__":
    sys.exit(main())
