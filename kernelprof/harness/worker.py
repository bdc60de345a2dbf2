"""Runs one task (one implementation) in its own process, so a crash, hang or out-of-memory in
one framework becomes that row's error while the others still report.

A task is a JSON object naming the function to run, ``"function": "package.module:name"``
(e.g. ``kernelprof.runs.compare:measure_implementation``), which gets the whole task and
returns a JSON-able result. The worker imports that module by name and nothing else of
kernelprof: it knows no run, framework or report. The parent sends the task on stdin and reads
one result line, marked with :data:`RESULT_MARK`, from stdout (frameworks may print their own
lines there). A task can run under another Python interpreter (``python=``), e.g. a Python 3.10
environment for lava-dl: it only needs torch and the framework there; kernelprof itself is
found through PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

RESULT_MARK = "@@kernelprof-result@@"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_task(
    task: dict[str, Any], *, python: str | None = None, timeout_s: float = 300.0
) -> dict[str, Any]:
    """Runs ``task`` in a fresh worker process; always returns a result dict, never raises for
    what happens inside the worker (its failure becomes ``{"status": "error", ...}``)."""
    command = [python or sys.executable, "-m", "kernelprof.harness.worker"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # so a timeout can end the worker and all it started
        )
    except OSError as error:
        return _error(f"cannot start {command[0]}: {error}")
    try:
        stdout, stderr = process.communicate(json.dumps(task), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(process)
        return _error(f"timed out after {timeout_s:g} s (worker killed)")
    except BaseException:  # Ctrl-C or SIGTERM in the parent: the worker must not outlive it
        _kill(process)
        raise
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    return _error(_death(process.returncode, stderr))


def _kill(process: subprocess.Popen) -> None:
    """Ends the worker and everything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _error(reason: str) -> dict[str, Any]:
    return {"status": "error", "reason": reason}


def _death(returncode: int, stderr: str) -> str:
    """One line saying how a worker died without a result."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        cause = f"worker killed by {name}{hint}"
    else:
        cause = f"worker exited with code {returncode} and no result"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"{cause}: {lines[-1].strip()}" if lines else cause


def resolve(function: str):
    """The callable named ``package.module:name``."""
    module_name, sep, name = function.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"task function must be 'package.module:name', got {function!r}")
    target = importlib.import_module(module_name)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"task function {function!r} is not callable")
    return target


def _main() -> int:
    task = json.loads(sys.stdin.read())
    try:
        result = resolve(task.get("function", ""))(task)
    except Exception as error:  # noqa: BLE001 - becomes this row's error, with its traceback
        traceback.print_exc()
        detail = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        result = _error(detail)
    sys.stdout.write(f"\n{RESULT_MARK}{json.dumps(result, default=str)}\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
