"""What the study's tests share: the smallest real study (one framework, one network, one
epoch of 256 images a cell), run as a user runs it, and ways to watch and stop one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from kernelprof.results.store import Store

TINY = ("--frameworks", "reference", "--models", "fc", "--modes", "direct",
        "--neuron-settings", "canonical", "--epochs", "1", "--limit-train", "256")  # fmt: skip


def tables(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def launch(folder: Path, *extra: str, seeds: int = 3) -> subprocess.Popen:
    """``kernelprof study`` of the tiny study into ``folder``, running in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "kernelprof.cli", "study", *TINY, "--seeds", str(seeds),
         "--out", str(folder), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)  # fmt: skip


def wait_for_cells(folder: Path, count: int, process: subprocess.Popen,
                   timeout_s: float = 600) -> None:  # fmt: skip
    """Until ``folder`` holds ``count`` cells; fails where ``process`` ends first."""
    deadline = time.monotonic() + timeout_s
    while len(list((folder / "cells").glob("*.json"))) < count:
        if process.poll() is not None:
            raise AssertionError(f"the study ended first: {process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {count} cells in {folder} after {timeout_s} s")
        time.sleep(0.2)


def processes() -> dict[int, tuple[int, str]]:
    """Every process: its parent's pid and its command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = (parent, command.strip())
    return found


def descendants(pid: int) -> set[int]:
    table = processes()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, (parent, _) in table.items() if parent in frontier}
        found |= frontier
    return found


def wait_for_worker(process: subprocess.Popen, steady_s: float = 1.0,
                    timeout_s: float = 300) -> set[int]:  # fmt: skip
    """The processes under ``process`` once the same ones have run for ``steady_s``: a cell's
    worker at work, not one ending (none runs between two cells). Fails where ``process`` ends
    first."""
    deadline = time.monotonic() + timeout_s
    found, since = set(), time.monotonic()
    while not found or time.monotonic() - since < steady_s:
        if process.poll() is not None:
            raise AssertionError(f"the study ended first: {process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no steady worker under {process.pid} after {timeout_s} s")
        now = alive(descendants(process.pid))
        if now != found:
            found, since = now, time.monotonic()
        time.sleep(0.05)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (zombies, which hold nothing, left out)."""
    living = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                    living.add(pid)
        except OSError:
            continue
    return living


def gone_within(pids: set[int], seconds: float) -> set[int]:
    """Waits up to ``seconds`` for ``pids`` to end; returns those still running."""
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive(pids)


def accuracies(folder: Path) -> dict[int, float]:
    """Each seed's test accuracy in a tiny study's folder."""
    found, _ = Store(folder).read()
    return {key.seed: cell.direct.rows[0].training.test_accuracy for key, cell in found.items()}
