"""The host's cost of one forward and one backward through the fused LIF kernels, with the
kernel launches stubbed out (target: at most 20 us per phase).

On a GPU a fused LIF call is two kernels of a few hundred microseconds at large N, but at small
N the host's Python around the launches decides the call's time. This measures that Python on
the CPU, launches replaced by no-ops that count themselves (a stub that was never reached would
time nothing, so every measurement checks its launches):

* triton: ``reference_kernels.run(x, config, impl="triton")``, the public path, on CPU tensors
  (``TRITON_INTERPRET=1`` is set here, before the kernels are imported, so the backend accepts
  them) with ``triton_lif._launch`` stubbed. Triton's own launcher (argument binding, the
  specialisation key, the autotuner's cache look-up) is not run: on a GPU it is part of the
  call, and ``kernelprof compare`` shows it as call time over device time;
* cupy: ``CupyKernels`` through the same autograd path, with ``_launch`` stubbed and its two
  device look-ups (loaded kernel with its occupancy, CuPy's view of torch's stream), which are
  cached after the first call on a GPU, answered by caches of the same kind; its tensors are
  checked to live on the CPU instead of CUDA. ``reference_kernels.run`` refuses CPU tensors
  for cupy, so this row starts at ``reference_kernels.fused.lif_fused``, one level below the
  public call; the triton (lif_fused) row shows what that level saves.

Forward is the call a training step makes (the input requires grad, so the autograd node is
built). Backward is ``torch.autograd.grad`` over one retained forward graph; the engine's own
cost for one node is measured beside it on ``x.clone()`` (its backward hands the gradient
through with no arithmetic) and subtracted: what remains is kernelprof's backward. The tensors
are small ([8, 1024] by default): their size does not change the Python work. glibc is told to
keep freed memory in its heap (``kernelprof.harness.device.keep_host_memory``), so that an
allocation costs what the CUDA caching allocator's does, not a heap trim and regrowth: without
it, whole rounds of backward calls ran 2x slower on the 2-core VM. Measurements are interleaved
in rounds, the order rotated each round; figures are medians over rounds with the lowest and
highest round.

    .venv/bin/python benchmarks/host_overhead.py [--T 8] [--N 1024] [--rounds 11] [--json OUT]
        [--instructions]

``--instructions`` adds an independent check that the shared machine's load cannot move:
callgrind's instruction count per call of the margin paths' forward and backward and of the
engine's one-node backward.
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before reference_kernels.triton_lif is imported

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find benchmarks/
import reference_kernels  # noqa: E402
from benchmarks.rounds import run_rounds  # noqa: E402
from kernelprof.harness.device import keep_host_memory  # noqa: E402
from kernelprof.harness.timer import measure  # noqa: E402
from reference_kernels import cupy_lif, fused, triton_lif  # noqa: E402
from reference_kernels.model import LIFConfig  # noqa: E402

TARGET_S = 20e-6
SAVES = ("margin", "recompute")


class LaunchCounter:
    """The stand-in for a kernel launch: counts, runs nothing."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args, **kwargs) -> None:
        self.count += 1


TRITON_LAUNCHES = LaunchCounter()


@functools.cache
def _loaded_kernel(device: int, name: str) -> cupy_lif._Kernel:
    return cupy_lif._Kernel(function=None, blocks_per_sm=4, sm_count=132)


@functools.lru_cache(maxsize=64)
def _stream_view(device: int, handle: int) -> None:
    return None


class StubbedCupy(cupy_lif.CupyKernels):
    """CupyKernels on CPU tensors, its launch stubbed and its two device look-ups answered by
    caches like the real ones (functools.cache / lru_cache keyed the same way; the real stream
    look-up also asks torch for the current stream's handle, a C call)."""

    name = "cupy-stubbed"
    device_type = "cpu"

    def __init__(self) -> None:
        super().__init__()
        self.launches = LaunchCounter()

    def _kernel(self, device, name):
        return _loaded_kernel(device, name)

    def _stream(self, device):
        return _stream_view(device, 0)

    def _launch(self, device, function, grid, args, stream) -> None:
        self.launches()


def workloads(steps: int, neurons: int) -> dict[str, tuple[Callable, Callable, LaunchCounter]]:
    """name -> (forward closure, backward closure, its launch counter)."""
    config = LIFConfig()
    x = torch.randn(steps, neurons).requires_grad_()
    grad = torch.randn(steps, neurons)
    cupy = StubbedCupy()
    found = {}

    def add(name, forward, counter):
        spikes = forward()  # one graph, replayed by backward
        found[name] = (
            forward,
            lambda: torch.autograd.grad(spikes, x, grad, retain_graph=True),
            counter,
        )

    for save in SAVES:
        add(
            f"triton, save={save}",
            lambda save=save: reference_kernels.run(x, config, impl="triton", save=save),
            TRITON_LAUNCHES,
        )
        add(
            f"triton (lif_fused), save={save}",
            lambda save=save: fused.lif_fused(x, triton_lif.KERNELS, config, False, save),
            TRITON_LAUNCHES,
        )
        add(
            f"cupy (lif_fused), save={save}",
            lambda save=save: fused.lif_fused(x, cupy, config, False, save),
            cupy.launches,
        )
    add("engine floor: x.clone()", x.clone, LaunchCounter())
    add(PYTHON_NODE, lambda: _PassThrough.apply(x), LaunchCounter())
    return found


PYTHON_NODE = "a Python autograd.Function that does nothing"


class _PassThrough(torch.autograd.Function):
    """What any op written as a Python autograd.Function costs PyTorch, with no work inside:
    a new output in forward, the gradient handed back in backward."""

    @staticmethod
    def forward(ctx, x):
        return torch.empty_like(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


# --instructions: what callgrind counts per call, a figure no other load on the machine moves
COUNTED = (
    ("engine floor: x.clone()", "backward"),
    ("triton, save=margin", "forward"),
    ("triton, save=margin", "backward"),
    ("cupy (lif_fused), save=margin", "forward"),
    ("cupy (lif_fused), save=margin", "backward"),
)
COUNTED_CALLS = 2000
WARMUP_CALLS = 20


def prepare(steps: int, neurons: int) -> tuple[dict, str]:
    """The stubs in place, one thread, glibc's heap kept: the workloads, and the allocator's
    note."""
    triton_lif._launch = TRITON_LAUNCHES
    torch.set_num_threads(1)  # the Python work is single-threaded; no intra-op pool wake-ups
    allocator = keep_host_memory()
    return workloads(steps, neurons), allocator


def loop(found: dict, counted: int | None, calls: int) -> None:
    """Warms every counted (path, phase) up, then calls entry ``counted`` of COUNTED ``calls``
    times: run with calls=0 it is the baseline the counted runs are read against."""
    for name, phase in COUNTED:
        fn = found[name][0 if phase == "forward" else 1]
        for _ in range(WARMUP_CALLS):
            fn()
    if counted is not None:
        name, phase = COUNTED[counted]
        fn = found[name][0 if phase == "forward" else 1]
        for _ in range(calls):
            fn()


def instructions(steps: int, neurons: int) -> dict:
    """Per counted (path, phase): instructions per call under callgrind, from a run that makes
    COUNTED_CALLS calls minus a baseline run that makes none (both import, build and warm up
    the same); two runs at a time (about 2 minutes each: importing torch under valgrind)."""
    import re
    import shutil
    import subprocess

    if shutil.which("valgrind") is None:
        return {"unavailable": "valgrind not found"}
    base = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
        __file__, "--T", str(steps), "--N", str(neurons), "--loop",
    ]  # fmt: skip
    # A fixed string hash seed: with a random one, dictionaries probe differently from run to
    # run and the counts moved by several thousand instructions per call.
    environment = os.environ | {"PYTHONHASHSEED": "0"}
    runs = [("baseline", [*base, "-1", "0"])]
    runs += [(index, [*base, str(index), str(COUNTED_CALLS)]) for index in range(len(COUNTED))]
    counts = {}
    for start in range(0, len(runs), 2):
        batch = runs[start : start + 2]
        started = [
            (key, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True, env=environment))
            for key, cmd in batch
        ]  # fmt: skip
        for key, process in started:
            _, err = process.communicate()
            found = re.search(r"Collected : (\d+)", err)
            if process.returncode != 0 or found is None:
                return {"unavailable": f"callgrind run {key} failed: {err.strip()[-300:]}"}
            counts[key] = int(found[1])
    per_call = {
        f"{name} {phase}": (counts[index] - counts["baseline"]) / COUNTED_CALLS
        for index, (name, phase) in enumerate(COUNTED)
    }
    floor = per_call["engine floor: x.clone() backward"]
    for name in ("triton, save=margin", "cupy (lif_fused), save=margin"):
        per_call[f"{name} backward, own"] = per_call[f"{name} backward"] - floor
    return per_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--N", type=int, default=1024)
    parser.add_argument(
        "--instructions", action="store_true",
        help="also count instructions per call with callgrind (about 6 minutes)",
    )  # fmt: skip
    parser.add_argument("--loop", nargs=2, type=int, help=argparse.SUPPRESS)  # callgrind runs
    # many short rounds: a burst of load on a shared machine then spoils a few rounds, not a
    # median
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--repeat-s", type=float, default=0.05, help="timing budget per figure")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.T < 1 or args.N < 1 or args.rounds < 1 or args.repeat_s <= 0:
        parser.error("--T, --N and --rounds must be >= 1, --repeat-s > 0")

    if args.loop:
        counted, calls = args.loop
        loop(prepare(args.T, args.N)[0], None if counted < 0 else counted, calls)
        return 0
    found, allocator = prepare(args.T, args.N)
    problems = []

    def one(name: str, _round: int) -> dict[str, float]:
        forward, backward, counter = found[name]
        figures = {}
        for phase, fn in (("forward", forward), ("backward", backward)):
            before = counter.count
            figures[phase] = measure(
                fn, device="cpu", label=f"{name} {phase}", repeat_s=args.repeat_s,
                flush_cache=False, first_call=False,
            ).median_s  # fmt: skip
            if name.startswith(("triton", "cupy")) and counter.count == before:
                problems.append(f"{name} {phase}: no launch reached the stub")
        return figures

    rounds = run_rounds(list(found), args.rounds, one)
    floor = [r["engine floor: x.clone()"]["backward"] for r in rounds]
    python_node = [r[PYTHON_NODE]["backward"] for r in rounds]
    summary = {}
    for name in found:
        if name.startswith("engine") or name == PYTHON_NODE:
            continue
        forward = [r[name]["forward"] for r in rounds]
        backward = [r[name]["backward"] for r in rounds]
        own = [b - f for b, f in zip(backward, floor, strict=True)]
        summary[name] = {
            "forward_s": _spread(forward),
            "backward_s": _spread(backward),
            "backward_own_s": _spread(own),
            "met": statistics.median(forward) <= TARGET_S and statistics.median(own) <= TARGET_S,
        }
    document = {
        "T": args.T,
        "N": args.N,
        "rounds": args.rounds,
        "engine_floor_backward_s": _spread(floor),
        "python_node_backward_over_floor_s": _spread(
            [p - f for p, f in zip(python_node, floor, strict=True)]
        ),
        "python_node_forward_s": _spread([r[PYTHON_NODE]["forward"] for r in rounds]),
        "target_s": TARGET_S,
        "rows": summary,
        "problems": problems,
        "host_allocator": allocator,
        "instructions_per_call": instructions(args.T, args.N) if args.instructions else None,
        "torch": torch.__version__,
    }
    _print(document)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2))
    return 1 if problems else 0


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def _us(figure: dict[str, float]) -> str:
    return f"{1e6 * figure['median']:.1f} ({1e6 * figure['low']:.1f}-{1e6 * figure['high']:.1f})"


def _print(document: dict) -> None:
    console = Console(width=140)
    table = Table(
        title=f"Host cost per call, launches stubbed: T={document['T']}, N={document['N']}, "
        f"{document['rounds']} interleaved rounds (us, median and lowest-highest round)"
    )
    for column in ("path", "forward", "backward (autograd.grad)", "backward, own", "target"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for name, row in document["rows"].items():
        verdict = "[green]met[/]" if row["met"] else "[red]NOT met[/]"
        table.add_row(
            name, _us(row["forward_s"]), _us(row["backward_s"]), _us(row["backward_own_s"]),
            verdict,
        )  # fmt: skip
    console.print(table)
    console.print(
        f"backward, own = autograd.grad minus the engine's cost for one node "
        f"(x.clone(): {_us(document['engine_floor_backward_s'])} us), round by round; "
        f"target: forward and own backward each <= {1e6 * document['target_s']:.0f} us"
    )
    console.print(
        f"of which PyTorch's for any Python autograd.Function (one that does nothing): "
        f"backward {_us(document['python_node_backward_over_floor_s'])} us over the engine's "
        f"one node, forward {_us(document['python_node_forward_s'])} us"
    )
    console.print(document["host_allocator"])
    counted = document["instructions_per_call"]
    if counted and "unavailable" in counted:
        console.print(f"instructions: unavailable: {counted['unavailable']}")
    elif counted:
        console.print("instructions per call (callgrind; a count no other load moves):")
        for what, count in counted.items():
            console.print(f"  {what}: {count:,.0f}")
    for problem in document["problems"]:
        console.print(f"[red]problem:[/] {problem}")


if __name__ == "__main__":
    sys.exit(main())
