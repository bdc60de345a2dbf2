"""Measures the reference LIF implementations: verdict against the oracle first, then timings.

For each implementation: is it available here (else the reason), does it agree with the float64
oracle on a sample of the input (the verdict), then forward, backward and forward+backward
times from the one timing harness, and the achieved bandwidth against the device's measured
copy bandwidth. Nothing here formats output: see :mod:`kernelprof.report`.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import reference_kernels
from kernelprof.agreement import OracleCheck, check_against_oracle
from kernelprof.harness import device as device_facts
from kernelprof.harness.timer import Measurement, measure
from kernelprof.inputs import lif_input
from kernelprof.lif import LIFConfig

PHASES = ("fwd", "bwd", "fwd+bwd")
CHECK_NEURONS = 2**16  # neurons compared with the float64 oracle (the first ones of the input)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def traffic_bytes(steps: int, neurons: int, dtype: torch.dtype) -> dict[str, int]:
    """Bytes the fused algorithm must move, at storage precision, per phase.

    Forward reads X and writes S and the state backward needs (3 passes over [T, N]); backward
    reads dS and that state and writes dX (3 passes). Every implementation is held to the same
    count, so GB/s compares times directly; one that moves more shows a lower figure.
    """
    one_pass = steps * neurons * torch.finfo(dtype).bits // 8
    return {"fwd": 3 * one_pass, "bwd": 3 * one_pass, "fwd+bwd": 6 * one_pass}


@dataclass
class ImplResult:
    impl: str
    status: str  # "ok", "unavailable" or "error"
    reason: str = ""
    check: OracleCheck | None = None
    timings: dict[str, Measurement] = field(default_factory=dict)

    def as_dict(self, traffic: dict[str, int], copy_bandwidth: float) -> dict:
        timings = {}
        for phase, timing in self.timings.items():
            bandwidth = traffic[phase] / timing.median_s
            timings[phase] = {
                **timing.as_dict(),
                "bytes": traffic[phase],
                "gb_per_s": bandwidth / 1e9,
                "copy_bandwidth_fraction": bandwidth / copy_bandwidth,
            }
        return {
            "impl": self.impl,
            "status": self.status,
            "reason": self.reason,
            "check": None if self.check is None else self.check.as_dict(),
            "timings": timings,
        }


def bench_impl(
    impl: str,
    config: LIFConfig,
    *,
    steps: int,
    neurons: int,
    dtype: torch.dtype,
    device: torch.device,
    seed: int = 0,
    repeat_s: float = 0.25,
) -> ImplResult:
    """Verdict, then fwd / bwd / fwd+bwd timings of one reference implementation."""
    reason = reference_kernels.unavailable_reason(impl, device)
    if reason is not None:
        return ImplResult(impl, "unavailable", reason)

    def run(x: torch.Tensor):
        return reference_kernels.run(x, config, impl=impl, return_v=True)

    try:
        sample = lif_input(
            (steps, min(neurons, CHECK_NEURONS)), config, dtype=dtype, device=device, seed=seed
        )
        check = check_against_oracle(run, sample, config, seed=seed)
        timings = _time_phases(impl, config, steps, neurons, dtype, device, seed, repeat_s)
    except (ValueError, reference_kernels.ImplementationUnavailable) as error:
        return ImplResult(impl, "unavailable", str(error))
    except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
        return ImplResult(impl, "error", f"{type(error).__name__}: {error}".splitlines()[0])
    return ImplResult(impl, "ok", check.reason, check, timings)


def _time_phases(impl, config, steps, neurons, dtype, device, seed, repeat_s):
    x = lif_input((steps, neurons), config, dtype=dtype, device=device, seed=seed)
    x.requires_grad_(True)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 7)).to(x)

    def forward():
        return reference_kernels.run(x, config, impl=impl)

    def forward_backward():
        return torch.autograd.grad(forward(), x, grad)

    timings: dict[str, Measurement] = {}
    timings["fwd"] = measure(forward, device=device, label=f"{impl} fwd", repeat_s=repeat_s)
    timings["bwd"] = _time_backward(forward(), x, grad, device, f"{impl} bwd", repeat_s)
    timings["fwd+bwd"] = measure(
        forward_backward, device=device, label=f"{impl} fwd+bwd", repeat_s=repeat_s
    )
    return timings


def _time_backward(spikes, x, grad, device, label, repeat_s) -> Measurement:
    """Backward alone: the graph of one forward, replayed with retain_graph (no accumulation)."""

    def backward():
        return torch.autograd.grad(spikes, x, grad, retain_graph=True)

    return measure(backward, device=device, label=label, repeat_s=repeat_s)


def run_compare(
    config: LIFConfig,
    impls: list[str],
    *,
    steps_list: list[int],
    neurons_list: list[int],
    dtypes: list[str],
    device: torch.device,
    seed: int = 0,
    repeat_s: float = 0.25,
    environment: dict[str, Any] | None = None,
    status: Callable[[str], contextlib.AbstractContextManager] = lambda _: contextlib.nullcontext(),
    on_run: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """Every implementation on every (T, N, dtype) case; returns the results document.

    ``on_run`` is called with each finished case (for display); Ctrl-C stops the sweep and the
    document keeps the rows finished so far, with ``interrupted`` set.
    """
    notes = [device_facts.keep_host_memory()]
    with status("measuring copy bandwidth"):
        copy_bandwidth = device_facts.copy_bandwidth(device)
    environment = environment or {"device": {"type": device.type}}
    document: dict[str, Any] = {
        "kernelprof": "compare",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "environment": environment,
        "config": config.as_dict(),
        "copy_bandwidth_gb_per_s": copy_bandwidth / 1e9,
        "notes": notes,
        "interrupted": False,
        "runs": [],
    }
    try:
        for steps in steps_list:
            for neurons in neurons_list:
                for dtype_name in dtypes:
                    dtype = DTYPES[dtype_name]
                    traffic = traffic_bytes(steps, neurons, dtype)
                    run: dict[str, Any] = {
                        "case": {"T": steps, "N": neurons, "dtype": dtype_name},
                        "device": environment["device"],
                        "copy_bandwidth_gb_per_s": copy_bandwidth / 1e9,
                        "rows": [],
                    }
                    document["runs"].append(run)
                    for impl in impls:
                        with status(f"{impl}: T={steps} N={neurons:,} {dtype_name}"):
                            result = bench_impl(
                                impl,
                                config,
                                steps=steps,
                                neurons=neurons,
                                dtype=dtype,
                                device=device,
                                seed=seed,
                                repeat_s=repeat_s,
                            )
                        run["rows"].append(result.as_dict(traffic, copy_bandwidth))
                    on_run(run)
    except KeyboardInterrupt:
        document["interrupted"] = True
        notes.append("interrupted: the rows finished so far are reported")
        if document["runs"] and not document["runs"][-1]["rows"]:
            document["runs"].pop()
    return document
