"""Interleaved rounds: pooled timings, paired speedups with bootstrap intervals, and the rows a
GPU engineer must not trust as printed (rounds that disagree, a part slower than the whole,
launch-bound calls), planted and caught."""

from __future__ import annotations

import json
import statistics

import pytest

from kernelprof.results import analysis, schema
from tests.cli_runner import run_kernelprof
from tests.planted_impls import DRIFT_FACTOR, DRIFT_ROUND, LAUNCH_GAP_S, SLEEP_S


def round_of(samples, device=None, launch=None):
    return {"samples_s": list(samples), "device_samples_s": list(device or samples),
            "launch_s": launch or statistics.median(samples), "first_call_s": 0.1,
            "warnings": [], "label": "x fwd", "device_source": "host clock"}  # fmt: skip


def pooled(*rounds):
    return analysis.pool_rounds([round_of(r) for r in rounds])


# ---- the analysis, on made-up rounds -------------------------------------------------------


def test_rounds_are_pooled_and_kept():
    timing = pooled([1.0, 1.02, 0.98], [1.0, 1.05, 0.95], [1.2, 1.0, 1.0])
    assert timing["samples_s"] == [1.0, 1.02, 0.98, 1.0, 1.05, 0.95, 1.2, 1.0, 1.0]
    assert timing["median_s"] == timing["call_s"] == timing["device_s"] == 1.0
    assert [r["median_s"] for r in timing["rounds"]] == [1.0, 1.0, 1.0]
    assert timing["warnings"] == []


def test_a_spread_warning_needs_most_rounds_to_be_spread():
    one_bad = pooled([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.01])
    assert one_bad["warnings"] == []
    two_bad = pooled([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    assert two_bad["warnings"] and "large spread" in two_bad["warnings"][0]


def test_paired_speedup_is_the_median_of_per_round_ratios_with_an_interval():
    # the machine is twice as slow in round 2, where the row was timed with more calls (a
    # noisy round makes the sampler time more): pooling first would let round 2 dominate
    base = pooled([2.0, 2.1, 1.9], [4.0, 4.2, 3.8], [2.0, 2.05, 1.95])
    row = pooled([1.0, 1.05, 0.95], [2.0, 2.1, 1.9, 2.0, 2.05, 1.95, 2.0, 2.1], [1.0, 1.0, 1.02])
    speedup = analysis.paired_speedup(base, row, "device")
    assert speedup["value"] == pytest.approx(2.0, rel=0.01)  # the drift cancels in each pair
    assert speedup["low"] <= speedup["value"] <= speedup["high"]
    assert speedup["low"] > 1.8 and speedup["high"] < 2.2
    unpaired = statistics.median(base["samples_s"]) / statistics.median(row["samples_s"])
    assert unpaired < 1.5


def test_rounds_that_disagree_and_parts_slower_than_the_whole_are_inconsistent():
    steady = {phase: pooled([1.0, 1.0], [1.05, 1.0], [1.0, 1.02]) for phase in ("fwd", "bwd")}
    steady["fwd+bwd"] = pooled([2.0], [2.0], [2.1])
    assert analysis.inconsistencies(steady) == []
    drifted = dict(steady, bwd=pooled([1.0], [1.0], [3.0]))
    (reason,) = analysis.inconsistencies(drifted)
    assert reason.startswith("bwd rounds disagree: 1000, 1000, 3000 ms")
    scattered = dict(steady, bwd=pooled([1.0, 1.5, 1.1], [1.4, 1.45, 0.9], [1.0, 1.9, 1.4]))
    assert analysis.inconsistencies(scattered) == []  # medians 1.1 vs 1.4, but overlapping
    upside_down = dict(steady, fwd=pooled([2.5], [2.5], [2.5]))
    (reason,) = analysis.inconsistencies(upside_down)
    assert reason == "fwd alone (2500 ms) takes longer than fwd+bwd (2000 ms)"


def test_launch_bound_needs_call_time_20_percent_above_device_time():
    def kernels(call, device):
        timing = pooled([call])
        timing.update(device_s=device, device_source="kernels")
        return timing

    found = analysis.launch_bound({"fwd": kernels(0.360, 0.247), "bwd": kernels(0.11, 0.1)})
    assert set(found) == {"fwd"}  # 46 % above is launch-bound, 10 % is not
    assert found["fwd"]["device_s"] == 0.247 and found["fwd"]["call_s"] == 0.360
    cpu = pooled([1.0])
    assert analysis.launch_bound({"fwd": dict(cpu, op_fraction=0.9)}) == {}
    assert set(analysis.launch_bound({"fwd": dict(cpu, op_fraction=0.2)})) == {"fwd"}


def test_the_two_measures_of_device_time_are_checked_against_each_other():
    def cuda_round(busy, kernels):
        return dict(round_of([busy * 1.5], device=[kernels]), device_source="kernels",
                    events_busy_median_s=busy)  # fmt: skip

    agree = analysis.pool_rounds([cuda_round(1.05e-3, 1e-3)] * 3)
    assert agree["warnings"] == [] and agree["device_s"] == 1e-3
    waits = analysis.pool_rounds([cuda_round(2e-3, 1e-3)] * 3)
    assert any("the device waits inside the call" in w for w in waits["warnings"])
    overlap = analysis.pool_rounds([cuda_round(0.5e-3, 1e-3)] * 3)
    assert any("kernels overlap" in w for w in overlap["warnings"])


# ---- planted implementations, through the command line -------------------------------------


@pytest.fixture(scope="module")
def rows():
    done = run_kernelprof(
        "compare", "--neuron", "lif", "--T", "4", "--N", "65536", "--device", "cpu",
        "--format", "json", "--repeat-s", "0.05", "--no-energy",
        "--impls", "ref-torch,planted-launch-bound,planted-drift,planted-stateful",
        planted=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert schema.validate(document) == "compare"
    assert len(document["runs"][0]["noise_rounds_s"]) == 3  # the machine probed every round
    assert 0 <= document["noise_probe"]["spread"] < 10
    return {row["impl"]: row for row in document["runs"][0]["rows"]}


def test_every_row_is_timed_in_three_interleaved_rounds_in_rotated_order(rows):
    order = {}
    for name, row in rows.items():
        timing = row["timings"]["fwd"]
        assert row["rounds"] == 3 and len(timing["rounds"]) == 3
        assert sum(len(r["samples_s"]) for r in timing["rounds"]) == len(timing["samples_s"])
        order[name] = [r["started_at"] for r in row["timings"]["fwd"]["rounds"]]
    names = list(rows)
    for number in range(3):
        started = sorted(names, key=lambda name: order[name][number])
        assert started == names[number:] + names[:number], (number, started)


def test_a_planted_slowdown_in_one_round_is_flagged(rows):
    drift = rows["planted-drift"]
    medians = [r["median_s"] for r in drift["timings"]["fwd"]["rounds"]]
    slow = medians[DRIFT_ROUND - 1]
    assert slow > 0.8 * DRIFT_FACTOR * min(medians)
    assert any("fwd rounds disagree" in reason for reason in drift["inconsistent"])


def test_a_forward_slower_alone_than_with_its_backward_is_flagged(rows):
    stateful = rows["planted-stateful"]["timings"]
    assert stateful["fwd"]["device_s"] >= SLEEP_S > stateful["fwd+bwd"]["device_s"]
    reasons = rows["planted-stateful"]["inconsistent"]
    assert any(reason.startswith("fwd alone") for reason in reasons), reasons


def test_a_planted_host_pause_between_tiny_ops_is_host_bound_and_an_honest_loop_is_not(rows):
    bound = rows["planted-launch-bound"]["launch_bound"]
    assert "fwd" in bound and "bwd" not in bound, bound  # the pause is in the forward only
    assert bound["fwd"]["call_s"] >= LAUNCH_GAP_S
    assert bound["fwd"]["in_ops_s"] < 0.5 * bound["fwd"]["call_s"]
    assert "CPU analogue" in bound["fwd"]["basis"]
    assert rows["ref-torch"]["launch_bound"] == {}


def test_speedups_carry_intervals_and_call_time_speedups(rows):
    for name, row in rows.items():
        low, high = row["speedup_interval"]
        assert low <= row["speedup"] <= high, name
        assert row["speedup_call"] > 0
        for timing in row["timings"].values():  # CPU: the host does the work
            assert timing["device_s"] == timing["call_s"] == timing["launch_s"]


@pytest.mark.cuda
def test_a_planted_host_pause_is_launch_bound_on_the_gpu():
    done = run_kernelprof(
        "compare", "--neuron", "lif", "--T", "8", "--N", "65536", "--format", "json",
        "--impls", "ref-torch,planted-launch-bound", "--no-energy", planted=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row["impl"]: row for row in json.loads(done.stdout)["runs"][0]["rows"]}
    bound = rows["planted-launch-bound"]["launch_bound"]
    assert "fwd" in bound and bound["fwd"]["basis"].startswith("call time against")
    assert bound["fwd"]["call_s"] > LAUNCH_GAP_S > 10 * bound["fwd"]["device_s"]
    fwd = rows["planted-launch-bound"]["timings"]["fwd"]
    assert fwd["device_source"] == "kernels" and fwd["events_busy_median_s"] < fwd["call_s"]
