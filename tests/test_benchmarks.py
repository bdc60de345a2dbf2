"""The benchmark scripts' own logic (their figures are printed, not asserted)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kernelprof.results.compare import (
    Bandwidth,
    Case,
    CompareCase,
    CompareDocument,
    CompareRow,
    GraphTiming,
    NoiseProbe,
)
from kernelprof.results.document import DeviceInfo, Environment
from kernelprof.results.timing import Measurement
from reference_kernels.model import LIFConfig
from tests.documents import checked as checked_build
from tests.documents import compare_row

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare_document(device: str, rows: list[CompareRow], copy_gb_per_s: float = 24.0):
    case = CompareCase(case=Case(T=8, N=1 << 20, dtype="fp32"), device=DeviceInfo(type=device),
                       copy_bandwidth_gb_per_s=copy_gb_per_s, rows=tuple(rows))  # fmt: skip
    environment = Environment(device=DeviceInfo(type=device))
    return CompareDocument(environment=environment, config=LIFConfig(), cases=(case,),
                           copy_bandwidth_gb_per_s=copy_gb_per_s,
                           noise_probe=NoiseProbe(workload="x", median_s=1.0, spread=0.0,
                                                  calls=1))  # fmt: skip


def row(impl: str, verdict: str, fractions: dict | None, graph_s: float | None = None):
    """A row whose phases reach the given fractions of copy bandwidth (6 MB fwd+bwd traffic,
    replayed as a CUDA graph in ``graph_s``)."""
    checked = checked_build(impl, verdict)
    if fractions is None:
        return CompareRow(checked=checked)
    graphs = {} if graph_s is None else {
        "fwd+bwd": GraphTiming(measurement=Measurement(samples_s=(graph_s,)))}  # fmt: skip
    return dataclasses.replace(
        compare_row(0, impl, False), checked=checked,
        bandwidth={p: Bandwidth(bytes=6_000_000, gb_per_s=1.0, copy_fraction=f,
                                call_copy_fraction=f) for p, f in fractions.items()},
        profile=dataclasses.replace(compare_row(0, impl, False).profile, graph_timings=graphs),
    )  # fmt: skip


def test_cpu_target_takes_the_fastest_trustworthy_impl():
    targets = load("lif_kernels").targets
    rows = [
        row("ref-torch", "exact", {"fwd+bwd": 0.05}),
        row("ref-compile", "exact", {"fwd+bwd": 0.30}),
        row("ref-wrong", "WRONG", {"fwd+bwd": 0.90}),  # fast but wrong: never counts
        row("ref-cupy", "unavailable", None),
    ]
    (target,) = targets(compare_document("cpu", rows))
    assert target["impl"] == "ref-compile" and target["met"]
    (target,) = targets(compare_document("cpu", [row("ref-torch", "exact", {"fwd+bwd": 0.10})]))
    assert not target["met"]


def _gpu_row(impl: str, fwd: float, bwd: float, graph_s: float | None):
    return row(impl, "exact", {"fwd": fwd, "bwd": bwd, "fwd+bwd": min(fwd, bwd)}, graph_s)


def test_gpu_targets_need_each_direction_and_the_graph_for_triton_and_cupy_each():
    targets = load("lif_kernels").targets
    gpu = compare_document("cuda", [
        # copy bandwidth 1 GB/s below: 6 MB in 6.5 ms is 92 %, in 7.5 ms 80 %
        _gpu_row("ref-triton", 0.95, 0.91, 0.0065),
        _gpu_row("ref-cupy", 0.95, 0.85, 0.0075),
    ], copy_gb_per_s=1.0)  # fmt: skip
    met = {(t["impl"], t["target"].split(": ")[1].split(" >=")[0]): t["met"] for t in targets(gpu)}
    assert met == {
        ("ref-triton", "ref-triton fwd device time"): True,
        ("ref-triton", "ref-triton bwd device time"): True,
        ("ref-triton", "ref-triton fwd+bwd as a CUDA graph"): True,
        ("ref-cupy", "ref-cupy fwd device time"): True,
        ("ref-cupy", "ref-cupy bwd device time"): False,
        ("ref-cupy", "ref-cupy fwd+bwd as a CUDA graph"): False,
    }
    # a missing row or graph replay is "not met", never skipped
    gpu = compare_document("cuda", [_gpu_row("ref-triton", 0.95, 0.95, None)], 1.0)
    found = targets(gpu)
    assert len(found) == 6 and sum(t["met"] for t in found) == 2
    assert all(t["fraction"] is None for t in found if t["impl"] == "ref-cupy")


def test_saved_memory_keeps_only_x_with_recompute(tmp_path):
    """On the CPU the benchmark runs lif.cu's host build: the default keeps one [T, N] margin,
    recompute nothing beyond X, with the same results, and both modes are timed."""
    saved_memory = load("saved_memory")
    out = tmp_path / "saved.json"
    argv = ["--device", "cpu", "--T", "4", "--N", "4096", "--rounds", "1", "--repeat-s", "0.01"]
    assert saved_memory.main([*argv, "--json", str(out)]) == 0
    entry = json.loads(out.read_text())["backends"]["cuda-host"]
    assert entry["status"] == "ok", entry
    assert entry["checks"]["recompute_equals_margin"]
    assert {entry["checks"][save]["verdict"] for save in ("margin", "recompute")} == {"exact"}
    assert entry["memory"]["margin"]["saved_bytes"] == 4 * 4096 * 4
    assert entry["memory"]["recompute"]["saved_bytes"] == 0
    assert entry["timings"]["recompute"]["fwd+bwd"]["passes"] == 7
    assert entry["timings"]["recompute"]["bwd"]["recompute_over_margin"]["median"] > 0


def test_host_overhead_reaches_every_stubbed_launch(tmp_path):
    """Each path's forward and backward reach the stubbed launch (a stub never reached would
    time nothing), and every row gets its figures. In its own process, since it stubs the
    launches module-wide."""
    out = tmp_path / "host.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "host_overhead.py"
    argv = ["--rounds", "1", "--repeat-s", "0.01", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    assert document["problems"] == []
    assert len(document["rows"]) == 6
    for row in document["rows"].values():
        assert row["forward_s"]["median"] > 0 and row["backward_s"]["median"] > 0


def neuron_sets() -> list[tuple[str, str]]:
    plain_loops = importlib.import_module("benchmarks.plain_loops")  # as its workers import it
    return [(name, fw) for name, neurons in plain_loops.SETS.items() for fw in neurons.impls]


@pytest.mark.parametrize("neuron_set, framework", neuron_sets())
def test_each_plain_loop_runs_beside_compares_checked_build(neuron_set, framework):
    """Every framework of every neuron set: its plain loop runs, and compare's impl for it builds
    in the set's config and passes the check against its checking build (else ``paired`` says
    why instead of timing)."""
    plain_loops = importlib.import_module("benchmarks.plain_loops")
    task = {"framework": framework, "set": neuron_set, "T": 4, "N": 512, "seed": 0,
            "repeat_s": 0.03}  # fmt: skip
    result = plain_loops.paired(task)
    assert "error" not in result, result
    for kind in plain_loops.KINDS:  # the warm and the flushed plain loop, and the harness
        assert len(result[kind]) == plain_loops.PAIRS and min(result[kind]) > 0


def test_warmup_worker_logs_every_timer_call_of_compares_own_rounds(monkeypatch):
    """benchmarks/warmup.py's worker serves compare's own rounds with every call its timer makes
    logged: a phase's last logged calls are its samples; before them, round 1 has call 1,
    compare's warm-up calls and the estimate, a later round the estimate alone. The timers are
    put back after each round, and the script's own trace request times what it is asked."""
    from kernelprof.harness import timer
    from kernelprof.results.compare import PHASES, RoundTiming
    from kernelprof.results.record import decode, encode
    from kernelprof.runs.compare import worker

    warmup = importlib.import_module("benchmarks.warmup")  # as its workers import it
    host_timer = timer.HostTimer
    monkeypatch.setenv("KERNELPROF_ROUND", "0")  # compare's worker sets it: undone afterwards
    task = warmup.TracedTask(function=warmup.FUNCTION, impl="ref-torch", T=2, N=512,
                             config=LIFConfig(surrogate="superspike", alpha=1.0), dtype="fp32",
                             device="cpu", repeat_s=0.003, energy=False)  # fmt: skip
    session = warmup.traced_worker(encode(task))
    assert session.result["timeable"], session.result
    for number in (1, 2):
        reply = session.handle({"command": "round", "round": number})
        assert set(reply["round"]) == set(PHASES), reply
        for phase, data in reply["round"].items():
            timing = decode(RoundTiming, data)
            logged = [call["s"] for call in reply["calls"] if call["phase"] == phase]
            samples = list(timing.call.samples_s)
            assert logged[len(logged) - len(samples) :] == samples, phase
            untimed = logged[: len(logged) - len(samples)]
            if number == 1:  # call 1, the warm-up, the estimate
                assert timing.warm_up is not None and timing.warm_up.calls >= 1
                assert untimed[1:-1] == list(timing.warm_up.times_s), phase
            else:
                assert timing.warm_up is None and len(untimed) == 1, phase
        assert timer.HostTimer is host_timer and worker.HostTimer is host_timer
    trace = session.handle({"command": "trace", "calls": 3, "order": ["bwd"]})
    assert list(trace) == ["bwd"] and len(trace["bwd"]["s"]) == 3
    assert min(trace["bwd"]["s"]) > 0 and min(trace["bwd"]["minflt"]) >= 0
