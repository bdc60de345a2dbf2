"""`kernelprof check`: verdicts, isolation of crashing and hanging implementations, exit codes."""

from __future__ import annotations

import sys

import pytest

from kernelprof.results import files
from tests.cli_runner import run_kernelprof


def kernelprof_check(*args: str, extra_impls: bool = False):
    return run_kernelprof("check", *args, planted=extra_impls)


@pytest.fixture(scope="module")
def planted_run():
    done = kernelprof_check(
        "--neuron", "lif", "--T", "8", "--N", "2000", "--device", "cpu", "--format", "json",
        "--timeout", "20",
        "--impls", "ref-torch,planted-wrong,planted-approximate,planted-crash,planted-hang,"
        "planted-missing,planted-timed-tail,planted-approximate-too-far,planted-nan",
        extra_impls=True,
    )  # fmt: skip
    document = files.loads(done.stdout)
    assert document.kernelprof == "check"
    return done, {row.impl: row for row in document.rows}


def test_a_wrong_implementation_is_wrong_and_fails_the_run(planted_run):
    done, rows = planted_run
    assert rows["planted-wrong"].verdict == "WRONG"
    assert rows["planted-wrong"].oracle.spike_mismatches > 0
    assert done.returncode == 1


def test_declared_approximations_make_it_approximate(planted_run):
    _, rows = planted_run
    assert rows["planted-approximate"].verdict == "approximate"
    assert "rounded up by 5 %" in rows["planted-approximate"].reason


def test_crash_and_hang_become_error_rows_and_the_others_complete(planted_run):
    _, rows = planted_run
    assert rows["planted-crash"].verdict == "error"
    assert "SIGABRT" in rows["planted-crash"].reason
    assert rows["planted-hang"].verdict == "error"
    assert "timed out after 20 s" in rows["planted-hang"].reason
    assert rows["ref-torch"].verdict == "exact"


def test_an_approximation_beyond_its_declared_bound_is_wrong(planted_run):
    _, rows = planted_run
    row = rows["planted-approximate-too-far"]
    assert row.verdict == "WRONG"
    assert "beyond the declared approximations' bounds: spike mismatch" in row.reason
    assert "rounded up by 5 %" in row.reason  # what was declared, beside what was measured


def test_nan_anywhere_is_wrong_whatever_is_declared(planted_run):
    _, rows = planted_run
    row = rows["planted-nan"]
    assert row.verdict == "WRONG" and row.oracle.spike_mismatches == 0
    assert "NaN or Inf in dX (1 values)" in row.reason and row.oracle.non_finite


def test_a_timed_build_that_disagrees_with_its_checking_build_is_an_error(planted_run):
    _, rows = planted_run
    row = rows["planted-timed-tail"]
    assert row.checking_verdict == "exact" and row.verdict == "error"
    assert row.reason.startswith("timed build disagrees with the checking build")
    assert not row.timed_build.agrees
    assert rows["ref-torch"].timed_build.agrees


def test_missing_package_is_unavailable_with_the_reason(planted_run):
    _, rows = planted_run
    assert rows["planted-missing"].verdict == "unavailable"
    assert rows["planted-missing"].reason == "kernelprof-no-such-package is not installed"


def test_other_interpreter_is_used_when_asked(tmp_path):
    # A wrapper "interpreter" that records it ran, then runs this Python.
    marker = tmp_path / "ran"
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    done = kernelprof_check(
        "--impls", "ref-torch", "--N", "500", "--device", "cpu", "--format", "json",
        "--python", f"ref-torch={wrapper}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (row,) = files.loads(done.stdout).rows
    assert row.verdict == "exact" and row.python == str(wrapper)
    assert marker.exists()


def test_unknown_implementation_is_a_usage_error():
    done = kernelprof_check("--impls", "ref-torch,brian2")
    assert done.returncode == 2 and "brian2" in done.stderr and "ref-torch" in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_reports_finished_rows_and_leaves_no_worker(tmp_path):
    """`timeout` sends SIGTERM: the finished rows are written and the hanging worker is ended."""
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "partial.json"
    env = {**os.environ, "KERNELPROF_EXTRA_FRAMEWORKS": "tests.planted_impls"}
    process = subprocess.Popen(
        [sys.executable, "-m", "kernelprof.cli", "check", "--impls", "ref-torch,planted-hang",
         "--N", "500", "--device", "cpu", "--format", "json", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen: set[str] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(seen) < 2:  # the second worker is planted-hang
        seen.update(_workers(process.pid))
        time.sleep(0.2)
    assert len(seen) == 2, seen
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 130
    document = files.load(out)
    assert document.interrupted
    assert [row.impl for row in document.rows] == ["ref-torch"]
    assert document.rows[0].verdict == "exact"
    time.sleep(1)
    assert not _workers(process.pid)


def _workers(parent: int) -> set[str]:
    """PIDs of the live kernelprof workers started by ``parent``."""
    import subprocess

    listing = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True)
    return {
        fields[0]
        for fields in (line.split(None, 2) for line in listing.stdout.splitlines()[1:])
        if len(fields) == 3
        and fields[1] == str(parent)
        and "kernelprof.harness.worker" in fields[2]
    }
