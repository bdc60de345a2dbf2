"""The kernelprof command line: results, JSON, and one-line errors with exit code 2."""

from __future__ import annotations

import time

import pytest
import torch

from kernelprof.results import files
from tests.cli_runner import run_in_process, run_kernelprof


def kernelprof(*args: str):
    return run_kernelprof(*args)


def test_compare_json_has_verdicts_timings_and_environment(tmp_path):
    out = tmp_path / "result.json"
    done = kernelprof(
        "compare",
        "--neuron",
        "lif",
        "--T",
        "4",
        "--N",
        "4096",
        "--impls",
        "ref-torch,ref-cupy",
        "--device",
        "cpu",
        "--format",
        "json",
        "--repeat-s",
        "0.02",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    document = files.loads(done.stdout)
    assert files.load(out) == document
    (case,) = document.cases
    rows = {row.impl: row for row in case.rows}
    assert rows["ref-torch"].verdict == "exact"
    for phase in ("fwd", "bwd", "fwd+bwd"):
        timing = rows["ref-torch"].timings[phase]
        assert timing.call_s > 0 and rows["ref-torch"].bandwidth[phase].gb_per_s > 0
        assert all(len(r.call.samples_s) >= 3 for r in timing.rounds)
    assert rows["ref-cupy"].verdict == "unavailable" and "cuda" in rows["ref-cupy"].reason
    assert document.copy_bandwidth_gb_per_s > 0
    assert document.environment.versions["torch"] == torch.__version__


def test_unknown_implementation_is_a_usage_error_listing_valid_names():
    done = kernelprof("compare", "--impls", "ref-torch,numba")
    assert done.returncode == 2
    assert "numba" in done.stderr and "ref-torch, ref-compile" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_neuron_is_a_usage_error():
    done = run_in_process("compare", "--neuron", "izhikevich")
    assert done.returncode == 2 and "lif" in done.stderr


def test_bad_numbers_are_usage_errors():
    for args in (["--T", "0"], ["--T", "eight"], ["--tau", "-1"], ["--dtype", "fp8"]):
        done = run_in_process("compare", *args)
        assert done.returncode == 2, args
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_cuda_without_a_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        return
    done = run_in_process("compare", "--device", "cuda")
    assert done.returncode == 2 and "no CUDA device" in done.stderr


def test_free_text_in_tables_is_shown_as_written_not_read_as_markup():
    import dataclasses

    from rich.console import Console

    from kernelprof.present import check
    from kernelprof.results.check import CheckedBuild
    from tests.documents import check_document

    row = CheckedBuild(impl="a", framework="A", verdict="unsupported", status="unsupported",
                       reason="weights [out, in, k, k, 1] and [bold]x[/bold]")  # fmt: skip
    document = dataclasses.replace(check_document(), rows=(row,))
    console = Console(record=True, width=200)
    console.print(check.check_table(document, all_rows=True))
    text = " ".join(console.export_text().split())  # the caption wraps at the table's width
    assert "weights [out, in, k, k, 1] and [bold]x[/bold]" in text


@pytest.mark.parametrize(
    ("command", "option", "expected"),
    [
        ("compare", ["--out", "/proc/kernelprof-no/out.json"], "--out: cannot write in /proc"),
        ("compare", ["--out", "/tmp"], "--out: /tmp is a folder, not a file"),
        ("compare", ["--trace-dir", "/etc/hostname"], "exists and is not a folder"),
        ("compare", ["--plot", "/proc/kernelprof-no/p.png"], "--plot: cannot write"),
        ("compare", ["--plot", "plot.jpeg"], "must end in .png, .pdf, .svg"),
        ("compare", ["--timeout", "0"], "--timeout: must be > 0"),
        ("check", ["--out", "/proc/kernelprof-no/out.json"], "--out: cannot write"),
        ("check", ["--timeout", "-1"], "--timeout: must be > 0"),
        ("e2e", ["--out", "/proc/kernelprof-no/e2e.json"], "--out: cannot write"),
        ("e2e", ["--trace-dir", "/proc/kernelprof-no"], "--trace-dir: cannot write"),
    ],
)
def test_outputs_are_checked_before_anything_is_measured(command, option, expected):
    started = time.perf_counter()
    done = run_in_process(command, "--device", "cpu", *option)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert expected in line
    assert time.perf_counter() - started < 30  # refused up front, not after measuring


def test_a_results_file_that_cannot_be_written_at_the_end_is_kept_elsewhere(tmp_path):
    from kernelprof.results import files
    from tests.documents import check_document

    blocked = tmp_path / "file"
    blocked.write_text("")
    document = check_document()
    kept, problem = files.save(document, blocked / "out.json")
    assert kept != blocked / "out.json" and files.load(kept) == document
    assert problem.startswith(f"cannot write {blocked / 'out.json'}")
    kept.unlink()
