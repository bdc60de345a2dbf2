"""A study's store: a finished cell is on disk at once, whole, and a second run sees which
cells are still to run; what does not read is said in one line and its cell runs again."""

from __future__ import annotations

import json
import os

import pytest

from kernelprof.results.store import Store
from kernelprof.results.study import CellKey, CellRecord


def key(framework: str = "spikingjelly", seed: int = 0, device: str = "cpu") -> CellKey:
    return CellKey(framework=framework, dataset="digits", model="cnn", mode="direct",
                   setting="canonical", seed=seed, device=device)  # fmt: skip


def test_a_cell_written_reads_back_equal(tmp_path):
    store = Store(tmp_path)
    cell = CellRecord(key=key(), status="failed", reason="worker killed (SIGKILL)",
                      started=1.5, wall_s=2.0, commit="abc")  # fmt: skip
    path = store.write(cell)
    assert path.parent == tmp_path / "cells" and path.name.endswith(".json")
    found, problems = store.read()
    assert found == {cell.key: cell} and problems == []
    assert not list((tmp_path / "cells").glob(".*.tmp"))  # nothing left half-written


def test_only_missing_cells_and_failed_ones_when_asked_are_to_run(tmp_path):
    store = Store(tmp_path)
    keys = [key(seed=seed) for seed in range(4)]
    store.write(CellRecord(key=keys[0], status="done"))
    store.write(CellRecord(key=keys[2], status="failed", reason="out of memory"))
    assert store.missing(keys) == [keys[1], keys[3]]
    assert store.missing(keys, retry_failed=True) == [keys[1], keys[2], keys[3]]


def test_seeds_and_devices_are_distinct_cells(tmp_path):
    store = Store(tmp_path)
    names = {store.path(k).name for k in (key(), key(seed=1), key(device="cuda: NVIDIA H100"))}
    assert len(names) == 3
    assert all(
        set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")
        for name in names
    )


def test_a_rewritten_cell_replaces_the_old_one_whole(tmp_path):
    store = Store(tmp_path)
    store.write(CellRecord(key=key(), status="failed", reason="crash"))
    store.write(CellRecord(key=key(), status="done", attempts=2))
    found, _ = store.read()
    assert found[key()].status == "done" and found[key()].attempts == 2
    assert len(list((tmp_path / "cells").iterdir())) == 1


@pytest.mark.parametrize("text, says", [
    ("{not json", "not a study cell"),
    (json.dumps({"kernelprof": "study-cell", "status": "done"}), "not a study cell"),
])  # fmt: skip
def test_a_damaged_cell_is_said_in_one_line_and_runs_again(tmp_path, text, says):
    store = Store(tmp_path)
    store.write(CellRecord(key=key(), status="done"))
    damaged = store.path(key(seed=1))
    damaged.write_text(text)
    found, problems = store.read()
    assert list(found) == [key()]
    assert len(problems) == 1 and says in problems[0] and "\n" not in problems[0]
    assert store.missing([key(), key(seed=1)], done=found) == [key(seed=1)]


def test_a_cell_under_another_cells_name_is_left_out(tmp_path):
    store = Store(tmp_path)
    path = store.write(CellRecord(key=key(), status="done"))
    os.replace(path, store.path(key(seed=5)))
    found, problems = store.read()
    assert found == {} and "not the cell of its name" in problems[0]
