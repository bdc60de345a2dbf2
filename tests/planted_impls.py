"""Neurons planted to prove that `kernelprof check` and `compare` catch what they must.

Loaded into workers through KERNELPROF_EXTRA_FRAMEWORKS=tests.planted_impls (never in normal
runs): a framework module like the built-in ones, exposing FRAMEWORK.
"""

from __future__ import annotations

import dataclasses
import os
import time

import torch

import reference_kernels
from kernelprof.frameworks.base import (
    Approximation,
    Framework,
    Implementation,
    NeuronBuild,
    Requirement,
    TimedBuild,
)
from reference_kernels.model import LIFConfig

SLEEP_S = 0.02
LAUNCH_GAP_S = 0.02  # planted-launch-bound: the host's pause between two tiny operators
DRIFT_ROUND, DRIFT_FACTOR = 2, 4  # planted-drift: this round is this many times slower
WRONG_TAIL = 10  # planted-timed-tail: its timed build is wrong on the last this many neurons


def _honest(config: LIFConfig, run_v) -> NeuronBuild:
    """A build whose timed build is the checking build's spikes."""
    return NeuronBuild(check=run_v, timed=TimedBuild(run=lambda x: run_v(x)[0]), path="planted")


def _shifted_threshold(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    wrong = dataclasses.replace(config, v_threshold=config.v_threshold * 1.05)
    build = _honest(config, lambda x: reference_kernels.run(x, wrong, impl="torch", return_v=True))
    build.path = "planted: threshold 5 % too high"
    return build


# A 5 % higher threshold changes about 4 % of the spikes and brings dX's cosine to about 0.96.
ROUNDED_UP = Approximation("planted: threshold rounded up by 5 %", spike_mismatch=0.06,
                           grad_cosine_drop=0.06)  # fmt: skip


def _approximate(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    build = _shifted_threshold(config, device, dtype)
    build.approximations.append(ROUNDED_UP)
    return build


def _approximate_too_far(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    """Declares the 5 % approximation, but its threshold is 50 % too high (17 % of spikes)."""
    wrong = dataclasses.replace(config, v_threshold=config.v_threshold * 1.5)
    build = _honest(config, lambda x: reference_kernels.run(x, wrong, impl="torch", return_v=True))
    build.approximations.append(ROUNDED_UP)
    return build


class _PoisonedGradient(torch.autograd.Function):
    """Identity forward; backward puts a NaN into the last element of the gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        grad.view(-1)[-1] = float("nan")
        return grad


def _nan_gradient(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    """Correct spikes and V, one NaN in dX, and an approximation declared: still WRONG."""

    def run(x):
        return reference_kernels.run(_PoisonedGradient.apply(x), config, impl="torch",
                                     return_v=True)  # fmt: skip

    build = _honest(config, run)
    build.approximations.append(ROUNDED_UP)
    return build


def _crash(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    def run(x):
        os.abort()  # what a segfaulting extension looks like from outside

    return _honest(config, run)


def _hang(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    def run(x):
        time.sleep(3600)

    return _honest(config, run)


def _cached(config: LIFConfig, device: torch.device, dtype: torch.dtype):
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

    return _honest(config, run)


def _sleepy(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    """Correct, but sleeps on the host in every forward: the harness must count the sleep."""

    def run(x):
        time.sleep(SLEEP_S)
        return reference_kernels.run(x, config, impl="torch", return_v=True)

    return _honest(config, run)


def _launch_bound(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    """Correct, but its timed build pauses on the host between two tiny operators: the device
    (or on CPU, torch's operators) works a small part of each call."""

    def timed(x):
        half = x * 0.5
        time.sleep(LAUNCH_GAP_S)
        return reference_kernels.run(half + half, config, impl="torch")

    def check(x):
        return reference_kernels.run(x, config, impl="torch", return_v=True)

    return NeuronBuild(check=check, timed=TimedBuild(run=timed), path="planted: launch-bound")


def _drift(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    """Correct, but DRIFT_FACTOR times slower in round DRIFT_ROUND (as if the machine got busy
    then): compare tells the worker which round it times through KERNELPROF_ROUND."""

    def timed(x):
        started = time.perf_counter()
        spikes = reference_kernels.run(x, config, impl="torch")
        if os.environ.get("KERNELPROF_ROUND") == str(DRIFT_ROUND):
            time.sleep((DRIFT_FACTOR - 1) * (time.perf_counter() - started) + SLEEP_S)
        return spikes

    def check(x):
        return reference_kernels.run(x, config, impl="torch", return_v=True)

    return NeuronBuild(check=check, timed=TimedBuild(run=timed), path="planted: drifts")


class OnBackward(torch.autograd.Function):
    """Identity on a tensor; its backward calls ``then()`` (a planted side effect or delay)."""

    @staticmethod
    def forward(ctx, tensor, then):
        ctx.then = then
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        ctx.then()
        return grad, None


def _stateful(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    """Correct, but its forward is slow unless a backward ran since the last forward (a cache
    that only the backward fills): timed alone, fwd takes longer than fwd+bwd."""
    state = {"warm": False}

    def timed(x):
        if not state["warm"]:
            time.sleep(SLEEP_S)
        state["warm"] = False
        return OnBackward.apply(reference_kernels.run(x, config, impl="torch"),
                                lambda: state.update(warm=True))  # fmt: skip

    def check(x):
        return reference_kernels.run(x, config, impl="torch", return_v=True)

    return NeuronBuild(check=check, timed=TimedBuild(run=timed), path="planted: stateful")


def _timed_tail(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    """An honest checking build whose timed build computes the last WRONG_TAIL neurons of the
    tensor with a 5 % higher threshold: only a sample that includes the last neurons sees it."""
    wrong = dataclasses.replace(config, v_threshold=config.v_threshold * 1.05)

    def timed(x):
        flat = x.reshape(x.shape[0], -1)
        head = reference_kernels.run(flat[:, :-WRONG_TAIL], config, impl="torch")
        tail = reference_kernels.run(flat[:, -WRONG_TAIL:], wrong, impl="torch")
        return torch.cat([head, tail], dim=1).reshape(x.shape)

    def check(x):
        return reference_kernels.run(x, config, impl="torch", return_v=True)

    return NeuronBuild(check=check, timed=TimedBuild(run=timed), path="planted: timed tail")


def _side_stream(config: LIFConfig, device: torch.device, dtype: torch.dtype):
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

    return _honest(config, run)


def _own_phases(config: LIFConfig, device: torch.device, dtype: torch.dtype, *, complete=True):
    """A framework that torch's autograd does not differentiate brings its own timed phases
    (TimedBuild.phases): here fwd, bwd and fwd+bwd sleep 1, 2 and 3 SLEEP_S, so the timings
    show that each phase's own closure was timed; run (for the checks) is the oracle's."""

    def run_v(x):
        return reference_kernels.run(x, config, impl="torch", return_v=True)

    def phases(x, grad):
        found = {
            "fwd": lambda: time.sleep(SLEEP_S),
            "bwd": lambda: time.sleep(2 * SLEEP_S),
            "fwd+bwd": lambda: time.sleep(3 * SLEEP_S),
        }
        if not complete:
            del found["bwd"]
        return found

    timed = TimedBuild(run=lambda x: run_v(x)[0], phases=phases)
    return NeuronBuild(check=run_v, timed=timed, path="planted: phases of its own")


def _own_phases_incomplete(config: LIFConfig, device: torch.device, dtype: torch.dtype):
    return _own_phases(config, device, dtype, complete=False)


def _implementation(name: str, build, **kwargs) -> Implementation:
    return Implementation(name=name, framework="planted", build=build, **kwargs)


FRAMEWORK = Framework(
    name="planted",
    display="planted",
    implementations=(
        _implementation("planted-wrong", _shifted_threshold),
        _implementation("planted-approximate", _approximate),
        _implementation("planted-approximate-too-far", _approximate_too_far),
        _implementation("planted-nan", _nan_gradient),
        _implementation("planted-crash", _crash),
        _implementation("planted-hang", _hang),
        _implementation(
            "planted-missing",
            _shifted_threshold,
            requires=(Requirement("kernelprof-no-such-package", ">=1"),),
        ),
        _implementation("planted-cached", _cached),
        _implementation("planted-sleep", _sleepy),
        _implementation("planted-timed-tail", _timed_tail),
        _implementation("planted-side-stream", _side_stream, devices=("cuda",)),
        _implementation("planted-launch-bound", _launch_bound),
        _implementation("planted-drift", _drift),
        _implementation("planted-stateful", _stateful),
        _implementation("planted-own-phases", _own_phases),
        _implementation("planted-own-phases-incomplete", _own_phases_incomplete),
    ),
)
