"""What a request needs of this machine, checked before anything starts: a case's tensors
against the device's memory, another interpreter that must exist and run. Each problem is a
:class:`~kernelprof.requests.RequestError` in one line (exit code 2 on the command line)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from kernelprof.harness.worker import interpreter_problem
from kernelprof.requests import RequestError
from kernelprof.results.compare import Case

ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
# Tensors of [T, N] that any implementation holds at once in a fwd+bwd call: the input, the
# spikes, their upstream gradient and the input's gradient (saved state comes on top).
MIN_PASSES = 4


def interpreters(python: Mapping[str, str]) -> None:
    for impl, path in python.items():
        problem = interpreter_problem(path)
        if problem is not None:
            raise RequestError(f"--python: {impl}: {problem}")


def available_bytes(device: str) -> tuple[int, str] | None:
    """Memory free for a case's tensors on ``device`` and what it is, where it can be read."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free, f"{torch.cuda.get_device_name(torch.device(device))} has"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "this machine has"
    except OSError:
        return None
    return None


def case_memory(cases: Iterable[Case], device: str) -> None:
    """Refuses a case whose tensors cannot fit in the device's memory at all."""
    available = available_bytes(device)
    if available is None:
        return
    free, where = available
    for case in cases:
        needed = MIN_PASSES * case.T * case.N * ELEMENT_BYTES[case.dtype]
        if needed > free:
            raise RequestError(
                f"--N: T={case.T} x N={case.N:,} {case.dtype} needs at least {_size(needed)} "
                f"for one implementation's tensors ({MIN_PASSES} passes of [T, N]); {where} "
                f"{_size(free)} available"
            )


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes:.0f} B"
        nbytes /= 1024
    return f"{nbytes:.1f} EiB"
