"""The Python API: the README's example runs as written, and a request the API refuses is
refused by the command line with the same one-line message (exit code 2), before anything
runs; requests checked against the machine (memory, interpreters, datasets) included."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import kernelprof
from kernelprof.requests import CheckRequest, CompareRequest, E2ERequest, RequestError
from tests.cli_runner import run_kernelprof

ROOT = Path(__file__).resolve().parents[1]


def readme_api_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## The Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return code


def test_the_readmes_api_example_runs_as_written(tmp_path):
    code = readme_api_example()
    assert "kernelprof.compare(" in code and "kernelprof.load(" in code
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "compare.json").is_file()
    out = done.stdout
    assert "ref-torch exact" in out and "spikingjelly exact" in out  # the rows' lines
    assert "{'ref-torch': 'exact', 'snntorch': 'exact'}" in out
    assert out.rstrip().endswith("--T: must be >= 1, got 0")
    assert "Traceback" not in done.stderr


# (command, the command line's arguments, the API's keyword arguments): each refused alike
REFUSED = [
    ("compare", ["--T", "0"], {"T": 0}),
    ("compare", ["--T", "eight"], {"T": "eight"}),
    ("compare", ["--N", "4,-1"], {"N": (4, -1)}),
    ("compare", ["--dtype", "fp8"], {"dtype": "fp8"}),
    ("compare", ["--impls", "ref-torch,numba"], {"impls": "ref-torch,numba"}),
    ("compare", ["--impls", "ref-torch", "--baseline", "snntorch"],
     {"impls": ["ref-torch"], "baseline": "snntorch"}),
    ("compare", ["--tau", "-1"], {"tau": -1}),
    ("compare", ["--surrogate", "erf"], {"surrogate": "erf"}),
    ("compare", ["--rounds", "0"], {"rounds": 0}),
    ("compare", ["--plot", "p.jpeg"], {"plot": "p.jpeg"}),
    ("compare", ["--device", "tpu"], {"device": "tpu"}),
    ("check", ["--neuron", "izhikevich"], {"neuron": "izhikevich"}),
    ("check", ["--python", "ref-torch"], {"python": "ref-torch"}),
    ("e2e", ["--dataset", "imagenet"], {"dataset": "imagenet"}),
    ("e2e", ["--frameworks", "sinabs"], {"frameworks": "sinabs"}),
    ("e2e", ["--epochs", "0"], {"epochs": 0}),
    ("e2e", ["--mode", "conversion", "--neuron-setting", "framework-defaults"],
     {"mode": "conversion", "neuron_setting": "framework-defaults"}),
]  # fmt: skip
FUNCTIONS = {"check": kernelprof.check, "compare": kernelprof.compare, "e2e": kernelprof.e2e}


def command_line(capsys, *argv: str) -> tuple[int, str, str]:
    """The command line in this process (its parsing, requests and printing are what is
    tested here; the subprocess tests elsewhere run it as a user does): exit code, out, err."""
    from kernelprof.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("command", "argv", "options"), REFUSED,
                         ids=[" ".join([c, *a]) for c, a, _ in REFUSED])  # fmt: skip
def test_the_api_and_the_command_line_refuse_alike(command, argv, options, capsys):
    with pytest.raises(RequestError) as caught:
        FUNCTIONS[command](**{"device": "cpu", **options})
    message = str(caught.value)
    assert message and "\n" not in message
    code, out, err = command_line(capsys, command, "--device", "cpu", *argv)
    assert code == 2, err
    assert err.strip() == f"kernelprof {command}: error: {message}" and out == ""


# refused against the machine, before any worker starts (the issue's examples)
MACHINE = [
    ("compare", ["--N", "99999999999999"], {"N": 99999999999999},
     "--N: T=8 x N=99,999,999,999,999 fp32 needs at least"),
    ("compare", ["--python", "ref-torch=/nonexistent/python"],
     {"python": {"ref-torch": "/nonexistent/python"}},
     "--python: ref-torch: /nonexistent/python does not exist"),
    ("compare", ["--impls", "ref-cupy"], {"impls": "ref-cupy"},
     "nothing to compare on cpu: ref-cupy: unavailable: runs on cuda, not cpu"),
    ("e2e", ["--dataset", "cifar10", "--data-dir", "/tmp"], {"dataset": "cifar10",
                                                             "data_dir": "/tmp"},
     "--dataset: cifar10: not found under /tmp"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "argv", "options", "expected"), MACHINE,
                         ids=[" ".join([c, *a]) for c, a, _, _ in MACHINE])  # fmt: skip
def test_what_cannot_run_on_this_machine_is_refused_before_anything_starts(
    command, argv, options, expected, capsys
):
    started = time.perf_counter()
    with pytest.raises(RequestError) as caught:
        FUNCTIONS[command](**{"device": "cpu", **options})
    assert expected in str(caught.value), caught.value
    code, out, err = command_line(capsys, command, "--device", "cpu", *argv)
    assert code == 2, (out, err)
    # the same line, but for the memory free at that moment
    free = re.compile(r"[\d.]+ [KMGTP]iB available")
    assert free.sub("", err.strip()) == free.sub("", f"kernelprof {command}: error: "
                                                     f"{caught.value}")  # fmt: skip
    assert out == ""  # no table, no error rows: nothing ran
    assert time.perf_counter() - started < 60


def test_an_interpreter_that_cannot_run_a_worker_is_refused_with_its_own_words(tmp_path, capsys):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(RequestError) as caught:
        kernelprof.check(device="cpu", python=f"ref-torch={broken}")
    assert str(caught.value) == (f"--python: ref-torch: {broken} cannot run a worker: "
                                 "ModuleNotFoundError: No module named torch")  # fmt: skip
    code, _, err = command_line(capsys, "check", "--device", "cpu", "--python",
                                f"ref-torch={broken}")  # fmt: skip
    assert code == 2 and err.strip().endswith(str(caught.value))


def test_a_request_object_and_keyword_options_are_the_same_request():
    given = CompareRequest(T="4,8", N="2^10", impls="ref-torch", device="cpu")
    assert given == CompareRequest.from_options(T=(4, 8), N=1024, impls=["ref-torch"],
                                                device="cpu")  # fmt: skip
    assert given.T == (4, 8) and given.N == (1024,) and given.impls == ("ref-torch",)
    assert [case.label for case in given.cases] == ["T=4 N=1,024 fp32", "T=8 N=1,024 fp32"]
    with pytest.raises(RequestError, match="give a request or options, not both"):
        kernelprof.compare(given, T=4)
    with pytest.raises(RequestError, match="unknown option 'steps'"):
        kernelprof.compare(steps=4)
    assert CheckRequest(device="cpu").config.surrogate == "superspike"
    assert E2ERequest(device="cpu", max_steps="3").max_steps == 3


def test_a_run_in_which_every_row_failed_exits_1_with_the_reasons_and_no_empty_table():
    done = run_kernelprof("compare", "--impls", "planted-crash", "--T", "2", "--N", "64",
                          "--device", "cpu", "--no-energy", planted=True)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "nothing was timed" in " ".join(done.stdout.split())
    assert "SIGABRT" in done.stdout and "speed-" not in done.stdout
    done = run_kernelprof("e2e", "--frameworks", "spyx", "--model", "fc", "--dataset",
                          "synthetic", "--device", "cpu")  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "spyx" in done.stdout and "JAX" in done.stdout
    assert "median step breakdown" not in done.stdout


def test_loading_any_document_gives_its_records(tmp_path):
    from kernelprof.results import files
    from tests.documents import ALL

    for kind, make in ALL.items():
        files.save(make(), tmp_path / f"{kind}.json")
        loaded = kernelprof.load(tmp_path / f"{kind}.json")
        assert loaded.kind == kind and type(loaded.document) is type(make())
        assert "Result" in repr(loaded) or kind in repr(loaded)
    with pytest.raises(files.DocumentError, match="not JSON"):
        (tmp_path / "x.json").write_text("{")
        kernelprof.load(tmp_path / "x.json")
