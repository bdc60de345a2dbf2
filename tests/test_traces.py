"""`kernelprof trace summary|diff` (kernelprof/traces.py): real GPU traces, kernelprof's own
traces, hand-made traces with known answers, bad input and a 200 MB trace."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from kernelprof import traces
from tests.cli_runner import run_in_process, run_kernelprof
from tests.test_benchmarks import load as load_benchmark

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
ALEXNET = SHARED / "alexnet_gpu_train.json.gz"
CUPTI = SHARED / "cupti_counters_gpu.json.gz"
needs_shared = pytest.mark.skipif(not ALEXNET.exists(), reason=f"no shared traces at {SHARED}")


def event(name, cat, ts, dur, **extra):
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": 1, "ts": ts, "dur": dur, **extra}


def write_trace(path: Path, events: list[dict], gz: bool = False) -> Path:
    text = json.dumps({"traceEvents": events, "schemaVersion": 1})
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


# ---- real traces ---------------------------------------------------------------------------


@needs_shared
def test_a_real_gpu_training_trace_is_summarised():
    raw = json.loads(gzip.decompress(ALEXNET.read_bytes()))["traceEvents"]
    kernels = [e for e in raw if e.get("cat") == "kernel"]
    summary = traces.summarize(ALEXNET).as_dict()
    launch = summary["launch"]
    assert launch["kernel_count"] == len(kernels) == 79
    assert launch["kernel_time_us"] == pytest.approx(sum(e["dur"] for e in kernels))
    assert summary["kernels"][0]["name"] == max(
        {e["name"] for e in kernels},
        key=lambda name: sum(e["dur"] for e in kernels if e["name"] == name),
    )
    assert 0.0 < launch["gpu_idle_fraction"] < 1.0 and launch["gpu_devices"] == 1
    assert launch["launch_calls"] == 79  # one cudaLaunchKernel per kernel
    assert summary["gpu_kinds_us"]["memory"] > 0 and not summary["cpu_only"]
    assert any(r["name"].startswith("[param|pytorch.model.alex_net") for r in summary["ranges"])


@needs_shared
def test_summary_command_prints_the_tables():
    done = run_kernelprof("trace", "summary", str(ALEXNET), "--top", "3")
    assert done.returncode == 0, done.stderr
    for heading in ("top kernels by total time", "top operators by self time",
                    "record_function ranges", "GPU idle", "kernels < 10 µs"):  # fmt: skip
        assert heading in done.stdout
    markdown = run_kernelprof("trace", "summary", str(ALEXNET), "--format", "md")
    assert markdown.returncode == 0 and "| kernel | count | ms |" in markdown.stdout


@needs_shared
def test_a_trace_without_gpu_activity_says_so():
    summary = traces.summarize(CUPTI).as_dict()
    assert summary["cpu_only"] and summary["launch"]["kernel_count"] == 0
    assert summary["operators"]
    done = run_kernelprof("trace", "summary", str(CUPTI))
    assert done.returncode == 0 and "CPU-only trace" in done.stdout


def test_kernelprof_compare_and_e2e_traces_are_summarised_and_diffed(tmp_path):
    done = run_kernelprof(
        "compare", "--impls", "ref-torch,spikingjelly", "--T", "4", "--N", "4096",
        "--device", "cpu", "--repeat-s", "0.01", "--no-energy", "--format", "json",
        "--trace-dir", str(tmp_path / "compare"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    paths = sorted((tmp_path / "compare").iterdir())
    assert len(paths) == 2
    summary = traces.summarize(paths[0]).as_dict()
    assert summary["cpu_only"]
    ranges = {r["name"] for r in summary["ranges"]}
    impl = "ref-torch" if "ref-torch" in paths[0].name else "spikingjelly"
    assert {f"{impl}/fwd", f"{impl}/bwd"} <= ranges
    done = run_kernelprof("trace", "diff", str(paths[0]), str(paths[1]), "--format", "json")
    assert done.returncode == 0, done.stderr
    difference = json.loads(done.stdout)
    deltas = [abs(r["delta_us"]) for r in difference["operators"]]
    assert deltas == sorted(deltas, reverse=True) and deltas[0] > 0

    done = run_kernelprof(
        "e2e", "--model", "fc", "--dataset", "synthetic", "--frameworks", "reference",
        "--steps", "2", "--T", "2", "--limit-train", "64", "--limit-test", "16",
        "--device", "cpu", "--format", "json", "--trace-dir", str(tmp_path / "e2e"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    paths = sorted((tmp_path / "e2e").iterdir())
    assert [p.name for p in paths] == ["e2e_reference_fc_synthetic.json",
                                       "e2e_reference_fc_synthetic_ops.json"]  # fmt: skip
    for path in paths:
        done = run_kernelprof("trace", "summary", str(path))
        assert done.returncode == 0 and "kernelprof/lif fwd" in done.stdout


# ---- known answers -------------------------------------------------------------------------


def test_self_time_excludes_nested_operators_on_the_same_thread(tmp_path):
    path = write_trace(tmp_path / "t.json", [
        event("parent", "cpu_op", 0, 10), event("child", "cpu_op", 2, 3),
        event("grandchild", "cpu_op", 3, 1), event("other", "cpu_op", 4, 4, tid=2),
    ])  # fmt: skip
    operators = {r["name"]: r for r in traces.summarize(path).as_dict()["operators"]}
    assert operators["parent"]["self_us"] == pytest.approx(7)
    assert operators["child"]["self_us"] == pytest.approx(2)
    assert operators["grandchild"]["self_us"] == pytest.approx(1)
    assert operators["other"]["self_us"] == pytest.approx(4)  # another thread: not nested


def test_gpu_idle_merges_streams_and_counts_tiny_kernels(tmp_path):
    path = write_trace(tmp_path / "t.json.gz", [
        event("k1", "kernel", 0, 10, tid=7), event("k2", "kernel", 5, 10, tid=8),
        event("copy", "gpu_memcpy", 20, 5, tid=7), event("k3", "kernel", 25, 5, tid=7),
        event("ncclAllReduce", "kernel", 30, 8, tid=9),
        event("cudaLaunchKernel", "cuda_runtime", 0, 4),
    ], gz=True)  # fmt: skip
    summary = traces.summarize(path).as_dict()
    launch = summary["launch"]
    # busy [0, 15) and [20, 38): 33 of the 38 us window
    assert launch["gpu_idle_fraction"] == pytest.approx(5 / 38)
    assert launch["kernel_count"] == 4 and launch["tiny_kernel_share"] == pytest.approx(2 / 4)
    assert launch["mean_launch_us"] == pytest.approx(4)
    assert summary["gpu_kinds_us"] == {"computation": 25, "memory": 5, "communication": 8}


def test_diff_is_b_minus_a_largest_change_first(tmp_path):
    a = write_trace(tmp_path / "a.json", [
        event("k1", "kernel", 0, 10), event("k2", "kernel", 10, 5), event("op", "cpu_op", 0, 2),
    ])  # fmt: skip
    b = write_trace(tmp_path / "b.json", [
        event("k1", "kernel", 0, 30), event("k2", "kernel", 30, 5), event("k3", "kernel", 35, 4),
    ])  # fmt: skip
    difference = traces.diff(traces.summarize(a), traces.summarize(b))
    assert [(r["name"], r["delta_us"]) for r in difference["kernels"]] == [
        ("k1", 20.0),
        ("k3", 4.0),
        ("k2", 0.0),
    ]
    assert difference["operators"] == [
        {"name": "op", "a_us": 2.0, "b_us": 0.0, "delta_us": -2.0, "a_count": 1, "b_count": 0}
    ]
    assert difference["categories"][0] == {
        "name": "kernel",
        "a_us": 15.0,
        "b_us": 39.0,
        "delta_us": 24.0,
    }
    done = run_kernelprof("trace", "diff", str(a), str(b))
    assert done.returncode == 0 and "largest change first" in done.stdout


def test_diff_lines_up_two_frameworks_ranges_by_what_follows_their_prefix(tmp_path):
    a = write_trace(tmp_path / "a.json", [
        event("spikingjelly/lif fwd", "user_annotation", 0, 2),
        event("spikingjelly/conv fwd", "user_annotation", 2, 1),
    ])  # fmt: skip
    b = write_trace(tmp_path / "b.json", [
        event("snntorch/lif fwd", "user_annotation", 0, 9),
        event("snntorch/conv fwd", "user_annotation", 9, 1),
    ])  # fmt: skip
    difference = traces.diff(traces.summarize(a), traces.summarize(b))
    assert difference["range_prefixes"] == ["spikingjelly/", "snntorch/"]
    assert [(r["name"], r["delta_us"]) for r in difference["ranges"]] == [
        ("lif fwd", 7.0),
        ("conv fwd", 0.0),
    ]
    same = traces.diff(traces.summarize(a), traces.summarize(a))
    assert same["range_prefixes"] is None and same["ranges"][0]["name"].startswith("spikingjelly/")


# ---- bad input -----------------------------------------------------------------------------


def one_line_error(done, *needles):
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr


def test_truncated_invalid_missing_and_empty_traces(tmp_path):
    whole = json.dumps({"traceEvents": [event("k", "kernel", i, 1) for i in range(50)]})
    (tmp_path / "cut.json").write_text(whole[: len(whole) // 2])
    one_line_error(run_in_process("trace", "summary", str(tmp_path / "cut.json")),
                   "cut.json", "truncated or invalid JSON")  # fmt: skip
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(whole.encode())[:-40])
    one_line_error(run_in_process("trace", "summary", str(tmp_path / "cut.json.gz")),
                   "cut.json.gz", "truncated")  # fmt: skip
    (tmp_path / "notes.txt").write_text("hello")
    one_line_error(run_in_process("trace", "summary", str(tmp_path / "notes.txt")),
                   "notes.txt", "not a Chrome trace")  # fmt: skip
    one_line_error(
        run_in_process(
            "trace", "diff", str(tmp_path / "cut.json.gz"), str(tmp_path / "absent.json")
        ),
        "absent.json",
        "does not exist",
    )
    valid = write_trace(tmp_path / "valid.json", [event("k", "kernel", 0, 1)])
    one_line_error(run_in_process("trace", "diff", str(tmp_path / "cut.json.gz"), str(valid)),
                   "cut.json.gz", "truncated")  # fmt: skip
    one_line_error(run_in_process("trace", "summary", str(tmp_path / "absent.json")),
                   "absent.json", "does not exist")  # fmt: skip
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "none.json").write_text('{"traceEvents": []}')
    for name in ("empty.json", "none.json"):
        done = run_kernelprof("trace", "summary", str(tmp_path / name))
        assert done.returncode == 0 and done.stdout.strip() == f"{tmp_path / name}: no events"


def test_a_200_mb_trace_is_summarised_in_one_streaming_pass(tmp_path):
    bench = load_benchmark("trace_summary")
    path = tmp_path / "big.json"
    steps = bench.write_synthetic_trace(path, 200 * 2**20)
    size = path.stat().st_size
    _, baseline, _ = bench.summarise(write_trace(tmp_path / "small.json", [event("k", "kernel",
                                                                             0, 1)]))  # fmt: skip
    _, peak, summary = bench.summarise(path)
    assert summary["launch"]["kernel_count"] == steps
    operators = {r["name"]: r for r in summary["operators"]}
    assert operators["aten::linear"]["self_us"] == pytest.approx(10 * steps)  # 40 - 30 nested
    grown = (peak - baseline) * 1024
    # json.load would hold several times the file as Python objects; the stream keeps arrays
    assert grown < size / 2, f"memory grew {grown / 2**20:.0f} MiB for {size / 2**20:.0f} MiB"


# ---- launches, annotations and names (what a GPU engineer reads first) -------------------------


def test_driver_api_launches_count_like_runtime_ones(tmp_path):
    """Triton, CuPy and NVRTC kernels are launched with cuLaunchKernel, filed under cuda_driver."""
    path = write_trace(tmp_path / "t.json", [
        event("cuLaunchKernel", "cuda_driver", 0, 5),
        event("cudaLaunchKernel", "cuda_runtime", 10, 3),
        event("cudaMemcpyAsync", "cuda_runtime", 20, 4),
        event("_lif_forward_kernel", "kernel", 6, 100, args={"device": 0}),
    ])  # fmt: skip
    launch = traces.summarize(path).as_dict()["launch"]
    assert launch["launch_calls"] == 2 and launch["mean_launch_us"] == pytest.approx(4.0)


def test_cpu_and_gpu_annotations_of_one_range_are_kept_apart(tmp_path):
    path = write_trace(tmp_path / "t.json", [
        event("ref-triton/fwd", "user_annotation", 0, 2100),
        event("ref-triton/fwd", "gpu_user_annotation", 50, 138, args={"device": 0}),
    ])  # fmt: skip
    summary = traces.summarize(path).as_dict()
    assert summary["ranges"] == [{"name": "ref-triton/fwd", "count": 1, "total_us": 2100,
                                  "self_us": 0.0}]  # fmt: skip
    assert summary["gpu_ranges"][0]["total_us"] == 138
    done = run_kernelprof("trace", "summary", str(path))
    printed = " ".join(done.stdout.split())  # table titles wrap at the table's width
    assert "on the CPU (host time)" in printed and "on the GPU (device time)" in printed


def test_different_kernels_keep_different_short_names():
    from kernelprof.present.traces import distinct_short_names, short_name

    anonymous = [
        "void at::native::(anonymous namespace)::max_pool_forward_nchw<float, float>(int, "
        "float const*, long, long, long, int, int, int, int, int, int, int, int, int, int, "
        "float*, long*)",
        "void at::native::(anonymous namespace)::adaptive_average_pool<float>(float const*, "
        "float*, int, int, int, int, long, long, long)",
    ]
    assert (
        short_name(anonymous[0]) == "at::native::{anonymous}::max_pool_forward_nchw<float, float>"
    )
    deep = [
        "void k<a<b<c<" + "x" * 60 + "1>>>>(int, float, float, float, float, float, float, float)",
        "void k<a<b<c<" + "x" * 60 + "2>>>>(int, float, float, float, float, float, float, float)",
    ]
    for names in (anonymous, deep):
        shorts = distinct_short_names(names)
        assert len(set(shorts.values())) == len(names), shorts
        assert all(len(short) <= 80 for short in shorts.values())


@needs_shared
def test_the_real_traces_kernels_all_have_distinct_short_names():
    from kernelprof.present.traces import distinct_short_names

    names = list(traces.summarize(ALEXNET).kernels)
    assert len(set(distinct_short_names(names).values())) == len(names) == 16


@needs_shared
def test_range_activity_links_a_real_traces_kernels_to_the_ranges_that_launched_them():
    events = list(traces.iter_events(ALEXNET))
    gpu = [e for e in events if e.get("cat") in traces.read.GPU_CATEGORIES]
    activity = traces.range_activity(events, prefix="[param|")
    outer = activity[0]
    assert outer.name == "[param|cuda]"  # encloses the whole run: every GPU event is its
    assert outer.kernels == sum(e["cat"] == "kernel" for e in gpu) == 79
    assert outer.device_us == pytest.approx(sum(e["dur"] for e in gpu))
    forwards = [a for a in activity if a.name.endswith("|measure|forward]")]
    assert [a.kernels for a in forwards] == [39, 39]  # the same forward, twice
    assert all(0 < a.device_us < a.duration_us for a in forwards)
    assert all(a.kernels == 0 for a in activity if a.name == "[param|clear_cache]")


def test_range_activity_counts_driver_launches_and_host_time_inside_operators():
    events = [
        event("kp/fwd", "user_annotation", 0, 100),
        event("aten::mul", "cpu_op", 5, 20),
        event("aten::mul_inner", "cpu_op", 10, 5),  # nested: not counted twice
        event("cuLaunchKernel", "cuda_driver", 12, 2, args={"correlation": 7}),
        event("aten::add", "cpu_op", 60, 10),  # 35 us of Python between the two
        event("cudaLaunchKernel", "cuda_runtime", 62, 2, args={"correlation": 8}),
        event("triton_lif", "kernel", 30, 40, args={"correlation": 7}),
        event("add_kernel", "kernel", 75, 3, args={"correlation": 8}),
        event("elsewhere", "kernel", 300, 9, args={"correlation": 99}),  # launched outside
        event("other", "user_annotation", 200, 10),
    ]
    (fwd,) = traces.range_activity(events, prefix="kp/")
    assert (fwd.kernels, fwd.device_us, fwd.op_us, fwd.duration_us) == (2, 43.0, 30.0, 100.0)
    assert fwd.aten_ops == 3


def test_trace_diff_reads_each_trace_once_and_attributes_kernelprof_steps(tmp_path, monkeypatch):
    """Two kernelprof training traces: one streaming pass each gives the summary and the step
    attribution (which `kernelprof e2e` computes by the same code)."""
    from kernelprof.requests import TraceDiffRequest
    from kernelprof.runs import traces as run
    from kernelprof.traces import read, summary

    def steps_trace(path: Path, lif_us: float) -> Path:
        return write_trace(path, [
            event("kernelprof/step", "user_annotation", 0, 100 + lif_us),
            event("kernelprof/lif fwd", "user_annotation", 10, lif_us),
            event("kernelprof/conv fwd", "user_annotation", 20 + lif_us, 50),
        ])  # fmt: skip

    a, b = steps_trace(tmp_path / "a.json", 10.0), steps_trace(tmp_path / "b.json", 40.0)
    opened = []
    streamed = read.iter_events

    def counting(path):
        opened.append(Path(path).name)
        return streamed(path)

    monkeypatch.setattr(summary, "iter_events", counting)
    document, empty = run.diff(TraceDiffRequest(a=a, b=b, top=5))
    assert empty is None and opened == ["a.json", "b.json"]  # each once
    steps = document["steps"]
    assert steps.step_us["delta"] == pytest.approx(30.0)
    assert steps.categories[0].name == "lif fwd" and steps.categories[0].delta_us == 30.0
