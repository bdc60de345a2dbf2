"""Interleaved rounds: pooled timings, paired speedups with bootstrap intervals, and the rows a
GPU engineer must not trust as printed (rounds that disagree, a part slower than the whole,
launch-bound calls), planted and caught."""

from __future__ import annotations

import statistics

import pytest

from kernelprof.results import analysis, files
from kernelprof.results.compare import PhaseTiming, RoundTiming
from kernelprof.results.timing import Measurement
from tests.cli_runner import run_kernelprof
from tests.planted_impls import DRIFT_FACTOR, DRIFT_ROUND, LAUNCH_GAP_S, SLEEP_S


def round_of(samples, device=None, launch=None, number=1, busy=None, source="host clock"):
    call = Measurement(samples_s=tuple(samples), first_call_s=0.1, label="x fwd",
                       events_busy_median_s=busy)  # fmt: skip
    return RoundTiming(round=number, started_at=float(number), call=call,
                       device=Measurement(samples_s=tuple(device or samples)),
                       device_source=source,
                       launch_s=launch or statistics.median(samples))  # fmt: skip


def pooled(*rounds, **options):
    return PhaseTiming(rounds=tuple(round_of(r, number=i, **options)
                                    for i, r in enumerate(rounds, start=1)))  # fmt: skip


def spread_flags(timing, limit=0.10):
    return analysis._spread_flags("x fwd", timing, limit)


# ---- the analysis, on made-up rounds -------------------------------------------------------


def test_rounds_are_pooled_and_kept():
    timing = pooled([1.0, 1.02, 0.98], [1.0, 1.05, 0.95], [1.2, 1.0, 1.0])
    assert timing.call.samples_s == (1.0, 1.02, 0.98, 1.0, 1.05, 0.95, 1.2, 1.0, 1.0)
    assert timing.call_s == timing.device_s == timing.launch_s == 1.0
    assert [r.call.median_s for r in timing.rounds] == [1.0, 1.0, 1.0]
    assert spread_flags(timing) == []
    assert timing.first_call_s == 0.1


def test_a_spread_flag_needs_most_rounds_to_be_spread():
    one_bad = pooled([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.01])
    assert spread_flags(one_bad) == []
    two_bad = pooled([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    (flag,) = spread_flags(two_bad)
    assert flag.kind == "spread" and "large spread" in flag.message
    assert spread_flags(two_bad, limit=1.5) == []  # a noisier machine flags less


def test_paired_speedup_is_the_median_of_per_round_ratios_with_an_interval():
    # the machine is twice as slow in round 2, where the row was timed with more calls (a
    # noisy round makes the sampler time more): pooling first would let round 2 dominate
    base = pooled([2.0, 2.1, 1.9], [4.0, 4.2, 3.8], [2.0, 2.05, 1.95])
    row = pooled([1.0, 1.05, 0.95], [2.0, 2.1, 1.9, 2.0, 2.05, 1.95, 2.0, 2.1], [1.0, 1.0, 1.02])
    speedup = analysis.paired_speedup(base, row, "device")
    assert speedup.value == pytest.approx(2.0, rel=0.01)  # the drift cancels in each pair
    assert speedup.low <= speedup.value <= speedup.high
    assert speedup.low > 1.8 and speedup.high < 2.2 and speedup.rounds == 3
    unpaired = statistics.median(base.call.samples_s) / statistics.median(row.call.samples_s)
    assert unpaired < 1.5
    same = analysis.paired_speedup(base, base, "call", same=True)
    assert (same.value, same.low, same.high) == (1.0, 1.0, 1.0)


def test_rounds_that_disagree_and_parts_slower_than_the_whole_are_inconsistent():
    steady = {phase: pooled([1.0, 1.0], [1.05, 1.0], [1.0, 1.02]) for phase in ("fwd", "bwd")}
    steady["fwd+bwd"] = pooled([2.0], [2.0], [2.1])
    assert analysis.inconsistencies("x", steady) == []
    drifted = dict(steady, bwd=pooled([1.0], [1.0], [3.0]))
    (flag,) = analysis.inconsistencies("x", drifted)
    assert flag.kind == "rounds_disagree" and flag.inconsistent
    assert flag.message.startswith("bwd rounds disagree: 1000, 1000, 3000 ms")
    scattered = dict(steady, bwd=pooled([1.0, 1.5, 1.1], [1.4, 1.45, 0.9], [1.0, 1.9, 1.4]))
    assert analysis.inconsistencies("x", scattered) == []  # medians 1.1 vs 1.4, but overlapping
    upside_down = dict(steady, fwd=pooled([2.5], [2.5], [2.5]))
    (flag,) = analysis.inconsistencies("x", upside_down)
    assert flag.kind == "part_slower"
    assert flag.message == "fwd alone (2500 ms) takes longer than fwd+bwd (2000 ms)"


def test_a_whole_far_slower_than_its_parts_is_said_with_its_page_faults_not_flagged_busy():
    def faulting(seconds, faults):
        call = Measurement(samples_s=(seconds,) * 3, minor_faults_per_call=faults)
        return PhaseTiming(rounds=(RoundTiming(round=1, started_at=0.0, call=call, device=call,
                                               device_source="host clock",
                                               launch_s=seconds),))  # fmt: skip

    timings = {"fwd": faulting(0.038, 100), "bwd": faulting(0.048, 200),
               "fwd+bwd": faulting(0.171, 24_000)}  # fmt: skip
    (flag,) = analysis._whole_slower("norse", timings)
    assert flag.kind == "whole_slower" and not flag.inconsistent
    assert "1.99x fwd plus bwd" in flag.message and "fwd+bwd 24,000" in flag.message
    assert flag.figures["fwd+bwd_faults_per_call"] == 24_000
    timings["fwd+bwd"] = faulting(0.095, 300)  # within 15 % of the parts (86 ms): nothing to say
    assert analysis._whole_slower("norse", timings) == []


def test_launch_bound_needs_call_time_20_percent_above_device_time():
    def kernels(call, device):
        return pooled([call], device=[device], source="kernels")

    found = analysis.launch_bound("x", {"fwd": kernels(0.360, 0.247), "bwd": kernels(0.11, 0.1)})
    (flag,) = found  # 46 % above is launch-bound, 10 % is not
    assert flag.kind == "launch_bound" and flag.subject == "x fwd"
    assert flag.figures["device_s"] == 0.247 and flag.figures["call_s"] == 0.360
    cpu = [1.0]
    assert analysis.launch_bound("x", {"fwd": PhaseTiming(rounds=pooled(cpu).rounds,
                                                          op_fraction=0.9)}) == []  # fmt: skip
    (host,) = analysis.launch_bound("x", {"fwd": PhaseTiming(rounds=pooled(cpu).rounds,
                                                             op_fraction=0.2)})  # fmt: skip
    assert host.kind == "host_bound"


def test_the_two_measures_of_device_time_are_checked_against_each_other():
    def cuda(busy, kernels):
        return pooled(*[[busy * 1.5]] * 3, device=[kernels], busy=busy, source="kernels")

    assert analysis._device_cross_check("x", cuda(1.05e-3, 1e-3)) == []
    assert cuda(1.05e-3, 1e-3).device_s == 1e-3
    (waits,) = analysis._device_cross_check("x", cuda(2e-3, 1e-3))
    assert waits.kind == "device_waits" and "the device waits inside the call" in waits.message
    (overlap,) = analysis._device_cross_check("x", cuda(0.5e-3, 1e-3))
    assert overlap.kind == "kernels_overlap" and "kernels overlap" in overlap.message


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
    document = files.loads(done.stdout)
    (case,) = document.cases
    assert len(case.noise_rounds) == 3  # the machine probed every round
    assert 0 <= document.noise_probe.spread < 10
    return {row.impl: row for row in case.rows}


def test_every_row_is_timed_in_three_interleaved_rounds_in_rotated_order(rows):
    order = {}
    for name, row in rows.items():
        timing = row.timings["fwd"]
        assert len(timing.rounds) == 3
        assert sum(len(r.call.samples_s) for r in timing.rounds) == len(timing.call.samples_s)
        order[name] = [r.started_at for r in timing.rounds]
    names = list(rows)
    for number in range(3):
        started = sorted(names, key=lambda name: order[name][number])
        assert started == names[number:] + names[:number], (number, started)


def test_each_phase_is_warmed_up_until_steady_before_round_1(rows):
    for name, row in rows.items():
        for phase, timing in row.timings.items():
            warm = timing.warm_up
            assert warm is not None and warm.calls >= 10, (name, phase)  # two windows at least
            assert [r.warm_up is None for r in timing.rounds] == [False, True, True]
            assert len(warm.times_s) == warm.calls and warm.seconds == sum(warm.times_s)


def test_a_planted_slowdown_in_one_round_is_flagged(rows):
    drift = rows["planted-drift"]
    medians = [r.call.median_s for r in drift.timings["fwd"].rounds]
    slow = medians[DRIFT_ROUND - 1]
    assert slow > 0.8 * DRIFT_FACTOR * min(medians)
    assert any(flag.kind == "rounds_disagree" and flag.subject == "planted-drift fwd"
               for flag in drift.inconsistent)  # fmt: skip


def test_a_forward_slower_alone_than_with_its_backward_is_flagged(rows):
    stateful = rows["planted-stateful"].timings
    assert stateful["fwd"].device_s >= SLEEP_S > stateful["fwd+bwd"].device_s
    kinds = [flag.kind for flag in rows["planted-stateful"].inconsistent]
    assert "part_slower" in kinds, kinds


def test_a_planted_host_pause_between_tiny_ops_is_host_bound_and_an_honest_loop_is_not(rows):
    bound = {flag.subject: flag for flag in rows["planted-launch-bound"].flags
             if flag.kind in ("host_bound", "launch_bound")}  # fmt: skip
    # the pause is in the forward: fwd and fwd+bwd are bound by it, bwd is not
    assert "planted-launch-bound bwd" not in bound, bound
    fwd = bound["planted-launch-bound fwd"]
    assert fwd.kind == "host_bound" and fwd.figures["call_s"] >= LAUNCH_GAP_S
    assert fwd.figures["in_ops_s"] < 0.5 * fwd.figures["call_s"]
    assert not [f for f in rows["ref-torch"].flags if f.kind in ("host_bound", "launch_bound")]


def test_speedups_carry_intervals_and_call_time_speedups(rows):
    for name, row in rows.items():
        assert row.speedup.low <= row.speedup.value <= row.speedup.high, name
        assert row.speedup_call.value > 0
        for timing in row.timings.values():  # CPU: the host does the work
            assert timing.device_s == timing.call_s == timing.launch_s


@pytest.mark.cuda
def test_a_planted_host_pause_is_launch_bound_on_the_gpu():
    done = run_kernelprof(
        "compare", "--neuron", "lif", "--T", "8", "--N", "65536", "--format", "json",
        "--impls", "ref-torch,planted-launch-bound", "--no-energy", planted=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row.impl: row for row in files.loads(done.stdout).rows}
    bound = {flag.subject: flag for flag in rows["planted-launch-bound"].flags
             if flag.kind == "launch_bound"}  # fmt: skip
    fwd = bound["planted-launch-bound fwd"]
    assert fwd.figures["call_s"] > LAUNCH_GAP_S > 10 * fwd.figures["device_s"]
    timing = rows["planted-launch-bound"].timings["fwd"]
    assert timing.device_source == "kernels"
    assert timing.call.events_busy_median_s < timing.call_s


def counted(medians_ms, faults, system_ms, others=(0.0, 0.0, 0.0)):
    """A phase's three rounds with the host's counters per call."""
    rounds = []
    for number, (ms, fault, system, other) in enumerate(
        zip(medians_ms, faults, system_ms, others, strict=True), start=1
    ):
        samples = tuple(ms / 1e3 * (1 + 0.01 * k) for k in (-1, 0, 1))
        call = Measurement(samples_s=samples, minor_faults_per_call=fault,
                           system_s_per_call=system / 1e3, others_cpu_share=other)  # fmt: skip
        rounds.append(RoundTiming(round=number, started_at=float(number), call=call, device=call,
                                  device_source="host clock", launch_s=ms / 1e3))  # fmt: skip
    return PhaseTiming(rounds=tuple(rounds))


def test_rounds_that_disagree_are_explained_by_the_hosts_counters_where_they_can_be():
    # round 1: 28k faults at 5.3 us each (cold memory the VM's host had to back), later 1.3 us
    cold = analysis.round_disagreement("ref-torch fwd", "fwd",
                                       counted((203.5, 58.9, 57.7), (28e3, 29e3, 25e3),
                                               (148.0, 37.7, 32.5)))  # fmt: skip
    assert cold.kind == "faults" and not cold.inconsistent
    assert "each fault cost more" in cold.message and "5.3 us a fault" in cold.message
    # snnTorch fwd+bwd: more faults a call, and each dearer
    both = analysis.round_disagreement("snntorch fwd+bwd", "fwd+bwd",
                                       counted((181.1, 202.1, 536.5), (57e3, 60e3, 75e3),
                                               (95.8, 100.0, 370.0)))  # fmt: skip
    assert both.kind == "faults" and " and each fault cost more" in both.message
    # ref-torch bwd: 0 or 57k faults a call between rounds (the allocator's state)
    flipped = analysis.round_disagreement("ref-torch bwd", "bwd",
                                          counted((50.1, 62.1, 98.1), (0, 0, 57e3),
                                                  (1.0, 1.2, 80.0)))  # fmt: skip
    assert flipped.kind == "faults" and "more pages first touched" in flipped.message
    # another process on a CPU during the slow round: the machine was busy
    busy = analysis.round_disagreement(
        "x fwd", "fwd", counted((50, 50, 200), (0, 0, 0), (1, 1, 1), (0.0, 0.1, 0.9))
    )
    assert busy.kind == "rounds_disagree" and busy.inconsistent
    assert "the rest of the machine used 90% of a CPU during round 3" in busy.message
    # neither: said as such, and still "busy?"
    unexplained = analysis.round_disagreement("x fwd", "fwd", counted((50, 50, 200), (0, 0, 0),
                                                                      (1, 1, 1)))  # fmt: skip
    assert unexplained.inconsistent
    assert unexplained.message.endswith("(not page faults, not another process)")
    # without the counters (a CUDA row, an older file): the disagreement alone
    bare = pooled([1.0], [1.0], [3.0])
    assert analysis.round_disagreement("x bwd", "bwd", bare).message == (
        "bwd rounds disagree: 1000, 1000, 3000 ms"
    )


def test_a_part_slower_than_the_whole_only_in_rounds_already_explained_is_not_flagged_twice():
    # ref-compile fwd in a make compare on cold memory: 115.6, 145.2 ms at 9.4 us a fault, then
    # 21.8 ms; its fwd+bwd 33.6 ms. The rounds' faults say why; the part is not slower than the
    # whole in its fastest round, so no "fwd alone takes longer" on top
    cold = counted((115.6, 145.2, 21.8), (16386, 16386, 16386), (120.0, 154.0, 30.0))
    timings = {"fwd": cold, "bwd": counted((12.4, 12.6, 12.5), (8193,) * 3, (15.0,) * 3),
               "fwd+bwd": counted((33.6, 33.0, 34.0), (24579,) * 3, (45.0,) * 3)}  # fmt: skip
    kinds = [flag.kind for flag in analysis.inconsistencies("ref-compile", timings)]
    assert kinds == ["faults"], kinds
