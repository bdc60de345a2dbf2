"""The snnTorch adapter (kernelprof/impls/snntorch.py) against the float64 oracle.

Every config of tests/lif_cases.py's grid, for T in {1, 4, 8}, N=2000, float32 on CPU, has one
of three outcomes, decided from the config by snnTorch's documented limits:
* refused with the reason (reset to V_r != 0, detached soft reset, piecewise_exp surrogate);
* equal to the oracle except at threshold ties (snnTorch fires on >, the oracle on >=);
* soft reset: equal on every neuron whose V after reset never exceeds theta before the last
  step, and any other difference confined to the neurons where it does (the approximation the
  adapter declares).
"""

from __future__ import annotations

import math

import pytest
import torch

from kernelprof.frameworks import snntorch as snn_impl
from kernelprof.frameworks.base import Unsupported
from kernelprof.inputs import lif_input
from kernelprof.verify.agreement import TIE_ATOL, check_against_oracle
from reference_kernels.model import LIFConfig
from reference_kernels.torch_ref import lif_trajectory
from tests.lif_cases import built_or_refused, case_id, check_case, framework_cases

CPU = torch.device("cpu")
IMPL = snn_impl.NEURON
CASES = framework_cases()


def expected_refusal(config: LIFConfig) -> str | None:
    """What the refusal must mention; None where snnTorch can express the config."""
    if config.tau < 1:
        return "clamps beta"
    if config.v_reset is not None and config.v_reset != 0:
        return "resets to 0 only"
    if config.v_reset is None and config.detach_reset:
        return "cannot detach a subtractive reset"
    if config.v_reset is not None and not config.detach_reset and config.v_threshold < 0:
        return "re-applies the reset"
    if config.surrogate == "piecewise_exp":
        return "no built-in piecewise_exp"
    return None


def reset_above_threshold(x: torch.Tensor, config: LIFConfig) -> torch.Tensor:
    """[N] bool: neurons whose oracle V after reset exceeds theta (up to ties) before the last
    step, where snnTorch's subtract reset departs from the canonical one."""
    _, v, _ = lif_trajectory(x.detach().double(), config)
    v = v.reshape(v.shape[0], -1)[:-1]
    return (v > config.v_threshold - TIE_ATOL[x.dtype]).any(dim=0)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grid_matches_oracle_or_is_refused_with_reason(case):
    config, steps, neurons, dtype, seed = case
    built = built_or_refused(IMPL, config, expected_refusal(config), dtype)
    if built is None:
        return
    assert any("H > theta, not >=" in note for note in built.tie_notes)
    if config.v_reset is not None:
        result = check_case(built.check, case, CPU)
        # mem is V after reset only with reset_delay=False, i.e. without detach_reset.
        assert (result.v_max_abs_diff is None) == config.detach_reset
        return
    assert any("V after reset exceeds theta" in a.reason for a in built.approximations)
    x = lif_input((steps, neurons), config, dtype=dtype, seed=seed)
    affected = reset_above_threshold(x, config)
    unaffected = check_against_oracle(built.check, x[:, ~affected], config, seed=seed)
    assert unaffected.spikes.non_ties == 0, unaffected.reason
    assert unaffected.verdict in ("exact", "close"), unaffected.reason
    if not affected.any():  # e.g. T=1: nothing for the approximation to explain
        whole = check_against_oracle(built.check, x, config, seed=seed)
        assert whole.verdict in ("exact", "close"), whole.reason


def test_soft_reset_departs_where_v_after_reset_exceeds_theta():
    """H = 2.5 theta at t=0 leaves V = 1.5 theta; canonically t=1 fires again with X=theta
    (H = 1.25 theta), but snnTorch subtracts theta once more and stays silent."""
    config = LIFConfig(v_reset=None, surrogate="atan", alpha=2.0)
    built = IMPL.build(config, CPU, torch.float32)
    x = torch.tensor([[5.0], [1.0]])
    spikes, v = built.check(x)
    oracle_spikes, oracle_v, _ = lif_trajectory(x.double(), config)
    assert oracle_spikes[:, 0].tolist() == [1.0, 1.0]
    assert spikes[:, 0].tolist() == [1.0, 0.0]


def test_threshold_tie_is_the_only_difference():
    """X = 2 theta with tau = 2 puts H exactly on theta: the oracle fires, snnTorch does not."""
    config = LIFConfig(surrogate="atan", alpha=2.0)
    built = IMPL.build(config, CPU, torch.float32)
    x = lif_input((4, 200), config, seed=5)
    x[0, :3] = 2.0
    result = check_against_oracle(built.check, x, config)
    assert result.verdict == "close", result.reason
    assert result.spikes.ties == 3 and result.spikes.non_ties == 0


def test_sigmoid_nan_gradient_below_the_declared_limit():
    config = LIFConfig(surrogate="sigmoid", alpha=4.0, decay_input=False, tau=2.0)
    built = IMPL.build(config, CPU, torch.float32)
    limit = math.log(torch.finfo(torch.float32).max) / config.alpha
    assert any("NaN" in a.reason and f"{limit:.4g}" in a.reason for a in built.approximations)
    # One step from V = 0 without input decay: H - theta = X - theta.
    x = torch.tensor([[config.v_threshold - 1.1 * limit, config.v_threshold - 0.9 * limit]])
    x.requires_grad_(True)
    spikes, _ = built.check(x)
    spikes.sum().backward()
    assert torch.isnan(x.grad[0, 0]) and torch.isfinite(x.grad[0, 1])


def test_state_does_not_leak_between_calls():
    config = LIFConfig(surrogate="atan", alpha=2.0)
    built = IMPL.build(config, CPU, torch.float32)
    x = lif_input((6, 500), config, seed=3)
    first = built.check(x)
    built.check(lif_input((6, 300), config, seed=4))
    again = built.check(x)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_unsupported_parameterisations():
    with pytest.raises(Unsupported, match="clamps beta"):
        IMPL.build(LIFConfig(tau=0.5, surrogate="atan", alpha=2.0), CPU, torch.float32)
    with pytest.raises(Unsupported, match="resets to 0 only"):
        config = LIFConfig(v_reset=0.3, decay_input=False, surrogate="atan", alpha=2.0)
        IMPL.build(config, CPU, torch.float32)
    with pytest.raises(Unsupported, match="re-applies the reset"):
        IMPL.build(LIFConfig(v_threshold=-0.5, surrogate="atan", alpha=2.0), CPU, torch.float32)


def test_requirement_is_met():
    assert IMPL.unavailable_reason(CPU) is None
