"""Device facts the measurements need: the device, its measured copy bandwidth, host allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import torch

from kernelprof.results.compare import NoiseProbe

from .timer import measure

# glibc mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | None) -> torch.device:
    """The device for a user's ``--device`` choice; ValueError with a reason when unusable."""
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device: unknown device {name!r} (use cpu or cuda)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda was asked for, but torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: {name!r} is not supported (use cpu or cuda)")
    return device


def describe(device: torch.device, threads: int | None = None) -> str:
    """The device's name; a CPU's with the threads torch uses (or ``threads``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = threads or torch.get_num_threads()
    return f"{platform.processor() or platform.machine()} CPU, {threads} threads"


def keep_host_memory() -> str:
    """Makes glibc keep freed memory in the heap instead of returning it to the OS.

    Without this, every tensor above 32 MiB is a fresh mmap whose pages fault in on first write;
    at the sizes benchmarked here that costs more than the kernel itself, and on GPU the caching
    allocator avoids the same cost. The PyTorch CPU tuning guide recommends jemalloc or tcmalloc
    for this reason; this is the same effect without a preloaded library. Returns a line for the
    report saying what was done.
    """
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return "host allocator: unchanged (libc not found)"
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
    except (OSError, AttributeError) as error:
        return f"host allocator: unchanged (mallopt unavailable: {error})"
    if mallopt(_M_MMAP_MAX, 0) != 1 or mallopt(_M_TRIM_THRESHOLD, 2**62) != 1:
        return "host allocator: unchanged (mallopt refused)"
    return "host allocator: glibc heap kept between calls (mallopt: no mmap, no trim)"


def copy_bandwidth(device: torch.device, nbytes: int | None = None) -> float:
    """Measured device-to-device copy bandwidth in bytes/s, counting read + write."""
    if nbytes is None:
        nbytes = 2**30 if device.type == "cuda" else 256 * 2**20
    source = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    target = torch.empty_like(source)
    timing = measure(lambda: target.copy_(source), device=device, label="copy", flush_cache=False)
    return 2 * nbytes / timing.median_s


NOISE_BYTES = 32 * 2**20  # the probe's tensor: one [8, 2^20] fp32 pass, the default case's size


def noise_floor(device: torch.device, repeat_s: float = 0.5) -> NoiseProbe:
    """How much the same fixed work varies on this machine now: an allocating elementwise
    multiply over 32 MiB (allocation, page faults and memory traffic, as every framework's
    call has), timed like any implementation. Its spread (IQR over median) is the floor below
    which no implementation's spread can be read: a busy or shared machine raises it."""
    x = torch.ones(NOISE_BYTES // 4, dtype=torch.float32, device=device)
    timing = measure(lambda: x * 2.0, device=device, label="noise probe", repeat_s=repeat_s,
                     min_calls=20, adapt_s=0)  # fmt: skip
    return NoiseProbe(workload="x * 2.0 over 32 MiB, allocating its result",
                      median_s=timing.median_s, spread=timing.spread,
                      calls=len(timing.samples_s))  # fmt: skip
