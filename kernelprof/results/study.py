"""Study records: the 2025 framework study reproduced, as one document holding every e2e run
(direct training in each neuron setting, conversion) and the study's claims checked against
them (:mod:`kernelprof.results.analysis`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Literal

from kernelprof.results.document import Document
from kernelprof.results.e2e import ConversionDocument, E2EDocument, column_name
from kernelprof.results.record import FrozenDict, record


@record
class StudyPreset:
    name: str
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    epochs: int
    T: int
    conversion_T: int
    limit_train: int | None = None
    limit_test: int | None = None
    batch_size: int = 64
    lr: float = 1e-2

    @property
    def sizes(self) -> str:
        """'1 epoch(s), batch 64, Adam 0.01, T=8 (conversion up to T=32), ...'."""
        return (f"{self.epochs} epoch(s), batch {self.batch_size}, Adam {self.lr:g}, "
                f"T={self.T} (conversion up to T={self.conversion_T}), training images per "
                f"dataset: {self.limit_train or 'all'}, test images: "
                f"{self.limit_test or 'all'}")  # fmt: skip


@record
class ClaimColumn:
    """One column (dataset, network and setting) a claim is held against."""

    column: str
    setting: str | None = None  # direct training's neuron setting
    T: int | None = None  # conversion's T
    # speed claims
    fastest: str | None = None
    spikingjelly_over_fastest: float | None = None
    runner_up_over_fastest: float | None = None
    # accuracy claims
    best: tuple[str, ...] = ()
    lead_points: float | None = None
    standard_error_points: float | None = None
    resolved: bool = False
    accuracy: Mapping[str, float] = field(default_factory=FrozenDict)
    # over seeds (kernelprof study): the fewest seeds a contender of this column had, the
    # test the verdict rests on, and its figures
    seeds: int = 1
    test: str = ""
    p_value: float | None = None
    accuracy_sd: Mapping[str, float] = field(default_factory=FrozenDict)
    runner_up: str | None = None
    runner_up_interval: tuple[float, float] | None = None  # runner-up over fastest, 95 %
    step_s: Mapping[str, float] = field(default_factory=FrozenDict)


@record
class Claim:
    claim: str
    kind: Literal["speed", "accuracy"]
    reproduced: bool
    wins: int
    columns: tuple[ClaimColumn, ...]
    measure: str


@record
class StudyDocument(Document):
    kernelprof: Literal["study"] = "study"
    preset: StudyPreset
    device: str
    device_name: str
    commit: str
    date: str
    wall_s: float
    direct: tuple[E2EDocument, ...] = ()
    conversion: tuple[ConversionDocument, ...] = ()
    claims: tuple[Claim, ...] = ()

    @property
    def documents(self) -> tuple[E2EDocument | ConversionDocument, ...]:
        return (*self.direct, *self.conversion)


# ---- the study as cells (kernelprof study) ----------------------------------------------------


@record
class CellKey:
    """One training run of a study: what trains, how, with which seed, on which device. Two
    cells on different devices are never ranked against each other: the device is in the key."""

    framework: str
    dataset: str
    model: str
    mode: Literal["direct", "conversion"]
    setting: str = ""  # direct training's neuron setting ("canonical", "framework-defaults")
    neuron: str = "lif"
    seed: int = 0
    device: str = "cpu"  # the device's kind and name, e.g. "cuda: NVIDIA H100 80GB HBM3"

    @property
    def name(self) -> str:
        """'spikingjelly digits cnn direct canonical lif seed 0 (cpu)'."""
        parts = (self.framework, self.dataset, self.model, self.mode, self.setting, self.neuron)
        return f"{' '.join(p for p in parts if p)} seed {self.seed} ({self.device})"

    @property
    def slug(self) -> str:
        """The name as a file name: letters, digits, '.', '_' and '-' only, and unique (what
        the name's other characters were is kept in a short hash)."""
        import hashlib
        import re

        readable = re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-")[:120]
        return f"{readable}-{hashlib.sha1(self.name.encode()).hexdigest()[:8]}"


@record
class CellRecord:
    """A finished cell as the store keeps it: done with its e2e document, or failed with why."""

    kernelprof: Literal["study-cell"] = "study-cell"
    key: CellKey
    status: Literal["done", "failed"]
    reason: str = ""  # why it failed, in one line
    started: float = 0.0  # when its run began (Unix time)
    wall_s: float = 0.0
    attempts: int = 1
    commit: str = ""
    preset: StudyPreset | None = None  # the sizes it was trained at
    direct: E2EDocument | None = None
    conversion: ConversionDocument | None = None


# ---- the study over its seeds -------------------------------------------------------------------


@record
class FrameworkSeeds:
    """One framework in one column of a study, over the seeds that gave it a result."""

    framework: str
    status: str  # "ok" where a seed gave a result, else the first seed's row status
    reason: str = ""
    seeds: int = 0  # seeds with a result
    epochs: int | None = None  # the training epochs each had (direct; the ANN's or the route's)
    accuracies: tuple[float, ...] = ()  # test accuracy, seed by seed
    accuracy_mean: float | None = None
    accuracy_sd: float | None = None  # sample standard deviation (n-1); None under two seeds
    time_s: float | None = None  # mean time to the result (training; conversion: to the SNN)
    step_s: float | None = None  # direct: median over seeds of each run's median step
    step_low_s: float | None = None  # its 95 % bootstrap interval (seeds, then steps)
    step_high_s: float | None = None
    test_samples: int | None = None


@record
class ColumnSeeds:
    """One column of the study (mode, dataset, network, neuron setting, neuron, device) over
    its seeds: each framework's summary; conversion's shared ANN as ``ann``."""

    mode: Literal["direct", "conversion"]
    dataset: str
    model: str
    setting: str
    neuron: str
    device: str
    T: int
    frameworks: tuple[FrameworkSeeds, ...]
    ann: FrameworkSeeds | None = None

    @property
    def name(self) -> str:
        return column_name(self.dataset, self.model, self.neuron)


@record
class SeedsStudy:
    """A study run as cells (kernelprof study) over its seeds: every column's summary and the
    study's claims judged with seed-based tests (:mod:`kernelprof.results.seeds`)."""

    kernelprof: Literal["study-seeds"] = "study-seeds"
    preset: StudyPreset
    seeds: tuple[int, ...]
    devices: tuple[str, ...]
    commits: tuple[str, ...]
    cells: int  # finished cells behind it
    cells_wall_s: float  # their wall time, summed
    columns: tuple[ColumnSeeds, ...] = ()
    claims: tuple[Claim, ...] = ()
