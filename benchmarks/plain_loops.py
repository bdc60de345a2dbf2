"""Does `kernelprof compare` rank the frameworks as their users would measure them?

Times each framework's LIF forward+backward the way its own documentation does: the
framework's module built as its tutorials build it, a plain ``time.perf_counter`` loop around
``spikes = module(x); spikes.backward(grad)``, spikes only, on the same shape and input as
compare (T=8, N=2^18, fp32 by default). Each plain loop runs in a fresh process with no kernelprof
code on its timed path. Interleaved with it, in the same rounds (order rotated each round), the
same framework is measured by kernelprof compare's own worker (its timed build through the
harness). Both are then given as ratios against SpikingJelly, per round, and the table shows
them side by side with their spread across rounds. Target on the 2-core CPU: compare's ratio
within 20 % of the plain loop's for every framework.

    .venv/bin/python benchmarks/plain_loops.py [--T 8] [--N 262144] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find benchmarks/
from benchmarks.rounds import describe, ratios, run_rounds  # noqa: E402
from kernelprof.harness.worker import run_task  # noqa: E402
from kernelprof.inputs import lif_input  # noqa: E402
from kernelprof.runs.compare import FUNCTION as COMPARE_FUNCTION  # noqa: E402
from reference_kernels.model import LIFConfig  # noqa: E402

FRAMEWORKS = ("spikingjelly", "snntorch", "norse", "lava-dl")
BASELINE = "spikingjelly"
CONFIG = LIFConfig(surrogate="superspike", alpha=1.0)  # compare's default neuron
TAU, THRESHOLD = CONFIG.tau, CONFIG.v_threshold
TARGET = 0.20
PLAIN_FUNCTION = "benchmarks.plain_loops:plain_loop"


# ---- each framework as its documentation writes it: module and the input its users hold ------


def spikingjelly(x: torch.Tensor):
    from spikingjelly.activation_based import functional, neuron, surrogate

    lif = neuron.LIFNode(tau=TAU, v_threshold=THRESHOLD, v_reset=0.0, decay_input=True,
                         detach_reset=False, surrogate_function=surrogate.SuperSpike(alpha=1.0),
                         step_mode="m")  # fmt: skip

    def step(inputs):
        functional.reset_net(lif)
        return lif(inputs)

    return step, x


def snntorch(x: torch.Tensor):
    import snntorch as snn
    from snntorch import surrogate

    lif = snn.Leaky(beta=1 - 1 / TAU, threshold=THRESHOLD, reset_mechanism="zero",
                    reset_delay=False, spike_grad=surrogate.fast_sigmoid(slope=1))  # fmt: skip

    def step(current):
        mem = lif.reset_mem()
        spk_rec = []
        for t in range(current.shape[0]):
            spk, mem = lif(current[t], mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec)

    return step, x / TAU  # the input current a user's synapse delivers (weights hold the 1/tau)


def norse(x: torch.Tensor):
    from norse.torch import LIF, LIFParameters

    p = LIFParameters(
        tau_syn_inv=torch.tensor(1.0),  # dt=1: the synaptic current vanishes every step
        tau_mem_inv=torch.tensor(1 / TAU),
        v_leak=torch.tensor(0.0),
        v_th=torch.tensor(THRESHOLD),
        v_reset=torch.tensor(0.0),
        method="super",
        alpha=torch.tensor(1.0),
    )
    lif = LIF(p, dt=1.0)

    def step(inputs):
        spikes, _ = lif(inputs)
        return spikes

    return step, x


def lava_dl(x: torch.Tensor):
    from lava.lib.dl.slayer.neuron import cuba

    # tau_grad, scale_grad: lava's exponential surrogate with superspike(1)'s peak and area
    neuron = cuba.Neuron(threshold=THRESHOLD, current_decay=1.0, voltage_decay=1 / TAU,
                         tau_grad=0.01, scale_grad=20.0, persistent_state=False,
                         requires_grad=False)  # fmt: skip
    # lava-dl's users hold time-last [N, C, T] data; the current carries the 1/tau
    return neuron, (x / TAU).t().unsqueeze(1).contiguous()


PLAIN = {"spikingjelly": spikingjelly, "snntorch": snntorch, "norse": norse,
         "lava-dl": lava_dl}  # fmt: skip


def plain_loop(task: dict) -> dict:
    """Runs in a fresh worker: the documented module in a plain perf_counter loop."""
    torch.manual_seed(0)
    x = lif_input((task["T"], task["N"]), CONFIG, seed=task["seed"])
    step, inputs = PLAIN[task["framework"]](x)
    inputs = inputs.detach().requires_grad_()
    grad = torch.randn(step(inputs).shape, generator=torch.Generator().manual_seed(7))

    def once():
        inputs.grad = None
        spikes = step(inputs)
        spikes.backward(grad)

    for _ in range(3):
        once()
    times = []
    deadline = time.perf_counter() + task["repeat_s"]
    while len(times) < 10 or time.perf_counter() < deadline:
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "calls": len(times)}


def measure(kind: str, framework: str, args) -> float | None:
    task = {"T": args.T, "N": args.N, "seed": 0}
    if kind == "plain":
        result = run_task({**task, "function": PLAIN_FUNCTION, "framework": framework,
                           "repeat_s": args.repeat_s}, timeout_s=600)  # fmt: skip
        return result.get("median_s")
    result = run_task({**task, "function": COMPARE_FUNCTION, "impl": framework, "dtype": "fp32",
                       "device": "cpu", "config": CONFIG.as_dict(), "repeat_s": 0.25,
                       "energy": False}, timeout_s=600)  # fmt: skip
    timing = (result.get("timings") or {}).get("fwd+bwd")
    if timing is None:
        print(f"compare {framework}: {result.get('verdict')}: {result.get('reason')}",
              file=sys.stderr)  # fmt: skip
    return None if timing is None else timing["median_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--N", type=int, default=2**18)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat-s", type=float, default=1.0, help="plain loop budget per run")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    frameworks = [f for f in args.frameworks.split(",") if f]
    if BASELINE not in frameworks or any(f not in PLAIN for f in frameworks):
        parser.error(f"--frameworks: from {', '.join(PLAIN)}, {BASELINE} included")

    started = time.perf_counter()
    names = [f"{kind}:{fw}" for fw in frameworks for kind in ("plain", "compare")]

    def one(name: str, index: int) -> float | None:
        kind, framework = name.split(":")
        seconds = measure(kind, framework, args)
        shown = "n/a" if seconds is None else f"{1e3 * seconds:.2f} ms"
        print(f"round {index + 1}: {name:<22} {shown}", file=sys.stderr, flush=True)
        return seconds

    rounds = run_rounds(names, args.rounds, one)
    by_kind = {
        kind: [{n.split(":")[1]: t for n, t in r.items() if n.startswith(kind)} for r in rounds]
        for kind in ("plain", "compare")
    }
    summary = {kind: ratios(results, BASELINE) for kind, results in by_kind.items()}
    print(f"\nLIF fwd+bwd, T={args.T}, N={args.N:,}, fp32, CPU, {args.rounds} interleaved rounds: "
          f"time relative to {BASELINE} (median over rounds, lowest-highest round)\n")  # fmt: skip
    print("| framework | plain loop ms | compare ms | plain loop ratio | compare ratio | "
          "compare / plain | within 20 % |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    met = True
    for framework in frameworks:
        plain, compared = summary["plain"][framework], summary["compare"][framework]
        ms = {kind: statistics.median([r[framework] for r in by_kind[kind] if r[framework]] or [0])
              for kind in by_kind}  # fmt: skip
        if plain["median"] and compared["median"]:
            relative = compared["median"] / plain["median"]
            ok = abs(relative - 1) <= TARGET
            verdict = f"{relative:.2f}", "yes" if ok else "**no**"
        else:
            ok, verdict = False, ("n/a", "**no**")
        met = met and ok
        cells = [framework, f"{1e3 * ms['plain']:.2f}", f"{1e3 * ms['compare']:.2f}",
                 describe(plain), describe(compared), *verdict]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    print(
        f"\ntarget: compare's ratio within {TARGET:.0%} of the plain loop's for every framework: "
        + ("met" if met else "NOT met")
        + f"  ({time.perf_counter() - started:.0f} s)"
    )
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
