"""The child interpreter of ``kernelprof profile``: ``python -m kernelprof.runs.profile.child
SPEC.json -- SCRIPT [ARGS]`` (or ``-- -m MODULE [ARGS]``, ``-- -c CODE [ARGS]``).

It starts a :class:`~kernelprof.runs.profile.session.Session` on the script's optimizer steps
and runs the script as ``python SCRIPT ARGS`` would (``__main__``, ``sys.argv``, its folder
first on ``sys.path``). The script's output, traceback and exit code are its own. The profile
document is written to the spec's path when the schedule is done, and again when the script
ends (with its exit code, or with what was profiled before it failed).
"""

from __future__ import annotations

import json
import runpy
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    target = argv[2:] if len(argv) > 1 and argv[1] == "--" else argv[1:]

    from kernelprof.requests.profile import ProfileRequest
    from kernelprof.results import files, layers
    from kernelprof.runs.environment import environment
    from kernelprof.runs.profile import run
    from kernelprof.runs.profile.session import Session, StopScript

    request = ProfileRequest(script=tuple(spec["command"]), warmup=spec["warmup"],
                             steps=spec["steps"], op_steps=spec["op_steps"],
                             device=spec["device"], stop=spec["stop"], ac_pj=spec["ac_pj"],
                             mac_pj=spec["mac_pj"],
                             faster_rounds=spec["faster_rounds"])  # fmt: skip
    trace_dir = Path(spec["trace_dir"])
    written: dict = {}

    def write(profiled, exit_code: int | None = None) -> None:
        session = written["session"]
        task = run.task_of(request, "script", session, trace_dir)
        problems = ()
        if exit_code not in (None, 0):
            problems = (f"the script exited with code {exit_code} after {session.position} "
                        "steps",)  # fmt: skip
        document = layers.document(task, profiled, environment(task.device), exit_code=exit_code,
                                   problems=problems)  # fmt: skip
        Path(spec["document"]).write_text(files.dumps(document))
        written["run"] = profiled

    session = Session(warmup=request.warmup, steps=request.steps, op_steps=request.op_steps,
                      device=request.device, trace_dir=trace_dir, roots=None,
                      marker="optimizer.step()", on_done=write, stop=request.stop,
                      faster_rounds=request.faster_rounds)  # fmt: skip
    written["session"] = session
    session.start()
    run.ACTIVE.append(session)
    code = _run(target, StopScript)
    run.ACTIVE.remove(session)
    session.close()  # a script that ended early: what was profiled
    if "run" in written:
        write(written["run"], code)
    if session.finished and session.stop and code == 0:
        print(f"kernelprof: the script was stopped after {session.position} steps (--stop)",
              file=sys.stderr)  # fmt: skip
    return code


def _run(target: list[str], stop: type[BaseException]) -> int:
    """Runs the script as the interpreter would; its exit code."""
    if not target:
        print("kernelprof profile: no script given", file=sys.stderr)
        return 2
    try:
        if target[0] == "-m":
            sys.argv = [target[1], *target[2:]]
            runpy.run_module(target[1], run_name="__main__", alter_sys=True)
        elif target[0] == "-c":
            sys.argv = ["-c", *target[2:]]
            exec(compile(target[1], "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102
        else:
            sys.argv = list(target)
            sys.path.insert(0, str(Path(target[0]).resolve().parent))
            runpy.run_path(target[0], run_name="__main__")
    except stop:
        return 0
    except SystemExit as exit:
        return _exit_code(exit.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130
    except BaseException:  # noqa: BLE001 - the script's failure: its own traceback
        traceback.print_exc()
        return 1
    return 0


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints it and exits 1
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
