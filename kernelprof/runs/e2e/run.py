"""``kernelprof e2e``'s parent: one worker per framework (direct training), or the ANN's worker
then one per converter (conversion), and the document they make.

Under ``torchrun`` (direct mode) every copy of the command runs this: the copies agree on one
free port per framework through torchrun's own group, then each rank's worker trains its share
with DistributedDataParallel (:mod:`kernelprof.runs.e2e.distributed`); rank 0 reports for all.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from kernelprof.harness.worker import run_task
from kernelprof.results import analysis
from kernelprof.results.document import Environment
from kernelprof.results.e2e import (
    AnnResult,
    ConversionDocument,
    ConversionRow,
    E2EDocument,
    E2ETask,
    TrainingRow,
)
from kernelprof.results.record import decode, encode
from kernelprof.runs.e2e import distributed as ddp
from kernelprof.runs.e2e import worker
from kernelprof.runs.e2e.data import locate_dataset
from kernelprof.runs.e2e.sources import DatasetUnavailable

# progress(label) -> a context manager giving the callback a worker's progress reports go to
Progress = Callable[[str], contextlib.AbstractContextManager]


def _no_progress(_: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext(None)


def preflight(request) -> str:
    """What must hold on this machine before anything trains: the dataset is there (or
    downloads). Returns where it comes from; raises DatasetUnavailable in one line."""
    return locate_dataset(request.dataset, request.data_dir)


def task_of(request, device: str) -> E2ETask:
    from reference_kernels.model import make_config

    return E2ETask(
        model=request.model, dataset=request.dataset, device=device,
        config=make_config(request.neuron, surrogate="superspike", alpha=1.0), T=request.T,
        epochs=request.epochs,
        max_steps=request.max_steps, batch_size=request.batch_size, lr=request.lr,
        weight_gain=request.weight_gain, seed=request.seed, limit_train=request.limit_train,
        limit_test=request.limit_test, neuron_setting=request.neuron_setting,
        data_dir=None if request.data_dir is None else str(request.data_dir),
        trace_dir=None if request.trace_dir is None else str(request.trace_dir),
    )  # fmt: skip


def reports_here() -> bool:
    """Whether this process reports: always, except the ranks other than 0 under torchrun."""
    launch = ddp.torchrun_environment()
    return launch is None or launch["rank"] == 0


def run_e2e(request, *, environment: Environment, notes: tuple[str, ...] = (),
            progress: Progress = _no_progress) -> E2EDocument | ConversionDocument:  # fmt: skip
    """Every framework of ``request`` (a :class:`~kernelprof.requests.E2ERequest`) trained (or
    converted) in its own worker; Ctrl-C keeps the rows finished so far."""
    launch = ddp.torchrun_environment()
    device = torch.device(request.device)
    if launch is not None and device.type == "cuda":
        device = torch.device("cuda", launch["local_rank"])
    task = task_of(request, str(device))
    if request.mode == "conversion":
        return run_conversion(request, task, environment=environment, notes=notes,
                              progress=progress)  # fmt: skip
    return run_direct(request, task, launch, environment=environment, notes=notes,
                      progress=progress)  # fmt: skip


def run_direct(request, task: E2ETask, launch, *, environment: Environment, notes, progress):
    placements = _placements(request, launch, task.device)
    rows: list[TrainingRow] = []
    interrupted = False
    try:
        for framework, placement in zip(request.frameworks, placements, strict=True):
            job = worker.WorkerTask(function=worker.DIRECT, task=task, framework=framework,
                                    distributed=placement)  # fmt: skip
            with progress(f"training {framework} ({task.dataset})") as on_progress:
                reply = run_task(encode(job), timeout_s=request.timeout, on_progress=on_progress)
            rows.append(_row(TrainingRow, framework, reply))
            if rows[-1].status == "error" and "DatasetUnavailable" in rows[-1].reason:
                break  # every framework would fail the same way: say it once
    except KeyboardInterrupt:
        interrupted = True
    if launch is not None:
        import torch.distributed as dist

        dist.destroy_process_group()
    return E2EDocument(environment=environment, task=task, rows=tuple(rows),
                       attribution=analysis.attribution(rows), notes=notes,
                       world_size=None if launch is None else launch["world_size"],
                       interrupted=interrupted)  # fmt: skip


def _placements(request, launch, device: str) -> list[ddp.Distributed | None]:
    """Where each framework's workers meet under torchrun (a port each, agreed through
    torchrun's rendezvous); None per framework otherwise."""
    if launch is None:
        return [None] * len(request.frameworks)
    import torch.distributed as dist

    dist.init_process_group("gloo")  # torchrun's rendezvous, only to agree on the ports
    ports = ddp.agree_on_ports(len(request.frameworks), launch["master_addr"])
    backend = "nccl" if device.startswith("cuda") else "gloo"
    return [ddp.Distributed(rank=launch["rank"], world_size=launch["world_size"],
                            backend=backend, master_addr=launch["master_addr"], port=port)
            for port in ports]  # fmt: skip


def _row(kind, framework: str, reply: dict):
    """A worker's reply as its row; a worker that gave no row (crash, timeout) as an error."""
    if "framework" not in reply:
        return kind(framework=framework, status="error", reason=reply.get("reason", "no result"))
    return decode(kind, reply)


def run_conversion(request, task: E2ETask, *, environment: Environment, notes, progress):
    """Trains the ANN once in a worker, then converts it with each framework in its own."""
    rows: list[ConversionRow] = []
    ann, interrupted = None, False
    try:
        with tempfile.TemporaryDirectory(prefix="kernelprof-ann-") as scratch:
            path = str(Path(scratch) / "ann.pt")
            job = worker.WorkerTask(function=worker.ANN, task=task, ann_path=path)
            label = f"training the ANN ({task.model} on {task.dataset})"
            with progress(label) as on_progress:
                reply = run_task(encode(job), timeout_s=request.timeout, on_progress=on_progress)
            ann = _ann(reply)
            for framework in request.frameworks if ann.status == "ok" else ():
                job = worker.WorkerTask(function=worker.CONVERT, task=task, framework=framework,
                                        ann_path=path)  # fmt: skip
                label = f"{framework}: converting (or training), testing T = 1..{task.T}"
                with progress(label) as on_progress:  # a route that trains reports its steps
                    reply = run_task(encode(job), timeout_s=request.timeout,
                                     on_progress=on_progress)  # fmt: skip
                rows.append(_row(ConversionRow, framework, reply))
    except KeyboardInterrupt:
        interrupted = True
    return ConversionDocument(environment=environment, task=task, ann=ann, rows=tuple(rows),
                              notes=notes, interrupted=interrupted)  # fmt: skip


def _ann(reply: dict) -> AnnResult:
    if reply.get("status") == "ok":
        return decode(AnnResult, reply)
    return AnnResult(status="error", reason=reply.get("reason", "no result"))


__all__ = ["DatasetUnavailable", "preflight", "reports_here", "run_e2e"]
