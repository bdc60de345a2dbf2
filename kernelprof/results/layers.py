"""The analysis of a profile (pure): a run's attributed steps as layers, categories and the
neuron layers against the copy-bandwidth roofline.

The step breakdown's categories are keyed by layer (``features.2 fwd``, ``features.2 bwd``) and
by phase (``loss``, ``optimizer``, ``data loading``, ``host-to-device copy``, ``other`` ...; see
:mod:`kernelprof.traces.steps`). A layer's time is its two keys; a category's is the sum of its
layers' (``neuron fwd`` ...) beside the phases, so the categories add up to the step exactly as
the breakdown's keys do.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping

from kernelprof.results.analysis import median_interval, neuron_traffic
from kernelprof.results.compare import Speedup
from kernelprof.results.document import Environment
from kernelprof.results.e2e import CategoryChange, StepAttribution
from kernelprof.results.energy import EnergyMeasurement
from kernelprof.results.profile import (
    AC_PJ,
    ENERGY_SOURCE,
    MAC_PJ,
    CountChange,
    EnergyEstimate,
    FasterSearch,
    Inspection,
    Layer,
    LayerSeen,
    NamedOperation,
    NeuronFigures,
    ProfileComparison,
    ProfileDocument,
    ProfileRun,
    ProfileTask,
    Roofline,
    needed_steps,
)
from kernelprof.results.record import decode
from kernelprof.traces import steps as trace_steps

TOP_OPERATIONS = 10  # named operations kept per layer and per category


def layer_key(name: str, direction: str) -> str:
    """The breakdown's category of a layer's forward or backward: 'features.2 fwd'."""
    return f"{name} {direction}"


def document(task: ProfileTask, run: ProfileRun, environment: Environment, *,
             exit_code: int | None = None, problems: tuple[str, ...] = (),
             notes: tuple[str, ...] = ()) -> ProfileDocument:  # fmt: skip
    """The profile document of a run (``problems``: the run's own, e.g. a script that failed)."""
    problems = tuple(dict.fromkeys(run.problems + problems))
    common = dict(task=task, environment=environment, steps_seen=run.steps_seen,
                  uncategorised=run.uncategorised, exit_code=exit_code, problems=problems,
                  notes=notes, inspection=run.inspection,
                  energy=energy_estimate(run.inspection, run.energy, task.ac_pj,
                                         task.mac_pj),
                  faster=run.faster, faster_speedups=faster_speedups(run.faster))  # fmt: skip
    if run.breakdown is None:
        return ProfileDocument(status="error", reason=_no_steps(task, run), **common)
    coarse = run.breakdown.coarse
    step_us, keyed = typical_step(coarse)
    layers = layer_rows(run.layers, keyed, run.breakdown.detailed, run.copy_bandwidth)
    roofline = neuron_roofline(layers, step_us, run.copy_bandwidth)
    status, reason = "ok", ""
    if coarse.steps < task.steps or exit_code not in (None, 0):
        status = "partial"
        reason = (f"{coarse.steps} of {task.steps} profiled steps" if coarse.steps < task.steps
                  else f"the script exited with code {exit_code}")  # fmt: skip
    return ProfileDocument(
        status=status,
        reason=reason,
        step_us=step_us,
        time_kind=coarse.kind,
        layers=tuple(sorted(layers, key=lambda layer: -layer.total_us)),
        categories_us=categories(run.layers, keyed),
        category_operations=category_operations(run.layers, run.breakdown.detailed),
        breakdown=run.breakdown,
        roofline=roofline,
        **common,
    )


def energy_estimate(inspection: Inspection | None, measured: EnergyMeasurement | None = None,
                    ac_pj: float = AC_PJ,
                    mac_pj: float = MAC_PJ) -> EnergyEstimate | None:  # fmt: skip
    """The operation-count estimate of the inspected step's forward pass, beside the energy
    the plain steps measurably took."""
    if inspection is None:
        return None
    synops = sum(layer.synops or 0 for layer in inspection.layers)
    macs = sum(layer.macs or 0 for layer in inspection.layers)
    if not synops and not macs:
        return None
    source = ENERGY_SOURCE if (ac_pj, mac_pj) == (AC_PJ, MAC_PJ) else "given: --ac-pj, --mac-pj"
    return EnergyEstimate(synops=synops, macs=macs, ac_pj=ac_pj, mac_pj=mac_pj, source=source,
                          forward_j=(synops * ac_pj + macs * mac_pj) * 1e-12,
                          samples=inspection.samples, measured=measured)  # fmt: skip


def faster_speedups(search: FasterSearch | None) -> dict[str, Speedup]:
    """Each measured path's speedup: the layers' own plain step over the path's, the median of
    the per-round ratios (each round ran both, in turned order), with the 95 % bootstrap
    interval of that median."""
    if search is None:
        return {}
    found = {}
    for path in search.paths:
        ratios = [base / mine for base, mine in zip(search.base_s, path.step_s, strict=False)
                  if mine > 0]  # fmt: skip
        if ratios:
            value, low, high = median_interval(ratios)
            found[path.change] = Speedup(value=value, low=low, high=high, rounds=len(ratios))
    return found


def _no_steps(task: ProfileTask, run: ProfileRun) -> str:
    needed = needed_steps(task.warmup, task.steps, task.op_steps)
    if run.steps_seen == 0:
        return f"the script never stepped (no {task.marker} call)"
    return (f"the script stepped {run.steps_seen} times; profiling needs {task.warmup} warm-up "
            "steps, one inspected step and then 3 per profiled step, operations steps "
            "included (at least "
            f"{needed}): give fewer --warmup, --steps or --op-steps, or let the script run "
            "longer")  # fmt: skip


def typical_step(attribution: StepAttribution) -> tuple[float, dict[str, float]]:
    """The typical profiled step and its time per key: the mean over the middle half of the
    steps by length (all of them when fewer than 4). Each step's keys add up to its length
    (:mod:`kernelprof.traces.steps`), so these add up to the step exactly, which medians taken
    key by key do not; the slowest and fastest quarters (a step the machine stalled, say)
    are left out as a median would leave them."""
    steps = sorted(attribution.per_step, key=lambda step: step.length_us)
    if not steps:  # a record without its steps: the medians are all there is
        return attribution.step_us, dict(attribution.categories_us)
    if len(steps) >= 4:
        quarter = len(steps) // 4
        steps = steps[quarter : len(steps) - quarter]
    device = attribution.kind == "device"
    summed: dict[str, float] = defaultdict(float)
    for step in steps:
        for key, us in ((step.device_us if device else None) or step.host_us).items():
            summed[key] += us
    count = len(steps)
    return (sum(step.length_us for step in steps) / count,
            {key: us / count for key, us in summed.items()})  # fmt: skip


def layer_rows(seen: tuple[LayerSeen, ...], timed: Mapping[str, float],
               detailed: StepAttribution, copy_bandwidth: float | None) -> list[Layer]:  # fmt: skip
    named = _named(detailed)
    rows = []
    for layer in seen:
        fwd = timed.get(layer_key(layer.name, "fwd"), 0.0)
        bwd = timed.get(layer_key(layer.name, "bwd"), 0.0)
        calls = statistics.median(layer.calls) if layer.calls else 0.0
        operations = _top([named.get(layer_key(layer.name, d), {}) for d in ("fwd", "bwd")])
        rows.append(Layer(name=layer.name, type=layer.type, category=layer.category, calls=calls,
                          fwd_us=fwd, bwd_us=bwd, operations=operations,
                          neuron=_neuron(layer, calls, fwd + bwd, copy_bandwidth)))  # fmt: skip
    return rows


def _neuron(layer: LayerSeen, calls: float, time_us: float,
            copy_bandwidth: float | None) -> NeuronFigures | None:  # fmt: skip
    """A neuron layer's bytes, and against the copy bandwidth (where one was measured): its
    share of it and the time it would save at it."""
    call = layer.neuron
    if call is None:
        return None
    steps = round(call.steps_per_call * calls)
    traffic = neuron_traffic(steps * call.neurons, call.element_bytes)
    moved = traffic["fwd"] + traffic["bwd"]
    fraction = ideal_us = saved_us = None
    if copy_bandwidth:
        ideal_us = 1e6 * moved / copy_bandwidth
        fraction = moved / (time_us / 1e6) / copy_bandwidth if time_us else None
        saved_us = max(0.0, time_us - ideal_us)
    return NeuronFigures(framework=call.framework, path=call.path, T=steps,
                         neurons=call.neurons, dtype=call.dtype, fwd_bytes=traffic["fwd"],
                         bwd_bytes=traffic["bwd"], time_us=time_us, copy_fraction=fraction,
                         at_copy_us=ideal_us, saved_us=saved_us,
                         tensor_bytes=steps * call.neurons * call.element_bytes,
                         canonical=call.canonical)  # fmt: skip


def neuron_roofline(layers: list[Layer], step_us: float,
                    copy_bandwidth: float | None) -> Roofline | None:  # fmt: skip
    """The neuron layers together against the copy bandwidth; None without neuron layers or
    a measured bandwidth."""
    neurons = [layer.neuron for layer in layers if layer.neuron is not None]
    if not neurons or not copy_bandwidth:
        return None
    total = sum(figures.time_us for figures in neurons)
    at_copy = sum(min(figures.at_copy_us, figures.time_us) for figures in neurons)
    saved = sum(figures.saved_us for figures in neurons)
    return Roofline(copy_bandwidth=copy_bandwidth, neuron_us=total, neuron_share=total / step_us,
                    at_copy_us=at_copy, at_copy_share=at_copy / step_us,
                    max_speedup=step_us / max(step_us - saved, 1e-9))  # fmt: skip


def categories(seen: tuple[LayerSeen, ...], keyed: Mapping[str, float]) -> dict[str, float]:
    """The breakdown's layer keys summed by the layers' categories ('neuron fwd' ...); the
    phases as they are. Adds up to what ``keyed`` adds up to."""
    of_layer = _category_of_key(seen)
    summed: dict[str, float] = defaultdict(float)
    for key, us in keyed.items():
        summed[of_layer.get(key, key)] += us
    return dict(sorted(summed.items(), key=lambda item: -abs(item[1])))


def category_operations(
    seen: tuple[LayerSeen, ...], detailed: StepAttribution
) -> dict[str, tuple[NamedOperation, ...]]:
    of_layer = _category_of_key(seen)
    grouped: dict[str, list[Mapping]] = defaultdict(list)
    for key, names in _named(detailed).items():
        grouped[of_layer.get(key, key)].append(names)
    return {category: _top(tables) for category, tables in grouped.items()}


def _category_of_key(seen: tuple[LayerSeen, ...]) -> dict[str, str]:
    return {layer_key(layer.name, d): f"{layer.category} {d}" for layer in seen
            for d in ("fwd", "bwd")}  # fmt: skip


def _named(attribution: StepAttribution) -> Mapping[str, Mapping]:
    """Per category, name -> NamedTime: kernels where the trace has GPU work, else operators."""
    return attribution.gpu if attribution.kind == "device" else attribution.operators


def _top(tables: list[Mapping]) -> tuple[NamedOperation, ...]:
    count: dict[str, float] = defaultdict(float)
    us: dict[str, float] = defaultdict(float)
    for table in tables:
        for name, entry in table.items():
            count[name] += entry.count
            us[name] += entry.us
    ranked = sorted(us, key=lambda name: (-us[name], name))[:TOP_OPERATIONS]
    return tuple(NamedOperation(name=name, count=count[name], us=us[name]) for name in ranked)


# ---- two profiles -------------------------------------------------------------------------------


def diff(a: ProfileDocument, b: ProfileDocument, top: int = 5) -> ProfileComparison:
    """B minus A by category and by layer, through the attribution's own comparison."""
    named = "gpu" if a.time_kind == b.time_kind == "device" else "operators"
    by = {}
    for key, times, operations in (
        ("categories", lambda d: d.categories_us, lambda d: d.category_operations),
        ("layers", lambda d: {layer.name: layer.total_us for layer in d.layers},
         lambda d: {layer.name: layer.operations for layer in d.layers}),
    ):  # fmt: skip
        sides = [{"step_us": d.step_us, "categories_us": dict(times(d)), "kind": d.time_kind,
                  named: {name: {op.name: {"count": op.count, "us": op.us} for op in ops}
                          for name, ops in operations(d).items()}} for d in (a, b)]  # fmt: skip
        compared = trace_steps.compare(sides[0], sides[1], top=top, named=named)
        by[key] = tuple(decode(CategoryChange, row) for row in compared["categories"])
    counts, saved, forward = (), {}, {}
    if a.inspection is not None and b.inspection is not None:
        names = dict.fromkeys(c.name for d in (a, b) for c in d.inspection.layers)
        counts = tuple(sorted((CountChange(name=name, a=a.inspection.of(name),
                                           b=b.inspection.of(name)) for name in names),
                              key=lambda change: -abs(change.saved_delta)))  # fmt: skip
        saved = {"a": a.inspection.saved_bytes, "b": b.inspection.saved_bytes}
    if a.energy is not None and b.energy is not None:
        forward = {"a": a.energy.forward_j, "b": b.energy.forward_j}
    return ProfileComparison(named=named, step_us={"a": a.step_us, "b": b.step_us,
                                                   "delta": b.step_us - a.step_us},
                             categories_by=by["categories"], layers_by=by["layers"],
                             counts_by=counts, saved_bytes=saved,
                             forward_j=forward)  # fmt: skip
