"""The CUDA C fused neuron kernels (``cuda/lif.cu``: LIF, IF, PLIF, CUBA, ALIF), compiled by
NVRTC through CuPy.

:class:`CupyKernels` implements the :class:`~reference_kernels.fused.FusedKernels` protocol, so
``lif_fused(x, CupyKernels(), config, return_v)`` gives the same autograd function as the Triton
backend with the CUDA C kernels underneath. Like the Triton backend, forward saves the margin
H - theta for backward, and backward reads the spikes from its sign bit (see lif.cu and fused.py
for why). The source is compiled once per device (CuPy also keeps the binary in its on-disk
cache), and every launch goes on torch's current stream, so the kernels order correctly with
the surrounding PyTorch work without any synchronisation.

Launch shape: each kernel has a vector entry point (16-byte accesses, several neurons per
thread) and a scalar one; :func:`use_vector_path` picks between them, the same rule for the GPU
and for the host build the tests run. The grid is persistent: as many blocks as fit on the GPU
at once by the kernel's real register count (CUDA's occupancy calculator), or fewer when N needs
fewer (:func:`persistent_grid`); the kernels' grid-stride loops cover the rest.

The per-call Python work is kept to a few dictionary look-ups: the compiled kernel, its grid
limit and the CuPy wrapper of each torch stream are cached, and the launch itself is the one
method :meth:`CupyKernels._launch`.

:func:`cupy_unavailable_reason` says, without raising, why this backend cannot run here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .fused import FUSED_DTYPES, register
from .model import SURROGATE_ID, NeuronConfig, kernel_tau, state_decay

IMPL_NEURONS = ("if", "lif", "plif", "cuba", "alif")  # the neurons cuda/lif.cu runs
STATE_PREFIXES = ("cuba", "alif")  # their own parameter list (fused_states.py's contract)

if TYPE_CHECKING:
    import cupy

SOURCE_PATH = Path(__file__).parent / "cuda" / "lif.cu"
# Must equal LIF_BLOCK_SIZE and LIF_MIN_BLOCKS_PER_SM in lif.cu (a test checks): the kernels are
# compiled with __launch_bounds__(256, 4), so a block may have at most 256 threads, and ptxas
# keeps them at <= 64 registers so that 4 blocks fit per SM.
BLOCK_SIZE = 256
MIN_BLOCKS_PER_SM = 4
# (plifc_*, cuba_* and alif_* keep more per lane and ask for 3: LIF_MIN_BLOCKS_PER_SM_CHANNELS
# and LIF_MIN_BLOCKS_PER_SM_STATES.)
# Bytes per vector access: one 16-byte (128-bit) load or store per tensor per step.
VECTOR_BYTES = 16
# Per-SM limits of sm_80 .. sm_90, for grid sizing from a register count when the occupancy
# calculator is not at hand.
REGISTERS_PER_SM = 65536
THREADS_PER_SM = 2048

_DTYPE_SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
# Entry point prefixes: one per neuron, and PLIF's per-channel variant (plifc: k and dk per
# lane; one k keeps one register of each).
KERNEL_PREFIXES = ("if", "lif", "plif", "plifc", *STATE_PREFIXES)
KERNEL_NAMES = tuple(
    f"{neuron}_{direction}_{suffix}{path}"
    for neuron in KERNEL_PREFIXES
    for direction in ("forward", "backward")
    for path in ("", "_vec")
    for suffix in _DTYPE_SUFFIX.values()
)


def vector_lanes(itemsize: int) -> int:
    """Neurons per thread on the vector path: 4 float32, 8 fp16/bf16 (16 bytes)."""
    return VECTOR_BYTES // itemsize


def use_vector_path(n: int, itemsize: int, pointers: Sequence[int]) -> bool:
    """Whether the vector entry points may run over [T, n] tensors at these addresses (0 = an
    absent tensor): a 16-byte access needs 16-byte aligned addresses, and row t starts at
    base + t * n * itemsize, aligned for every t exactly when n is a multiple of the lanes."""
    if n % vector_lanes(itemsize):
        return False
    combined = 0
    for pointer in pointers:
        combined |= pointer  # aligned together exactly when their OR is
    return combined % VECTOR_BYTES == 0


def kernel_name(direction: str, dtype: torch.dtype, vector: bool, neuron: str = "lif") -> str:
    """The entry point of lif.cu for a neuron, direction ("forward"/"backward"), dtype and
    path."""
    return f"{neuron}_{direction}_{_DTYPE_SUFFIX[dtype]}{'_vec' if vector else ''}"


def kernel_prefix(config: NeuronConfig, decay) -> str:
    """The entry points' prefix for a neuron: its name, plifc for PLIF with k per channel."""
    if decay is not None and decay.per_channel:
        return "plifc"
    return config.neuron


def decay_scalars(decay) -> tuple[int, int]:
    """(k_channels, k_inner) of a launch: PLIF's, or (1, 1) where k is never read."""
    return (1, 1) if decay is None else (decay.channels, decay.inner)


def dk_partials_size(decay, n: int, grid: int, block: int) -> int:
    """Floats of PLIF backward's dk partials: one per neuron for a per-channel k, else one per
    thread of the grid."""
    return n if decay.per_channel else grid * block


def persistent_grid(work_items: int, block: int, blocks_per_sm: int, sm_count: int) -> int:
    """Blocks to launch for ``work_items`` threads' worth of work (neurons, or 16-byte packets
    on the vector path): one per ``block`` items, capped at what is resident at once (each
    thread then strides over several items), and at least 1."""
    needed = -(-work_items // block)
    return max(1, min(needed, max(1, blocks_per_sm) * sm_count))


def blocks_per_sm_from_registers(registers: int, block: int) -> int:
    """Resident blocks per SM that the register file and the thread slots allow (no shared
    memory is used); registers are allocated per warp in units of 256."""
    per_warp = -(-max(registers, 1) * 32 // 256) * 256
    by_registers = REGISTERS_PER_SM // (per_warp * -(-block // 32))
    return max(1, min(by_registers, THREADS_PER_SM // block))


def cupy_unavailable_reason() -> str | None:
    """None when CuPy imports and sees a usable CUDA device, else a one-line reason that keeps
    the underlying error text (e.g. a driver too old for CuPy's CUDA runtime)."""
    try:
        import cupy
    except ImportError as exc:
        return f"cupy is not installed ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except (cupy.cuda.runtime.CUDARuntimeError, RuntimeError, OSError) as exc:
        # CUDARuntimeError (a RuntimeError): no driver, a driver too old for CuPy's runtime, no
        # device; other RuntimeErrors and OSError: CUDA libraries CuPy loads lazily are missing.
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return f"cupy: {detail}"
    if count == 0:
        return "cupy: no CUDA device found"
    return None


@functools.cache
def _module(device_index: int) -> cupy.RawModule:
    """lif.cu compiled for one device (RawModule compiles for the device current at compile)."""
    import cupy

    with cupy.cuda.Device(device_index):
        module = cupy.RawModule(code=SOURCE_PATH.read_text(), options=("-std=c++17",))
        module.compile()
    return module


@dataclass(frozen=True)
class _Kernel:
    """A loaded entry point and what sizes its persistent grid."""

    function: Any  # cupy.cuda.function.Function, loaded on its device
    blocks_per_sm: int  # resident at once, by its real register count
    sm_count: int


@functools.cache
def _kernel(device_index: int, name: str) -> _Kernel:
    import cupy
    from cupy_backends.cuda.api import driver

    with cupy.cuda.Device(device_index):
        raw = _module(device_index).get_function(name)
        function = raw.kernel  # loads the module on this device
        try:
            blocks = driver.occupancyMaxActiveBlocksPerMultiprocessor(function.ptr, BLOCK_SIZE, 0)
        except (AttributeError, RuntimeError):  # no occupancy calculator in this CuPy / driver
            blocks = blocks_per_sm_from_registers(raw.num_regs, BLOCK_SIZE)
    sm_count = torch.cuda.get_device_properties(device_index).multi_processor_count
    return _Kernel(function, blocks, sm_count)


class _StreamRef:
    """A raw CUDA stream handle behind the CUDA stream protocol, for Stream.from_external."""

    __slots__ = ("handle",)

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.handle)


@functools.lru_cache(maxsize=64)
def _cupy_stream(device_index: int, handle: int) -> cupy.cuda.Stream:
    """A CuPy view of the raw stream ``handle`` (CuPy does not own it). Cached by the handle: if
    torch frees a stream and a new one gets its handle, the cached view is of the new stream,
    which is still right, since a view holds only the handle."""
    import cupy

    if hasattr(cupy.cuda.Stream, "from_external"):  # CuPy >= 14 deprecates ExternalStream
        return cupy.cuda.Stream.from_external(_StreamRef(handle))
    return cupy.cuda.ExternalStream(handle, device_index)


# torch's current raw stream handle without building a torch.cuda.Stream object per call (the
# private function is what torch's own generated code calls); the public API as a fallback.
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
    lambda device_index: torch.cuda.current_stream(device_index).cuda_stream
)


def _check_like(like: torch.Tensor, device_type: str) -> None:
    """The tensor a launch is sized by is a contiguous [T, N] tensor of a supported dtype on
    ``device_type`` (the other tensors match it by the FusedKernels contract). The quick test
    reads four attributes, ``get_device`` rather than a device object; the rest words the
    error."""
    index = like.get_device()  # -1 on the CPU
    if (
        like.dim() == 2
        and (index < 0) == (device_type == "cpu")
        and like.dtype in _DTYPE_SUFFIX
        and like.is_contiguous()
    ):
        return
    if like.dim() != 2:
        raise ValueError(f"expected a [T, N] tensor, got shape {tuple(like.shape)}")
    if like.device.type != device_type:
        raise ValueError(f"expected a {device_type.upper()} tensor, got one on {like.device}")
    if like.dtype not in _DTYPE_SUFFIX:
        raise ValueError(f"dtype must be one of {FUSED_DTYPES}, got {like.dtype}")
    raise ValueError("tensors must be contiguous")


def _plan(
    direction: str,
    dtype: torch.dtype,
    steps: int,
    n: int,
    vector: bool,
    config: NeuronConfig,
    decay_shape: tuple[int, int],
    prefix: str,
) -> tuple[str, int, tuple[Any, ...]]:
    """What a launch needs beside the device and the tensors' addresses: the entry point, the
    work items (threads' worth) and the scalar parameters as their exact C types. Called once
    per prepared launch (CupyKernels._prepared caches the result: numpy scalars cost about as
    much as the rest of a call's Python work together)."""
    name = kernel_name(direction, dtype, vector, prefix)
    items = n // vector_lanes(torch.empty(0, dtype=dtype).element_size()) if vector else n
    common = (
        np.int64(n),
        np.int32(steps),
        np.float32(kernel_tau(config)),
        np.float32(config.v_threshold),
        np.float32(config.v_initial),  # v_reset; unused by the kernels under soft reset
        np.int32(config.soft_reset),
        np.int32(config.decay_input),
    )
    if prefix in STATE_PREFIXES:  # the second state's decay and ALIF's beta_a, not k
        tail = (np.float32(state_decay(config)), np.float32(getattr(config, "beta_a", 0.0)))
    else:
        tail = (np.int64(decay_shape[0]), np.int64(decay_shape[1]))
    if direction == "forward":
        return name, items, (*common, *tail)
    rest = (
        np.int32(config.detach_reset),
        np.int32(SURROGATE_ID[config.surrogate]),
        np.float32(config.alpha),
    )
    if prefix in STATE_PREFIXES:
        detach = np.int32(bool(getattr(config, "detach_adaptation", False)))
        return name, items, (*common, *rest, *tail, detach)
    return name, items, (*common, *rest, *tail)


# An explicit 64-bit integer is what a T* kernel parameter receives. Addresses repeat from call
# to call (torch's caching allocator hands the same blocks back), so their numpy scalars are
# cached like the plans.
_pointer = functools.lru_cache(maxsize=4096)(np.uint64)


@dataclass(frozen=True)
class _Prepared:
    """A launch of one direction for one shape, dtype, device and config, on each path."""

    config: NeuronConfig  # kept alive: the cache is keyed by its id
    device: int
    vector: tuple[Any, int, tuple[Any, ...]] | None  # (function, grid, scalars); None: N odd
    scalar: tuple[Any, int, tuple[Any, ...]] | None
    empty: bool = False  # T or N is 0: nothing to launch


class CupyKernels:
    """The CUDA C kernels of ``cuda/lif.cu`` behind the :class:`FusedKernels` protocol."""

    name = "cupy"
    device_type = "cuda"  # where the tensors must live (benchmarks/host_overhead.py: "cpu")

    def __init__(self) -> None:
        # (direction, device, dtype, T, N, path, id(config)) -> (config, function, grid, scalars)
        # (direction, shape, dtype, device, id(config)) -> _Prepared
        self._prepared: dict[tuple, _Prepared] = {}

    def _select(
        self,
        direction: str,
        like: torch.Tensor,
        addresses: tuple[int, ...],
        config: NeuronConfig,
        decay=None,
    ) -> tuple[int, Any, int, tuple[Any, ...]] | None:
        """(device, function, grid, scalars) of ``direction``'s entry point for [T, N] ``like``
        at these ``addresses`` (the kernel's [T, N] tensors, 0 for absent ones), or None when
        there is nothing to launch.

        Everything but the addresses is prepared once per key, and ``like`` is checked in full
        only then (its shape, dtype and device are the key; contiguity is checked every call):
        one look-up per call. The config is keyed by identity, since hashing a config runs its
        generated __hash__ (~3,500 instructions); the entry keeps the config alive, so its id
        is never reused."""
        decay_shape = decay_scalars(decay)
        key = (direction, like.shape, like.dtype, like.get_device(), id(config), decay_shape)
        prepared = self._prepared.get(key)
        if prepared is None:
            _check_like(like, self.device_type)
            if len(self._prepared) >= 256:  # a long sweep over shapes: start over
                self._prepared.clear()
            prepared = self._prepared[key] = self._prepare(direction, like, config, decay)
        elif not like.is_contiguous():
            raise ValueError("tensors must be contiguous")
        if prepared.empty:
            return None
        combined = 0
        for address in addresses:
            combined |= address  # 16-byte aligned together exactly when their OR is
        if prepared.vector is not None and combined % VECTOR_BYTES == 0:
            return (prepared.device, *prepared.vector)
        return (prepared.device, *prepared.scalar)

    def _run(self, selected, pointers: tuple[int, ...]) -> None:
        """Launches a :meth:`_select`-ed entry point on torch's current stream."""
        device, function, grid, rest = selected
        stream = self._stream(device)
        self._launch(device, function, grid, (*map(_pointer, pointers), *rest), stream)

    def _prepare(self, direction: str, like: torch.Tensor, config: NeuronConfig,
                 decay) -> _Prepared:  # fmt: skip
        steps, n = like.shape
        device = like.get_device()
        if steps == 0 or n == 0:
            return _Prepared(config, device, None, None, empty=True)
        paths = {}
        for vector in (False, True):
            if vector and not use_vector_path(n, like.element_size(), ()):
                continue  # N not a multiple of the lanes: no row start is aligned
            name, items, rest = _plan(
                direction,
                like.dtype,
                steps,
                n,
                vector,
                config,
                decay_scalars(decay),
                kernel_prefix(config, decay),
            )
            kernel = self._kernel(device, name)
            grid = persistent_grid(items, BLOCK_SIZE, kernel.blocks_per_sm, kernel.sm_count)
            paths[vector] = (kernel.function, grid, rest)
        return _Prepared(config, device, paths.get(True), paths[False])

    # The two device look-ups (a benchmark replaces them on a machine without a GPU).
    def _kernel(self, device: int, name: str) -> _Kernel:
        """The loaded entry point ``name`` on ``device`` (cached)."""
        return _kernel(device, name)

    def _stream(self, device: int) -> Any:
        """CuPy's view of torch's current stream on ``device`` (cached by its handle)."""
        return _cupy_stream(device, _raw_stream(device))

    def _launch(self, device: int, function: Any, grid: int, args: tuple, stream: Any) -> None:
        """The launch alone (a benchmark may stub it to time the Python work around it)."""
        if torch.cuda.current_device() == device:
            function((grid,), (BLOCK_SIZE,), args, stream=stream)
            return
        import cupy

        # The function belongs to its device's context, which must be current to launch it.
        with cupy.cuda.Device(device):
            function((grid,), (BLOCK_SIZE,), args, stream=stream)

    def forward(
        self,
        x: torch.Tensor,
        spikes: torch.Tensor | None,
        margin: torch.Tensor | None,
        v: torch.Tensor | None,
        config: NeuronConfig,
        decay=None,
    ) -> None:
        """Writes each of spikes, the margin H - theta and V (after reset) that is not None."""
        addresses = (
            x.data_ptr(),
            0 if spikes is None else spikes.data_ptr(),  # 0 is nullptr: the kernel skips it
            0 if margin is None else margin.data_ptr(),
            0 if v is None else v.data_ptr(),
        )
        selected = self._select("forward", x, addresses, config, decay)
        if selected is not None:
            k = 0 if decay is None else decay.k.data_ptr()
            self._run(selected, (*addresses, k))

    def backward(
        self,
        grad_spikes: torch.Tensor,
        grad_v: torch.Tensor | None,
        margin: torch.Tensor,
        grad_x: torch.Tensor,
        config: NeuronConfig,
        decay=None,
    ) -> torch.Tensor | None:
        """Writes grad_x from the upstream gradients and the saved margin (S from its sign);
        for PLIF returns dk's partial sums (one per thread, or per neuron for per-channel k)."""
        addresses = (
            grad_spikes.data_ptr(),
            0 if grad_v is None else grad_v.data_ptr(),  # 0 is nullptr: the kernel skips it
            margin.data_ptr(),
            grad_x.data_ptr(),
        )
        selected = self._select("backward", margin, addresses, config, decay)
        if decay is None:
            if selected is not None:
                self._run(selected, (*addresses, 0, 0))
            return None
        grid = 1 if selected is None else selected[2]
        size = dk_partials_size(decay, margin.shape[1], grid, BLOCK_SIZE)
        # every partial is written (per neuron, or by every thread); zeros only where T or N is
        # 0 and nothing runs
        allocate = torch.zeros if selected is None else torch.empty
        partials = allocate(max(size, 1), dtype=torch.float32, device=margin.device)
        if selected is not None:
            self._run(selected, (*addresses, decay.k.data_ptr(), partials.data_ptr()))
        return partials

    def forward_states(self, x, spikes, margin, theta, v, state, config: NeuronConfig) -> None:
        """CUBA or ALIF (fused_states.py's contract): writes each output that is not None."""
        addresses = tuple(0 if t is None else t.data_ptr()  # 0 is nullptr: the kernel skips it
                          for t in (x, spikes, margin, theta, v, state))  # fmt: skip
        selected = self._select("forward", x, addresses, config)
        if selected is not None:
            self._run(selected, addresses)

    def backward_states(self, grad_spikes, grad_v, grad_state, margin, theta, grad_x,
                        config: NeuronConfig) -> None:  # fmt: skip
        """CUBA or ALIF: writes grad_x from dS (dV, the state's gradient), the margin, theta."""
        tensors = (grad_spikes, grad_v, grad_state, margin, theta, grad_x)
        addresses = tuple(0 if t is None else t.data_ptr() for t in tensors)
        selected = self._select("backward", margin, addresses, config)
        if selected is not None:
            self._run(selected, addresses)


KERNELS = CupyKernels()
register(KERNELS)  # callable from the custom ops of reference_kernels.fused (torch.compile)
