"""The energy harness: its arithmetic against a counter replaying scripted power on a fake clock,
RAPL wrap-around over a fake sysfs tree, NVML device matching over a fake NVML, and the "n/a"
reasons on a machine without the counters."""

from __future__ import annotations

import sys
import time
import types

import pytest
import torch

from kernelprof.harness import energy
from kernelprof.harness.energy import (
    CounterUnavailable,
    NvmlEnergyCounter,
    NvmlPowerSamplingCounter,
    RaplCounter,
    energy_counter,
    measure_energy,
)
from kernelprof.present.tables import energy_line
from kernelprof.results.energy import EnergyMeasurement
from kernelprof.results.record import encode

IDLE_WATTS = 70.0
WORKLOAD_WATTS = 230.0
CALL_S = 2**-10  # a power of two, so the fake clock adds up exactly


class ReplayingPower:
    """A fake clock and the energy counter that integrates a scripted power over it.

    The power is ``base_watts`` at all times, plus whatever a call adds while it "runs".
    """

    def __init__(self, base_watts: float = IDLE_WATTS, update_period_s: float = 1e-3):
        self.base_watts = base_watts
        self.now = 0.0
        self.joules = 0.0
        self.name = "replaying counter"
        self.update_period_s = update_period_s
        self.slept_s = 0.0
        self.calls = 0
        self.synchronized = 0

    def advance(self, seconds: float, extra_watts: float = 0.0) -> None:
        self.joules += (self.base_watts + extra_watts) * seconds
        self.now += seconds

    # the injected hooks
    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept_s += seconds
        self.advance(seconds)

    def synchronize(self) -> None:
        self.synchronized += 1

    def read_joules(self) -> float:
        return self.joules

    def workload(self, extra_watts: float = WORKLOAD_WATTS, seconds: float = CALL_S):
        def call() -> None:
            self.calls += 1
            self.advance(seconds, extra_watts)

        return call


def measure_replayed(power: ReplayingPower, fn=None, **options) -> EnergyMeasurement:
    options = {"min_window_s": 0.25, "windows": 3, "idle_s": 0.5, **options}
    return measure_energy(
        fn or power.workload(),
        counter=power,
        clock=power.clock,
        sleep=power.sleep,
        synchronize=power.synchronize,
        **options,
    )


# --- arithmetic ----------------------------------------------------------------------------


def test_energy_per_call_is_the_power_above_idle_times_the_call_duration():
    power = ReplayingPower()
    result = measure_replayed(power)
    assert result.joules_per_unit == pytest.approx(WORKLOAD_WATTS * CALL_S, rel=1e-9)
    for value in result.window_joules_per_unit:
        assert value == pytest.approx(WORKLOAD_WATTS * CALL_S, rel=1e-9)
    assert result.idle_watts == pytest.approx(IDLE_WATTS, rel=1e-12)
    assert result.flags == ()
    assert result.counter == "replaying counter" and result.unit == "call"


def test_raw_window_energy_includes_idle_and_the_result_subtracts_it():
    power = ReplayingPower()
    result = measure_replayed(power)
    for raw, seconds, calls in zip(
        result.window_raw_joules, result.window_seconds, result.window_units, strict=True
    ):
        assert raw == pytest.approx((IDLE_WATTS + WORKLOAD_WATTS) * seconds, rel=1e-12)
        assert seconds == pytest.approx(calls * CALL_S, rel=1e-12)


@pytest.mark.parametrize(
    ("min_window_s", "expected_calls"),
    [(0.25, 256), (0.3, 308), (CALL_S / 2, 1), (1.0, 1024)],
)
def test_calls_per_window_follow_min_window_s(min_window_s, expected_calls):
    # a window ends at the first call that brings it to min_window_s: ceil(window / call), >= 1
    power = ReplayingPower()
    result = measure_replayed(power, min_window_s=min_window_s, windows=2, warmup_calls=1)
    assert result.window_units == (expected_calls, expected_calls)
    assert power.calls == 1 + 2 * expected_calls


@pytest.mark.parametrize("windows", [1, 3, 5])
def test_window_count_is_honoured_and_the_device_synchronised_at_every_edge(windows):
    power = ReplayingPower()
    result = measure_replayed(power, windows=windows)
    assert len(result.window_joules_per_unit) == windows
    assert len(result.window_seconds) == windows
    assert power.synchronized == 2 * (windows + 1)  # the idle window and each measured window


def test_without_a_synchronize_hook_the_device_is_synchronised(monkeypatch):
    # the default hook synchronises the measured device (it used to call itself, a TypeError)
    devices = []
    monkeypatch.setattr(energy, "synchronize_device", devices.append)
    power = ReplayingPower()
    result = measure_energy(
        power.workload(), counter=power, clock=power.clock, sleep=power.sleep,
        min_window_s=0.25, windows=2, idle_s=0.5, device="cpu",
    )  # fmt: skip
    assert result.joules_per_unit == pytest.approx(WORKLOAD_WATTS * CALL_S, rel=1e-9)
    assert devices == [torch.device("cpu")] * (2 * (2 + 1))


def test_the_median_window_is_reported():
    power = ReplayingPower()
    extra = iter([100.0] * 256 + [300.0] * 256 + [200.0] * 256)

    def varying() -> None:
        power.advance(CALL_S, next(extra))

    result = measure_replayed(power, fn=varying, warmup_calls=0)
    assert result.window_joules_per_unit == pytest.approx(
        (100.0 * CALL_S, 300.0 * CALL_S, 200.0 * CALL_S), rel=1e-9
    )
    assert result.joules_per_unit == pytest.approx(200.0 * CALL_S, rel=1e-9)
    assert result.joules_range == pytest.approx((100.0 * CALL_S, 300.0 * CALL_S))


def test_idle_is_measured_asleep_before_any_call_over_several_counter_updates():
    power = ReplayingPower(update_period_s=0.2)
    first_call_at = []

    def call() -> None:
        first_call_at.append(power.now)
        power.advance(CALL_S, WORKLOAD_WATTS)

    measure_replayed(power, fn=call, idle_s=0.1, min_window_s=2.0, windows=1)
    # idle_s = 0.1 s is stretched to 5 updates of 0.2 s, all spent asleep, before the first call
    assert power.slept_s == pytest.approx(1.0)
    assert first_call_at[0] == pytest.approx(1.0)


def test_warmup_calls_stay_out_of_the_windows():
    power = ReplayingPower()
    first = [True]

    def compiling_then_fast() -> None:
        if first[0]:
            first[0] = False
            power.advance(5.0, 1000.0)  # a compilation: long and power-hungry
        else:
            power.advance(CALL_S, WORKLOAD_WATTS)

    result = measure_replayed(power, fn=compiling_then_fast, warmup_calls=1)
    assert result.joules_per_unit == pytest.approx(WORKLOAD_WATTS * CALL_S, rel=1e-9)


# --- warnings ------------------------------------------------------------------------------


def test_a_window_shorter_than_ten_counter_updates_warns():
    short = measure_replayed(ReplayingPower(update_period_s=0.05), min_window_s=0.25)
    long_enough = measure_replayed(ReplayingPower(update_period_s=0.02), min_window_s=0.25)
    assert len(short.flags) == 3 and {flag.kind for flag in short.flags} == {"energy"}
    assert all("under 10 updates" in flag.message for flag in short.flags)
    assert long_enough.flags == ()


def test_energy_below_idle_warns():
    power = ReplayingPower()
    result = measure_replayed(power, fn=power.workload(extra_watts=-10.0))
    assert result.joules_per_unit < 0
    assert len(result.flags) == 3
    assert all("not resolved above idle" in flag.message for flag in result.flags)


def test_energy_under_five_percent_of_raw_warns_and_above_does_not():
    barely = ReplayingPower()
    barely_result = measure_replayed(barely, fn=barely.workload(extra_watts=3.0))  # 3/73 = 4 %
    clear = ReplayingPower()
    clear_result = measure_replayed(clear, fn=clear.workload(extra_watts=4.0))  # 4/74 = 5.4 %
    assert len(barely_result.flags) == 3
    assert all("too small to resolve" in flag.message for flag in barely_result.flags)
    assert clear_result.flags == ()


def test_a_counter_that_does_not_move_during_idle_warns_instead_of_dividing():
    power = ReplayingPower(base_watts=0.0)
    result = measure_replayed(power)
    assert result.idle_watts == 0.0
    assert any("did not advance during" in flag.message for flag in result.flags)
    assert result.joules_per_unit == pytest.approx(WORKLOAD_WATTS * CALL_S, rel=1e-9)


# --- the result ----------------------------------------------------------------------------


def test_an_unavailable_counter_gives_a_reason_and_never_calls_the_workload():
    calls = []
    result = measure_energy(
        lambda: calls.append(1), counter="n/a: NVML unavailable (NVMLError_LibraryNotFound: x)"
    )
    assert calls == []
    assert not result.available
    assert result.joules_per_unit is None
    assert energy_line(result) == "energy: n/a: NVML unavailable (NVMLError_LibraryNotFound: x)"
    assert encode(result)["unavailable_reason"].startswith("n/a: NVML unavailable")
    assert EnergyMeasurement.unavailable("no counter").unavailable_reason == "n/a: no counter"


def test_the_line_and_the_record_carry_the_figures():
    power = ReplayingPower()
    result = measure_replayed(power, label="lif fwd+bwd")
    text = energy_line(result)
    assert text.startswith("energy: 225 mJ/call (windows 225 mJ..225 mJ; 3 x 0.25 s, ~256 calls")
    assert "idle 70.0 W subtracted" in text
    assert "replaying counter" in text
    record = encode(result)
    assert record["label"] == "lif fwd+bwd"
    assert record["window_units"] == [256, 256, 256]
    assert record["joules_per_unit"] == pytest.approx(WORKLOAD_WATTS * CALL_S, rel=1e-9)


def test_bad_options_are_refused():
    power = ReplayingPower()
    with pytest.raises(ValueError, match="windows"):
        measure_replayed(power, windows=0)
    with pytest.raises(ValueError, match="min_window_s"):
        measure_replayed(power, min_window_s=0.0)


# --- RAPL ----------------------------------------------------------------------------------


def make_zone(root, zone: str, name: str, energy_uj: int, max_uj: int = 262_143_328_850):
    path = root / zone
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def test_rapl_wrap_around_is_undone(tmp_path):
    zone = make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=990_000, max_uj=1_000_000)
    counter = RaplCounter(root=tmp_path)
    assert counter.name == "RAPL package-0"
    assert counter.read_joules() == pytest.approx(0.99)
    (zone / "energy_uj").write_text("5000\n")  # wrapped: 10_000 uJ to the top, then 5_000
    assert counter.read_joules() == pytest.approx(1.005)
    (zone / "energy_uj").write_text("995000\n")
    assert counter.read_joules() == pytest.approx(1.995)
    (zone / "energy_uj").write_text("1000\n")  # wrapped again
    assert counter.read_joules() == pytest.approx(2.001)


def test_rapl_sums_packages_and_ignores_subzones_psys_and_mmio(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", energy_uj=1_000_000)
    make_zone(tmp_path, "intel-rapl:0:0", "core", energy_uj=500_000)
    make_zone(tmp_path, "intel-rapl:1", "package-1", energy_uj=2_000_000)
    make_zone(tmp_path, "intel-rapl:2", "psys", energy_uj=9_000_000)
    make_zone(tmp_path, "intel-rapl-mmio:0", "package-0", energy_uj=7_000_000)
    counter = RaplCounter(root=tmp_path)
    assert counter.name == "RAPL package-0 + package-1"
    assert counter.read_joules() == pytest.approx(3.0)


def test_rapl_absent_or_unreadable_gives_the_reason(tmp_path):
    with pytest.raises(CounterUnavailable, match="not present"):
        RaplCounter(root=tmp_path / "missing")
    assert energy._rapl_counter(tmp_path / "missing") == (
        f"n/a: no RAPL counter readable ({tmp_path / 'missing'}: not present)"
    )
    assert "no intel-rapl zones" in energy._rapl_counter(tmp_path)

    # an unreadable energy_uj (a directory here: the tests may run as root, where chmod
    # cannot make a file unreadable) keeps the operating system's words
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("1000\n")
    (zone / "energy_uj").mkdir()
    reason = energy._rapl_counter(tmp_path)
    assert reason.startswith("n/a: no RAPL counter readable (")
    assert "energy_uj: Is a directory" in reason


# --- NVML, faked ---------------------------------------------------------------------------


class FakeNvmlError(Exception):
    def __init__(self, value: int, text: str = "fake error"):
        super().__init__(text)
        self.value = value


def fake_nvml(bus_ids, *, energy_mj=123_456, energy_supported=True, init_error=None):
    """A stand-in for the pynvml module with GPUs at the given PCI buses (domain 0, device 0)."""
    module = types.SimpleNamespace(NVMLError=FakeNvmlError, NVML_ERROR_NOT_SUPPORTED=3)
    module.energy_reads = []

    def init():
        if init_error is not None:
            raise init_error

    def total_energy(handle):
        if not energy_supported:
            raise FakeNvmlError(3, "Not Supported")
        module.energy_reads.append(handle)
        return energy_mj

    module.nvmlInit = init
    module.nvmlDeviceGetCount = lambda: len(bus_ids)
    module.nvmlDeviceGetHandleByIndex = lambda index: f"handle-{index}"
    module.nvmlDeviceGetPciInfo = lambda handle: types.SimpleNamespace(
        domain=0, bus=bus_ids[int(handle.split("-")[1])], device=0
    )
    module.nvmlDeviceGetTotalEnergyConsumption = total_energy
    module.nvmlDeviceGetPowerUsage = lambda handle: 150_000  # mW
    return module


@pytest.fixture
def one_visible_gpu(monkeypatch):
    """torch sees one GPU, cuda:0, at PCI bus 0x3b (NVML lists it second, after bus 0x1a)."""
    properties = types.SimpleNamespace(
        pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0, name="Fake GPU"
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: properties)


def test_nvml_counter_is_the_gpu_at_torchs_pci_address(monkeypatch, one_visible_gpu):
    nvml = fake_nvml([0x1A, 0x3B])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    counter = energy_counter(torch.device("cuda"))
    assert isinstance(counter, NvmlEnergyCounter)
    assert counter.name == "NVML total-energy counter (cuda:0 = NVML GPU 1, Fake GPU)"
    assert counter.read_joules() == pytest.approx(123.456)
    assert nvml.energy_reads[-1] == "handle-1"


def test_nvml_without_the_gpu_or_without_the_library_says_why(monkeypatch, one_visible_gpu):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([0x1A]))
    assert energy_counter("cuda:0") == (
        "n/a: no NVML GPU at PCI 0000:3b:00.0, where torch has cuda:0"
    )
    error = FakeNvmlError(12, "NVML Shared Library Not Found")
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([0x3B], init_error=error))
    assert energy_counter("cuda:0") == (
        "n/a: NVML unavailable (FakeNvmlError: NVML Shared Library Not Found)"
    )


def test_nvml_power_fallback_is_labelled_as_one(monkeypatch, one_visible_gpu):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([0x3B], energy_supported=False))
    counter = energy_counter("cuda")
    try:
        assert isinstance(counter, NvmlPowerSamplingCounter)
        assert "FALLBACK" in counter.name and "not supported" in counter.name
        assert counter.update_period_s >= 1.0  # so that 1 s windows are warned about
    finally:
        counter.close()


def test_power_sampling_integrates_power_over_real_time():
    before = time.perf_counter()
    counter = NvmlPowerSamplingCounter("handle", name="sampled", nvml=fake_nvml([0]))
    after = time.perf_counter()
    try:
        time.sleep(0.15)
        read_from = time.perf_counter()
        joules = counter.read_joules()
        read_until = time.perf_counter()
    finally:
        counter.close()
    # a constant 150 W integrates to 150 W x the time since the counter started
    assert 150.0 * (read_from - after) <= joules <= 150.0 * (read_until - before)


def test_nvml_energy_counter_reads_millijoules_as_joules():
    counter = NvmlEnergyCounter("h", name="n", nvml=fake_nvml([0], energy_mj=2_500))
    assert counter.read_joules() == 2.5


# --- this machine --------------------------------------------------------------------------


def test_cpu_counter_here_works_or_says_why():
    counter = energy_counter(torch.device("cpu"))
    if isinstance(counter, str):
        assert counter.startswith("n/a: ")
        assert "(" in counter and len(counter) > len("n/a: ") + 10
        result = measure_energy(lambda: None, device="cpu")
        assert energy_line(result) == f"energy: {counter}"
    else:
        first = counter.read_joules()
        time.sleep(0.01)
        assert counter.read_joules() >= first > 0
        assert counter.name.startswith("RAPL ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer without a GPU")
def test_cuda_counter_without_a_gpu_says_why():
    counter = energy_counter(torch.device("cuda"))
    assert isinstance(counter, str)
    assert counter.startswith("n/a: ")
    assert "NVML" in counter or "CUDA" in counter


@pytest.mark.cuda
def test_matmuls_on_a_real_gpu_cost_positive_energy():
    counter = energy_counter(torch.device("cuda"))
    assert not isinstance(counter, str), counter
    a = torch.randn(4096, 4096, device="cuda")
    result = measure_energy(
        lambda: a @ a, device="cuda", counter=counter, min_window_s=0.3, windows=2, idle_s=0.3
    )
    assert result.joules_per_unit is not None and result.joules_per_unit > 0, energy_line(result)
    for joules, calls, seconds in zip(
        result.window_joules_per_unit, result.window_units, result.window_seconds, strict=True
    ):
        assert joules * calls / seconds < 2000.0  # watts above idle: plausible for one GPU


# --- training epochs ------------------------------------------------------------------------------


def test_training_energy_is_the_epochs_above_idle_and_nothing_after_stop():
    from kernelprof.harness.energy import TrainingEnergy

    power = ReplayingPower()
    energy = TrainingEnergy("cpu", counter=power, idle_s=0.5, clock=power.clock,
                            sleep=power.sleep, synchronize=power.synchronize)  # fmt: skip
    energy.start()
    assert power.slept_s == pytest.approx(0.5)  # idle first, asleep
    for _ in range(2):  # two epochs of 1 s at +230 W
        power.advance(1.0, WORKLOAD_WATTS)
    result = energy.stop(epochs=2)
    power.advance(5.0, 1000.0)  # evaluation or profiling after the window: not counted
    assert result.unit == "epoch"
    assert result.joules_per_unit == pytest.approx(WORKLOAD_WATTS * 1.0)
    assert result.window_raw_joules == pytest.approx(((IDLE_WATTS + WORKLOAD_WATTS) * 2.0,))
    assert result.idle_watts == pytest.approx(IDLE_WATTS)
    assert result.window_seconds == pytest.approx((2.0,)) and result.window_units == (2,)
    assert "epochs only" in energy_line(result) and result.flags == ()


def test_training_energy_without_a_counter_says_why():
    from kernelprof.harness.energy import TrainingEnergy

    energy = TrainingEnergy("cpu", counter="n/a: no RAPL here")
    energy.start()
    result = energy.stop(epochs=1)
    assert result.joules_per_unit is None and result.unavailable_reason == "n/a: no RAPL here"


def test_step_energy_sums_the_plain_steps_above_idle_and_not_between_them():
    from kernelprof.harness.energy import StepEnergy

    power = ReplayingPower()
    energy = StepEnergy("cpu", counter=power, idle_s=0.5, clock=power.clock, sleep=power.sleep)
    assert power.slept_s == pytest.approx(0.5)  # idle first, asleep
    for extra in (200.0, 260.0):  # two plain steps of 0.25 s, a profiled one between them
        energy.begin()
        power.advance(0.25, extra)
        energy.end()
        power.advance(1.0, 5000.0)  # a profiled step: not counted
    result = energy.result()
    assert result.unit == "step" and result.window_units == (1, 1)
    assert result.joules_per_unit == pytest.approx((200.0 + 260.0) * 0.25 / 2)
    assert result.window_joules_per_unit == pytest.approx((50.0, 65.0))
    assert result.idle_watts == pytest.approx(IDLE_WATTS)


def test_step_energy_without_a_counter_says_why():
    from kernelprof.harness.energy import StepEnergy

    result = StepEnergy("cpu", counter="n/a: no RAPL here").result()
    assert result.joules_per_unit is None and result.unavailable_reason == "n/a: no RAPL here"
