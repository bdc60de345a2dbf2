"""A study stopped half-way, by SIGTERM and then by SIGKILL of its parent, and run again: only
the missing cells run (their start times say so), every finished cell stays, no process of a
killed run is left behind, and the tables are those of a study never stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from kernelprof.results.store import Store
from tests.study_helpers import (
    TINY,
    accuracies,
    gone_within,
    launch,
    tables,
    wait_for_cells,
    wait_for_worker,
)


def test_killed_by_sigterm_then_sigkill_it_goes_on_with_only_the_missing_cells(
    tmp_path, tiny_study
):
    folder = tmp_path / "study"
    first = launch(folder)
    wait_for_cells(folder, 1, first)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 130, err[-3000:]
    assert "interrupted: every finished cell is kept" in err
    kept = Store(folder).read()[0]
    assert 1 <= len(kept) < 3 and all(cell.status == "done" for cell in kept.values())

    second = launch(folder)
    if len(kept) == 1:  # one cell more, then killed while it trains the last
        wait_for_cells(folder, 2, second)
    children = wait_for_worker(second)
    killed_at = time.time()
    second.kill()  # SIGKILL: nothing of the parent runs after it
    second.communicate(timeout=60)
    assert children and not gone_within(children, 10), "a killed study's worker lived on"
    after_kill = Store(folder).read()[0]
    assert {k: after_kill[k].started for k in kept} == {k: c.started for k, c in kept.items()}

    third = subprocess.run([sys.executable, "-m", "kernelprof.cli", "study", *TINY, "--seeds",
                            "3", "--out", str(folder)], capture_output=True, text=True,
                           timeout=900)  # fmt: skip
    assert third.returncode == 0, third.stderr[-3000:]
    missing = 3 - len(after_kill)
    assert f"3 cells, {len(after_kill)} already in" in third.stderr
    assert f"{missing} to run" in third.stderr
    final = Store(folder).read()[0]
    assert len(final) == 3 and all(cell.status == "done" for cell in final.values())
    assert all(final[k].started == c.started for k, c in after_kill.items())  # none ran again
    new = [cell for key, cell in final.items() if key not in after_kill]
    assert len(new) == missing and all(cell.started > killed_at for cell in new)
    assert all(cell.attempts == 1 for cell in final.values())
    # the same cells as a study never stopped: the same accuracy seed by seed, same tables
    never_stopped, _, again, _ = tiny_study
    assert accuracies(folder) == accuracies(never_stopped)
    shown = subprocess.run([sys.executable, "-m", "kernelprof.cli", "study", "--from",
                            str(folder)], capture_output=True, text=True)  # fmt: skip
    assert tables(shown.stdout) == tables(third.stdout)
    assert len(tables(shown.stdout)) == len(tables(again.stdout))
