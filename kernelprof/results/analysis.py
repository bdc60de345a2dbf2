"""Analysis of results documents: rounds pooled, traffic and bandwidth, speedups with their
intervals, launch-bound and inconsistent rows, e2e attribution.

Pure functions over measured records; nothing here measures or formats.

Compare measures each implementation in several rounds, interleaved with the others (order
rotated), so that a machine's drift lands on every row alike rather than on whichever ran
during it. A phase's rounds are pooled (:func:`pool_rounds`); speedups are the median over
rounds of the per-round ratio (rounds are paired: round r of every row ran at about the same
time), with a bootstrap interval that resamples the calls within each round.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from typing import Any

import torch

from kernelprof.inputs import DTYPES
from kernelprof.traces.steps import compare

TRUSTED_VERDICTS = ("exact", "close")
# A phase warns when its rounds' median spread (IQR/median) exceeds SPREAD_WARNING, or on a
# noisy machine NOISE_MULTIPLE times the spread of the machine's noise probe (a fixed workload
# timed the same way): what the machine adds to every row alike is reported once, as the
# probe, and a row is flagged for what it adds beyond.
SPREAD_WARNING = 0.10
NOISE_MULTIPLE = 2.0
# Rounds disagree when their medians differ by more than ROUND_TOLERANCE and the slowest
# round's interquartile range lies wholly above the fastest one's (a drift, not the calls' own
# scatter, which with a few calls per round moves a round's median by that much on its own).
ROUND_TOLERANCE = 0.25
PHASE_TOLERANCE = 0.05  # fwd or bwd alone above fwd+bwd by more than this: inconsistent
LAUNCH_BOUND = 0.20  # call time above device time by more than this: launch-bound
# CPU analogue: more than this share of the call outside torch operators. Higher than the CUDA
# threshold, since allocator work between operators (page faults, munmap of freed tensors) is
# outside them too: it reaches 20-25 % of a torch.compile'd forward on the 2-core CPU.
HOST_BOUND = 0.50
BOOTSTRAP = 1000  # resamples for a speedup's interval
INTERVAL = (0.025, 0.975)
BUSY = "inconsistent (machine busy?)"


def spread_limit(noise: float | None) -> float:
    """The spread above which a phase is warned about, given the machine's noise probe."""
    return max(SPREAD_WARNING, NOISE_MULTIPLE * (noise or 0.0))


def pool_rounds(rounds: list[dict[str, Any]], noise: float | None = None) -> dict[str, Any]:
    """One phase's timing from its rounds. Each round is a timing record with ``samples_s``
    (call times), ``device_samples_s`` and ``launch_s``; the result keeps the rounds and adds
    the pooled call statistics, ``device_s``, ``launch_s`` and the spread warnings."""
    samples = [s for r in rounds for s in r["samples_s"]]
    q1, q3 = _quartiles(samples)
    device = [s for r in rounds for s in r["device_samples_s"]]
    d1, d3 = _quartiles(device)
    spreads = [_spread(r["samples_s"]) for r in rounds]
    label = rounds[0].get("label", "")
    warnings = [w for w in rounds[0].get("warnings", []) if "large spread" not in w]
    if statistics.median(spreads) > spread_limit(noise):
        adapted = " after timing more calls" if any(r.get("adapted_calls") for r in rounds) else ""
        shares = ", ".join(f"{spread:.0%}" for spread in spreads)
        warnings.append(f"{label}: large spread{adapted}: IQR {shares} of the median in its "
                        f"{len(rounds)} rounds")  # fmt: skip
    busy = [r["events_busy_median_s"] for r in rounds if "events_busy_median_s" in r]
    device_s = statistics.median(device)
    if busy and rounds[0].get("device_source") == "kernels":
        warnings += _device_cross_check(label, statistics.median(busy), device_s)
    pooled = {key: value for key, value in rounds[0].items()
              if key not in ("samples_s", "device_samples_s", "warnings")}  # fmt: skip
    pooled.update(
        median_s=statistics.median(samples), q1_s=q1, q3_s=q3, iqr_s=q3 - q1,
        samples_s=samples, call_s=statistics.median(samples),
        device_s=device_s,
        device_iqr_s=d3 - d1,
        # on the host clock the host does the work: launch time is call time
        launch_s=statistics.median(samples)
        if rounds[0].get("device_source") == "host clock"
        else statistics.median(r["launch_s"] for r in rounds),
        warnings=warnings,
        rounds=[{"median_s": statistics.median(r["samples_s"]),
                 "device_s": statistics.median(r["device_samples_s"]),
                 "spread": spread, "started_at": r.get("started_at"), "samples_s": r["samples_s"],
                 "device_samples_s": r["device_samples_s"]}
                for r, spread in zip(rounds, spreads, strict=True)],
    )  # fmt: skip
    return pooled


DEVICE_AGREEMENT = 0.20  # held-busy events and summed kernels further apart than this: warned
DEVICE_SLACK_S = 10e-6  # gaps between back-to-back kernels, never warned about


def _device_cross_check(label: str, busy_s: float, kernels_s: float) -> list[str]:
    """Two measures of the device's work should agree: CUDA events with the GPU held busy
    (they include the device's own gaps between kernels) and the summed kernel durations."""
    if busy_s > (1 + DEVICE_AGREEMENT) * kernels_s + DEVICE_SLACK_S:
        return [f"{label}: events with the GPU held busy saw {1e3 * busy_s:.4g} ms but its "
                f"kernels sum to {1e3 * kernels_s:.4g} ms: the device waits inside the call "
                "(a host synchronisation, or work queued late)"]  # fmt: skip
    if busy_s < (1 - DEVICE_AGREEMENT) * kernels_s:
        return [
            f"{label}: its kernels sum to {1e3 * kernels_s:.4g} ms but events with the GPU "
            f"held busy saw {1e3 * busy_s:.4g} ms: kernels overlap (several streams?)"
        ]
    return []


def _quartiles(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q3


def _spread(samples: list[float]) -> float:
    q1, q3 = _quartiles(samples)
    median = statistics.median(samples)
    return (q3 - q1) / median if median > 0 else float("inf")


def inconsistencies(timings: dict[str, dict[str, Any]]) -> list[str]:
    """Why a row's figures cannot all be right: rounds that disagree, or a part (fwd, bwd)
    slower than the whole (fwd+bwd). Empty when consistent."""
    found = []
    for phase, timing in timings.items():
        rounds = timing.get("rounds", [])
        medians = [r["median_s"] for r in rounds]
        if len(rounds) > 1 and _apart(rounds):
            shown = ", ".join(f"{1e3 * m:.4g}" for m in medians)
            found.append(f"{phase} rounds disagree: {shown} ms")
    whole = timings.get("fwd+bwd")
    for phase in ("fwd", "bwd"):
        part = timings.get(phase)
        if whole and part and part["device_s"] > (1 + PHASE_TOLERANCE) * whole["device_s"]:
            found.append(f"{phase} alone ({1e3 * part['device_s']:.4g} ms) takes longer than "
                         f"fwd+bwd ({1e3 * whole['device_s']:.4g} ms)")  # fmt: skip
    return found


def _apart(rounds: list[dict[str, Any]]) -> bool:
    """The slowest and the fastest round differ by more than ROUND_TOLERANCE and beyond their
    calls' scatter: the slowest round's first quartile lies above the fastest one's third."""
    slowest = max(rounds, key=lambda r: r["median_s"])
    fastest = min(rounds, key=lambda r: r["median_s"])
    if slowest["median_s"] <= (1 + ROUND_TOLERANCE) * fastest["median_s"]:
        return False
    return _quartiles(slowest["samples_s"])[0] > _quartiles(fastest["samples_s"])[1]


def launch_bound(timings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The phases whose call time exceeds their device time by more than LAUNCH_BOUND, with
    the figures. On CPU, where device time is call time, the analogue: a call that spends more
    than HOST_BOUND of its time outside torch operators (``op_fraction``, from the profiler) is
    bound by the Python between them."""
    found = {}
    for phase, timing in timings.items():
        call, device = timing["call_s"], timing["device_s"]
        fraction = timing.get("op_fraction")
        if timing.get("device_source") == "kernels" and call > (1 + LAUNCH_BOUND) * device:
            found[phase] = {"call_s": call, "device_s": device, "launch_s": timing["launch_s"],
                            "basis": "call time against the summed kernel time"}  # fmt: skip
        elif fraction is not None and fraction < 1 - HOST_BOUND:
            found[phase] = {"call_s": call, "in_ops_s": fraction * call,
                            "basis": "host time inside torch operators (CPU analogue)"}  # fmt: skip
    return found


def paired_speedup(base: dict[str, Any], row: dict[str, Any], key: str,
                   seed: int = 0) -> dict[str, Any] | None:  # fmt: skip
    """``base``'s time over ``row``'s for one phase's pooled timings: the median over paired
    rounds of the per-round ratio of medians (``key``: "device" or "call" samples), with a
    bootstrap interval that resamples the calls within each round."""
    field = "device_samples_s" if key == "device" else "samples_s"
    pairs = [
        (a[field], b[field])
        for a, b in zip(base.get("rounds", []), row.get("rounds", []), strict=False)
    ]
    if not pairs:
        return None
    rng = random.Random(seed)

    def ratio(a: list[float], b: list[float], resample: bool) -> float:
        if resample:
            a, b = rng.choices(a, k=len(a)), rng.choices(b, k=len(b))
        return statistics.median(a) / statistics.median(b)

    value = statistics.median(ratio(a, b, False) for a, b in pairs)
    low, high = _bootstrap(lambda: statistics.median(ratio(a, b, True) for a, b in pairs))
    return {"value": value, "low": low, "high": high, "rounds": len(pairs)}


def _bootstrap(resampled: Callable[[], float]) -> tuple[float, float]:
    """The INTERVAL quantiles of BOOTSTRAP draws of ``resampled()``."""
    boot = sorted(resampled() for _ in range(BOOTSTRAP))
    low, high = (boot[int(q * (BOOTSTRAP - 1))] for q in INTERVAL)
    return low, high


def median_interval(values: list[float], seed: int = 0) -> tuple[float, float, float]:
    """The median of ``values`` and its 95 % bootstrap interval."""
    rng = random.Random(seed)
    low, high = _bootstrap(lambda: statistics.median(rng.choices(values, k=len(values))))
    return statistics.median(values), low, high


def traffic_bytes(steps: int, neurons: int, dtype: torch.dtype) -> dict[str, int]:
    """Bytes the fused algorithm must move, at storage precision, per phase, for what the timed
    build returns: spikes only (no membrane potential is asked for).

    Forward reads X and writes S and the state backward needs (3 passes over [T, N]); backward
    reads dS and that state and writes dX (3 passes): 6 for fwd+bwd. Every implementation is
    held to the same count, so GB/s compares times directly; one that moves more shows a lower
    figure. Element sizes are the dtype's own (2 bytes for fp16 and bf16).
    """
    one_pass = steps * neurons * torch.finfo(dtype).bits // 8
    return {"fwd": 3 * one_pass, "bwd": 3 * one_pass, "fwd+bwd": 6 * one_pass}


def add_bandwidth_and_speedup(run: dict[str, Any], copy_bandwidth: float, baseline: str | None):
    """GB/s and % of copy bandwidth per phase on device time (and on call time), fwd+bwd
    speedups against the baseline row (``baseline``, else the fastest framework row with a
    trustworthy verdict) on device and on call time with their intervals, and each row's
    launch-bound phases and inconsistencies."""
    case = run["case"]
    traffic = traffic_bytes(case["T"], case["N"], DTYPES[case["dtype"]])
    timed = [row for row in run["rows"] if row.get("timings")]
    for row in timed:
        for phase, timing in row["timings"].items():
            timing.setdefault("device_s", timing["median_s"])  # one-round documents
            timing.setdefault("call_s", timing["median_s"])
            bandwidth = traffic[phase] / timing["device_s"]
            timing.update(
                bytes=traffic[phase],
                gb_per_s=bandwidth / 1e9,
                copy_bandwidth_fraction=bandwidth / copy_bandwidth,
                call_copy_bandwidth_fraction=traffic[phase] / timing["call_s"] / copy_bandwidth,
            )
        row["launch_bound"] = launch_bound(row["timings"])
        row["inconsistent"] = inconsistencies(row["timings"])
    trusted = [row for row in timed if row["verdict"] in TRUSTED_VERDICTS]
    candidates = [row for row in trusted if not row.get("reference")]
    chosen = None
    if baseline is not None:
        chosen = next((row for row in timed if row["impl"] == baseline), None)
    elif candidates or trusted:
        chosen = min(candidates or trusted, key=lambda row: row["timings"]["fwd+bwd"]["device_s"])
    run["baseline"] = None if chosen is None else chosen["impl"]
    if chosen is None:
        return
    for row in timed:
        base, this = chosen["timings"]["fwd+bwd"], row["timings"]["fwd+bwd"]
        row["speedup"] = base["device_s"] / this["device_s"]
        row["speedup_call"] = base["call_s"] / this["call_s"]
        if row is chosen:
            row["speedup_interval"] = row["speedup_call_interval"] = [1.0, 1.0]
            continue
        for key, name in (("device", "speedup"), ("call", "speedup_call")):
            paired = paired_speedup(base, this, key)
            if paired is not None:
                row[name] = paired["value"]
                row[f"{name}_interval"] = [paired["low"], paired["high"]]


GPU_IDLE_BOUND = 0.50  # a training step whose GPU is idle more than half the time: launch-bound


def breakdown_record(row: dict[str, Any]) -> dict[str, Any]:
    """What :func:`kernelprof.traces.steps.compare` takes, for one trained framework: the
    categories and GPU work from the breakdown trace, the named operators from the operations
    trace (the breakdown trace records no operators, only autograd nodes)."""
    breakdown = row["breakdown"]
    coarse, detailed = breakdown["coarse"], breakdown["detailed"]
    launch = {k: v for k, v in coarse["launch"].items() if "operator" not in k}
    launch.update({k: v for k, v in detailed["launch"].items() if "operator" in k})
    return {
        "kind": coarse["kind"],
        "categories_us": coarse["categories_us"],
        "step_us": coarse["step_us"],
        "operators": detailed["operators"],
        "gpu": coarse["gpu"],
        "launch": launch,
    }


def launch_diagnosis(launch: dict[str, Any]) -> dict[str, Any]:
    """Per framework: kernels per step, their mean duration and the GPU's idle share (GPU);
    operators per step, their mean self time and the share of the step outside operators (CPU);
    and whether the step is bound by launching rather than by device work."""
    idle, outside = launch.get("gpu_idle_share"), launch.get("outside_operators_share")
    if idle is not None:
        bound = idle > GPU_IDLE_BOUND
        mean = launch.get("mean_kernel_us") or 0.0
        text = (f"{launch['kernels']:.0f} kernels/step, mean {mean:.1f} us, "
                f"GPU idle {100 * idle:.0f} % of the step")  # fmt: skip
    elif outside is not None:
        bound = outside > HOST_BOUND
        mean = launch.get("mean_operator_us") or 0.0
        text = (f"{launch['operators']:.0f} operators/step, mean {mean:.1f} us, "
                f"{100 * outside:.0f} % of the step outside operators")  # fmt: skip
    else:
        return {"launch_bound": None, "text": "no launch statistics in the traces"}
    if bound:
        text += " (launch-bound)" if idle is not None else " (bound by the host, not operators)"
    return {"launch_bound": bound, "text": text, **launch}


def attribution(rows: list[dict[str, Any]], top: int = 5) -> dict[str, Any]:
    """Each trained framework's step-time difference from the fastest (by profiled step),
    per category of the profiled steps, with the named operations behind each category
    (:func:`kernelprof.traces.steps.compare`, as ``kernelprof trace diff`` gives it)."""
    trained = [row for row in rows if row.get("status") == "ok" and row.get("breakdown")]
    if not trained:
        return {"fastest": None, "differences": {}, "launch": {}}
    # the fastest in the profiled steps' own terms, so that every difference is one of them
    fastest = min(trained, key=lambda row: row["breakdown"]["profiled_step_us"])
    records = {row["framework"]: breakdown_record(row) for row in trained}
    base = records[fastest["framework"]]
    differences = {}
    for row in trained:
        if row is fastest:
            continue
        compared = compare(base, records[row["framework"]], top=top)
        differences[row["framework"]] = {
            "total_s": compared["step_us"]["delta"] / 1e6,
            # the plain steps that alternated with the profiled ones
            "plain_total_s": (
                row["breakdown"]["plain_step_us"] - fastest["breakdown"]["plain_step_us"]
            )
            / 1e6,  # fmt: skip
            "by_category_s": {c["name"]: c["delta_us"] / 1e6 for c in compared["categories"]},
            "named": compared["named"],
            "categories": compared["categories"],
        }
    return {
        "fastest": fastest["framework"],
        "differences": differences,
        "launch": {name: launch_diagnosis(record["launch"]) for name, record in records.items()},
    }  # fmt: skip
