"""The Ray that ``kernelprof study --executor ray`` starts on this machine: ``ray start --head
--block`` in a session of its own, which ends whole when the study does, however it ends.

``ray.init()`` would start Ray as the study's children, and a study killed with SIGKILL leaves
two of them behind for good (Ray 2.60's dashboard and runtime-env agents see the raylet die,
say they exit, and do not). Here the study starts this module in a new session; it starts Ray
there, and kills that whole session (Ray's every process, and itself) when told to
(SIGTERM, from the study as it ends) or when the study is gone (its parent's pid changes):

    python -m kernelprof.runs.study.ray_head PORT CPUS
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kernelprof.harness.worker import die_with_parent

READY_S = 120.0  # the longest a Ray head takes to answer


def _end_group(*_args) -> None:
    """Kills every process of this session (Ray's workers put themselves in process groups of
    their own, but stay in the session), then this one."""
    me, session = os.getpid(), os.getsid(0)
    try:
        pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:  # no /proc: the process group, at least
        os.killpg(0, signal.SIGKILL)
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # state, ppid, pgrp, session
            if pid != me and int(fields[3]) == session:
                os.kill(pid, signal.SIGKILL)
        except (OSError, IndexError, ValueError):
            continue  # gone already
    os._exit(1)


def main(port: int, cpus: int) -> int:
    die_with_parent(end=_end_group)
    signal.signal(signal.SIGTERM, _end_group)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the study ends it, after its Ctrl-C
    ray = Path(sys.executable).parent / "ray"
    command = [str(ray), "start", "--head", "--block", f"--port={port}", f"--num-cpus={cpus}",
               "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    return subprocess.run(command, check=False).returncode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalRay:
    """A Ray head on this machine for one study: ``with LocalRay(cpus) as address: ...``.
    It asks for a token of its own (Ray's token authentication), which this process holds in
    its environment while the head runs, so that no one else on the network can use it."""

    def __init__(self, cpus: int, log: Path) -> None:
        self.cpus, self.log, self.port = cpus, log, free_port()
        self.process: subprocess.Popen | None = None
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> str:
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                "RAY_AUTH_TOKEN_PATH": None}  # fmt: skip
        for name, value in auth.items():
            self.saved[name] = os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kernelprof.runs.study.ray_head", str(self.port),
                 str(self.cpus)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)  # fmt: skip
        address = f"127.0.0.1:{self.port}"
        deadline = time.monotonic() + READY_S
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                last = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["-"]
                raise RuntimeError(f"Ray did not start on {address}: {last[0]} (see {self.log})")
            time.sleep(0.5)
        return address

    def __exit__(self, *_exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for name, value in self.saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
