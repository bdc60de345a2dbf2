"""The Rockpool adapter (kernelprof/frameworks/rockpool.py) against the float64 oracle.

Every config of tests/lif_cases.py's grid, for T in {1, 4, 8}, N=2000, float32 on CPU, is either
refused with the reason Rockpool's LIF modules give (written out here from their sources) or
equal to the oracle except at threshold ties, for LIFTorch and LIFNeuronTorch. The grid's
piecewise_exp has alpha = 1 with theta = 1, which PeriodicExponential cannot express (it needs
alpha * theta = 2), so the soft, attached configs are also run with alpha = 2. Then: the timed
builds compute what the checking builds compute; LIFTorch's dense recurrent matrix, which
makes large N impossible, is refused with its size; the defaults are the installed modules'.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from kernelprof.frameworks import rockpool
from kernelprof.inputs import lif_input
from kernelprof.runs.check import upstream_gradient
from kernelprof.verify.verdicts import timed_agreement
from reference_kernels.model import LIFConfig
from tests.lif_cases import built_or_refused, case_id, check_case, framework_cases

pytest.importorskip("rockpool", reason="rockpool is not installed")

CPU = torch.device("cpu")
GRID = framework_cases()
# the grid's soft-reset, attached, piecewise_exp configs at the one alpha Rockpool expresses
EXPRESSIBLE = [
    (dataclasses.replace(config, alpha=2.0), *rest)
    for config, *rest in GRID
    if config.soft_reset and not config.detach_reset and config.surrogate == "piecewise_exp"
]
CASES = GRID + EXPRESSIBLE
NEURONS = {"rockpool": rockpool.LIF_TORCH, "rockpool-neuron": rockpool.LIF_NEURON}


def expected_refusal(config: LIFConfig) -> str | None:
    """The first reason Rockpool cannot express ``config``; None where it can."""
    if not config.soft_reset:
        return "hard reset"
    if config.detach_reset:
        return "detach_reset=True"
    if config.surrogate != "piecewise_exp":
        return f"surrogate {config.surrogate}"
    if config.alpha * config.v_threshold != 2.0:
        return "alpha\\*theta must be 2"
    return None


@pytest.mark.parametrize("name", NEURONS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grid_matches_oracle_or_is_refused_with_reason(case, name):
    built = built_or_refused(NEURONS[name], case[0], expected_refusal(case[0]))
    if built is not None:
        check_case(built.check, case, CPU)


def test_some_configs_are_expressible():
    assert sum(expected_refusal(case[0]) is None for case in CASES) >= 6


SOFT = LIFConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0)
SOFT_NO_DECAY = LIFConfig(tau=4.0, v_reset=None, decay_input=False, surrogate="piecewise_exp",
                          alpha=2.0)  # fmt: skip


@pytest.mark.parametrize("name", NEURONS)
@pytest.mark.parametrize("config", [SOFT, SOFT_NO_DECAY], ids=["decay", "no-decay"])
def test_the_timed_build_agrees_with_the_checking_build(name, config):
    build = NEURONS[name].build(config, CPU, torch.float32)
    x = lif_input((6, 6000), config, seed=5)
    agreement = timed_agreement(build, x, upstream_gradient(x.shape, x, 5), config)
    assert agreement.agrees, agreement.reason
    out = build.timed.run(build.timed.prepare(x))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 6, 6000)  # batch-first spikes
    assert set(build.timed.spikes(out).unique().tolist()) <= {0.0, 1.0}


def test_lif_torch_keeps_a_dense_recurrent_matrix_and_large_n_is_refused():
    """Why LIFTorch cannot be timed at compare's N: even with has_rec=False it holds an
    N x N zero matrix and multiplies the spikes by it every step."""
    from rockpool.nn.modules import LIFTorch

    module = LIFTorch(300)
    assert not module._has_rec and tuple(module.w_rec.shape) == (300, 300)
    assert not module.w_rec.any()
    with pytest.raises(RuntimeError, match=r"dense zero N x N recurrent matrix .*4,096.0 GiB"):
        rockpool.make_lif_torch(SOFT, 2**20, CPU)
    neuron = rockpool.LIF_NEURON.build(SOFT, CPU, torch.float32)  # no such matrix
    x = lif_input((2, 2**20), SOFT, seed=1)
    assert neuron.timed.run(neuron.timed.prepare(x)).shape == (1, 2, 2**20)


def test_written_defaults_match_the_installed_modules():
    from rockpool.nn.modules.torch.lif_torch import LIFBaseTorch

    parameters = inspect.signature(LIFBaseTorch.__init__).parameters
    written = {d.setting: d.value for d in rockpool.DEFAULTS}
    assert parameters["spike_generation_fn"].default.__name__ == "StepPWL"
    assert written["spike_generation_fn"].startswith("StepPWL")
    assert float(parameters["max_spikes_per_dt"].default) == 2.0**16
    assert written["max_spikes_per_dt"].startswith("2^16")
    assert parameters["has_rec"].default is False and written["has_rec"].startswith("False")
    assert parameters["dt"].default == 1e-3
    module = LIFBaseTorch(4)  # tau_mem, tau_syn, threshold: None in the signature, set here
    assert bool((module.tau_mem == 0.02).all()) and bool((module.tau_syn == 0.02).all())
    assert bool((module.threshold == 1.0).all()) and written["threshold"] == "1.0"
    assert all(d.source.startswith("rockpool/") for d in rockpool.DEFAULTS)


def test_default_neuron_is_multi_spike():
    x = lif_input((8, 500), LIFConfig(), seed=3) * 8.0
    spikes = rockpool.default_spikes(x)
    assert spikes.shape == x.shape and spikes.max() > 1  # several spikes in one step
