"""The SpikingJelly adapters (kernelprof/impls/spikingjelly.py) against the float64 oracle.

Every config of tests/lif_cases.py's grid, for T in {1, 4, 8}, N=2000, float32 on CPU: either the
adapter refuses it with the reason (tau <= 1; superspike with alpha != 1, whose SpikingJelly
formula differs), or spikes equal the oracle's except at threshold ties and V, dX agree.
Also: path detection, the CUDA provider switch, and the version requirements.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections import Counter

import pytest
import torch

from kernelprof.frameworks import spikingjelly as sj
from kernelprof.frameworks.base import Requirement, Unsupported
from kernelprof.inputs import lif_input
from kernelprof.verify.agreement import check_against_oracle
from reference_kernels.model import LIFConfig
from tests.lif_cases import built_or_refused, case_id, check_case, framework_cases

CPU = torch.device("cpu")
CASES = framework_cases()


def expected_refusal(config: LIFConfig) -> str | None:
    """What the refusal must mention, from SpikingJelly's documented limits; None: supported."""
    if config.tau <= 1:
        return "tau > 1"
    if config.surrogate == "superspike" and config.alpha != 1:
        return "only at alpha=1"
    return None


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grid_matches_oracle_or_is_refused_with_reason(case):
    built = built_or_refused(sj.NEURONS["spikingjelly"], case[0], expected_refusal(case[0]))
    if built is None:
        return
    result = check_case(built.check, case, CPU)
    assert result.v_max_abs_diff is not None  # v_seq is V after reset, so V is compared


def test_tau_at_most_one_is_refused():
    with pytest.raises(Unsupported, match="tau > 1"):
        sj.NEURONS["spikingjelly"].build(LIFConfig(tau=1.0), CPU, torch.float32)


def test_state_does_not_leak_between_calls():
    config = LIFConfig()
    built = sj.NEURONS["spikingjelly"].build(config, CPU, torch.float32)
    x = lif_input((6, 500), config, seed=3)
    first = built.check(x)
    built.check(lif_input((6, 500), config, seed=4))
    again = built.check(x)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_cpu_path_is_the_python_loop():
    config = LIFConfig(surrogate="atan", alpha=2.0)
    built = sj.NEURONS["spikingjelly"].build(config, CPU, torch.float32)
    assert built.path.startswith("python loop (CPU)") and "fallback" not in built.path
    assert "not run yet" in built.detect_path()
    built.timed.run(lif_input((4, 100), config))
    detected = built.detect_path()
    assert detected.startswith("python loop (CPU)"), detected
    assert "sj_lif" in detected and "fallback" not in detected


def test_fallback_is_predicted_detected_and_still_correct():
    """float64 is not a fused dtype: SpikingJelly silently takes its surrogate-module loop."""
    config = LIFConfig(v_reset=None, surrogate="piecewise_exp", alpha=1.0)
    built = sj.NEURONS["spikingjelly"].build(config, CPU, torch.float64)
    assert "fallback" in built.path and "float64" in built.path
    x = lif_input((4, 300), config, dtype=torch.float64)
    result = check_against_oracle(built.check, x, config)
    assert result.verdict in ("exact", "close") and result.spikes.non_ties == 0, result.reason
    built.timed.run(x)
    detected = built.detect_path()
    assert detected.startswith("python loop (CPU): fallback"), detected
    assert "piecewise_exp" in detected


def test_forced_provider_refuses_a_profile_that_would_fall_back():
    from spikingjelly.activation_based import surrogate

    cuda = torch.device("cuda")  # no kernel is launched: the refusal comes first
    with pytest.raises(Unsupported, match="SJ_LIF_CUDA_IMPLEMENTATION=triton.*float16"):
        sj._expected_path(surrogate.ATan(2.0), cuda, torch.float16, "triton")
    path = sj._expected_path(surrogate.ATan(2.0), cuda, torch.float16, None)
    assert path == "python loop: fallback, state dtype float16 not fused (needs float32 V)"


SJ_AUTOGRAD_NODES = {
    "GeneratedBackwardFor_sj_lif_forward_default": 1,
    "GeneratedBackwardFor_sj_lif_forward_defaultBackward": 1,
    "autograd::engine::evaluate_function: GeneratedBackwardFor_sj_lif_forward_defaultBackward": 1,
}


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"void lif_forward<float>(...)": 1, "void lif_backward<float>(...)": 1}, "native CUDA"),
        ({"_forward_kernel": 1, "_backward_kernel": 1, "sj_lif::forward": 1}, "Triton kernels"),
        ({"sj_lif::forward": 1, "aten::mul": 40}, "torch provider (CUDA)"),
        # as profiled on an H200: the op's autograd nodes name "lif_forward" but are no kernels
        ({**SJ_AUTOGRAD_NODES, "_forward_kernel": 1, "_backward_kernel": 1}, "Triton kernels"),
        ({**SJ_AUTOGRAD_NODES, "sj_lif::forward": 1, "aten::mul": 40}, "torch provider (CUDA)"),
        ({"atan": 8, "aten::mul": 40}, "python loop (CUDA): fallback"),
        ({"_SurrogateSpike": 8, "sj_lif::forward": 1}, "python loop (CUDA): torch reference"),
    ],
)
def test_profile_classification(names, expected):
    assert sj.classify_profile(Counter(names), 8, torch.device("cuda")).startswith(expected)


@pytest.mark.parametrize("neuron", ["lif", "if", "plif"])
def test_cuda_provider_switch_sets_spikingjelly_selection_and_keeps_environment(neuron):
    import os

    variable = sj.BACKEND_ENVS[neuron]
    before = os.environ.get(variable)
    try:
        sj.use_cuda_backend("triton", neuron)
        selection = sj._selection(neuron)
        assert selection._requested == "triton"
        triton_cache = selection._selections
        sj.use_cuda_backend("torch", neuron)
        assert selection._requested == "torch" and selection._selections is not triton_cache
        sj.use_cuda_backend("triton", neuron)
        assert selection._selections is triton_cache  # one cache per provider, kept
    finally:
        sj.use_cuda_backend(None, neuron)
    assert sj._selection(neuron)._requested == sj._SJ_DEFAULT[neuron]
    assert os.environ.get(variable) == before
    if neuron != "lif":  # each neuron's op has its own selection
        assert sj._selection(neuron) is not sj._selection("lif")


def test_requirements_and_devices_give_the_right_reasons(monkeypatch):
    installed = importlib.metadata.version("spikingjelly")
    assert sj.NEURONS["spikingjelly"].unavailable_reason(CPU) is None
    for name in ("spikingjelly-legacy", "spikingjelly-legacy-cupy"):
        reason = sj.NEURONS[name].unavailable_reason(CPU)
        assert reason == f"spikingjelly {installed} installed, ==0.0.0.0.14 needed"
    for backend in sj.CUDA_BACKENDS:
        reason = sj.NEURONS[f"spikingjelly-{backend}"].unavailable_reason(CPU)
        assert reason == "runs on cuda, not cpu"

    def missing(distribution):
        raise importlib.metadata.PackageNotFoundError(distribution)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert Requirement("spikingjelly", ">=2.0,<3").problem() == "spikingjelly is not installed"


@pytest.mark.cuda
@pytest.mark.parametrize("backend", [None, *sj.CUDA_BACKENDS])
@pytest.mark.parametrize("case", CASES[::7], ids=case_id)
def test_cuda_rows_match_oracle(backend, case):
    name = "spikingjelly" if backend is None else f"spikingjelly-{backend}"
    implementation = sj.NEURONS[name]
    cuda = torch.device("cuda")
    reason = implementation.unavailable_reason(cuda)
    if reason is not None:
        pytest.skip(reason)
    if expected_refusal(case[0]) is not None:
        with pytest.raises(Unsupported):
            implementation.build(case[0], cuda, torch.float32)
        return
    built = implementation.build(case[0], cuda, torch.float32)
    check_case(built.check, case, cuda)
    built.timed.run(lif_input((case[1], 4096), case[0], device=cuda))
    detected = built.detect_path()
    expected = {None: "", "torch": "torch provider", "triton": "Triton", "cuda": "native CUDA"}
    assert detected.startswith(expected[backend]), detected


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_state_is_declared_and_explains_the_difference(dtype):
    """SpikingJelly keeps V in the input dtype: its half-precision results are approximate."""
    from kernelprof.verify.agreement import check_against_oracle
    from kernelprof.verify.verdicts import classify

    config = LIFConfig(surrogate="superspike", alpha=1.0)
    built = sj.NEURONS["spikingjelly"].build(config, CPU, dtype)
    assert any(str(dtype).removeprefix("torch.") in a.reason for a in built.approximations)
    assert not sj.NEURONS["spikingjelly"].build(config, CPU, torch.float32).approximations
    result = check_against_oracle(built.check, lif_input((8, 4096), config, dtype=dtype), config)
    verdict, _ = classify(result, built)
    assert verdict in ("exact", "close", "approximate")


LEGACY_PYTHON = os.environ.get("KERNELPROF_SJ_LEGACY_PYTHON")


@pytest.mark.skipif(LEGACY_PYTHON is None, reason="unavailable: set KERNELPROF_SJ_LEGACY_PYTHON "
                    "to an interpreter with spikingjelly==0.0.0.0.14 (it cannot share a venv "
                    "with 2.x)")  # fmt: skip
@pytest.mark.parametrize("args", [
    ("--neuron", "if", "--surrogate", "sigmoid:4"),
    ("--neuron", "if", "--reset", "soft", "--detach-reset", "--surrogate", "atan:2"),
    ("--neuron", "plif", "--surrogate", "sigmoid:4"),
    ("--neuron", "plif", "--no-decay-input", "--v-reset", "-0.5", "--detach-reset",
     "--surrogate", "atan:2"),
])  # fmt: skip
def test_legacy_if_and_plif_match_the_oracle_with_dw(args):
    """SpikingJelly 0.0.0.0.14's IFNode and ParametricLIFNode, run under their own interpreter
    through check's --python, against the oracle (PLIF's dw too)."""
    import json

    from tests.cli_runner import run_kernelprof

    done = run_kernelprof("check", *args, "--impls", "spikingjelly-legacy", "--python",
                          f"spikingjelly-legacy={LEGACY_PYTHON}", "--N", "2048",
                          "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(done.stdout)["rows"]
    assert row["verdict"] == "exact", row
    if "plif" in args:
        assert row["oracle"]["dw_relative_error"] < 1e-4 and row["oracle"]["dw_sign_agrees"], row
