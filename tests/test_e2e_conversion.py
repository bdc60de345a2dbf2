"""ANN-to-SNN conversion (kernelprof/runs/e2e/conversion.py, the framework modules' converters,
and `kernelprof e2e --mode conversion`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from kernelprof.frameworks import reference
from kernelprof.frameworks.base import Unsupported
from kernelprof.frameworks.networks import ConvertedSNN, NetworkSpec, build_ann, initial_weights
from kernelprof.runs.e2e import conversion
from kernelprof.runs.e2e.data import Dataset
from tests.cli_runner import run_kernelprof


def test_the_ann_twin_has_relu_for_lif_and_the_seeded_initial_weights():
    spec = NetworkSpec("cnn", (1, 8, 8), 10)
    ann = build_ann(spec, seed=3)
    kinds = [type(m).__name__ for m in ann]
    assert kinds == ["Conv2d", "ReLU", "AvgPool2d", "Conv2d", "ReLU", "AvgPool2d", "Flatten",
                     "Linear"]  # fmt: skip
    weights = initial_weights(spec, seed=3)
    assert torch.equal(ann[0].weight, weights["conv1"])
    assert torch.equal(ann[7].weight, weights["readout"])
    assert all(getattr(m, "bias", None) is None for m in ann)


@pytest.mark.parametrize(("steps", "expected"), [(1, [1]), (5, [1, 2, 4, 5]), (8, [1, 2, 4, 8])])
def test_checkpoints_are_powers_of_two_and_t_max(steps, expected):
    assert conversion.checkpoints(steps) == expected


@pytest.mark.parametrize("current", [0.0, 0.3, 1.7, 2.5, 4.0])
def test_an_if_neuron_rate_approximates_the_relu_it_replaces(current):
    # constant input x, threshold level 2.5: the mean output over T tends to min(max(x, 0), 2.5)
    neuron = reference.IFNeuron(level=2.5)
    x = torch.full((3,), current)
    steps = 200
    mean = torch.stack([neuron(x) for _ in range(steps)]).mean(0)
    target = min(max(current, 0.0), 2.5)
    assert torch.allclose(mean, torch.full((3,), target), atol=2.5 / steps + 1e-6)


def test_activation_percentiles_are_per_relu_order_statistics():
    ann = nn.Sequential(nn.Identity(), nn.ReLU(), nn.Identity(), nn.ReLU())
    x = torch.arange(1, 1001, dtype=torch.float32).reshape(10, 100)
    levels = reference.activation_percentiles(ann, [x[:5], x[5:]])
    assert levels == [pytest.approx(999.0), pytest.approx(999.0)]  # 99.9th of 1..1000


def test_accuracy_over_t_is_cumulative_over_steps():
    # the readout points at class 0 at step 1, then at class 1 with twice the weight: the
    # running mean says class 0 at T=1 and class 1 from T=2 on
    data = Dataset("toy", torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64),
                   torch.zeros(4, 1, 2, 2), torch.ones(4, dtype=torch.int64), 2, (1, 2, 2),
                   "made here")  # fmt: skip

    def readout(x, steps):
        first = torch.tensor([1.0, 0.0]).expand(len(x), 2)
        later = torch.tensor([0.0, 2.0]).expand(len(x), 2)
        return torch.stack([first] + [later] * (steps - 1))

    snn = ConvertedSNN(readout, [])
    result = conversion.evaluate_over_t(snn, data, device=torch.device("cpu"), steps=4,
                                        batch_size=3)  # fmt: skip
    assert result["accuracy_by_T"] == {"1": 0.0, "2": 1.0, "4": 1.0}
    assert result["test_samples"] == 4


def test_frameworks_without_a_converter_say_why():
    spec = NetworkSpec("fc", (1, 4, 4), 3)
    ann = build_ann(spec, 0)
    for framework, reason in [("snntorch", "no ANN-to-SNN converter"), ("lava-dl", "bootstrap")]:
        with pytest.raises(Unsupported, match=reason):
            conversion.convert(framework, ann, [torch.zeros(2, 1, 4, 4)], spec)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    traces = tmp_path_factory.mktemp("traces")
    done = run_kernelprof(
        "e2e", "--mode", "conversion", "--model", "fc", "--dataset", "digits",
        "--frameworks", "spikingjelly,sinabs,reference,snntorch", "--epochs", "3", "--T", "32",
        "--device", "cpu", "--format", "json", "--trace-dir", str(traces),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_conversion_reaches_the_ann_accuracy_with_enough_steps(converted):
    ann = converted["ann"]
    assert ann["status"] == "ok" and ann["test_accuracy"] > 0.85
    rows = {row["framework"]: row for row in converted["rows"]}
    assert rows["snntorch"]["status"] == "unsupported"
    for framework in ("spikingjelly", "sinabs", "reference"):
        row = rows[framework]
        assert row["status"] == "ok", row
        assert list(row["accuracy_by_T"]) == ["1", "2", "4", "8", "16", "32"]
        # rate coding needs time: near chance at T=1, within 5 points of the ANN at T=32
        assert row["accuracy_by_T"]["1"] < ann["test_accuracy"] - 0.2
        assert row["accuracy_by_T"]["32"] > ann["test_accuracy"] - 0.05
        assert row["inference_batch_median_s"] > 0 and row["convert_s"] >= 0


def test_each_converted_network_leaves_a_chrome_trace_of_one_test_batch(converted):
    for row in converted["rows"]:
        if row["status"] != "ok":
            continue
        events = json.loads(Path(row["trace"]).read_text())["traceEvents"]
        linears = sum(e.get("name") == "aten::linear" for e in events)
        # three linear layers, run per step (T=32) or once on batch and time folded (sinabs)
        assert linears == (3 if row["framework"] == "sinabs" else 3 * 32), linears


def test_sinabs_is_a_conversion_route_only():
    done = run_kernelprof("e2e", "--frameworks", "sinabs", "--device", "cpu")
    assert done.returncode == 2 and "--mode direct" in done.stderr and "sinabs" in done.stderr
