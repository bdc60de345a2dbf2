"""Does `kernelprof e2e` time training steps as a hand-written training loop would?

For each framework, in a fresh worker: its e2e network (the framework module's builder, as
`kernelprof e2e` builds it) trained by a plain loop written out here, none of kernelprof's
training code: ``optimizer.zero_grad(); loss_fn(network(x), y).backward(); optimizer.step()``,
each step (drawing its batch included, as in e2e) timed by ``time.perf_counter``. Alternating
with it, in the same worker on the same network, kernelprof's ``train_direct`` (what
`kernelprof e2e` runs: its plain steps, then its profiled breakdown steps), ``PAIRS`` times,
who goes first alternating. One worker per framework per round, frameworks rotated from round
to round.

Printed per framework: the hand loop's and e2e's median step, e2e's profiled step (the
breakdown's), each quotient over the hand loop paired alternation by alternation (drift
cancels), and both rankings against the reference network. Targets on the 2-core CPU: e2e's
plain step within 10 % of the hand loop's, its profiled step within 10 % too, and the ranking
ratios within 10 % of each other.

    .venv/bin/python benchmarks/e2e_plain_loops.py [--rounds 3] [--steps 24] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find benchmarks/
from benchmarks.rounds import chosen_frameworks, describe, ratios, run_rounds  # noqa: E402
from kernelprof.harness.worker import run_task  # noqa: E402
from reference_kernels.model import LIFConfig  # noqa: E402

FRAMEWORKS = ("spikingjelly", "snntorch", "norse", "lava-dl", "reference")
BASELINE = "reference"
CONFIG = LIFConfig(surrogate="superspike", alpha=1.0)  # e2e's neuron
PAIRED_FUNCTION = "benchmarks.e2e_plain_loops:paired"
PAIRS = 4
TARGET = 0.10
BATCH, LR, GAIN, T = 64, 1e-2, 4.0, 8  # e2e's defaults


def paired(task: dict) -> dict:
    """Runs in a fresh worker for one framework: the hand loop and ``train_direct``, alternating
    on the same network, ``task['steps']`` steps each time."""
    from kernelprof.frameworks.networks import NetworkSpec
    from kernelprof.runs.e2e.data import load_dataset
    from kernelprof.runs.e2e.train import Schedule, train_direct
    from kernelprof.runs.e2e.worker import build_network

    data = load_dataset("digits", None, seed=0)
    spec = NetworkSpec("cnn", data.input_shape, data.classes, weight_gain=GAIN)
    network = build_network(spec, task["framework"], CONFIG, T, seed=0)
    steps = task["steps"]
    generator = torch.Generator().manual_seed(1)
    order = torch.randint(0, len(data.train_x), (steps, BATCH), generator=generator)
    optimizer = torch.optim.Adam(network.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()

    def hand_loop() -> float:
        network.train()
        times = []
        for rows in order:
            start = time.perf_counter()
            x, y = data.train_x[rows], data.train_y[rows]  # the batch, as e2e's steps draw it
            optimizer.zero_grad(set_to_none=True)
            loss_fn(network(x), y).backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:])

    def e2e() -> tuple[float, float]:
        schedule = Schedule(epochs=1, batch_size=BATCH, lr=LR, seed=0, max_steps=steps)
        result = train_direct(network, data, schedule, device=torch.device("cpu"))
        return result.step_median_s, result.breakdown.profiled_step_us / 1e6

    hand_loop()  # warm-up: first calls allocate and pick kernels
    hand, plain, profiled = [], [], []
    for index in range(PAIRS):
        if index % 2 == 0:
            hand.append(hand_loop())
        step_s, profiled_s = e2e()
        plain.append(step_s)
        profiled.append(profiled_s)
        if index % 2 == 1:
            hand.append(hand_loop())
    return {"hand_s": hand, "e2e_s": plain, "profiled_s": profiled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=24, help="steps of each loop")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    frameworks = chosen_frameworks(parser, args.frameworks, FRAMEWORKS, BASELINE)
    if args.rounds < 1 or args.steps < 2:
        parser.error("--rounds must be >= 1 and --steps >= 2")

    started = time.perf_counter()
    results: list[dict[str, dict]] = []

    def one(framework: str, index: int) -> float | None:
        task = {"function": PAIRED_FUNCTION, "framework": framework, "steps": args.steps}
        result = run_task(task, timeout_s=900)
        if len(results) <= index:
            results.append({})
        results[index][framework] = result
        if "hand_s" not in result:
            print(f"{framework}: {result.get('reason') or result.get('error')}", file=sys.stderr)
            return None
        print(f"round {index + 1}: {framework:<13} hand loop "
              f"{1e3 * statistics.median(result['hand_s']):6.2f} ms, e2e "
              f"{1e3 * statistics.median(result['e2e_s']):6.2f} ms, profiled "
              f"{1e3 * statistics.median(result['profiled_s']):6.2f} ms",
              file=sys.stderr, flush=True)  # fmt: skip
        return None

    run_rounds(frameworks, args.rounds, one)
    kinds = ("hand_s", "e2e_s", "profiled_s")
    by_kind = {kind: [{fw: statistics.median(r[fw][kind]) if kind in r[fw] else None for fw in r}
                      for r in results] for kind in kinds}  # fmt: skip
    ranking = {kind: ratios(rounds, BASELINE) for kind, rounds in by_kind.items()}

    def paired_quotients(framework: str, kind: str) -> list[float]:
        """Per round and alternation: the e2e figure over the hand loop next to it."""
        pairs = [zip(r[framework][kind], r[framework]["hand_s"], strict=True)
                 for r in results if kind in r[framework]]  # fmt: skip
        return [e / h for alternations in pairs for e, h in alternations]

    print(f"\ne2e CNN on digits, T={T}, batch {BATCH}, CPU, {args.rounds} rounds of {PAIRS} "
          f"alternations of {args.steps} steps: median step, quotients over the hand loop "
          f"(median, lowest-highest alternation), ranking against {BASELINE}\n")  # fmt: skip
    print("| framework | hand loop ms | e2e ms | profiled ms | e2e / hand | profiled / hand | "
          "hand ranking | e2e ranking | within 10 % |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    met = True
    quotients = {}
    for framework in frameworks:
        ms = {kind: statistics.median([r[framework] for r in by_kind[kind] if r[framework]] or [0])
              for kind in kinds}  # fmt: skip
        cells, ok = [framework, *(f"{1e3 * ms[kind]:.2f}" for kind in kinds)], True
        for kind in ("e2e_s", "profiled_s"):
            values = quotients[(framework, kind)] = paired_quotients(framework, kind)
            if not values:
                cells.append("n/a")
                ok = False
                continue
            median = statistics.median(values)
            ok = ok and abs(median - 1) <= TARGET
            cells.append(f"{median:.3f} ({min(values):.2f}-{max(values):.2f})")
        hand_rank, e2e_rank = ranking["hand_s"][framework], ranking["e2e_s"][framework]
        if hand_rank["median"] and e2e_rank["median"]:
            ok = ok and abs(e2e_rank["median"] / hand_rank["median"] - 1) <= TARGET
        else:
            ok = False
        met = met and ok
        cells += [describe(hand_rank), describe(e2e_rank), "yes" if ok else "**no**"]
        print("| " + " | ".join(cells) + " |")
    print(f"\ntarget: e2e's plain and profiled steps and its ranking within {TARGET:.0%} of the "
          "hand loop's for every framework: " + ("met" if met else "NOT met")
          + f"  ({time.perf_counter() - started:.0f} s)")  # fmt: skip
    if args.json:
        document = {
            "rounds": results,
            "ranking": ranking,
            "quotients": {f"{fw} {kind}": v for (fw, kind), v in quotients.items()},
        }
        args.json.write_text(json.dumps(document, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
