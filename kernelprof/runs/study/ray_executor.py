"""The Ray executor (``kernelprof study --executor ray``): one Ray task per cell, so a node of
eight GPUs trains eight cells at once, while the results flow back into the same store as the
local executor's.

Each task asks Ray for one GPU on a CUDA study (Ray gives it that GPU alone, so timing cells
never share a device), or ``cpus`` CPUs on a CPU study (the threads a cell trains with; by
default all of this machine's cores, so that timing cells never share cores). The task runs the
cell as the local executor does (:func:`kernelprof.runs.study.cells.run_cell`, which trains in
a worker process of its own). Only this process writes the store: a cell is written the moment
its task returns. A task that fails (its Ray worker killed, out of memory, a node lost, or a
cell that failed) is submitted once more; failing again, the cell is written as failed with
the error, and the others go on. Ctrl-C or SIGTERM cancels the tasks still running; every cell
already written stays.

With ``address`` the tasks go to that cluster (the cluster's nodes need kernelprof, the
frameworks and the datasets where this machine has them); without, Ray starts on this machine
and stops when the study ends. A cell whose node has another device than the study's (its key
holds the device's name) fails with that reason rather than be ranked beside the others.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import time
from collections.abc import Callable

from kernelprof.requests.options import RequestError
from kernelprof.requests.study import cell_cpus
from kernelprof.results.store import Store
from kernelprof.results.study import CellKey, CellRecord, StudyPreset
from kernelprof.runs.study.cells import Progress
from kernelprof.runs.study.ray_head import LocalRay

ATTEMPTS = 2  # a failed task is submitted once more


def _cell_task(key: CellKey, preset: StudyPreset, run_device: str, data_dir, commit: str,
               cpus: int) -> CellRecord:  # fmt: skip
    """Runs in a Ray worker: one cell, refused where this node's device is not the key's. On
    the CPU it trains with the task's ``cpus`` threads (its training worker inherits them)."""
    from kernelprof.runs.study.cells import device_label, run_cell

    if run_device == "cpu":
        import torch

        os.environ["OMP_NUM_THREADS"] = str(cpus)
        torch.set_num_threads(cpus)
    here = device_label(run_device)
    if here != key.device:
        return CellRecord(key=key, status="failed", started=time.time(), commit=commit,
                          reason=f"ran on {here!r}, not the study's {key.device!r}")  # fmt: skip
    return run_cell(key, preset, run_device=run_device, data_dir=data_dir, commit=commit)


def run_ray(keys: list[CellKey], store: Store, *, preset: StudyPreset, run_device: str,
            data_dir, commit: str, address: str | None = None,
            cpus: int | None = None, retry_failed: bool = False,
            progress: Progress | None = None, say: Callable[[str], None] = print,
            starting: Callable[[CellKey], None] | None = None,
            done: dict[CellKey, CellRecord] | None = None) -> list[CellKey]:  # fmt: skip
    """Runs the cells ``store`` lacks as Ray tasks, writing each as it returns; returns the
    keys it ran."""
    if done is None:
        done, _ = store.read()
    todo = store.missing(keys, retry_failed=retry_failed, done=done)
    if not todo:
        return todo
    cpus = cpus or cell_cpus()
    gpu = run_device == "cuda"
    started_here = address is None
    with contextlib.ExitStack() as stack:
        try:
            if started_here:
                address = stack.enter_context(LocalRay(os.cpu_count() or 1,
                                                       store.folder / "ray.log"))  # fmt: skip
            import ray  # after the local head's token is in the environment: Ray reads it then

            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (RuntimeError, ConnectionError, ValueError) as error:  # before any cell ran
            raise RequestError(f"--executor ray: unavailable: {_first_line(error)}") from None
        stack.callback(ray.shutdown)
        need = {"CPU": 1, "GPU": 1} if gpu else {"CPU": cpus}
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        if not any(all(node.get(name, 0) >= n for name, n in need.items()) for node in nodes):
            raise RequestError(f"--executor ray: no node of the Ray at {address} has {need} "
                               "for a cell")  # fmt: skip
        task = ray.remote(_cell_task).options(
            num_cpus=need["CPU"], num_gpus=need.get("GPU", 0), max_retries=0,
            name="kernelprof-cell")  # fmt: skip
        total = ray.cluster_resources()

        def submit(key: CellKey):
            return task.remote(key, preset, run_device, data_dir, commit, cpus)

        # as many in flight as the cluster runs at once, so that the cells end in their
        # order and a retried cell runs next rather than after every other
        slots = max(1, sum(min(int(node.get(name, 0) // n) for name, n in need.items())
                           for node in nodes))  # fmt: skip
        say(f"Ray at {address}{' (started here)' if started_here else ''}: "
            f"{total.get('CPU', 0):.0f} CPUs, {total.get('GPU', 0):.0f} GPUs in {len(nodes)} "
            f"node(s); a cell takes {'1 GPU' if gpu else f'{cpus} CPUs'}, {slots} at "
            "once")  # fmt: skip
        queue = collections.deque((key, 1) for key in todo)
        pending: dict = {}
        finished = 0
        try:
            while queue or pending:
                while queue and len(pending) < slots:
                    key, attempt = queue.popleft()
                    pending[submit(key)] = (key, attempt, time.time())
                    if starting is not None:
                        starting(key)
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                key, attempt, submitted = pending.pop(ref)
                try:
                    cell = ray.get(ref)
                except ray.exceptions.RayError as error:
                    cell = CellRecord(key=key, status="failed", reason=_first_line(error),
                                      started=submitted, wall_s=time.time() - submitted,
                                      commit=commit)  # fmt: skip
                if cell.status == "failed" and attempt < ATTEMPTS:
                    say(f"[retry] {key.name}: failed ({cell.reason}); submitted once more")
                    queue.appendleft((key, attempt + 1))
                    continue
                before = done[key].attempts if key in done else 0
                store.write(cell := dataclasses.replace(cell, attempts=attempt + before))
                finished += 1
                if progress is not None:
                    progress(cell, finished, len(todo))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    return todo


def check_address(address: str, timeout_s: float = 10.0) -> None:
    """Refuses, in one line, a HOST:PORT where nothing answers (Ray itself would wait for it
    for minutes); other forms (``auto``, ``ray://...``) are left to Ray."""
    import socket

    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or "/" in host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise RequestError(f"--address: no Ray answers at {address} ({error})") from None


def _first_line(error: BaseException) -> str:
    """A Ray error in one line: its kind and the first line that says something."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else 'no message'}"[:300]
