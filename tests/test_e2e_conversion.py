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
from kernelprof.results import files
from kernelprof.runs.e2e import conversion
from kernelprof.runs.e2e.data import Dataset
from kernelprof.runs.e2e.train import Schedule
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
    with pytest.raises(Unsupported, match="no ANN-to-SNN converter"):
        conversion.convert("snntorch", ann, [torch.zeros(2, 1, 4, 4)], spec)
    # lava-dl's route trains its own SNN: it is never handed the shared ANN
    with pytest.raises(ValueError, match="trains its own network"):
        conversion.convert("lava-dl", ann, [torch.zeros(2, 1, 4, 4)], spec)


def _toy_data(n: int = 24) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 4, 4, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return Dataset("toy", x, y, x[:8], y[:8], 3, (1, 4, 4), "random")


@pytest.mark.parametrize("kind", ["fc", "cnn"])
def test_lava_bootstrap_samples_then_fits_then_trains_as_an_ann(kind):
    pytest.importorskip("lava.lib.dl.bootstrap")
    from kernelprof.frameworks import lava_dl

    spec = NetworkSpec(kind, (1, 4, 4), 3)
    # 5 steps: bootstrap's 10 sampling iterations do not fit, so it samples 4 and fits at the 5th
    snn = lava_dl.BOOTSTRAP.build(spec, 8, 0, 5)
    result = conversion.train_route(snn, _toy_data(), Schedule(3, 4, 0.0, 0, max_steps=5),
                                    device=torch.device("cpu"))  # fmt: skip
    assert result.steps_by_mode == {"SAMPLE": 4, "FIT": 1}
    snn = lava_dl.BOOTSTRAP.build(spec, 8, 0, None)
    result = conversion.train_route(snn, _toy_data(64), Schedule(1, 4, 0.0, 0),
                                    device=torch.device("cpu"))  # fmt: skip
    assert result.steps_by_mode == {"SAMPLE": 10, "FIT": 1, "ANN": 5}
    assert result.train_s == pytest.approx(sum(result.epoch_s))


def test_lava_bootstrap_readout_is_a_causal_snn_from_a_fresh_state():
    # evaluate_over_t reads every T off one pass at T max: the first t steps of a longer run
    # must be the run of t steps, and a second call must not remember the first
    pytest.importorskip("lava.lib.dl.bootstrap")
    from kernelprof.frameworks import lava_dl

    snn = lava_dl.BOOTSTRAP.build(NetworkSpec("cnn", (1, 4, 4), 3), 8, 0, 2)
    conversion.train_route(
        snn, _toy_data(), Schedule(1, 8, 0.0, 0, max_steps=2), device=torch.device("cpu")
    )
    x = 3 * torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    long, short = snn.readout(x, 12), snn.readout(x, 5)
    assert long.shape == (12, 5, 3)
    assert torch.equal(long[:5], short)
    assert long.abs().sum() > 0  # spikes reached the readout


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    traces = tmp_path_factory.mktemp("traces")
    done = run_kernelprof(
        "e2e", "--mode", "conversion", "--model", "fc", "--dataset", "digits",
        "--frameworks", "spikingjelly,sinabs,reference,snntorch,lava-dl", "--epochs", "3",
        "--T", "32",
        "--device", "cpu", "--format", "json", "--trace-dir", str(traces),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = files.loads(done.stdout)
    assert document.kernelprof == "conversion"
    return document


def test_conversion_reaches_the_ann_accuracy_with_enough_steps(converted):
    ann = converted.ann
    assert ann.status == "ok" and ann.test_accuracy > 0.85
    rows = {row.framework: row for row in converted.rows}
    assert rows["snntorch"].status == "unsupported"
    for framework in ("spikingjelly", "sinabs", "reference"):
        assert rows[framework].status == "ok", rows[framework]
        row = rows[framework].conversion
        assert list(row.accuracy_by_T) == ["1", "2", "4", "8", "16", "32"]
        # rate coding needs time: near chance at T=1, within 5 points of the ANN at T=32
        assert row.accuracy_by_T["1"] < ann.test_accuracy - 0.2
        assert row.accuracy_by_T["32"] > ann.test_accuracy - 0.05
        assert row.inference_batch_median_s > 0 and row.convert_s >= 0
        assert row.route == "converts the shared trained ANN"


def test_lava_dl_row_is_trained_through_bootstrap_and_tested_as_an_snn(converted):
    lava = {row.framework: row for row in converted.rows}["lava-dl"]
    if lava.status == "unavailable":
        pytest.skip(lava.reason)
    assert lava.status == "ok", lava
    row = lava.conversion
    assert "bootstrap" in row.route and "not a converter of the shared ANN" in row.route
    training = row.training
    assert training.steps_by_mode["SAMPLE"] == 10 and training.steps_by_mode["FIT"] == 1
    assert training.epochs == 3 and training.train_s > 0 and row.convert_s is None
    assert list(row.accuracy_by_T) == ["1", "2", "4", "8", "16", "32"]
    assert row.accuracy_by_T["32"] > 0.8  # a pure SNN trained three epochs on digits


def test_each_converted_network_leaves_a_chrome_trace_of_one_test_batch(converted):
    for row in converted.converted:
        events = json.loads(Path(row.conversion.trace).read_text())["traceEvents"]
        if row.framework == "lava-dl":  # time-last: one conv3d per layer for all T steps
            assert sum(e.get("name") == "aten::conv3d" for e in events) == 3
            continue
        linears = sum(e.get("name") == "aten::linear" for e in events)
        # three linear layers, run per step (T=32) or once on batch and time folded (sinabs)
        assert linears == (3 if row.framework == "sinabs" else 3 * 32), linears


def test_sinabs_is_a_conversion_route_only():
    done = run_kernelprof("e2e", "--frameworks", "sinabs", "--device", "cpu")
    assert done.returncode == 2 and "--mode direct" in done.stderr and "sinabs" in done.stderr
