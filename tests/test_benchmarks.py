"""The benchmark scripts' own logic (their figures are printed, not asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


def test_gpu_targets_need_triton_and_cupy_each():
    targets = load("lif_kernels").targets
    found = targets(
        document("cuda", [row("ref-triton", "exact", 0.9), row("ref-cupy", "exact", 0.5)])
    )
    assert {t["impl"]: t["met"] for t in found} == {"ref-triton": True, "ref-cupy": False}


def test_study_table_cells_show_accuracy_and_time_or_why_not():
    cell = load("study_table").cell
    assert (
        cell({"status": "ok", "test_accuracy": 0.8912, "epoch_s": [1.0, 1.5]}) == "89.1 % / 2.5 s"
    )
    assert cell({"status": "unsupported", "reason": "soft reset"}) == "unsupported"
    assert cell({}) == "error"
    conversion_cell = load("study_table").conversion_cell
    assert conversion_cell({"status": "ok", "test_accuracy": 0.9, "convert_s": 0.125}) == (
        "90.0 % / 0.12 s"
    )
    assert conversion_cell({"status": "unsupported"}) == "unsupported"
