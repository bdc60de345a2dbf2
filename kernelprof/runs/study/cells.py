"""The study as cells: one training run each (framework, dataset, network, mode, neuron
setting, neuron, seed, device), run through ``kernelprof e2e`` with that one framework (which
trains it in a worker process of its own), and written to the study's store the moment it ends.

:func:`cell_keys` lists a study's cells in the order they run; :func:`run_cell` runs one and
returns its :class:`~kernelprof.results.study.CellRecord`: "done" with its e2e document
(whatever its row says: trained, unsupported, unavailable), or "failed" with the reason where
the run itself failed (a crash, a killed worker); :func:`run_local` is the local executor: the
cells the store lacks, one at a time, each written as soon as it finishes. A run interrupted
(Ctrl-C, SIGTERM) writes nothing for the cell it was in and stops; every cell already written
stays.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

from kernelprof.results.store import Store
from kernelprof.results.study import CellKey, CellRecord, StudyPreset


def cell_keys(preset: StudyPreset, *, frameworks: dict[str, Iterable[str]],
              settings: Iterable[str], seeds: int, device: str,
              neurons: Iterable[str] = ("lif",)) -> list[CellKey]:  # fmt: skip
    """Every cell: ``frameworks`` maps a mode ("direct", "conversion") to its frameworks;
    direct training runs in each neuron setting and with each neuron; conversion once (its
    converters build their own IF neurons: its cells' neuron is "lif", as before). Seeds are the
    outermost loop, so that a study stopped early has every column at its first seed."""
    keys = []
    for seed in range(seeds):
        for dataset in preset.datasets:
            for model in preset.models:
                for mode, names in frameworks.items():
                    for setting in settings if mode == "direct" else ("",):
                        keys += [CellKey(framework=name, dataset=dataset, model=model,
                                         mode=mode, setting=setting, neuron=neuron, seed=seed,
                                         device=device)
                                 for neuron in (neurons if mode == "direct" else ("lif",))
                                 for name in names]  # fmt: skip
    return keys


def device_label(device: str, threads: int | None = None) -> str:
    """The device part of a cell's key: its kind and name (a CPU's with the threads its cells
    train with: ``threads``, else torch's here)."""
    import torch

    from kernelprof.harness.device import describe

    return f"{device}: {describe(torch.device(device), threads)}"


def run_cell(key: CellKey, preset: StudyPreset, *, run_device: str, data_dir=None,
             commit: str = "") -> CellRecord:  # fmt: skip
    """Trains one cell through ``kernelprof e2e`` (its framework alone); KeyboardInterrupt
    where the run was interrupted (nothing of the cell is kept)."""
    from kernelprof.requests.e2e import E2ERequest
    from kernelprof.runs.e2e.run import run_e2e
    from kernelprof.runs.environment import environment

    options = dict(model=key.model, dataset=key.dataset, frameworks=(key.framework,),
                   device=run_device, epochs=preset.epochs, limit_train=preset.limit_train,
                   limit_test=preset.limit_test, batch_size=preset.batch_size, lr=preset.lr,
                   seed=key.seed, data_dir=data_dir)  # fmt: skip
    if key.mode == "direct":
        options.update(T=preset.T, neuron_setting=key.setting, neuron=key.neuron)
    else:
        options.update(T=preset.conversion_T, mode="conversion")
    request = E2ERequest(**options)
    started = time.time()
    document = run_e2e(request, environment=environment(request.device))
    if document.interrupted:
        raise KeyboardInterrupt
    wall_s = time.time() - started
    (row,) = document.rows
    common = dict(key=key, started=started, wall_s=wall_s, commit=commit, preset=preset)
    if row.status == "error":
        return CellRecord(status="failed", reason=row.reason.splitlines()[0] if row.reason
                          else "failed", **common)  # fmt: skip
    field = "direct" if key.mode == "direct" else "conversion"
    return CellRecord(status="done", **{field: document}, **common)


Progress = Callable[[CellRecord, int, int], None]  # (the cell, its number, cells to run)


def run_local(keys: list[CellKey], store: Store, run: Callable[[CellKey], CellRecord], *,
              retry_failed: bool = False, progress: Progress | None = None,
              done: dict[CellKey, CellRecord] | None = None) -> list[CellKey]:  # fmt: skip
    """The local executor: runs the cells ``store`` lacks, one at a time, writing each as it
    ends; returns the keys it ran. A failed cell run again keeps count of its attempts.
    ``done``: the store's cells where the caller has read them already."""
    if done is None:
        done, _ = store.read()
    todo = store.missing(keys, retry_failed=retry_failed, done=done)
    for number, key in enumerate(todo, start=1):
        cell = run(key)
        earlier = done.get(key)
        if earlier is not None:  # a failed cell retried
            cell = dataclasses.replace(cell, attempts=earlier.attempts + 1)
        store.write(cell)
        if progress is not None:
            progress(cell, number, len(todo))
    return todo
