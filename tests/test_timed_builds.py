"""Two builds per neuron: the timed build is what the framework's users write (spikes only, no
recorded state), and it computes what the checking build computes; a timed build that does not
is caught on the timed input, even when it is wrong only on the last neurons."""

from __future__ import annotations

import pytest
import torch

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import Unsupported
from kernelprof.inputs import lif_input
from kernelprof.runs.check import upstream_gradient
from kernelprof.runs.compare.worker import timed_closures
from kernelprof.verify.verdicts import sample_neurons, timed_agreement
from reference_kernels.model import LIFConfig
from tests import planted_impls

CPU = torch.device("cpu")
CONFIGS = [
    LIFConfig(surrogate="superspike", alpha=1.0),
    LIFConfig(v_reset=None, surrogate="atan", alpha=2.0),
    LIFConfig(tau=4.0, decay_input=False, detach_reset=True, surrogate="sigmoid", alpha=4.0),
    LIFConfig(v_reset=None, detach_reset=True, surrogate="piecewise_exp", alpha=2.0),
]
# The CPU neurons of the built-in frameworks (ref-compile has its own, slower tests).
NEURONS = ["ref-torch", "spikingjelly", "snntorch", "norse", "lava-dl", "sinabs"]


def build_or_skip(name: str, config: LIFConfig, dtype=torch.float32):
    neuron = registry.implementation(name)
    reason = neuron.unavailable_reason(CPU)
    if reason is not None:
        pytest.skip(reason)
    try:
        return neuron.build(config, CPU, dtype)
    except Unsupported as error:
        pytest.skip(f"unsupported: {error}")


def test_the_sample_spreads_over_the_whole_tensor_and_ends_with_the_last_neurons():
    index = sample_neurons(1_000_003)
    assert index[0] == 0 and index[-1] == 1_000_002
    assert set(range(1_000_003 - 64, 1_000_003)) <= set(index.tolist())
    gaps = index[1:4096] - index[: 4096 - 1]
    assert int(gaps.max()) <= 1_000_003 // 4000  # evenly spread, not bunched at the front
    assert sample_neurons(10).tolist() == list(range(10))


@pytest.mark.parametrize("name", NEURONS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.surrogate}-{c.v_reset}")
def test_the_timed_build_agrees_with_the_checking_build(name, config):
    build = build_or_skip(name, config)
    x = lif_input((6, 20_000), config, seed=5)
    agreement = timed_agreement(build, x, upstream_gradient(x.shape, x, 5), config)
    assert agreement.agrees, agreement.reason
    assert agreement.neurons == len(sample_neurons(20_000)) > 4096


@pytest.mark.parametrize("name", NEURONS)
def test_the_timed_build_returns_spikes_only(name):
    config = CONFIGS[0]
    build = build_or_skip(name, config)
    x = lif_input((4, 300), config, seed=1)
    out = build.timed.run(build.timed.prepare(x))
    assert isinstance(out, torch.Tensor)  # not (spikes, state) nor a recorded sequence
    spikes = build.timed.spikes(out)
    assert spikes.shape == x.shape and spikes.dtype == x.dtype
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_frameworks_timed_as_their_users_run_them_record_nothing():
    """What made compare's ranking wrong before: recorded states in the timed closure."""
    config = CONFIGS[0]
    x = lif_input((4, 300), config, seed=1)
    sj = build_or_skip("spikingjelly", config)
    sj.timed.run(x)
    assert type(sj.timed.module).__name__ == "LIFNode" and sj.timed.module.store_v_seq is False
    norse = build_or_skip("norse", config)
    assert type(norse.timed.module).__name__ == "LIF"
    assert norse.timed.module.record_states is False
    sinabs = build_or_skip("sinabs", LIFConfig(detach_reset=True, surrogate="piecewise_exp"))
    sinabs.timed.run(sinabs.timed.prepare(x))
    assert sinabs.timed.module.record_states is False and not sinabs.timed.module.recordings


def test_the_reference_timed_build_writes_no_v(monkeypatch):
    """The fused kernels are given no V buffer by the timed build (3 passes, not 4)."""
    import reference_kernels

    given = []

    class Recording:
        name = "recording"

        def forward(self, x, spikes, margin, v, config):
            given.append(v)
            spikes.zero_()
            margin.zero_()

        def backward(self, *args):
            raise AssertionError("not called")

    monkeypatch.setattr(reference_kernels, "fused_kernels", lambda impl, device: Recording())
    monkeypatch.setattr(reference_kernels, "_READY", {})  # backends already checked: none
    build = registry.implementation("ref-triton").build(CONFIGS[0], CPU, torch.float32)
    x = lif_input((3, 50), CONFIGS[0])
    build.timed.run(x)
    build.check(x)
    assert given[0] is None and isinstance(given[1], torch.Tensor)


def test_a_timed_build_wrong_on_the_last_neurons_is_caught():
    config = CONFIGS[0]
    build = planted_impls._timed_tail(config, CPU, torch.float32)
    x = lif_input((8, 100_000), config, seed=2)
    agreement = timed_agreement(build, x, upstream_gradient(x.shape, x, 2), config)
    assert not agreement.agrees
    assert "timed build disagrees" in agreement.reason
    assert f"of {len(sample_neurons(100_000)):,} sampled neurons differ" in agreement.reason
    assert 1 <= agreement.neurons_diverged <= planted_impls.WRONG_TAIL
    honest = registry.implementation("ref-torch").build(config, CPU, torch.float32)
    assert timed_agreement(honest, x, upstream_gradient(x.shape, x, 2), config).agrees


def test_the_timed_closures_hold_the_prepared_input_outside_the_timed_call():
    config = CONFIGS[0]
    build = build_or_skip("lava-dl", config)
    x = lif_input((5, 200), config, seed=3)
    closures = timed_closures(build.timed, x, seed=3)
    assert closures.x.shape == (200, 1, 5) and closures.x.is_leaf  # lava's time-last layout
    assert closures.forward().shape == closures.grad.shape
    (grad,) = closures.forward_backward()
    assert grad.shape == closures.x.shape


def test_bwd_replays_a_graph_made_after_the_other_phases_forwards():
    """Sinabs' reset_states zeroes and detaches, in place, the state buffers a forward's graph
    saved (CUBA's last current): compare's bwd phase, one forward's graph replayed, failed for
    its LIF(tau_syn) once the fwd phase had run ("a saved tensor that has been detached
    in-place"). bwd now makes its graph after any other forward, outside the timed calls."""
    from kernelprof.harness.profiling import profile_phases
    from reference_kernels.model import CUBAConfig

    config = CUBAConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0)
    build = build_or_skip("sinabs", config)
    closures = timed_closures(build.timed, lif_input((8, 300), config, seed=0), seed=0)
    phases = closures.phases()
    first = phases["bwd"]()
    for phase in ("fwd", "bwd", "fwd+bwd", "bwd", "fwd", "bwd"):  # as rounds and profiles go
        found = phases[phase]()
    torch.testing.assert_close(found, first)  # the same graph's gradient each time
    profiled = profile_phases(phases, CPU, label="sinabs", calls=2)
    assert len(profiled.op_s["bwd"]) == 2  # each profiled bwd call ran, none failed
