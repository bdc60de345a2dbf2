"""The Sinabs adapter (kernelprof/impls/sinabs.py) against the float64 oracle.

Every config of tests/lif_cases.py's grid, for T in {1, 4, 8}, N=2000, float32 on CPU, is either
refused with the reason Sinabs' documented layers give (see the module docstring) or equal to
the oracle except at threshold ties. The expected refusals are written out here from Sinabs'
rules, not taken from the adapter.
"""

from __future__ import annotations

import pytest
import torch

from kernelprof.frameworks.sinabs import SINABS
from reference_kernels.model import LIFConfig
from tests.lif_cases import built_or_refused, case_id, check_case, framework_cases

pytest.importorskip("sinabs", reason="sinabs is not installed")

CPU = torch.device("cpu")
CASES = framework_cases()


def expected_refusal(config: LIFConfig) -> str | None:
    """The first reason Sinabs cannot express ``config``; None where it can."""
    if config.tau <= 1:
        return "needs tau > 1"
    if config.v_threshold <= 0:
        return "threshold <= 0"
    if config.soft_reset and config.detach_reset:
        return "soft reset with detach_reset=True"
    if not config.soft_reset and config.v_reset != 0:
        return "leaks towards 0"
    if not config.soft_reset and not config.detach_reset:
        return "hard reset with detach_reset=False"
    if config.surrogate != "piecewise_exp":
        return f"surrogate {config.surrogate}"
    return None


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grid_matches_oracle_or_is_refused_with_reason(case):
    built = built_or_refused(SINABS, case[0], expected_refusal(case[0]))
    if built is not None:
        check_case(built.check, case, CPU)


def test_some_configs_of_the_grid_are_expressible():
    # the grid must reach the comparison path, not only refusals
    assert sum(expected_refusal(case[0]) is None for case in CASES) >= 6
