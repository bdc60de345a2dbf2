"""The oracle comparison must catch wrong implementations, and excuse only real threshold ties."""

from __future__ import annotations

import torch

import reference_kernels
from kernelprof.inputs import lif_input
from kernelprof.verify.agreement import check_against_oracle, spike_agreement
from reference_kernels.model import LIFConfig, surrogate_grad
from reference_kernels.torch_ref import lif_trajectory

CONFIG = LIFConfig()


def test_planted_flip_away_from_threshold_is_not_a_tie():
    x = lif_input((8, 500), CONFIG, dtype=torch.float64, seed=3)
    spikes, _, h = lif_trajectory(x, CONFIG)
    far = ((h - 1.0).abs() > 0.1).nonzero()[0]
    wrong = spikes.clone()
    wrong[far[0], far[1]] = 1 - wrong[far[0], far[1]]
    result = spike_agreement(wrong, spikes, h, 1.0, tie_atol=1e-5)
    assert (result.mismatches, result.ties, result.non_ties) == (1, 0, 1)
    assert not result.comparable[far[1]]


def test_planted_flip_at_a_tie_is_excused():
    x = torch.tensor([[2.0, 0.4]], dtype=torch.float64)  # H = 1.0 exactly for the first neuron
    spikes, _, h = lif_trajectory(x, CONFIG)
    flipped = spikes.clone()
    flipped[0, 0] = 0.0
    result = spike_agreement(flipped, spikes, h, 1.0, tie_atol=1e-5)
    assert (result.ties, result.non_ties) == (1, 0)


def fires_on_strictly_greater(x):
    """A planted wrong implementation: fires on H > theta, as some frameworks do."""
    xc = x.double()
    v = torch.zeros_like(xc[0])
    spikes, membranes = [], []
    for t in range(xc.shape[0]):
        h = v + (xc[t] - v) / 2.0
        # value of the strict step, gradient of the canonical sigmoid surrogate
        s = (h > 1.0).double() + surrogate_grad(h - 1.0, "sigmoid", 4.0).detach() * (h - h.detach())
        v = (1 - s) * h
        spikes.append(s)
        membranes.append(v)
    return torch.stack(spikes).to(x.dtype), torch.stack(membranes).to(x.dtype)


def test_strict_threshold_is_excused_only_where_h_equals_theta():
    x = torch.full((3, 4), 2.0)  # every neuron sits exactly at the threshold at t=0
    result = check_against_oracle(fires_on_strictly_greater, x, CONFIG, with_grad_v=False)
    assert result.spikes.ties == 4 and result.spikes.non_ties == 0
    assert result.verdict == "close"


def test_backward_that_ignores_reset_is_wrong():
    def no_reset_gradient(x):
        s, v = reference_kernels.run(x, LIFConfig(detach_reset=True), impl="torch", return_v=True)
        return s, v

    x = lif_input((8, 2000), CONFIG, seed=1)
    result = check_against_oracle(no_reset_gradient, x, CONFIG)
    assert result.verdict == "WRONG"
    assert "dX" in result.reason


def test_wrong_threshold_is_wrong():
    def shifted(x):
        return reference_kernels.run(x, LIFConfig(v_threshold=1.01), impl="torch", return_v=True)

    result = check_against_oracle(shifted, lif_input((8, 2000), CONFIG, seed=2), CONFIG)
    assert result.verdict == "WRONG"
    assert result.spikes.non_ties > 0


def test_correct_implementation_is_exact():
    def correct(x):
        return reference_kernels.run(x, CONFIG, impl="torch", return_v=True)

    result = check_against_oracle(correct, lif_input((8, 2000), CONFIG, seed=4), CONFIG)
    assert result.verdict == "exact", result.reason
    assert 0.10 <= result.firing_rate <= 0.40
