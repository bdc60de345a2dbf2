"""``kernelprof check``'s request: every implementation's neuron against the float64 oracle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kernelprof.requests.neuron import DTYPES, NeuronOptions
from kernelprof.requests.options import (
    ALL_ROWS,
    Command,
    at_least,
    one_of,
    option,
    output_format,
    path,
)
from kernelprof.requests.outputs import writable_file


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckRequest(NeuronOptions):
    COMMAND = "check"

    T: int = option(8, "time steps", parse=at_least(1))
    N: int = option(4096, "neurons per time step (e.g. 4096 or 2^12)", parse=at_least(1))
    dtype: str = option("fp32", f"{', '.join(DTYPES)}", parse=one_of(*DTYPES))
    out: Path | None = option(None, "also write the results (JSON) here", parse=path)

    def check(self) -> None:
        super().check()
        if self.out is not None:
            writable_file(self.out, "--out")


COMMAND = Command(
    name="check",
    help="every framework's LIF against the float64 oracle, with a verdict",
    description="Builds each implementation's LIF for the canonical config, runs it on the same "
    "input as the float64 oracle in its own worker process, and gives a verdict: exact, close, "
    "approximate, WRONG, unsupported, unavailable or error. Exit code 1 if any verdict is "
    "WRONG.",
    request=CheckRequest,
    display=(output_format("table", "json", "csv", "md"), ALL_ROWS),
)
