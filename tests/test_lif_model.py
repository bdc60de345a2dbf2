"""The canonical model itself: argument checks, golden trajectories, surrogate formulas."""

from __future__ import annotations

import math

import pytest
import torch

import reference_kernels
from reference_kernels.model import SURROGATES, LIFConfig, surrogate_grad


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"tau": 0.0}, "tau"),
        ({"tau": -1.0}, "tau"),
        ({"surrogate": "relu"}, "surrogate"),
        ({"impl": "numba"}, "impl"),
        ({"alpha": 0.0}, "alpha"),
        ({"v_threshold": float("nan")}, "v_threshold"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        reference_kernels.lif_multistep(torch.ones(2, 3), **kwargs)


def test_empty_time_dimension_is_rejected():
    with pytest.raises(ValueError, match="T"):
        reference_kernels.lif_multistep(torch.ones(0, 3))


def test_integer_input_is_rejected():
    with pytest.raises(ValueError, match="dtype"):
        reference_kernels.lif_multistep(torch.ones(2, 3, dtype=torch.int32))


@pytest.mark.parametrize("impl", ["triton", "cupy"])
def test_float64_is_rejected_by_fused_impls(impl):
    with pytest.raises(ValueError, match="dtype"):
        reference_kernels.lif_multistep(torch.ones(2, 3, dtype=torch.float64), impl=impl)


def test_cupy_on_cpu_tensors_names_the_device():
    with pytest.raises(ValueError, match="device"):
        reference_kernels.lif_multistep(torch.ones(2, 3), impl="cupy")


def test_hard_reset_golden_trajectory():
    # tau=2, theta=1, V_r=0: H0 = 0.75, H1 = 0.625, H2 = 1.5625 (fires), H3 = 1.0 (a tie: fires)
    x = torch.tensor([[1.5], [0.5], [2.5], [2.0]], dtype=torch.float64)
    spikes, v = reference_kernels.lif_multistep(x, return_v=True)
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0, 1.0]
    assert v.flatten().tolist() == [0.75, 0.625, 0.0, 0.0]


def test_soft_reset_and_no_decay_input_golden_trajectory():
    # soft reset, decay_input=False, tau=2: H = V/2 + X; V = H - S
    x = torch.tensor([[0.8], [0.7], [0.1]], dtype=torch.float64)
    spikes, v = reference_kernels.lif_multistep(x, v_reset=None, decay_input=False, return_v=True)
    # H0 = 0.8 -> V 0.8; H1 = 0.4 + 0.7 = 1.1 fires -> V 0.1; H2 = 0.05 + 0.1 = 0.15
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0]
    assert v.flatten().tolist() == pytest.approx([0.8, 0.1, 0.15])


def test_single_step_gradient_is_the_scaled_surrogate():
    x = torch.tensor([[1.6]], dtype=torch.float64, requires_grad=True)
    reference_kernels.lif_multistep(x, surrogate="atan", alpha=2.0).sum().backward()
    h = 0.8  # (1.6 - 0) / 2
    expected = (2.0 / 2) / (1 + (math.pi / 2 * 2.0 * (h - 1.0)) ** 2) / 2.0
    assert x.grad.item() == pytest.approx(expected)


# Each surrogate is the derivative of a smooth step; autograd of that step must agree.
SMOOTH_STEPS = {
    "sigmoid": lambda x, a: torch.sigmoid(a * x),
    "atan": lambda x, a: torch.atan(math.pi / 2 * a * x) / math.pi + 0.5,
    "superspike": lambda x, a: x / (1 + a * x.abs()),
    "piecewise_exp": lambda x, a: torch.sign(x) * (1 - torch.exp(-a * x.abs())) / 2,
}


@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("alpha", [0.5, 2.0, 5.0])
def test_surrogates_are_derivatives_of_their_smooth_steps(surrogate, alpha):
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    x = x[x != 0].requires_grad_(True)  # sign() has no derivative at 0
    (grad,) = torch.autograd.grad(SMOOTH_STEPS[surrogate](x, alpha).sum(), x)
    assert torch.allclose(surrogate_grad(x.detach(), surrogate, alpha), grad, atol=1e-12)


def test_config_is_hashable_and_frozen():
    config = LIFConfig()
    assert hash(config) == hash(LIFConfig())
    with pytest.raises(AttributeError):
        config.tau = 3.0
