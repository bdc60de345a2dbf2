"""``kernelprof e2e``'s workers: each framework trains the same network in its own worker
(:func:`train_framework`); in conversion mode one worker trains the ANN (:func:`train_ann`)
and each converter converts that same ANN in its own (:func:`convert_ann`, see
:mod:`kernelprof.runs.e2e.conversion`). A worker gets a :class:`WorkerTask` and answers with a
record of :mod:`kernelprof.results.e2e`. The networks come from the framework modules' builders
(:mod:`kernelprof.frameworks.registry`); the step-time attribution across frameworks is in
:mod:`kernelprof.results.analysis`.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path
from typing import Any

import torch

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import TrainedRoute, Unsupported
from kernelprof.frameworks.networks import NetworkSpec, SpikingNetwork
from kernelprof.harness.profiling import profile_call
from kernelprof.results.e2e import (
    AnnResult,
    Conversion,
    ConversionRow,
    DirectTraining,
    E2ETask,
    RankFigures,
    TrainingRow,
)
from kernelprof.results.record import decode, encode, record
from kernelprof.runs.e2e import conversion, settings
from kernelprof.runs.e2e.data import load_dataset
from kernelprof.runs.e2e.distributed import Distributed, gather_ranks
from kernelprof.runs.e2e.train import Schedule, train_direct
from reference_kernels.model import NeuronConfig

# What each kind of e2e worker runs.
DIRECT = "kernelprof.runs.e2e.worker:train_framework"
ANN = "kernelprof.runs.e2e.worker:train_ann"
CONVERT = "kernelprof.runs.e2e.worker:convert_ann"


@record
class WorkerTask:
    """One e2e worker's job: the document's task, and which framework (or the ANN)."""

    function: str
    task: E2ETask
    framework: str | None = None
    ann_path: str | None = None  # conversion: where the trained ANN is saved
    distributed: Distributed | None = None  # one rank of a data-parallel run


def build_network(
    spec: NetworkSpec,
    name: str,
    lif: NeuronConfig | None,
    steps: int,
    seed: int,
    neuron: str = "lif",
) -> SpikingNetwork:
    """Builds ``spec`` with the e2e network ``name`` (a framework module's builder), weights
    drawn from ``seed``; ``lif=None`` gives the framework's own default ``neuron``.

    Raises ValueError for an unknown name, RuntimeError when the framework is not installed,
    and :class:`~kernelprof.frameworks.base.Unsupported` (with the framework's reason) for a
    LIF config it cannot express."""
    known = registry.networks()
    if name not in known:
        raise ValueError(f"no e2e network named {name!r} (valid: {', '.join(known)})")
    framework = known[name]
    problem = framework.problem()
    if problem is not None:
        raise RuntimeError(f"{name} is unavailable: {problem}")
    return framework.networks[name](spec, lif, steps, seed, neuron=neuron)


def train_framework(data: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: loads the data, builds the framework's network, trains it."""
    job = decode(WorkerTask, data)
    task, framework = job.task, job.framework
    defaults = task.neuron_setting == "framework-defaults"
    row = TrainingRow(framework=framework, status="ok", neuron_setting=task.neuron_setting)
    dataset = _load(task)
    spec = _spec(task, dataset)
    try:
        network = build_network(spec, framework, None if defaults else task.config, task.T,
                                task.seed, neuron=task.config.neuron)  # fmt: skip
    except Unsupported as error:
        return encode(dataclasses.replace(row, status="unsupported", reason=str(error)))
    except RuntimeError as error:  # the framework is not installed
        return encode(dataclasses.replace(row, status="unavailable", reason=str(error)))
    if defaults:  # how this framework's own neuron differs from the canonical one, and why
        row = dataclasses.replace(
            row, neuron_differences=settings.neuron_differences(framework, task.config)
        )
    device = torch.device(task.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trained, ranks = _train(job, network, dataset, device)
    training = DirectTraining(
        **{f.name: getattr(trained, f.name) for f in dataclasses.fields(trained)},
        dataset_source=dataset.source, test_samples=len(dataset.test_y),
        network=spec.describe(), notes=tuple(network.notes), peak_bytes=_peak_bytes(device),
        peak_kind=_peak_kind(device), **ranks,
    )  # fmt: skip
    return encode(dataclasses.replace(row, training=training))


def _train(job: WorkerTask, network: SpikingNetwork, dataset, device: torch.device):
    task, distributed = job.task, job.distributed
    trace_path = None
    if task.trace_dir:
        rank = "" if distributed is None else f"_rank{distributed.rank}"
        trace_path = Path(task.trace_dir) / (
            f"e2e_{job.framework}_{task.model}_{task.dataset}{rank}.json"
        )
    if distributed is not None:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        distributed.join()
    try:
        trained = train_direct(network, dataset, Schedule.of(task), device=device,
                               trace_path=trace_path, distributed=distributed)  # fmt: skip
        return trained, _across_ranks(trained, distributed)  # while the group still exists
    finally:
        if distributed is not None:
            Distributed.leave()


def _across_ranks(trained, distributed: Distributed | None) -> dict[str, Any]:
    """Each rank's throughput and communication, gathered on rank 0; the total throughput."""
    if distributed is None:
        return {}
    mine = RankFigures(
        rank=distributed.rank, steps=trained.training_steps,
        step_median_s=trained.step_median_s, samples_per_s=trained.samples_per_s,
        communication_s=trained.breakdown.coarse.categories_us.get("communication", 0.0) / 1e6,
        profiled_step_s=trained.breakdown.coarse.step_us / 1e6,
    )  # fmt: skip
    ranks = gather_ranks(encode(mine))
    extra: dict[str, Any] = {"rank": distributed.rank, "world_size": distributed.world_size}
    if ranks is not None:
        extra["ranks"] = tuple(decode(RankFigures, rank) for rank in ranks)
        extra["total_samples_per_s"] = sum(rank["samples_per_s"] for rank in ranks)
    return extra


def _spec(task: E2ETask, dataset) -> NetworkSpec:
    return NetworkSpec(kind=task.model, input_shape=dataset.input_shape, classes=dataset.classes,
                       weight_gain=task.weight_gain)  # fmt: skip


def _load(task: E2ETask):
    return load_dataset(task.dataset, task.data_dir, seed=task.seed,
                        limit_train=task.limit_train, limit_test=task.limit_test)  # fmt: skip


def train_ann(data: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: trains the ANN twin of the network once and saves it for the
    converters."""
    job = decode(WorkerTask, data)
    task = job.task
    dataset = _load(task)
    spec = _spec(task, dataset)
    ann = conversion.build_ann(spec, task.seed)
    fit, accuracy = conversion.train_ann(ann, dataset, Schedule.of(task),
                                         device=torch.device(task.device))  # fmt: skip
    conversion.save_ann(ann, Path(job.ann_path))
    return encode(AnnResult(status="ok", dataset_source=dataset.source, network=spec.describe(),
                            fit=fit, test_accuracy=accuracy))  # fmt: skip


def convert_ann(data: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: converts the saved ANN with the task's framework (or, for a route
    that trains its own SNN, trains it) and tests it over T."""
    job = decode(WorkerTask, data)
    row = ConversionRow(framework=job.framework, status="ok")
    try:
        route = conversion.check_route(job.framework)  # before any data is loaded
        return encode(dataclasses.replace(row, conversion=_convert(job, route)))
    except Unsupported as error:
        return encode(dataclasses.replace(row, status="unsupported", reason=str(error)))
    except RuntimeError as error:  # the framework is not installed
        return encode(dataclasses.replace(row, status="unavailable", reason=str(error)))


def _convert(job: WorkerTask, route) -> Conversion:
    task = job.task
    device = torch.device(task.device)
    dataset = _load(task)
    spec = _spec(task, dataset)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    training, convert_s = None, None
    if isinstance(route, TrainedRoute):  # the framework trains its own SNN from the data
        snn = route.build(spec, task.T, task.seed, task.max_steps)  # Unsupported: its row
        snn.to(device)
        summary = route.summary
        training = conversion.train_route(snn, dataset, Schedule.of(task), device=device)
    else:
        ann = conversion.load_ann(spec, task.seed, Path(job.ann_path), device)
        calibration = [x.to(device) for x in
                       conversion.calibration_batches(dataset, task.batch_size)]  # fmt: skip
        summary = "converts the shared trained ANN"
        start = time.perf_counter()
        snn = conversion.convert(job.framework, ann, calibration, spec)
        convert_s = time.perf_counter() - start
    tested = conversion.evaluate_over_t(snn, dataset, device=device, steps=task.T,
                                        batch_size=task.batch_size)  # fmt: skip
    trace_path = None
    if task.trace_dir:
        # one test batch through all T steps, with the converted network's layers as ranges
        trace_path = Path(task.trace_dir) / (
            f"e2e_conversion_{job.framework}_{task.model}_{task.dataset}.json"
        )
        x = dataset.test_x[: task.batch_size].to(device)
        profile_call(lambda: snn.readout(x, task.T), device, trace_path)
    return Conversion(route=summary, convert_s=convert_s, training=training,
                      notes=tuple(snn.notes), peak_bytes=_peak_bytes(device),
                      peak_kind=_peak_kind(device),
                      trace=None if trace_path is None else str(trace_path), **tested)  # fmt: skip


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_kind(device: torch.device) -> str:
    return "CUDA allocator peak" if device.type == "cuda" else "process peak RSS"
