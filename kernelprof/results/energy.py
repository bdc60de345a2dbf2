"""The energy record: joules per unit of work (a call of a phase, or an epoch of training) read
from a hardware counter over windows, idle power subtracted, or the reason there is none.

Both of kernelprof's energy figures (compare's per fwd+bwd call, e2e's per epoch) are this one
record, made by :mod:`kernelprof.harness.energy`.
"""

from __future__ import annotations

import statistics
from typing import Literal

from kernelprof.results.flags import Flag
from kernelprof.results.record import record


@record
class EnergyMeasurement:
    joules_per_unit: float | None  # median over the windows; None when unavailable
    unit: Literal["call", "epoch", "step"] = "call"
    window_joules_per_unit: tuple[float, ...] = ()
    window_raw_joules: tuple[float, ...] = ()  # counter difference, idle not subtracted
    window_units: tuple[int, ...] = ()  # calls (or epochs) in each window
    window_seconds: tuple[float, ...] = ()
    idle_watts: float | None = None
    counter: str = ""
    scope: str = ""  # what the windows hold, e.g. "epochs only (no evaluation)"
    flags: tuple[Flag, ...] = ()
    unavailable_reason: str | None = None
    label: str = ""

    @classmethod
    def unavailable(cls, reason: str, *, label: str = "", unit: str = "call") -> EnergyMeasurement:
        if not reason.startswith("n/a"):
            reason = f"n/a: {reason}"
        return cls(joules_per_unit=None, unavailable_reason=reason, label=label, unit=unit)

    @property
    def available(self) -> bool:
        return self.joules_per_unit is not None

    @property
    def joules_range(self) -> tuple[float, float] | None:
        if not self.window_joules_per_unit:
            return None
        return min(self.window_joules_per_unit), max(self.window_joules_per_unit)

    @property
    def units_per_window(self) -> float | None:
        return statistics.median(self.window_units) if self.window_units else None

    @property
    def seconds_per_window(self) -> float | None:
        return statistics.median(self.window_seconds) if self.window_seconds else None


def format_joules(joules: float) -> str:
    """'225 mJ': three significant digits in the unit that fits."""
    magnitude = abs(joules)
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ")):
        if magnitude >= scale:
            return f"{joules / scale:.3g} {unit}"
    return f"{joules / 1e-9:.3g} nJ"
