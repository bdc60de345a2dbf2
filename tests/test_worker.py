"""The worker process: one task and its result, or a session serving further requests; a crash,
a hang or a bad request becomes an error result, never an exception in the parent."""

from __future__ import annotations

import os

from kernelprof.harness.worker import Session, WorkerSession, run_task

HERE = "tests.test_worker"


def counting_task(task):
    """Serves requests with a counter that lives in the worker between them."""
    state = {"count": task["start"], "pid": os.getpid()}

    def handle(message):
        if message.get("command") == "crash":
            os._exit(3)
        if message.get("command") == "hang":
            import time

            time.sleep(60)
        if message.get("command") == "raise":
            raise ValueError("bad request")
        state["count"] += message["add"]
        return dict(state)

    return Session(dict(state), handle)


def progressing_task(task):
    from kernelprof.harness.worker import report_progress

    for done in range(1, task["steps"] + 1):
        report_progress(done=done, total=task["steps"])
        print("a framework's own line")  # stdout lines between reports are not progress
    return {"finished": True}


def plain_task(task):
    return {"doubled": 2 * task["value"], "pid": os.getpid()}


def test_plain_task_returns_its_result_from_another_process():
    result = run_task({"function": f"{HERE}:plain_task", "value": 21})
    assert result["doubled"] == 42
    assert result["pid"] != os.getpid()


def test_session_keeps_state_between_requests_in_one_process():
    session = WorkerSession({"function": f"{HERE}:counting_task", "start": 10})
    try:
        assert session.first["count"] == 10
        first = session.request({"add": 1})
        second = session.request({"add": 5})
        assert (first["count"], second["count"]) == (11, 16)
        assert first["pid"] == second["pid"] == session.first["pid"]
        raised = session.request({"command": "raise"})
        assert raised["status"] == "error" and "bad request" in raised["reason"]
        assert session.request({"add": 1})["count"] == 17  # an error keeps the session
    finally:
        session.close()
    assert not session.alive


def test_crash_and_hang_in_a_session_become_errors():
    session = WorkerSession({"function": f"{HERE}:counting_task", "start": 0})
    crashed = session.request({"command": "crash"})
    assert crashed["status"] == "error" and "code 3" in crashed["reason"]
    assert session.request({"add": 1})["status"] == "error"  # gone stays gone
    session.close()

    session = WorkerSession({"function": f"{HERE}:counting_task", "start": 0})
    hung = session.request({"command": "hang"}, timeout_s=1)
    assert hung["status"] == "error" and "timed out after 1 s" in hung["reason"]
    assert not session.alive
    session.close()


def test_a_task_that_is_not_a_session_ends_its_worker():
    session = WorkerSession({"function": f"{HERE}:plain_task", "value": 1})
    assert session.first["doubled"] == 2
    again = session.request({"value": 2})
    assert again["status"] == "error"
    session.close()


def test_progress_reports_reach_the_parent_in_order_before_the_result():
    seen = []
    result = run_task({"function": f"{HERE}:progressing_task", "steps": 5},
                      on_progress=seen.append)  # fmt: skip
    assert result == {"finished": True}
    assert seen == [{"done": n, "total": 5} for n in range(1, 6)]


def test_progress_outside_a_worker_writes_nothing(capsys):
    assert progressing_task({"steps": 3}) == {"finished": True}
    assert "@@" not in capsys.readouterr().out


def sleeping_task(task):
    """Writes its pid, then runs far longer than any test."""
    import time
    from pathlib import Path

    Path(task["pid_file"]).write_text(str(os.getpid()))
    time.sleep(600)
    return {"finished": True}


def test_a_worker_whose_parent_is_killed_ends_too(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.study_helpers import gone_within

    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "from kernelprof.harness.worker import run_task; "
                f"run_task({{'function': '{HERE}:sleeping_task', 'pid_file': {str(pid_file)!r}}})"
            ),
        ]
    )
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)  # nothing of the parent's own code runs
    parent.wait()
    # its watch looks every 0.5 s; gone, or a zombie nobody reaped (a container's pid 1 may not)
    if gone_within({worker}, 5):
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the worker outlived its killed parent by 5 s")
