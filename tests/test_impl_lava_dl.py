"""The lava-dl adapter against the float64 oracle, and the Sinabs rows where Sinabs is missing.

lava-dl's CUBA neuron is an approximation of the canonical LIF (fixed point, backward without
the reset, its own exponential surrogate), so the bar is: soft reset refused with its reason;
otherwise under 1 % of spike values differ, dX points the same way as the oracle's (cosine > 0)
and every departure is listed in ``approximations``.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from kernelprof.frameworks.base import Unsupported
from kernelprof.frameworks.lava_dl import LAVA_DL
from kernelprof.frameworks.sinabs import SINABS, SINABS_EXODUS, sinabs_parameters
from kernelprof.inputs import lif_input
from kernelprof.verify.agreement import check_against_oracle
from kernelprof.verify.verdicts import classify
from reference_kernels.model import LIFConfig
from tests.lif_cases import config_grid, config_id

CPU = torch.device("cpu")
STEPS = (1, 4, 8)
NEURONS = 2000
CONFIGS = config_grid() + [LIFConfig(tau=3.0, v_threshold=0.7, v_reset=0.1, surrogate="atan")]

lava_missing = pytest.mark.skipif(
    LAVA_DL.unavailable_reason(CPU) is not None, reason=str(LAVA_DL.unavailable_reason(CPU))
)


SOFT = [c for c in CONFIGS if c.soft_reset]
HARD = [
    (config, steps, seed)
    for seed, (config, steps) in enumerate(
        (c, t) for c in CONFIGS if not c.soft_reset for t in STEPS
    )
]


@lava_missing
@pytest.mark.parametrize("config", SOFT, ids=config_id)
def test_soft_reset_is_refused(config):
    with pytest.raises(Unsupported, match="soft reset"):
        LAVA_DL.build(config, CPU, torch.float32)


@lava_missing
@pytest.mark.parametrize(
    "config, steps, seed", HARD, ids=[f"{config_id(c)}-T{t}" for c, t, _ in HARD]
)
def test_hard_reset_is_a_listed_approximation(config, steps, seed):
    built = LAVA_DL.build(config, CPU, torch.float32)
    x = lif_input((steps, NEURONS), config, seed=seed)
    result = check_against_oracle(built.check, x, config, seed=seed)
    assert result.spikes.mismatch_fraction < 0.01, result.as_dict()
    assert result.grad_cosine > 0, result.as_dict()
    assert result.v_max_abs_diff is None  # lava returns v before reset: no V is offered
    assert any("fixed point" in a.reason for a in built.approximations)
    assert any("backward ignores the reset" in a.reason for a in built.approximations)
    surrogate_listed = any(a.reason.startswith("surrogate is") for a in built.approximations)
    assert surrogate_listed == (config.surrogate != "piecewise_exp")
    assert built.path.startswith("CPU int64 python loop")
    # the declared approximations' bounds hold over the whole grid
    verdict, reason = classify(result, built)
    assert verdict in ("approximate", "exact", "close"), reason


@lava_missing
@pytest.mark.parametrize("v_reset", [0.0, -0.5])
def test_piecewise_exp_surrogate_is_lavas_own(v_reset):
    """With one step there is no reset to ignore: dX differs only by fixed-point rounding, which
    checks tau_grad and scale_grad (and the shifted threshold for v_reset != 0)."""
    config = LIFConfig(v_reset=v_reset, surrogate="piecewise_exp", alpha=2.0)
    built = LAVA_DL.build(config, CPU, torch.float32)
    x = lif_input((1, NEURONS), config, seed=5)
    result = check_against_oracle(built.check, x, config, seed=5)
    assert result.spikes.mismatches == 0
    assert result.grad_max_abs_diff < 1e-3, result.as_dict()


@lava_missing
@pytest.mark.parametrize(
    "config, cause",
    [
        (LIFConfig(tau=0.5), "tau=0.5"),
        (LIFConfig(v_threshold=0.5, v_reset=0.5), "threshold - v_reset"),
    ],
)
def test_inexpressible_parameters_are_refused(config, cause):
    with pytest.raises(Unsupported, match=cause):
        LAVA_DL.build(config, CPU, torch.float32)


@lava_missing
def test_rounded_threshold_and_decay_are_listed():
    built = LAVA_DL.build(LIFConfig(tau=3.0, v_threshold=0.7), CPU, torch.float32)
    text = "\n".join(a.reason for a in built.approximations)
    assert "threshold 0.7 truncated to 0.6875" in text
    assert "rounded to 1365/4096" in text


@pytest.mark.skipif(importlib.util.find_spec("sinabs") is not None, reason="sinabs is installed")
# ids avoid the word "cuda", which conftest treats as the mark that needs a GPU.
@pytest.mark.parametrize("device", ["cpu", "cuda"], ids=["on-cpu", "on-gpu"])
def test_sinabs_rows_report_not_installed(device):
    assert SINABS.unavailable_reason(torch.device(device)) == "sinabs is not installed"
    assert SINABS_EXODUS.unavailable_reason(torch.device(device)) == "sinabs is not installed"


def test_sinabs_mapping_is_computed_from_the_config():
    """The parameter mapping runs without Sinabs: alpha_mem = 1 - 1/tau, SingleExponential width."""
    soft = LIFConfig(tau=2.5, v_threshold=0.8, v_reset=None, surrogate="piecewise_exp", alpha=2.0)
    p = sinabs_parameters(soft, exodus=True)
    assert math.isclose(math.exp(-1.0 / p["tau_mem"]), 1.0 - 1.0 / 2.5)
    assert math.isclose(p["grad_width"] * soft.v_threshold, 1.0 / soft.alpha)
    assert p["reset"] == "subtract" and p["norm_input"] is True
    hard = LIFConfig(detach_reset=True, surrogate="piecewise_exp", alpha=1.0)
    assert sinabs_parameters(hard, exodus=False)["reset"] == "reset"
    with pytest.raises(Unsupported, match="EXODUS accepts MembraneSubtract"):
        sinabs_parameters(hard, exodus=True)
    with pytest.raises(Unsupported, match="detach_reset=False") as info:
        sinabs_parameters(LIFConfig(v_reset=-0.5), exodus=False)
    assert "v_reset=-0.5" in str(info.value) and "surrogate sigmoid" in str(info.value)
