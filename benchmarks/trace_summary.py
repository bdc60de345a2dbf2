"""How fast `kernelprof trace summary` reads a large trace, and how much memory it needs.

    .venv/bin/python benchmarks/trace_summary.py            # a 200 MiB synthetic trace
    .venv/bin/python benchmarks/trace_summary.py --mib 500

Writes a synthetic torch.profiler-style trace (per step: two nested CPU operators and one
kernel, the shape of a real trace's events) of the given size, then runs the summary in a fresh
process and prints the wall time, the throughput and the peak memory above that of the same
command on a one-event trace. Target: the memory added stays under half the file's size (the
summary streams the events; json.load would hold several times the file as Python objects).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP = (
    '{{"ph":"X","cat":"cpu_op","name":"aten::linear","pid":1,"tid":1,"ts":{t},"dur":40,'
    '"args":{{"External id":{i},"Sequence number":{i},"Fwd thread id":0}}}},\n'
    '{{"ph":"X","cat":"cpu_op","name":"aten::addmm","pid":1,"tid":1,"ts":{t5},"dur":30,'
    '"args":{{"External id":{i},"Sequence number":{i},"Fwd thread id":0}}}},\n'
    '{{"ph":"X","cat":"kernel","name":"gemm_kernel_with_a_long_templated_name<float, 128>",'
    '"pid":0,"tid":7,"ts":{t10},"dur":25,"args":{{"device":0,"stream":7,"correlation":{i},'
    '"registers per thread":64}}}}'
)
PROBE = (
    "import resource, sys; import kernelprof.cli as cli; "
    "code = cli.main(['trace', 'summary', sys.argv[1], '--format', 'json']); "
    "print('RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
    "sys.exit(code)"
)


def write_synthetic_trace(path: Path, size_bytes: int) -> int:
    """Writes a trace of at least ``size_bytes``; returns its number of steps (= kernels).
    Per step: aten::linear [t, t+40) holding aten::addmm [t+5, t+35), and a 25 us kernel."""
    steps = 0
    with Path(path).open("w") as file:
        file.write('{"schemaVersion": 1, "traceEvents": [\n')
        while steps == 0 or file.tell() < size_bytes:
            t = 100 * steps
            file.write(("," if steps else "") + STEP.format(t=t, t5=t + 5, t10=t + 10, i=steps))
            steps += 1
        file.write("\n]}\n")
    return steps


def summarise(trace: Path) -> tuple[float, int, dict]:
    """(seconds, peak RSS in KiB, the summary) of `kernelprof trace summary` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, str(trace)], capture_output=True,
                          text=True, timeout=1800, env=env)  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return seconds, int(done.stderr.split("RSS_KIB")[-1].split()[0]), json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        small, big = Path(scratch) / "small.json", Path(scratch) / "big.json"
        write_synthetic_trace(small, 1)
        steps = write_synthetic_trace(big, args.mib * 2**20)
        size = big.stat().st_size
        _, baseline, _ = summarise(small)
        seconds, peak, summary = summarise(big)
    grown = (peak - baseline) * 1024
    print(f"trace: {size / 2**20:.0f} MiB, {3 * steps:,} events; summary in {seconds:.1f} s "
          f"({size / 2**20 / seconds:.0f} MiB/s); memory above a one-event trace: "
          f"{grown / 2**20:.0f} MiB ({100 * grown / size:.0f} % of the file)")  # fmt: skip
    print(f"kernels counted: {summary['launch']['kernel_count']:,} (written: {steps:,})")
    met = grown < size / 2
    print(f"target: memory added < 50 % of the file -> {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
