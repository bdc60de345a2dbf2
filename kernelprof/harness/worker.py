"""Runs one task (one implementation) in its own process, so a crash, hang or out-of-memory in
one framework becomes that row's error while the others still report.

A task is a JSON object naming the function to run, ``"function": "package.module:name"``
(e.g. ``kernelprof.runs.compare:measure_implementation``), which gets the whole task and
returns a JSON-able result. The worker imports that module by name and nothing else of
kernelprof: it knows no run, framework or report. The parent sends the task as one line on
stdin and reads one result line, marked with :data:`RESULT_MARK`, from stdout (frameworks may
print their own lines there). A task can run under another Python interpreter (``python=``),
e.g. a Python 3.10 environment for lava-dl: it only needs torch and the framework there;
kernelprof itself is found through PYTHONPATH.

A function may instead return a :class:`Session`: its first result, and a handler that the
worker then serves further messages with (one JSON line each, one result line back) until the
parent says ``{"command": "exit"}``. :class:`WorkerSession` is the parent's side: it keeps the
worker (its framework imported, its inputs built) alive between requests, which is how compare
measures every implementation in several interleaved rounds without starting it again.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULT_MARK = "@@kernelprof-result@@"
PROGRESS_MARK = "@@kernelprof-progress@@"  # a task's progress line, for the parent's callback
PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXIT = {"command": "exit"}


_reporting = False  # set in a worker: report_progress() writes lines only there


def report_progress(**fields: Any) -> None:
    """From a task function: one progress line (JSON-able fields, e.g. steps done and total)
    for the parent's ``on_progress``; nothing outside a worker (a task run in-process)."""
    if _reporting:
        sys.stdout.write(f"\n{PROGRESS_MARK}{json.dumps(fields, default=str)}\n")
        sys.stdout.flush()


class Session:
    """What a task function returns to keep its worker alive for further messages."""

    def __init__(self, result: dict[str, Any], handle: Callable[[dict], dict[str, Any]]):
        self.result = result
        self.handle = handle


class WorkerSession:
    """The parent's side of one worker process: the task's first result, further requests,
    and an end. Never raises for what happens inside the worker: a crash, a hang (the timeout)
    or a missing result becomes ``{"status": "error", "reason": ...}``."""

    def __init__(self, task: dict[str, Any], *, python: str | None = None,
                 timeout_s: float = 300.0, wait: bool = True,
                 on_progress: Callable[[dict], None] | None = None) -> None:  # fmt: skip
        """Starts the worker and sends it ``task``; waits for the first result unless
        ``wait=False`` (then :meth:`receive_first` does, so that several can work at once).
        ``on_progress`` gets each :func:`report_progress` of the worker while it waits."""
        self.first: dict[str, Any] | None = None
        self.on_progress = on_progress
        self.process: subprocess.Popen | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: collections.deque[str] = collections.deque(maxlen=50)
        command = [python or sys.executable, "-m", "kernelprof.harness.worker"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])
        )
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                start_new_session=True,  # so a timeout can end the worker and all it started
            )
        except OSError as error:
            self.first = _error(f"cannot start {command[0]}: {error}")
            return
        pumps = ((self.process.stdout, self.lines.put, lambda: self.lines.put(None)),
                 (self.process.stderr, self.stderr.append, None))  # fmt: skip
        for stream, sink, end in pumps:
            threading.Thread(target=_pump, args=(stream, sink, end), daemon=True).start()
        sent = self._write(task)
        if sent is not None:
            self.first = sent
        elif wait:
            self.first = self._receive(timeout_s)

    def receive_first(self, timeout_s: float = 300.0) -> dict[str, Any]:
        """The task's result (started with ``wait=False``)."""
        if self.first is None:
            self.first = self._receive(timeout_s)
        return self.first

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, message: dict[str, Any], timeout_s: float = 300.0) -> dict[str, Any]:
        """One more message to a worker serving a Session; its result."""
        if not self.alive:
            return _error(self._death() if self.process else "the worker never started")
        return self._send(message, timeout_s)

    def close(self) -> None:
        """Asks a serving worker to exit, and makes sure it is gone."""
        if self.process is None:
            return
        if self.alive:
            with contextlib.suppress(OSError, ValueError):
                self.process.stdin.write(json.dumps(EXIT) + "\n")
                self.process.stdin.flush()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        _kill(self.process)

    def _send(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        return self._write(message) or self._receive(timeout_s)

    def _write(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Sends one message; an error result if the worker is gone, else None."""
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):  # the worker is gone
            return _error(self._death())
        return None

    def _receive(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    _kill(self.process)
                    return _error(f"timed out after {timeout_s:g} s (worker killed)")
                if line is None:  # stdout closed: the worker ended without a result
                    return _error(self._death())
                if line.startswith(RESULT_MARK):
                    return json.loads(line[len(RESULT_MARK) :])
                if line.startswith(PROGRESS_MARK) and self.on_progress is not None:
                    self.on_progress(json.loads(line[len(PROGRESS_MARK) :]))
        except BaseException:  # Ctrl-C or SIGTERM in the parent: the worker must not outlive it
            _kill(self.process)
            raise

    def _death(self) -> str:
        returncode = self.process.wait()
        time.sleep(0.05)  # let the stderr pump catch the last lines
        return _death(returncode, "\n".join(self.stderr))


def _pump(stream, sink: Callable[[str], None], end: Callable[[], None] | None) -> None:
    """Moves a worker's output lines to ``sink`` as they come; ``end`` when it closes."""
    for line in stream:
        sink(line.rstrip("\n"))
    if end is not None:
        end()


def run_task(
    task: dict[str, Any],
    *,
    python: str | None = None,
    timeout_s: float = 300.0,
    on_progress: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Runs ``task`` in a fresh worker process and returns its result dict; never raises for
    what happens inside the worker (its failure becomes ``{"status": "error", ...}``)."""
    session = WorkerSession(task, python=python, timeout_s=timeout_s, on_progress=on_progress)
    session.close()
    return session.first


def _kill(process: subprocess.Popen) -> None:
    """Ends the worker and everything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(OSError, ValueError):
        process.stdin.close()
    process.wait()


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


def _emit(result: dict[str, Any]) -> None:
    sys.stdout.write(f"\n{RESULT_MARK}{json.dumps(result, default=str)}\n")
    sys.stdout.flush()


def _call(function: Callable, argument: dict[str, Any]):
    try:
        return function(argument)
    except Exception as error:  # noqa: BLE001 - becomes this row's error, with its traceback
        traceback.print_exc()
        return _error(f"{type(error).__name__}: {error}".strip().splitlines()[0])


def die_with_parent(every_s: float = 0.5, end: Callable[[], None] | None = None) -> None:
    """Ends this process when its parent is gone (killed, SIGKILL included): nothing would read
    its result, and it would go on taking the machine from the next run (a study run again
    after its parent was killed). A daemon thread watches the parent's pid, which becomes
    another process's (init's) when the parent dies; then it calls ``end`` (default: exit at
    once). Not the kernel's PR_SET_PDEATHSIG: that fires when the *thread* that started the
    process ends, which a parent may do long before it is done with it."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if os.getppid() != parent:
                (end or (lambda: os._exit(1)))()
                os._exit(1)

    threading.Thread(target=watch, name="kernelprof-parent-watch", daemon=True).start()


def _main() -> int:
    die_with_parent()
    task = json.loads(sys.stdin.readline())
    # run with -m, this file is __main__: task functions see the importable module (its
    # report_progress, its Session)
    importable = importlib.import_module("kernelprof.harness.worker")
    importable._reporting = True
    outcome = _call(lambda t: resolve(t.get("function", ""))(t), task)
    sessions = (Session, importable.Session)
    if not isinstance(outcome, sessions):
        _emit(outcome)
        return 0
    _emit(outcome.result)
    for line in sys.stdin:
        message = json.loads(line)
        if message == EXIT:
            break
        _emit(_call(outcome.handle, message))
    return 0


if __name__ == "__main__":
    sys.exit(_main())


def interpreter_problem(python: str, timeout_s: float = 120.0) -> str | None:
    """Why ``python`` cannot run a worker (missing, not executable, cannot import torch), or
    None: checked before a run starts, rather than as an error row per case."""
    path = Path(python)
    if not path.exists():
        return f"{python} does not exist"
    if not os.access(path, os.X_OK) or path.is_dir():
        return f"{python} is not an executable file"
    probe = "import sys, torch; print(sys.version.split()[0], torch.__version__)"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True,
                              timeout=timeout_s)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{python} does not run ({type(error).__name__}: {error})"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit code {done.returncode}"
        return f"{python} cannot run a worker: {last}"
    return None
