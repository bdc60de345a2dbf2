#!/usr/bin/env bash
# Every GPU check of kernelprof in one go, for a lent GPU machine without internet:
#   benchmarks/gpu_check.sh RESULTS_DIR
# 1. installs the wheels carried in .whl/ (scripts/fetch-gpu-wheels.sh fills it) beside the
#    machine's own torch, triton and cupy;
# 2. runs the CUDA-marked tests (reference kernels on the GPU against the float64 oracle);
# 3. runs the reference-kernel benchmark (T=8, N=2^22, fp32/fp16/bf16, CUDA graph replays) with
#    its targets, and the memory-lean variant's benchmark (save="recompute" against the default);
# 4. runs `kernelprof compare --neuron lif --T 8` (every framework), the same for IF and PLIF,
#    and a sweep over T;
# 5. runs `kernelprof e2e` (CNN on digits, one epoch, every framework) with its traces;
# 6. runs `kernelprof profile` on two example scripts on CUDA (device times from kernels, the
#    inspected step's CUDA peak and saved bytes, NVML energy of the plain steps beside the estimate,
#    trace checked for synchronisation inside a step; the faster-path search: the study CNN's LIF
#    layers against kernelprof's compile, triton and cupy kernels and SpikingJelly's other CUDA
#    providers, each checked and measured in 3 rounds);
# 7. on request (GPU_CHECK_STEPS=study), runs `kernelprof study` on the device: 2 seeds of the quick
#    preset's CNN, through Ray (one GPU a task) where Ray imports there, else one cell at a time;
# 8. writes RESULTS_DIR/summary.json (versions, test counts, benchmark figures and targets).
# Each step has its own time limit (tests 150 s, bench 100 s, memory 60 s, compare 200 s,
# neurons 2 x 120 s + 2 x 90 s, sweep 45 s,
# e2e 150 s, profile 75 + 45 s,
# its 24 + 8 profiled steps per framework each in a profiler session of their own; on an H200
# every step used all of its limit, e2e then 75 s); a failing step is recorded in the summary
# and the next one still runs. All steps take about 11 minutes, so within a 15-minute lease as two
# back-to-back calls (the machine stays warm between them):
#   GPU_CHECK_STEPS=tests,bench,memory,sweep benchmarks/gpu_check.sh $OUT (about 6 minutes)
#   GPU_CHECK_STEPS=compare,e2e,profile benchmarks/gpu_check.sh $OUT    (about 7 minutes)
#   GPU_CHECK_STEPS=neurons benchmarks/gpu_check.sh $OUT                 (about 6 minutes)
# All output goes to RESULTS_DIR/run.log; RESULTS_DIR holds at most 8 files (the device tool
# brings back at most 8; the Chrome traces travel as one traces.tar.gz). Rehearse on CPU: the
# same script runs there (the CUDA tests are then skipped with their reason and the benchmark
# runs on the CPU).
set -uo pipefail
out="${1:?usage: benchmarks/gpu_check.sh RESULTS_DIR}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p "$out"
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

site="$(mktemp -d)"
work="$(mktemp -d)"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl \
        >>"$out/run.log" 2>&1 || echo "wheel install failed: see run.log" >&2
fi
export PYTHONPATH="$root:$site${PYTHONPATH:+:$PYTHONPATH}"

start=$(date +%s)
"$python" - "$work/versions.json" >>"$out/run.log" 2>&1 <<'PY'
import json, platform, importlib, sys
out = {"python": platform.python_version()}
for name in ("torch", "triton", "cupy", "pynvml", "rich", "pytest", "spikingjelly", "snntorch", "norse"):
    try:
        out[name] = getattr(importlib.import_module(name), "__version__", "installed")
    except Exception as error:
        out[name] = f"unavailable: {type(error).__name__}: {error}"
import torch
out["cuda_available"] = torch.cuda.is_available()
if torch.cuda.is_available():
    out["gpu"] = torch.cuda.get_device_name(0)
    out["torch_cuda"] = torch.version.cuda
with open(sys.argv[1], "w") as file:  # packages may print on import: keep stdout out of it
    json.dump(out, file, indent=2)
PY
cat "$work/versions.json"

# GPU_CHECK_STEPS picks steps (default all), e.g. to rerun only what failed in a short lease.
steps=",${GPU_CHECK_STEPS:-tests,bench,memory,compare,sweep,e2e,profile,neurons},"
want() { [[ "$steps" == *",$1,"* ]]; }
tests_rc=-1
bench_rc=-1

if want tests; then
    # Failures are logged as they happen (a time limit would lose pytest's own summary).
    KERNELPROF_FAILURE_LOG="$work/failures.log" PYTHONPATH="$root/benchmarks:$PYTHONPATH" \
        timeout 150 "$python" -m pytest -q -m cuda -p no:cacheprovider -p pytest_failure_log \
        -rfE --tb=short --junitxml="$out/cuda-tests.xml" tests 2>&1 | tee -a "$out/run.log"
    tests_rc=${PIPESTATUS[0]}
    echo "---- failures and slow tests, as logged ----" >>"$out/run.log"
    cat "$work/failures.log" >>"$out/run.log" 2>/dev/null
fi

# The slow cases of the tests' grids (opt-in: GPU_CHECK_STEPS=...,slow), which `make test` leaves
# out: they need no GPU, but a lent machine has the cores to run them.
if want slow; then
    timeout 120 "$python" -m pytest -q -m slow -p no:cacheprovider -rfE --tb=short tests 2>&1 \
        | tee -a "$out/run.log"
fi

if want bench; then
    timeout 100 "$python" benchmarks/lif_kernels.py --dtype fp32,fp16,bf16 \
        --impls ref-triton,ref-cupy --json "$out/benchmark.json" 2>&1 | tee -a "$out/run.log"
    bench_rc=${PIPESTATUS[0]}
fi

# What save="recompute" keeps and costs (kept in $work: the device tool brings back 8 files).
if want memory; then
    timeout 60 "$python" benchmarks/saved_memory.py --json "$work/saved_memory.json" 2>&1 \
        | tee -a "$out/run.log"
fi

# The README's main command on the GPU, then a sweep over T of the fused implementations.
if want compare; then
    timeout 200 "$python" -m kernelprof.cli compare --neuron lif --T 8 \
        --out "$out/compare_T8.json" --trace-dir "$work/traces/compare" 2>&1 | tee -a "$out/run.log"
fi
# IF and PLIF (one learned decay) on the GPU: every implementation at T=8, and the fused
# kernels' % of copy bandwidth per phase; then CUBA and ALIF (no fused kernels yet: ref-compile
# and the frameworks that run them, lava-dl left out: its CUDA build at first use would take the
# step's time). The documents stay in $work; the summary holds them. Rehearsed on the 2-core CPU
# (6m33s, rc 0): IF and PLIF complete; CUBA and ALIF at the CPU's N=2^20 reach their 90 s limit
# while checking, and their documents say interrupted.
if want neurons; then
    for neuron in if plif; do
        timeout 120 "$python" -m kernelprof.cli compare --neuron "$neuron" --T 8 --no-energy \
            --out "$work/compare_${neuron}_T8.json" 2>&1 | tee -a "$out/run.log"
    done
    for neuron in cuba alif; do
        timeout 90 "$python" -m kernelprof.cli compare --neuron "$neuron" --T 8 --no-energy \
            --skip lava-dl --out "$work/compare_${neuron}_T8.json" 2>&1 | tee -a "$out/run.log"
    done
fi
if want sweep; then
    timeout 45 "$python" -m kernelprof.cli compare --neuron lif --T 4,8,16,32 --repeat-s 0.1 \
        --no-energy --impls ref-triton,ref-cupy,spikingjelly,spikingjelly-triton \
        --out "$out/compare_sweep.json" 2>&1 | tee -a "$out/run.log"
fi

# End-to-end training on the device (digits ships with scikit-learn, so no download is needed).
if want e2e; then
    timeout 150 "$python" -m kernelprof.cli e2e --model cnn --dataset digits --epochs 1 \
        --frameworks spikingjelly,snntorch,norse,lava-dl,reference \
        --out "$out/e2e_cnn_digits.json" --trace-dir "$work/traces/e2e" 2>&1 | tee -a "$out/run.log"
fi
# Unchanged training scripts profiled on the device: a SpikingJelly CNN and a snnTorch loop
# (PROFILE_DEVICE=cpu rehearses this step and its summary on the CPU).
if want profile; then
    device="${PROFILE_DEVICE:-cuda}"
    for example in study_cnn snntorch_fc; do
        limit=45; [[ $example == study_cnn ]] && limit=75  # its search compiles a kernel
        timeout "$limit" "$python" -m kernelprof.cli profile --device "$device" --stop \
            --faster-rounds 3 \
            --out "$work/profile_$example.json" --trace-dir "$work/traces/profile_$example" \
            -- python "examples/$example.py" --device "$device" --steps 200 2>&1 \
            | tee -a "$out/run.log"
    done
fi
# The study as cells on the device (opt-in: GPU_CHECK_STEPS=...,study): Ray's executor with one
# GPU a task where Ray imports here, else the local executor, said in the summary. Ray's wheel
# (79 MB for Python 3.12) is over the device tool's 64 MiB carry, so it is not in .whl/.
if want study; then
    executor=local
    "$python" -c "import ray" >/dev/null 2>&1 && executor=ray
    echo "$executor" >"$work/study_executor.txt"
    timeout 240 "$python" -m kernelprof.cli study --preset quick --seeds 2 --models cnn \
        --modes direct --neuron-settings canonical --frameworks spikingjelly,snntorch,reference \
        --epochs 2 --device "${STUDY_DEVICE:-cuda}" --executor "$executor" --out "$work/study" \
        2>&1 | tee -a "$out/run.log"
fi
if [[ -d "$work/traces" ]]; then
    tar -czf "$out/traces.tar.gz" -C "$work" traces >>"$out/run.log" 2>&1
    if (( $(stat -c %s "$out/traces.tar.gz") > 15 * 1024 * 1024 )); then  # 16 MiB a file comes back
        echo "traces.tar.gz over 15 MiB: the e2e operations traces (*_ops.json) left out" \
            | tee -a "$out/run.log"
        tar -czf "$out/traces.tar.gz" --exclude='*_ops.json' -C "$work" traces >>"$out/run.log" 2>&1
    fi
fi

"$python" - "$out" "$tests_rc" "$bench_rc" "$start" "$work" <<'PY'
import json, sys, time
import xml.etree.ElementTree as ET
from pathlib import Path
out, tests_rc, bench_rc, start = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
work = Path(sys.argv[5])
summary = {"tests": {"exit_code": tests_rc}, "benchmark": {"exit_code": bench_rc}}
try:
    summary["versions"] = json.loads((work / "versions.json").read_text())
except (OSError, json.JSONDecodeError) as error:
    summary["versions"] = {"error": f"{error} (see run.log)"}
try:
    suite = ET.parse(out / "cuda-tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    for key in ("tests", "failures", "errors", "skipped"):
        summary["tests"][key] = int(suite.get(key, 0))
except (OSError, ET.ParseError) as error:
    summary["tests"]["error"] = str(error)
from kernelprof.present.compare import flat_rows
from kernelprof.results import files
from kernelprof.results.record import decode, encode
from kernelprof.results.compare import CompareDocument
try:
    benchmark = json.loads((out / "benchmark.json").read_text())
    document = decode(CompareDocument, benchmark["compare"])
    summary["benchmark"]["copy_bandwidth_gb_per_s"] = document.copy_bandwidth_gb_per_s
    summary["benchmark"]["targets"] = benchmark["targets"]
    summary["benchmark"]["rows"] = list(flat_rows(document))
except (OSError, KeyError, ValueError) as error:
    summary["benchmark"]["error"] = str(error)
try:
    memory = json.loads((work / "saved_memory.json").read_text())
    summary["saved_memory"] = {
        name: {"status": entry.get("status"), "checks": entry.get("checks"),
               "memory": entry.get("memory"), "timings": entry.get("timings")}
        for name, entry in memory["backends"].items()}
    summary["saved_memory"]["triton_configs"] = memory.get("triton_configs")
except (OSError, KeyError, json.JSONDecodeError) as error:
    summary["saved_memory"] = {"error": str(error)}
for name in ("compare_T8", "compare_if_T8", "compare_plif_T8", "compare_cuba_T8", "compare_alif_T8",
             "compare_sweep"):
    try:
        found = out / f"{name}.json"
        document = files.load(found if found.exists() else work / f"{name}.json")
        summary[name] = {"copy_bandwidth_gb_per_s": document.copy_bandwidth_gb_per_s,
                         "noise_probe": encode(document.noise_probe),
                         "interrupted": document.interrupted, "rows": list(flat_rows(document)),
                         "flags": {row.impl: [flag.message for flag in row.flags]
                                   for row in document.rows},
                         "warm_up": {row.impl: {phase: encode(timing.warm_up)
                                                for phase, timing in row.timings.items()}
                                     for row in document.rows if row.timings}}
    except (OSError, ValueError) as error:
        summary[name] = {"error": str(error)}
try:
    document = files.load(out / "e2e_cnn_digits.json")
    summary["e2e"] = {
        "rows": [{"framework": row.framework, "status": row.status, "reason": row.reason}
                 | ({} if row.training is None else {
                     "test_accuracy": row.training.test_accuracy,
                     "step_median_s": row.training.step_median_s,
                     "profiled_step_s": row.training.profiled_step_s,
                     "breakdown_s": dict(row.training.breakdown_s),
                     "matches_plain_step": row.training.breakdown.matches_plain_step,
                     "detailed_overhead": row.training.breakdown.detailed_overhead,
                     "launch": dict(row.training.breakdown.coarse.launch),
                     "energy": encode(row.training.energy),
                     "peak_bytes": row.training.peak_bytes})
                 for row in document.rows],
        "attribution": encode(document.attribution)}
except (OSError, ValueError) as error:
    summary["e2e"] = {"error": str(error)}
for example in ("study_cnn", "snntorch_fc"):
    try:
        document = files.load(work / f"profile_{example}.json")
        from kernelprof.traces import steps as trace_steps

        trace = json.loads(Path(document.breakdown.coarse.path).read_text())
        inside = trace_steps.synchronisations_inside_steps(trace)
        summary[f"profile_{example}"] = {
            "status": document.status, "time_kind": document.time_kind,
            "step_ms": document.step_us / 1e3,
            "profiled_over_plain": document.breakdown.profiled_over_plain,
            "categories_ms": {k: v / 1e3 for k, v in document.categories_us.items()},
            "layers": [{"name": l.name, "category": l.category, "calls": l.calls,
                        "fwd_ms": l.fwd_us / 1e3, "bwd_ms": l.bwd_us / 1e3,
                        "neuron": encode(l.neuron)} for l in document.layers],
            "roofline": encode(document.roofline), "problems": list(document.problems),
            "inspection": encode(document.inspection), "energy": encode(document.energy),
            "faster": encode(document.faster),
            "faster_speedups": encode(document.faster_speedups),
            "synchronisations_inside_steps": inside}
    except (OSError, ValueError, AttributeError) as error:
        summary[f"profile_{example}"] = {"error": str(error)}
if (work / "study").is_dir():
    try:
        from kernelprof.results.store import Store
        from kernelprof.runs.study.run import documents_of
        from kernelprof.requests.study import PRESETS

        seeds, _, problems = documents_of(Store(work / "study"), PRESETS["quick"])
        summary["study"] = {"executor": (work / "study_executor.txt").read_text().strip(),
                            "summary": encode(seeds), "problems": problems}
    except (OSError, ValueError) as error:
        summary["study"] = {"error": str(error)}
summary["wall_s"] = time.time() - start
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps({k: summary[k] for k in ("tests", "wall_s")}, indent=2))
PY
