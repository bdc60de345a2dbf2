"""Does the faster path `kernelprof profile` measures hold when timed by hand?

An independent check of the search's figure for the study's CNN (examples/study_cnn.py: two
SpikingJelly LIFNode layers computing kernelprof's canonical LIF): the same training step,
timed here with a plain loop and time.perf_counter, with the model's own LIF layers and with
their forward replaced by kernelprof's fused reference kernel (`reference_kernels.run(x, config,
impl="compile")`, the config read from the layers as the search reads it), in interleaved
rounds (own, fused; fused, own; ...). Printed: each side's median step, the per-round ratio
own/fused (median, 95 % bootstrap interval), then the same model run through
`kernelprof.profile(...)` with its search, and its speedup. If both are right, the two
speedups' intervals overlap.

    .venv/bin/python benchmarks/faster_path.py [--rounds 15] [--steps 3] [--T 8] [--device cpu]

Needs a quiet machine; the shared 2-core CPU moves single steps by 10-30 %.
"""

from __future__ import annotations

import argparse
import runpy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import kernelprof  # noqa: E402
import reference_kernels  # noqa: E402
from kernelprof.frameworks import spikingjelly  # noqa: E402
from kernelprof.results.analysis import median_interval  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3, help="steps a side in each round")
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    example = runpy.run_path(str(ROOT / "examples" / "study_cnn.py"))
    from spikingjelly.activation_based import functional

    model = example["StudyCNN"](T=args.T, seed=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 1, 28, 28, generator=generator).to(device)
    labels = torch.randint(0, 10, (args.batch,), generator=generator).to(device)
    neurons = [model.lif1, model.lif2]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        functional.reset_net(model)

    def fused(on: bool) -> None:
        for module in neurons:
            if on:
                shape = (args.T, 1)
                config = spikingjelly.canonical_lif(module, (torch.zeros(shape),), {})
                module.forward = lambda x, c=config: reference_kernels.run(x, c, impl="compile")
            else:
                vars(module).pop("forward", None)

    def timed(on: bool) -> float:
        fused(on)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = (time.perf_counter() - start) / args.steps
        fused(False)
        return elapsed

    for on in (False, True, False, True):  # warm-up: first touches, the compile
        timed(on)
    own, mine = [], []
    for number in range(args.rounds):
        order = (False, True) if number % 2 == 0 else (True, False)
        for on in order:
            (mine if on else own).append(timed(on))
    ratios = [a / b for a, b in zip(own, mine, strict=True)]
    value, low, high = median_interval(ratios)
    print(f"by hand ({args.rounds} rounds of {args.steps} steps, {device}): own "
          f"{1e3 * statistics.median(own):.1f} ms, fused {1e3 * statistics.median(mine):.1f} "
          f"ms a step: {value:.2f}x (95 % {low:.2f}-{high:.2f})")  # fmt: skip

    with kernelprof.profile(
        model, warmup=3, steps=3, op_steps=1, faster_rounds=args.rounds
    ) as prof:
        for _ in range(3 + 1 + 12 + 1 + 1 + 2 * args.rounds + 2):
            step()
            prof.step()
    document = prof.result.document
    for path in document.faster.paths:
        speedup = document.faster_speedups.get(path.change)
        checks = ", ".join(f"{c.layer} {c.verdict}" for c in path.checks) or path.problem
        figure = (f"{speedup.value:.2f}x (95 % {speedup.low:.2f}-{speedup.high:.2f})"
                  if speedup else "not measured")  # fmt: skip
        if path.step_s:
            figure += (f"; own {1e3 * statistics.median(document.faster.base_s):.1f} ms, with "
                       f"it {1e3 * statistics.median(path.step_s):.1f} ms a step")  # fmt: skip
        print(f"kernelprof profile: {path.change}: {checks}: {figure}")
    measured = document.faster_speedups.get("kernelprof ref-compile in place of forward")
    if measured is not None:
        overlap = measured.low <= high and low <= measured.high
        print(f"the intervals {'overlap' if overlap else 'DO NOT overlap'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
