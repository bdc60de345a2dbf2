"""The fused kernels as PyTorch custom ops (reference_kernels.fused), through the Triton backend:
on CPU tensors under the interpreter, on CUDA where there is a GPU.

* the ops pass torch.library.opcheck (schema, fake tensors, autograd registration);
* torch.compile(fullgraph=True) keeps fwd+bwd as the ops (the built-in backends registered at
  import, since eager calls take the autograd.Function and register nothing), with the eager
  path's results;
* an unused V output costs backward no gradient tensor;
* save="recompute" keeps only X for backward, writes no margin in forward, and gives the
  default's gradients bit for bit;
* backward takes S from the margin's sign bit: a negative margin that fp16 rounds to -0.0 is
  not a spike;
* on a GPU, fwd+bwd captured in a CUDA graph replays to eager's results.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference_kernels
from reference_kernels import fused
from reference_kernels.model import LIFConfig, PLIFConfig
from reference_kernels.torch_ref import lif_trajectory

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
pytestmark = pytest.mark.cuda if CUDA else pytest.mark.triton_interpreter
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _input(shape=(6, 4, 10), dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator) * 0.6 + 0.7
    return x.to(DEVICE, dtype).requires_grad_()


class Recording:
    """The Triton backend, recording which outputs and gradients each call was given."""

    name = "recording-triton"

    def __init__(self):
        from reference_kernels.triton_lif import KERNELS

        self.kernels, self.calls = KERNELS, []

    def forward(self, x, spikes, margin, v, config):
        self.calls.append(("forward", spikes is not None, margin is not None, v is not None))
        self.kernels.forward(x, spikes, margin, v, config)

    def backward(self, grad_spikes, grad_v, margin, grad_x, config):
        self.calls.append(("backward", grad_v is not None))
        self.kernels.backward(grad_spikes, grad_v, margin, grad_x, config)


@pytest.mark.parametrize("return_v", [False, True])
@pytest.mark.parametrize("save_margin", [True, False])
def test_forward_op_passes_opcheck(return_v, save_margin):
    reference_kernels.fused_kernels("triton", torch.device(DEVICE))  # imported: registered
    x = _input().detach().reshape(6, -1).requires_grad_()
    config = LIFConfig(v_reset=None, surrogate="atan", alpha=2.0)
    args = (x, None, "triton", *fused._fields(config), 1, return_v, save_margin)
    torch.library.opcheck(fused.lif_fused_forward, args)


@pytest.mark.parametrize("per_channel", [False, True])
def test_plif_forward_op_passes_opcheck(per_channel):
    """The op with PLIF's k (one, or one per channel of [T, B, C]) as a differentiable input."""
    reference_kernels.fused_kernels("triton", torch.device(DEVICE))
    x = _input().detach().reshape(6, 4, -1).requires_grad_()
    config = PLIFConfig(per_channel=per_channel)
    k = torch.sigmoid(config.initial_w(x.shape[2]) + 0.2).requires_grad_()
    args = (x.reshape(6, -1), k, "triton", *fused._fields(config), 1, True, True)
    torch.library.opcheck(fused.lif_fused_forward, args)


def test_torch_compile_fullgraph_gives_eager_results():
    def step(x):
        spikes, v = reference_kernels.lif_multistep(x, impl="triton", return_v=True)
        return spikes * 2.0 + v

    traced = []

    def keep_graph(graph_module, example_inputs):
        traced.append(graph_module)
        return graph_module.forward

    torch.compile(step, fullgraph=True, backend=keep_graph)(_input())
    (graph,) = traced  # one graph: no break
    targets = [node.target for node in graph.graph.nodes if node.op == "call_function"]
    assert targets.count(torch.ops.reference_kernels.lif_fused_forward.default) == 1, targets

    compiled = torch.compile(step, fullgraph=True)
    x_eager, x_compiled = _input(), _input()
    grad = torch.randn_like(x_eager)
    out_eager, out_compiled = step(x_eager), compiled(x_compiled)
    out_eager.backward(grad)
    out_compiled.backward(grad)
    assert torch.equal(out_compiled, out_eager)
    assert torch.equal(x_compiled.grad, x_eager.grad)


def test_unused_v_costs_backward_no_gradient_tensor():
    kernels = Recording()
    x = _input()
    spikes, v = fused.lif_fused(x, kernels, LIFConfig(), True)
    spikes.sum().backward()
    assert kernels.calls == [("forward", True, True, True), ("backward", False)]
    kernels.calls.clear()
    spikes, v = fused.lif_fused(x, kernels, LIFConfig(), True)
    v.sum().backward()
    assert kernels.calls == [("forward", True, True, True), ("backward", True)]


def _recorder(packed: list):
    """A pack hook that records each tensor saved for backward and keeps it as it is."""

    def pack(tensor):
        packed.append(tensor)
        return tensor

    return pack


def _unpack(tensor):
    return tensor


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_recompute_keeps_only_x_and_matches_the_default_bit_for_bit(dtype):
    kernels = Recording()
    config = LIFConfig(tau=3.0, surrogate="sigmoid", alpha=4.0)
    saved = {}
    x_default, x_recompute = _input(dtype=dtype), _input(dtype=dtype)
    grad = torch.randn_like(x_default)
    for save, x in (("margin", x_default), ("recompute", x_recompute)):
        packed = saved.setdefault(save, [])
        with torch.autograd.graph.saved_tensors_hooks(_recorder(packed), _unpack):
            spikes = fused.lif_fused(x, kernels, config, False, save=save)
        spikes.backward(grad)
    (margin,) = saved["margin"]
    (kept,) = saved["recompute"]
    assert kept.data_ptr() == x_recompute.data_ptr()  # X itself, no new tensor
    assert margin.data_ptr() != x_default.data_ptr()
    assert torch.equal(x_recompute.grad, x_default.grad)
    assert x_default.grad.abs().sum() > 0
    # default: forward writes the margin; recompute: forward writes none, backward recomputes it
    assert kernels.calls == [
        ("forward", True, True, False),
        ("backward", False),
        ("forward", True, False, False),
        ("forward", False, True, False),
        ("backward", False),
    ]


def test_save_is_checked():
    x = _input()
    with pytest.raises(ValueError, match="save must be one of margin, recompute"):
        reference_kernels.lif_multistep(x, impl="triton", save="nothing")
    with pytest.raises(ValueError, match="applies to the fused impls"):
        reference_kernels.lif_multistep(x.detach().cpu(), impl="torch", save="recompute")


def test_fp16_margin_rounded_to_negative_zero_is_not_a_spike():
    """H - theta one float32 ulp below zero is far below fp16's smallest subnormal: it is
    stored as -0.0, which compares >= 0; backward must read 'no spike' from its sign bit."""
    x = torch.tensor([[0.2], [0.2]], dtype=torch.float16)
    tau = 3.0
    h0 = np.float32(x[0, 0].item()) / np.float32(tau)  # H[0] = x / tau (V starts at 0)
    theta = float(np.nextafter(h0, np.float32(np.inf)))
    config = LIFConfig(tau=tau, v_threshold=theta, v_reset=0.0, surrogate="sigmoid", alpha=4.0)
    kernels = reference_kernels.fused_kernels("triton", torch.device(DEVICE))
    xd = x.to(DEVICE)
    spikes, margin = torch.empty_like(xd), torch.empty_like(xd)
    kernels.forward(xd, spikes, margin, None, config)
    assert spikes[0, 0] == 0 and margin[0, 0] == 0 and math.copysign(1, margin[0, 0]) < 0

    grad_s = torch.tensor([[0.5], [-1.0]], dtype=torch.float16)
    grad_v = torch.tensor([[0.25], [1.0]], dtype=torch.float16)
    x_fused = xd.clone().requires_grad_()
    s_fused, v_fused = reference_kernels.run(x_fused, config, impl="triton", return_v=True)
    torch.autograd.backward([s_fused, v_fused], [grad_s.to(DEVICE), grad_v.to(DEVICE)])
    x_oracle = x.double().requires_grad_()
    s_oracle, v_oracle, _ = lif_trajectory(x_oracle, config)
    torch.autograd.backward([s_oracle, v_oracle], [grad_s.double(), grad_v.double()])
    # read as a spike, the hard reset would zero dV/dH and flip dV/dS: dX[0] far off
    torch.testing.assert_close(x_fused.grad.cpu().double(), x_oracle.grad, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("neurons", [8, 3], ids=["aligned", "odd"])
def test_float32_threshold_ties_store_a_positive_margin(neurons):
    """H == theta fires with margin +0.0, and so does X = -0.0 against theta = +0.0 with
    V_r = -0.0 (where the oracle's H is -0.0, the kernel's +0.0, since its V starts at
    0.0 + V_r): the stored margin must be +0.0, or backward reads 'no spike' from the sign bit
    and the hard reset's gradient goes the wrong way."""
    kernels = reference_kernels.fused_kernels("triton", torch.device(DEVICE))
    grad_s = torch.full((2, neurons), 0.5)
    grad_v = torch.full((2, neurons), 1.0)
    for value, config in [
        (1.0, LIFConfig(tau=2.0, v_threshold=0.5, v_reset=0.0)),
        (-0.0, LIFConfig(tau=2.0, v_threshold=0.0, v_reset=-0.0)),
    ]:
        x = torch.full((2, neurons), value, device=DEVICE)
        spikes, margin = torch.empty_like(x), torch.empty_like(x)
        kernels.forward(x, spikes, margin, None, config)
        assert bool(spikes[0].eq(1).all())
        zero_bits = torch.zeros(neurons, dtype=torch.int32)
        assert torch.equal(margin[0].cpu().view(torch.int32), zero_bits), value

        x_fused = x.clone().requires_grad_()
        s_fused, v_fused = reference_kernels.run(x_fused, config, impl="triton", return_v=True)
        torch.autograd.backward([s_fused, v_fused], [grad_s.to(DEVICE), grad_v.to(DEVICE)])
        x_oracle = x.cpu().double().requires_grad_()
        s_oracle, v_oracle, _ = lif_trajectory(x_oracle, config)
        torch.autograd.backward([s_oracle, v_oracle], [grad_s.double(), grad_v.double()])
        assert torch.equal(s_fused.detach().cpu(), torch.ones_like(x.cpu()))
        torch.testing.assert_close(x_fused.grad.cpu().double(), x_oracle.grad, atol=1e-6, rtol=1e-6)


@pytest.mark.cuda
@pytest.mark.parametrize("impl", ["triton", "cupy"])
def test_cuda_graph_captures_forward_and_backward(impl):
    reason = reference_kernels.unavailable_reason(impl, "cuda")
    if reason is not None:
        pytest.skip(f"unavailable: {reason}")
    x = _input((8, 1 << 16)).detach()
    grad = torch.randn_like(x)
    static_x = x.clone().requires_grad_()

    def step():
        static_x.grad = None
        spikes = reference_kernels.lif_multistep(static_x, impl=impl)
        spikes.backward(grad)
        return spikes

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture: autotuning, module loading
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    static_x.grad = None
    with torch.cuda.graph(graph):
        static_spikes = reference_kernels.lif_multistep(static_x, impl=impl)
        static_spikes.backward(grad)
    new_x = x * 1.1
    static_x.data.copy_(new_x)
    graph.replay()
    eager_x = new_x.clone().requires_grad_()
    eager = reference_kernels.lif_multistep(eager_x, impl=impl)
    eager.backward(grad)
    torch.cuda.synchronize()
    assert torch.equal(static_spikes, eager)
    assert torch.equal(static_x.grad, eager_x.grad)
