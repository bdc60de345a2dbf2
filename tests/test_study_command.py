"""`kernelprof study`: cells trained into the study's folder, each written as it ends; run
again, only what is missing runs; `--from` shows the same tables from the folder alone."""

from __future__ import annotations

import pytest

from kernelprof.results.store import Store
from tests.cli_runner import run_in_process, run_kernelprof
from tests.study_helpers import tables


@pytest.fixture
def study(tiny_study):
    folder, first, _, _ = tiny_study
    return folder, first


def test_every_cell_is_trained_written_and_shown_seed_by_seed(study):
    folder, first = study
    assert first.returncode == 0, first.stderr[-3000:]
    found, problems = Store(folder).read()
    assert problems == [] and sorted(key.seed for key in found) == [0, 1, 2]  # run again: 3
    assert all(cell.status == "done" and cell.preset.epochs == 1 for cell in found.values())
    assert "## Seed 0" in first.stdout and "## Seed 1" in first.stdout
    assert "## Over 2 seed(s)" in first.stdout and "(2×1)" in first.stdout  # seeds × epochs
    assert "[1/2] reference digits fc direct canonical lif seed 0" in first.stderr
    assert "[2/2]" in first.stderr and "to go" in first.stderr


def test_run_again_it_runs_nothing_already_there_and_shows_the_same_tables(tiny_study):
    folder, _, again, before = tiny_study
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 cells, 2 already in" in again.stderr and "1 to run" in again.stderr
    after = Store(folder).read()[0]
    assert {key: after[key].started for key in before} == before  # not one of them ran again
    assert sorted(key.seed for key in after) == [0, 1, 2]
    shown = run_kernelprof("study", "--from", str(folder))
    assert shown.returncode == 0, shown.stderr
    assert tables(shown.stdout) == tables(again.stdout) and "## Seed 2" in shown.stdout
    assert (folder / "study.md").read_text().strip() == again.stdout.strip()
    page = (folder / "study.html").read_text()
    assert "The study over 3 seed(s)" in page and "(3×1)" in page


@pytest.mark.parametrize("args, says", [
    ((), "give --out DIR"),
    (("--from", "/nonexistent"), "holds no study"),
    (("--out", "x", "--datasets", "imagenet"), "--datasets: unknown 'imagenet'"),
    (("--out", "x", "--seeds", "0"), "--seeds: must be >= 1"),
    (("--out", "x", "--frameworks", "nosuch"), "--frameworks: none of nosuch runs"),
    (("--out", "x", "--neurons", "izhikevich"), "--neurons: unknown 'izhikevich'"),
    (("--out", "x", "--address", "10.0.0.1:6379"), "go with --executor ray"),
    (("--out", "x", "--executor", "slurm"), "--executor: unknown 'slurm'"),
    (("--out", "x", "--executor", "ray", "--cpus-per-cell", "4096"), "more than this machine"),
    (("--out", "x", "--executor", "ray", "--address", "127.0.0.1:1"), "no Ray answers at"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_in_process("study", *args)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_ray_the_ray_executor_is_unavailable_before_anything_runs(tmp_path, monkeypatch):
    import importlib.util

    from kernelprof.requests.options import RequestError
    from kernelprof.requests.study import StudyRequest

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))  # fmt: skip
    with pytest.raises(RequestError, match="--executor ray: unavailable: Ray is not installed"):
        StudyRequest(out=tmp_path / "s", executor="ray")
    assert not (tmp_path / "s").exists()
