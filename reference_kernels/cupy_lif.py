"""The CUDA C fused LIF kernels (``cuda/lif.cu``), compiled by NVRTC through CuPy.

:class:`CupyKernels` implements the :class:`~reference_kernels.fused.FusedKernels` protocol, so
``lif_fused(x, CupyKernels(), config, return_v)`` gives the same autograd function as the Triton
backend with the CUDA C kernels underneath. Like the Triton backend, forward saves the margin
H - theta for backward (see lif.cu and fused.py for why). The source is compiled once per
device (CuPy also keeps the binary in its on-disk cache), and every launch goes on torch's
current stream, so the kernels order correctly with the surrounding PyTorch work without any
synchronisation.

:func:`cupy_unavailable_reason` says, without raising, why this backend cannot run here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reference_kernels.fused import FUSED_DTYPES

from .model import SURROGATE_ID, LIFConfig

if TYPE_CHECKING:
    import cupy

SOURCE_PATH = Path(__file__).parent / "cuda" / "lif.cu"
BLOCK_SIZE = 256
# Enough resident blocks to fill every SM several times over; the grid-stride loop covers the
# rest, so very large N does not launch millions of blocks.
BLOCKS_PER_SM = 8

_DTYPE_SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
KERNEL_NAMES = tuple(
    f"lif_{direction}_{suffix}"
    for direction in ("forward", "backward")
    for suffix in _DTYPE_SUFFIX.values()
)


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


@functools.cache
def _kernel(device_index: int, name: str) -> cupy.RawKernel:
    import cupy

    with cupy.cuda.Device(device_index):
        return _module(device_index).get_function(name)


@functools.cache
def _grid_limit(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count * BLOCKS_PER_SM


def _current_stream(device_index: int) -> cupy.cuda.Stream:
    """torch's current stream on the device, as a CuPy stream (CuPy does not own it)."""
    import cupy

    torch_stream = torch.cuda.current_stream(device_index)
    # CuPy >= 14 deprecates ExternalStream for the CUDA stream protocol, which torch implements.
    if hasattr(cupy.cuda.Stream, "from_external") and hasattr(torch_stream, "__cuda_stream__"):
        return cupy.cuda.Stream.from_external(torch_stream)
    return cupy.cuda.ExternalStream(torch_stream.cuda_stream, device_index)


def _pointer(tensor: torch.Tensor | None) -> np.uint64:
    # An explicit 64-bit integer is what a T* kernel parameter receives; 0 is nullptr.
    return np.uint64(0 if tensor is None else tensor.data_ptr())


def _check(name: str, tensor: torch.Tensor, like: torch.Tensor, dtype: torch.dtype) -> None:
    if tensor.shape != like.shape or tensor.dtype != dtype or tensor.device != like.device:
        raise ValueError(
            f"{name} must be {dtype} {tuple(like.shape)} on {like.device}, "
            f"got {tensor.dtype} {tuple(tensor.shape)} on {tensor.device}"
        )
    if not tensor.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


def _common_args(x: torch.Tensor, config: LIFConfig) -> tuple[Any, ...]:
    steps, n = x.shape
    return (
        np.int64(n),
        np.int32(steps),
        np.float32(config.tau),
        np.float32(config.v_threshold),
        np.float32(config.v_initial),  # v_reset; unused by the kernels under soft reset
        np.int32(config.soft_reset),
        np.int32(config.decay_input),
    )


class CupyKernels:
    """The CUDA C kernels of ``cuda/lif.cu`` behind the :class:`FusedKernels` protocol."""

    name = "cupy"

    def _launch(self, direction: str, like: torch.Tensor, args: tuple[Any, ...]) -> None:
        import cupy

        if like.dim() != 2:
            raise ValueError(f"expected a [T, N] tensor, got shape {tuple(like.shape)}")
        if like.device.type != "cuda":
            raise ValueError(f"expected a CUDA tensor, got one on {like.device}")
        if like.dtype not in _DTYPE_SUFFIX:
            raise ValueError(f"dtype must be one of {FUSED_DTYPES}, got {like.dtype}")
        n = like.shape[1]
        if like.numel() == 0:
            return
        device = like.device.index if like.device.index is not None else 0
        kernel = _kernel(device, f"lif_{direction}_{_DTYPE_SUFFIX[like.dtype]}")
        grid = min(-(-n // BLOCK_SIZE), _grid_limit(device))
        with cupy.cuda.Device(device), _current_stream(device):
            kernel((grid,), (BLOCK_SIZE,), args)

    def forward(
        self,
        x: torch.Tensor,
        spikes: torch.Tensor,
        margin: torch.Tensor,
        spikes_u8: torch.Tensor | None,
        v: torch.Tensor | None,
        config: LIFConfig,
    ) -> None:
        """Writes spikes, the margin H - theta into ``margin``, and spikes_u8 and V when given."""
        _check("x", x, x, x.dtype)
        _check("spikes", spikes, x, x.dtype)
        _check("margin", margin, x, x.dtype)
        if spikes_u8 is not None:
            _check("spikes_u8", spikes_u8, x, torch.uint8)
        if v is not None:
            _check("v", v, x, x.dtype)
        args = (
            _pointer(x),
            _pointer(spikes),
            _pointer(margin),
            _pointer(spikes_u8),
            _pointer(v),
            *_common_args(x, config),
        )
        self._launch("forward", x, args)

    def backward(
        self,
        grad_spikes: torch.Tensor,
        grad_v: torch.Tensor | None,
        margin: torch.Tensor,
        spikes_u8: torch.Tensor | None,
        grad_x: torch.Tensor,
        config: LIFConfig,
    ) -> None:
        """Writes grad_x from the upstream gradients and the saved margin (H - theta)."""
        _check("margin", margin, margin, margin.dtype)
        _check("grad_spikes", grad_spikes, margin, margin.dtype)
        if grad_v is not None:
            _check("grad_v", grad_v, margin, margin.dtype)
        if spikes_u8 is not None:
            _check("spikes_u8", spikes_u8, margin, torch.uint8)
        _check("grad_x", grad_x, margin, margin.dtype)
        args = (
            _pointer(grad_spikes),
            _pointer(grad_v),
            _pointer(margin),
            _pointer(spikes_u8),
            _pointer(grad_x),
            *_common_args(margin, config),
            np.int32(config.detach_reset),
            np.int32(SURROGATE_ID[config.surrogate]),
            np.float32(config.alpha),
        )
        self._launch("backward", margin, args)
