"""The study's cells: listed seed by seed, run one at a time by the local executor and written
as each ends, so that a second run runs only what is missing (or failed, when asked)."""

from __future__ import annotations

import pytest

from kernelprof.results.store import Store
from kernelprof.results.study import CellKey, CellRecord, StudyPreset
from kernelprof.runs.study.cells import cell_keys, run_cell, run_local

TINY = StudyPreset(name="tiny", datasets=("digits",), models=("fc",), epochs=1, T=2,
                   conversion_T=4, limit_train=128, limit_test=32)  # fmt: skip
FRAMEWORKS = {"direct": ("reference", "snntorch"), "conversion": ("reference",)}


def keys(seeds: int = 2) -> list[CellKey]:
    return cell_keys(TINY, frameworks=FRAMEWORKS, settings=("canonical", "framework-defaults"),
                     seeds=seeds, device="cpu")  # fmt: skip


def test_every_cell_is_listed_once_seed_by_seed():
    listed = keys()
    assert len(listed) == len(set(listed)) == 2 * (2 * 2 + 1)
    assert [key.seed for key in listed] == [0] * 5 + [1] * 5  # a study cut short: seed 0 whole
    assert {key.setting for key in listed if key.mode == "conversion"} == {""}


def test_the_local_executor_runs_only_what_the_store_lacks(tmp_path):
    store, ran = Store(tmp_path), []

    def run(key: CellKey) -> CellRecord:
        ran.append(key)
        failed = key.framework == "snntorch" and key.setting == "canonical"
        return CellRecord(key=key, status="failed" if failed else "done",
                          reason="worker killed" if failed else "")  # fmt: skip

    listed = keys()
    assert run_local(listed, store, run) == listed and ran == listed
    ran.clear()
    assert run_local(listed, store, run) == [] and ran == []  # everything is there
    failed = [key for key in listed if key.framework == "snntorch" and key.setting == "canonical"]
    assert run_local(listed, store, run, retry_failed=True) == failed
    found, _ = store.read()
    assert {found[key].attempts for key in failed} == {2}


def test_an_interrupted_cell_leaves_the_finished_ones(tmp_path):
    store, listed = Store(tmp_path), keys(seeds=1)

    def run(key: CellKey) -> CellRecord:
        if key == listed[2]:
            raise KeyboardInterrupt
        return CellRecord(key=key, status="done")

    with pytest.raises(KeyboardInterrupt):
        run_local(listed, store, run)
    found, _ = store.read()
    assert sorted(found, key=listed.index) == listed[:2]
    assert store.missing(listed) == listed[2:]


def test_a_cell_trains_its_one_framework_with_its_seed():
    key = CellKey(framework="reference", dataset="digits", model="fc", mode="direct",
                  setting="canonical", seed=3, device="cpu")  # fmt: skip
    cell = run_cell(key, TINY, run_device="cpu", commit="abc")
    assert cell.status == "done", cell.reason
    (row,) = cell.direct.rows
    assert row.framework == "reference" and row.status == "ok", row.reason
    assert cell.direct.task.seed == 3 and cell.direct.task.T == 2
    assert cell.wall_s > 0 and cell.started > 0 and cell.commit == "abc"


def test_the_cells_of_a_column_are_one_document_per_seed_as_one_run_would_write_it():
    import dataclasses

    from kernelprof.results.analysis import attribution, seed_documents
    from tests.documents import conversion_document, e2e_document

    whole, converted = e2e_document(), conversion_document()
    cells = []
    for seed in (0, 1):
        for row in whole.rows:  # each framework a cell of its own, as kernelprof study runs it
            one = dataclasses.replace(whole, rows=(row,), attribution=attribution((row,)))
            cells.append(CellRecord(key=CellKey(framework=row.framework, dataset="digits",
                                                model="cnn", mode="direct", setting="canonical",
                                                seed=seed), status="done", direct=one))  # fmt: skip
        for row in converted.rows:
            one = dataclasses.replace(converted, rows=(row,))
            cells.append(CellRecord(key=CellKey(framework=row.framework, dataset="digits",
                                                model="cnn", mode="conversion", seed=seed),
                                    status="done", conversion=one))  # fmt: skip
    cells.append(CellRecord(key=CellKey(framework="norse", dataset="digits", model="cnn",
                                        mode="direct", setting="canonical", seed=1),
                            status="failed", reason="worker killed"))  # fmt: skip
    merged = seed_documents(cells)
    assert sorted(merged) == [0, 1]
    for seed in (0, 1):
        (direct,), (conversion,) = merged[seed]
        assert direct.rows == whole.rows and conversion.rows == converted.rows
        assert direct.attribution == attribution(whole.rows)  # across all four again
        assert conversion.ann == converted.ann


def test_the_tally_says_each_finished_cell_and_keeps_the_summary_line_current():
    from kernelprof.runs.study.run import Tally

    lines, shown = [], []
    tally = Tally(2, lines.append, shown.append)
    first, second = keys()[:2]
    tally.start(first)
    assert "0 of 2 cells run (0 failed)" in shown[-1] and f"running {first.name} since" in shown[-1]
    tally.finish(CellRecord(key=first, status="failed", reason="killed", wall_s=3.0), 1, 2)
    assert lines[-1].startswith(f"[1/2] {first.name}: failed (killed), 3.0 s;")
    assert lines[-1].endswith("min to go") and "running" not in shown[-1]
    assert "1 of 2 cells run (1 failed)" in shown[-1] and shown[-1].endswith("min to go")
    tally.start(second)
    assert f"running {second.name}" in shown[-1]
