"""The timing harness's statistics, with an injected clock instead of real time."""

from __future__ import annotations

import time

import pytest
import torch

from kernelprof.harness.timer import HostTimer, measure
from kernelprof.results.timing import Measurement


def messages(measurement: Measurement) -> list[str]:
    return [flag.message for flag in measurement.flags]


class ScriptedClock:
    """A clock that advances by the scripted duration of each call it brackets."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now = 0.0
        self.started = False

    def __call__(self) -> float:
        if self.started:
            self.now += self.durations.pop(0)
        self.started = not self.started
        return self.now


def test_first_call_is_reported_apart_and_excluded_from_statistics():
    # first call 5 s (compilation), estimate 1 ms, then warm-up and measured calls
    durations = [5.0, 1e-3] + [1e-3] * 10 + [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]
    clock = ScriptedClock(durations)
    timer = HostTimer(torch.device("cpu"), clock=clock)
    result = measure(
        lambda: None, timer=timer, warmup_s=10.5e-3, repeat_s=5.5e-3, flush_cache=False,
        adapt_s=0,
    )  # fmt: skip
    assert result.first_call_s == pytest.approx(5.0)
    assert result.samples_s == pytest.approx((1e-3, 2e-3, 3e-3, 4e-3, 5e-3))
    assert result.median_s == pytest.approx(3e-3)
    assert result.iqr_s == pytest.approx(2e-3)


def test_large_spread_warns_and_small_spread_does_not():
    steady = Measurement(samples_s=(1.0, 1.01, 0.99, 1.0, 1.02), label="steady")
    noisy = Measurement(samples_s=(1.0, 2.0, 0.5, 1.5, 3.0), label="noisy")
    assert steady.flags == ()
    (flag,) = noisy.flags
    assert flag.kind == "spread" and "noisy" in flag.message and flag.figures["spread"] > 0.1


def test_call_count_follows_the_time_budget():
    clock = ScriptedClock([1e-3] * 400)
    calls = []
    timer = HostTimer(torch.device("cpu"), clock=clock)
    result = measure(
        lambda: calls.append(1), timer=timer, warmup_s=20.5e-3, repeat_s=100.5e-3, flush_cache=False
    )
    assert len(result.samples_s) == 100
    assert len(calls) == 1 + 1 + 20 + 100


def test_a_large_spread_is_timed_longer_before_it_is_warned_about():
    # 5 noisy calls (IQR 100 % of the median), then steady ones: more calls settle it
    noisy = [1e-3, 2e-3, 1e-3, 2e-3, 3e-3]
    clock = ScriptedClock([1e-3, 1e-3, 1e-3] + noisy + [2e-3] * 40)
    timer = HostTimer(torch.device("cpu"), clock=clock)
    settled = measure(lambda: None, timer=timer, warmup_s=0, repeat_s=5e-3, min_calls=5,
                      adapt_s=60e-3, flush_cache=False)  # fmt: skip
    assert len(settled.samples_s) > 5 and settled.adapted_calls > 0
    assert settled.spread <= 0.10 and settled.flags == ()
    # noisy throughout: it stops when the extra budget (3 x 5 ms) is spent, then warns
    clock = ScriptedClock([1e-3, 1e-3, 1e-3] + noisy * 20)
    timer = HostTimer(torch.device("cpu"), clock=clock)
    unsettled = measure(lambda: None, timer=timer, warmup_s=0, repeat_s=5e-3, min_calls=5,
                        flush_cache=False)  # fmt: skip
    extra = sum(unsettled.samples_s[5:])
    assert 15e-3 - 2 * 3e-3 <= extra <= 15e-3 + 3e-3  # within about a call of the budget
    assert "after timing more calls" in messages(unsettled)[0]


def test_calls_longer_than_the_extra_budget_are_not_added():
    # calls of 10-30 ms, noisy, with 15 ms of extra budget: one more call would not fit twice
    clock = ScriptedClock([20e-3] * 3 + [10e-3, 20e-3, 10e-3, 20e-3, 30e-3] + [20e-3] * 10)
    timer = HostTimer(torch.device("cpu"), clock=clock)
    result = measure(lambda: None, timer=timer, warmup_s=0, repeat_s=5e-3, min_calls=5,
                     adapt_s=15e-3, flush_cache=False)  # fmt: skip
    assert result.adapted_calls == 0 and len(result.samples_s) == 5
    assert [flag.kind for flag in result.flags] == ["spread"]  # and the spread is still reported


def test_real_clock_measures_real_work():
    import time

    result = measure(lambda: time.sleep(0.002), repeat_s=0.03, warmup_s=0.0, flush_cache=False)
    assert 0.002 <= result.median_s < 0.05


def test_work_hidden_from_cuda_events_is_flagged():
    # events saw 0.05 ms, a device-synchronised call took 2 ms: a side stream did the work
    hidden = Measurement(samples_s=(5e-5,) * 5, label="sneaky", host_synced_median_s=2e-3)
    honest = Measurement(samples_s=(2e-3,) * 5, label="honest", host_synced_median_s=2.05e-3)
    assert hidden.hidden_work().kind == "hidden_work"
    assert any("outside the current stream" in w for w in messages(hidden))
    assert honest.flags == ()


def test_launch_bound_calls_are_not_taken_for_hidden_work():
    # as measured on an H200 for ref-triton fwd: the kernel takes 0.144 ms, but Python needs
    # 0.40 ms to launch it, so a synchronised call takes 0.42 ms; nothing is hidden
    figures = {"host_synced_median_s": 0.42e-3, "host_launch_median_s": 0.40e-3}
    assert Measurement(samples_s=(0.144e-3,) * 5, label="launch-bound", **figures).flags == ()
    # the same events and launch, but 3 ms of work the events did not see
    figures = {"host_synced_median_s": 3.4e-3, "host_launch_median_s": 0.40e-3}
    hidden = Measurement(samples_s=(0.144e-3,) * 5, label="hidden", **figures)
    assert any("outside the current stream" in w for w in messages(hidden))


def test_host_timer_reports_the_launch_apart_from_the_wait():
    clock = iter([0.0, 1.0, 3.0, 10.0, 10.5, 14.0]).__next__
    timer = HostTimer(torch.device("cpu"), clock=clock)
    times, launches = timer.time_calls_and_launches(lambda: None, 2, lambda: None)
    assert times == [3.0, 4.0] and launches == [1.0, 0.5]


def test_cuda_graph_replay_needs_a_cuda_device():
    from kernelprof.harness.timer import cuda_graph_replay

    assert cuda_graph_replay(lambda: None, torch.device("cpu")).startswith("n/a: CUDA graphs")


@pytest.mark.cuda
def test_cuda_graph_replay_reproduces_the_work():
    from kernelprof.harness.timer import cuda_graph_replay

    x = torch.ones(1 << 20, device="cuda")
    out = torch.empty_like(x)
    replay = cuda_graph_replay(lambda: torch.mul(x, 2.0, out=out), torch.device("cuda"))
    out.zero_()
    x.fill_(3.0)
    replay()
    torch.cuda.synchronize()
    assert float(out[0]) == 6.0


def test_the_cache_flush_reads_and_says_so():
    """A flush by writing would leave dirty lines whose write-back lands in the timed call."""
    from kernelprof.harness.timer import CPU_FLUSH_BYTES, cache_flusher

    flush = cache_flusher(torch.device("cpu"))
    buffer = flush.__closure__[0].cell_contents
    before = buffer.clone()
    assert int(flush()) == CPU_FLUSH_BYTES // 4  # every element read
    assert torch.equal(buffer, before)  # and none written

    def work():
        time.sleep(0.002)

    timing = measure(work, warmup_s=0.0, repeat_s=0.0)
    assert timing.cache_flush == "read 64 MiB"
    unflushed = measure(work, warmup_s=0.0, repeat_s=0.0, flush_cache=False)
    assert unflushed.cache_flush == "none"


def test_the_cache_flush_allocates_no_copy_of_its_buffer():
    """Summing int32 into int64 (torch's default) copies the buffer first: 128 MiB written per
    flush, which is the very write-back the read flush avoids (and 10x its time)."""
    from torch.profiler import ProfilerActivity, profile

    from kernelprof.harness.timer import cache_flusher

    flush = cache_flusher(torch.device("cpu"))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        flush()
    allocated = sum(max(0, e.cpu_memory_usage) for e in prof.key_averages())
    assert allocated < 2**20, allocated


def test_measurements_taken_apart_merge_into_one_with_every_sample():
    a = Measurement(samples_s=(1.0, 2.0, 3.0), first_call_s=9.0, label="x", adapted_calls=2,
                    minor_faults_per_call=10.0)  # fmt: skip
    b = Measurement(samples_s=(4.0, 5.0), first_call_s=None, label="x", adapted_calls=1,
                    minor_faults_per_call=40.0)  # fmt: skip
    merged = Measurement.merge([a, b])
    assert merged.samples_s == (1.0, 2.0, 3.0, 4.0, 5.0) and merged.median_s == 3.0
    assert merged.first_call_s == 9.0 and merged.adapted_calls == 3
    assert merged.minor_faults_per_call == pytest.approx((3 * 10 + 2 * 40) / 5)
    assert merged.quartiles_s == (2.0, 4.0) and merged.spread == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        Measurement.merge([])


def test_page_faults_are_counted_per_timed_call_on_the_cpu():
    # an anonymous mapping of its own, each page written once: fresh pages every call, whatever
    # the process's allocator keeps (another test may have set mallopt)
    import mmap

    size = 16 * 2**20
    pages = size // mmap.PAGESIZE

    def touch_fresh_memory():
        with mmap.mmap(-1, size) as block:
            block[:: mmap.PAGESIZE] = b"\x01" * pages

    faulting = measure(touch_fresh_memory, warmup_s=0.0, repeat_s=0.02, flush_cache=False)
    quiet = measure(lambda: None, warmup_s=0.0, repeat_s=0.002, flush_cache=False, min_calls=20)
    assert faulting.minor_faults_per_call > 0.9 * pages, faulting.minor_faults_per_call
    assert faulting.system_s_per_call > 0 and quiet.minor_faults_per_call < 0.01 * pages
    assert 0.0 <= faulting.others_cpu_share < 2.5  # at most every other core of this machine
