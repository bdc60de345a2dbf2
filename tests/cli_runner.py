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
