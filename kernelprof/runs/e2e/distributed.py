"""Data-parallel direct training under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m kernelprof.cli e2e ...`` starts N copies of the command. The copies
meet once through torchrun's rendezvous (``env://``), where rank 0 picks a free TCP port for each
framework; each framework then trains in one worker process per rank, and those workers form
their own process group on that port (gloo on CPU, NCCL on CUDA), so a crashed or timed-out
worker never leaves the launcher's group behind.

Every rank draws the same shuffled order of global batches and trains on every N-th batch of it
(rank r takes batches r, r+N, ...; an incomplete last round is dropped so that all ranks take the
same number of steps). Throughput is per rank (its batch size / its median step) and in total
(their sum). Communication is its own category: in the profiled steps the gradient all-reduce of
each DDP bucket is made blocking, inside a range ``kernelprof/communication`` (the innermost
range, so it is carved out of the backward it happens in); the plain steps keep DDP's overlapped
all-reduce, so the difference between the two step times shows what the overlap saves.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist

from kernelprof.harness.profiling import FastRange
from kernelprof.results.record import record
from kernelprof.traces.steps import COMMUNICATION

GROUP_TIMEOUT_S = 600  # a rank whose peer died gives up after this, rather than gloo's 30 min


@record
class Distributed:
    """One rank of a data-parallel run: where its framework's process group meets."""

    rank: int
    world_size: int
    backend: str
    master_addr: str
    port: int

    @property
    def init_method(self) -> str:
        return f"tcp://{self.master_addr}:{self.port}"

    def join(self) -> None:
        dist.init_process_group(
            self.backend,
            init_method=self.init_method,
            rank=self.rank,
            world_size=self.world_size,
            timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S),
        )

    @staticmethod
    def leave() -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def torchrun_environment() -> dict[str, Any] | None:
    """The launch torchrun describes in the environment; None outside torchrun (or N=1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    return {
        "rank": int(os.environ["RANK"]),
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "world_size": world_size,
        "master_addr": os.environ.get("MASTER_ADDR", "127.0.0.1"),
    }


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host if host not in ("localhost",) else "127.0.0.1", 0))
        return probe.getsockname()[1]


def agree_on_ports(count: int, master_addr: str) -> list[int]:
    """In the launcher group (``env://``): rank 0 picks ``count`` free ports, every rank gets
    them."""
    ports = [free_port(master_addr) for _ in range(count)] if dist.get_rank() == 0 else None
    box = [ports]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(batches: Iterator, rank: int, world_size: int) -> Iterator:
    """Rank ``rank``'s batches of a global order: one of every ``world_size``, whole rounds only."""
    round_: list = []
    for batch in batches:
        round_.append(batch)
        if len(round_) == world_size:
            yield round_[rank]
            round_ = []


class CommunicationHook:
    """A DDP communication hook: the default averaging all-reduce, asynchronous (overlapped
    with backward) unless ``profiled`` is set; then blocking, inside a range
    ``kernelprof/communication`` (its own category in the step breakdown)."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.profiled = False

    # DDP checks a hook's annotations against the real types (strings here would fail) and
    # reads its __name__, so the hook is this plain, unannotated method.
    def hook(self, state, bucket):
        buffer = bucket.buffer()
        if not self.profiled:
            work = dist.all_reduce(buffer, async_op=True)
            return work.get_future().then(lambda future: future.value()[0].div_(self.world_size))
        with FastRange(COMMUNICATION):
            dist.all_reduce(buffer)
            if buffer.is_cuda:  # the range holds the all-reduce itself, not its launch
                torch.cuda.synchronize(buffer.device)
        future = torch.futures.Future()
        future.set_result(buffer.div_(self.world_size))
        return future


def gather_ranks(summary: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Every rank's ``summary`` on rank 0 (None elsewhere)."""
    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(summary, gathered, dst=0)
    return gathered
