"""End-to-end training runs: the breakdown adds up, a slow LIF shows up as LIF, bad input."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from kernelprof.frameworks.networks import NetworkSpec
from kernelprof.results.analysis import attribution
from kernelprof.runs.e2e.data import load_dataset
from kernelprof.runs.e2e.run import build_network
from kernelprof.runs.e2e.train import train_direct
from reference_kernels.model import LIFConfig
from tests.cli_runner import run_kernelprof

LIF = LIFConfig(surrogate="superspike", alpha=1.0)
CPU = torch.device("cpu")


def train(network, data, steps=6):
    return train_direct(network, data, device=CPU, epochs=1, batch_size=32, lr=1e-2, seed=0,
                        max_steps=steps)  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", limit_train=256, limit_test=64)


def network(data, framework="reference"):
    spec = NetworkSpec("cnn", data.input_shape, data.classes, weight_gain=4.0)
    return build_network(spec, framework, LIF, steps=4, seed=0)


def test_every_instrumented_step_adds_up_to_its_length(data):
    result = train(network(data), data)
    for step in result["instrumented_steps"]:
        assert sum(step["categories_s"].values()) == pytest.approx(step["length_s"], rel=1e-9)
        assert {"lif fwd", "lif bwd", "conv fwd", "conv bwd", "optimizer"} <= set(
            step["categories_s"]
        )
    assert result["steps"] == 6 and 0.0 <= result["test_accuracy"] <= 1.0


class Slowed(nn.Module):
    """A LIF layer that sleeps before doing its work: a planted slow LIF implementation."""

    def __init__(self, inner: nn.Module, delay_s: float):
        super().__init__()
        self.inner = inner
        self.delay_s = delay_s
        self.slept_s: list[float] = []  # what each sleep really took (a busy VM oversleeps)

    def forward(self, x):
        started = time.perf_counter()
        time.sleep(self.delay_s)
        self.slept_s.append(time.perf_counter() - started)
        return self.inner(x)


def test_a_slow_lif_shows_up_in_the_lif_category_and_nowhere_else(data):
    normal = train(network(data), data)
    slow_network = network(data)
    delay = 0.02
    slowed = []
    for index, (category, module) in enumerate(slow_network.layers):
        if category == "lif":
            wrapper = Slowed(module, delay)
            slow_network.layers[index] = (category, wrapper)
            slowed.append((module, wrapper))
    for module, wrapper in slowed:  # swap the module inside the network's body as well
        for name, child in slow_network.body.named_children():
            if child is module:
                setattr(slow_network.body, name, wrapper)
    slow = train(slow_network, data)
    normal["framework"], slow["framework"] = "normal", "slow"
    normal["status"] = slow["status"] = "ok"
    found = attribution([normal, slow])
    assert found["fastest"] == "normal"
    by_category = found["differences"]["slow"]["by_category_s"]
    top = next(iter(by_category))
    assert top == "lif fwd"
    planted = sum(statistics.median(wrapper.slept_s) for _, wrapper in slowed)  # two LIF layers
    assert planted >= 2 * delay
    assert by_category["lif fwd"] == pytest.approx(planted, rel=0.5)
    others = [abs(v) for k, v in by_category.items() if k != "lif fwd"]
    assert max(others) < 0.25 * by_category["lif fwd"]


def test_e2e_command_trains_and_attributes(tmp_path):
    done = run_kernelprof(
        "e2e", "--model", "fc", "--dataset", "synthetic", "--frameworks", "reference,snntorch",
        "--epochs", "1", "--steps", "5", "--T", "4", "--limit-train", "256",
        "--limit-test", "64", "--device", "cpu", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [row["status"] for row in document["rows"]] == ["ok", "ok"]
    assert document["attribution"]["fastest"] in ("reference", "snntorch")
    assert len(document["attribution"]["differences"]) == 1


def test_bad_dataset_and_data_dir_are_usage_errors(tmp_path):
    done = run_kernelprof("e2e", "--dataset", "imagenet")
    assert done.returncode == 2 and "imagenet" in done.stderr and "digits" in done.stderr
    done = run_kernelprof("e2e", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "not a folder" in done.stderr


def test_missing_mnist_files_say_where_to_put_them(tmp_path):
    done = run_kernelprof(
        "e2e", "--dataset", "mnist", "--data-dir", str(tmp_path), "--frameworks",
        "reference,snntorch", "--format", "json", "--device", "cpu",
    )  # fmt: skip
    if done.returncode == 0:
        pytest.skip("MNIST downloaded: this machine is online")
    assert done.returncode == 1
    rows = json.loads(done.stdout)["rows"]
    assert len(rows) == 1  # said once, not once per framework
    assert "MNIST/raw" in rows[0]["reason"] and "train-images-idx3-ubyte" in rows[0]["reason"]


def test_trace_dir_writes_one_chrome_trace_per_framework_with_layer_ranges(tmp_path):
    done = run_kernelprof(
        "e2e", "--model", "cnn", "--dataset", "synthetic", "--frameworks", "reference,norse",
        "--steps", "3", "--T", "2", "--limit-train", "128", "--limit-test", "32",
        "--device", "cpu", "--format", "json", "--trace-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for row in json.loads(done.stdout)["rows"]:
        trace = json.loads(Path(row["trace"]).read_text())
        names = {e["name"] for e in trace["traceEvents"] if e.get("cat") == "user_annotation"}
        framework = row["framework"]
        assert {f"{framework}/conv fwd", f"{framework}/lif fwd", f"{framework}/pool fwd"} <= names
    assert len(list(tmp_path.iterdir())) == 2
