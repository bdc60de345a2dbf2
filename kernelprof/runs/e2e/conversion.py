"""ANN-to-SNN conversion (``kernelprof e2e --mode conversion``): training the ANN, converting it
with each framework's converter, and testing the converted networks over T.

The ANN twin of a :class:`~kernelprof.frameworks.networks.NetworkSpec` (ReLU where the spec has
LIF, the same seeded initial weights, no biases) is trained once with Adam on cross-entropy.
Each converter (a framework module's ``converters``, found through
:mod:`kernelprof.frameworks.registry`) then turns that same trained ANN into an SNN, which is
run on the test set for up to ``T`` steps with the static image as input current at every step;
the logits are the mean of the readout over the steps so far, so one pass gives the accuracy at
every T <= T max. Every converter gets the same calibration data (the first
``CALIBRATION_SAMPLES`` training samples) and activation percentile
(:data:`~kernelprof.frameworks.networks.PERCENTILE`). A framework without a converter says why
(its ``no_converter``), and that is its row.

A framework whose ANN-to-SNN route trains its own network (a
:class:`~kernelprof.frameworks.base.TrainedRoute`: lava-dl's bootstrap) does not get the shared
ANN: it is trained by the same loop (:func:`train_route`, its own learning rate and T), its
training time reported like the ANN's, then tested over T like the converted networks.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import TrainedRoute, Unsupported
from kernelprof.frameworks.networks import ConvertedSNN, NetworkSpec, TrainedSNN, build_ann
from kernelprof.harness.timer import synchronize
from kernelprof.results.e2e import Fit
from kernelprof.runs.e2e.data import Dataset, batches
from kernelprof.runs.e2e.train import Schedule, StepProgress, evaluate

CALIBRATION_SAMPLES = 512


def train_ann(
    ann: nn.Module, data: Dataset, schedule: Schedule, *, device: torch.device
) -> tuple[Fit, float]:
    """Adam on cross-entropy; returns the fit (epoch and step times, samples/s) and the test
    accuracy."""
    loss_fn = nn.CrossEntropyLoss()
    fit = _fit(ann, lambda x, y, epoch, i: (loss_fn(ann(x), y), "ANN"), data, schedule, device)
    ann.eval()
    return fit, evaluate(ann, data, device, schedule.batch_size)


def train_route(snn: TrainedSNN, data: Dataset, schedule: Schedule, *, device: torch.device) -> Fit:
    """Trains a framework's own route (a :class:`TrainedSNN`) with Adam at the route's
    learning rate through the same loop as the ANN; its step times are also given per mode."""
    return _fit(snn, snn.train_step, data, dataclasses.replace(schedule, lr=snn.lr), device)


def _fit(model, loss_of, data, schedule: Schedule, device) -> Fit:
    """The training loop of both: ``loss_of(x, y, epoch, iteration) -> (loss, mode)`` per batch,
    each step timed to its end (synchronised), progress reported to the parent process."""
    epochs, batch_size, lr, seed = schedule.epochs, schedule.batch_size, schedule.lr, schedule.seed
    max_steps = schedule.max_steps
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    per_epoch = math.ceil(len(data.train_x) / batch_size)
    total = epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    progress = StepProgress(total, epochs)
    epoch_times, step_times, steps = [], [], 0
    by_mode: dict[str, list[float]] = {}
    for epoch in range(epochs):
        synchronize(device)
        epoch_start = time.perf_counter()
        order = seed + epoch  # a fresh order each epoch, as in direct training
        for iteration, (x, y) in enumerate(
            batches(data.train_x, data.train_y, batch_size, shuffle=True, seed=order)
        ):
            if max_steps is not None and steps >= max_steps:
                break
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss, mode = loss_of(x.to(device), y.to(device), epoch, iteration)
            loss.backward()
            optimizer.step()
            synchronize(device)
            step_times.append(time.perf_counter() - start)
            by_mode.setdefault(mode, []).append(step_times[-1])
            steps += 1
            progress(steps, epoch)
        epoch_times.append(time.perf_counter() - epoch_start)
    model.eval()
    step_median = _median(step_times)
    return Fit(
        epochs=epochs,
        training_steps=steps,
        epoch_s=tuple(epoch_times),
        train_s=sum(epoch_times),
        step_median_s=step_median,
        samples_per_s=None if not step_median else batch_size / step_median,
        steps_by_mode={mode: len(times) for mode, times in by_mode.items()},
        step_median_s_by_mode={mode: _median(times) for mode, times in by_mode.items()},
    )


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def checkpoints(max_steps: int) -> list[int]:
    """The T at which accuracy is reported: powers of two below ``max_steps``, and it."""
    if max_steps < 1:
        raise ValueError(f"T must be >= 1, got {max_steps}")
    points = []
    t = 1
    while t < max_steps:
        points.append(t)
        t *= 2
    return [*points, max_steps]


# ---- the converters ---------------------------------------------------------------------------


def calibration_batches(data: Dataset, batch_size: int) -> list[torch.Tensor]:
    x = data.train_x[:CALIBRATION_SAMPLES]
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]


def check_route(name: str):
    """The converter named ``name``. Raises Unsupported when its framework has none (the
    framework's reason), RuntimeError when the framework is not installed, ValueError for an
    unknown name: cheap, so a worker can say so before loading any data. The route is a
    converter ``(ann, calibration, spec) -> ConvertedSNN`` or a
    :class:`~kernelprof.frameworks.base.TrainedRoute`."""
    routes = registry.conversion_routes()
    if name not in routes:
        raise ValueError(f"no conversion route named {name!r} (valid: {', '.join(routes)})")
    framework = routes[name]
    if name not in framework.converters:
        raise Unsupported(framework.no_converter)
    problem = framework.problem()
    if problem is not None:
        raise RuntimeError(f"{name} is unavailable: {problem}")
    return framework.converters[name]


def convert(
    name: str, ann: nn.Sequential, calibration: list[torch.Tensor], spec: NetworkSpec
) -> ConvertedSNN:
    """The conversion of the trained ``ann`` by the converter ``name``."""
    route = check_route(name)
    if isinstance(route, TrainedRoute):
        raise ValueError(f"{name} trains its own network: build it with its TrainedRoute")
    return route(ann, calibration, spec)


def evaluate_over_t(
    snn: ConvertedSNN | TrainedSNN,
    data: Dataset,
    *,
    device: torch.device,
    steps: int,
    batch_size: int,
    limit: int | None = None,
) -> dict[str, Any]:
    """Test accuracy at every checkpoint T <= ``steps`` in one pass; time per batch at ``steps``."""
    points = checkpoints(steps)
    correct = dict.fromkeys(points, 0)
    count = 0
    batch_times = []
    for x, y in batches(data.test_x[:limit], data.test_y[:limit], batch_size, shuffle=False,
                        seed=0):  # fmt: skip
        x, y = x.to(device), y.to(device)
        synchronize(device)
        start = time.perf_counter()
        outputs = snn.readout(x, steps)
        synchronize(device)
        batch_times.append(time.perf_counter() - start)
        running = outputs.cumsum(0)
        for t in points:
            correct[t] += int((running[t - 1].argmax(dim=1) == y).sum())
        count += len(y)
    median = statistics.median(batch_times)
    return {
        "accuracy_by_T": {str(t): correct[t] / count for t in points},
        "test_accuracy": correct[steps] / count,
        "inference_batch_median_s": median,
        "inference_samples_per_s": batch_size / median,
        "test_samples": count,
    }


def save_ann(ann: nn.Module, path: Path) -> None:
    torch.save({k: v.cpu() for k, v in ann.state_dict().items()}, path)


def load_ann(spec: NetworkSpec, seed: int, path: Path, device: torch.device) -> nn.Sequential:
    ann = build_ann(spec, seed)
    ann.load_state_dict(torch.load(path, weights_only=True))
    return ann.to(device).eval()
