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
