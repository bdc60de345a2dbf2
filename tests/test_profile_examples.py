"""Every example under `kernelprof profile` (the command line, a fresh process) and through the
Python API (the script run in this process inside `kernelprof.profile()`): its neuron layers
found and named by their framework, with T and their code path, on synthetic data."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

import kernelprof
from kernelprof.frameworks import registry
from kernelprof.results import files
from tests.cli_runner import run_kernelprof

EXAMPLES = Path(__file__).parent.parent / "examples"
SCHEDULE = {"warmup": 2, "steps": 3, "op_steps": 1}  # 2 + 1 + 3 x 4 = 15 steps
# example -> (framework, neuron layers with their T per step, categories that must be there)
EXPECTED = {
    "spikingjelly_cnn.py": ("spikingjelly", "SpikingJelly", {"conv fwd", "norm fwd", "pool fwd"}),
    "snntorch_fc.py": ("snntorch", "snnTorch", {"linear fwd", "loss"}),  # ce_rate_loss()
    "norse_fc.py": ("norse", "Norse", {"linear fwd"}),
    "lava_dl_fc.py": ("lava-dl", "lava-dl", {"linear fwd", "loss"}),
    "sinabs_cnn.py": ("sinabs", "Sinabs", {"conv fwd", "pool fwd"}),
    "study_cnn.py": ("spikingjelly", "SpikingJelly", {"conv fwd", "pool fwd", "linear fwd"}),
}


def _unavailable(name: str) -> None:
    problem = registry.framework(EXPECTED[name][0]).problem()
    if problem is not None:
        pytest.skip(f"unavailable: {problem}")


def _check(document, name: str, T: int) -> None:
    _, display, categories = EXPECTED[name]
    assert document.status == "ok", document.reason
    neurons = [layer for layer in document.layers if layer.category == "neuron"]
    assert neurons, [layer.type for layer in document.layers]
    for layer in neurons:
        assert layer.neuron.framework == display
        assert layer.neuron.T == T, (layer.name, layer.neuron)
        assert layer.neuron.path and layer.neuron.neurons > 0
        assert layer.neuron.time_us > 0
    assert categories <= set(document.categories_us), sorted(document.categories_us)
    assert "neuron fwd" in document.categories_us and "neuron bwd" in document.categories_us
    assert not [problem for problem in document.problems if "not read" in problem]
    assert document.roofline is not None and document.roofline.max_speedup >= 1.0
    assert not [problem for problem in document.problems if "no operations trace" in problem]
    inspection = document.inspection  # the inspected step saw the neuron layers
    assert inspection is not None and inspection.saved_bytes > 0
    assert all(inspection.of(layer.name) is not None for layer in neurons)
    if name == "snntorch_fc.py":  # its loss function's LogSoftmax is the loss, not a layer
        assert not [layer.name for layer in document.layers if "LogSoftmax" in layer.type]


# The GPU check's two examples run in every test run; the others are the grid's slow cases
# (each a training script under the command line, 7-10 s on 2 cores).
EVERY_RUN = ("study_cnn.py", "snntorch_fc.py")


@pytest.mark.parametrize("name", [name if name in EVERY_RUN else
                                  pytest.param(name, marks=pytest.mark.slow)
                                  for name in sorted(EXPECTED)])  # fmt: skip
def test_the_example_runs_under_the_command_line(name, tmp_path):
    _unavailable(name)
    out = tmp_path / "profile.json"
    # the faster-path search on the study's CNN only (it compiles a kernel: ~5 s an example)
    search = () if name == "study_cnn.py" else ("--faster-rounds", "0")
    result = run_kernelprof(
        "profile", "--warmup", "2", "--steps", "3", "--op-steps", "1", *search, "--stop",
        "--out", str(out), "--", "python", str(EXAMPLES / name), "--T", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    _check(files.load(out), name, 4)
    assert "neuron layers against the copy bandwidth" in result.stdout
    if name == "study_cnn.py":  # kernelprof's canonical LIF: its fused kernel found, measured
        document = files.load(out)
        path = next(
            p for p in document.faster.paths if p.change.startswith("kernelprof ref-compile")
        )
        assert path.layers == ("lif1", "lif2") and len(path.step_s) == 5, path
        assert {check.verdict for check in path.checks} <= {"exact", "close"}, path.checks
        assert path.change in document.faster_speedups
        assert "lif1, lif2: kernelprof ref-compile" in result.stdout


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_example_runs_through_the_python_api(name, monkeypatch):
    _unavailable(name)
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / name), "--T", "3", "--steps", "15"])
    with kernelprof.profile(**SCHEDULE) as prof:
        runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert prof.done
    _check(prof.result.document, name, 3)
    assert prof.result.document.task.entry == "api"
