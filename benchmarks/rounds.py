"""Interleaved rounds for the benchmarks that compare frameworks on a shared, noisy machine.

Each round runs every measurement once, in an order rotated from round to round, so that drift
on the machine lands on every framework alike; ratios are taken within a round and summarised
over rounds (median, and the lowest and highest round).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence


def run_rounds(
    names: Sequence[str], rounds: int, measure: Callable[[str, int], float | None]
) -> list[dict[str, float | None]]:
    """``measure(name, round)`` for every name in every round, the order rotated by one each
    round; returns one {name: seconds or None} per round."""
    results = []
    for index in range(rounds):
        shift = index % len(names)
        order = list(names[shift:]) + list(names[:shift])
        results.append({name: measure(name, index) for name in order})
    return results


def ratios(rounds: list[dict[str, float | None]], baseline: str) -> dict[str, dict]:
    """Per name: its time over the baseline's within each round, then the median, lowest and
    highest over the rounds (None where a round has no figure for either)."""
    summary = {}
    names = {name for result in rounds for name in result}
    for name in sorted(names):
        per_round = [
            result[name] / result[baseline]
            for result in rounds
            if result.get(name) and result.get(baseline)
        ]
        summary[name] = {
            "rounds": per_round,
            "median": statistics.median(per_round) if per_round else None,
            "low": min(per_round, default=None),
            "high": max(per_round, default=None),
        }
    return summary


def describe(entry: dict) -> str:
    if entry["median"] is None:
        return "n/a"
    return f"{entry['median']:.2f}x ({entry['low']:.2f}-{entry['high']:.2f})"


def chosen_frameworks(parser, text: str, known, baseline: str) -> list[str]:
    """The comma list of ``--frameworks``, each from ``known`` and the baseline among them;
    else the parser's usage error."""
    frameworks = [f for f in text.split(",") if f]
    if baseline not in frameworks or any(f not in known for f in frameworks):
        parser.error(f"--frameworks: from {', '.join(known)}, {baseline} included")
    return frameworks
