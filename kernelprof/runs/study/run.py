"""``kernelprof study``: the study's cells run into the study's store by the local executor
(one at a time, here) or the Ray one (:mod:`kernelprof.runs.study.ray_executor`), then the study
made from the store alone, over its seeds and seed by seed (so ``--from DIR`` shows exactly
what a finished run shows).

Before any cell runs, every dataset of the study is located (a missing one is one line); each
finished cell prints one line (its key, its accuracy or why it failed, its time, and the time
the rest should take at the pace so far)."""

from __future__ import annotations

import datetime
import subprocess
import sys
import time
from pathlib import Path

from kernelprof.requests.options import RequestError
from kernelprof.results import analysis, seeds
from kernelprof.results.store import Store
from kernelprof.results.study import CellKey, CellRecord, SeedsStudy, StudyDocument
from kernelprof.runs.study.cells import cell_keys, device_label, run_cell, run_local


def commit() -> str:
    """The checkout's commit, "(with uncommitted changes)" where it has them."""
    here = Path(__file__).parent
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=here, check=False)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=here,
                               check=False).stdout.strip()  # fmt: skip
    except OSError:
        return "unknown"
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def keys_of(request) -> list[CellKey]:
    return cell_keys(request.study_preset, frameworks=request.frameworks_by_mode(),
                     settings=request.neuron_settings, seeds=request.seeds,
                     neurons=request.neurons,
                     device=device_label(request.device, _threads(request)))  # fmt: skip


def _threads(request) -> int | None:
    """The threads a CPU cell trains with: the Ray executor's CPUs a cell, else torch's."""
    if request.executor != "ray" or request.device != "cpu":
        return None
    from kernelprof.requests.study import cell_cpus

    return request.cpus_per_cell or cell_cpus()


def preflight(request) -> None:
    """Before any cell runs: each dataset is there, and a Ray given by address answers."""
    if request.executor == "ray" and request.address is not None:
        from kernelprof.runs.study.ray_executor import check_address

        check_address(request.address)
    from kernelprof.runs.e2e.data import locate_dataset
    from kernelprof.runs.e2e.sources import DatasetUnavailable

    for dataset in request.study_preset.datasets:
        try:
            locate_dataset(dataset, request.data_dir)
        except DatasetUnavailable as error:
            raise RequestError(f"--datasets: {error}") from None


def run_study(request, say=print, live=None) -> tuple[Found, bool]:
    """Runs the cells the store lacks; returns the study as the store has it then
    (:func:`documents_of`) and whether the run was interrupted. ``say``: a line per finished
    cell; ``live``: the study's summary line, each time it changes (a terminal's status)."""
    store = Store(request.out)
    keys = keys_of(request)
    label = commit()
    done, problems = store.read()
    todo = store.missing(keys, retry_failed=request.retry_failed, done=done)
    preset = request.study_preset
    say(f"study {preset.name}: {len(keys)} cells, {len(keys) - len(todo)} already in "
        f"{store.cells}, {len(todo)} to run")  # fmt: skip
    say(f"sizes: {preset.sizes}")
    tally = Tally(len(todo), say, live or (lambda text: None))

    def run(key: CellKey) -> CellRecord:
        tally.start(key)
        return run_cell(key, preset, run_device=request.device, data_dir=request.data_dir,
                        commit=label)  # fmt: skip

    interrupted = False
    try:
        if request.executor == "ray":
            from kernelprof.runs.study.ray_executor import run_ray

            run_ray(keys, store, preset=preset, run_device=request.device,
                    data_dir=request.data_dir, commit=label, address=request.address,
                    cpus=request.cpus_per_cell, retry_failed=request.retry_failed,
                    progress=tally.finish, starting=tally.start, say=say,
                    done=done)  # fmt: skip
        else:
            run_local(keys, store, run, retry_failed=request.retry_failed,
                      progress=tally.finish, done=done)  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: every finished cell is kept; run the same command again to go on")
    summary, documents, more = documents_of(store, preset, keys, tally.elapsed())
    return (summary, documents, problems + more), interrupted


class Tally:
    """The run's count as cells start and end: a line per finished cell (its outcome, its
    time, the time the rest should take at the pace so far), and the live summary."""

    def __init__(self, total: int, say, live) -> None:
        self.total, self.say, self.live = total, say, live
        self.began = time.perf_counter()
        self.finished = self.failed = 0
        self.running: dict[CellKey, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def start(self, key: CellKey) -> None:
        self.running[key] = time.time()
        self._show()

    def finish(self, cell: CellRecord, number: int, total: int) -> None:
        self.running.pop(cell.key, None)
        self.finished, self.failed = number, self.failed + (cell.status == "failed")
        self.say(f"[{number}/{total}] {cell.key.name}: {_outcome(cell)}, {cell.wall_s:.1f} s; "
                 f"{_minutes(self._left())} to go")  # fmt: skip
        self._show()

    def _left(self) -> float:
        return self.elapsed() / max(self.finished, 1) * (self.total - self.finished)

    def _show(self) -> None:
        text = f"study: {self.finished} of {self.total} cells run ({self.failed} failed)"
        if self.running:
            key, since = next(iter(self.running.items()))
            more = f" and {len(self.running) - 1} more" if len(self.running) > 1 else ""
            clock = time.strftime("%H:%M:%S", time.localtime(since))
            text += f"; running {key.name} since {clock}{more}"
        if self.finished:
            text += f"; {_minutes(self._left())} to go"
        self.live(text)


Studies = dict[int, StudyDocument]  # by seed
Found = tuple[SeedsStudy, Studies, list[str]]


def documents_of(store: Store, preset, keys: list[CellKey] | None = None,
                 wall_s: float | None = None) -> Found:  # fmt: skip
    """The study from the store alone: over its seeds (:func:`kernelprof.results.seeds.
    summarize`), its documents seed by seed (in ``keys``' order where given), and a line for
    each file that did not read and each cell that failed."""
    found, problems = store.read()
    order = {key: number for number, key in enumerate(keys or ())}
    # in the run's order: the keys' where given, else the order the cells ran in
    cells = sorted(found.values(), key=lambda cell: (order.get(cell.key, len(order)),
                                                     cell.started, cell.key.name))  # fmt: skip
    failed = [f"{cell.key.name}: failed ({cell.reason}) after {cell.attempts} attempt(s)"
              for cell in cells if cell.status == "failed"]  # fmt: skip
    studies = {}
    preset = next((cell.preset for cell in cells if cell.preset is not None), preset)
    for seed, (direct, conversion) in analysis.seed_documents(cells).items():
        first = (direct or conversion)[0]
        mine = [cell for cell in cells if cell.key.seed == seed]
        studies[seed] = StudyDocument(
            environment=first.environment, preset=preset,
            device=mine[0].key.device.split(":")[0],
            device_name=first.environment.device.name, commit=mine[0].commit,
            date=datetime.date.fromtimestamp(min(c.started for c in mine)).isoformat(),
            wall_s=wall_s if wall_s is not None else sum(c.wall_s for c in mine),
            direct=direct, conversion=conversion,
            claims=analysis.check_claims(direct, conversion))  # fmt: skip
    return seeds.summarize(cells, preset), studies, problems + failed


def _outcome(cell: CellRecord) -> str:
    if cell.status == "failed":
        return f"failed ({cell.reason})"
    document = cell.direct or cell.conversion
    (row,) = document.rows
    if row.status != "ok":
        return f"{row.status} ({row.reason})"
    figures = row.training if cell.direct is not None else row.conversion
    return f"{100 * figures.test_accuracy:.1f} %"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
