"""Data-parallel direct training under torchrun (kernelprof/e2e/distributed.py), 2 CPU processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kernelprof.results import files
from kernelprof.runs.e2e.distributed import shard
from kernelprof.traces.steps import SEQ_ARG, attribute
from kernelprof.traces.timeline import Timeline
from tests.cli_runner import run_kernelprof

TRAIN = ("e2e", "--model", "fc", "--dataset", "digits", "--frameworks", "reference",
         "--epochs", "1", "--steps", "20", "--device", "cpu", "--format", "json")  # fmt: skip


def test_each_rank_takes_every_nth_batch_and_whole_rounds_only():
    batches = list(range(7))
    assert list(shard(iter(batches), 0, 2)) == [0, 2, 4]
    assert list(shard(iter(batches), 1, 2)) == [1, 3, 5]  # 6 is an incomplete round: dropped
    assert list(shard(iter(batches), 2, 3)) == [2, 5]


def test_communication_is_carved_out_of_the_backward_it_happened_in():
    def event(cat, name, ts, dur, **args):
        return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": 1,
                "args": args}  # fmt: skip

    trace = [
        event("user_annotation", "kernelprof/step", 0, 60, **{SEQ_ARG: [0, 9]}),
        event("user_annotation", "kernelprof/lif fwd", 0, 20, **{SEQ_ARG: [1, 5]}),
        event("cpu_op", "MulBackward0", 25, 15, **{"Sequence number": 2, "Fwd thread id": 1}),
        event("user_annotation", "kernelprof/communication", 30, 5),
    ]
    (step,) = attribute(Timeline.from_events(trace)).steps
    assert step.host_us["communication"] == pytest.approx(5)
    assert step.host_us["lif bwd"] == pytest.approx(10)
    assert sum(step.host_us.values()) == pytest.approx(60)


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "kernelprof.cli", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))  # fmt: skip


@pytest.fixture(scope="module")
def two_ranks():
    done = torchrun(*TRAIN, "--batch-size", "32")
    assert done.returncode == 0, done.stderr[-3000:]
    return files.loads(done.stdout)  # rank 0 alone writes the report


def test_two_processes_report_per_rank_and_total_throughput_and_communication(two_ranks):
    assert two_ranks.world_size == 2
    (row,) = two_ranks.rows
    assert row.status == "ok", row
    training = row.training
    ranks = training.ranks
    assert [r.rank for r in ranks] == [0, 1]
    assert [r.steps for r in ranks] == [20, 20]
    assert training.total_samples_per_s == pytest.approx(sum(r.samples_per_s for r in ranks))
    assert all(r.communication_s > 0 for r in ranks)
    for step in training.breakdown.coarse.per_step:
        assert step.host_us["communication"] > 0
        assert sum(step.host_us.values()) == pytest.approx(step.length_us, rel=1e-9)


def test_two_ranks_of_32_train_exactly_like_one_process_of_64(two_ranks):
    # rank r takes batches r, r+2, ... of the 32-sample order, and a 64-sample batch of the same
    # order is two consecutive 32-sample batches: with averaged gradients both runs take the
    # same optimiser steps, so they reach the same test accuracy
    done = run_kernelprof(*TRAIN, "--batch-size", "64")
    assert done.returncode == 0, done.stderr
    (single,) = files.loads(done.stdout).rows
    (parallel,) = two_ranks.rows
    accuracy = parallel.training.test_accuracy
    assert accuracy == pytest.approx(single.training.test_accuracy, abs=1 / 360)
    assert accuracy > 0.8


def test_conversion_under_torchrun_is_a_usage_error():
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    done = subprocess.run(
        [sys.executable, "-m", "kernelprof.cli", "e2e", "--mode", "conversion"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 2 and "torchrun is for direct training" in done.stderr
    assert "Traceback" not in done.stderr
