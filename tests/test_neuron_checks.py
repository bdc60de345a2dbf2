"""IF and PLIF through kernelprof's check: the frameworks' mappings against the float64 oracle
(PLIF's dw included), the refusals with their reasons, a planted wrong dw found WRONG, the
request's refusals, and configs that read back as their own neuron."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import NeuronBuild, Unsupported
from kernelprof.inputs import lif_input
from kernelprof.results.record import SchemaError, decode, encode
from kernelprof.verify.agreement import check_against_oracle
from kernelprof.verify.verdicts import classify
from reference_kernels.model import IFConfig, LIFConfig, NeuronConfig, PLIFConfig
from tests.cli_runner import run_in_process
from tests.neuron_cases import if_configs, neuron_id, plif_configs

CPU = torch.device("cpu")
IMPLS = ("ref-torch", "spikingjelly", "snntorch", "braincog", "braincog-lbl", "sinabs", "norse",
         "rockpool", "rockpool-neuron", "spyx", "lava-dl")  # fmt: skip
# The frameworks' own limits (their reasons say so): what each refuses of the configs below.
REFUSED = {
    "snntorch": lambda c: (  # in the order leaky_kwargs, then spike_grad, look
        "adds its input unscaled" if c.neuron == "plif" and c.decay_input
        else "resets to 0 only" if c.v_reset not in (None, 0.0)
        else "cannot detach a subtractive reset" if c.soft_reset and c.detach_reset
        else "no built-in piecewise_exp" if c.surrogate == "piecewise_exp"
        else None
    ),
    "braincog": lambda c: (
        "braincog cannot express" if c.soft_reset or c.v_reset != 0.0 or not c.detach_reset
        or (c.neuron == "plif" and (c.per_channel or not c.decay_input))
        or c.surrogate not in ("sigmoid", "atan") else None
    ),
    "spikingjelly": lambda c: (
        "one w per layer" if c.neuron == "plif" and c.per_channel
        else "SuperSpike" if c.surrogate == "superspike" and c.alpha != 1 else None
    ),
}  # fmt: skip
REFUSED["braincog-lbl"] = REFUSED["braincog"]
REFUSED["norse"] = lambda c: (
    "not map PLIF" if c.neuron == "plif"
    else "norse cannot express" if c.soft_reset or c.detach_reset
    or not (c.surrogate == "superspike" and c.alpha == 1.0 or c.surrogate == "sigmoid"
            and c.alpha == 4.0) else None
)  # fmt: skip
REFUSED["rockpool"] = REFUSED["rockpool-neuron"] = lambda c: (
    "rockpool cannot express" if not c.soft_reset or c.detach_reset
    or (c.neuron == "plif" and c.decay_input) or c.surrogate != "piecewise_exp"
    or c.alpha * c.v_threshold != 2.0 else None
)  # fmt: skip
REFUSED["spyx"] = lambda c: (
    "d\\(beta\\) is not the canonical PLIF's dw" if c.neuron == "plif"
    else "spyx cannot express" if not c.soft_reset or c.detach_reset or c.v_threshold <= 0
    else None
)  # fmt: skip
REFUSED["lava-dl"] = lambda c: (  # LIF only: IF's backward is too far off, PLIF's dw differs
    "dX cosine 0.62 median" if c.neuron == "if" else "kernelprof passes no differing dw"
)  # fmt: skip
REFUSED["sinabs"] = lambda c: (
    "sinabs cannot express" if c.surrogate != "piecewise_exp" or (c.soft_reset and c.detach_reset)
    or (not c.soft_reset and (c.v_reset != 0.0 or not c.detach_reset)) else None
)  # fmt: skip
CONFIGS = [
    *if_configs(),
    *plif_configs(),
    IFConfig(detach_reset=True, surrogate="sigmoid", alpha=4.0),
    PLIFConfig(detach_reset=True, surrogate="atan", alpha=2.0),
    PLIFConfig(tau=3.0, v_reset=0.0, decay_input=False, per_channel=True),
    PLIFConfig(v_reset=None, decay_input=False, surrogate="atan", alpha=2.0),
    IFConfig(v_reset=None, surrogate="piecewise_exp", alpha=1.5),
    IFConfig(v_reset=-0.3, surrogate="superspike", alpha=1.0),
    IFConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0),
    PLIFConfig(v_reset=None, decay_input=False, surrogate="piecewise_exp", alpha=2.0),
    PLIFConfig(
        tau=3.0,
        v_reset=None,
        decay_input=False,
        per_channel=True,
        surrogate="piecewise_exp",
        alpha=2.0,
    ),  # fmt: skip
    PLIFConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0),
    PLIFConfig(
        detach_reset=True, decay_input=False, per_channel=True, surrogate="piecewise_exp", alpha=1.0
    ),  # fmt: skip
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", CONFIGS, ids=neuron_id)
def test_mapping_matches_the_oracle_or_is_refused_with_its_reason(impl, config):
    implementation = registry.implementation(impl)
    if implementation.unavailable_reason(CPU):
        pytest.skip(f"unavailable: {implementation.unavailable_reason(CPU)}")
    refusal = REFUSED.get(impl, lambda c: None)(config)
    if refusal is not None:
        with pytest.raises(Unsupported, match=refusal):
            implementation.check_neuron(config)
            implementation.build(config, CPU, torch.float32)
        return
    build = implementation.build(config, CPU, torch.float32)
    for seed in (0, 1000):  # the same build twice: nothing carried over between checks
        x = lif_input((8, 600), config, seed=seed)
        result = check_against_oracle(build.check, x, config, seed=seed, dw=build.dw)
        verdict, reason = classify(result, build)
        assert verdict in ("exact", "close", "approximate"), reason
        if config.neuron == "plif" and result.spikes.neurons_diverged == 0:
            assert result.dw_relative_error is not None and result.dw_sign_agrees, reason
            if not config.per_channel:  # one dw summed over 8 x 600 terms
                assert result.dw_relative_error < 1e-3, reason


def test_enough_of_each_neuron_is_exact_in_three_frameworks():
    """SpikingJelly, snnTorch, BrainCog, Sinabs and Rockpool each run IF and PLIF for some
    config."""
    for impl in ("spikingjelly", "snntorch", "braincog", "sinabs", "rockpool", "rockpool-neuron"):
        for neuron in ("if", "plif"):
            runs = [c for c in CONFIGS if c.neuron == neuron and REFUSED[impl](c) is None]
            assert runs, (impl, neuron)


def test_frameworks_without_a_mapping_say_so():
    for impl, neuron, reason in (("lava-dl", IFConfig(), "SLAYER's backward ignores the reset"),
                                 ("lava-dl", PLIFConfig(), "reset-free backward"),
                                 ("spyx", PLIFConfig(), "spikes from the state before"),
                                 ("norse", PLIFConfig(), "current-based")):  # fmt: skip
        with pytest.raises(Unsupported, match=reason):
            registry.implementation(impl).check_neuron(neuron)


def _planted(scale: float) -> NeuronBuild:
    """The reference PLIF whose reported dw is scaled: ``scale`` -1 flips its sign."""
    build = registry.implementation("ref-torch").build(PLIFConfig(), CPU, torch.float32)
    real = build.dw
    return dataclasses.replace(build, dw=lambda: real() * scale)


@pytest.mark.parametrize(("scale", "reason"), [(1.5, "dw beyond"), (-1.0, "wrong sign")])
def test_a_wrong_dw_is_wrong(scale, reason):
    config = PLIFConfig()
    x = lif_input((8, 400), config, seed=3)
    build = _planted(scale)
    result = check_against_oracle(build.check, x, config, seed=3, dw=build.dw)
    verdict, why = classify(result, build)
    assert verdict == "WRONG" and reason in why


def test_a_wrong_dw_is_wrong_even_where_approximations_are_declared():
    from kernelprof.frameworks.base import Approximation

    config = PLIFConfig()
    x = lif_input((8, 400), config, seed=4)
    declared = Approximation("a declared approximation", spike_mismatch=1.0,
                             grad_cosine_drop=1.0, v_diff=10.0)  # fmt: skip
    build = dataclasses.replace(_planted(-1.0), approximations=[declared])
    result = check_against_oracle(build.check, x, config, seed=4, dw=build.dw)
    verdict, why = classify(result, build)
    assert verdict == "WRONG" and "wrong sign" in why


def test_a_build_without_dw_says_it_was_not_compared():
    config = PLIFConfig()
    build = registry.implementation("ref-torch").build(config, CPU, torch.float32)
    result = check_against_oracle(build.check, lif_input((4, 50), config), config, dw=None)
    assert result.verdict == "exact" and "dw not compared" in result.reason


@pytest.mark.parametrize("config", [LIFConfig(tau=3.0), IFConfig(v_reset=None),
                                    PLIFConfig(per_channel=True, decay_input=False)])  # fmt: skip
def test_configs_read_back_as_their_own_neuron(config):
    data = encode(config)
    assert data["neuron"] == config.neuron
    assert decode(NeuronConfig, data) == config


def test_a_stored_config_without_a_neuron_is_lif_and_its_errors_are_its_own():
    data = encode(LIFConfig())
    del data["neuron"]
    assert decode(NeuronConfig, data) == LIFConfig()
    data["tau"] = -1.0
    with pytest.raises(SchemaError, match="tau must be a finite number > 0"):
        decode(NeuronConfig, data)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--neuron", "if", "--no-decay-input"], "--no-decay-input: IF has no decay"),
        (["--neuron", "lif", "--per-channel"], "--per-channel: only PLIF learns a decay"),
        (["--neuron", "plif", "--tau", "1"], "--tau (tau0 of PLIF) must be a finite number > 1"),
        (
            ["--neuron", "lif,if", "--per-channel"],
            "--per-channel: only PLIF learns a decay, not LIF/IF",
        ),
        (["--neuron", "if,plif", "--tau", "1"], "--tau (tau0 of PLIF) must be"),
        (["--neuron", "lif", "--tau-syn", "3"], "--tau-syn: only CUBA has it, not LIF"),
        (["--neuron", "cuba", "--detach-adaptation"], "--detach-adaptation: only ALIF has it"),
        (["--neuron", "alif", "--tau-a", "0.5"], "tau_a must be a finite number >= 1"),
        (["--neuron", "cuba", "--tau-syn", "nan"], "--tau-syn"),
    ],
)
def test_neuron_options_are_refused_in_one_line(args, expected):
    for command in ("check", "compare"):
        if "," in args[1] and command == "check":
            continue  # check takes one neuron (below)
        done = run_in_process(command, "--device", "cpu", *args)
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert expected in line


@pytest.mark.parametrize(
    ("command", "neuron", "expected"),
    [
        ("compare", "lif,lif", "--neuron: lif,lif names a neuron twice"),
        ("compare", "lif,alif2", "--neuron: unknown 'alif2' (valid: if, lif, plif, cuba, alif)"),
        ("compare", ",", "--neuron: give at least one neuron"),
        ("check", "if,plif", "--neuron: unknown 'if,plif'"),
    ],
)
def test_a_neuron_list_is_refused_where_it_cannot_run(command, neuron, expected):
    done = run_in_process(command, "--device", "cpu", "--neuron", neuron)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert expected in line


def test_compare_sweeps_a_neuron_list_each_case_with_its_own_config():
    done = run_in_process("compare", "--device", "cpu", "--neuron", "plif,if", "--T", "4,2",
                          "--N", "256", "--impls", "ref-torch", "--repeat-s", "0.01",
                          "--rounds", "1", "--no-energy", "--per-channel", "--no-decay-input",
                          "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    from kernelprof.results import files

    document = files.loads(done.stdout)
    assert [(c.case.neuron, c.case.T) for c in document.cases] == [
        ("plif", 4), ("plif", 2), ("if", 4), ("if", 2)]  # fmt: skip
    for case in document.cases:
        assert case.config.neuron == case.case.neuron
        (row,) = case.rows
        assert row.verdict == "exact", row.reason
    plif, if_ = document.cases[0], document.cases[2]
    assert plif.case.channels == 256 and plif.config.per_channel
    assert not plif.config.decay_input and if_.case.channels == 1
    assert document.config == plif.config  # the document's is the first neuron's
    # PLIF moves more bytes than IF on the same case (its k and dk)
    assert plif.rows[0].bandwidth["fwd"].bytes > if_.rows[0].bandwidth["fwd"].bytes
    csv = run_in_process("compare", "--device", "cpu", "--neuron", "if,lif", "--T", "2",
                         "--N", "64", "--impls", "ref-torch", "--repeat-s", "0.01",
                         "--rounds", "1", "--no-energy", "--format", "csv")  # fmt: skip
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.strip().splitlines()
    assert lines[0].startswith("neuron,T,N,dtype,impl")
    assert [line.split(",")[0] for line in lines[1:]] == ["if", "lif"]
