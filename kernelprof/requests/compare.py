"""``kernelprof compare``'s request: every implementation checked, then timed side by side, on
every case of a sweep over T, N and dtype."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kernelprof.requests.neuron import DTYPES, NeuronOptions
from kernelprof.requests.options import (
    ALL_ROWS,
    Command,
    RequestError,
    at_least,
    flag_value,
    option,
    output_format,
    path,
    positive,
    positive_numbers,
    some_of,
)
from kernelprof.requests.outputs import plot_file, writable_file, writable_folder
from kernelprof.results.compare import Case
from reference_kernels.model import NEURONS

DEFAULT_N = {"cpu": 2**20, "cuda": 2**22}


def saved_tensors(config) -> int:
    """[T, N] tensors the canonical fused algorithm keeps for backward: the spike's margin
    H - theta (S, the surrogate and H come from it); ALIF also its threshold theta[t], which
    the reset's gradient needs (none with detach_reset). CUBA's backward needs no I: its
    adjoint runs from gH alone."""
    return 2 if config.neuron == "alif" and not config.detach_reset else 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompareRequest(NeuronOptions):
    COMMAND = "compare"

    neuron: tuple[str, ...] = option(("lif",), f"neuron models ({', '.join(NEURONS)}); a comma "
                                     "list sweeps (e.g. if,lif,plif)",
                                     parse=some_of(*NEURONS, what="neuron"))  # fmt: skip
    T: tuple[int, ...] = option((8,), "time steps; a comma list sweeps (e.g. 4,8,16)",
                                parse=positive_numbers)  # fmt: skip
    N: tuple[int, ...] | None = option(
        None, "neurons per time step; a comma list sweeps (default 2^20 on CPU, 2^22 on CUDA)",
        parse=positive_numbers)  # fmt: skip
    dtype: tuple[str, ...] = option(("fp32",), "fp32, fp16, bf16; a comma list sweeps",
                                    parse=some_of(*DTYPES, what="dtype"))  # fmt: skip
    repeat_s: float = option(0.25, "timing budget per phase (seconds)", parse=positive)
    rounds: int = option(3, "interleaved rounds of timings per implementation, order rotated",
                         parse=at_least(1))  # fmt: skip
    baseline: str | None = option(None, "speedups against this implementation (default: the "
                                  "fastest framework row)")  # fmt: skip
    trace_dir: Path | None = option(None, "write one Chrome trace per implementation here",
                                    parse=path)  # fmt: skip
    plot: Path | None = option(None, "draw time and bandwidth against T (.png, .pdf, .svg)",
                               parse=path)  # fmt: skip
    cuda_graph: bool = option(False, "also time each phase as a CUDA graph replay (launch "
                              "overhead removed; GPU only)", parse=flag_value,
                              action="store_true")  # fmt: skip
    no_energy: bool = option(False, "skip the energy windows (about 4 s per implementation "
                             "where a counter exists)", parse=flag_value,
                             action="store_true")  # fmt: skip
    keep_host_memory: bool = option(
        False, "CPU: keep freed memory in the glibc heap (mallopt) while measuring; off by "
        "default, since it speeds frameworks unequally (benchmarks/host_allocator.py)",
        parse=flag_value, action="store_true")  # fmt: skip
    out: Path | None = option(None, "also write the results (JSON) here", parse=path)

    def check(self) -> None:
        super().check()
        if self.N is None:
            object.__setattr__(self, "N", (DEFAULT_N["cuda" if self.on_cuda else "cpu"],))
        if self.baseline is not None and self.baseline not in self.impls:
            raise RequestError(f"--baseline: {self.baseline!r} is not among the compared impls")
        if self.cuda_graph and not self.on_cuda:
            raise RequestError("--cuda-graph: CUDA graphs need a CUDA device")
        if self.out is not None:
            writable_file(self.out, "--out")
        if self.plot is not None:
            plot_file(self.plot, "--plot")
        if self.trace_dir is not None:
            writable_folder(self.trace_dir, "--trace-dir")

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def cases(self) -> tuple[Case, ...]:
        """Every (neuron, T, N, dtype), neuron outermost. A PLIF case learns one decay, or one
        per neuron of its [T, N] input with --per-channel."""
        per_channel = self.per_channel
        return tuple(Case(T=t, N=n, dtype=d, neuron=neuron,
                          channels=n if neuron == "plif" and per_channel else 1,
                          saved=saved_tensors(self.config_for(neuron)))
                     for neuron in self.neurons
                     for t in self.T for n in self.N for d in self.dtype)  # fmt: skip


COMMAND = Command(
    name="compare",
    help="verdict against the float64 oracle, then fwd/bwd timings and bandwidth",
    description="Checks each implementation of each neuron against the float64 oracle, then times "
    "forward, backward and forward+backward and reports achieved bandwidth against the "
    "device's measured copy bandwidth.",
    request=CompareRequest,
    display=(output_format("table", "json", "csv", "md"), ALL_ROWS),
)
