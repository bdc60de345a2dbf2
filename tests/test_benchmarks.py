"""The benchmark scripts' own logic (their figures are printed, not asserted)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(impl: str, verdict: str, fraction: float | None) -> dict:
    timings = {} if fraction is None else {"fwd+bwd": {"copy_bandwidth_fraction": fraction}}
    return {"impl": impl, "verdict": verdict, **({"timings": timings} if timings else {})}


def document(device: str, rows: list[dict]) -> dict:
    case = {"T": 8, "N": 1 << 20, "dtype": "fp32"}
    return {"environment": {"device": {"type": device}}, "runs": [{"case": case, "rows": rows}]}


def test_cpu_target_takes_the_fastest_trustworthy_impl():
    targets = load("lif_kernels").targets
    rows = [
        row("ref-torch", "exact", 0.05),
        row("ref-compile", "exact", 0.30),
        row("ref-wrong", "WRONG", 0.90),  # fast but wrong: never counts
        row("ref-cupy", "unavailable", None),
    ]
    (target,) = targets(document("cpu", rows))
    assert target["impl"] == "ref-compile" and target["met"]
    (target,) = targets(document("cpu", [row("ref-torch", "exact", 0.10)]))
    assert not target["met"]


def _gpu_row(impl: str, fwd: float, bwd: float, graph_s: float | None) -> dict:
    """A CUDA row: fwd and bwd device fractions, 6 MB fwd+bwd traffic replayed in ``graph_s``."""
    timings = {
        "fwd": {"copy_bandwidth_fraction": fwd},
        "bwd": {"copy_bandwidth_fraction": bwd},
        "fwd+bwd": {"copy_bandwidth_fraction": min(fwd, bwd), "bytes": 6e6},
    }
    graphs = {} if graph_s is None else {"fwd+bwd": {"median_s": graph_s}}
    return {"impl": impl, "verdict": "exact", "timings": timings, "graph_timings": graphs}


def test_gpu_targets_need_each_direction_and_the_graph_for_triton_and_cupy_each():
    targets = load("lif_kernels").targets
    gpu = document("cuda", [
        # copy bandwidth 1 GB/s below: 6 MB in 6.5 ms is 92 %, in 7.5 ms 80 %
        _gpu_row("ref-triton", 0.95, 0.91, 0.0065),
        _gpu_row("ref-cupy", 0.95, 0.85, 0.0075),
    ])  # fmt: skip
    gpu["runs"][0]["copy_bandwidth_gb_per_s"] = 1.0
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
    gpu["runs"][0]["rows"] = [_gpu_row("ref-triton", 0.95, 0.95, None)]
    found = targets(gpu)
    assert len(found) == 6 and sum(t["met"] for t in found) == 2
    assert all(t["fraction"] is None for t in found if t["impl"] == "ref-cupy")


def test_study_table_cells_show_accuracy_and_time_or_why_not():
    cell = load("study_table").cell
    assert (
        cell({"status": "ok", "test_accuracy": 0.8912, "epoch_s": [1.0, 1.5]}) == "89.1 % / 2.5 s"
    )
    assert cell({"status": "unsupported", "reason": "soft reset"}) == "unsupported"
    assert cell({}) == "error"
    conversion_cell = load("study_table").conversion_cell
    trained = {"status": "ok", "test_accuracy": 0.9, "training": {"train_s": 12.34}}
    assert conversion_cell(trained) == "90.0 % / 12.3 s trained"
    assert conversion_cell({"status": "ok", "test_accuracy": 0.9, "convert_s": 0.125}) == (
        "90.0 % / 0.12 s"
    )
    assert conversion_cell({"status": "unsupported"}) == "unsupported"


def _study_document(mode: str, rows: list[dict], setting: str = "canonical") -> dict:
    task = {"dataset": "fmnist", "model": "cnn", "T": 32, "neuron_setting": setting}
    return {"mode": mode, "task": task, "rows": rows}


def _trained(framework: str, step_s: float, accuracy: float, samples: int = 2000) -> dict:
    return {"framework": framework, "status": "ok", "step_median_s": step_s,
            "test_accuracy": accuracy, "test_samples": samples, "epoch_s": [1.0]}  # fmt: skip


def test_study_claims_are_checked_against_every_column():
    study = load("study_table")
    direct = [
        # kernelprof's reference is the yardstick, shown but never a contender
        _study_document("direct", [_trained("spikingjelly", 0.10, 0.90),
                                   _trained("snntorch", 0.12, 0.80),
                                   _trained("reference", 0.05, 0.95)]),
        _study_document("direct", [_trained("spikingjelly", 0.10, 0.85),
                                   _trained("snntorch", 0.09, 0.85)], "framework-defaults"),
    ]  # fmt: skip
    conversion = [_study_document("conversion", [_trained("lava-dl", 1.0, 0.86),
                                                 _trained("sinabs", 1.0, 0.80)])]  # fmt: skip
    speed, accuracy, lava = study.check_claims(direct, conversion)
    # snnTorch is faster in the second column: the claim does not hold everywhere
    assert not speed["reproduced"] and speed["wins"] == "1 of 2 columns"
    assert speed["columns"][0]["fastest"] == "spikingjelly"
    assert accuracy["columns"][0]["best"] == ["spikingjelly"]
    assert speed["columns"][1]["fastest"] == "snntorch"
    assert speed["columns"][1]["spikingjelly_over_fastest"] > 1.1
    # a tie at the top is no win
    assert not accuracy["reproduced"] and accuracy["columns"][1]["best"] == [
        "spikingjelly", "snntorch"]  # fmt: skip
    # 6 points over 2,000 test images is far beyond two standard errors (about 1.6 points)
    assert lava["reproduced"] and lava["columns"][0]["resolved"]
    lines = study.claim_lines([speed, accuracy, lava])
    assert any("not reproduced" in line for line in lines)
    assert any("spikingjelly and snntorch" in line and "not resolved" in line for line in lines)


def test_a_lead_within_the_test_sets_sampling_is_not_a_win():
    study = load("study_table")
    close = [_study_document("conversion", [_trained("lava-dl", 1.0, 0.860, 500),
                                            _trained("sinabs", 1.0, 0.850, 500)])]  # fmt: skip
    (claim,) = study.check_claims([], close)[2:]
    assert not claim["reproduced"] and not claim["columns"][0]["resolved"]
    assert claim["columns"][0]["best"] == ["lava-dl"]


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
    for kind in ("plain_s", "harness_s"):
        assert len(result[kind]) == plain_loops.PAIRS and min(result[kind]) > 0
