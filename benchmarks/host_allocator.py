"""Is keeping freed memory in the glibc heap (mallopt) neutral between frameworks?

kernelprof used to set glibc's mallopt (no mmap, no trim) in every CPU worker, so that large
tensors are not fresh mmaps whose pages fault in at first write. This measures what that does to
each framework: every neuron's timed build measured by compare's own worker with and without
it, interleaved in rounds (order rotated), at each N. It prints, per framework, the speed-up the
setting gives (time without / time with, median over rounds and the range) and each
framework's time relative to SpikingJelly both ways. The setting is neutral only if it speeds
every framework alike (within 10 % of each other); otherwise it is an explicit option,
``kernelprof compare --keep-host-memory``, off by default.

    .venv/bin/python benchmarks/host_allocator.py [--N 262144,1048576] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find benchmarks/
from benchmarks.rounds import describe, ratios, run_rounds  # noqa: E402
from kernelprof import api  # noqa: E402

IMPLS = ("spikingjelly", "snntorch", "norse", "lava-dl", "ref-torch", "ref-compile")
BASELINE = "spikingjelly"
NEUTRAL = 0.10  # the speed-ups must agree within this for the setting to favour none


def measure(impl: str, keep: bool, steps: int, neurons: int) -> float | None:
    """fwd+bwd of ``impl`` in a fresh worker (one round, as compare times it), with glibc's
    defaults or keeping freed memory in the heap."""
    result = api.compare(impls=impl, T=steps, N=neurons, device="cpu", rounds=1,
                         no_energy=True, keep_host_memory=keep, timeout=900)  # fmt: skip
    (row,) = result.rows
    if row.timings is None:
        print(f"{impl}: {row.verdict}: {row.reason or row.checked.error}", file=sys.stderr)
        return None
    return row.timings["fwd+bwd"].call_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--N", default=f"{2**18},{2**20}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    impls = [i for i in args.impls.split(",") if i]
    started = time.perf_counter()
    report: dict = {}
    for neurons in [int(n) for n in args.N.split(",")]:
        names = [f"{mode}:{impl}" for impl in impls for mode in ("default", "kept")]

        def one(name: str, index: int, neurons=neurons) -> float | None:
            mode, impl = name.split(":")
            seconds = measure(impl, mode == "kept", args.T, neurons)
            shown = "n/a" if seconds is None else f"{1e3 * seconds:.2f} ms"
            print(f"N={neurons:,} round {index + 1}: {name:<22} {shown}", file=sys.stderr,
                  flush=True)  # fmt: skip
            return seconds

        rounds = run_rounds(names, args.rounds, one)
        speedups = {
            impl: [r[f"default:{impl}"] / r[f"kept:{impl}"] for r in rounds
                   if r[f"default:{impl}"] and r[f"kept:{impl}"]]
            for impl in impls
        }  # fmt: skip
        relative = {
            mode: ratios([{n.split(":")[1]: t for n, t in r.items() if n.startswith(mode)}
                          for r in rounds], BASELINE)
            for mode in ("default", "kept")
        }  # fmt: skip
        print(f"\nN={neurons:,}, T={args.T}, fp32, CPU, {args.rounds} interleaved rounds\n")
        print("| impl | speed-up from mallopt (median, range) | vs SpikingJelly, glibc defaults "
              "| vs SpikingJelly, mallopt |")  # fmt: skip
        print("|---|---|---|---|")
        medians = {}
        for impl in impls:
            values = speedups[impl]
            if values:
                medians[impl] = statistics.median(values)
                shown = f"{medians[impl]:.2f}x ({min(values):.2f}-{max(values):.2f})"
            else:
                shown = "n/a"
            print(f"| {impl} | {shown} | {describe(relative['default'][impl])} | "
                  f"{describe(relative['kept'][impl])} |")  # fmt: skip
        spread = max(medians.values()) / min(medians.values()) - 1 if medians else float("nan")
        neutral = spread <= NEUTRAL
        print(
            f"\nspeed-ups differ by up to {spread:.0%} between implementations: the setting "
            + ("favours none" if neutral else "does NOT speed every framework alike")
        )
        report[str(neurons)] = {"rounds": rounds, "speedups": speedups, "relative": relative,
                                "spread": spread, "neutral": neutral}  # fmt: skip
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
