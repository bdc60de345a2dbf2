"""Direct (surrogate-gradient BPTT) training of one framework's network, with a step breakdown.

Each epoch is timed plainly (no hooks, no profiler): time per epoch and per step, samples/s; the
device is synchronised once per step, at its end. The energy counter is read around the epochs
only (after an idle reading, so that idle power can be taken off), not around evaluation or
the profiled steps. Then a few extra steps run under the profiler (without any synchronisation
inside a step) and are attributed to categories of work and to the operations in them:
:mod:`kernelprof.runs.e2e.breakdown`.
"""

from __future__ import annotations

import itertools
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kernelprof.frameworks.networks import SpikingNetwork
from kernelprof.harness.energy import TrainingEnergy
from kernelprof.harness.timer import synchronize
from kernelprof.harness.worker import report_progress
from kernelprof.runs.e2e import breakdown
from kernelprof.runs.e2e.data import Dataset, batches
from kernelprof.runs.e2e.distributed import CommunicationHook, Distributed, shard

BREAKDOWN_SEED_OFFSET = 10_000  # the profiled steps draw batches from an order of their own


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
    distributed: Distributed | None = None,
    energy: TrainingEnergy | None = None,
) -> dict[str, Any]:
    """Trains with Adam on cross-entropy of the logits; returns the measurements. With
    ``trace_path``, one more step is profiled and written there as a Chrome trace. With
    ``distributed`` (a joined process group), trains this rank's share under
    DistributedDataParallel (see kernelprof/e2e/distributed.py)."""
    network.to(device)
    energy = energy if energy is not None else TrainingEnergy(device)
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

    def step(batch, ranges: breakdown.StepRanges | None):
        phase = breakdown.phase_of(ranges)
        x, y = batch
        with phase("host-to-device copy"):
            x, y = x.to(device, non_blocking=False), y.to(device, non_blocking=False)
        with phase("optimizer"):
            optimizer.zero_grad(set_to_none=True)
        if communication is not None:
            communication.profiled = ranges is not None
        with phase("forward"):
            logits = model(x)
        with phase("loss"):
            loss = loss_fn(logits, y)
        with phase("backward"):
            loss.backward()
        with phase("optimizer"):
            optimizer.step()
        return loss.detach()

    epoch_times, step_times, losses = [], [], []
    steps_done = 0
    world = 1 if distributed is None else distributed.world_size
    per_epoch = math.ceil(math.ceil(len(data.train_x) / batch_size) / world)
    total = epochs * per_epoch if max_steps is None else min(max_steps, epochs * per_epoch)
    progress = StepProgress(total, epochs)
    energy.start()
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
            loss = step(batch, None)
            synchronize(device)
            step_times.append(time.perf_counter() - step_start)
            losses.append(loss)
            steps_done += 1
            progress(steps_done, epoch)
        epoch_times.append(time.perf_counter() - epoch_start)
    energy_result = energy.stop(epochs=len(epoch_times))
    # evaluated before the profiled steps, which train on: the accuracy is the epochs'
    test_accuracy = evaluate(network, data, device, batch_size)
    network.train()

    report_progress(done=steps_done, total=total, epoch=len(epoch_times), epochs=epochs,
                    phase="profiled steps")  # fmt: skip
    profiled_batches = _endless(shuffled, seed + BREAKDOWN_SEED_OFFSET)
    with tempfile.TemporaryDirectory(prefix="kernelprof-e2e-") as scratch:
        folder = trace_path.parent if trace_path is not None else Path(scratch)
        name = trace_path.stem if trace_path is not None else "e2e"
        measured = breakdown.measure(
            network, step, lambda: next(profiled_batches), device, folder, name
        )
    coarse = measured["coarse"]
    plain_step_s = statistics.median(step_times[1:] or step_times)  # first step warms caches
    return {
        "epochs": epochs,
        "steps": steps_done,
        "epoch_s": epoch_times,
        "step_s": step_times,
        "step_median_s": plain_step_s,
        "samples_per_s": batch_size / plain_step_s,
        "final_loss": float(losses[-1]) if losses else None,
        "test_accuracy": test_accuracy,
        "energy": energy_result,
        "breakdown_s": {k: v / 1e6 for k, v in coarse["categories_us"].items()},
        "breakdown_kind": coarse["kind"],
        "instrumented_step_s": coarse["step_us"] / 1e6,
        "breakdown_matches_plain_step": measured["matches_plain_step"],
        "breakdown": measured,
        "trace": None if trace_path is None else str(trace_path),
        "ops_trace": None if trace_path is None else str(folder / f"{name}_ops.json"),
    }


class StepProgress:
    """Reports steps done to a parent process (kernelprof e2e's progress bar), at most every
    0.2 s and after the last step: a time check per step, outside the step's timing."""

    def __init__(self, total: int, epochs: int) -> None:
        self.total, self.epochs, self.next_at = total, epochs, 0.0

    def __call__(self, done: int, epoch: int) -> None:
        now = time.monotonic()
        if now >= self.next_at or done == self.total:
            self.next_at = now + 0.2
            report_progress(done=done, total=self.total, epoch=epoch + 1, epochs=self.epochs,
                            phase="training")  # fmt: skip


def _endless(shuffled, seed: int):
    """Batches from one shuffled order after another (a profile may want more than an epoch)."""
    for offset in itertools.count():
        yield from shuffled(seed + offset)


@torch.no_grad()
def evaluate(network: nn.Module, data: Dataset, device: torch.device, batch_size: int) -> float:
    network.eval()
    correct = 0
    for x, y in batches(data.test_x, data.test_y, batch_size, shuffle=False, seed=0):
        correct += int((network(x.to(device)).argmax(dim=1) == y.to(device)).sum())
    return correct / len(data.test_y)
