"""The fused CUBA and ALIF kernels (reference_kernels.fused_states) through the Triton backend:
on CPU tensors under the interpreter, on CUDA where there is a GPU.

* every reset, decay_input and detach combination against the eager oracle: spikes equal, V, the
  second state and dX (upstream gradients on S, V and the state) within rounding, for both
  ``save`` variants, which give the same gradients bit for bit;
* half precision: the same arithmetic as the oracle's (float32 inside), stored in fp16;
* what the kernels allocate: forward writes S and the margin (ALIF: and theta[t], unless
  detach_reset), no V or state unless asked; backward allocates dX alone; recompute keeps X only;
* the custom ops pass opcheck, and torch.compile(fullgraph=True) keeps them as single nodes
  with the eager path's results.
"""

from __future__ import annotations

import pytest
import torch

import reference_kernels
from kernelprof.inputs import lif_input
from reference_kernels import fused_states
from reference_kernels.model import STATES, ALIFConfig, CUBAConfig
from tests.test_neurons import Allocations

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
pytestmark = pytest.mark.cuda if CUDA else pytest.mark.triton_interpreter

CONFIGS = [
    CUBAConfig(surrogate="atan", alpha=2.0),
    CUBAConfig(v_reset=None, decay_input=False, tau_syn=8.0),
    CUBAConfig(v_reset=-0.4, detach_reset=True, surrogate="piecewise_exp", alpha=2.0),
    CUBAConfig(v_reset=None, detach_reset=True, surrogate="superspike", alpha=1.0),
    ALIFConfig(surrogate="atan", alpha=2.0),
    ALIFConfig(v_reset=None, decay_input=False, beta_a=0.3, tau_a=5.0),
    ALIFConfig(v_reset=None, detach_reset=True, detach_adaptation=True, surrogate="superspike",
               alpha=1.0),
    ALIFConfig(v_reset=0.0, detach_adaptation=True, beta_a=0.5, tau_a=3.0, surrogate="sigmoid",
               alpha=4.0),
]  # fmt: skip


def _run(config, x, impl, save="margin", upstream=None):
    """(S, V, state, dX) with upstream gradients on all three outputs."""
    (name,) = STATES[config.neuron]
    xr = x.detach().clone().requires_grad_()
    spikes, state = reference_kernels.multistep(xr, config, impl=impl, return_state=True,
                                                save=save)  # fmt: skip
    loss = sum((out * g).sum() for out, g in zip((spikes, state["v"], state[name]), upstream,
                                                 strict=True))  # fmt: skip
    loss.backward()
    return spikes, state["v"], state[name], xr.grad


def _upstream(x, seed=5):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(x.shape, generator=generator).to(x) for _ in range(3)]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_triton_runs_the_oracles_neuron_and_its_adjoints(config):
    x = lif_input((8, 300), config, seed=4).to(DEVICE)
    upstream = _upstream(x)
    want = _run(config, x, "torch", upstream=upstream)
    margin = _run(config, x, "triton", upstream=upstream)
    recompute = _run(config, x, "triton", "recompute", upstream=upstream)
    assert 0.05 < float(want[0].mean()) < 0.7
    assert torch.equal(margin[0], want[0]) and torch.equal(recompute[0], want[0])
    for got, expected in zip(margin[1:], want[1:], strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(margin, recompute, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[5]], ids=str)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_half_precision_matches_the_oracle(config, dtype):
    """Both compute in float32 from the same half inputs and round once on storing: spikes
    agree exactly, V and the state exactly in fp16 and within one unit of the last place in bf16
    (the Triton interpreter truncates float32 to bf16, triton/runtime/interpreter.py
    _convert_float without a rounding mode, where torch and the GPU round to nearest even); dX
    within the half margin's rounding."""
    x = lif_input((6, 200), config, seed=3).to(DEVICE, dtype)
    upstream = _upstream(x)
    want = _run(config, x, "torch", upstream=upstream)
    got = _run(config, x, "triton", upstream=upstream)
    assert torch.equal(got[0], want[0])
    ulp = 0.0 if dtype == torch.float16 or CUDA else 2.0**-7
    for a, b in zip(got[1:3], want[1:3], strict=True):
        torch.testing.assert_close(a.float(), b.float(), atol=ulp, rtol=ulp)
    torch.testing.assert_close(got[3].float(), want[3].float(), atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[4], CONFIGS[6]], ids=str)
@pytest.mark.parametrize("save", ["margin", "recompute"])
def test_forward_reads_x_once_and_writes_s_once(config, save):
    """The [T, N] tensors each direction allocates: forward S, plus the margin (and ALIF's theta
    unless detach_reset) when it saves them; backward dX alone (recompute: plus the transient
    margin and theta it rebuilds). Nothing for V or the state unless they are returned."""
    x = lif_input((8, 64), config, seed=1).to(DEVICE).requires_grad_()
    elements = x.numel()
    theta = fused_states.saves_theta(config)
    with Allocations() as forward:
        spikes = reference_kernels.multistep(x, config, impl="triton", save=save)
    grad = torch.ones_like(spikes)
    with Allocations() as backward:
        spikes.backward(grad)
    big = lambda recorded: sum(size >= elements for _op, size in recorded.sizes)  # noqa: E731
    saved = 1 + theta
    assert big(forward) == 1 + (saved if save == "margin" else 0), forward.sizes
    assert big(backward) == 1 + (saved if save == "recompute" else 0), backward.sizes
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("config", [CONFIGS[1], CONFIGS[4]], ids=str)
@pytest.mark.parametrize("return_v", [False, True])
def test_forward_op_passes_opcheck(config, return_v):
    reference_kernels.fused_kernels("triton", torch.device(DEVICE))  # imported: registered
    x = lif_input((5, 40), config, seed=2).to(DEVICE).requires_grad_()
    args = (x, "triton", *fused_states._fields(config), return_v, True)
    torch.library.opcheck(fused_states.states_fused_forward, args)


@pytest.mark.parametrize("config", [CONFIGS[0], CONFIGS[4]], ids=str)
def test_torch_compile_fullgraph_gives_eager_results(config):
    (name,) = STATES[config.neuron]

    def step(x):
        spikes, state = reference_kernels.multistep(x, config, impl="triton", return_state=True)
        return spikes * 2.0 + state["v"] - state[name]

    traced = []

    def keep_graph(graph_module, example_inputs):
        traced.append(graph_module)
        return graph_module.forward

    x = lif_input((6, 50), config, seed=6).to(DEVICE)
    torch.compile(step, fullgraph=True, backend=keep_graph)(x.clone().requires_grad_())
    (graph,) = traced  # one graph: no break
    targets = [node.target for node in graph.graph.nodes if node.op == "call_function"]
    assert targets.count(torch.ops.reference_kernels.states_fused_forward.default) == 1, targets

    compiled = torch.compile(step, fullgraph=True, backend=keep_graph)
    grad = torch.randn_like(x)
    outs, grads = [], []
    for fn in (step, compiled):
        xr = x.clone().requires_grad_()
        out = fn(xr)
        out.backward(grad)
        outs.append(out)
        grads.append(xr.grad)
    assert torch.equal(outs[0], outs[1]) and torch.equal(grads[0], grads[1])


@pytest.mark.cuda
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_cupy_runs_the_oracles_neuron_on_the_gpu(config):
    """The CUDA C kernels (impl='cupy') on a GPU, the vector path (N = 512): spikes equal to
    the oracle's, V, the state and dX within 1e-5, margin and recompute bit-equal."""
    reason = reference_kernels.unavailable_reason("cupy", "cuda")
    if reason is not None:
        pytest.skip(f"unavailable: {reason}")
    x = lif_input((8, 512), config, seed=4).cuda()
    upstream = _upstream(x)
    want = _run(config, x, "torch", upstream=upstream)
    margin = _run(config, x, "cupy", upstream=upstream)
    recompute = _run(config, x, "cupy", "recompute", upstream=upstream)
    assert torch.equal(margin[0], want[0]) and torch.equal(recompute[0], want[0])
    for got, expected in zip(margin[1:], want[1:], strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(margin, recompute, strict=True):
        assert torch.equal(a, b)
