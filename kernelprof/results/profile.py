"""``kernelprof profile`` records: where a training step of any model goes, layer by layer.

A profile is made in two stages. The run (:mod:`kernelprof.runs.profile`) watches the training
steps of a script or a notebook loop and returns what it saw: the model's layers
(:class:`LayerSeen`), the step breakdown of the profiled steps (the same
:class:`~kernelprof.results.e2e.StepBreakdown` as e2e's, its categories keyed by layer: ``<layer>
fwd`` / ``<layer> bwd``) and the copy bandwidth measured in the same process. The analysis
(:mod:`kernelprof.results.layers`) turns that into the document: each layer's time
(:class:`Layer`), the time per category, the neuron layers against the copy-bandwidth roofline
(:class:`NeuronFigures`, :class:`Roofline`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Literal

from kernelprof.results.compare import Speedup
from kernelprof.results.document import Document
from kernelprof.results.e2e import CategoryChange, StepBreakdown
from kernelprof.results.energy import EnergyMeasurement
from kernelprof.results.record import FrozenDict, record

LAYER_CATEGORIES = ("neuron", "conv", "linear", "norm", "pool", "dropout", "other")
# What a step holds besides its layers (e2e's phase names, so that the two compare).
PHASES = ("loss", "loss bwd", "optimizer", "data loading", "host-to-device copy")
# The 45 nm figures SNN papers estimate energy with: a 32-bit float add 0.9 pJ (an accumulate,
# what a spike into a synapse costs), a multiply 3.7 pJ (a multiply-accumulate: 4.6 pJ).
AC_PJ, MAC_PJ = 0.9, 4.6
ENERGY_SOURCE = "45 nm CMOS, 32-bit float add 0.9 pJ + multiply 3.7 pJ (Horowitz, ISSCC 2014)"


def needed_steps(warmup: int, steps: int, op_steps: int) -> int:
    """Steps a script must run for the whole schedule: the warm-up, one inspected step, then 3
    per profiled step (a plain one, the profiler session's unrecorded first, the profiled one)."""
    return warmup + 1 + 3 * (steps + op_steps)


@record
class ProfileTask:
    """What was profiled and how."""

    entry: Literal["script", "api"]
    command: tuple[str, ...]  # the script's command line; () from the API
    device: str
    warmup: int  # steps left unprofiled first
    steps: int  # profiled steps (each beside a plain one) for the categories
    op_steps: int  # more, recording every operator, for the operations
    marker: str  # what ended a step: "optimizer.step()", "kernelprof.step()", "prof.step()"
    stop: bool = False  # the script was ended after the profiled steps
    faster_rounds: int = 0  # rounds measuring each faster path (0: no search)
    trace_dir: str | None = None
    ac_pj: float = AC_PJ  # the energy estimate's constants
    mac_pj: float = MAC_PJ


@record
class NeuronCall:
    """A neuron layer's input as seen in its first profiled call."""

    framework: str
    path: str  # the code path it takes, in words
    steps_per_call: int  # time steps one call covers (T for a multi-step call, else 1)
    neurons: int  # elements per time step (batch included)
    dtype: str
    element_bytes: int
    # the canonical neuron its settings compute at that call ("PLIF: k=0.45 now (tau 2.22),
    # ..."), or
    # "none: <why>"; "" where its framework does not say
    canonical: str = ""


@record
class LayerSeen:
    """A layer of the model as the run saw it: a leaf module, or a neuron module with what is
    inside it."""

    name: str  # qualified name, e.g. "features.2"
    type: str  # its class, module-qualified
    category: str
    calls: tuple[int, ...]  # forward calls in each profiled step
    neuron: NeuronCall | None = None


@record
class LayerCounts:
    """What the inspected (untimed) step counted of one layer."""

    name: str
    saved_bytes: int = 0  # saved for backward in its forward, held when the most was held
    spikes: int | None = None  # neuron layers with binary outputs: spikes in the step
    outputs: int | None = None  # their output elements (time steps x batch x neurons)
    rate_per_step: tuple[float, ...] = ()  # firing rate at each time step
    silent: float | None = None  # share of (sample, neuron) pairs that never fired
    synops: int | None = None  # conv/linear: accumulates of spike inputs (exact)
    macs: int | None = None  # conv/linear: multiply-accumulates of dense inputs (exact)
    sources: tuple[str, ...] = ()  # the neuron layers whose spikes it took

    @property
    def rate(self) -> float | None:
        return self.spikes / self.outputs if self.spikes is not None and self.outputs else None


@record
class Inspection:
    """The inspected step: memory saved for backward, spikes and operations, per layer."""

    step: int  # which step of the script (0: its first)
    layers: tuple[LayerCounts, ...]
    saved_bytes: int  # the most autograd held for the backward at once, parameters left out
    parameter_bytes: int  # parameters saved (alive whether or not the step runs)
    peak_bytes: int | None  # the device's peak allocation in the step
    peak_source: str  # how the peak was read, or why it was not
    samples: int | None = None  # the batch: the model's input's batch dimension
    problems: tuple[str, ...] = ()

    def of(self, name: str) -> LayerCounts | None:
        return next((layer for layer in self.layers if layer.name == name), None)


@record
class PathCheck:
    """One layer's check of a faster path: what the path computes on the layer's own input
    against what the layer computed there (:func:`kernelprof.verify.verdicts.same_neuron`)."""

    layer: str
    verdict: Literal["exact", "close", "WRONG", "failed"]
    reason: str


@record
class FasterPath:
    """Another path for some neuron layers, checked on each layer's input and, where every
    check passed, measured: plain steps with it in place, one a round beside the layers' own
    (:class:`FasterSearch` ``base_s``), and the memory of one inspected step with it."""

    change: str  # what is put in place, e.g. "kernelprof ref-compile in place of forward"
    path: str  # the path in words
    checks: tuple[PathCheck, ...]  # every layer tried
    step_s: tuple[float, ...] = ()  # its plain steps, one a round (empty: not measured)
    saved_bytes: int | None = None  # saved for backward, held at once, in the step with it
    saved_by_layer: Mapping[str, int] = field(default_factory=FrozenDict)
    peak_bytes: int | None = None  # the device's peak in that step (CUDA)
    problem: str = ""  # why it was not measured, where it was not

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers it stands in for: those whose check passed."""
        return tuple(check.layer for check in self.checks if check.verdict in ("exact", "close"))


@record
class FasterSearch:
    """The faster-path search: what each neuron layer's framework (and kernelprof's reference
    kernels, for a layer computing the canonical LIF) offers in its place, checked, and
    measured in rounds of plain steps whose order turns each round."""

    rounds: int  # rounds asked for
    base_s: tuple[float, ...] = ()  # the layers' own plain steps, one a round
    paths: tuple[FasterPath, ...] = ()
    none: Mapping[str, str] = field(default_factory=FrozenDict)  # layer -> why nothing stands in
    problems: tuple[str, ...] = ()


@record
class ProfileRun:
    """What the run returns to the analysis."""

    layers: tuple[LayerSeen, ...]
    breakdown: StepBreakdown | None  # None: not one profiled step was finished
    copy_bandwidth: float | None  # bytes/s, device-to-device (host memory on CPU)
    steps_seen: int
    uncategorised: tuple[str, ...] = ()  # leaf module types no category names
    problems: tuple[str, ...] = ()
    inspection: Inspection | None = None
    energy: EnergyMeasurement | None = None  # the plain steps' measured energy
    faster: FasterSearch | None = None


@record
class NeuronFigures:
    """A neuron layer against the copy bandwidth: what the canonical fused algorithm must move
    (the traffic model ``compare`` uses: 3 passes over [T, N] forward, 3 backward), the time it
    took, and the time it would take at the copy bandwidth."""

    framework: str
    path: str
    T: int  # time steps per training step
    neurons: int
    dtype: str
    fwd_bytes: int
    bwd_bytes: int
    time_us: float  # forward + backward
    copy_fraction: float | None  # its bytes/s over the copy bandwidth
    at_copy_us: float | None  # its bytes at the copy bandwidth
    saved_us: float | None  # time_us - at_copy_us, at least 0
    tensor_bytes: int = 0  # one [T, neurons] tensor: all a fused kernel keeps for backward
    canonical: str = ""  # the canonical neuron it computes (NeuronCall.canonical)


@record
class NamedOperation:
    name: str
    count: float
    us: float


@record
class Layer:
    """One layer's share of the median profiled step."""

    name: str
    type: str
    category: str
    calls: float  # forward calls per step (median)
    fwd_us: float
    bwd_us: float
    operations: tuple[NamedOperation, ...] = ()  # top operators (CPU) or kernels (CUDA)
    neuron: NeuronFigures | None = None

    @property
    def total_us(self) -> float:
        return self.fwd_us + self.bwd_us


@record
class Roofline:
    """The neuron layers together against the copy bandwidth."""

    copy_bandwidth: float
    neuron_us: float
    neuron_share: float  # of the step
    at_copy_us: float
    at_copy_share: float
    max_speedup: float  # the step if the neuron layers ran at the copy bandwidth


@record
class EnergyEstimate:
    """The operation-count estimate of a forward pass beside the energy a step measurably took."""

    synops: int  # accumulates (spike inputs), the inspected step's forward
    macs: int  # multiply-accumulates (dense inputs)
    ac_pj: float
    mac_pj: float
    source: str  # where the constants come from
    forward_j: float  # the estimate for one forward pass of the step's batch
    samples: int | None  # the batch, where the model's input says it
    measured: EnergyMeasurement | None = None  # a plain training step, idle power taken off

    @property
    def per_sample_j(self) -> float | None:
        return self.forward_j / self.samples if self.samples else None


@record
class ProfileDocument(Document):
    kernelprof: Literal["profile"] = "profile"
    task: ProfileTask
    status: Literal["ok", "partial", "error"] = "ok"
    reason: str = ""  # why not ok, in one line
    step_us: float | None = None  # the median profiled step
    time_kind: Literal["device", "host"] = "host"
    layers: tuple[Layer, ...] = ()  # slowest first
    categories_us: Mapping[str, float] = field(default_factory=FrozenDict)  # add up to the step
    category_operations: Mapping[str, tuple[NamedOperation, ...]] = field(
        default_factory=FrozenDict
    )
    breakdown: StepBreakdown | None = None
    roofline: Roofline | None = None
    inspection: Inspection | None = None  # memory, spikes and operations of one step
    energy: EnergyEstimate | None = None
    faster: FasterSearch | None = None
    # each measured path's speedup over the layers' own step, by its change
    faster_speedups: Mapping[str, Speedup] = field(default_factory=FrozenDict)
    steps_seen: int = 0
    uncategorised: tuple[str, ...] = ()
    exit_code: int | None = None  # the script's (CLI)
    problems: tuple[str, ...] = ()

    @property
    def rows(self) -> tuple[Layer, ...]:
        return self.layers


@record
class CountChange:
    """A layer's inspected counts in two profiles (None: not in that one)."""

    name: str
    a: LayerCounts | None
    b: LayerCounts | None

    @property
    def saved_delta(self) -> int:
        return (self.b.saved_bytes if self.b else 0) - (self.a.saved_bytes if self.a else 0)


@record
class ProfileComparison:
    """B minus A, two profiles: by category and by layer, largest change first, with the named
    operations behind each change (:func:`kernelprof.traces.steps.compare`, as e2e's)."""

    named: Literal["gpu", "operators"]
    step_us: Mapping[str, float]  # a, b, delta
    categories_by: tuple[CategoryChange, ...]
    layers_by: tuple[CategoryChange, ...]
    counts_by: tuple[CountChange, ...] = ()  # the inspected steps, largest memory change first
    saved_bytes: Mapping[str, float] = field(default_factory=FrozenDict)  # a, b (both inspected)
    forward_j: Mapping[str, float] = field(default_factory=FrozenDict)  # the estimates, a, b
