"""``kernelprof study``'s request: the 2025 framework study as cells (framework, dataset,
network, mode, neuron setting, seed), each one training run, kept in a store under ``--out``
so that a study stopped at any point goes on where it stopped when run again."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

from kernelprof.requests.e2e import (
    DATASETS,
    DEFAULT_FRAMEWORKS,
    MODES,
    SETTINGS,
    known_frameworks,
    optional_count,
)
from kernelprof.requests.neuron import E2E_NEURONS, default_device, device
from kernelprof.requests.options import (
    Command,
    Request,
    RequestError,
    at_least,
    names,
    one_of,
    option,
    output_format,
    path,
)
from kernelprof.requests.outputs import writable_folder
from kernelprof.results.study import StudyPreset

# Sized to the 2-core CPU: "full" runs within 90 minutes there at one seed (a whole
# Fashion-MNIST epoch of five frameworks' CNNs alone takes about 25 minutes, so the training
# sets are cut, and said).
PRESETS = {
    "quick": StudyPreset(name="quick", datasets=("digits",), models=("cnn", "fc"), epochs=10,
                         T=8, conversion_T=32),
    "full": StudyPreset(name="full", datasets=("mnist", "fmnist"), models=("cnn", "fc"), epochs=1,
                        T=8, conversion_T=32, limit_train=12800, limit_test=2000),
    # A GPU study's size: the three datasets whole (MNIST and CIFAR-10 from --data-dir), and
    # 20 epochs, where the 2025 study's networks have settled at batch 64 and Adam 1e-3.
    "paper": StudyPreset(name="paper", datasets=("mnist", "fmnist", "cifar10"),
                         models=("cnn", "fc"), epochs=20, T=8, conversion_T=32, lr=1e-3),
}  # fmt: skip
EXECUTORS = ("local", "ray")


def cell_cpus() -> int:
    """The CPUs (threads) a cell takes under the Ray executor by default: all of this
    machine's, so that timing cells never share cores."""
    return os.cpu_count() or 1


def ray_unavailable() -> str | None:
    """Why Ray cannot run here (None: it can)."""
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'kernelprof[ray]')"
    return None


def _among(valid: tuple[str, ...]):
    def parse(value, flag: str) -> tuple[str, ...]:
        chosen = names(value, flag)
        if not chosen:
            raise RequestError(f"{flag}: name at least one")
        for item in chosen:
            if item not in valid:
                raise RequestError(f"{flag}: unknown {item!r} (valid: {', '.join(valid)})")
        return chosen

    return parse


@dataclasses.dataclass(frozen=True, kw_only=True)
class StudyRequest(Request):
    COMMAND = "study"

    preset: str = option("quick", "quick: digits, CNN and FC, 10 epochs (minutes on 2 CPU "
                         "cores); full: MNIST and Fashion-MNIST, 12,800 training images, 1 "
                         "epoch; paper: MNIST, Fashion-MNIST and CIFAR-10 whole, 20 epochs (a "
                         "GPU study)", parse=one_of(*PRESETS),
                         metavar="{" + ",".join(PRESETS) + "}")  # fmt: skip
    out: Path | None = option(None, "the study's folder: its cells (one file each, written as "
                              "each ends) and study.md; run again to finish what is missing",
                              parse=path)  # fmt: skip
    source: Path | None = option(None, "a study folder: its tables from the cells already "
                                 "there, nothing run", parse=path, flag="--from")  # fmt: skip
    seeds: int = option(1, "seeds per cell (0, 1, ...)", parse=at_least(1))
    frameworks: tuple[str, ...] | None = option(
        None, "comma list of frameworks (default: each mode's e2e defaults)", parse=names
    )
    datasets: tuple[str, ...] | None = option(None, "default: the preset's",
                                              parse=_among(DATASETS))  # fmt: skip
    models: tuple[str, ...] | None = option(None, "cnn, fc (default: the preset's)",
                                            parse=_among(("cnn", "fc")))  # fmt: skip
    modes: tuple[str, ...] = option(MODES, "direct, conversion", parse=_among(MODES))
    neuron_settings: tuple[str, ...] = option(SETTINGS, "direct training's neuron settings",
                                              parse=_among(SETTINGS))  # fmt: skip
    neurons: tuple[str, ...] = option(("lif",), f"direct training's neuron models "
                                      f"({', '.join(E2E_NEURONS)})",
                                      parse=_among(E2E_NEURONS))  # fmt: skip
    epochs: int | None = option(None, "default: the preset's", parse=optional_count)
    limit_train: int | None = option(None, "training images at most (default: the preset's)",
                                     parse=optional_count)  # fmt: skip
    retry_failed: bool = option(False, "run the failed cells again too", action="store_true")
    device: str | None = option(None, "cpu or cuda (default: cuda if present)", parse=device)
    executor: str = option("local", "local: one cell at a time here; ray: one Ray task per "
                           "cell (one GPU each on CUDA), Ray started here unless --address",
                           parse=one_of(*EXECUTORS))  # fmt: skip
    address: str | None = option(None, "a Ray cluster's address (with --executor ray)")
    cpus_per_cell: int | None = option(None, "CPUs (threads) a cell takes under --executor ray "
                                       "on the CPU (default: all of this machine's)",
                                       parse=at_least(1))  # fmt: skip
    data_dir: Path | None = option(None, "where datasets are (or go)", parse=path)

    @property
    def study_preset(self) -> StudyPreset:
        """The preset with the axes given in place of its own."""
        base = PRESETS[self.preset]
        changes = {name: value for name, value in (("datasets", self.datasets),
                   ("models", self.models), ("epochs", self.epochs),
                   ("limit_train", self.limit_train)) if value is not None}  # fmt: skip
        return dataclasses.replace(base, **changes) if changes else base

    def frameworks_by_mode(self) -> dict[str, tuple[str, ...]]:
        found = {}
        for mode in self.modes:
            valid = known_frameworks(mode)
            chosen = self.frameworks if self.frameworks is not None else DEFAULT_FRAMEWORKS[mode]
            found[mode] = tuple(name for name in chosen if name in valid)
        return found

    def check(self) -> None:
        if self.out is None and self.source is None:
            raise RequestError("give --out DIR (where the study's cells go) or --from DIR")
        if self.out is not None and self.source is not None:
            raise RequestError("--from reads a study, --out runs one: give one of them")
        if self.source is not None and not (self.source / "cells").is_dir():
            raise RequestError(f"--from: {self.source} holds no study (no cells/ folder)")
        if self.device is None:
            object.__setattr__(self, "device", default_device())
        if self.executor != "ray" and (self.address is not None or self.cpus_per_cell):
            raise RequestError("--address and --cpus-per-cell go with --executor ray")
        if self.executor == "ray" and self.source is None:
            self._check_ray()
        if self.out is not None:
            writable_folder(self.out, "--out")
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise RequestError(f"--data-dir: {self.data_dir} is not a folder")
        if self.source is None and self.frameworks is not None:
            by_mode = self.frameworks_by_mode()
            if not any(by_mode.values()):
                raise RequestError(f"--frameworks: none of {', '.join(self.frameworks)} runs "
                                   f"in {', '.join(self.modes)} (see kernelprof "
                                   "frameworks)")  # fmt: skip

    def _check_ray(self) -> None:
        why = ray_unavailable()
        if why is not None:
            raise RequestError(f"--executor ray: unavailable: {why}")
        local_cpu = self.address is None and self.device == "cpu"
        if local_cpu and (self.cpus_per_cell or 0) > cell_cpus():
            raise RequestError(
                f"--cpus-per-cell: {self.cpus_per_cell} is more than this "
                f"machine's {cell_cpus()} CPUs (the Ray started here has no more)"
            )


COMMAND = Command(
    name="study",
    help="the 2025 framework study as resumable cells, with seeds",
    description="Trains every cell of the study (framework x dataset x network x mode x neuron "
    "setting x seed) through kernelprof e2e, one at a time, each written to the study's folder "
    "as it ends; run again, it runs only the cells still missing. Prints the study's tables "
    "and claims, seed by seed.",
    request=StudyRequest,
    display=(output_format("md"),),
)
