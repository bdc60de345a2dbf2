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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from kernelprof.harness.timer import synchronize as synchronize_device

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


@dataclass(frozen=True)
class EnergyMeasurement:
    """Energy per call of one workload over several windows, or the reason there is none."""

    joules_per_call: float | None  # median over the windows; None when unavailable
    window_joules_per_call: tuple[float, ...] = ()
    window_raw_joules: tuple[float, ...] = ()  # counter difference, idle not subtracted
    window_calls: tuple[int, ...] = ()
    window_seconds: tuple[float, ...] = ()
    idle_watts: float | None = None
    counter: str = ""
    warnings: tuple[str, ...] = ()
    unavailable_reason: str | None = None
    label: str = ""
    metadata: dict = field(default_factory=dict, compare=False)

    @classmethod
    def unavailable(cls, reason: str, label: str = "") -> EnergyMeasurement:
        if not reason.startswith("n/a"):
            reason = f"n/a: {reason}"
        return cls(joules_per_call=None, unavailable_reason=reason, label=label)

    @property
    def available(self) -> bool:
        return self.joules_per_call is not None

    @property
    def joules_per_call_range(self) -> tuple[float, float] | None:
        if not self.window_joules_per_call:
            return None
        return min(self.window_joules_per_call), max(self.window_joules_per_call)

    def describe(self) -> str:
        if not self.available:
            return f"energy: {self.unavailable_reason}"
        low, high = self.joules_per_call_range
        calls = statistics.median(self.window_calls)
        seconds = statistics.median(self.window_seconds)
        text = (
            f"energy: {_format_joules(self.joules_per_call)}/call "
            f"(windows {_format_joules(low)}..{_format_joules(high)}; "
            f"{len(self.window_calls)} x {seconds:.2f} s, ~{calls:,.0f} calls each; "
            f"idle {self.idle_watts:.1f} W subtracted; {self.counter})"
        )
        if self.warnings:
            text += f" [{len(self.warnings)} warning{'s' if len(self.warnings) > 1 else ''}]"
        return text

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "joules_per_call": self.joules_per_call,
            "window_joules_per_call": list(self.window_joules_per_call),
            "window_raw_joules": list(self.window_raw_joules),
            "window_calls": list(self.window_calls),
            "window_seconds": list(self.window_seconds),
            "idle_watts": self.idle_watts,
            "counter": self.counter,
            "warnings": list(self.warnings),
            "unavailable_reason": self.unavailable_reason,
            **self.metadata,
        }


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
    warnings = []
    period = counter.update_period_s
    idle_watts = _idle_watts(counter, idle_s, clock, sleep, synchronize, warnings)

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
        net = window.joules - idle_watts * window.seconds
        per_call.append(net / calls)
        raw.append(window.joules)
        calls_made.append(calls)
        seconds.append(window.seconds)
        if window.seconds < WINDOW_UPDATE_PERIODS * period:
            warnings.append(
                f"window {number} lasted {window.seconds:.3g} s, under {WINDOW_UPDATE_PERIODS} "
                f"updates ({WINDOW_UPDATE_PERIODS * period:.3g} s) of the {counter.name}: "
                "its edges may be off by an update each; raise min_window_s"
            )
        if net < 0:
            warnings.append(
                f"window {number}: less energy than idle ({_format_joules(window.joules)} raw, "
                f"{_format_joules(idle_watts * window.seconds)} idle): not resolved above idle"
            )
        elif net < RESOLVED_FRACTION * window.joules:
            warnings.append(
                f"window {number}: the workload added {net / window.joules:.1%} of the raw "
                f"energy, under {RESOLVED_FRACTION:.0%}: too small to resolve above idle"
            )

    return EnergyMeasurement(
        joules_per_call=statistics.median(per_call),
        window_joules_per_call=tuple(per_call),
        window_raw_joules=tuple(raw),
        window_calls=tuple(calls_made),
        window_seconds=tuple(seconds),
        idle_watts=idle_watts,
        counter=counter.name,
        warnings=tuple(warnings),
        label=label,
    )


def _idle_watts(counter, idle_s, clock, sleep, synchronize, warnings: list[str]) -> float:
    """Idle power over ``idle_s`` (at least a few counter updates), the device synchronised and
    the process asleep; 0 with a warning when the counter did not move."""
    idle_duration = max(idle_s, IDLE_UPDATE_PERIODS * counter.update_period_s)
    with EnergyWindow(counter, synchronize=synchronize, clock=clock) as idle:
        # sleep rather than spin: a spinning host would itself draw power on a CPU counter
        while (remaining := idle_duration - (clock() - idle.started_at)) > 0:
            sleep(remaining)
    if idle.joules > 0:
        return idle.joules / idle.seconds
    warnings.append(
        f"the counter did not advance during {idle.seconds:.2f} s of idle: idle power "
        "is not known, nothing was subtracted"
    )
    return 0.0


class TrainingEnergy:
    """Energy of a stretch of training (the epochs: not evaluation, not profiled steps): idle
    power first, then the counter read at :meth:`start` and :meth:`stop` with the device
    synchronised; J/epoch = (raw energy - idle W x window) / epochs. With no counter, every
    figure is None and ``reason`` says why."""

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
        self.warnings: list[str] = []
        self.idle_watts: float | None = None
        self._window: EnergyWindow | None = None

    def start(self) -> None:
        if isinstance(self.counter, str):
            return
        self.idle_watts = _idle_watts(self.counter, self.idle_s, self.clock, self.sleep,
                                      self.synchronize, self.warnings)  # fmt: skip
        self._window = EnergyWindow(self.counter, synchronize=self.synchronize, clock=self.clock)
        self._window.__enter__()

    def stop(self, epochs: int) -> dict:
        if isinstance(self.counter, str) or self._window is None:
            reason = self.counter if isinstance(self.counter, str) else "n/a: never started"
            return {"joules_per_epoch": None, "reason": reason}
        window = self._window
        window.__exit__(None, None, None)
        close = getattr(self.counter, "close", None)
        if close is not None:
            close()
        net = window.joules - self.idle_watts * window.seconds
        if window.seconds < WINDOW_UPDATE_PERIODS * self.counter.update_period_s:
            self.warnings.append(
                f"the window lasted {window.seconds:.3g} s, under {WINDOW_UPDATE_PERIODS} "
                f"updates of the {self.counter.name}: its edges may be off by an update each"
            )
        if net < RESOLVED_FRACTION * window.joules:
            self.warnings.append(
                f"training added {_format_joules(net)} to {_format_joules(window.joules)} raw: "
                "not resolved above idle"
            )
        return {
            "joules_per_epoch": net / max(1, epochs),
            "raw_joules": window.joules,
            "idle_watts": self.idle_watts,
            "window_s": window.seconds,
            "epochs": epochs,
            "counter": self.counter.name,
            "warnings": list(self.warnings),
            "reason": f"{self.counter.name}; idle {self.idle_watts:.1f} W x {window.seconds:.2f} s "
            "subtracted; epochs only (no evaluation, no profiled steps)",
        }


def _format_joules(joules: float) -> str:
    magnitude = abs(joules)
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ")):
        if magnitude >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules / 1e-9:.3g} nJ"
