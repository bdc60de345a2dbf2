"""Direct (surrogate-gradient BPTT) training of one framework's network, with a step breakdown.

Each epoch is timed plainly (no hooks): time per epoch and per step, samples/s. Then a few extra
steps run instrumented, each on one timeline:

* data loading (building the batch), host-to-device copy, loss, optimizer: explicit intervals;
* forward of each layer category (conv, pool, linear, lif, readout, flatten): module forward
  pre/post hooks;
* backward of each category: a hook on each layer's output tensor marks when the gradient of that
  output is ready, i.e. when the layer's backward starts. Autograd runs a sequential network's
  backward layer by layer, so the stretch from one mark to the next is that layer's backward
  (its glue included), and the last stretch ends when backward returns. Tensor hooks add no
  autograd nodes (module full-backward hooks do, and tripled lava-dl's step time);
* communication (data-parallel runs only): each gradient bucket's all-reduce, made blocking in
  the instrumented steps and carved out of the backward it happened in (e2e/distributed.py);
  it includes waiting for the slowest rank;
* other: whatever no interval covers (Python glue, framework loops between layers).

The categories of an instrumented step add up to its length by construction; what is checked is
that the instrumented step is within 5 % of the plain step, i.e. that the hooks did not change
what they measure. On CUDA every boundary synchronises the device, so each category is its own
time without overlap; the plain step time shows what overlap saves.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kernelprof.frameworks.networks import SpikingNetwork
from kernelprof.harness.profiling import profile_call
from kernelprof.harness.timer import synchronize
from kernelprof.runs.e2e.data import Dataset, batches
from kernelprof.runs.e2e.distributed import CommunicationHook, Distributed, shard

ADD_UP_TOLERANCE = 0.05
COMMUNICATION = "communication"
INSTRUMENTED_STEPS = 8


class Timeline:
    """Labelled intervals and marks of one step, on the host clock (device synchronised)."""

    def __init__(self, device: torch.device, clock: Callable[[], float] = time.perf_counter):
        self.device = device
        self.clock = clock
        self.intervals: list[tuple[str, float, float]] = []
        self.backward_marks: list[tuple[str, float]] = []

    def now(self) -> float:
        synchronize(self.device)
        return self.clock()

    @contextmanager
    def interval(self, label: str) -> Iterator[None]:
        start = self.now()
        yield
        self.intervals.append((label, start, self.now()))

    def categories(self, start: float, end: float, backward_end: float | None) -> dict[str, float]:
        """Seconds per category over [start, end]; 'other' is what no interval covers."""
        intervals = list(self.intervals)
        marks = sorted(self.backward_marks, key=lambda mark: mark[1])
        if backward_end is not None:
            ends = [mark[1] for mark in marks[1:]] + [backward_end]
            for (label, begin), finish in zip(marks, ends, strict=True):
                intervals.append((label, begin, finish))
        # Communication (a blocking all-reduce inside backward, see e2e/distributed.py) is its
        # own category: it is carved out of whatever interval it happened in.
        communication = [(b, f) for label, b, f in intervals if label == COMMUNICATION]
        totals: dict[str, float] = defaultdict(float)
        covered = 0.0
        for label, begin, finish in intervals:
            length = finish - begin
            if label != COMMUNICATION:
                length -= sum(max(0.0, min(f, finish) - max(b, begin)) for b, f in communication)
            totals[label] += length
            covered += length
        totals["other"] = max(0.0, (end - start) - covered)
        return dict(totals)


def _hook_layers(network: SpikingNetwork, timeline: Timeline) -> list:
    """Forward intervals and backward marks for every categorised layer; returns the handles."""
    handles = []
    for category, module in network.layers:
        starts: list[float] = []

        def mark_backward(grad, label=f"{category} bwd"):
            timeline.backward_marks.append((label, timeline.now()))

        def pre(module, args, starts=starts):
            starts.append(timeline.now())

        def post(module, args, output, starts=starts, label=f"{category} fwd", mark=mark_backward):
            end = timeline.now()
            timeline.intervals.append((label, starts.pop(), end))
            first = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(first, torch.Tensor) and first.requires_grad:
                first.register_hook(mark)

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    return handles


def train_direct(
    network: SpikingNetwork,
    data: Dataset,
    *,
    device: torch.device,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_steps: int | None = None,
    trace_path: Path | None = None,
    trace_label: str = "",
    distributed: Distributed | None = None,
) -> dict[str, Any]:
    """Trains with Adam on cross-entropy of the logits; returns the measurements. With
    ``trace_path``, one more step is profiled and written there as a Chrome trace. With
    ``distributed`` (a joined process group), trains this rank's share under
    DistributedDataParallel (see kernelprof/e2e/distributed.py)."""
    network.to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model: nn.Module = network
    communication = None
    if distributed is not None:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )
        communication = CommunicationHook(distributed.world_size)
        model.register_comm_hook(None, communication.hook)

    def shuffled(seed_: int):
        order = batches(data.train_x, data.train_y, batch_size, shuffle=True, seed=seed_)
        if distributed is None:
            return order
        return shard(order, distributed.rank, distributed.world_size)

    def step(x, y, timeline: Timeline | None):
        x, y = _copy(x, y, device, timeline)
        optimizer.zero_grad(set_to_none=True)
        if communication is not None:
            communication.timeline = timeline
        logits = model(x)
        with _maybe(timeline, "loss"):
            loss = loss_fn(logits, y)
        loss.backward()
        backward_end = timeline.now() if timeline is not None else None
        with _maybe(timeline, "optimizer"):
            optimizer.step()
        return float(loss.detach()), backward_end

    epoch_times, step_times, losses = [], [], []
    steps_done = 0
    for epoch in range(epochs):
        network.train()
        synchronize(device)
        epoch_start = time.perf_counter()
        data_iter = shuffled(seed + epoch)
        while max_steps is None or steps_done < max_steps:
            step_start = time.perf_counter()
            batch = next(data_iter, None)
            if batch is None:
                break
            loss, _ = step(*batch, None)
            synchronize(device)
            step_times.append(time.perf_counter() - step_start)
            losses.append(loss)
            steps_done += 1
        epoch_times.append(time.perf_counter() - epoch_start)

    breakdowns, instrumented = _instrumented_steps(network, shuffled(seed + 10_000), step, device)
    if trace_path is not None:
        x, y = next(shuffled(seed))
        with _layer_ranges(network, trace_label):
            profile_call(lambda: step(x, y, None), device, trace_path)
    plain_step_s = statistics.median(step_times[1:] or step_times)  # first step warms caches
    instrumented_s = statistics.median(instrumented)
    categories = {
        label: statistics.median(b.get(label, 0.0) for b in breakdowns)
        for label in sorted({label for b in breakdowns for label in b})
    }
    return {
        "epochs": epochs,
        "steps": steps_done,
        "epoch_s": epoch_times,
        "step_s": step_times,
        "step_median_s": plain_step_s,
        "samples_per_s": batch_size / plain_step_s,
        "final_loss": losses[-1] if losses else None,
        "test_accuracy": evaluate(network, data, device, batch_size),
        "breakdown_s": categories,
        "instrumented_step_s": instrumented_s,
        "instrumented_steps": [
            {"length_s": length, "categories_s": breakdown}
            for length, breakdown in zip(instrumented, breakdowns, strict=True)
        ],
        "breakdown_matches_plain_step": abs(instrumented_s - plain_step_s)
        <= ADD_UP_TOLERANCE * plain_step_s,
    }


def _instrumented_steps(network, data_iter, step, device):
    """A few steps on one timeline each; returns their breakdowns and lengths."""
    breakdowns, lengths = [], []
    for _ in range(INSTRUMENTED_STEPS):
        timeline = Timeline(device)
        handles = _hook_layers(network, timeline)
        try:
            start = timeline.now()
            with timeline.interval("data loading"):
                batch = next(data_iter, None)
            if batch is None:
                break
            _, backward_end = step(*batch, timeline)
            end = timeline.now()
        finally:
            for handle in handles:
                handle.remove()
        breakdowns.append(timeline.categories(start, end, backward_end))
        lengths.append(end - start)
    return breakdowns, lengths


@contextmanager
def _layer_ranges(network: SpikingNetwork, prefix: str) -> Iterator[None]:
    """record_function ranges named '<prefix>/<category> fwd' around every layer's forward."""
    handles = []
    for category, module in network.layers:
        open_ranges: list = []

        def pre(module, args, open_ranges=open_ranges, label=f"{prefix}/{category} fwd"):
            open_ranges.append(torch.profiler.record_function(label).__enter__())

        def post(module, args, output, open_ranges=open_ranges):
            open_ranges.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _copy(x, y, device, timeline):
    with _maybe(timeline, "host-to-device copy"):
        return x.to(device, non_blocking=False), y.to(device, non_blocking=False)


@contextmanager
def _maybe(timeline: Timeline | None, label: str) -> Iterator[None]:
    if timeline is None:
        yield
    else:
        with timeline.interval(label):
            yield


@torch.no_grad()
def evaluate(network: nn.Module, data: Dataset, device: torch.device, batch_size: int) -> float:
    network.eval()
    correct = 0
    for x, y in batches(data.test_x, data.test_y, batch_size, shuffle=False, seed=0):
        correct += int((network(x.to(device)).argmax(dim=1) == y.to(device)).sum())
    return correct / len(data.test_y)
