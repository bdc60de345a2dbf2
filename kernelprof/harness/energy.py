"""The one energy harness: every joule kernelprof prints comes from :func:`measure_energy`.

What it measures: energy per call of a workload, read from a hardware energy counter at the
edges of long windows, with the device synchronised at both edges (as Zeus does), minus the
idle power measured just before. The counters:

* CUDA: NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since the
  driver loaded, Volta and newer), for the whole GPU that backs the torch device (matched by
  PCI address, so ``CUDA_VISIBLE_DEVICES`` and CUDA's device order do not matter). Only where
  that counter is not supported does it fall back to sampling ``nvmlDeviceGetPowerUsage`` in a
  thread, and the counter's name says so: that reading is a ~1 s average on recent GPUs and
  only part of the runtime is sampled on A100/H100.
* CPU: Linux RAPL (``/sys/class/powercap/intel-rapl:N/energy_uj``), the package domains summed,
  with the counter's wrap-around undone (``max_energy_range_uj``). It counts the whole package,
  other processes included; since 2020 kernels let only root read it.

Why windows of >= 1 s: the NVML counter moves only every ~20-100 ms, so a single kernel call is
far below its resolution. The workload is looped until a window has lasted ``min_window_s`` and
the energy divided by the number of calls; a window shorter than 10 counter updates is warned
about, since its edges can be off by up to one update each.

Why idle is subtracted: a GPU draws tens of watts doing nothing (a CPU package likewise). That
power is not caused by the kernel and would make a slow implementation look costly merely for
being slow, so ``idle power x window length`` is subtracted; what remains is the energy the
workload added. When that remainder is negative or under 5 % of the raw energy it is not
resolved above idle, and the result says so.

What "n/a" means: no counter could be read on this machine (no NVML, no GPU, RAPL absent or
not readable). :func:`energy_counter` then returns a one-line reason starting with ``"n/a: "``
that keeps the original error, and :func:`measure_energy` returns
:meth:`EnergyMeasurement.unavailable` carrying it. A missing counter never raises and is never
reported as 0 J.

The counter, the clock, ``sleep`` and the device synchronisation are injectable, so the
arithmetic is unit-tested on CPU with a counter that replays a scripted power.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch

from kernelprof.harness.timer import synchronize as synchronize_device
from kernelprof.results.energy import EnergyMeasurement, format_joules
from kernelprof.results.flags import Flag

RAPL_ROOT = Path("/sys/class/powercap")
NVML_UPDATE_PERIOD_S = 0.1  # the slow end of the ~20-100 ms seen for the total-energy counter
RAPL_UPDATE_PERIOD_S = 0.001
POWER_SAMPLING_PERIOD_S = 1.0  # nvmlDeviceGetPowerUsage: a ~1 s average on recent GPUs
WINDOW_UPDATE_PERIODS = 10  # warn when a window spans fewer counter updates than this
IDLE_UPDATE_PERIODS = 5  # idle is measured over at least this many counter updates
RESOLVED_FRACTION = 0.05  # warn when the workload adds less than this share of the raw energy


class EnergyCounter(Protocol):
    """A cumulative energy counter: ``read_joules()`` only ever grows."""

    name: str
    update_period_s: float

    def read_joules(self) -> float: ...


class CounterUnavailable(RuntimeError):
    """Raised by a counter's constructor when it cannot be read; the message is the reason."""


# --- NVML ----------------------------------------------------------------------------------


class NvmlEnergyCounter:
    """NVML's total-energy counter of one GPU (mJ since the driver loaded, Volta and newer)."""

    def __init__(self, handle, *, name: str, nvml=None):
        if nvml is None:
            import pynvml as nvml
        self._nvml = nvml
        self._handle = handle
        self.name = name
        self.update_period_s = NVML_UPDATE_PERIOD_S

    def read_joules(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3


class NvmlPowerSamplingCounter:
    """Fallback for GPUs without the total-energy counter: integrates sampled power in a thread.

    ``nvmlDeviceGetPowerUsage`` is a ~1 s running average on recent GPUs and covers only part of
    the runtime on A100/H100, so this is coarse; its name says it is a fallback, and its update
    period is set to that averaging time so that short windows are warned about.
    """

    def __init__(self, handle, *, name: str, nvml=None, poll_s: float = 0.01):
        if nvml is None:
            import pynvml as nvml
        self._nvml = nvml
        self._handle = handle
        self.name = name
        self.update_period_s = POWER_SAMPLING_PERIOD_S
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._joules = 0.0
        self._last_time = time.perf_counter()
        self._last_watts = self._read_watts()
        self._thread = threading.Thread(target=self._poll, name="nvml-power-sampler", daemon=True)
        self._thread.start()

    def _read_watts(self) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1e3

    def _sample(self) -> None:
        watts = self._read_watts()
        now = time.perf_counter()
        with self._lock:
            # trapezoid between consecutive samples
            self._joules += 0.5 * (watts + self._last_watts) * (now - self._last_time)
            self._last_time, self._last_watts = now, watts

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self._sample()
            except Exception:  # a failing sample must not end the sampling
                continue

    def read_joules(self) -> float:
        with self._lock:
            # extend the last sample to now, so that a read between samples is still current
            return self._joules + self._last_watts * (time.perf_counter() - self._last_time)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _nvml_error(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _nvml_counter(device: torch.device) -> EnergyCounter | str:
    try:
        import pynvml
    except ImportError as error:
        return f"n/a: NVML unavailable ({_nvml_error(error)}; install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return f"n/a: NVML unavailable ({_nvml_error(error)})"
    if not torch.cuda.is_available():
        return "n/a: NVML is loaded but torch sees no CUDA device"
    try:
        index = device.index if device.index is not None else torch.cuda.current_device()
        properties = torch.cuda.get_device_properties(index)
    except (RuntimeError, AssertionError, ValueError) as error:
        return f"n/a: CUDA device {device} not usable ({type(error).__name__}: {error})"

    # NVML numbers GPUs in PCI order over all GPUs; torch numbers the visible ones in CUDA's
    # order. The PCI address is the one name both agree on.
    address = (properties.pci_domain_id, properties.pci_bus_id, properties.pci_device_id)
    address_text = "{:04x}:{:02x}:{:02x}.0".format(*address)
    try:
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as error:
        return f"n/a: NVML cannot list GPUs ({_nvml_error(error)})"
    handle, nvml_index, skipped = None, None, []
    for candidate in range(count):
        try:
            candidate_handle = pynvml.nvmlDeviceGetHandleByIndex(candidate)
            info = pynvml.nvmlDeviceGetPciInfo(candidate_handle)
        except pynvml.NVMLError as error:
            skipped.append(f"NVML GPU {candidate}: {_nvml_error(error)}")
            continue
        if (info.domain, info.bus, info.device) == address:
            handle, nvml_index = candidate_handle, candidate
            break
    if handle is None:
        unread = f"; unreadable: {', '.join(skipped)}" if skipped else ""
        return f"n/a: no NVML GPU at PCI {address_text}, where torch has cuda:{index}{unread}"

    where = f"cuda:{index} = NVML GPU {nvml_index}, {properties.name}"
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as energy_error:
        if energy_error.value != pynvml.NVML_ERROR_NOT_SUPPORTED:
            reason = _nvml_error(energy_error)
            return f"n/a: NVML total-energy counter unreadable ({where}: {reason})"
        try:
            return NvmlPowerSamplingCounter(
                handle,
                nvml=pynvml,
                name=(
                    f"NVML power-usage samples ({where}; FALLBACK: total-energy counter not "
                    "supported, power is a ~1 s average)"
                ),
            )
        except pynvml.NVMLError as power_error:
            return (
                f"n/a: NVML total-energy counter not supported ({where}: "
                f"{_nvml_error(energy_error)}) and power usage unreadable "
                f"({_nvml_error(power_error)})"
            )
    return NvmlEnergyCounter(handle, nvml=pynvml, name=f"NVML total-energy counter ({where})")


# --- RAPL ----------------------------------------------------------------------------------


class _RaplDomain:
    """One RAPL domain's counter, with its wrap-arounds undone."""

    def __init__(self, path: Path):
        self.path = path
        self.label = (path / "name").read_text().strip()
        self.max_range_uj = int((path / "max_energy_range_uj").read_text())
        self._last_uj = self._read_uj()
        self._wrapped_uj = 0

    def _read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text())

    def read_uj(self) -> int:
        raw = self._read_uj()
        if raw < self._last_uj:
            # The counter runs from 0 to max_energy_range_uj and starts again; at a few hundred
            # watts a full range lasts many minutes, far longer than the gap between two reads.
            self._wrapped_uj += self.max_range_uj
        self._last_uj = raw
        return raw + self._wrapped_uj


class RaplCounter:
    """Linux RAPL energy of the CPU package domains (``intel-rapl:N`` named ``package-*``), summed.

    Raises :class:`CounterUnavailable`, whose message is the reason, when none is readable.
    """

    def __init__(self, root: Path | str = RAPL_ROOT):
        root = Path(root)
        try:
            entries = sorted(root.iterdir())
        except FileNotFoundError:
            raise CounterUnavailable(f"no RAPL counter readable ({root}: not present)") from None
        except OSError as error:
            raise CounterUnavailable(
                f"no RAPL counter readable ({root}: {error.strerror or error})"
            ) from None
        # Top-level zones only (intel-rapl:0, not intel-rapl:0:0, nor intel-rapl-mmio:0 which
        # repeats the package): their sub-zones (core, uncore, dram) and "psys" overlap them.
        zones = [entry for entry in entries if re.fullmatch(r"intel-rapl:\d+", entry.name)]
        if not zones:
            raise CounterUnavailable(f"no RAPL counter readable ({root}: no intel-rapl zones)")
        self.domains: list[_RaplDomain] = []
        problems = []
        for zone in zones:
            try:
                domain = _RaplDomain(zone)
            except OSError as error:
                problems.append(f"{error.filename or zone}: {error.strerror or error}")
                continue
            except ValueError as error:
                problems.append(f"{zone}: unreadable value ({error})")
                continue
            if domain.label.startswith("package"):
                self.domains.append(domain)
        if not self.domains:
            reason = "; ".join(problems) if problems else f"{root}: no package domain"
            raise CounterUnavailable(f"no RAPL counter readable ({reason})")
        self.name = "RAPL " + " + ".join(domain.label for domain in self.domains)
        self.update_period_s = RAPL_UPDATE_PERIOD_S

    def read_joules(self) -> float:
        return sum(domain.read_uj() for domain in self.domains) / 1e6


def _rapl_counter(root: Path | str = RAPL_ROOT) -> EnergyCounter | str:
    try:
        return RaplCounter(root)
    except CounterUnavailable as error:
        return f"n/a: {error}"


def energy_counter(device: torch.device | str) -> EnergyCounter | str:
    """The energy counter for ``device``, or a one-line reason starting with ``"n/a: "``."""
    device = torch.device(device)
    if device.type == "cuda":
        return _nvml_counter(device)
    if device.type == "cpu":
        return _rapl_counter()
    return f"n/a: no energy counter for device type {device.type!r}"


# --- measurement ---------------------------------------------------------------------------


class EnergyWindow:
    """Energy and time between entering and leaving, the device synchronised at both edges."""

    def __init__(
        self,
        counter: EnergyCounter,
        *,
        synchronize: Callable[[], None],
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.counter = counter
        self.synchronize = synchronize
        self.clock = clock
        self.joules: float | None = None
        self.seconds: float | None = None

    def __enter__(self) -> EnergyWindow:
        self.synchronize()
        self.started_at = self.clock()
        self._start_joules = self.counter.read_joules()
        return self

    def __exit__(self, *exc_info) -> None:
        self.synchronize()
        self.joules = self.counter.read_joules() - self._start_joules
        self.seconds = self.clock() - self.started_at


def measure_energy(
    fn: Callable[[], object],
    *,
    device: torch.device | str = "cpu",
    counter: EnergyCounter | str | None = None,
    min_window_s: float = 1.0,
    windows: int = 3,
    idle_s: float = 0.5,
    warmup_calls: int = 1,
    label: str = "",
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    synchronize: Callable[[], None] | None = None,
) -> EnergyMeasurement:
    """Energy per call of ``fn()`` (a closure with its inputs ready) on ``device``.

    First idle power, over ``idle_s`` but at least a few counter updates, with the device
    synchronised and the process asleep; then ``warmup_calls`` untimed calls (compilation stays
    out of the windows); then ``windows`` windows, each calling ``fn`` until ``min_window_s`` has
    passed (at least once). Per window, J/call = (raw energy - idle W x seconds) / calls; the
    result is their median. ``counter`` may be a counter, an "n/a: ..." reason from
    :func:`energy_counter` (returned as unavailable), or None to ask :func:`energy_counter`.
    """
    if windows < 1:
        raise ValueError(f"windows must be >= 1, got {windows}")
    if min_window_s <= 0:
        raise ValueError(f"min_window_s must be > 0, got {min_window_s}")
    device = torch.device(device)
    created_here = counter is None
    if counter is None:
        counter = energy_counter(device)
    if isinstance(counter, str):
        return EnergyMeasurement.unavailable(counter, label=label)
    if synchronize is None:

        def synchronize() -> None:
            synchronize_device(device)

    try:
        return _measure(
            fn,
            counter,
            min_window_s=min_window_s,
            windows=windows,
            idle_s=idle_s,
            warmup_calls=warmup_calls,
            label=label,
            clock=clock,
            sleep=sleep,
            synchronize=synchronize,
        )
    finally:
        close = getattr(counter, "close", None)
        if created_here and close is not None:
            close()


def _measure(
    fn: Callable[[], object],
    counter: EnergyCounter,
    *,
    min_window_s: float,
    windows: int,
    idle_s: float,
    warmup_calls: int,
    label: str,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    synchronize: Callable[[], None],
) -> EnergyMeasurement:
    flags: list[Flag] = []
    idle_watts = _idle_watts(counter, idle_s, clock, sleep, synchronize, flags, label)

    for _ in range(warmup_calls):
        fn()

    per_call, raw, calls_made, seconds = [], [], [], []
    for number in range(1, windows + 1):
        calls = 0
        with EnergyWindow(counter, synchronize=synchronize, clock=clock) as window:
            while True:
                fn()
                calls += 1
                if clock() - window.started_at >= min_window_s:
                    break
        per_call.append((window.joules - idle_watts * window.seconds) / calls)
        raw.append(window.joules)
        calls_made.append(calls)
        seconds.append(window.seconds)
        flags += window_flags(window, idle_watts, counter, label, f"window {number}")

    return EnergyMeasurement(
        joules_per_unit=statistics.median(per_call),
        unit="call",
        window_joules_per_unit=tuple(per_call),
        window_raw_joules=tuple(raw),
        window_units=tuple(calls_made),
        window_seconds=tuple(seconds),
        idle_watts=idle_watts,
        counter=counter.name,
        flags=tuple(flags),
        label=label,
    )


def window_flags(window: EnergyWindow, idle_watts: float, counter: EnergyCounter, label: str,
                 name: str) -> list[Flag]:  # fmt: skip
    """What makes one window's energy unreliable: too short for the counter's updates, or
    too little above idle to resolve."""
    found = []

    def flag(message: str, **figures: float) -> None:
        found.append(Flag(kind="energy", subject=label, message=f"{name}: {message}",
                          figures=figures))  # fmt: skip

    period = counter.update_period_s
    if window.seconds < WINDOW_UPDATE_PERIODS * period:
        flag(f"lasted {window.seconds:.3g} s, under {WINDOW_UPDATE_PERIODS} updates "
             f"({WINDOW_UPDATE_PERIODS * period:.3g} s) of the {counter.name}: its edges may be "
             "off by an update each; raise min_window_s", seconds=window.seconds)  # fmt: skip
    net = window.joules - idle_watts * window.seconds
    if net < 0:
        flag(f"less energy than idle ({format_joules(window.joules)} raw, "
             f"{format_joules(idle_watts * window.seconds)} idle): not resolved above idle",
             net_joules=net)  # fmt: skip
    elif net < RESOLVED_FRACTION * window.joules:
        flag(f"the workload added {net / window.joules:.1%} of the raw energy, under "
             f"{RESOLVED_FRACTION:.0%}: too small to resolve above idle",
             net_joules=net)  # fmt: skip
    return found


def _idle_watts(counter, idle_s, clock, sleep, synchronize, flags: list[Flag],
                label: str = "") -> float:  # fmt: skip
    """Idle power over ``idle_s`` (at least a few counter updates), the device synchronised and
    the process asleep; 0 with a flag when the counter did not move."""
    idle_duration = max(idle_s, IDLE_UPDATE_PERIODS * counter.update_period_s)
    with EnergyWindow(counter, synchronize=synchronize, clock=clock) as idle:
        # sleep rather than spin: a spinning host would itself draw power on a CPU counter
        while (remaining := idle_duration - (clock() - idle.started_at)) > 0:
            sleep(remaining)
    if idle.joules > 0:
        return idle.joules / idle.seconds
    flags.append(Flag(
        kind="energy", subject=label,
        message=f"the counter did not advance during {idle.seconds:.2f} s of idle: idle power "
        "is not known, nothing was subtracted", figures={"idle_s": idle.seconds},
    ))  # fmt: skip
    return 0.0


class StepEnergy:
    """Energy of the plain training steps a profile times, one by one: idle power first (at
    construction: between steps, untimed), then the counter read at each plain step's edges
    (:meth:`begin`, :meth:`end`; the steps synchronise the device themselves). J/step = (the
    steps' raw energy - idle W x their time) / steps: their sum, so that the counter's
    quantisation at each edge averages out rather than piling up in a median."""

    SCOPE = "plain training steps (interleaved with profiled ones, summed)"

    def __init__(self, device: torch.device | str, counter: EnergyCounter | str | None = None,
                 *, idle_s: float = 0.5, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        device = torch.device(device)
        self.counter = energy_counter(device) if counter is None else counter
        self.clock = clock
        self.flags: list[Flag] = []
        self.joules: list[float] = []
        self.seconds: list[float] = []
        self.idle_watts: float | None = None
        self._start: tuple[float, float] | None = None
        if not isinstance(self.counter, str):
            self.idle_watts = _idle_watts(self.counter, idle_s, clock, sleep,
                                          lambda: synchronize_device(device), self.flags,
                                          "profile")  # fmt: skip

    def begin(self) -> None:
        if not isinstance(self.counter, str):
            self._start = (self.counter.read_joules(), self.clock())

    def end(self) -> None:
        if self._start is not None:
            joules, started = self._start
            self.joules.append(self.counter.read_joules() - joules)
            self.seconds.append(self.clock() - started)
            self._start = None

    def result(self) -> EnergyMeasurement:
        if isinstance(self.counter, str):
            return EnergyMeasurement.unavailable(self.counter, label="profile", unit="step")
        close = getattr(self.counter, "close", None)  # a sampling counter's thread
        if close is not None:
            close()
        if not self.joules:
            return EnergyMeasurement.unavailable("no plain step was measured", label="profile",
                                                 unit="step")  # fmt: skip
        steps, raw, seconds = len(self.joules), sum(self.joules), sum(self.seconds)
        net = raw - self.idle_watts * seconds
        window = EnergyWindow(self.counter, synchronize=lambda: None)
        window.joules, window.seconds = raw, seconds
        flags = self.flags + window_flags(window, self.idle_watts, self.counter, "profile",
                                          f"{steps} plain steps")  # fmt: skip
        return EnergyMeasurement(
            joules_per_unit=net / steps, unit="step",
            window_joules_per_unit=tuple(j - self.idle_watts * s
                                         for j, s in zip(self.joules, self.seconds, strict=True)),
            window_raw_joules=tuple(self.joules), window_units=(1,) * steps,
            window_seconds=tuple(self.seconds), idle_watts=self.idle_watts,
            counter=self.counter.name, scope=self.SCOPE, flags=tuple(flags), label="profile",
        )  # fmt: skip


class TrainingEnergy:
    """Energy of a stretch of training (the epochs: not evaluation, not profiled steps): idle
    power first, then the counter read at :meth:`start` and :meth:`stop` with the device
    synchronised; J/epoch = (raw energy - idle W x window) / epochs. With no counter, the
    measurement is unavailable with the reason."""

    SCOPE = "epochs only (no evaluation, no profiled steps)"

    def __init__(
        self,
        device: torch.device | str,
        counter: EnergyCounter | str | None = None,
        *,
        idle_s: float = 0.5,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        synchronize: Callable[[], None] | None = None,
    ) -> None:
        device = torch.device(device)
        self.counter = energy_counter(device) if counter is None else counter
        self.idle_s, self.clock, self.sleep = idle_s, clock, sleep
        self.synchronize = synchronize or (lambda: synchronize_device(device))
        self.flags: list[Flag] = []
        self.idle_watts: float | None = None
        self._window: EnergyWindow | None = None

    def start(self) -> None:
        if isinstance(self.counter, str):
            return
        self.idle_watts = _idle_watts(self.counter, self.idle_s, self.clock, self.sleep,
                                      self.synchronize, self.flags, "training")  # fmt: skip
        self._window = EnergyWindow(self.counter, synchronize=self.synchronize, clock=self.clock)
        self._window.__enter__()

    def stop(self, epochs: int) -> EnergyMeasurement:
        if isinstance(self.counter, str) or self._window is None:
            reason = self.counter if isinstance(self.counter, str) else "n/a: never started"
            return EnergyMeasurement.unavailable(reason, label="training", unit="epoch")
        window = self._window
        window.__exit__(None, None, None)
        close = getattr(self.counter, "close", None)
        if close is not None:
            close()
        net = window.joules - self.idle_watts * window.seconds
        flags = self.flags + window_flags(window, self.idle_watts, self.counter, "training",
                                          "the window")  # fmt: skip
        return EnergyMeasurement(
            joules_per_unit=net / max(1, epochs),
            unit="epoch",
            window_joules_per_unit=(net / max(1, epochs),),
            window_raw_joules=(window.joules,),
            window_units=(epochs,),
            window_seconds=(window.seconds,),
            idle_watts=self.idle_watts,
            counter=self.counter.name,
            scope=self.SCOPE,
            flags=tuple(flags),
            label="training",
        )
