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
