"""`kernelprof profile`: any training script's step, layer by layer, from the command line and the
Python API. A planted slow layer must come out on top with its own time, a layer called T times
a step with T calls, the categories must add up to the step, bad input must be one clear line,
and a script that fails must keep its own traceback and exit code and what was profiled."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import pytest
import torch
from torch import nn

import kernelprof
from kernelprof.present import profile as present_profile
from kernelprof.requests import RequestError
from kernelprof.results import files, layers
from kernelprof.results.profile import needed_steps
from kernelprof.runs.profile.session import schedule
from tests.cli_runner import run_in_process, run_kernelprof

SCRIPT = str(Path(__file__).parent / "profile_scripts" / "planted.py")
QUICK = ("--warmup", "3", "--steps", "6", "--op-steps", "1")  # 3 + 1 + 3 x 7 = 25 steps


def profiled(tmp_path, *script_args: str, options: tuple[str, ...] = QUICK, stop: bool = True):
    out = tmp_path / "profile.json"
    result = run_kernelprof("profile", *options, *(("--stop",) if stop else ()), "--out",
                            str(out), "--trace-dir", str(tmp_path / "traces"), "--",
                            "python", SCRIPT, *script_args)  # fmt: skip
    document = files.load(out) if out.exists() else None
    return result, document


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The planted script profiled once: 40 ms of sleep in `slow`, `recurrent` called 6 times."""
    tmp_path = tmp_path_factory.mktemp("planted")
    result, document = profiled(tmp_path, "--sleep-ms", "40", "--T", "6", "--steps", "200")
    assert result.returncode == 0, result.stderr
    return result, document


def test_the_planted_slow_layer_is_the_top_layer_with_its_own_time(planted):
    _, document = planted
    assert document.status == "ok"
    top = document.layers[0]
    assert top.name == "slow" and top.type.endswith("Sleep")
    assert top.fwd_us / 40e3 == pytest.approx(1.0, abs=0.2)
    assert top.bwd_us == 0.0  # a sleep makes no autograd node
    # nowhere else: the other layers are small beside it
    assert all(layer.total_us < 0.5 * top.total_us for layer in document.layers[1:])


def test_a_layer_called_T_times_a_step_is_one_layer_with_T_calls(planted):
    _, document = planted
    by_name = {layer.name: layer for layer in document.layers}
    assert by_name["recurrent"].calls == 6
    assert by_name["encoder"].calls == 1 and by_name["head"].calls == 1
    assert [layer.category for layer in document.layers if layer.name != "slow"] == \
        ["linear"] * 3  # fmt: skip


def test_the_categories_add_up_to_the_step(planted):
    _, document = planted
    coarse = document.breakdown.coarse
    for step in coarse.per_step:  # each step: exactly, by construction
        assert sum(step.host_us.values()) == pytest.approx(step.length_us, rel=1e-6)
    # the typical step (the middle half's mean) adds up exactly, and is a step that was seen
    assert sum(document.categories_us.values()) == pytest.approx(document.step_us, rel=1e-9)
    lengths = sorted(step.length_us for step in coarse.per_step)
    assert lengths[0] <= document.step_us <= lengths[-1]
    # the phases of a step are there, under e2e's names
    for phase in ("loss", "loss bwd", "optimizer", "data loading", "host-to-device copy"):
        assert phase in document.categories_us, phase
    assert document.categories_us["linear fwd"] > 0 and document.categories_us["linear bwd"] > 0


def test_the_operations_of_each_layer_are_named(planted):
    _, document = planted
    recurrent = next(layer for layer in document.layers if layer.name == "recurrent")
    names = {operation.name for operation in recurrent.operations}
    assert {"aten::addmm", "aten::mm"} & names
    counted = {operation.name: operation.count for operation in recurrent.operations}
    assert counted.get("aten::addmm") == 6  # one per call


def test_the_trace_names_the_layers_and_opens_as_chrome_json(planted):
    _, document = planted
    trace = json.loads(Path(document.breakdown.coarse.path).read_text())
    names = {event.get("name") for event in trace["traceEvents"]}
    assert {"kernelprof/slow fwd", "kernelprof/recurrent fwd", "kernelprof/step",
            "kernelprof/optimizer"} <= names  # fmt: skip


def test_the_profile_reads_back_and_prints_within_120_columns(planted, tmp_path):
    result, document = planted
    assert files.loads(files.dumps(document)) == document
    lines = result.stdout.splitlines()
    assert any(line.startswith("profiled step") for line in lines)
    assert max(len(line) for line in lines) <= 120
    assert "slow" in result.stdout and "Sleep" in result.stdout


def test_stop_ends_the_script_after_the_schedule(planted):
    result, document = planted
    assert "trained" not in result.stderr  # the script's last line never ran
    # warm-up, inspected, rounds, and the faster-path search's recording step (which found
    # nothing to measure: the script's neuron is its own)
    assert document.steps_seen == 3 + 1 + 3 * 7 + 1
    assert document.faster.paths == () and document.faster.base_s == ()
    assert "stopped after 26 steps" in result.stderr


def test_no_faster_rounds_no_search_step(tmp_path):
    result, document = profiled(tmp_path, "--sleep-ms", "1", "--steps", "200",
                                options=(*QUICK, "--faster-rounds", "0"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert document.faster is None and document.task.faster_rounds == 0
    assert document.steps_seen == 3 + 1 + 3 * 7


def test_the_schedule_alternates_plain_and_profiled_steps():
    order = schedule(2, 2, 1)
    assert [kind for kind, _, _ in order] == ["warm-up", "warm-up", "inspected", "plain", "open",
                                              "profiled", "open", "profiled", "plain", "plain",
                                              "open", "profiled"]  # fmt: skip
    assert [detailed for _, detailed, _ in order][-3:] == [True] * 3
    assert len(order) == needed_steps(2, 2, 1)  # what a too-short script is told it needs


def test_steps_marked_by_the_script_itself(tmp_path):
    options = ("--warmup", "1", "--steps", "2", "--op-steps", "1")
    result, document = profiled(tmp_path, "--mark-steps", "--sleep-ms", "5", "--steps", "200",
                                options=options)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert document.task.marker == "kernelprof.step()"
    assert document.status == "ok"
    assert "optimizer" in document.categories_us  # model.zero_grad()


def test_a_failing_script_keeps_its_traceback_exit_code_and_what_was_profiled(tmp_path):
    result, document = profiled(tmp_path, "--fail-at", "12", "--steps", "200", stop=False)
    assert result.returncode == 1
    assert "RuntimeError: planted failure in step 12" in result.stderr  # its own traceback
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kernelprof profile: the script exited with code 1")
    assert document is not None and document.status == "partial"
    assert document.exit_code == 1 and document.breakdown.coarse.steps >= 2


def test_a_script_that_never_steps_says_so(tmp_path):
    script = tmp_path / "nothing.py"
    script.write_text("import torch\nprint(torch.ones(2).sum().item())\n")
    result = run_kernelprof("profile", "--", "python", str(script))
    assert result.returncode == 1
    assert "2.0" in result.stdout
    assert "the script never stepped (no optimizer.step() call)" in result.stdout + result.stderr


def test_a_script_too_short_for_the_schedule_says_how_many_steps_it_needs(tmp_path):
    result, document = profiled(tmp_path, "--steps", "4", stop=False)
    assert document.status == "error"
    assert "stepped 4 times" in document.reason and "at least 25" in document.reason


@pytest.mark.parametrize(("args", "message"), [
    (("--", "python", "missing.py"), "missing.py: no such script"),
    ((), "give the training command after --"),
    (("--", "ls"), "ls: profile runs Python training scripts"),
    (("--steps", "0", "--", "python", SCRIPT), "--steps: must be >= 1, got 0"),
    (("--warmup", "0", "--", "python", SCRIPT), "--warmup: must be >= 1, got 0"),
    (("--device", "tpu", "--", "python", SCRIPT), "--device: unknown device 'tpu'"),
    (("--ac-pj", "0", "--", "python", SCRIPT), "--ac-pj: must be > 0, got 0"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run_in_process("profile", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


# ---- the Python API ----------------------------------------------------------------------------


class Sleep(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        import time

        time.sleep(self.seconds)
        return x


def _loop(prof, model, steps: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        prof.step()


def test_the_api_gives_the_same_result_the_command_line_writes(tmp_path):
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), Sleep(0.04), nn.Linear(128, 10))
    with kernelprof.profile(model, warmup=2, steps=4, op_steps=1,
                            out=tmp_path / "api.json") as prof:  # fmt: skip
        _loop(prof, model, 40)
    assert prof.done
    assert (tmp_path / "api.json").is_file()  # written when the schedule ended, unasked
    document = prof.result.document
    assert document.kernelprof == "profile" and document.task.entry == "api"
    assert [layer.name for layer in document.layers][0] == "2"
    assert document.layers[0].fwd_us / 40e3 == pytest.approx(1.0, abs=0.2)
    assert {layer.category for layer in document.layers} == {"linear", "other"}
    assert files.load(tmp_path / "api.json") == document


def test_calls_are_counted_in_the_profiled_steps_only_and_scripted_modules_are_layers():
    model = nn.Sequential(torch.jit.script(nn.Linear(64, 32)), nn.ReLU(), nn.Linear(32, 10))
    with kernelprof.profile(model, warmup=1, steps=2, op_steps=1) as prof:
        _loop(prof, model, 11)
    layers = {layer.name: layer for layer in prof.result.document.layers}
    assert sorted(layers) == ["0", "1", "2"]
    assert [layers[name].calls for name in "012"] == [1, 1, 1]  # not the ops step's calls too
    assert layers["0"].fwd_us > 0 and layers["0"].category == "other"  # a RecursiveScriptModule


def test_the_api_keeps_what_was_profiled_when_the_loop_ends_early():
    model = nn.Sequential(nn.Linear(64, 10))
    with kernelprof.profile(model, warmup=1, steps=6, op_steps=1) as prof:
        _loop(prof, model, 8)  # 1 warm-up + 7 steps: two rounds and a bit
    document = prof.result.document
    assert document.status == "partial"
    assert document.breakdown.coarse.steps == 2
    assert "2 of 6 profiled steps" in document.reason


class Fresh(nn.Module):
    """Maps 64 MiB anew in each call and writes a byte in every page: that many page faults a
    step, whatever state the process's allocator is in (huge pages refused, so that each 4 KiB
    page faults on its own)."""

    SIZE = 64 * 2**20

    def forward(self, x):
        memory = mmap.mmap(-1, self.SIZE)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            memory.madvise(mmap.MADV_NOHUGEPAGE)
        for offset in range(0, self.SIZE, mmap.PAGESIZE):
            memory[offset] = 1
        memory.close()
        return x


def test_plain_steps_count_their_page_faults():
    model = nn.Sequential(nn.Linear(64, 10), Fresh())
    with kernelprof.profile(model, warmup=1, steps=2, op_steps=1) as prof:
        _loop(prof, model, 11)
    document = prof.result.document
    breakdown = document.breakdown
    assert len(breakdown.plain_step_faults) == len(breakdown.plain_steps_us) == 3
    pages = Fresh.SIZE // mmap.PAGESIZE
    assert breakdown.faults_per_step >= 0.9 * pages
    assert any(line.startswith("page faults: ") for line in present_profile.notes(document))


def test_the_api_refuses_what_the_command_line_refuses():
    with pytest.raises(RequestError, match="--steps: must be >= 1, got 0"):
        kernelprof.profile(nn.Linear(2, 2), steps=0)
    with pytest.raises(RequestError, match="give the model"):
        kernelprof.profile("not a model")
    with pytest.raises(RequestError, match="a command is for the command line"):
        kernelprof.profile(nn.Linear(2, 2), script=("python", "x.py"))


def test_hooks_and_patches_are_gone_after_the_profile():
    model = nn.Sequential(nn.Linear(64, 10))
    to, backward = torch.Tensor.to, torch.autograd.backward
    with kernelprof.profile(model, warmup=1, steps=1, op_steps=1) as prof:
        _loop(prof, model, 8)
    assert torch.Tensor.to is to and torch.autograd.backward is backward
    assert not nn.modules.module._global_forward_pre_hooks
    assert not nn.modules.module._global_forward_hooks
    assert "step" not in torch.optim.Adam(model.parameters()).__dict__
    assert not [m for m in model.modules() if "forward" in m.__dict__]  # wrappers removed


# ---- profile diff -------------------------------------------------------------------------------


def test_profile_diff_finds_the_layer_that_changed(planted, tmp_path):
    _, base = planted
    slower, document = profiled(tmp_path, "--sleep-ms", "80", "--T", "6", "--steps", "200")
    assert slower.returncode == 0, slower.stderr
    comparison = layers.diff(base, document)
    assert comparison.layers_by[0].name == "slow"
    assert comparison.layers_by[0].delta_us / 40e3 == pytest.approx(1.0, abs=0.25)
    assert comparison.categories_by[0].name == "other fwd"
    a = tmp_path / "a.json"
    files.save(base, a)
    result = run_kernelprof("profile", "diff", str(a), str(tmp_path / "profile.json"))
    assert result.returncode == 0, result.stderr
    assert "by layer" in result.stdout and "slow" in result.stdout


def test_profile_diff_refuses_other_documents_in_one_line(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kernelprof": "check"}))
    result = run_in_process("profile", "diff", str(other), str(other))
    assert result.returncode == 2
    assert "not a kernelprof profile results file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---- synchronisation inside a step, and the GPU ------------------------------------------------


def _event(name: str, cat: str, ts: float, dur: float) -> dict:
    return {"ph": "X", "name": name, "cat": cat, "ts": ts, "dur": dur, "pid": 1, "tid": 1}


def test_a_synchronisation_inside_a_step_is_found_and_the_closing_one_is_not():
    from kernelprof.traces.steps import synchronisations_inside_steps

    step = _event("kernelprof/step", "user_annotation", 1000.0, 1000.0)
    closing = _event("cudaDeviceSynchronize", "cuda_runtime", 1990.0, 9.0)
    assert synchronisations_inside_steps({"traceEvents": [step, closing]}) == []
    inside = _event("cudaStreamSynchronize", "cuda_runtime", 1500.0, 5.0)
    outside = _event("cudaDeviceSynchronize", "cuda_runtime", 2500.0, 5.0)
    found = synchronisations_inside_steps({"traceEvents": [step, closing, inside, outside]})
    assert found == ["cudaStreamSynchronize"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="unavailable: no CUDA device")
def test_on_cuda_device_times_come_from_kernels_and_nothing_synchronises_inside_a_step():
    from kernelprof.traces.steps import synchronisations_inside_steps

    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10)).cuda()
    optimizer = torch.optim.Adam(model.parameters())
    x, y = torch.randn(256, 64, device="cuda"), torch.randint(0, 10, (256,), device="cuda")
    with kernelprof.profile(model, warmup=3, steps=4, op_steps=1) as prof:
        for _ in range(3 + 3 * 5):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            prof.step()
    document = prof.result.document
    assert document.time_kind == "device" and document.task.device.startswith("cuda")
    assert document.layers[0].operations  # kernels, by name
    assert all("aten::" not in op.name for layer in document.layers for op in layer.operations)
    trace = json.loads(Path(document.breakdown.coarse.path).read_text())
    assert synchronisations_inside_steps(trace) == []
