"""The Spyx adapter (kernelprof/frameworks/spyx.py, JAX) against the float64 oracle.

Every config of tests/lif_cases.py's grid, for T in {1, 4, 8}, N=2000, float32 on CPU, is either
refused with the reason Spyx's LIF gives (written out here from its sources) or equal to the
oracle except at threshold ties, through the reparametrisation of the module docstring. Then:
the timed build (the jitted forward behind torch's autograd) computes what the checking build
computes; the timed phases are JAX's own calls, waited for, and compute the same spikes and
gradient; Spyx's own LIF, as its users call it, has the one step of latency the mapping
accounts for; the defaults are the installed LIF's.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from kernelprof.frameworks import spyx as adapter
from kernelprof.frameworks.base import Unsupported
from kernelprof.inputs import lif_input
from kernelprof.runs.check import upstream_gradient
from kernelprof.verify.verdicts import timed_agreement
from reference_kernels.model import LIFConfig
from tests.lif_cases import built_or_refused, case_id, check_case, framework_cases

pytest.importorskip("spyx", reason="spyx is not installed")

CPU = torch.device("cpu")
CASES = framework_cases()


def expected_refusal(config: LIFConfig) -> str | None:
    if not config.soft_reset:
        return "hard reset"
    if config.detach_reset:
        return "detach_reset=True"
    if config.tau < 1:
        return "clipped to 0"
    return None


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grid_matches_oracle_or_is_refused_with_reason(case):
    built = built_or_refused(adapter.NEURON, case[0], expected_refusal(case[0]))
    if built is not None:
        check_case(built.check, case, CPU)


def test_every_surrogate_is_reached():
    reached = {case[0].surrogate for case in CASES if expected_refusal(case[0]) is None}
    assert reached == {"sigmoid", "atan", "superspike", "piecewise_exp"}


def test_other_dtypes_are_refused():
    with pytest.raises(Unsupported, match="float32 only"):
        adapter.NEURON.build(LIFConfig(v_reset=None), CPU, torch.float16)


CONFIG = LIFConfig(v_reset=None, surrogate="superspike", alpha=1.0)


def test_the_timed_build_agrees_with_the_checking_build():
    build = adapter.NEURON.build(CONFIG, CPU, torch.float32)
    x = lif_input((6, 20_000), CONFIG, seed=5)
    agreement = timed_agreement(build, x, upstream_gradient(x.shape, x, 5), CONFIG)
    assert agreement.agrees, agreement.reason


def test_the_timed_phases_are_jax_calls_that_wait_and_compute_the_checked_result():
    import jax

    build = adapter.NEURON.build(CONFIG, CPU, torch.float32)
    x = lif_input((5, 3000), CONFIG, seed=2)
    grad = upstream_gradient(x.shape, x, 2)
    phases = build.timed.phases(x, grad)
    assert set(phases) == {"fwd", "bwd", "fwd+bwd"}
    spikes = phases["fwd"]()
    assert isinstance(spikes, jax.Array) and spikes.is_ready()
    assert spikes.shape == (6, 1, 3000)  # T + 1 steps, time-major, batch of one
    leaf = x.clone().requires_grad_()
    expected = build.timed.canonical(leaf)
    assert torch.equal(torch.from_numpy(np.array(spikes[1:, 0])), expected.detach())
    (from_torch,) = torch.autograd.grad(expected, leaf, grad)
    (from_pullback,) = phases["bwd"]()
    loss, from_value_and_grad = phases["fwd+bwd"]()
    scale = 1.0 / CONFIG.tau  # the prepared input is X / tau + offset: dX = dX' / tau
    for jax_grad in (from_pullback, from_value_and_grad):
        grad_x = torch.from_numpy(np.array(jax_grad[:-1, 0])) * scale
        torch.testing.assert_close(grad_x, from_torch, atol=1e-6, rtol=1e-5)
    assert float(loss) == pytest.approx(float((expected * grad).sum()), rel=1e-5)


def test_spyx_lif_spikes_from_the_state_before_the_input():
    """The one step of latency the mapping adds a step for: Spyx's LIF, called as its users
    call it, does not fire on the step whose input crosses the threshold, but on the next."""
    import jax.numpy as jnp
    import spyx.nn as snn
    from flax import nnx

    lif = snn.LIF((1,), beta=0.5, threshold=1.0, rngs=nnx.Rngs(0))
    spikes, _ = snn.run(lif, jnp.asarray([[[2.0]], [[0.0]], [[0.0]]]))
    assert np.asarray(spikes)[:, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_written_defaults_match_the_installed_lif():
    import spyx.nn as snn

    parameters = inspect.signature(snn.LIF.__init__).parameters
    written = {d.setting: d.value for d in adapter.DEFAULTS}
    assert parameters["beta"].default is None and written["beta"].startswith("None")
    assert written["threshold"] == repr(parameters["threshold"].default)
    assert parameters["activation"].default is None  # -> the module's superspike(k=25)
    assert written["activation"].startswith("superspike(k=25)")
    assert all(d.source.startswith("spyx/") for d in adapter.DEFAULTS)


def test_default_neuron_runs_spyx_lif_at_its_defaults():
    x = lif_input((8, 500), LIFConfig(), seed=3) * 4.0
    spikes = adapter.default_spikes(x)
    assert spikes.shape == x.shape and set(spikes.unique().tolist()) <= {0.0, 1.0}
    assert spikes[0].sum() == 0 and spikes.sum() > 0  # nothing at step 0: the latency
