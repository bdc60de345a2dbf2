"""The training-step attribution over traces (kernelprof.traces.steps): hand-built traces with
known answers, and the shared real GPU trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelprof.traces import iter_events, range_activity
from kernelprof.traces.steps import (
    GPU_IDLE,
    OUTSIDE_OPERATORS,
    SEQ_ARG,
    annotate,
    attribute,
    compare,
    merge,
)
from kernelprof.traces.timeline import Timeline

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
MAIN, AUTOGRAD = (1, 1), (1, 2)


def rng(name, ts, dur, seq=None, thread=MAIN):
    args = {} if seq is None else {SEQ_ARG: list(seq)}
    return {"ph": "X", "cat": "user_annotation", "name": name, "ts": ts, "dur": dur,
            "pid": thread[0], "tid": thread[1], "args": args}  # fmt: skip


def op(name, ts, dur, seq=None, backward=False, thread=MAIN):
    args = {"Fwd thread id": 1 if backward else 0}
    if seq is not None:
        args["Sequence number"] = seq
    return {"ph": "X", "cat": "cpu_op", "name": name, "ts": ts, "dur": dur,
            "pid": thread[0], "tid": thread[1], "args": args}  # fmt: skip


def step_trace(lif_mul_calls=1, slow_lif_backward=0.0):
    """One CPU step of 100 us: a lif forward (10..40, seq 5..8), a conv forward (40..50,
    seq 8..9), a backward (60..90) running the lif node (seq 6) and the conv node (seq 8)."""
    events = [
        rng("kernelprof/step", 0, 100 + slow_lif_backward, (0, 20)),
        rng("kernelprof/forward", 5, 50, (4, 10)),
        rng("kernelprof/lif fwd", 10, 30, (5, 8)),
        rng("kernelprof/conv fwd", 40, 10, (8, 9)),
        op("aten::conv2d", 41, 8, seq=8),
        rng("kernelprof/backward", 60, 30 + slow_lif_backward, (10, 10)),
        op("MulBackward0", 62, 10 + slow_lif_backward, seq=6, backward=True),
        op("aten::mul", 63, 5, thread=MAIN),
        op("ConvolutionBackward0", 75 + slow_lif_backward, 12, seq=8, backward=True),
    ]
    for index in range(lif_mul_calls):  # each 4 us, one after the other from t = 12
        events.append(op("aten::mul", 12 + 5 * index, 4, seq=5 + index % 3))
    return events


def test_each_instant_of_a_step_goes_to_its_innermost_unit_and_they_add_up():
    found = attribute(Timeline.from_events(step_trace()))
    (step,) = found.steps
    assert found.kind == "host" and found.detailed
    assert sum(step.host_us.values()) == pytest.approx(step.length_us) == pytest.approx(100)
    assert step.host_us["lif fwd"] == pytest.approx(30)
    assert step.host_us["conv fwd"] == pytest.approx(10)
    assert step.host_us["other fwd"] == pytest.approx(50 - 40)
    assert step.host_us["lif bwd"] == pytest.approx(10)  # MulBackward0: seq 6 is in lif's 5..8
    assert step.host_us["conv bwd"] == pytest.approx(12)
    assert step.host_us["other bwd"] == pytest.approx(30 - 22)
    assert step.host_us["other"] == pytest.approx(100 - 50 - 30)


def test_operators_self_times_and_the_rest_of_their_category_is_outside_operators():
    step = attribute(Timeline.from_events(step_trace(lif_mul_calls=3))).steps[0]
    lif = step.operators["lif fwd"]
    assert lif["aten::mul"] == [3, pytest.approx(12)]
    assert lif[OUTSIDE_OPERATORS][1] == pytest.approx(30 - 12)
    backward = step.operators["lif bwd"]
    assert backward["MulBackward0"] == [1, pytest.approx(10 - 5)]  # less the mul inside it
    assert backward["aten::mul"] == [1, pytest.approx(5)]


def test_compare_names_the_extra_operations_with_their_count():
    base = attribute(Timeline.from_events(step_trace(lif_mul_calls=1))).as_dict()
    more = attribute(Timeline.from_events(step_trace(lif_mul_calls=4))).as_dict()
    compared = compare(base, more)
    lif = next(c for c in compared["categories"] if c["name"] == "lif fwd")
    mul = next(o for o in lif["operations"] if o["name"] == "aten::mul")
    assert mul["delta_count"] == 3 and mul["delta_us"] == pytest.approx(12)
    # the category's host time is unchanged (the muls fill the range): the glue shrank
    assert lif["delta_us"] == pytest.approx(0)


def test_a_slow_backward_node_is_charged_to_the_layer_that_created_it():
    base = attribute(Timeline.from_events(step_trace())).as_dict()
    slow = attribute(Timeline.from_events(step_trace(slow_lif_backward=40))).as_dict()
    compared = compare(base, slow)
    top = compared["categories"][0]
    assert top["name"] == "lif bwd" and top["delta_us"] == pytest.approx(40)
    rest = [c for c in compared["categories"][1:] if c["name"] != "other"]
    assert all(abs(c["delta_us"]) < 1e-9 for c in rest)


def gpu_step(idle_gap=20.0):
    """A 100 us step launching two kernels from the lif forward and one from a backward node on
    autograd's thread; the kernels cover 10 + 20 + 15 us."""
    events = [
        rng("kernelprof/step", 0, 100, (0, 10)),
        rng("kernelprof/lif fwd", 10, 30, (1, 3)),
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 12, "dur": 2,
         "pid": 1, "tid": 1, "args": {"correlation": 1}},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 20, "dur": 2,
         "pid": 1, "tid": 1, "args": {"correlation": 2}},
        op("MulBackward0", 50, 20, seq=2, backward=True, thread=AUTOGRAD),
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 55, "dur": 2,
         "pid": 1, "tid": 2, "args": {"correlation": 3}},
    ]  # fmt: skip
    for correlation, ts, dur in ((1, 14, 10), (2, 24 + idle_gap, 20), (3, 80, 15)):
        events.append({"ph": "X", "cat": "kernel", "name": f"k{correlation}", "ts": ts,
                       "dur": dur, "pid": 0, "tid": 7,
                       "args": {"correlation": correlation, "device": 0, "stream": 7}})  # fmt: skip
    return events


def test_gpu_work_goes_to_the_unit_that_launched_it_and_idle_fills_the_step():
    found = attribute(Timeline.from_events(gpu_step()))
    (step,) = found.steps
    assert found.kind == "device"
    assert step.device_us["lif fwd"] == pytest.approx(30)
    assert step.device_us["lif bwd"] == pytest.approx(15)
    assert step.device_us[GPU_IDLE] == pytest.approx(100 - 45)
    assert sum(step.device_us.values()) == pytest.approx(step.length_us)
    assert step.gpu["lif fwd"] == {"k1": [1, 10], "k2": [1, 20]}
    assert step.launch["kernels"] == 3 and step.launch["gpu_idle_share"] == pytest.approx(0.55)


def test_annotate_writes_sequence_numbers_in_entry_order_and_refuses_a_mismatch():
    trace = {"traceEvents": [rng("kernelprof/lif fwd", 10, 5), rng("kernelprof/step", 0, 100),
                             rng("other", 1, 1)]}  # fmt: skip
    assert annotate(trace, [("kernelprof/step", 0, 9), ("kernelprof/lif fwd", 2, 4)]) == 2
    by_name = {e["name"]: e["args"].get(SEQ_ARG) for e in trace["traceEvents"]}
    assert by_name == {"kernelprof/step": [0, 9], "kernelprof/lif fwd": [2, 4], "other": None}
    with pytest.raises(ValueError, match="entered"):
        annotate(trace, [("kernelprof/step", 0, 9)])
    with pytest.raises(ValueError, match="where"):
        annotate(trace, [("kernelprof/step", 0, 9), ("kernelprof/pool fwd", 2, 4)])


def test_merge_moves_every_session_onto_the_first_base():
    first = {"baseTimeNanoseconds": 1_000_000, "traceEvents": [rng("kernelprof/step", 5, 1)]}
    second = {"baseTimeNanoseconds": 3_000_000, "traceEvents": [rng("kernelprof/step", 5, 1)]}
    merged = merge([first, second])
    assert [e["ts"] for e in merged["traceEvents"]] == [5, 5 + 2000]
    assert merged["baseTimeNanoseconds"] == 1_000_000


@pytest.mark.skipif(not (SHARED / "alexnet_gpu_train.json.gz").exists(), reason="no shared trace")
def test_a_real_gpu_trace_attributes_every_kernel_of_each_range_and_adds_up():
    path = SHARED / "alexnet_gpu_train.json.gz"
    name = "[param|pytorch.model.alex_net|0|0|0|measure|forward]"
    found = attribute(Timeline.from_events(iter_events(path)), str(path), step=name)
    assert found.kind == "device" and len(found.steps) == 2
    ranges = range_activity(iter_events(path), prefix=name)
    for step, activity in zip(found.steps, ranges, strict=True):
        assert step.launch["kernels"] == activity.kernels == 39
        assert sum(step.device_us.values()) == pytest.approx(step.length_us)
        linked = sum(n[1] for names in step.gpu.values() for n in names.values())
        assert linked == pytest.approx(activity.device_us)
