"""End-to-end training runs: the breakdown adds up, a slow LIF shows up as LIF, bad input."""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from kernelprof.frameworks.networks import NetworkSpec, run_layers
from kernelprof.results import files
from kernelprof.results.analysis import attribution, step_record
from kernelprof.results.e2e import DirectTraining, TrainingRow
from kernelprof.results.record import encode
from kernelprof.runs.e2e.data import load_dataset
from kernelprof.runs.e2e.train import Schedule, train_direct
from kernelprof.runs.e2e.worker import build_network
from kernelprof.traces.steps import compare
from reference_kernels.model import LIFConfig
from tests.cli_runner import run_in_process, run_kernelprof
from tests.planted_impls import OnBackward

LIF = LIFConfig(surrogate="superspike", alpha=1.0)
CPU = torch.device("cpu")


def train(network, data, steps=6):
    schedule = Schedule(epochs=1, batch_size=32, lr=1e-2, seed=0, max_steps=steps)
    return train_direct(network, data, schedule, device=CPU)


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", limit_train=256, limit_test=64)


def network(data, framework="reference"):
    spec = NetworkSpec("cnn", data.input_shape, data.classes, weight_gain=4.0)
    return build_network(spec, framework, LIF, steps=4, seed=0)


def named(result, framework) -> TrainingRow:
    """A trained framework's row, as the worker makes it from what train_direct measured."""
    measured = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    training = DirectTraining(**measured, dataset_source="synthetic", test_samples=64,
                              network="cnn", peak_bytes=1, peak_kind="RSS")  # fmt: skip
    return TrainingRow(framework=framework, status="ok", training=training)


def test_profiled_steps_add_up_and_synchronise_only_at_their_end(data, monkeypatch):
    from kernelprof.runs.e2e import breakdown

    syncs = []
    monkeypatch.setattr(breakdown, "synchronize", lambda device: syncs.append(device))
    result = train(network(data), data)
    measured = result.breakdown
    plain = breakdown.BREAKDOWN_ROUNDS * breakdown.STEPS_PER_ROUND
    profiled = breakdown.BREAKDOWN_ROUNDS * (breakdown.STEPS_PER_ROUND + 1)  # + warm-up steps
    operations = 3 * breakdown.OPERATION_STEPS * breakdown.STEPS_PER_ROUND  # plain, warm-up, ops
    assert len(syncs) == plain + profiled + operations  # once per step, never inside one
    coarse = measured.coarse
    assert len(coarse.per_step) == breakdown.BREAKDOWN_ROUNDS * breakdown.STEPS_PER_ROUND
    for step in coarse.per_step:
        assert sum(step.host_us.values()) == pytest.approx(step.length_us, rel=1e-9)
    assert {"lif fwd", "lif bwd", "conv fwd", "conv bwd", "optimizer"} <= set(coarse.categories_us)
    assert coarse.unlinked_nodes == 0 and measured.problems == ()
    assert not coarse.detailed and measured.detailed.detailed
    assert result.training_steps == 6 and 0.0 <= result.test_accuracy <= 1.0


class Slowed(nn.Module):
    """A layer that sleeps before (or, ``backward``, in the backward of) its work: a planted
    slow implementation. ``slept_s`` is what each sleep really took (a busy VM oversleeps)."""

    def __init__(self, inner: nn.Module, delay_s: float, backward: bool = False,
                 extra_mul: bool = False):  # fmt: skip
        super().__init__()
        self.inner = inner
        self.delay_s = delay_s
        self.backward = backward
        self.extra_mul = extra_mul
        self.slept_s: list[float] = []

    def sleep(self) -> None:
        started = time.perf_counter()
        time.sleep(self.delay_s)
        self.slept_s.append(time.perf_counter() - started)

    def forward(self, x):
        if self.delay_s and not self.backward:
            self.sleep()
        out = self.inner(x)
        if self.backward:
            out = OnBackward.apply(out, self.sleep)
        return out * 1.0 if self.extra_mul else out


def planted(data, category, **how):
    """The reference network with every ``category`` layer wrapped in :class:`Slowed`."""
    built = network(data)
    wrappers = []
    for index, (name, module) in enumerate(built.layers):
        if name == category:
            wrapper = Slowed(module, **how)
            built.layers[index] = (name, wrapper)
            for child_name, child in built.body.named_children():
                if child is module:
                    setattr(built.body, child_name, wrapper)
            wrappers.append(wrapper)
    assert wrappers
    return built, wrappers


def planted_seconds(wrappers, count_per_step):
    """The median sleep, times the sleeps per step."""
    return count_per_step * statistics.median(s for w in wrappers for s in w.slept_s)


@pytest.fixture(scope="module")
def baseline(data):
    return named(train(network(data), data), "normal")


@pytest.mark.parametrize(
    "category, how, charged",
    [("lif", {"delay_s": 0.03}, "lif fwd"),
     ("lif", {"delay_s": 0.03, "backward": True}, "lif bwd"),
     ("pool", {"delay_s": 0.03}, "pool fwd")],
    ids=["slow LIF forward", "slow LIF backward", "slow pooling"],
)  # fmt: skip
def test_a_planted_slow_layer_shows_up_in_its_own_category_and_nowhere_else(
    data, baseline, category, how, charged
):
    slow_network, wrappers = planted(data, category, **how)
    slow = named(train(slow_network, data), "slow")
    found = attribution([baseline, slow])
    assert found.fastest == "normal"
    by_category = found.differences["slow"].by_category_s
    expected = planted_seconds(wrappers, len(wrappers))  # each layer sleeps once a step
    assert next(iter(by_category)) == charged
    # 20 %: a wrong attribution moves the whole planted time (100 %). The unplanted work drifts
    # between the two runs by a few ms on this shared 2-core VM (its category varies with the load:
    # 4 ms idle, 13 ms with both cores busy), so the plant is 30 ms a layer: 10 ms ones were
    # charged 1.05-1.29x their sleeps under load (and 1.20x once in CI), 30 ms ones 1.04-1.14x
    assert by_category[charged] == pytest.approx(expected, rel=0.20)
    others = {k: v for k, v in by_category.items() if k != charged}
    assert max(abs(v) for v in others.values()) < 0.20 * expected, others


def test_an_extra_operator_is_named_with_its_count(data, baseline):
    """One more ``x * 1.0`` in each LIF layer's forward: per step, one more aten::mul per LIF
    layer in lif fwd, and its MulBackward0 node in lif bwd (counts are exact)."""
    extra, wrappers = planted(data, "lif", delay_s=0.0, extra_mul=True)
    result = named(train(extra, data), "extra")
    compared = compare(step_record(baseline), step_record(result), top=10_000)
    categories = {c["name"]: {o["name"]: o for o in c["operations"]}
                  for c in compared["categories"]}  # fmt: skip
    assert categories["lif fwd"]["aten::mul"]["delta_count"] == len(wrappers)
    assert categories["lif bwd"]["MulBackward0"]["delta_count"] == len(wrappers)
    assert categories["conv fwd"]["aten::conv2d"]["delta_count"] == 0


class Ticking(nn.Module):
    """Called ``calls`` times per forward, each call a sleep: a layer that loops over T."""

    def __init__(self, delay_s: float):
        super().__init__()
        self.delay_s = delay_s
        self.slept_s: list[float] = []

    def forward(self, x):
        started = time.perf_counter()
        time.sleep(self.delay_s)
        self.slept_s.append(time.perf_counter() - started)
        return x


class Looped(nn.Module):
    """Calls ``tick`` ``calls`` times, then ``inner``; ``step_slept_s``: each forward's sleeps."""

    def __init__(self, inner: nn.Module, tick: Ticking, calls: int):
        super().__init__()
        self.inner, self.tick, self.calls = inner, tick, calls
        self.step_slept_s: list[float] = []

    def forward(self, x):
        before = len(self.tick.slept_s)
        for _ in range(self.calls):
            self.tick(x)
        self.step_slept_s.append(sum(self.tick.slept_s[before:]))
        return self.inner(x)


def test_a_layer_called_t_times_a_step_is_not_charged_for_its_instrumentation(data):
    """A network that calls its LIF layer 32 times a step (as snnTorch's loop over T does),
    the layer only sleeping 0.2 ms: the lif category is the sleeps, i.e. the hooks and ranges
    around each call cost it well under 10 % of 0.2 ms."""
    built, calls = network(data), 32
    tick = Ticking(0.0002)
    execution = list(built.layers)
    for index, (name, module) in enumerate(built.layers):
        if name == "lif":
            looped = Looped(module, tick, calls)
            execution[index] = ("other", looped)
            built.layers[index] = ("lif", tick)  # the categorised layer: called 32 times
            break
    built.layers = [(name, m) for name, m in built.layers if name != "lif" or m is tick]
    built.run = lambda x_seq: run_layers(execution, x_seq).mean(0)
    result = train(built, data)
    lif_us = result.breakdown.coarse.categories_us["lif fwd"]
    # the category is a median over steps, so the sleeps are too: the median step's 32 sleeps
    # (a busy VM oversleeps now and then; 32 x the mean sleep was off by up to 8 % under load)
    expected_us = 1e6 * statistics.median(looped.step_slept_s)
    assert lif_us == pytest.approx(expected_us, rel=0.10)


def test_e2e_command_trains_and_attributes(tmp_path):
    done = run_kernelprof(
        "e2e", "--model", "fc", "--dataset", "synthetic", "--frameworks", "reference,snntorch",
        "--epochs", "1", "--steps", "5", "--T", "4", "--limit-train", "256",
        "--limit-test", "64", "--device", "cpu", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = files.loads(done.stdout)
    assert [row.status for row in document.rows] == ["ok", "ok"]
    assert document.attribution.fastest in ("reference", "snntorch")
    assert len(document.attribution.differences) == 1
    assert {row.neuron_setting for row in document.rows} == {"canonical"}
    assert not any(row.neuron_differences for row in document.rows)
    assert document.task.max_steps == 5  # more than the epoch has: 256 images, 4 steps of 64
    assert document.rows[0].training.training_steps == 4


def test_framework_defaults_rows_say_how_their_neuron_differs():
    done = run_kernelprof(
        "e2e", "--model", "fc", "--dataset", "synthetic", "--frameworks", "reference,snntorch",
        "--epochs", "1", "--steps", "3", "--T", "4", "--limit-train", "256",
        "--limit-test", "64", "--device", "cpu", "--neuron-setting", "framework-defaults",
        "--format", "md",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Neurons: framework-defaults")
    # the reference's defaults spike as the canonical LIF; snnTorch's tutorial neuron does not
    assert "- reference: its default neuron: surrogate sigmoid (alpha=4.0)" in done.stdout
    assert "0.0 % of spikes differ" in done.stdout
    snntorch = next(line for line in done.stdout.splitlines() if line.startswith("- snntorch:"))
    assert "reset_delay True" in snntorch and "0.0 % of spikes differ" not in snntorch


def test_bad_dataset_and_data_dir_are_usage_errors(tmp_path):
    done = run_in_process("e2e", "--dataset", "imagenet")
    assert done.returncode == 2 and "imagenet" in done.stderr and "digits" in done.stderr
    done = run_in_process("e2e", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "not a folder" in done.stderr


def test_missing_mnist_files_say_where_to_put_them_before_anything_trains(tmp_path):
    started = time.perf_counter()
    done = run_kernelprof(
        "e2e", "--dataset", "mnist", "--data-dir", str(tmp_path), "--frameworks",
        "reference,snntorch", "--format", "json", "--device", "cpu",
    )  # fmt: skip
    if done.returncode == 0:
        pytest.skip("MNIST downloaded: this machine is online")
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "MNIST/raw" in line and "train-images-idx3-ubyte" in line
    assert time.perf_counter() - started < 30  # refused up front: no worker trained


def test_trace_dir_keeps_both_traces_and_trace_diff_of_them_gives_the_attribution(tmp_path):
    done = run_kernelprof(
        "e2e", "--model", "cnn", "--dataset", "synthetic", "--frameworks", "reference,snntorch",
        "--steps", "3", "--T", "2", "--limit-train", "128", "--limit-test", "32",
        "--device", "cpu", "--format", "json", "--trace-dir", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = files.loads(done.stdout)
    rows = {row.framework: row.training for row in document.rows}
    assert len(list(tmp_path.iterdir())) == 4
    for row in rows.values():
        trace = json.loads(Path(row.trace).read_text())
        names = {e["name"] for e in trace["traceEvents"] if e.get("cat") == "user_annotation"}
        assert {"kernelprof/step", "kernelprof/conv fwd", "kernelprof/lif fwd",
                "kernelprof/pool fwd"} <= names  # fmt: skip
    fastest = document.attribution.fastest
    ((other, difference),) = document.attribution.differences.items()
    for key, top in (("trace", "5"), ("ops_trace", "5")):
        diffed = run_kernelprof(
            "trace",
            "diff",
            getattr(rows[fastest], key),
            getattr(rows[other], key),
            "--format",
            "json",
            "--top",
            top,
        )
        assert diffed.returncode == 0, diffed.stderr
        steps = json.loads(diffed.stdout)["steps"]
        by_name = {c["name"]: c for c in steps["categories"]}
        for category in difference.categories:
            if key == "trace":  # the categories come from the breakdown trace
                assert by_name[category.name]["delta_us"] == pytest.approx(
                    category.delta_us, abs=1e-6)  # fmt: skip
            else:  # the named operations from the operations trace
                operations = encode(category)["operations"]
                assert by_name[category.name]["operations"] == operations


def test_step_ranges_wrap_each_layer_once_and_leave_it_as_it_was(data):
    """Inside StepRanges every call of a categorised layer opens one range noting the autograd
    sequence numbers it took, a scripted layer (which holds a forward of its own) and a layer
    listed twice included; on exit each layer is left as it was and the outputs unchanged."""
    from kernelprof.runs.e2e.breakdown import StepRanges

    built = network(data)
    scripted = torch.jit.script(nn.ReLU())
    built.layers = [*built.layers, ("relu", scripted), ("relu", scripted)]  # listed twice
    x = torch.randn(3, 4, requires_grad=True)
    before = {id(m): m.__dict__.get("forward") for _, m in built.layers}
    with StepRanges(built) as ranges:
        built.layers[0][1](torch.zeros(2, 3, *data.input_shape))  # [T, N, C, H, W]
        y = scripted(x * 2.0)
    names = [call[0] for call in ranges.calls]
    assert names == ["kernelprof/conv fwd", "kernelprof/relu fwd"]
    first, end = ranges.calls[0][1:]
    assert end > first  # the convolution made an autograd node inside its range
    assert torch.equal(y, torch.relu(x * 2.0))
    assert before[id(scripted)] is not None
    for _, module in built.layers:
        assert module.__dict__.get("forward") is before[id(module)]


def test_trains_on_real_fashion_mnist():
    """The reference CNN, one epoch over 3,000 real Fashion-MNIST images (Debian's package, as
    the README set-up installs it), well above chance (10 %) on 1,000 test images."""
    from kernelprof.runs.e2e.sources import DEBIAN_FMNIST

    if not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("unavailable: Debian's dataset-fashion-mnist is not installed here")
    fmnist = load_dataset("fmnist", limit_train=3000, limit_test=1000)
    assert "Debian's dataset-fashion-mnist" in fmnist.source
    result = train_direct(network(fmnist), fmnist, Schedule(epochs=1, batch_size=64, lr=1e-2),
                          device=CPU)  # fmt: skip
    assert result.training_steps == 47
    assert result.test_accuracy > 0.6


def test_training_reports_its_progress_up_to_the_last_step(data, monkeypatch):
    from kernelprof.runs.e2e import train as train_module

    reports = []
    monkeypatch.setattr(train_module, "report_progress", lambda **f: reports.append(f))
    train(network(data), data, steps=5)
    training = [r for r in reports if r["phase"] == "training"]
    assert training[0]["total"] == 5 and training[-1]["done"] == 5
    assert [r["done"] for r in training] == sorted(r["done"] for r in training)
    assert reports[-1] == {"done": 5, "total": 5, "epoch": 1, "epochs": 1,
                           "phase": "profiled steps"}  # fmt: skip
