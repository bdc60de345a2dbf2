"""`kernelprof study --executor ray` on a local Ray of this machine's CPUs: the same cells as
the local executor (same accuracy seed by seed), a Ray worker killed during a cell has that
cell retried and nothing else lost, and a study killed with SIGKILL leaves no Ray process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kernelprof.results.store import Store
from tests.study_helpers import (
    TINY,
    accuracies,
    descendants,
    gone_within,
    launch,
    processes,
    wait_for_cells,
)

pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'kernelprof[ray]')")

CELL_TITLE = "ray::kernelprof-cell"  # a Ray worker's process title while it runs a cell


def running_cell(timeout_s: float = 300) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [pid for pid, (_, command) in processes().items()
                 if command.startswith(CELL_TITLE)]  # fmt: skip
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {CELL_TITLE} process within {timeout_s} s")


def test_ray_retries_a_killed_worker_and_ends_whole_when_killed(tmp_path, tiny_study):
    folder = tmp_path / "study"
    study = launch(folder, "--executor", "ray")
    worker = running_cell()
    time.sleep(2)  # into the cell's training
    os.kill(worker, signal.SIGKILL)
    wait_for_cells(folder, 2, study)
    ray_processes = descendants(study.pid)
    study.kill()  # SIGKILL of the study itself, a cell running: Ray's every process ends
    _, err = study.communicate(timeout=60)
    assert ray_processes and not gone_within(ray_processes, 15), "Ray outlived its study"
    cells = Store(folder).read()[0]
    assert len(cells) == 2 and all(cell.status == "done" for cell in cells.values())
    assert sorted(c.attempts for c in cells.values()) == [1, 2], err  # the killed one retried
    assert "Ray at 127.0.0.1:" in err and "(started here)" in err
    (line,) = [line for line in err.splitlines() if line.startswith("[retry]")]
    assert "seed 0" in line and "Error" in line and "submitted once more" in line, line

    # the third cell by the local executor, into the same store
    done = subprocess.run([sys.executable, "-m", "kernelprof.cli", "study", *TINY, "--seeds",
                           "3", "--out", str(folder)], capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert done.returncode == 0 and "2 already in" in done.stderr, done.stderr[-3000:]
    never_stopped, _, _, _ = tiny_study
    assert accuracies(folder) == accuracies(never_stopped)  # the same cells as the local ones
