#!/usr/bin/env bash
# Every GPU check of kernelprof in one go, for a lent GPU machine without internet:
#   benchmarks/gpu_check.sh RESULTS_DIR
# 1. installs the wheels carried in .whl/ (scripts/fetch-gpu-wheels.sh fills it) beside the
#    machine's own torch, triton and cupy;
# 2. runs the CUDA-marked tests (reference kernels on the GPU against the float64 oracle);
# 3. runs the reference-kernel benchmark (T=8, N=2^22, fp32/fp16/bf16) with its targets;
# 4. runs `kernelprof compare --neuron lif --T 8` (every framework) and a sweep over T;
# 5. writes RESULTS_DIR/summary.json (versions, test counts, benchmark figures and targets).
# Each step has its own time limit so the whole run stays under 6 minutes; a failing step is
# recorded in the summary and the next one still runs. All output goes to RESULTS_DIR/run.log;
# RESULTS_DIR holds 7 files (the device tool brings back at most 8). Rehearse on CPU: the same script runs there
# (the CUDA tests are then skipped with their reason and the benchmark runs on the CPU).
set -uo pipefail
out="${1:?usage: benchmarks/gpu_check.sh RESULTS_DIR}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p "$out"
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

site="$(mktemp -d)"
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl/*.whl \
        >>"$out/run.log" 2>&1 || echo "wheel install failed: see run.log" >&2
fi
export PYTHONPATH="$root:$site${PYTHONPATH:+:$PYTHONPATH}"

start=$(date +%s)
"$python" - "$out/versions.json" >>"$out/run.log" 2>&1 <<'PY'
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
cat "$out/versions.json"

timeout 100 "$python" -m pytest -q -m cuda -p no:cacheprovider --junitxml="$out/cuda-tests.xml" \
    tests 2>&1 | tee -a "$out/run.log"
tests_rc=${PIPESTATUS[0]}

timeout 60 "$python" benchmarks/lif_kernels.py --dtype fp32,fp16,bf16 --impls ref-triton,ref-cupy \
    --json "$out/benchmark.json" 2>&1 | tee -a "$out/run.log"
bench_rc=${PIPESTATUS[0]}

# The README's main command on the GPU, then a sweep over T of the fused implementations.
timeout 150 "$python" -m kernelprof.cli compare --neuron lif --T 8 --out "$out/compare_T8.json" \
    2>&1 | tee -a "$out/run.log"
timeout 50 "$python" -m kernelprof.cli compare --neuron lif --T 4,8,16,32 --repeat-s 0.1 --no-energy \
    --impls ref-compile,ref-triton,ref-cupy,spikingjelly,spikingjelly-triton,spikingjelly-cuda \
    --out "$out/compare_sweep.json" 2>&1 | tee -a "$out/run.log"

"$python" - "$out" "$tests_rc" "$bench_rc" "$start" <<'PY'
import json, sys, time
import xml.etree.ElementTree as ET
from pathlib import Path
out, tests_rc, bench_rc, start = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
summary = {"tests": {"exit_code": tests_rc}, "benchmark": {"exit_code": bench_rc}}
try:
    summary["versions"] = json.loads((out / "versions.json").read_text())
except (OSError, json.JSONDecodeError) as error:
    summary["versions"] = {"error": f"{error} (see run.log)"}
try:
    suite = ET.parse(out / "cuda-tests.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    for key in ("tests", "failures", "errors", "skipped"):
        summary["tests"][key] = int(suite.get(key, 0))
except (OSError, ET.ParseError) as error:
    summary["tests"]["error"] = str(error)
try:
    document = json.loads((out / "benchmark.json").read_text())
    summary["benchmark"]["copy_bandwidth_gb_per_s"] = document["copy_bandwidth_gb_per_s"]
    summary["benchmark"]["targets"] = document["targets"]
    summary["benchmark"]["rows"] = [
        {"case": run["case"], "impl": row["impl"], "verdict": row.get("verdict"),
         **{f"{phase}_ms": 1e3 * t["median_s"] for phase, t in row.get("timings", {}).items()},
         "copy_bandwidth_fraction": row.get("timings", {}).get("fwd+bwd", {}).get("copy_bandwidth_fraction")}
        for run in document["runs"] for row in run["rows"]]
except (OSError, KeyError, json.JSONDecodeError) as error:
    summary["benchmark"]["error"] = str(error)
summary["wall_s"] = time.time() - start
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps({k: summary[k] for k in ("tests", "wall_s")}, indent=2))
PY
