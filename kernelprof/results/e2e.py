"""e2e records: what ``kernelprof e2e`` trained and measured, per framework, and the documents of
its two modes: direct training (:class:`E2EDocument`, with the step-time attribution) and
ANN-to-SNN conversion (:class:`ConversionDocument`).

A row is a framework's outcome: its status, and when it ran, its measurements
(:class:`DirectTraining`, :class:`Conversion`). The step breakdown of a trained framework is
:class:`StepBreakdown`: the attributed profiler traces of a few extra steps
(:class:`StepAttribution`, see :mod:`kernelprof.traces.steps`) held against the plain steps
beside them. :class:`Attribution` is the analysis across frameworks: each one's difference from
the fastest, by category and operation.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import field
from typing import Literal

from kernelprof.results.check import Status
from kernelprof.results.document import Document
from kernelprof.results.energy import EnergyMeasurement
from kernelprof.results.record import FrozenDict, record
from reference_kernels.model import NeuronConfig

NeuronSetting = Literal["canonical", "framework-defaults"]


def column_name(dataset: str, model: str, neuron: str = "lif") -> str:
    """A study column's name: "fmnist cnn", and the neuron beside it where it is not LIF
    ("fmnist cnn cuba"), so a study of several neurons names each column apart."""
    return f"{dataset} {model}" + ("" if neuron == "lif" else f" {neuron}")


@record
class E2ETask:
    """What was trained: the same for every framework of a document."""

    model: Literal["cnn", "fc"]
    dataset: str
    device: str
    config: NeuronConfig  # the canonical neuron
    T: int = 8
    epochs: int = 1
    max_steps: int | None = None  # training steps per run, when cut short
    batch_size: int = 64
    lr: float = 1e-2
    weight_gain: float = 4.0
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    neuron_setting: NeuronSetting = "canonical"
    data_dir: str | None = None
    trace_dir: str | None = None

    @property
    def column(self) -> str:
        """Its column in the study's tables (:func:`column_name`)."""
        return column_name(self.dataset, self.model, self.config.neuron)


# ---- the framework-defaults neuron against the canonical one -----------------------------------


@record
class SettingDifference:
    setting: str
    default: str
    source: str
    canonical: str | None


@record
class NeuronCheck:
    """The framework's default neuron run against the canonical float64 oracle."""

    input: str
    same_neuron: bool
    verdict: str
    spike_mismatch_fraction: float
    canonical_firing_rate: float
    default_firing_rate: float
    grad_cosine: float


@record
class NeuronDifferences:
    settings: tuple[SettingDifference, ...]
    check: NeuronCheck | None = None


# ---- the step breakdown ------------------------------------------------------------------------


@record
class NamedTime:
    """Median count and time per step of one named operation (operator or GPU work)."""

    count: float
    us: float


@record
class StepLength:
    length_us: float
    host_us: Mapping[str, float]
    device_us: Mapping[str, float] | None = None


@record
class StepAttribution:
    """The training steps of one trace, attributed (medians over the steps)."""

    path: str
    kind: Literal["device", "host"]
    detailed: bool  # every operator recorded: the named operations are complete
    steps: int
    step_us: float
    categories_us: Mapping[str, float]
    host_categories_us: Mapping[str, float]
    operators: Mapping[str, Mapping[str, NamedTime]]  # category -> name -> per step
    gpu: Mapping[str, Mapping[str, NamedTime]]
    launch: Mapping[str, float]
    step_lengths_us: tuple[float, ...] = ()
    unlinked_nodes: int = 0
    problems: tuple[str, ...] = ()
    per_step: tuple[StepLength, ...] = ()


@record
class StepBreakdown:
    """Profiled steps alternating with plain ones: the attributed traces, and the profiled
    steps held against the plain steps beside them."""

    coarse: StepAttribution  # ranges and autograd nodes only: the categories
    detailed: StepAttribution  # every operator: the operations behind them
    plain_step_us: float
    profiled_step_us: float
    profiled_over_plain: float  # median of the paired ratios
    profiled_over_plain_interval: tuple[float, float]
    matches_plain_step: bool  # the interval reaches within 5 % of 1
    within_tolerance: bool  # the median itself within 5 %
    detailed_overhead: float  # the operations trace's steps over the plain ones, less 1
    plain_steps_us: tuple[float, ...] = ()
    paired_ratios: tuple[float, ...] = ()
    problems: tuple[str, ...] = ()
    plain_step_faults: tuple[int, ...] = ()  # the process's minor page faults in each plain step
    profiled_step_faults: tuple[int, ...] = ()  # and in each profiled step of the coarse trace

    @property
    def faults_per_step(self) -> float | None:
        """The median plain step's minor page faults (None: not counted)."""
        return statistics.median(self.plain_step_faults) if self.plain_step_faults else None


@record
class RankFigures:
    rank: int
    steps: int
    step_median_s: float
    samples_per_s: float
    communication_s: float
    profiled_step_s: float


@record
class DirectTraining:
    """One framework's network trained by surrogate-gradient BPTT, and its step breakdown."""

    dataset_source: str
    test_samples: int
    network: str
    epochs: int
    training_steps: int
    epoch_s: tuple[float, ...]
    step_s: tuple[float, ...]
    step_median_s: float  # plain steps, the first left out
    samples_per_s: float
    final_loss: float | None
    test_accuracy: float
    energy: EnergyMeasurement  # per epoch
    breakdown: StepBreakdown
    peak_bytes: int
    peak_kind: str
    notes: tuple[str, ...] = ()
    trace: str | None = None
    ops_trace: str | None = None
    rank: int | None = None
    world_size: int | None = None
    ranks: tuple[RankFigures, ...] = ()  # rank 0 of a data-parallel run: every rank's figures
    total_samples_per_s: float | None = None

    @property
    def breakdown_s(self) -> Mapping[str, float]:
        """The median profiled step per category, in seconds."""
        return {name: us / 1e6 for name, us in self.breakdown.coarse.categories_us.items()}

    @property
    def profiled_step_s(self) -> float:
        return self.breakdown.coarse.step_us / 1e6

    @property
    def epoch_median_s(self) -> float:
        return statistics.median(self.epoch_s)


@record
class TrainingRow:
    """A framework's outcome in direct training."""

    framework: str
    status: Status
    reason: str = ""
    neuron_setting: NeuronSetting = "canonical"
    neuron_differences: NeuronDifferences | None = None  # framework-defaults only
    training: DirectTraining | None = None  # None unless status is ok


# ---- attribution across frameworks (the analysis) ----------------------------------------------


@record
class OperationChange:
    name: str
    a_count: float
    b_count: float
    delta_count: float
    a_us: float
    b_us: float
    delta_us: float


@record
class CategoryChange:
    name: str
    a_us: float
    b_us: float
    delta_us: float
    operations: tuple[OperationChange, ...] = ()


@record
class StepComparison:
    """B minus A for two attributed traces: per category, largest change first, with the named
    operations behind each change."""

    named: Literal["gpu", "operators"]
    step_us: Mapping[str, float]  # a, b, delta
    categories: tuple[CategoryChange, ...]
    launch: Mapping[str, Mapping[str, float]] = field(default_factory=FrozenDict)


@record
class Difference:
    """One framework against the fastest: its profiled step difference and what makes it up."""

    total_s: float
    plain_total_s: float  # the plain steps that alternated with the profiled ones
    by_category_s: Mapping[str, float]  # largest change first
    named: Literal["gpu", "operators"]
    categories: tuple[CategoryChange, ...]


@record
class LaunchDiagnosis:
    launch_bound: bool | None
    text: str
    stats: Mapping[str, float] = field(default_factory=FrozenDict)


@record
class Attribution:
    fastest: str | None
    differences: Mapping[str, Difference] = field(default_factory=FrozenDict)
    launch: Mapping[str, LaunchDiagnosis] = field(default_factory=FrozenDict)


@record
class E2EDocument(Document):
    kernelprof: Literal["e2e"] = "e2e"
    task: E2ETask
    rows: tuple[TrainingRow, ...] = ()
    attribution: Attribution | None = None
    world_size: int | None = None

    @property
    def trained(self) -> tuple[TrainingRow, ...]:
        return tuple(row for row in self.rows if row.training is not None)


# ---- conversion --------------------------------------------------------------------------------


@record
class Fit:
    """A training loop's figures (the ANN's, or a route that trains its own SNN)."""

    epochs: int
    training_steps: int
    epoch_s: tuple[float, ...]
    train_s: float
    step_median_s: float | None
    samples_per_s: float | None
    steps_by_mode: Mapping[str, int] = field(default_factory=FrozenDict)
    step_median_s_by_mode: Mapping[str, float | None] = field(default_factory=FrozenDict)


@record
class AnnResult:
    """The ANN twin, trained once and converted by every converter."""

    status: Status
    reason: str = ""
    dataset_source: str | None = None
    network: str | None = None
    fit: Fit | None = None
    test_accuracy: float | None = None


@record
class Conversion:
    """A converted (or route-trained) SNN tested at every T up to the task's."""

    route: str
    accuracy_by_T: Mapping[str, float]
    test_accuracy: float  # at the largest T
    inference_batch_median_s: float
    inference_samples_per_s: float
    test_samples: int
    peak_bytes: int
    peak_kind: str
    convert_s: float | None = None  # None: the route trains its own SNN (see training)
    training: Fit | None = None
    notes: tuple[str, ...] = ()
    trace: str | None = None


@record
class ConversionRow:
    framework: str
    status: Status
    reason: str = ""
    conversion: Conversion | None = None  # None unless status is ok


@record
class ConversionDocument(Document):
    kernelprof: Literal["conversion"] = "conversion"
    task: E2ETask
    ann: AnnResult | None = None
    rows: tuple[ConversionRow, ...] = ()

    @property
    def converted(self) -> tuple[ConversionRow, ...]:
        return tuple(row for row in self.rows if row.conversion is not None)
