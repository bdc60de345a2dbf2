"""The Norse adapter against the float64 oracle, over the config grid of tests/lif_cases.py.

Every config is either refused with a reason naming each cause (detach_reset, a surrogate Norse
has no exact equivalent for) or must agree with the oracle: spikes equal except at threshold
ties, V (where returned) and dX within atol = rtol = 1e-4 in float32.
"""

from __future__ import annotations

import pytest
import torch

from kernelprof.frameworks.base import Unsupported
from kernelprof.frameworks.norse import NORSE
from kernelprof.inputs import lif_input
from kernelprof.verify.agreement import check_against_oracle
from reference_kernels.model import LIFConfig
from tests.lif_cases import config_grid, config_id

CPU = torch.device("cpu")
STEPS = (1, 4, 8)
NEURONS = 2000
# Beyond the shared grid: alphas Norse cannot follow, and a hard reset with other parameters.
EXTRA = [
    LIFConfig(surrogate="superspike", alpha=2.0),
    LIFConfig(surrogate="sigmoid", alpha=2.0),
    LIFConfig(tau=3.0, v_threshold=0.7, v_reset=0.1, surrogate="superspike", alpha=1.0),
    LIFConfig(tau=4.0, v_reset=None, decay_input=False, surrogate="sigmoid", alpha=4.0),
]
CONFIGS = config_grid() + EXTRA
# The surrogates Norse 1.1.0 computes exactly: 'super' (alpha ignored) and 'tanh' with k = 2.
EXACT_SURROGATES = {("superspike", 1.0), ("sigmoid", 4.0)}

pytestmark = pytest.mark.skipif(
    NORSE.unavailable_reason(CPU) is not None, reason=str(NORSE.unavailable_reason(CPU))
)


def expected_causes(config: LIFConfig) -> list[str]:
    """What the message must name for a config Norse cannot express (empty: supported)."""
    causes = []
    if config.detach_reset:
        causes.append("detach_reset")
    if (config.surrogate, config.alpha) not in EXACT_SURROGATES:
        causes.append(f"surrogate {config.surrogate}")
    return causes


UNSUPPORTED = [c for c in CONFIGS if expected_causes(c)]
SUPPORTED = [
    (config, steps, seed)
    for seed, (config, steps) in enumerate(
        (c, t) for c in CONFIGS if not expected_causes(c) for t in STEPS
    )
]


@pytest.mark.parametrize("config", UNSUPPORTED, ids=config_id)
def test_unsupported_config_names_every_cause(config):
    with pytest.raises(Unsupported) as info:
        NORSE.build(config, CPU, torch.float32)
    for cause in expected_causes(config):
        assert cause in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "config, steps, seed",
    SUPPORTED,
    ids=[f"{config_id(c)}-T{t}" for c, t, _ in SUPPORTED],
)
def test_supported_config_matches_oracle(config, steps, seed):
    built = NORSE.build(config, CPU, torch.float32)
    x = lif_input((steps, NEURONS), config, seed=seed)
    result = check_against_oracle(built.check, x, config, seed=seed)
    assert result.spikes.non_ties == 0, result.reason
    assert result.verdict in ("exact", "close"), result.reason
    # LIF records V after reset; Lift(LIFBoxCell), used for soft reset, keeps the last state only.
    assert (result.v_max_abs_diff is None) == config.soft_reset
    assert not built.approximations
    assert "python loop" in built.path


def test_trailing_shape_is_kept():
    config = LIFConfig(surrogate="superspike", alpha=1.0)
    built = NORSE.build(config, CPU, torch.float32)
    x = lif_input((4, 3, 5, 7), config, seed=1)
    spikes, v = built.check(x)
    assert spikes.shape == v.shape == x.shape
    flat_spikes, flat_v = built.check(x.reshape(4, -1))
    assert torch.equal(spikes.reshape(4, -1), flat_spikes)
    assert torch.equal(v.reshape(4, -1), flat_v)


def test_grid_covers_both_outcomes():
    """The grid must exercise supported and refused configs of every kind."""
    assert {c.soft_reset for c, _, _ in SUPPORTED} == {True, False}
    assert {c.decay_input for c, _, _ in SUPPORTED} == {True, False}
    assert any(c.detach_reset for c in UNSUPPORTED)
    assert {c.surrogate for c in UNSUPPORTED} == {"sigmoid", "atan", "superspike", "piecewise_exp"}
