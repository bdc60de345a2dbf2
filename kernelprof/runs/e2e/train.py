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
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from kernelprof.frameworks.networks import SpikingNetwork
from kernelprof.harness.energy import TrainingEnergy
from kernelprof.harness.timer import synchronize
from kernelprof.harness.worker import report_progress
from kernelprof.results.e2e import StepBreakdown
from kernelprof.results.energy import EnergyMeasurement
from kernelprof.runs.e2e import breakdown
from kernelprof.runs.e2e.data import Dataset, batches
from kernelprof.runs.e2e.distributed import CommunicationHook, Distributed, shard

BREAKDOWN_SEED_OFFSET = 10_000  # the profiled steps draw batches from an order of their own


@dataclass(frozen=True)
class Schedule:
    """How a training loop runs: epochs, batch, learning rate, seed of the data order, and the
    training steps it may take at most (None: whole epochs). The same for every framework."""

    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    max_steps: int | None = None

    @classmethod
    def of(cls, task) -> Schedule:
        """The schedule of an e2e task (:class:`~kernelprof.results.e2e.E2ETask`)."""
        return cls(epochs=task.epochs, batch_size=task.batch_size, lr=task.lr, seed=task.seed,
                   max_steps=task.max_steps)  # fmt: skip


@dataclass(frozen=True)
class Trained:
    """What :func:`train_direct` measured (the worker adds what it knows about the run)."""

    epochs: int
    training_steps: int
    epoch_s: tuple[float, ...]
    step_s: tuple[float, ...]
    step_median_s: float  # plain steps, the first left out (it warms caches)
    samples_per_s: float
    final_loss: float | None
    test_accuracy: float
    energy: EnergyMeasurement
    breakdown: StepBreakdown
    trace: str | None
    ops_trace: str | None


class Trainer:
    """One framework's network, its optimizer and loss, and its training step: plain, or
    inside the ranges of a profiled step (``ranges``)."""

    def __init__(self, network: SpikingNetwork, data: Dataset, device: torch.device,
                 batch_size: int, lr: float, distributed: Distributed | None) -> None:  # fmt: skip
        network.to(device)
        self.network, self.data, self.device = network, data, device
        self.batch_size, self.distributed = batch_size, distributed
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr)
        self.loss_fn = nn.CrossEntropyLoss()
        self.model: nn.Module = network
        self.communication = None
        if distributed is not None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(network, device_ids=ids)
            self.communication = CommunicationHook(distributed.world_size)
            self.model.register_comm_hook(None, self.communication.hook)

    def shuffled(self, seed: int):
        """One epoch's batches (this rank's share of them, in data-parallel training)."""
        order = batches(self.data.train_x, self.data.train_y, self.batch_size, shuffle=True,
                        seed=seed)  # fmt: skip
        if self.distributed is None:
            return order
        return shard(order, self.distributed.rank, self.distributed.world_size)

    def steps_per_epoch(self) -> int:
        world = 1 if self.distributed is None else self.distributed.world_size
        return math.ceil(math.ceil(len(self.data.train_x) / self.batch_size) / world)

    def step(self, batch, ranges: breakdown.StepRanges | None):
        phase = breakdown.phase_of(ranges)
        x, y = batch
        with phase("host-to-device copy"):
            x, y = x.to(self.device, non_blocking=False), y.to(self.device, non_blocking=False)
        with phase("optimizer"):
            self.optimizer.zero_grad(set_to_none=True)
        if self.communication is not None:
            self.communication.profiled = ranges is not None
        with phase("forward"):
            logits = self.model(x)
        with phase("loss"):
            loss = self.loss_fn(logits, y)
        with phase("backward"):
            loss.backward()
        with phase("optimizer"):
            self.optimizer.step()
        return loss.detach()


def train_direct(
    network: SpikingNetwork,
    data: Dataset,
    schedule: Schedule,
    *,
    device: torch.device,
    trace_path: Path | None = None,
    distributed: Distributed | None = None,
    energy: TrainingEnergy | None = None,
) -> Trained:
    """Trains with Adam on cross-entropy of the logits; returns the measurements. With
    ``trace_path``, the profiled steps' traces are written there (and beside it, ``_ops``).
    With ``distributed`` (a joined process group), trains this rank's share under
    DistributedDataParallel (see kernelprof/runs/e2e/distributed.py)."""
    epochs, batch_size, seed = schedule.epochs, schedule.batch_size, schedule.seed
    trainer = Trainer(network, data, device, batch_size, schedule.lr, distributed)
    energy = energy if energy is not None else TrainingEnergy(device)
    total = epochs * trainer.steps_per_epoch()
    total = total if schedule.max_steps is None else min(schedule.max_steps, total)
    energy.start()
    epoch_times, step_times, losses = _epochs(trainer, epochs, total, seed)
    energy_result = energy.stop(epochs=len(epoch_times))
    # evaluated before the profiled steps, which train on: the accuracy is the epochs'
    test_accuracy = evaluate(network, data, device, batch_size)
    network.train()
    report_progress(done=len(step_times), total=total, epoch=len(epoch_times), epochs=epochs,
                    phase="profiled steps")  # fmt: skip
    profiled_batches = _endless(trainer.shuffled, seed + BREAKDOWN_SEED_OFFSET)
    with tempfile.TemporaryDirectory(prefix="kernelprof-e2e-") as scratch:
        folder = trace_path.parent if trace_path is not None else Path(scratch)
        name = trace_path.stem if trace_path is not None else "e2e"
        measured = breakdown.measure(network, trainer.step, lambda: next(profiled_batches),
                                     device, folder, name)  # fmt: skip
    plain_step_s = statistics.median(step_times[1:] or step_times)  # first step warms caches
    return Trained(
        epochs=epochs, training_steps=len(step_times), epoch_s=tuple(epoch_times),
        step_s=tuple(step_times), step_median_s=plain_step_s,
        samples_per_s=batch_size / plain_step_s,
        final_loss=float(losses[-1]) if losses else None, test_accuracy=test_accuracy,
        energy=energy_result, breakdown=measured,
        trace=None if trace_path is None else str(trace_path),
        ops_trace=None if trace_path is None else str(folder / f"{name}_ops.json"),
    )  # fmt: skip


def _epochs(trainer: Trainer, epochs: int, total: int, seed: int):
    """The plain, timed epochs (up to ``total`` steps): epoch times, step times, losses. The
    device is synchronised once per step, at its end."""
    epoch_times, step_times, losses = [], [], []
    progress = StepProgress(total, epochs)
    for epoch in range(epochs):
        trainer.network.train()
        synchronize(trainer.device)
        epoch_start = time.perf_counter()
        data_iter = trainer.shuffled(seed + epoch)
        while len(step_times) < total:
            step_start = time.perf_counter()
            batch = next(data_iter, None)
            if batch is None:
                break
            loss = trainer.step(batch, None)
            synchronize(trainer.device)
            step_times.append(time.perf_counter() - step_start)
            losses.append(loss)
            progress(len(step_times), epoch)
        epoch_times.append(time.perf_counter() - epoch_start)
    return epoch_times, step_times, losses


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
