"""The warm-up rule (kernelprof.harness.warmup) under a fake clock: scripted call times."""

from __future__ import annotations

import pytest

from kernelprof.harness.warmup import warm_up


def scripted(times):
    """A fake ``time_call``: each call of the workload "takes" the next scripted time; it also
    counts how often the workload itself was called."""
    feed = iter(times)
    called = []

    def time_call(fn):
        fn()
        return next(feed)

    return time_call, (lambda: called.append(1)), called


def test_steady_from_the_start_settles_after_two_windows():
    time_call, fn, called = scripted([1.0] * 100)
    result = warm_up(fn, time_call=time_call, tolerance=0.05, window=5)
    assert (result.calls, result.settled, len(called)) == (10, True, 10)
    assert result.seconds == pytest.approx(10.0)
    assert result.medians_s == (1.0,)


def test_slow_first_calls_keep_it_going_until_two_windows_agree():
    # four slow calls (a worker's first calls: page faults, lazy set-up), then steady
    times = [4.0, 3.0, 3.0, 2.0] + [1.0] * 50
    time_call, fn, _ = scripted(times)
    result = warm_up(fn, time_call=time_call, tolerance=0.05, window=3, max_s=1e9)
    # windows of 3: calls 4-6 against 1-3 (medians 1 and 3), 5-7 against 2-4 (1 and 3), 6-8
    # against 3-5 (1 and 2) differ; 7-9 against 4-6 (1 and 1) agree: settled at the 9th call
    assert result.settled and result.calls == 9
    assert result.seconds == pytest.approx(4 + 3 + 3 + 2 + 5 * 1.0)
    assert result.medians_s == (1.0, 1.0, 1.0, 1.0)
    assert result.times_s == tuple(times[:9])


def test_a_slow_drift_is_followed_until_it_stops():
    # each call 10 % faster than the one before for 20 calls, then steady
    times = [2.0 * 0.9**i for i in range(20)] + [2.0 * 0.9**19] * 40
    time_call, fn, _ = scripted(times)
    result = warm_up(fn, time_call=time_call, tolerance=0.05, window=5, max_calls=100,
                     max_s=1e9)  # fmt: skip
    assert result.settled
    # a 10 % per call drift moves the median of 5 by 1 - 0.9**5 = 41 % between windows: never
    # within 5 % while it lasts. At call k the medians are calls k-2 and k-7; they agree once
    # call k-7 lies past the drift (call 20): k = 27
    assert result.calls == 27


def test_the_call_bound_ends_an_unsteady_warm_up():
    times = [1.0, 2.0] * 100  # alternating: medians of 3 alternate between 1 and 2
    time_call, fn, called = scripted(times)
    result = warm_up(fn, time_call=time_call, tolerance=0.05, window=3, max_calls=12, max_s=1e9)
    assert not result.settled
    assert result.calls == 12 == len(called)


def test_the_time_bound_ends_a_slow_warm_up():
    times = [1.0 + i for i in range(100)]  # ever slower: never steady
    time_call, fn, _ = scripted(times)
    result = warm_up(fn, time_call=time_call, tolerance=0.05, window=2, max_calls=100, max_s=10.0)
    # 1 + 2 + 3 + 4 = 10 reaches the bound after the 4th call
    assert not result.settled
    assert (result.calls, result.seconds) == (4, pytest.approx(10.0))


def test_tolerance_is_relative_to_the_earlier_window():
    # earlier window median 1.0, later 1.08: within 10 %, not within 5 %
    times = [1.0] * 3 + [1.08] * 3 + [5.0] * 100
    loose = warm_up(lambda: None, time_call=scripted(times)[0], tolerance=0.10, window=3)
    assert loose.settled and loose.calls == 6
    strict = warm_up(lambda: None, time_call=scripted(times)[0], tolerance=0.05, window=3,
                     max_calls=7)  # fmt: skip
    assert not strict.settled and strict.calls == 7


def test_settled_on_the_last_allowed_call_counts_as_settled():
    time_call, fn, _ = scripted([1.0] * 10)
    result = warm_up(fn, time_call=time_call, tolerance=0.0, window=5, max_calls=10)
    assert result.settled and result.calls == 10


def test_the_default_clock_times_the_real_call():
    called = []
    result = warm_up(lambda: called.append(1), tolerance=10.0, window=1, max_calls=5)
    # window 1: the 2nd call is compared with the 1st; a tolerance of 1000 % always agrees
    assert result.settled and result.calls == 2 == len(called)
    assert all(t >= 0 for t in result.times_s)


@pytest.mark.parametrize("bad", [dict(window=0), dict(tolerance=-0.1), dict(max_calls=0)])
def test_bad_parameters_are_refused(bad):
    (name,) = bad
    called = []
    with pytest.raises(ValueError, match=name):
        warm_up(lambda: called.append(1), **{"tolerance": 0.05, **bad})
    assert not called  # refused before any call
