"""IF and PLIF in the e2e networks: each framework builds them from the canonical config (or its
own defaults) or refuses with its reason; where they are exact, frameworks compute the same
logits and weight gradients as the reference network; PLIF's decay is trained; the request, the
study's cells and the framework-defaults differences carry the neuron."""

from __future__ import annotations

import pytest
import torch

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import Unsupported
from kernelprof.frameworks.networks import NetworkSpec
from kernelprof.runs.e2e.settings import neuron_differences
from kernelprof.runs.e2e.worker import build_network
from reference_kernels.model import make_config
from tests.cli_runner import run_in_process

SHAPE, CLASSES, STEPS, BATCH, SEED = (1, 8, 8), 10, 4, 3, 0
CANONICAL = {n: make_config(n, surrogate="superspike", alpha=1.0) for n in ("if", "plif")}
SETTINGS = ("canonical", "defaults")
# (framework, neuron, setting) -> a fragment of its refusal; None: it builds and trains.
REFUSED = {
    ("snntorch", "plif", "canonical"): "adds its input unscaled",
    ("snntorch", "if", "defaults"): "snnTorch has no IF or PLIF neuron of its own",
    ("snntorch", "plif", "defaults"): "snnTorch has no IF or PLIF neuron of its own",
    ("norse", "plif", "canonical"): "Norse's LIF is current-based",
    ("norse", "plif", "defaults"): "Norse's LIF is current-based",
    ("braincog", "if", "canonical"): "braincog cannot express detach_reset=False",
    ("braincog", "plif", "canonical"): "braincog cannot express detach_reset=False",
    ("rockpool", "if", "canonical"): "rockpool cannot express hard reset",
    ("rockpool", "plif", "canonical"): "rockpool cannot express PLIF with decay_input",
    ("rockpool", "if", "defaults"): "Rockpool has no IF or PLIF class of its own",
    ("rockpool", "plif", "defaults"): "Rockpool has no IF or PLIF class of its own",
    **{("lava-dl", "if", s): "SLAYER's backward ignores the reset" for s in SETTINGS},
    **{("lava-dl", "plif", s): "reset-free backward" for s in SETTINGS},
    **{("spyx", n, s): "Spyx trains in JAX" for n in ("if", "plif") for s in SETTINGS},
}
FRAMEWORKS = ("reference", "spikingjelly", "snntorch", "norse", "braincog", "rockpool", "lava-dl",
              "spyx")  # fmt: skip


def spec(kind: str) -> NetworkSpec:
    return NetworkSpec(kind, SHAPE, CLASSES, weight_gain=4.0)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand((BATCH, *SHAPE), generator=generator) * 4.0
    return x, torch.randint(0, CLASSES, (BATCH,), generator=generator)


def trains(net) -> None:
    """One step of the network: finite logits, and a gradient on every weight."""
    x, target = batch()
    logits = net(x)
    torch.nn.functional.cross_entropy(logits, target).backward()
    assert torch.isfinite(logits).all()
    for name, parameter in net.weight_parameters().items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def build(framework: str, neuron: str, setting: str, kind: str = "fc"):
    problem = registry.networks()[framework].problem()
    if problem is not None:
        pytest.skip(problem)
    config = None if setting == "defaults" else CANONICAL[neuron]
    return build_network(spec(kind), framework, config, STEPS, SEED, neuron=neuron)


@pytest.mark.parametrize("setting", ["canonical", "defaults"])
@pytest.mark.parametrize("neuron", ["if", "plif"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_network_builds_the_neuron_or_says_why_not(framework, neuron, setting):
    expected = REFUSED.get((framework, neuron, setting))
    if expected is not None:
        with pytest.raises(Unsupported) as refused:
            build(framework, neuron, setting)
        assert expected in str(refused.value), str(refused.value)
        return
    net = build(framework, neuron, setting)
    trains(net)
    decays = [p for n, p in net.named_parameters() if n.endswith(".w")]
    if neuron == "plif":  # one learned decay per spiking layer, and it gets a gradient
        assert len(decays) == 2, [n for n, _ in net.named_parameters()]
        assert all(p.grad is not None and p.grad.abs() > 0 for p in decays)
    else:
        assert decays == []


@pytest.mark.parametrize("kind", ["cnn", "fc"])
@pytest.mark.parametrize("neuron", ["if", "plif"])
def test_spikingjelly_computes_the_reference_network(neuron, kind):
    x, target = batch()
    out, grads = {}, {}
    for framework in ("reference", "spikingjelly", *(("snntorch", "norse") if neuron == "if"
                                                     else ())):  # fmt: skip
        net = build(framework, neuron, "canonical", kind)
        logits = net(x)
        torch.nn.functional.cross_entropy(logits, target).backward()
        out[framework] = logits.detach()
        grads[framework] = {name: p.grad.reshape(net.weights()[name].shape)
                            for name, p in net.weight_parameters().items()}  # fmt: skip
        grads[framework]["w"] = [p.grad for n, p in net.named_parameters() if n.endswith(".w")]
    assert out["reference"].abs().sum() > 0  # the spiking layers fire: not trivially equal
    for framework in out:
        torch.testing.assert_close(out[framework], out["reference"], atol=1e-4, rtol=0)
        for name, grad in grads[framework].items():
            if name == "w":
                for got, want in zip(grad, grads["reference"]["w"], strict=True):
                    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
            else:
                torch.testing.assert_close(grad, grads["reference"][name], atol=1e-5, rtol=1e-5)


def test_framework_defaults_differences_name_the_neuron():
    differences = neuron_differences("spikingjelly", CANONICAL["plif"])
    settings = {s.setting: s for s in differences.settings}
    assert settings["init_tau"].canonical == "2.0"
    assert "Sigmoid" in settings["surrogate_function"].default
    assert differences.check is not None and "canonical PLIF" in differences.check.input
    assert differences.check.verdict in ("exact", "close", "approximate", "WRONG")
    assert differences.check.default_firing_rate > 0
    reference = neuron_differences("reference", CANONICAL["if"])  # it has no defaults of its own
    assert reference.settings == () and reference.check is None


def test_e2e_trains_plif_and_refuses_what_cannot_run():
    done = run_in_process("e2e", "--neuron", "plif", "--dataset", "synthetic", "--model", "fc",
                          "--frameworks", "reference,snntorch", "--max-steps", "2",
                          "--limit-test", "32", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    from kernelprof.results import files

    document = files.loads(done.stdout)
    assert document.task.config.neuron == "plif"
    rows = {row.framework: row for row in document.rows}
    assert rows["reference"].status == "ok", rows["reference"].reason
    assert rows["snntorch"].status == "unsupported"
    assert "adds its input unscaled" in rows["snntorch"].reason
    for args, expected in (
        (("--neuron", "alf"), "--neuron: unknown 'alf'"),
        (("--neuron", "if", "--mode", "conversion"), "--neuron if: is for --mode direct"),
    ):
        refused = run_in_process("e2e", *args)
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert expected in line


def test_study_cells_train_each_neuron_in_direct_mode_only(tmp_path):
    from kernelprof.requests.study import StudyRequest
    from kernelprof.runs.study.run import keys_of

    request = StudyRequest(neurons="if,plif", frameworks=("reference",), seeds=1,
                           out=tmp_path, device="cpu")  # fmt: skip
    request.check()
    keys = keys_of(request)
    assert {k.neuron for k in keys if k.mode == "direct"} == {"if", "plif"}
    assert {k.neuron for k in keys if k.mode == "conversion"} == {"lif"}
    assert len([k for k in keys if k.mode == "direct"]) == 2 * len(
        [k for k in keys if k.mode == "conversion"]) * len(request.neuron_settings)  # fmt: skip


# CUBA and ALIF: who builds them natively (canonical setting); the rest refuse with the reason.
STATE_CONFIGS = {n: make_config(n, surrogate="superspike", alpha=1.0) for n in ("cuba", "alif")}
STATE_BUILDS = {("reference", "cuba"), ("norse", "cuba"), ("lava-dl", "cuba"),
                ("snntorch", "cuba"), ("spikingjelly", "cuba"), ("reference", "alif")}  # fmt: skip
STATE_REFUSALS = {("norse", "alif"): "a step of delay", ("lava-dl", "alif"): "never resets v",
                  ("rockpool", "cuba"): "rockpool cannot express hard reset",
                  ("spyx", "cuba"): "Spyx trains in JAX",
                  ("spyx", "alif"): "Spyx trains in JAX"}  # fmt: skip


@pytest.mark.parametrize("neuron", ["cuba", "alif"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_network_builds_cuba_and_alif_or_says_why_not(framework, neuron):
    problem = registry.networks()[framework].problem()
    if problem is not None:
        pytest.skip(problem)
    config = STATE_CONFIGS[neuron]
    if (framework, neuron) not in STATE_BUILDS:
        with pytest.raises(Unsupported) as refused:
            build_network(spec("fc"), framework, config, STEPS, SEED, neuron=neuron)
        expected = STATE_REFUSALS.get((framework, neuron), f"so far, not {neuron.upper()}")
        assert expected in str(refused.value), str(refused.value)
        return
    trains(build_network(spec("fc"), framework, config, STEPS, SEED, neuron=neuron))


@pytest.mark.parametrize("framework", ["norse", "snntorch", "spikingjelly"])
@pytest.mark.parametrize("kind", ["cnn", "fc"])
def test_frameworks_run_the_reference_cuba_network_natively(kind, framework):
    """Norse's own LIF with its synaptic current, snnTorch's Synaptic and SpikingJelly's
    CUBALIFNode compute the canonical CUBA network: the same logits and weight gradients as the
    reference network's, which differ from LIF's."""
    pytest.importorskip(framework)
    x, target = batch()
    out, grads = {}, {}
    for name, neuron in (("reference", "cuba"), (framework, "cuba"), ("reference", "lif")):
        config = make_config(neuron, surrogate="superspike", alpha=1.0)
        net = build_network(spec(kind), name, config, STEPS, SEED, neuron=neuron)
        logits = net(x)
        torch.nn.functional.cross_entropy(logits, target).backward()
        out[name, neuron] = logits.detach()
        grads[name, neuron] = {layer: p.grad.reshape(net.weights()[layer].shape)
                               for layer, p in net.weight_parameters().items()}  # fmt: skip
    want = out["reference", "cuba"]
    assert want.abs().sum() > 0 and not torch.allclose(want, out["reference", "lif"], atol=1e-4)
    torch.testing.assert_close(out[framework, "cuba"], want, atol=1e-4, rtol=0)
    for layer, grad in grads[framework, "cuba"].items():
        torch.testing.assert_close(grad, grads["reference", "cuba"][layer], atol=1e-5, rtol=1e-5)


def test_framework_defaults_cuba_elsewhere_is_refused_as_not_built_yet():
    """BrainCog has no current-based neuron that kernelprof builds."""
    pytest.importorskip("braincog")
    with pytest.raises(Unsupported, match="builds IF, LIF, PLIF so far, not CUBA"):
        build_network(spec("fc"), "braincog", None, STEPS, SEED, neuron="cuba")


@pytest.mark.parametrize(("framework", "named", "setting"), [
    ("norse", "norse.torch.LIF()", "tau_syn_inv"),
    ("snntorch", "snn.Synaptic(alpha=0.9, beta=0.5)", "alpha"),
    ("lava-dl", "'current_decay': 0.25", "current_decay"),
    ("rockpool", None, "tau_syn"),
    ("spikingjelly", "CUBALIFNode() at its defaults", "c_decay"),
])  # fmt: skip
def test_framework_defaults_cuba_is_each_frameworks_own_neuron_checked_against_cuba(
    framework, named, setting
):
    pytest.importorskip({"lava-dl": "lava.lib.dl.slayer"}.get(framework, framework))
    net = build_network(spec("fc"), framework, None, STEPS, SEED, neuron="cuba")
    assert named is None or any(named in note for note in net.notes), net.notes
    x, target = batch()
    torch.nn.functional.cross_entropy(net(x), target).backward()
    differences = neuron_differences(framework, STATE_CONFIGS["cuba"])
    settings = {s.setting: s for s in differences.settings}
    assert settings[setting].canonical == repr(STATE_CONFIGS["cuba"].tau_syn)
    assert differences.check is not None and "canonical CUBA" in differences.check.input
    assert differences.check.default_firing_rate > 0
