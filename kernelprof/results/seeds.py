"""The study over its seeds: each column's frameworks summarised across the seeds that trained
them, and the study's three claims judged with tests that see the seeds' spread.

- **Accuracy.** A framework's accuracy in a column is its mean over seeds, with the sample
  standard deviation. "Most accurate" needs a lead the seeds cannot explain: a two-sided Welch
  t-test (unequal variances, :func:`scipy.stats.ttest_ind`) of the leader's seed accuracies
  against the runner-up's (the next by mean), p < 0.05. Where either has one seed, or neither
  varies over its seeds, there is no spread to test against, and the single-run rule applies
  instead: a lead beyond two standard errors of the test accuracy (sqrt(p(1-p)/n) over the n
  test images); the column says which test it used.
- **Speed.** A framework's step time in a column is the median over seeds of each run's median
  training step (the first step left out). Its 95 % interval is a two-level bootstrap: the seeds
  resampled, then each chosen run's steps. "Fastest" needs the runner-up's step time over the
  fastest's to stay above 1 across the whole 95 % interval of that ratio (the two frameworks'
  bootstrap draws taken independently). With one seed the interval sees only the steps of one
  run, not what moves from run to run on a shared machine, so the ratio must also be at least
  ``SINGLE_RUN_MARGIN`` above 1, as for a single run's table.

Cells of different devices are different columns (the device is part of a cell's key): they
are never ranked against each other. Pure functions over records; nothing here measures.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

import numpy as np

from kernelprof.results import analysis
from kernelprof.results.analysis import YARDSTICKS
from kernelprof.results.e2e import ConversionDocument
from kernelprof.results.study import (
    CellRecord,
    ClaimColumn,
    ColumnSeeds,
    FrameworkSeeds,
    SeedsStudy,
    StudyPreset,
)

ALPHA = 0.05  # a lead's two-sided p-value must be below this
DRAWS = 2000  # bootstrap draws for a step time's interval
INTERVAL = (0.025, 0.975)
SINGLE_RUN_MARGIN = 0.05  # one seed: the runner-up must also be this much slower
WELCH = "Welch t-test over seeds"
STANDARD_ERROR = "test-set standard error"
SPEED_TEST = "bootstrap over seeds, then steps"
SPEED_ONE_SEED = f"bootstrap over one run's steps, and a {100 * SINGLE_RUN_MARGIN:.0f} % margin"

WIN = (f"a win counts when it is the only best and its lead over the runner-up has p < {ALPHA} "
       f"in a {WELCH} (with one seed, or no spread over seeds: a lead beyond two standard "
       "errors of the test accuracy)")  # fmt: skip

Runs = dict[str, list[tuple[int, object, object]]]  # framework: [(seed, row, document)]


def summarize(cells: Iterable[CellRecord], preset: StudyPreset) -> SeedsStudy:
    """The study from its finished cells: every column over its seeds, and the claims."""
    cells = list(cells)
    done = [cell for cell in cells if cell.status == "done"]
    groups: dict[tuple, Runs] = {}
    for cell in done:
        key = cell.key
        column = (key.mode, key.dataset, key.model, key.setting, key.neuron, key.device)
        document = cell.direct if key.mode == "direct" else cell.conversion
        for row in document.rows:
            runs = groups.setdefault(column, {})
            runs.setdefault(row.framework, []).append((key.seed, row, document))
    columns, draws = [], []
    for (mode, dataset, model, setting, neuron, device), runs in groups.items():
        found = {name: (_direct if mode == "direct" else _converted)(name, seeds)
                 for name, seeds in runs.items()}  # fmt: skip
        first = next(iter(runs.values()))[0][2]
        columns.append(ColumnSeeds(
            mode=mode, dataset=dataset, model=model, setting=setting, neuron=neuron,
            device=device, T=first.task.T,
            frameworks=tuple(summary for summary, _ in found.values()),
            ann=_ann(runs) if mode == "conversion" else None))  # fmt: skip
        draws.append({name: steps for name, (_, steps) in found.items() if steps is not None})
    direct = [(c, d) for c, d in zip(columns, draws, strict=True) if c.mode == "direct"]
    conversion = [c for c in columns if c.mode == "conversion"]
    claims = analysis.claims(
        [speed_column(c, d) for c, d in direct], [accuracy_column(c) for c, _ in direct],
        [accuracy_column(c) for c in conversion],
        ("median training-step time (forward, backward, optimizer; batch "
         f"{preset.batch_size}) over seeds; a win counts when the runner-up's step time over "
         "the winner's stays above 1 across its 95 % bootstrap interval",
         f"mean test accuracy over seeds; {WIN}",
         f"mean test accuracy of the SNN at T max over seeds; {WIN}"),
        speed_needs_resolved=True)  # fmt: skip
    return SeedsStudy(
        preset=preset, seeds=tuple(sorted({cell.key.seed for cell in done})),
        devices=tuple(dict.fromkeys(cell.key.device for cell in done)),
        commits=tuple(dict.fromkeys(cell.commit for cell in done)), cells=len(done),
        cells_wall_s=sum(cell.wall_s for cell in done), columns=tuple(columns),
        claims=claims)  # fmt: skip


def _outcome(name: str, seeds, figures) -> dict:
    """What every summary has: the framework, and its status where no seed gave a result."""
    ok = [(seed, row) for seed, row, _ in seeds if figures(row) is not None]
    if ok:
        return {"framework": name, "status": "ok", "seeds": len(ok)}
    _, row, _ = seeds[0]
    return {"framework": name, "status": row.status, "reason": row.reason}


def _accuracy(values: Sequence[float]) -> dict:
    return {"accuracies": tuple(values), "accuracy_mean": statistics.fmean(values),
            "accuracy_sd": statistics.stdev(values) if len(values) > 1 else None}  # fmt: skip


def _direct(name: str, seeds) -> tuple[FrameworkSeeds, np.ndarray | None]:
    summary = _outcome(name, seeds, lambda row: row.training)
    trained = [row.training for _, row, _ in seeds if row.training is not None]
    if not trained:
        return FrameworkSeeds(**summary), None
    point, steps = step_draws([t.step_s[1:] or t.step_s for t in trained])
    low, high = np.quantile(steps, INTERVAL)
    return FrameworkSeeds(
        **summary, **_accuracy([t.test_accuracy for t in trained]),
        epochs=max(t.epochs for t in trained),
        time_s=statistics.fmean(sum(t.epoch_s) for t in trained), step_s=point,
        step_low_s=float(low), step_high_s=float(high),
        test_samples=min(t.test_samples for t in trained)), steps  # fmt: skip


def _converted(name: str, seeds) -> tuple[FrameworkSeeds, None]:
    summary = _outcome(name, seeds, lambda row: row.conversion)
    runs = [(row.conversion, document) for _, row, document in seeds if row.conversion]
    if not runs:
        return FrameworkSeeds(**summary), None
    epochs = [c.training.epochs if c.training is not None
              else (d.ann.fit.epochs if d.ann is not None and d.ann.fit is not None else None)
              for c, d in runs]  # fmt: skip
    return FrameworkSeeds(
        **summary, **_accuracy([c.test_accuracy for c, _ in runs]),
        epochs=max((e for e in epochs if e is not None), default=None),
        time_s=statistics.fmean(c.training.train_s if c.training is not None else c.convert_s
                                for c, _ in runs),
        test_samples=min(c.test_samples for c, _ in runs)), None  # fmt: skip


def _ann(runs: Runs) -> FrameworkSeeds | None:
    """Conversion's ANN over seeds: each seed's cells train the same ANN (same seed, same
    data), so one per seed is counted."""
    by_seed: dict[int, ConversionDocument] = {}
    for seeds in runs.values():
        for seed, _, document in seeds:
            by_seed.setdefault(seed, document)
    anns = [d.ann for _, d in sorted(by_seed.items()) if d.ann is not None]
    ok = [ann for ann in anns if ann.status == "ok" and ann.test_accuracy is not None]
    if not ok:
        return None if not anns else FrameworkSeeds(framework="ANN", status=anns[0].status,
                                                    reason=anns[0].reason)  # fmt: skip
    return FrameworkSeeds(
        framework="ANN", status="ok", seeds=len(ok), **_accuracy([a.test_accuracy for a in ok]),
        epochs=max(a.fit.epochs for a in ok),
        time_s=statistics.fmean(sum(a.fit.epoch_s) for a in ok))  # fmt: skip


def step_draws(runs: Sequence[Sequence[float]], seed: int = 0) -> tuple[float, np.ndarray]:
    """The median over runs of each run's median step, and ``DRAWS`` bootstrap draws of it:
    each draw picks as many runs as there are, with replacement, and resamples each picked
    run's steps."""
    rng = np.random.default_rng(seed)
    per_run = np.empty((len(runs), DRAWS))
    for number, steps in enumerate(runs):
        values = np.asarray(steps, dtype=float)
        picks = rng.integers(0, len(values), size=(DRAWS, len(values)))
        per_run[number] = np.median(values[picks], axis=1)
    chosen = rng.integers(0, len(runs), size=(DRAWS, len(runs)))
    draws = np.median(per_run[chosen, np.arange(DRAWS)[:, None]], axis=1)
    point = statistics.median(statistics.median(steps) for steps in runs)
    return float(point), draws


def _contenders(column: ColumnSeeds) -> list[FrameworkSeeds]:
    return [f for f in column.frameworks
            if f.status == "ok" and f.framework not in YARDSTICKS]  # fmt: skip


def speed_column(column: ColumnSeeds, draws: dict[str, np.ndarray]) -> ClaimColumn:
    """The fastest framework of a direct column by median step time over seeds, and whether
    the runner-up's ratio to it stays above 1 across its 95 % interval."""
    ranked = sorted((f for f in _contenders(column) if f.step_s is not None),
                    key=lambda f: f.step_s)  # fmt: skip
    if not ranked:
        return ClaimColumn(column=column.name, setting=column.setting, test=SPEED_TEST)
    fastest, seeds = ranked[0], min(f.seeds for f in ranked)
    sj = next((f for f in ranked if f.framework == "spikingjelly"), None)
    steps = {f.framework: f.step_s for f in ranked}
    if len(ranked) == 1:
        return ClaimColumn(column=column.name, setting=column.setting, fastest=fastest.framework,
                           spikingjelly_over_fastest=None if sj is None else 1.0, seeds=seeds,
                           test=SPEED_TEST, step_s=steps)  # fmt: skip
    runner = ranked[1]
    ratio = runner.step_s / fastest.step_s
    low, high = (float(q) for q in np.quantile(draws[runner.framework] / draws[fastest.framework],
                                               INTERVAL))  # fmt: skip
    margin = 1.0 if seeds >= 2 else 1.0 + SINGLE_RUN_MARGIN
    return ClaimColumn(
        column=column.name, setting=column.setting, fastest=fastest.framework,
        spikingjelly_over_fastest=None if sj is None else sj.step_s / fastest.step_s,
        runner_up=runner.framework, runner_up_over_fastest=ratio,
        runner_up_interval=(low, high), resolved=low > 1.0 and ratio >= margin, seeds=seeds,
        test=SPEED_TEST if seeds >= 2 else SPEED_ONE_SEED, step_s=steps)  # fmt: skip


def welch_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The two-sided p-value of a Welch t-test of ``a`` against ``b``; None where it cannot be
    taken (fewer than two values in either, or no spread in both)."""
    if len(a) < 2 or len(b) < 2 or (statistics.stdev(a) == 0 and statistics.stdev(b) == 0):
        return None
    from scipy.stats import ttest_ind

    return float(ttest_ind(a, b, equal_var=False).pvalue)


def _welch(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, str]:
    """:func:`welch_p` and the name of the test, or why it was not taken (scipy missing)."""
    try:
        return welch_p(a, b), WELCH
    except ImportError as error:
        return None, f"{STANDARD_ERROR} ({WELCH} unavailable: {error})"


def accuracy_column(column: ColumnSeeds) -> ClaimColumn:
    """The most accurate framework(s) of a column by mean over seeds (all tied at the top),
    the lead over the next, and whether a Welch t-test over seeds (else, the test set's
    standard error) resolves it."""
    found = sorted(_contenders(column), key=lambda f: -f.accuracy_mean)
    base = dict(column=column.name, setting=column.setting if column.mode == "direct" else None,
                T=None if column.mode == "direct" else column.T)  # fmt: skip
    if not found:
        return ClaimColumn(**base, test=WELCH)
    top = found[0].accuracy_mean
    best = tuple(f.framework for f in found if f.accuracy_mean == top)
    runner = next((f for f in found if f.accuracy_mean < top), None)
    figures = dict(best=best, seeds=min(f.seeds for f in found),
                   accuracy={f.framework: f.accuracy_mean for f in found},
                   accuracy_sd={f.framework: f.accuracy_sd for f in found
                                if f.accuracy_sd is not None})  # fmt: skip
    samples = found[0].test_samples
    error = math.sqrt(top * (1 - top) / samples) if samples else None
    if runner is None:
        return ClaimColumn(
            **base,
            **figures,
            test=STANDARD_ERROR,
            standard_error_points=None if error is None else 100 * error,
        )
    lead = top - runner.accuracy_mean
    p, test = _welch(found[0].accuracies, runner.accuracies)
    if p is not None:
        resolved = len(best) == 1 and p < ALPHA
    else:
        resolved = len(best) == 1 and error is not None and lead > 2 * error
        test = STANDARD_ERROR if test == WELCH else test
    return ClaimColumn(**base, **figures, runner_up=runner.framework, lead_points=100 * lead,
                       standard_error_points=None if error is None else 100 * error,
                       p_value=p, test=test, resolved=resolved)  # fmt: skip
