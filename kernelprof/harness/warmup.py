"""Warm-up until the call time is steady: a pure rule, with the clock injected.

A worker's first calls of a CPU workload can be several times slower than its steady state
(benchmarks/warmup.py measures why). :func:`warm_up` calls the workload until the median of
its last ``window`` call times differs from the median of the ``window`` calls before them by
at most ``tolerance`` (relative), or a bound (calls, seconds) is hit. ``time_call`` times one
call (the harness's timer in use, or a fake in tests); by default ``time.perf_counter`` around
the call. The seconds bound counts the times ``time_call`` returned, so that the rule is
deterministic under a fake clock.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from kernelprof.results.timing import WarmUp


def _perf_counter_call(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def warm_up(
    fn: Callable[[], object],
    *,
    tolerance: float,
    time_call: Callable[[Callable[[], object]], float] = _perf_counter_call,
    window: int = 5,
    max_calls: int = 60,
    max_s: float = 10.0,
) -> WarmUp:
    """Calls ``fn`` until the median of the last ``window`` call times is within
    ``tolerance`` (relative to the earlier one) of the median of the ``window`` calls before
    them, or ``max_calls`` calls were made, or their times sum to ``max_s`` or more.

    The first comparison is after ``2 * window`` calls, then after every call; ``settled``
    says whether the two windows agreed (a bound that is reached on the very call where they
    agree still counts as settled)."""
    if window < 1:
        raise ValueError("window must be at least 1")
    if tolerance < 0:
        raise ValueError("tolerance must not be negative")
    if max_calls < 1:
        raise ValueError("max_calls must be at least 1")
    times: list[float] = []
    medians: list[float] = []
    settled = False
    while True:
        times.append(time_call(fn))
        if len(times) >= 2 * window:
            latest = statistics.median(times[-window:])
            earlier = statistics.median(times[-2 * window : -window])
            medians.append(latest)
            if abs(latest - earlier) <= tolerance * earlier:
                settled = True
                break
        if len(times) >= max_calls or sum(times) >= max_s:
            break
    return WarmUp(calls=len(times), seconds=sum(times), settled=settled, tolerance=tolerance,
                  medians_s=tuple(medians), times_s=tuple(times))  # fmt: skip
