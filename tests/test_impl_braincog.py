"""The BrainCog adapter (kernelprof/frameworks/braincog.py) against the float64 oracle.

Every config of tests/lif_cases.py's grid, for T in {1, 4, 8}, N=2000, float32 on CPU, is either
refused with the reason BrainCog's LIFNode gives (written out here from its sources, not taken
from the adapter) or equal to the oracle except at threshold ties; both of its neurons (one call
per step, and layer by layer); the timed builds compute what the checking builds compute; the
written-down defaults are the installed LIFNode's.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from kernelprof.frameworks import braincog
from kernelprof.inputs import lif_input
from kernelprof.runs.check import upstream_gradient
from kernelprof.verify.verdicts import timed_agreement
from reference_kernels.model import LIFConfig
from tests.lif_cases import built_or_refused, case_id, check_case, framework_cases

pytest.importorskip("braincog", reason="braincog is not installed")

CPU = torch.device("cpu")
CASES = framework_cases()
NEURONS = {"braincog": braincog.STEPS, "braincog-lbl": braincog.LAYER_BY_LAYER}


def expected_refusal(config: LIFConfig) -> str | None:
    """The first reason BrainCog cannot express ``config``; None where it can."""
    if config.soft_reset:
        return "soft reset"
    if config.v_reset != 0:
        return "leaks and resets towards 0"
    if not config.decay_input:
        return "decay_input=False"
    if not config.detach_reset:
        return "detach_reset=False"
    if config.surrogate not in ("sigmoid", "atan"):
        return f"surrogate {config.surrogate}"
    return None


@pytest.mark.parametrize("name", NEURONS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grid_matches_oracle_or_is_refused_with_reason(case, name):
    built = built_or_refused(NEURONS[name], case[0], expected_refusal(case[0]))
    if built is not None:
        check_case(built.check, case, CPU)


def test_some_configs_of_the_grid_are_expressible():
    assert sum(expected_refusal(case[0]) is None for case in CASES) >= 6


ATAN = LIFConfig(detach_reset=True, surrogate="atan", alpha=2.0)
SIGMOID = LIFConfig(tau=4.0, detach_reset=True, surrogate="sigmoid", alpha=4.0)


@pytest.mark.parametrize("name", NEURONS)
@pytest.mark.parametrize("config", [SIGMOID, ATAN], ids=["sigmoid", "atan"])
def test_the_timed_build_agrees_with_the_checking_build(name, config):
    build = NEURONS[name].build(config, CPU, torch.float32)
    x = lif_input((6, 20_000), config, seed=5)
    agreement = timed_agreement(build, x, upstream_gradient(x.shape, x, 5), config)
    assert agreement.agrees, agreement.reason
    out = build.timed.run(build.timed.prepare(x))
    assert isinstance(out, torch.Tensor)  # spikes only, no recorded membrane
    assert set(build.timed.spikes(out).unique().tolist()) <= {0.0, 1.0}


def test_atan_fires_on_strictly_above_and_says_so():
    """AtanGrad's forward is x.gt(0): at H == theta exactly the node does not fire, which the
    build declares as a tie note. X = 1 from rest with tau = 2 gives H = 0.5 = theta."""
    config = LIFConfig(v_threshold=0.5, detach_reset=True, surrogate="atan", alpha=2.0)
    build = braincog.STEPS.build(config, CPU, torch.float32)
    spikes, _ = build.check(torch.ones(1, 3))
    assert spikes.sum() == 0  # the canonical neuron fires here
    assert build.tie_notes == [braincog.ATAN_TIES]
    assert braincog.STEPS.build(SIGMOID, CPU, torch.float32).tie_notes == []


def test_the_node_keeps_v_reset_out_of_its_dynamics():
    """Why a v_reset other than 0 is refused: LIFNode(v_reset=-0.5) still resets to 0."""
    from braincog.base.node.node import LIFNode

    node = LIFNode(threshold=0.5, tau=2.0, v_reset=-0.5)
    node.n_reset()  # starts at v_reset ...
    node(torch.full((1,), 4.0))  # H = -0.5 + (4 + 0.5) / 2 = 1.75 >= 0.5: fires
    assert node.mem.item() == 0.0  # ... but resets to 0


def test_written_defaults_match_the_installed_node():
    from braincog.base.node.node import BaseNode, LIFNode

    lif = inspect.signature(LIFNode.__init__).parameters
    base = inspect.signature(BaseNode.__init__).parameters
    written = {d.setting: d.value for d in braincog.DEFAULTS}
    assert written["tau"] == repr(lif["tau"].default)
    assert written["threshold"] == repr(lif["threshold"].default)
    assert written["act_fun"].startswith(lif["act_fun"].default.__name__)
    assert written["step / layer_by_layer"].startswith(
        f"{base['step'].default} / {base['layer_by_layer'].default}"
    )
    assert all(d.source.startswith("braincog/") for d in braincog.DEFAULTS)


def test_default_neuron_runs_lifnode_at_its_defaults():
    x = lif_input((8, 500), LIFConfig(), seed=3)
    spikes = braincog.default_spikes(x)
    assert spikes.shape == x.shape and set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert spikes.sum() > 0
