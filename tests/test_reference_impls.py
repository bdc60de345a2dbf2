"""Every reference implementation against the float64 oracle over the grid of tests/lif_cases.py.

Spikes must equal the oracle's except where a neuron first differs at an exact threshold tie;
V and dX must agree within atol = rtol = 1e-4 (float32) or 1e-2 (fp16/bf16) elsewhere.
"""

from __future__ import annotations

import pytest
import torch

import reference_kernels
from tests.lif_cases import case_id, check_case, covering_cases

CUDA = torch.cuda.is_available()
# Triton runs on CUDA where there is a GPU, else on CPU tensors under the interpreter.
TRITON_DEVICE = "cuda" if CUDA else "cpu"
# On a GPU machine the Triton grid is one of the CUDA checks (benchmarks/gpu_check.sh runs -m cuda).
on_triton_device = pytest.mark.cuda if CUDA else pytest.mark.triton_interpreter


def runner(impl: str, config):
    def run(x):
        return reference_kernels.run(x, config, impl=impl, return_v=True)

    return run


@pytest.mark.parametrize("case", covering_cases(dtypes=(torch.float32,)), ids=case_id)
def test_torch_float32_matches_float64_oracle(case):
    check_case(runner("torch", case[0]), case, "cpu")


@on_triton_device
@pytest.mark.parametrize("case", covering_cases(), ids=case_id)
def test_triton_matches_oracle(case):
    check_case(runner("triton", case[0]), case, TRITON_DEVICE)


# torch.compile builds one graph per (config, T, shape, dtype); each costs seconds of C++
# compilation on CPU, so compile is checked on every 6th config of the grid (8 per dtype row).
# The half-precision rows (10-60 s each, ~3.5 minutes together on 2 cores) and five of the
# eight float32 cases (66 s together) are under the slow marker (make test-slow, and
# gpu_check.sh's slow step); the default run keeps three float32 cases, both resets among them.
FAST_COMPILE_CASES = (0, 1, 6)  # hard/attach/decay, hard/attach/no decay, soft/attach/no decay


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=() if case[3] == torch.float32 and case[4] in FAST_COMPILE_CASES
                 else pytest.mark.slow)
    for case in covering_cases(every=6)
], ids=case_id)  # fmt: skip
def test_compile_matches_oracle(case):
    check_case(runner("compile", case[0]), case, "cpu")


@pytest.mark.cuda
@pytest.mark.parametrize("impl", ["torch", "cupy"])
@pytest.mark.parametrize("case", covering_cases(every=4), ids=case_id)
def test_cuda_impls_match_oracle(impl, case):
    check_case(runner(impl, case[0]), case, "cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("case", covering_cases(every=12), ids=case_id)
def test_compile_on_cuda_matches_oracle(case):
    check_case(runner("compile", case[0]), case, "cuda")


@pytest.mark.parametrize("impl", ["torch", "compile", "triton"])
def test_trailing_shape_is_kept_and_differentiable(impl):
    x = torch.randn(4, 2, 3, 5, device=TRITON_DEVICE if impl == "triton" else "cpu") + 1.0
    x.requires_grad_(True)
    spikes, v = reference_kernels.lif_multistep(x, impl=impl, return_v=True)
    assert spikes.shape == v.shape == x.shape
    assert spikes.dtype == x.dtype
    (spikes.sum() + v.sum()).backward()
    assert x.grad is not None and x.grad.shape == x.shape
    reference = reference_kernels.lif_multistep(x.detach().double(), impl="torch")
    assert torch.equal(spikes.detach().double().cpu(), reference.cpu())


def test_spikes_only_backward_matches_oracle_without_v():
    """return_v=False: gradients flow from the spikes alone, in every implementation."""
    x = torch.randn(8, 64) + 1.0
    grads = {}
    for impl in ("torch", "compile", "triton"):
        xi = x.clone().to(TRITON_DEVICE if impl == "triton" else "cpu").requires_grad_(True)
        reference_kernels.lif_multistep(xi, impl=impl, surrogate="atan", alpha=2.0).sum().backward()
        grads[impl] = xi.grad.cpu()
    assert torch.allclose(grads["compile"], grads["torch"], atol=1e-5)
    assert torch.allclose(grads["triton"], grads["torch"], atol=1e-5)
    assert grads["torch"].abs().sum() > 0
