"""The study over its seeds: accuracy as mean and spread, a lead judged by a Welch t-test over
seeds (the test-set standard error with one seed), the fastest by median step time with a
bootstrap interval, cells of different devices never ranked together."""

from __future__ import annotations

import dataclasses
import statistics

import numpy as np
import pytest

from kernelprof.results.seeds import (
    STANDARD_ERROR,
    WELCH,
    step_draws,
    summarize,
    welch_p,
)
from kernelprof.results.study import CellKey, CellRecord, StudyPreset
from tests.documents import e2e_document

PRESET = StudyPreset(name="test", datasets=("digits",), models=("cnn",), epochs=1, T=8,
                     conversion_T=32)  # fmt: skip


def cells(accuracy: dict[str, list[float]], steps: dict[str, list[float]] | None = None,
          device: str = "cpu: x86_64") -> list[CellRecord]:  # fmt: skip
    """One direct cell per framework and seed, with the given accuracies (and, per seed, a
    run's steps all at the given time plus a little scatter)."""
    whole = e2e_document()
    found = []
    for framework, values in accuracy.items():
        row = next(r for r in whole.rows if r.framework == framework)
        for seed, value in enumerate(values):
            step = (steps or {}).get(framework, [0.02] * len(values))[seed]
            scatter = tuple(step * (1 + 0.001 * (i % 5)) for i in range(40))
            median = statistics.median(scatter[1:])
            training = dataclasses.replace(row.training, test_accuracy=value, step_s=scatter,
                                           step_median_s=median)  # fmt: skip
            one = dataclasses.replace(whole, rows=(dataclasses.replace(row, training=training),))
            found.append(CellRecord(key=CellKey(framework=framework, dataset="digits",
                                                model="cnn", mode="direct", setting="canonical",
                                                seed=seed, device=device),
                                    status="done", direct=one, wall_s=1.0))  # fmt: skip
    return found


def claim(study, number: int):
    (column,) = study.claims[number].columns
    return column


def test_welch_p_matches_r_and_refuses_what_cannot_be_tested():
    # R: t.test(c(1, 2, 3), c(4, 5, 6)) -> t = -3.6742, df = 4, p-value = 0.02131
    assert welch_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.02131, abs=5e-5)
    assert welch_p([1.0], [2.0, 3.0]) is None  # one value: no spread to test against
    assert welch_p([1.0, 1.0], [2.0, 2.0]) is None


def test_a_lead_beyond_the_seeds_spread_is_resolved_and_one_within_it_is_not():
    clear = summarize(
        cells({"spikingjelly": [0.95, 0.951, 0.949], "snntorch": [0.90, 0.902, 0.898]}), PRESET
    )
    column = claim(clear, 1)
    assert column.best == ("spikingjelly",) and column.runner_up == "snntorch"
    assert column.test == WELCH and column.p_value < 0.05 and column.resolved
    assert column.seeds == 3 and column.lead_points == pytest.approx(5.0)
    assert column.accuracy_sd["spikingjelly"] == pytest.approx(0.001)
    assert clear.claims[1].reproduced
    # the same mean lead, but the seeds scatter more than it
    noisy = summarize(cells({"spikingjelly": [0.99, 0.90, 0.96], "snntorch": [0.97, 0.88, 0.9]}),
                      PRESET)  # fmt: skip
    column = claim(noisy, 1)
    assert column.best == ("spikingjelly",) and column.test == WELCH
    assert column.p_value > 0.05 and not column.resolved and not noisy.claims[1].reproduced


def test_one_seed_falls_back_to_the_test_sets_standard_error():
    study = summarize(cells({"spikingjelly": [0.95], "snntorch": [0.90]}), PRESET)
    column = claim(study, 1)
    assert column.test == STANDARD_ERROR and column.p_value is None and column.seeds == 1
    samples = e2e_document().rows[0].training.test_samples
    assert column.standard_error_points == pytest.approx(100 * (0.95 * 0.05 / samples) ** 0.5)
    assert column.resolved == (2 * column.standard_error_points < 5.0)


def test_the_fastest_needs_the_runner_ups_ratio_above_one_across_its_interval():
    apart = summarize(cells({"spikingjelly": [0.9] * 3, "snntorch": [0.9] * 3},
                            steps={"spikingjelly": [0.020, 0.021, 0.019],
                                   "snntorch": [0.030, 0.031, 0.029]}), PRESET)  # fmt: skip
    column = claim(apart, 0)
    assert column.fastest == "spikingjelly" and column.runner_up == "snntorch"
    assert column.runner_up_over_fastest == pytest.approx(1.5)
    low, high = column.runner_up_interval
    assert 1 < low <= 1.5 <= high and column.resolved and apart.claims[0].reproduced
    # runs that swap places from seed to seed: no verdict
    mixed = summarize(cells({"spikingjelly": [0.9] * 3, "snntorch": [0.9] * 3},
                            steps={"spikingjelly": [0.020, 0.030, 0.021],
                                   "snntorch": [0.029, 0.021, 0.022]}), PRESET)  # fmt: skip
    column = claim(mixed, 0)
    assert column.runner_up_interval[0] < 1 and not column.resolved


def test_step_draws_median_of_medians_and_an_interval_around_it():
    runs = [[0.010] * 9 + [0.5], [0.012] * 10, [0.011] * 10]  # one slow outlier step
    point, draws = step_draws(runs)
    assert point == pytest.approx(0.011)
    assert len(draws) > 100 and 0.010 <= np.quantile(draws, 0.025) <= point
    assert np.quantile(draws, 0.975) <= 0.012


def test_frameworks_summarised_with_their_seeds_and_epochs():
    study = summarize(cells({"spikingjelly": [0.9, 0.8], "snntorch": [0.7]}), PRESET)
    (column,) = study.columns
    by_name = {f.framework: f for f in column.frameworks}
    assert by_name["spikingjelly"].seeds == 2 and by_name["snntorch"].seeds == 1
    assert by_name["spikingjelly"].accuracy_mean == pytest.approx(0.85)
    assert by_name["spikingjelly"].epochs == 1 and by_name["snntorch"].accuracy_sd is None
    assert study.seeds == (0, 1) and study.cells == 3 and study.cells_wall_s == 3.0


def test_cells_on_different_devices_are_never_ranked_together():
    mixed = cells({"spikingjelly": [0.95] * 2}, device="cuda: NVIDIA H100") + cells(
        {"snntorch": [0.90] * 2}, device="cpu: x86_64"
    )
    study = summarize(mixed, PRESET)
    assert len(study.columns) == 2 and set(study.devices) == {"cuda: NVIDIA H100", "cpu: x86_64"}
    assert all(len(column.frameworks) == 1 for column in study.columns)
    assert all(c.runner_up is None for c in study.claims[1].columns)


def test_without_scipy_the_welch_test_is_said_unavailable_and_the_single_run_rule_applies(
        monkeypatch):  # fmt: skip
    import builtins

    real = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError("No module named 'scipy'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    study = summarize(cells({"spikingjelly": [0.95, 0.951], "snntorch": [0.90, 0.902]}), PRESET)
    column = claim(study, 1)
    assert column.p_value is None and "Welch t-test over seeds unavailable" in column.test
    assert column.test.startswith(STANDARD_ERROR) and column.resolved  # 5 points >> 2 SE


def test_a_tie_at_the_top_is_never_a_win_and_is_said():
    from kernelprof.present.study import claim_lines

    study = summarize(cells({"spikingjelly": [0.95, 0.96], "snntorch": [0.95, 0.96],
                             "reference": [0.5, 0.6]}), PRESET)  # fmt: skip
    column = claim(study, 1)
    assert column.best == ("spikingjelly", "snntorch") and not column.resolved
    (line,) = [line for line in claim_lines(study.claims) if "most accurate spikingjelly" in line]
    assert "not resolved, tied at the top" in line
