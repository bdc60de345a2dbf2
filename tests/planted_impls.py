"""Implementations planted to prove that `kernelprof check` catches what it must.

Loaded into workers through KERNELPROF_EXTRA_IMPLS=tests.planted_impls (never in normal runs).
"""

from __future__ import annotations

import dataclasses
import os
import time

import torch

import reference_kernels
from kernelprof.impls.registry import Built, Implementation, Requirement, register
from kernelprof.lif import LIFConfig


def _shifted_threshold(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    wrong = dataclasses.replace(config, v_threshold=config.v_threshold * 1.05)

    def run(x):
        return reference_kernels.run(x, wrong, impl="torch", return_v=True)

    return Built(run=run, path="planted: threshold 5 % too high")


def _approximate(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    built = _shifted_threshold(config, device, dtype)
    built.approximations.append("planted: threshold rounded up by 5 %")
    return built


def _crash(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    def run(x):
        os.abort()  # what a segfaulting extension looks like from outside

    return Built(run=run, path="planted: aborts")


def _hang(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    def run(x):
        time.sleep(3600)

    return Built(run=run, path="planted: hangs")


register(Implementation("planted-wrong", "planted", _shifted_threshold))
register(Implementation("planted-approximate", "planted", _approximate))
register(Implementation("planted-crash", "planted", _crash))
register(Implementation("planted-hang", "planted", _hang))
register(
    Implementation(
        "planted-missing",
        "planted",
        _shifted_threshold,
        requires=(Requirement("kernelprof-no-such-package", ">=1"),),
    )
)


def _cached(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    """Computes its first call honestly, then returns that result whatever the input."""
    cache = {}

    def run(x):
        if "out" not in cache:
            spikes, v = reference_kernels.run(x, config, impl="torch", return_v=True)
            cache["out"] = spikes.detach(), v.detach()
            return spikes, v
        spikes, v = cache["out"]
        # connected to this call's input, as a cheat would be to pass through autograd
        return spikes + 0 * x, v + 0 * x

    return Built(run=run, path="planted: returns a cached result")


SLEEP_S = 0.02


def _sleepy(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    """Correct, but sleeps on the host in every forward: the harness must count the sleep."""

    def run(x):
        time.sleep(SLEEP_S)
        return reference_kernels.run(x, config, impl="torch", return_v=True)

    return Built(run=run, path="planted: sleeps 20 ms per forward")


def _side_stream(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> Built:
    """Computes its result on the current stream, then queues heavy work on a side stream that
    the current stream never waits for: few launches, milliseconds of GPU time the events miss."""
    stream = torch.cuda.Stream(device=device) if device.type == "cuda" else None
    matrix = torch.randn(4096, 4096, device=device) if device.type == "cuda" else None

    def run(x):
        spikes, v = reference_kernels.run(x, config, impl="torch", return_v=True)
        with torch.cuda.stream(stream):
            product = matrix
            for _ in range(4):  # about 2 ms each of float32 matmul on an H100/H200
                product = product @ matrix
        return spikes, v

    return Built(run=run, path="planted: side stream")


register(Implementation("planted-cached", "planted", _cached))
register(Implementation("planted-sleep", "planted", _sleepy))
register(Implementation("planted-side-stream", "planted", _side_stream, devices=("cuda",)))
