"""``kernelprof profile``'s requests: where the training steps of any script (or notebook loop)
go, and ``profile diff``: what makes up the difference between two profiles."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from kernelprof.requests.options import (
    Command,
    Display,
    Option,
    Request,
    RequestError,
    at_least,
    option,
    output_format,
    path,
    positive,
)
from kernelprof.requests.outputs import writable_file, writable_folder
from kernelprof.requests.tools import readable
from kernelprof.results.profile import AC_PJ, MAC_PJ, needed_steps


def device_or_auto(value, flag: str) -> str:
    from kernelprof.requests.neuron import device

    return "auto" if value == "auto" else device(value, flag)


def command_line(value, flag: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    if items and items[0] == "--":
        items = items[1:]
    return tuple(str(item) for item in items)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProfileRequest(Request):
    COMMAND = "profile"

    script: tuple[str, ...] = option((), "the training command, after --: python train.py "
                                      "[its args] (python: the interpreter kernelprof runs in; "
                                      "give a path for another)", parse=command_line,
                                      positional=True, nargs="*",
                                      metavar="-- python SCRIPT [ARGS]")  # fmt: skip
    warmup: int = option(5, "steps left unprofiled first (at least 1): first steps fault in "
                         "memory, tune and compile", parse=at_least(1))  # fmt: skip
    steps: int = option(10, "profiled steps (ranges only: the times), each beside a plain "
                        "step and after one unrecorded step of its profiler session",
                        parse=at_least(1))  # fmt: skip
    op_steps: int = option(3, "more profiled steps recording every operator (the operations "
                           "per layer)", parse=at_least(1))  # fmt: skip
    faster_rounds: int = option(5, "rounds of plain steps measuring each faster path found "
                                "for the neuron layers (after a check on their own input), "
                                "beside the layers' own; 0: no search",
                                parse=at_least(0))  # fmt: skip
    stop: bool = option(False, "end the script after the profiled steps (default: it runs on)",
                        action="store_true")  # fmt: skip
    device: str = option("auto", "the device to synchronise and profile: auto (the model's), "
                         "cpu or cuda", parse=device_or_auto)  # fmt: skip
    out: Path | None = option(None, "also write the profile (JSON) here", parse=path)
    trace_dir: Path | None = option(None, "where the Chrome traces go (default: a temporary "
                                    "folder, named in the output)", parse=path)  # fmt: skip
    ac_pj: float = option(AC_PJ, "energy of an accumulate (a spike into a synapse) for the "
                          "estimate, pJ (45 nm fp32 add)", parse=positive)  # fmt: skip
    mac_pj: float = option(MAC_PJ, "energy of a multiply-accumulate for the estimate, pJ "
                           "(45 nm fp32 add + multiply)", parse=positive)  # fmt: skip

    @property
    def needed_steps(self) -> int:
        """Steps the script must run for the whole schedule."""
        return needed_steps(self.warmup, self.steps, self.op_steps)

    def check(self) -> None:
        if self.out is not None:
            writable_file(self.out, "--out")
        if self.trace_dir is not None:
            writable_folder(self.trace_dir, "--trace-dir")

    def script_argv(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """(interpreter, the script or its -m/-c form, its args) of the command; RequestError
        in one line for a command this cannot run."""
        if not self.script:
            raise RequestError("give the training command after --: kernelprof profile -- "
                               "python train.py [its args]")  # fmt: skip
        import sys

        first, rest = self.script[0], list(self.script[1:])
        if first.endswith(".py"):  # `kernelprof profile -- train.py`: this interpreter
            interpreter, rest = sys.executable, list(self.script)
        elif first in ("python", "python3"):  # this interpreter: it has torch and kernelprof
            interpreter = sys.executable
        elif Path(first).name.startswith("python"):  # another one, named by its path
            found = shutil.which(first)
            if found is None:
                raise RequestError(f"{first}: no such interpreter")
            interpreter = found
        else:
            raise RequestError(f"{first}: profile runs Python training scripts: kernelprof "
                               "profile -- python train.py [its args]")  # fmt: skip
        if not rest:
            raise RequestError(f"{first}: name the script to run (python train.py)")
        if rest[0] in ("-m", "-c"):
            if len(rest) < 2:
                raise RequestError(f"{rest[0]}: needs an argument")
            return interpreter, (rest[0], rest[1]), tuple(rest[2:])
        if rest[0].startswith("-"):
            raise RequestError(f"{rest[0]}: interpreter options are not supported; run "
                               "python SCRIPT [ARGS]")  # fmt: skip
        script = Path(rest[0])
        if not script.is_file():
            raise RequestError(f"{script}: no such script" if not script.exists()
                               else f"{script}: not a file")  # fmt: skip
        return interpreter, (str(script),), tuple(rest[1:])


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProfileDiffRequest(Request):
    COMMAND = "profile diff"

    a: Path = option(help="the profile to compare against (written with --out)", parse=path,
                     positional=True, metavar="A")  # fmt: skip
    b: Path = option(help="the profile compared", parse=path, positional=True, metavar="B")
    top: int = option(5, "operations per row", parse=at_least(1))

    def check(self) -> None:
        readable(self.a, "A")
        readable(self.b, "B")


TOP = Display("top", Option("layers shown, the slowest first (all are in --out)",
                            parse=at_least(1), metavar="N"), 15)  # fmt: skip

COMMAND = Command(
    name="profile",
    help="where any training script's step goes: layers, categories, operations, roofline",
    description="Runs a training script unchanged (kernelprof profile -- python train.py "
    "[args]) and profiles a few of its training steps: a step ends at each optimizer.step() "
    "(or kernelprof.step() where the script marks its own). Time per layer (qualified name, "
    "type, category), forward and backward, the step's other phases, the top operations per "
    "layer, and the neuron layers against the copy bandwidth. `kernelprof profile diff A.json "
    "B.json` compares two profiles.",
    request=ProfileRequest,
    display=(output_format("table", "json"), TOP),
)

DIFF = Command(
    name="profile diff",
    help="which layers, categories and operations make up the difference between two profiles",
    description="B minus A, two profiles written with `kernelprof profile --out`: per "
    "category and per layer, largest change first, with the operations behind each.",
    request=ProfileDiffRequest,
    display=(output_format("table", "json"),),
)
