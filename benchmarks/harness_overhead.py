"""The timing harness's own overhead on a known 10 ms workload (target: under 2 %).

The workload spins on the host clock for exactly 10 ms, so any excess in the harness's median
is the harness's own cost per call (clock reads, synchronisation, the cache flush happens
outside the timed region). Printed, not asserted: a figure for the README and the notes.

    .venv/bin/python benchmarks/harness_overhead.py
"""

from __future__ import annotations

import time

from kernelprof.harness.timer import measure

WORKLOAD_S = 0.010
TARGET = 0.02


def spin() -> None:
    end = time.perf_counter() + WORKLOAD_S
    while time.perf_counter() < end:
        pass


def main() -> None:
    for flush in (False, True):
        result = measure(spin, device="cpu", repeat_s=1.0, flush_cache=flush, label="spin 10 ms")
        overhead = result.median_s / WORKLOAD_S - 1
        verdict = "met" if overhead < TARGET else "NOT met"
        print(
            f"cache flush {'on ' if flush else 'off'}: median {1e3 * result.median_s:.4f} ms over "
            f"{len(result.samples_s)} calls, IQR {1e6 * result.iqr_s:.1f} us -> harness overhead "
            f"{100 * overhead:.3f} % (target < {100 * TARGET:.0f} %: {verdict})"
        )


if __name__ == "__main__":
    main()
