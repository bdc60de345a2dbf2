"""kernelprof's own reference kernels (reference_kernels), as rows of the comparison."""

from __future__ import annotations

import torch

import reference_kernels
from kernelprof.impls.registry import Built, Implementation, register
from kernelprof.lif import LIFConfig

PATHS = {
    "torch": "eager PyTorch loop (the oracle's code, autograd backward)",
    "compile": "torch.compile: one fused forward loop, one fused reverse-time backward loop",
    "triton": "Triton: one forward kernel over T, one reverse-time backward kernel",
    "cupy": "CUDA C (lif.cu) through CuPy: one forward kernel, one backward kernel",
}


def _builder(impl: str):
    def build(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
        def run(x: torch.Tensor):
            return reference_kernels.run(x, config, impl=impl, return_v=True)

        return Built(run=run, path=PATHS[impl])

    return build


def _device_problem(impl: str):
    def problem(device: torch.device) -> str | None:
        return reference_kernels.unavailable_reason(impl, device)

    return problem


for _impl in reference_kernels.IMPLS:
    register(
        Implementation(
            name=f"ref-{_impl}",
            framework="kernelprof reference",
            build=_builder(_impl),
            devices=("cuda",) if _impl == "cupy" else ("cpu", "cuda"),
            description=PATHS[_impl],
            device_problem=_device_problem(_impl),
        )
    )
