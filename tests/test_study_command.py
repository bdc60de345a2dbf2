"""`kernelprof study`: cells trained into the study's folder, each written as it ends; run
again, only what is missing runs; `--from` shows the same tables from the folder alone."""

from __future__ import annotations

import pytest

from kernelprof.results.store import Store
from tests.cli_runner import run_kernelprof

TINY = ("--frameworks", "reference", "--models", "fc", "--modes", "direct",
        "--neuron-settings", "canonical", "--epochs", "1", "--limit-train", "256")  # fmt: skip


def tables(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    first = run_kernelprof("study", *TINY, "--seeds", "2", "--out", str(folder))
    return folder, first


def test_every_cell_is_trained_written_and_shown_seed_by_seed(study):
    folder, first = study
    assert first.returncode == 0, first.stderr[-3000:]
    found, problems = Store(folder).read()
    assert problems == [] and sorted(key.seed for key in found) == [0, 1]
    assert all(cell.status == "done" and cell.preset.epochs == 1 for cell in found.values())
    assert "## Seed 0" in first.stdout and "## Seed 1" in first.stdout
    assert "## Over 2 seed(s)" in first.stdout and "(2×1)" in first.stdout  # seeds × epochs
    assert "[1/2] reference digits fc direct canonical lif seed 0" in first.stderr
    assert "[2/2]" in first.stderr and "to go" in first.stderr
    assert (folder / "study.md").read_text().strip() == first.stdout.strip()


def test_run_again_it_runs_nothing_already_there_and_shows_the_same_tables(study):
    folder, first = study
    before = {key: cell.started for key, cell in Store(folder).read()[0].items()}
    again = run_kernelprof("study", *TINY, "--seeds", "3", "--out", str(folder))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 cells, 2 already in" in again.stderr and "1 to run" in again.stderr
    after = Store(folder).read()[0]
    assert {key: after[key].started for key in before} == before  # not one of them ran again
    assert sorted(key.seed for key in after) == [0, 1, 2]
    shown = run_kernelprof("study", "--from", str(folder))
    assert shown.returncode == 0, shown.stderr
    assert tables(shown.stdout) == tables(again.stdout) and "## Seed 2" in shown.stdout


@pytest.mark.parametrize("args, says", [
    ((), "give --out DIR"),
    (("--from", "/nonexistent"), "holds no study"),
    (("--out", "x", "--datasets", "imagenet"), "--datasets: unknown 'imagenet'"),
    (("--out", "x", "--seeds", "0"), "--seeds: must be >= 1"),
    (("--out", "x", "--frameworks", "nosuch"), "--frameworks: none of nosuch runs"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_kernelprof("study", *args)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
