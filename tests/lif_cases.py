"""The grid of configurations every implementation is checked on against the float64 oracle."""

from __future__ import annotations

import itertools

import pytest
import torch

from kernelprof.frameworks.base import Unsupported
from kernelprof.inputs import lif_input
from kernelprof.verify.agreement import check_against_oracle
from reference_kernels.model import DEFAULT_ALPHA, SURROGATES, LIFConfig

STEPS = (1, 4, 8, 16)
SIZES = (1, 300, 4097)
RESETS = (0.0, -0.5, None)  # hard reset at 0, hard reset elsewhere, soft reset
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def config_grid() -> list[LIFConfig]:
    """Every combination of reset, detach_reset, decay_input and surrogate (48 configs)."""
    return [
        LIFConfig(
            v_reset=v_reset,
            detach_reset=detach,
            decay_input=decay,
            surrogate=surrogate,
            alpha=DEFAULT_ALPHA[surrogate] * (1.5 if detach else 1.0),
            tau=2.0 if decay else 1.5,
        )
        for v_reset, detach, decay, surrogate in itertools.product(
            RESETS, (False, True), (True, False), SURROGATES
        )
    ]


def covering_cases(dtypes=DTYPES, every: int = 1) -> list[tuple]:
    """(config, T, N, dtype, seed) cases: each config once per dtype, T, N and seed rotating so
    that every T, size, reset, detach, decay, surrogate and dtype meets the others often."""
    cases = []
    index = 0
    for dtype in dtypes:
        for config in config_grid()[::every]:
            steps = STEPS[index % len(STEPS)]
            neurons = SIZES[(index // len(STEPS)) % len(SIZES)]
            cases.append((config, steps, neurons, dtype, index))
            index += 1
    return cases


def framework_cases(steps=(1, 4, 8), neurons: int = 2000) -> list[tuple]:
    """Every config of the grid at each T, float32: what the framework adapters are checked on."""
    return [
        (config, t, neurons, torch.float32, index * len(steps) + k)
        for index, config in enumerate(config_grid())
        for k, t in enumerate(steps)
    ]


def config_id(config: LIFConfig) -> str:
    reset = "soft" if config.v_reset is None else f"hard{config.v_reset:g}"
    return (
        f"{reset}-{'detach' if config.detach_reset else 'attach'}-"
        f"{'decay' if config.decay_input else 'nodecay'}-{config.surrogate}{config.alpha:g}"
        f"-tau{config.tau:g}"
    )


def case_id(case) -> str:
    config, steps, neurons, dtype, seed = case
    return f"{config_id(config)}-T{steps}-N{neurons}-{str(dtype).removeprefix('torch.')}-s{seed}"


def built_or_refused(neuron, config: LIFConfig, refusal: str | None, dtype=torch.float32):
    """``neuron``'s build for ``config`` on the CPU, or, where ``refusal`` (a pattern of the
    reason) is expected, None after asserting that the build raises Unsupported with it."""
    cpu = torch.device("cpu")
    if refusal is None:
        return neuron.build(config, cpu, dtype)
    with pytest.raises(Unsupported, match=refusal):
        neuron.build(config, cpu, dtype)
    return None


def check_case(run, case, device, request=None):
    """Runs one case against the oracle and asserts the acceptance rule of the project."""
    from tests.conftest import THRESHOLD_TIES

    config, steps, neurons, dtype, seed = case
    x = lif_input((steps, neurons), config, dtype=dtype, device=device, seed=seed)
    result = check_against_oracle(run, x, config, seed=seed, with_grad_v=seed % 2 == 0)
    THRESHOLD_TIES.append((case_id(case), result.spikes.ties, result.spikes.total))
    if steps * neurons >= 1000:
        assert 0.10 <= result.firing_rate <= 0.40, f"firing rate {result.firing_rate:.2f}"
    assert result.spikes.non_ties == 0, result.reason
    assert result.verdict in ("exact", "close"), result.reason
    return result
