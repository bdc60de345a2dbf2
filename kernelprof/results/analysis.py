"""Analysis of measured records into new records: compare's bandwidth, speedups and flags,
e2e's attribution across frameworks, the study's claims.

Pure functions over records; nothing here measures or formats tables.

Compare measures each implementation in several rounds, interleaved with the others (order
rotated), so that a machine's drift lands on every row alike rather than on whichever ran
during it. Speedups are the median over rounds of the per-round ratio (rounds are paired: round
r of every row ran at about the same time), with a bootstrap interval that resamples the calls
within each round.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence

from kernelprof.results.check import TRUSTED
from kernelprof.results.compare import (
    PHASES,
    Bandwidth,
    Case,
    CompareCase,
    CompareRow,
    MeasuredRow,
    NoiseProbe,
    PhaseTiming,
    Speedup,
)
from kernelprof.results.document import DeviceInfo
from kernelprof.results.e2e import (
    Attribution,
    ConversionDocument,
    Difference,
    E2EDocument,
    LaunchDiagnosis,
    StepComparison,
    TrainingRow,
)
from kernelprof.results.flags import Flag
from kernelprof.results.record import decode, derive, encode, quartiles, relative_spread
from kernelprof.results.study import CellRecord, Claim, ClaimColumn
from kernelprof.results.timing import SPREAD_WARNING
from kernelprof.traces.steps import compare
from reference_kernels.model import NeuronConfig

# A phase is flagged when its rounds' median spread (IQR/median) exceeds SPREAD_WARNING, or on a
# noisy machine NOISE_MULTIPLE times the spread of the machine's noise probe (a fixed workload
# timed the same way): what the machine adds to every row alike is reported once, as the
# probe, and a row is flagged for what it adds beyond.
NOISE_MULTIPLE = 2.0
# Rounds disagree when their medians differ by more than ROUND_TOLERANCE and the slowest
# round's interquartile range lies wholly above the fastest one's (a drift, not the calls' own
# scatter, which with a few calls per round moves a round's median by that much on its own).
ROUND_TOLERANCE = 0.25
PHASE_TOLERANCE = 0.05  # fwd or bwd alone above fwd+bwd by more than this: inconsistent
# Rounds that disagree are explained by the host's counters (CPU, measured with every round):
BUSY_SHARE = 0.25  # the rest of the machine on a CPU for this share of the slow round: busy
FAULTS_EXPLAIN = 0.5  # the slow round's extra system time makes up this share of the gap
FAULT_COUNT_RATIO = 1.3  # more faults a call than this: the allocator touched more pages
FAULT_COST_RATIO = 1.5  # more system time a fault than this: each fault cost more
WHOLE_TOLERANCE = 0.15  # fwd+bwd above fwd plus bwd by more than this: said, with the faults
LAUNCH_BOUND = 0.20  # call time above device time by more than this: launch-bound
# CPU analogue: more than this share of the call outside torch operators. Higher than the CUDA
# threshold, since allocator work between operators (page faults, munmap of freed tensors) is
# outside them too: it reaches 20-25 % of a torch.compile'd forward on the 2-core CPU.
HOST_BOUND = 0.50
DEVICE_AGREEMENT = 0.20  # held-busy events and summed kernels further apart than this: flagged
DEVICE_SLACK_S = 10e-6  # gaps between back-to-back kernels, never flagged
BOOTSTRAP = 1000  # resamples for a speedup's interval
INTERVAL = (0.025, 0.975)
GPU_IDLE_BOUND = 0.50  # a training step whose GPU is idle more than half the time: launch-bound
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


# ---- compare -----------------------------------------------------------------------------------


def spread_limit(noise: float | None) -> float:
    """The spread above which a phase is flagged, given the machine's noise probe."""
    return max(SPREAD_WARNING, NOISE_MULTIPLE * (noise or 0.0))


def traffic_bytes(case: Case) -> dict[str, int]:
    """Bytes the fused algorithm must move, at storage precision, per phase, for what the timed
    build returns: spikes only (no membrane potential is asked for).

    Forward reads X and writes S and the state backward needs (3 passes over [T, N]); backward
    reads dS and that state and writes dX (3 passes): 6 for fwd+bwd, for IF, LIF, PLIF and
    CUBA alike (CUBA's current lives in registers; its adjoint needs no saved I). ALIF saves
    its threshold theta[t] too, which the reset's gradient needs: 4 + 4 passes (3 + 3 with
    detach_reset). PLIF adds its parameter: forward and backward each read k (4 bytes per decay it
    learns), and backward writes dk (4 bytes per decay), the least its reduction over T x N
    can write; partial sums an implementation writes and reads on the way are not counted, so
    they show as a lower figure. Every implementation is held to the same count, so GB/s
    compares times directly; one that moves more shows a lower figure. Element sizes are the
    dtype's own (2 bytes for fp16 and bf16).
    """
    decays = case.channels if case.neuron == "plif" else 0
    return neuron_traffic(case.T * case.N, ELEMENT_BYTES[case.dtype], decays, case.saved)


def neuron_traffic(elements: int, element_bytes: int, decays: int = 0,
                   saved: int = 1) -> dict[str, int]:  # fmt: skip
    """:func:`traffic_bytes` of a neuron over ``elements`` (T x N) of ``element_bytes`` each,
    with ``decays`` learned decay values (PLIF; 0 for the others) and ``saved`` [T, N]
    tensors kept for backward (ALIF's threshold is a second): the one traffic model of compare
    and profile."""
    one_pass = elements * element_bytes
    forward = (2 + saved) * one_pass + 4 * decays
    backward = (2 + saved) * one_pass + 8 * decays
    return {"fwd": forward, "bwd": backward, "fwd+bwd": forward + backward}


def compare_case(
    case: Case,
    device: DeviceInfo,
    rows: Sequence[MeasuredRow],
    *,
    copy_bandwidth: float,
    baseline: str | None,
    noise_rounds: tuple[NoiseProbe, ...] = (),
    noise_spread: float | None = None,
    config: NeuronConfig | None = None,
) -> CompareCase:
    """One case's measured rows analysed: each timed row's bandwidth per phase and flags, the
    baseline (``baseline``, else the fastest framework row with a trustworthy verdict) and every
    row's fwd+bwd speedup against it on device and on call time, with their intervals."""
    limit = spread_limit(noise_spread)
    traffic = traffic_bytes(case)
    timed = [row for row in rows if row.timings is not None]
    chosen = _baseline(timed, baseline)
    analysed = []
    for row in rows:
        if row.timings is None:
            analysed.append(derive(CompareRow, row, flags=_failures(row)))
            continue
        speedups = {}
        if chosen is not None:
            base, this = chosen.timings["fwd+bwd"], row.timings["fwd+bwd"]
            speedups = {
                "speedup": paired_speedup(base, this, "device", same=row is chosen),
                "speedup_call": paired_speedup(base, this, "call", same=row is chosen),
            }
        analysed.append(derive(
            CompareRow, row,
            bandwidth={phase: bandwidth(traffic[phase], timing, copy_bandwidth)
                       for phase, timing in row.timings.items()},
            flags=row_flags(row, limit), **speedups,
        ))  # fmt: skip
    return CompareCase(case=case, config=config, device=device,
                       copy_bandwidth_gb_per_s=copy_bandwidth / 1e9,
                       rows=tuple(analysed), baseline=None if chosen is None else chosen.impl,
                       noise_rounds=noise_rounds, noise_spread=noise_spread,
                       spread_limit=limit)  # fmt: skip


def _baseline(timed: list[MeasuredRow], baseline: str | None) -> MeasuredRow | None:
    if baseline is not None:
        return next((row for row in timed if row.impl == baseline), None)
    trusted = [row for row in timed if row.verdict in TRUSTED]
    candidates = [row for row in trusted if not row.checked.reference]
    if not (candidates or trusted):
        return None
    return min(candidates or trusted, key=lambda row: row.timings["fwd+bwd"].device_s)


def bandwidth(nbytes: int, timing: PhaseTiming, copy_bandwidth: float) -> Bandwidth:
    rate = nbytes / timing.device_s
    return Bandwidth(bytes=nbytes, gb_per_s=rate / 1e9, copy_fraction=rate / copy_bandwidth,
                     call_copy_fraction=nbytes / timing.call_s / copy_bandwidth)  # fmt: skip


def row_flags(row: MeasuredRow, limit: float) -> tuple[Flag, ...]:
    """Everything a reader must know before trusting a timed row's figures."""
    flags: list[Flag] = []
    for phase, timing in row.timings.items():
        subject = f"{row.impl} {phase}"
        flags += _spread_flags(subject, timing, limit)
        flags += [flag for flag in (timing.call.hidden_work(),) if flag is not None]
        flags += _device_cross_check(subject, timing)
        flags += _warm_up_flags(subject, timing)
    flags += inconsistencies(row.impl, row.timings)
    flags += _whole_slower(row.impl, row.timings)
    flags += launch_bound(row.impl, row.timings)
    return tuple(flags) + _failures(row)


def _failures(row: MeasuredRow) -> tuple[Flag, ...]:
    return tuple(Flag(kind="round_failed", subject=row.impl, message=f"{row.impl}: {error}")
                 for error in row.errors)  # fmt: skip


def _spread_flags(subject: str, timing: PhaseTiming, limit: float) -> list[Flag]:
    """A phase whose calls spread beyond ``limit`` in most of its rounds (a single noisy round
    is the machine's, and shows as rounds that disagree if it moved the median)."""
    spreads = [relative_spread(r.call.samples_s) for r in timing.rounds]
    if statistics.median(spreads) <= limit:
        return []
    adapted = " after timing more calls" if any(r.call.adapted_calls for r in timing.rounds) else ""
    shares = ", ".join(f"{spread:.0%}" for spread in spreads)
    return [Flag(kind="spread", subject=subject,
                 message=f"{subject}: large spread{adapted}: IQR {shares} of the median in its "
                 f"{len(spreads)} rounds", figures={"spread": statistics.median(spreads),
                                                     "limit": limit})]  # fmt: skip


def _device_cross_check(subject: str, timing: PhaseTiming) -> list[Flag]:
    """Two measures of the device's work should agree: CUDA events with the GPU held busy
    (they include the device's own gaps between kernels) and the summed kernel durations."""
    busy_s, kernels_s = timing.call.events_busy_median_s, timing.device_s
    if busy_s is None or timing.device_source != "kernels":
        return []
    figures = {"events_busy_s": busy_s, "kernels_s": kernels_s}
    if busy_s > (1 + DEVICE_AGREEMENT) * kernels_s + DEVICE_SLACK_S:
        return [Flag(kind="device_waits", subject=subject, figures=figures,
                     message=f"{subject}: events with the GPU held busy saw {1e3 * busy_s:.4g} ms "
                     f"but its kernels sum to {1e3 * kernels_s:.4g} ms: the device waits inside "
                     "the call (a host synchronisation, or work queued late)")]  # fmt: skip
    if busy_s < (1 - DEVICE_AGREEMENT) * kernels_s:
        return [Flag(kind="kernels_overlap", subject=subject, figures=figures,
                     message=f"{subject}: its kernels sum to {1e3 * kernels_s:.4g} ms but events "
                     f"with the GPU held busy saw {1e3 * busy_s:.4g} ms: kernels overlap "
                     "(several streams?)")]  # fmt: skip
    return []


def _warm_up_flags(subject: str, timing: PhaseTiming) -> list[Flag]:
    warm = timing.warm_up
    if warm is None or warm.settled:
        return []
    last = warm.medians_s[-1] if warm.medians_s else float("nan")
    return [
        Flag(
            kind="warm_up_unsettled",
            subject=subject,
            message=f"{subject}: the warm-up never settled: {warm.calls} calls in "
            f"{warm.seconds:.2f} s, the last windows' medians "
            + ", ".join(f"{1e3 * m:.4g}" for m in warm.medians_s[-3:])
            + f" ms (tolerance {warm.tolerance:.0%})",
            figures={"calls": warm.calls, "seconds": warm.seconds, "last_median_s": last},
        )
    ]


def inconsistencies(impl: str, timings: Mapping[str, PhaseTiming]) -> list[Flag]:
    """Why a row's figures cannot all be right: rounds that disagree beyond what their page
    faults explain (:func:`round_disagreement`), or a part (fwd, bwd) slower than the whole
    (fwd+bwd) in every round. Empty when consistent."""
    found = []
    for phase, timing in timings.items():
        if len(timing.rounds) > 1 and _apart(timing):
            found.append(round_disagreement(f"{impl} {phase}", phase, timing))
    whole = timings.get("fwd+bwd")
    for phase in ("fwd", "bwd"):
        part = timings.get(phase)
        # even the part's fastest round above the whole: rounds that disagree (said above,
        # explained or not) are not counted twice
        fastest = None if part is None else min(r.device.median_s for r in part.rounds)
        if whole and part and fastest > (1 + PHASE_TOLERANCE) * whole.device_s:
            found.append(
                Flag(
                    kind="part_slower",
                    subject=f"{impl} {phase}",
                    message=f"{phase} alone ({1e3 * part.device_s:.4g} ms) takes longer "
                    f"than fwd+bwd ({1e3 * whole.device_s:.4g} ms)",
                    figures={"part_s": part.device_s, "whole_s": whole.device_s},
                )
            )
    return found


def round_disagreement(subject: str, phase: str, timing: PhaseTiming) -> Flag:
    """Rounds that disagree, and why where the host's counters say: the rest of the machine
    on a CPU while the slow round ran (busy: ``rounds_disagree``); else the slow round's extra
    system time per call, which page faults cost, making up most of the difference (``faults``:
    more pages first touched, the allocator's state differing between rounds, or each fault
    costing more, on memory the VM's host had to back); else unexplained (``rounds_disagree``)."""
    slow = max(timing.rounds, key=lambda r: r.call.median_s)
    fast = min(timing.rounds, key=lambda r: r.call.median_s)
    medians = ", ".join(f"{1e3 * r.call.median_s:.4g}" for r in timing.rounds)
    figures = {"slowest_over_fastest": slow.call.median_s / fast.call.median_s}
    others = slow.call.others_cpu_share
    if others is not None and others >= BUSY_SHARE:
        return Flag(kind="rounds_disagree", subject=subject, figures={**figures, "others": others},
                    message=f"{phase} rounds disagree: {medians} ms; the rest of the machine "
                    f"used {others:.0%} of a CPU during round {slow.round}")  # fmt: skip
    extra = _extra_system_s(slow.call, fast.call)
    if extra is not None and extra >= FAULTS_EXPLAIN * (slow.call.median_s - fast.call.median_s):
        return Flag(kind="faults", subject=subject, figures={**figures, "extra_system_s": extra},
                    message=f"{phase} rounds differ by their page faults: {medians} ms; "
                    f"{_faults_text(slow)} against {_faults_text(fast)}: "
                    f"{_faults_cause(slow.call, fast.call)}")  # fmt: skip
    return Flag(
        kind="rounds_disagree",
        subject=subject,
        figures=figures,
        message=f"{phase} rounds disagree: {medians} ms"
        + ("" if extra is None else " (not page faults, not another process)"),
    )


def _extra_system_s(slow, fast) -> float | None:
    if slow.system_s_per_call is None or fast.system_s_per_call is None:
        return None
    return slow.system_s_per_call - fast.system_s_per_call


def _faults_text(timing) -> str:
    call = timing.call
    faults = call.minor_faults_per_call or 0.0
    system = f"{1e3 * call.system_s_per_call:.3g} ms of system time"
    if not faults:
        return f"round {timing.round} no faults, {system} a call"
    cost = 1e6 * call.system_s_per_call / faults
    return f"round {timing.round} {faults:,.0f} faults a call, {system} ({cost:.1f} us a fault)"


def _faults_cause(slow, fast) -> str:
    """Why the slow round's faults took more system time: more of them, dearer ones, or both."""
    faults = (slow.minor_faults_per_call or 0.0, fast.minor_faults_per_call or 0.0)
    costs = [system / count if count else 0.0
             for system, count in zip((slow.system_s_per_call, fast.system_s_per_call), faults,
                                      strict=True)]  # fmt: skip
    causes = []
    if faults[0] > FAULT_COUNT_RATIO * max(faults[1], 1.0):
        causes.append("more pages first touched a call (the allocator's state differs between "
                      "rounds)")  # fmt: skip
    if costs[1] and costs[0] > FAULT_COST_RATIO * costs[1]:
        causes.append("each fault cost more (memory the VM's host had to back first)")
    return " and ".join(causes) or "more system time a call"


def _apart(timing: PhaseTiming) -> bool:
    """The slowest and the fastest round differ by more than ROUND_TOLERANCE and beyond their
    calls' scatter: the slowest round's first quartile lies above the fastest one's third."""
    slowest = max(timing.rounds, key=lambda r: r.call.median_s).call
    fastest = min(timing.rounds, key=lambda r: r.call.median_s).call
    if slowest.median_s <= (1 + ROUND_TOLERANCE) * fastest.median_s:
        return False
    return quartiles(slowest.samples_s)[0] > quartiles(fastest.samples_s)[1]


def _whole_slower(impl: str, timings: Mapping[str, PhaseTiming]) -> list[Flag]:
    """fwd+bwd well above fwd plus bwd is not an inconsistency: a call of the whole allocates
    what the parts, timed apart, find already mapped (the allocator's state differs between
    phases). Said, with each phase's page faults per call where the host clock counted them."""
    fwd, bwd, whole = (timings.get(phase) for phase in PHASES)
    if not (whole and fwd and bwd):
        return []
    parts = fwd.device_s + bwd.device_s
    if whole.device_s <= (1 + WHOLE_TOLERANCE) * parts:
        return []
    faults = [t.minor_faults_per_call for t in (fwd, bwd, whole)]
    because = ""
    if None not in faults:
        because = (f"; minor page faults per call (getrusage): fwd {faults[0]:,.0f}, bwd "
                   f"{faults[1]:,.0f}, fwd+bwd {faults[2]:,.0f} (memory first touched in the "
                   "call: the allocator's state differs between the phases)")  # fmt: skip
    figures = {"whole_s": whole.device_s, "parts_s": parts}
    figures.update(
        {
            f"{phase}_faults_per_call": value
            for phase, value in zip(PHASES, faults, strict=True)
            if value is not None
        }
    )
    return [Flag(kind="whole_slower", subject=f"{impl} fwd+bwd", figures=figures,
                 message=f"fwd+bwd ({1e3 * whole.device_s:.4g} ms) takes "
                 f"{whole.device_s / parts:.2f}x fwd plus bwd ({1e3 * fwd.device_s:.4g} + "
                 f"{1e3 * bwd.device_s:.4g} ms){because}")]  # fmt: skip


def launch_bound(impl: str, timings: Mapping[str, PhaseTiming]) -> list[Flag]:
    """The phases whose call time exceeds their device time by more than LAUNCH_BOUND, with
    the figures. On CPU, where device time is call time, the analogue: a call that spends more
    than HOST_BOUND of its time outside torch operators (``op_fraction``, from the profiler) is
    bound by the Python between them."""
    found = []
    for phase, timing in timings.items():
        call, device, fraction = timing.call_s, timing.device_s, timing.op_fraction
        subject = f"{impl} {phase}"
        if timing.device_source == "kernels" and call > (1 + LAUNCH_BOUND) * device:
            found.append(Flag(kind="launch_bound", subject=subject,
                              message=f"{subject} launch-bound: call {1e3 * call:.4g} ms vs "
                              f"device {1e3 * device:.4g} ms (+{call / device - 1:.0%}); the "
                              f"host launches in {1e3 * timing.launch_s:.4g} ms",
                              figures={"call_s": call, "device_s": device,
                                       "launch_s": timing.launch_s}))  # fmt: skip
        elif fraction is not None and fraction < 1 - HOST_BOUND:
            found.append(Flag(kind="host_bound", subject=subject,
                              message=f"{subject} host-bound (CPU analogue of launch-bound): "
                              f"{1 - fraction:.0%} of the {1e3 * call:.4g} ms call is outside "
                              "torch operators",
                              figures={"call_s": call, "in_ops_s": fraction * call}))  # fmt: skip
    return found


def paired_speedup(base: PhaseTiming, row: PhaseTiming, key: str, *, same: bool = False,
                   seed: int = 0) -> Speedup | None:  # fmt: skip
    """``base``'s time over ``row``'s for one phase: the median over paired rounds of the
    per-round ratio of medians (``key``: "device" or "call" samples), with a bootstrap interval
    that resamples the calls within each round. ``same``: the row is the baseline itself."""
    pairs = [(getattr(a, key).samples_s, getattr(b, key).samples_s)
             for a, b in zip(base.rounds, row.rounds, strict=False)]  # fmt: skip
    if not pairs:
        return None
    if same:
        return Speedup(value=1.0, low=1.0, high=1.0, rounds=len(pairs))
    rng = random.Random(seed)

    def ratio(a: tuple[float, ...], b: tuple[float, ...], resample: bool) -> float:
        if resample:
            a, b = rng.choices(a, k=len(a)), rng.choices(b, k=len(b))
        return statistics.median(a) / statistics.median(b)

    value = statistics.median(ratio(a, b, False) for a, b in pairs)
    low, high = _bootstrap(lambda: statistics.median(ratio(a, b, True) for a, b in pairs))
    return Speedup(value=value, low=low, high=high, rounds=len(pairs))


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


# ---- e2e ---------------------------------------------------------------------------------------


def launch_diagnosis(launch: Mapping[str, float]) -> LaunchDiagnosis:
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
        return LaunchDiagnosis(launch_bound=None, text="no launch statistics in the traces")
    if bound:
        text += " (launch-bound)" if idle is not None else " (bound by the host, not operators)"
    return LaunchDiagnosis(launch_bound=bound, text=text, stats=launch)


def step_record(row: TrainingRow) -> dict:
    """What :func:`kernelprof.traces.steps.compare` takes, for one trained framework: the
    categories and GPU work from the breakdown trace, the named operators from the operations
    trace (the breakdown trace records no operators, only autograd nodes)."""
    breakdown = row.training.breakdown
    coarse, detailed = encode(breakdown.coarse), encode(breakdown.detailed)
    launch = {k: v for k, v in coarse["launch"].items() if "operator" not in k}
    launch.update({k: v for k, v in detailed["launch"].items() if "operator" in k})
    return {"kind": coarse["kind"], "categories_us": coarse["categories_us"],
            "step_us": coarse["step_us"], "operators": detailed["operators"],
            "gpu": coarse["gpu"], "launch": launch}  # fmt: skip


def attribution(rows: Sequence[TrainingRow], top: int = 5) -> Attribution:
    """Each trained framework's step-time difference from the fastest (by profiled step),
    per category of the profiled steps, with the named operations behind each category
    (:func:`kernelprof.traces.steps.compare`, as ``kernelprof trace diff`` gives it)."""
    trained = [row for row in rows if row.training is not None]
    if not trained:
        return Attribution(fastest=None)
    # the fastest in the profiled steps' own terms, so that every difference is one of them
    fastest = min(trained, key=lambda row: row.training.breakdown.profiled_step_us)
    records = {row.framework: step_record(row) for row in trained}
    base = records[fastest.framework]
    differences = {}
    for row in trained:
        if row is fastest:
            continue
        compared = decode(StepComparison, compare(base, records[row.framework], top=top))
        plain = row.training.breakdown.plain_step_us - fastest.training.breakdown.plain_step_us
        differences[row.framework] = Difference(
            total_s=compared.step_us["delta"] / 1e6, plain_total_s=plain / 1e6,
            by_category_s={c.name: c.delta_us / 1e6 for c in compared.categories},
            named=compared.named, categories=compared.categories,
        )  # fmt: skip
    return Attribution(fastest=fastest.framework, differences=differences,
                       launch={name: launch_diagnosis(record["launch"])
                               for name, record in records.items()})  # fmt: skip


# ---- the study's claims ------------------------------------------------------------------------

# kernelprof's own kernels: in the study's tables as the yardstick, but not one of the study's
# frameworks, so never a contender in its claims.
YARDSTICKS = ("reference", "reference-compile")
ACCURACY_WIN = ("a win counts when it is the only best and leads by more than two standard "
                "errors")  # fmt: skip


def _contenders(rows) -> list:
    return [row for row in rows if row.status == "ok" and row.framework not in YARDSTICKS]


def _column_name(document) -> str:
    return document.task.column


def fastest_column(document: E2EDocument) -> ClaimColumn:
    """One column of direct training: the framework with the lowest median step time, and
    SpikingJelly's step time over it (1.0 when SpikingJelly is the fastest)."""
    column = ClaimColumn(column=_column_name(document), setting=document.task.neuron_setting)
    ranked = sorted(_contenders(document.rows), key=lambda row: row.training.step_median_s)
    if not ranked:
        return column
    best = ranked[0].training.step_median_s
    sj = next((row for row in ranked if row.framework == "spikingjelly"), None)
    return dataclasses.replace(
        column, fastest=ranked[0].framework,
        spikingjelly_over_fastest=None if sj is None else sj.training.step_median_s / best,
        runner_up_over_fastest=ranked[1].training.step_median_s / best if len(ranked) > 1
        else None,
    )  # fmt: skip


def accuracy_column(document: E2EDocument | ConversionDocument) -> ClaimColumn:
    """One column: the most accurate framework(s) (all those tied at the top), the lead over
    the next, and whether that lead exceeds two standard errors of the test accuracy
    (sqrt(p(1-p)/n) over its n test images): a smaller lead is not told apart from the test
    set's sampling."""
    direct = isinstance(document, E2EDocument)
    column = ClaimColumn(column=_column_name(document),
                         setting=document.task.neuron_setting if direct else None,
                         T=None if direct else document.task.T)  # fmt: skip
    found = [(row.framework, (row.training if direct else row.conversion))
             for row in _contenders(document.rows)]  # fmt: skip
    found.sort(key=lambda item: -item[1].test_accuracy)
    if not found:
        return column
    top = found[0][1].test_accuracy
    best = tuple(name for name, result in found if result.test_accuracy == top)
    runner = next((r.test_accuracy for _, r in found if r.test_accuracy < top), None)
    samples = found[0][1].test_samples
    error = (top * (1 - top) / samples) ** 0.5 if samples else None
    lead = None if runner is None else top - runner
    return dataclasses.replace(
        column, best=best, lead_points=None if lead is None else 100 * lead,
        standard_error_points=None if error is None else 100 * error,
        resolved=len(best) == 1 and lead is not None and error is not None and lead > 2 * error,
        accuracy={name: result.test_accuracy for name, result in found},
    )  # fmt: skip


def _claim(claim: str, kind: str, columns: list[ClaimColumn], won, measure: str) -> Claim:
    wins = sum(1 for column in columns if won(column))
    return Claim(claim=claim, kind=kind, reproduced=bool(columns) and wins == len(columns),
                 wins=wins, columns=tuple(columns), measure=measure)  # fmt: skip


def claims(speed: list[ClaimColumn], direct: list[ClaimColumn], conversion: list[ClaimColumn],
           measures: tuple[str, str, str], *,
           speed_needs_resolved: bool) -> tuple[Claim, ...]:  # fmt: skip
    """The study's three claims over their columns: reproduced where the framework wins every
    column; an accuracy win must be resolved, a speed win too where ``speed_needs_resolved``."""
    return (
        _claim("SpikingJelly is the fastest in direct training", "speed", speed,
               lambda c: c.fastest == "spikingjelly" and (c.resolved or not speed_needs_resolved),
               measures[0]),
        _claim("SpikingJelly is the most accurate in direct training", "accuracy", direct,
               lambda c: c.best == ("spikingjelly",) and c.resolved, measures[1]),
        _claim("Lava is the most accurate in ANN-to-SNN conversion", "accuracy", conversion,
               lambda c: c.best == ("lava-dl",) and c.resolved, measures[2]),
    )  # fmt: skip


def check_claims(direct: Sequence[E2EDocument],
                 conversion: Sequence[ConversionDocument]) -> tuple[Claim, ...]:  # fmt: skip
    """The study's three claims in one run, each held against every column it concerns."""
    return claims(
        [fastest_column(d) for d in direct], [accuracy_column(d) for d in direct],
        [accuracy_column(d) for d in conversion],
        ("median training-step time (forward, backward, optimizer; batch 64)",
         f"test accuracy after the same training; {ACCURACY_WIN}",
         f"test accuracy of the SNN at T max; {ACCURACY_WIN}"),
        speed_needs_resolved=False)  # fmt: skip


# ---- the study's cells -------------------------------------------------------------------------


SeedDocuments = tuple[tuple[E2EDocument, ...], tuple[ConversionDocument, ...]]


def seed_documents(cells: Iterable[CellRecord]) -> dict[int, SeedDocuments]:
    """The finished cells of a study as its documents, seed by seed: the cells of one column
    (mode, dataset, network, neuron setting, device) and seed are one document, their rows in
    the order given, the attribution across frameworks computed again over them; failed cells
    have no row (the store says why)."""
    groups: dict[tuple, list[CellRecord]] = {}
    for cell in cells:
        if cell.status == "done":
            key = cell.key
            column = (key.seed, key.mode, key.dataset, key.model, key.setting, key.neuron,
                      key.device)  # fmt: skip
            groups.setdefault(column, []).append(cell)
    found: dict[int, tuple[list, list]] = {}
    for (seed, mode, *_), members in groups.items():
        documents = [cell.direct if mode == "direct" else cell.conversion for cell in members]
        rows = tuple(row for document in documents for row in document.rows)
        merged = dataclasses.replace(documents[0], rows=rows,
                                     interrupted=any(d.interrupted for d in documents))  # fmt: skip
        if mode == "direct":
            merged = dataclasses.replace(merged, attribution=attribution(rows))
        direct, conversion = found.setdefault(seed, ([], []))
        (direct if mode == "direct" else conversion).append(merged)
    return {seed: (tuple(direct), tuple(conversion))
            for seed, (direct, conversion) in sorted(found.items())}  # fmt: skip
