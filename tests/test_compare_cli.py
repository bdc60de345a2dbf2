"""`kernelprof compare`: every column filled or explained, traces that open, harness not fooled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kernelprof.results import files
from tests.cli_runner import run_kernelprof
from tests.planted_impls import SLEEP_S


def kernelprof_compare(*args: str):
    return run_kernelprof("compare", *args, planted=True)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    traces = tmp_path_factory.mktemp("traces")
    done = kernelprof_compare(
        "--neuron", "lif", "--T", "4", "--N", "4096", "--device", "cpu", "--format", "json",
        "--repeat-s", "0.05", "--trace-dir", str(traces),
        "--impls", "ref-torch,spikingjelly,snntorch,norse,lava-dl,ref-cupy,planted-cached,"
        "planted-sleep,planted-crash,planted-timed-tail",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = files.loads(done.stdout)
    (case,) = document.cases
    return document, {row.impl: row for row in case.rows}, traces


def test_framework_rows_have_every_column(compared):
    document, rows, _ = compared
    for name in ("ref-torch", "spikingjelly", "snntorch", "norse", "lava-dl"):
        row = rows[name]
        assert row.verdict in ("exact", "close", "approximate"), (name, row.reason)
        for phase in ("fwd", "bwd", "fwd+bwd"):
            timing = row.timings[phase]
            assert timing.call_s > 0 and row.bandwidth[phase].gb_per_s > 0
            assert timing.first_call_s is not None and timing.warm_up.calls > 0
        profile = row.profile
        assert profile.kernels_per_fwd_bwd > 0 and profile.kernel_kind == "aten ops (CPU)"
        assert profile.peak_bytes > 0 and profile.saved_bytes > 0
        assert row.speedup.value > 0 and row.checked.path
    assert document.cases[0].baseline in ("spikingjelly", "snntorch", "norse")
    assert document.environment.versions["spikingjelly"] == "2.0.0"


def test_unavailable_and_crashing_rows_are_explained_and_the_rest_go_on(compared):
    _, rows, _ = compared
    assert rows["ref-cupy"].verdict == "unavailable" and rows["ref-cupy"].reason
    assert rows["planted-crash"].verdict == "error"
    assert "SIGABRT" in rows["planted-crash"].reason


def test_only_timed_builds_that_agree_with_their_checking_build_are_timed(compared):
    _, rows, _ = compared
    for name in ("ref-torch", "spikingjelly", "snntorch", "norse", "lava-dl"):
        assert rows[name].checked.timed_build.agrees, rows[name].checked.timed_build
        assert rows[name].checked.timed_build.neurons == 4096  # N=4096: every neuron compared
    tail = rows["planted-timed-tail"]
    assert tail.verdict == "error" and tail.checked.checking_verdict == "exact"
    assert "timed build disagrees" in tail.reason and tail.timings is None


def test_the_timed_input_itself_is_checked_against_the_oracle(compared):
    _, rows, _ = compared
    for name in ("ref-torch", "spikingjelly", "snntorch", "norse"):
        check = rows[name].checked.timed_input
        assert check.verdict == "exact" and check.neurons == 4096, check
    assert rows["lava-dl"].checked.timed_input.verdict == "approximate"


def test_the_timed_code_is_what_the_frameworks_users_write(compared):
    _, rows, _ = compared
    assert rows["spikingjelly"].checked.timed_code == (
        "functional.reset_net(node); spikes = node(x)"
    )
    assert "reset_mem" in rows["snntorch"].checked.timed_code
    assert rows["norse"].checked.timed_code.startswith("spikes, state = norse.torch.LIF")


def test_a_cached_result_is_caught(compared):
    _, rows, _ = compared
    assert rows["planted-cached"].verdict == "WRONG"


def test_host_side_sleep_is_measured(compared):
    _, rows, _ = compared
    assert rows["planted-sleep"].timings["fwd"].call_s >= SLEEP_S
    assert rows["planted-sleep"].timings["fwd"].call_s > rows["ref-torch"].timings["fwd"].call_s


def test_traces_are_chrome_traces_with_named_ranges(compared):
    _, rows, traces = compared
    for name in ("ref-torch", "spikingjelly", "lava-dl"):
        trace = json.loads(Path(rows[name].profile.trace).read_text())
        assert trace["traceEvents"], name
        ranges = {e["name"] for e in trace["traceEvents"] if e.get("cat") == "user_annotation"}
        assert {f"{name}/fwd", f"{name}/bwd"} <= ranges
        assert all("ph" in e for e in trace["traceEvents"])
    assert len(list(traces.iterdir())) == 7  # one per implementation that ran


@pytest.mark.cuda
def test_side_stream_work_is_flagged_on_gpu():
    done = kernelprof_compare(
        "--impls", "planted-side-stream", "--T", "8", "--N", "4194304", "--format", "json"
    )
    (row,) = files.loads(done.stdout).rows
    assert any(flag.kind == "hidden_work" and "outside the current stream" in flag.message
               for flag in row.flags)  # fmt: skip


def test_csv_and_markdown_outputs():
    for kind, marker in (
        ("csv", "neuron,T,N,dtype,impl,verdict"),
        ("md", "| neuron | T | N | dtype | impl |"),
    ):
        done = kernelprof_compare(
            "--impls", "ref-torch", "--T", "2", "--N", "512", "--device", "cpu",
            "--repeat-s", "0.01", "--format", kind,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(marker)
        assert "ref-torch" in done.stdout


def test_bad_baseline_is_a_usage_error():
    done = kernelprof_compare("--impls", "ref-torch", "--baseline", "snntorch")
    assert done.returncode == 2 and "--baseline" in done.stderr


def test_sweep_over_t_and_plot(tmp_path):
    plot = tmp_path / "sweep.png"
    done = kernelprof_compare(
        "--impls", "ref-torch,spikingjelly", "--T", "2,4", "--N", "1024", "--device", "cpu",
        "--repeat-s", "0.01", "--no-energy", "--format", "json", "--plot", str(plot),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cases = files.loads(done.stdout).cases
    assert [case.case.T for case in cases] == [2, 4]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_cuda_graph_option_needs_a_gpu():
    if torch.cuda.is_available():
        return
    done = kernelprof_compare("--cuda-graph", "--device", "cpu", "--impls", "ref-torch")
    assert done.returncode == 2 and "CUDA graphs" in done.stderr


@pytest.mark.cuda
def test_cuda_graph_replay_times_are_reported():
    done = kernelprof_compare(
        "--impls", "ref-triton,ref-cupy", "--T", "8", "--N", "1048576", "--cuda-graph",
        "--no-energy", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for row in files.loads(done.stdout).rows:
        graphs = row.profile.graph_timings
        assert set(graphs) == {"fwd", "bwd", "fwd+bwd"}
        assert all(g.measurement is not None and g.measurement.median_s > 0
                   or g.unavailable_reason for g in graphs.values())  # fmt: skip


def test_rows_that_cannot_run_here_start_no_worker(monkeypatch):
    from kernelprof.requests import CompareRequest
    from kernelprof.runs.compare import run
    from tests.documents import ENVIRONMENT

    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started for a row that cannot run")

    monkeypatch.setattr(run, "WorkerSession", no_worker)
    request = CompareRequest(impls="ref-cupy", T=2, N=64, no_energy=True, device="cpu")
    document = run.run_compare(request, environment=ENVIRONMENT)
    (row,) = document.rows
    assert row.verdict == "unavailable" and row.reason == "runs on cuda, not cpu"
    assert row.timings is None and document.cases[0].timed_rows == ()


def test_a_build_with_its_own_phases_is_timed_through_them():
    """A framework outside torch's autograd (JAX) times its own closures per phase: each
    phase's figure is its own closure's (1, 2, 3 planted sleeps); what torch cannot see
    (kernels, memory, saved tensors) says so; phases that miss one are an error row."""
    done = kernelprof_compare(
        "--T", "4", "--N", "4096", "--device", "cpu", "--format", "json", "--repeat-s", "0.05",
        "--no-energy", "--impls", "planted-own-phases,planted-own-phases-incomplete",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row.impl: row for row in files.loads(done.stdout).rows}
    own = rows["planted-own-phases"]
    assert own.verdict == "exact", own
    for phase, sleeps in (("fwd", 1), ("bwd", 2), ("fwd+bwd", 3)):
        median = own.timings[phase].call_s
        assert sleeps * SLEEP_S <= median < (sleeps + 1) * SLEEP_S, (phase, median)
    assert own.profile.kernels_per_fwd_bwd is None and "not seen" in own.profile.kernel_kind
    assert own.profile.peak_bytes is None and own.profile.saved_bytes is None
    incomplete = rows["planted-own-phases-incomplete"]
    assert incomplete.verdict == "exact" and incomplete.timings is None
    assert "lack bwd" in incomplete.checked.error
