"""Runs the kernelprof command line as a user would, in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys


def run_kernelprof(*args: str, planted: bool = False) -> subprocess.CompletedProcess:
    """``python -m kernelprof.cli ARGS``; with ``planted``, the planted implementations of
    tests/planted_impls.py are registered too."""
    env = dict(os.environ)
    if planted:
        env["KERNELPROF_EXTRA_FRAMEWORKS"] = "tests.planted_impls"
    return subprocess.run(
        [sys.executable, "-m", "kernelprof.cli", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def run_in_process(*args: str, planted: bool = False) -> subprocess.CompletedProcess:
    """``kernelprof.cli.main(ARGS)`` in this process, with what run_kernelprof gives (exit
    code, stdout, stderr): for refusals that happen before anything runs, without paying a
    fresh interpreter's torch import each time. SIGTERM's handler is put back after."""
    import contextlib
    import io
    import signal

    from kernelprof.cli import main

    if planted:
        raise ValueError("planted implementations register in a fresh process: run_kernelprof")
    out, err = io.StringIO(), io.StringIO()
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as done:  # argparse's refusals
                code = done.code if isinstance(done.code, int) else 1
    finally:
        signal.signal(signal.SIGTERM, handler)
    return subprocess.CompletedProcess(["kernelprof", *args], code, out.getvalue(),
                                       err.getvalue())  # fmt: skip
