"""Study records: the 2025 framework study reproduced, as one document holding every e2e run
(direct training in each neuron setting, conversion) and the study's claims checked against
them (:mod:`kernelprof.results.analysis`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Literal

from kernelprof.results.document import Document
from kernelprof.results.e2e import ConversionDocument, E2EDocument
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
