"""IF and PLIF in the reference kernels: the configs, the oracle against hand-made trajectories
and the issue's closed form of dw, and every implementation of ``reference_kernels.multistep``
against the float64 oracle (the Triton kernels under the interpreter, as the suite runs them)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import reference_kernels
from reference_kernels.model import IFConfig, LIFConfig, PLIFConfig, channel_shape
from reference_kernels.torch_ref import SpikeFunction, trajectory
from tests.neuron_cases import (
    check_neuron,
    if_configs,
    neuron_id,
    neuron_input,
    plif_configs,
    start_w,
)

NEURON_CONFIGS = if_configs() + plif_configs()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: PLIFConfig(tau=1.0), "tau0 of PLIF"),
        (lambda: PLIFConfig(tau=float("inf")), "tau0 of PLIF"),
        (lambda: PLIFConfig(per_channel=1), "per_channel"),
        (lambda: IFConfig(v_threshold=float("nan")), "v_threshold"),
        (lambda: IFConfig(surrogate="relu"), "surrogate"),
        (lambda: PLIFConfig(alpha=0.0), "alpha"),
    ],
)
def test_invalid_configs_name_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_plif_starts_at_one_over_tau0():
    for tau in (1.5, 2.0, 10.0):
        assert math.isclose(1.0 / (1.0 + math.exp(-PLIFConfig(tau=tau).w0)), 1.0 / tau)
    assert PLIFConfig().initial_w().shape == ()
    assert PLIFConfig(per_channel=True).initial_w(5).shape == (5,)


def test_configs_are_distinct_and_name_their_neuron():
    assert {IFConfig().neuron, LIFConfig().neuron, PLIFConfig().neuron} == {"if", "lif", "plif"}
    assert PLIFConfig() != LIFConfig() and hash(PLIFConfig()) == hash(PLIFConfig())
    assert "neuron" not in PLIFConfig().as_dict()


def test_channel_shape():
    assert channel_shape((4, 3, 5, 5)) == (4, 3, 25)
    assert channel_shape((4, 3)) == (4, 3, 1)
    assert channel_shape((7,)) == (1, 7, 1)


def test_if_golden_trajectory():
    x = torch.tensor([[0.6], [0.6], [0.6], [-0.2]], dtype=torch.float64)
    spikes, v, h = trajectory(x, IFConfig())
    assert h.flatten().tolist() == pytest.approx([0.6, 1.2, 0.6, 0.4])
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert v.flatten().tolist() == pytest.approx([0.6, 0.0, 0.6, 0.4])
    _, v_soft, _ = trajectory(x, IFConfig(v_reset=None))
    assert v_soft.flatten().tolist() == pytest.approx([0.6, 0.2, 0.8, 0.6])


def test_plif_at_w0_is_lif_with_tau0():
    x = neuron_input((6, 50), PLIFConfig(), torch.float64)
    for decay in (True, False):
        lif = LIFConfig(tau=3.0, decay_input=decay, v_reset=None)
        plif = PLIFConfig(tau=3.0, decay_input=decay, v_reset=None)
        s_lif, v_lif, _ = trajectory(x, lif)
        s_plif, v_plif, _ = trajectory(x, plif, plif.initial_w(dtype=torch.float64))
        assert torch.equal(s_lif, s_plif)
        torch.testing.assert_close(v_plif, v_lif, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("decay_input", [True, False])
def test_dw_is_the_closed_form_of_the_issue(decay_input):
    """dw = k (1 - k) * sum over t and neurons of gH[t] * dH[t]/dk, with gH taken from an
    independent loop (retain_grad on each H), equals what autograd gives the oracle's w."""
    config = PLIFConfig(tau=2.5, v_reset=-0.2, decay_input=decay_input)
    x = neuron_input((5, 40), config, torch.float64, seed=4)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    w = torch.tensor(config.w0 + 0.4, dtype=torch.float64, requires_grad=True)
    spikes, _, _ = trajectory(x, config, w)
    (spikes * g).sum().backward()

    k = torch.sigmoid(w.detach())
    v = torch.full_like(x[0], config.v_reset)
    hs, terms = [], []
    loss = 0.0
    for t in range(x.shape[0]):
        term = x[t] - (v - config.v_reset) if decay_input else -(v - config.v_reset)  # dH/dk
        h = v + term * k + (0.0 if decay_input else x[t])
        h = h.requires_grad_() if t == 0 else h
        h.retain_grad()
        spike = SpikeFunction.apply(h - config.v_threshold, config.surrogate, config.alpha)
        terms.append(term)
        hs.append(h)
        v = spike * config.v_reset + (1 - spike) * h
        loss = loss + (spike * g[t]).sum()
    loss.backward()
    closed = k * (1 - k) * sum((h.grad * term).sum() for h, term in zip(hs, terms, strict=True))
    torch.testing.assert_close(w.grad, closed, atol=1e-12, rtol=1e-10)


IMPLS = ("torch", "triton")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", NEURON_CONFIGS, ids=neuron_id)
def test_multistep_matches_the_oracle(impl, config):
    shape = (6, 3, 4, 5) if config.neuron == "plif" else (6, 301)
    x = neuron_input(shape, config, seed=len(neuron_id(config)))
    w = start_w(config, shape)
    figures = check_neuron(lambda x, w: _spikes_and_v(x, config, impl, w), config, x, w)
    assert 0.05 <= figures["firing_rate"] <= 0.5


def _spikes_and_v(x, config, impl, w, save="margin"):
    spikes, state = reference_kernels.multistep(x, config, impl=impl, return_state=True, w=w,
                                                save=save)  # fmt: skip
    return spikes, state["v"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("config", [plif_configs()[0], plif_configs()[3], if_configs()[1]],
                         ids=neuron_id)  # fmt: skip
def test_triton_half_precision_matches_the_oracle(config, dtype):
    shape = (5, 2, 8, 9)
    x = neuron_input(shape, config, dtype=dtype, seed=2)
    check_neuron(lambda x, w: _spikes_and_v(x, config, "triton", w), config, x,
                 start_w(config, shape))  # fmt: skip


@pytest.mark.parametrize("config", [plif_configs()[0], plif_configs()[5], if_configs()[2]],
                         ids=neuron_id)  # fmt: skip
def test_compile_matches_the_oracle(config):
    shape = (4, 2, 3, 5)
    x = neuron_input(shape, config, seed=5)
    check_neuron(lambda x, w: _spikes_and_v(x, config, "compile", w), config, x,
                 start_w(config, shape))  # fmt: skip


@pytest.mark.parametrize("config", [plif_configs()[1], plif_configs()[2]], ids=neuron_id)
def test_recompute_gives_the_same_gradients(config):
    shape = (5, 2, 4, 6)
    x = neuron_input(shape, config, seed=7)
    w = start_w(config, shape)
    grads = []
    for save in ("margin", "recompute"):
        xi, wi = x.clone().requires_grad_(), w.clone().requires_grad_()
        spikes, v = _spikes_and_v(xi, config, "triton", wi, save=save)
        (spikes.sum() + (v * v).sum()).backward()
        grads.append((xi.grad, wi.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def test_w_is_checked():
    x = torch.zeros(3, 2, 4, 5)
    with pytest.raises(ValueError, match="w: PLIF needs"):
        reference_kernels.multistep(x, PLIFConfig(), impl="torch")
    with pytest.raises(ValueError, match="0-dim"):
        reference_kernels.multistep(x, PLIFConfig(), w=torch.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        reference_kernels.multistep(x, PLIFConfig(per_channel=True), w=torch.zeros(5))
    with pytest.raises(ValueError, match="only PLIF"):
        reference_kernels.multistep(x, IFConfig(), w=torch.zeros(()))


def test_return_state_names_the_membrane():
    x = neuron_input((4, 10), IFConfig())
    spikes, state = reference_kernels.multistep(x, IFConfig(), return_state=True)
    assert set(state) == {"v"} and state["v"].shape == spikes.shape == x.shape


class Allocations(TorchDispatchMode):
    """Records the element count of every tensor an aten op returns in new memory: one whose
    storage is none of its inputs' (views, in-place ops and the interpreter's set_ are not)."""

    def __init__(self):
        super().__init__()
        self.sizes: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = set()
        for arg in torch.utils._pytree.tree_leaves((args, kwargs or {})):
            if isinstance(arg, torch.Tensor):
                inputs.add(arg.untyped_storage().data_ptr())
            elif isinstance(arg, torch.UntypedStorage):
                inputs.add(arg.data_ptr())
        for tensor in torch.utils._pytree.tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            if tensor.untyped_storage().data_ptr() not in inputs:
                self.sizes.append((str(func), tensor.numel()))
        return out


@pytest.mark.parametrize("per_channel", [False, True])
def test_plif_backward_makes_no_t_by_n_temporary_for_dw(per_channel):
    """Backward of the fused PLIF allocates one [T, N] tensor, dX; dw's partial sums are at
    most one float per neuron (per channel) or per program (one k)."""
    config = PLIFConfig(per_channel=per_channel)
    shape = (8, 2, 16, 64)
    steps, neurons = shape[0], math.prod(shape[1:])
    x = neuron_input(shape, config).requires_grad_()
    w = config.initial_w(16).requires_grad_()
    spikes = reference_kernels.multistep(x, config, impl="triton", w=w)
    grad = torch.randn_like(spikes)
    with Allocations() as recorded:
        spikes.backward(grad)
    big = [(op, size) for op, size in recorded.sizes if size >= steps * neurons]
    assert len(big) == 1, big  # dX
    partials = max(size for op, size in recorded.sizes if size < steps * neurons)
    assert partials <= (neurons if per_channel else math.ceil(neurons / 256)), recorded.sizes
    assert w.grad is not None and x.grad is not None


@pytest.mark.cuda
@pytest.mark.parametrize("impl", ["triton", "cupy", "compile"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("config", [*if_configs()[:2], *plif_configs()], ids=neuron_id)
def test_cuda_kernels_match_the_oracle(impl, dtype, config):
    """The fused kernels on the GPU (vector path: N = 2 x 8 x 64), IF and PLIF with dw."""
    reason = reference_kernels.unavailable_reason(impl, "cuda")
    if reason is not None:
        pytest.skip(f"unavailable: {reason}")
    shape = (8, 2, 8, 64)
    x = neuron_input(shape, config, dtype=dtype, seed=11).cuda()
    check_neuron(lambda x, w: _spikes_and_v(x, config, impl, w), config, x,
                 None if config.neuron != "plif" else start_w(config, shape).cuda())  # fmt: skip
