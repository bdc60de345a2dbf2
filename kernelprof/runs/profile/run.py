"""``kernelprof profile``'s two ways in.

* :class:`Profile`, the Python API's context manager: ``with kernelprof.profile(model) as prof:``
  and ``prof.step()`` after each training step; ``prof.result`` when the schedule is done or the
  block is left.
* :func:`run_script`, the command line's: the script runs unchanged in a child interpreter
  (:mod:`kernelprof.runs.profile.child`) with a session watching its optimizer; its output and
  exit code are its own. The child writes the profile document as soon as the schedule is done
  (and again, with the exit code, when the script ends), so that a script that fails or runs
  on for hours still leaves what was profiled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from torch import nn

from kernelprof.requests.profile import ProfileRequest
from kernelprof.results import files, layers
from kernelprof.results.profile import (
    ProfileComparison,
    ProfileDocument,
    ProfileRun,
    ProfileTask,
)
from kernelprof.runs.profile.session import Session

ACTIVE: list[Session] = []  # the session kernelprof.step() marks


def step() -> None:
    """Marks the end of a training step for the profile in progress (a no-op without one), for
    scripts with no optimizer step per training step (gradient accumulation, custom updates)."""
    if ACTIVE:
        ACTIVE[-1].mark()


def task_of(request: ProfileRequest, entry: str, session: Session,
            trace_dir: Path) -> ProfileTask:  # fmt: skip
    """The task as run: the device the session settled on, what ended its steps."""
    marker = session.marker
    if entry == "api":
        marker = marker.replace("kernelprof.step()", "prof.step()")
    return ProfileTask(entry=entry, command=request.script, device=str(session.device or "cpu"),
                       warmup=request.warmup, steps=request.steps, op_steps=request.op_steps,
                       marker=marker, stop=request.stop, trace_dir=str(trace_dir),
                       faster_rounds=request.faster_rounds,
                       ac_pj=request.ac_pj, mac_pj=request.mac_pj)  # fmt: skip


def trace_folder(request: ProfileRequest) -> Path:
    if request.trace_dir is not None:
        return request.trace_dir
    return Path(tempfile.mkdtemp(prefix="kernelprof-profile-"))


class Profile:
    """``with kernelprof.profile(model, steps=10) as prof:`` ... ``prof.step()`` per training step;
    without a model, the models are found from the modules the warm-up steps call and a step
    ends at each ``optimizer.step()`` until ``prof.step()`` is called, as for a script. The
    options are ``kernelprof profile``'s (no command, no ``--stop``). ``profiled()`` gives
    the :class:`ProfileDocument` the command line writes (the API wraps it as
    ``prof.result``); ``prof.done`` says whether the whole schedule ran
    (``request.needed_steps`` steps)."""

    def __init__(self, model: nn.Module | list[nn.Module] | None, request: ProfileRequest,
                 notes: tuple[str, ...] = ()) -> None:  # fmt: skip
        if isinstance(model, nn.Module):
            model = [model]
        if model is not None and (not model or not all(isinstance(m, nn.Module)
                                                       for m in model)):  # fmt: skip
            from kernelprof.requests import RequestError

            raise RequestError("profile: give the model (a torch.nn.Module, or a list of them), "
                               "or none to find it from the modules the steps call")  # fmt: skip
        self.models = None if model is None else list(model)
        self.request = request
        self.notes = notes
        self.trace_dir = trace_folder(request)
        self.document: ProfileDocument | None = None
        self.session: Session | None = None
        self._saved: tuple[str, ...] | None = None

    def __enter__(self) -> Profile:
        self.session = Session(warmup=self.request.warmup, steps=self.request.steps,
                               op_steps=self.request.op_steps, device=self.request.device,
                               trace_dir=self.trace_dir, roots=self.models,
                               marker="prof.step()" if self.models else "optimizer.step()",
                               on_done=self._done,
                               faster_rounds=self.request.faster_rounds).start()  # fmt: skip
        ACTIVE.append(self.session)
        return self

    def step(self) -> None:
        self.session.mark()

    @property
    def done(self) -> bool:
        return self.session is not None and self.session.scheduled

    def __exit__(self, *exc) -> None:
        if self.session in ACTIVE:
            ACTIVE.remove(self.session)
        self.session.close()

    def _done(self, run: ProfileRun) -> None:
        from kernelprof.runs.environment import environment

        task = task_of(self.request, "api", self.session, self.trace_dir)
        self.document = layers.document(task, run, environment(task.device), notes=self.notes)
        self._saved = ()
        if self.request.out is not None:  # written at once: nobody has to ask for the result
            written, problem = files.save(self.document, self.request.out)
            if problem is not None:
                self._saved = (f"{problem}; the results are in {written}",)
                print(f"kernelprof: {self._saved[0]}", file=sys.stderr)

    def profiled(self) -> tuple[ProfileDocument, tuple[str, ...]]:
        """The document, and where ``--out`` went if not where asked."""
        if self.document is None:
            raise RuntimeError("no profile yet: the schedule needs "
                               f"{self.request.needed_steps} prof.step() calls, or leave the "
                               "`with` block")  # fmt: skip
        return self.document, self._saved or ()


class ScriptFailed(Exception):
    """The child wrote no profile at all (it could not start, or was killed)."""


def run_script(request: ProfileRequest) -> tuple[ProfileDocument, int]:
    """Runs the request's command under a profiling session in a child interpreter; returns the
    profile and the script's exit code. The script's output goes where kernelprof's does."""
    interpreter, script, args = request.script_argv()
    trace_dir = trace_folder(request)
    with tempfile.TemporaryDirectory(prefix="kernelprof-profile-") as scratch:
        spec = Path(scratch) / "spec.json"
        document_path = Path(scratch) / "profile.json"
        spec.write_text(json.dumps({
            "warmup": request.warmup, "steps": request.steps, "op_steps": request.op_steps,
            "device": request.device, "stop": request.stop, "trace_dir": str(trace_dir),
            "command": list(request.script), "document": str(document_path),
            "ac_pj": request.ac_pj, "mac_pj": request.mac_pj,
            "faster_rounds": request.faster_rounds,
        }))  # fmt: skip
        environment = dict(os.environ)
        root = str(Path(__file__).resolve().parents[3])
        environment["PYTHONPATH"] = os.pathsep.join(
            [root, *filter(None, [environment.get("PYTHONPATH")])])  # fmt: skip
        child = [interpreter, "-m", "kernelprof.runs.profile.child", str(spec), "--",
                 *script, *args]  # fmt: skip
        try:
            code = subprocess.call(child, env=environment)
        except KeyboardInterrupt:
            code = 130
        if not document_path.is_file():
            raise ScriptFailed(f"the script ended with code {code} before kernelprof could "
                               "write its profile")  # fmt: skip
        document = files.load(document_path, kinds=("profile",))
    if request.out is not None:
        written, problem = files.save(document, request.out)
        if problem is not None:
            print(f"kernelprof: {problem}; the results are in {written}", file=sys.stderr)
    return document, code


def diff(request) -> ProfileComparison:
    """``kernelprof profile diff``: B minus A (:func:`kernelprof.results.layers.diff`);
    RequestError in one line for a file that is not a profile with profiled steps."""
    from kernelprof.requests import RequestError

    try:
        a, b = (files.load(path, kinds=("profile",)) for path in (request.a, request.b))
    except files.DocumentError as error:
        raise RequestError(str(error)) from None
    for name, document in (("A", a), ("B", b)):
        if document.status == "error":
            raise RequestError(f"{name}: no profiled steps in it ({document.reason})")
    return layers.diff(a, b, request.top)
