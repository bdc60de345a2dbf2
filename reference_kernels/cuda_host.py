"""The CUDA C kernels of ``cuda/lif.cu`` built as host C++ and run serially on the CPU.

``host_launch.cpp`` includes ``host_shim.h`` and then ``lif.cu`` verbatim (the file CuPy
compiles), so g++ builds the very kernel bodies the GPU runs; each "launch" walks every block
and thread of the grid one after another. That is a faithful model of these kernels because
they use no shared memory, synchronisation or warp intrinsics (see host_shim.h).

What it is for: checking the CUDA C numerics on a machine without a GPU (tests/), and timing
what the kernels do per element on the CPU, e.g. the extra forward of ``save="recompute"``
(benchmarks/saved_memory.py). It is not one of the reference implementations: a serial loop
says nothing about the GPU's speed.

:class:`HostKernels` implements :class:`~reference_kernels.fused.FusedKernels` and picks the
vector or scalar entry point and the grid by the same rules as the CuPy backend.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from .cupy_lif import (
    KERNEL_NAMES,
    STATE_PREFIXES,
    decay_scalars,
    dk_partials_size,
    kernel_name,
    kernel_prefix,
    persistent_grid,
    use_vector_path,
    vector_lanes,
)
from .model import SURROGATE_ID, NeuronConfig, kernel_tau, state_decay

CUDA_DIR = Path(__file__).parent / "cuda"
HOST_LAUNCH = CUDA_DIR / "host_launch.cpp"
SOURCES = (HOST_LAUNCH, CUDA_DIR / "host_shim.h", CUDA_DIR / "lif.cu")
COMPILE_FLAGS = ("-O2", "-std=c++17", "-Wall", "-Wextra", "-shared", "-fPIC")

_PTR = ctypes.c_void_p
_GRID = [ctypes.c_uint, ctypes.c_uint]
_SIZE = [ctypes.c_longlong, ctypes.c_int]
_CHANNELS = [ctypes.c_longlong, ctypes.c_longlong]
_FORWARD_ARGS = [*_GRID, *[_PTR] * 5, *_SIZE, *[ctypes.c_float] * 3, *[ctypes.c_int] * 2,
                 *_CHANNELS]  # fmt: skip
_BACKWARD_ARGS = [*_GRID, *[_PTR] * 6, *_SIZE, *[ctypes.c_float] * 3, *[ctypes.c_int] * 4,
                  ctypes.c_float, *_CHANNELS]  # fmt: skip
# CUBA and ALIF: six [T, N] pointers each way, the second state's decay and beta_a (and
# backward's detach_adaptation) instead of PLIF's k.
_STATES_FORWARD_ARGS = [*_GRID, *[_PTR] * 6, *_SIZE, *[ctypes.c_float] * 3,
                        *[ctypes.c_int] * 2, *[ctypes.c_float] * 2]  # fmt: skip
_STATES_BACKWARD_ARGS = [*_GRID, *[_PTR] * 6, *_SIZE, *[ctypes.c_float] * 3,
                         *[ctypes.c_int] * 4, *[ctypes.c_float] * 3, ctypes.c_int]  # fmt: skip
CONVERSIONS = ("half_to_float", "float_to_half", "bf16_to_float", "float_to_bf16")


class HostBuildError(RuntimeError):
    """g++ is missing or failed on the host build; the message holds its output."""


def build(directory: Path | None = None) -> Path:
    """Compiles host_launch.cpp with g++ into ``directory`` (default: a folder under the
    system's temporary directory named by the sources' hash, so an unchanged source is built
    once) and returns the shared library's path."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise HostBuildError("g++ not found on PATH")
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in SOURCES))
    digest.update(" ".join(COMPILE_FLAGS).encode())
    if directory is None:
        directory = Path(tempfile.gettempdir()) / f"kernelprof-lif-host-{digest.hexdigest()[:16]}"
    directory.mkdir(parents=True, exist_ok=True)
    library = directory / "liblif_host.so"
    if library.exists():
        return library
    partial = directory / f"liblif_host.{os.getpid()}.tmp.so"
    result = subprocess.run(
        [compiler, *COMPILE_FLAGS, "-o", str(partial), str(HOST_LAUNCH)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise HostBuildError(f"g++ failed on {HOST_LAUNCH.name}:\n{result.stdout}{result.stderr}")
    partial.replace(library)  # atomic: a concurrent build never loads half a file
    return library


def load(library: Path) -> ctypes.CDLL:
    """The built library with the argument types of every launcher and conversion set."""
    lib = ctypes.CDLL(str(library))
    for name in KERNEL_NAMES:
        launcher = getattr(lib, f"host_launch_{name}")
        forward = "_forward_" in name
        if name.split("_")[0] in STATE_PREFIXES:
            launcher.argtypes = _STATES_FORWARD_ARGS if forward else _STATES_BACKWARD_ARGS
        else:
            launcher.argtypes = _FORWARD_ARGS if forward else _BACKWARD_ARGS
    for name in CONVERSIONS:
        getattr(lib, f"host_{name}").argtypes = [_PTR, _PTR, ctypes.c_longlong]
    return lib


def _address(tensor: torch.Tensor | None) -> int:
    return 0 if tensor is None else tensor.data_ptr()  # 0 is nullptr: the kernel skips it


class HostKernels:
    """The FusedKernels protocol over the host build: a serial launch of up to ``max_blocks``
    blocks of ``block`` threads, on the vector or scalar path by the CuPy backend's rule, the
    grid sized by its arithmetic (``max_blocks`` plays the resident limit of one "SM").
    ``launched`` lists the entry points called, in order."""

    def __init__(self, lib: ctypes.CDLL, max_blocks: int = 1, block: int = 256) -> None:
        self.lib, self.max_blocks, self.block = lib, max_blocks, block
        self.name = f"cuda-host-{max_blocks}x{block}"
        self.launched: list[str] = []

    def _entry(self, direction: str, like: torch.Tensor, addresses, prefix: str):
        """(launcher, grid) of the entry point for [T, N] ``like`` at these addresses, on the
        vector or scalar path by the CuPy backend's rule; recorded in ``launched``."""
        if like.device.type != "cpu" or not like.is_contiguous():
            raise ValueError("the host build runs on contiguous CPU tensors")
        n = like.shape[1]
        vector = use_vector_path(n, like.element_size(), addresses)
        name = kernel_name(direction, like.dtype, vector, prefix)
        items = n // vector_lanes(like.element_size()) if vector else n
        self.launched.append(name)
        grid = persistent_grid(items, self.block, self.max_blocks, 1)
        return getattr(self.lib, f"host_launch_{name}"), grid

    def _launch(self, direction: str, like: torch.Tensor, addresses, config, decay, rest):
        """Runs the entry point; returns PLIF backward's dk partials (else None)."""
        launcher, grid = self._entry(direction, like, addresses, kernel_prefix(config, decay))
        steps, n = like.shape
        pointers = (*addresses, 0 if decay is None else decay.k.data_ptr())
        partials = None
        if direction == "backward":
            if decay is not None:
                size = dk_partials_size(decay, n, grid, self.block)
                partials = torch.zeros(max(size, 1), dtype=torch.float32)
            pointers = (*pointers, _address(partials))
        launcher(grid, self.block, *pointers, n, steps, *rest, *decay_scalars(decay))
        return partials

    def forward(self, x, spikes, margin, v, config: NeuronConfig, decay=None) -> None:
        rest = (kernel_tau(config), config.v_threshold, config.v_initial)
        rest += (config.soft_reset, config.decay_input)
        addresses = (_address(x), _address(spikes), _address(margin), _address(v))
        self._launch("forward", x, addresses, config, decay, rest)

    def backward(self, grad_spikes, grad_v, margin, grad_x, config: NeuronConfig, decay=None):
        rest = (kernel_tau(config), config.v_threshold, config.v_initial)
        rest += (config.soft_reset, config.decay_input, config.detach_reset)
        rest += (SURROGATE_ID[config.surrogate], config.alpha)
        addresses = (_address(grad_spikes), _address(grad_v), _address(margin), _address(grad_x))
        return self._launch("backward", margin, addresses, config, decay, rest)

    def _launch_states(self, direction: str, like: torch.Tensor, tensors, config, rest) -> None:
        addresses = tuple(_address(t) for t in tensors)
        launcher, grid = self._entry(direction, like, addresses, config.neuron)
        steps, n = like.shape
        launcher(grid, self.block, *addresses, n, steps, *rest)

    def forward_states(self, x, spikes, margin, theta, v, state, config: NeuronConfig) -> None:
        """CUBA or ALIF (reference_kernels.fused_states' contract)."""
        rest = (config.tau, config.v_threshold, config.v_initial, config.soft_reset)
        rest += (config.decay_input, state_decay(config), getattr(config, "beta_a", 0.0))
        tensors = (x, spikes, margin, theta, v, state)
        self._launch_states("forward", x, tensors, config, rest)

    def backward_states(self, grad_spikes, grad_v, grad_state, margin, theta, grad_x,
                        config: NeuronConfig) -> None:  # fmt: skip
        rest = (config.tau, config.v_threshold, config.v_initial, config.soft_reset,
                config.decay_input, config.detach_reset, SURROGATE_ID[config.surrogate],
                config.alpha, state_decay(config), getattr(config, "beta_a", 0.0),
                bool(getattr(config, "detach_adaptation", False)))  # fmt: skip
        tensors = (grad_spikes, grad_v, grad_state, margin, theta, grad_x)
        self._launch_states("backward", margin, tensors, config, rest)
