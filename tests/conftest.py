"""Test set-up: Triton runs under its interpreter where there is no CUDA device.

TRITON_INTERPRET must be set before Triton kernels are defined, so it is set here, before any
test module imports reference_kernels. On a CUDA machine the real compiler is used instead.
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

THRESHOLD_TIES: list[tuple[str, int, int]] = []  # (test id, neurons diverged at ties, spikes)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not THRESHOLD_TIES:
        return
    ties = sum(t for _, t, _ in THRESHOLD_TIES)
    spikes = sum(s for _, _, s in THRESHOLD_TIES)
    cases = sum(1 for _, t, _ in THRESHOLD_TIES if t)
    terminalreporter.write_line(
        f"oracle comparisons: {len(THRESHOLD_TIES)} cases, {spikes:,} spike values; "
        f"{ties} neurons diverged at exact threshold ties (in {cases} cases), none elsewhere"
    )


@pytest.fixture(scope="session", autouse=True)
def scratch_in_pytest_basetemp(tmp_path_factory):
    """Temporary files of the tests and of the commands they start (profile's default trace
    folder, 18 MB a run, among them) go under pytest's own base folder, which pytest prunes to
    its last three runs, instead of piling up in the system's /tmp run after run."""
    scratch = tmp_path_factory.mktemp("scratch", numbered=False)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = None  # recomputed from TMPDIR on next use
    yield scratch
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
    tempfile.tempdir = None


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """The tiny study of tests/study_helpers.py run to two seeds, then again to three, never
    stopped: (its folder, the first run, the second run)."""
    from tests.cli_runner import run_kernelprof
    from tests.study_helpers import TINY

    folder = tmp_path_factory.mktemp("study")
    first = run_kernelprof("study", *TINY, "--seeds", "2", "--out", str(folder))
    assert first.returncode == 0, first.stderr[-3000:]
    before = {key: cell.started for key, cell in _cells(folder).items()}
    again = run_kernelprof("study", *TINY, "--seeds", "3", "--out", str(folder))
    return folder, first, again, before


def _cells(folder):
    from kernelprof.results.store import Store

    return Store(folder).read()[0]
