"""The compare and check tables fit 120 columns: what did not run is listed under them with its
reason (--all-rows keeps it in), and a column empty in every row is left out."""

from __future__ import annotations

import pytest
from rich.console import Console

from kernelprof.present import report

TIMED = ["ref-torch", "ref-compile", "spikingjelly", "snntorch", "norse", "lava-dl"]
NOT_RUN = {"ref-triton": "unavailable", "spikingjelly-legacy-cupy": "unavailable",
           "sinabs": "unsupported"}  # fmt: skip


def timing(ms: float) -> dict:
    return {"median_s": ms / 1e3, "iqr_s": ms / 1e3 * 0.04, "first_call_s": 0.2, "warnings": [],
            "gb_per_s": 2.5, "copy_bandwidth_fraction": 0.103, "device_s": 0.8 * ms / 1e3,
            "device_iqr_s": ms / 1e3 * 0.02, "call_s": ms / 1e3, "launch_s": 1.2 * ms / 1e3,
            "device_source": "kernels"}  # fmt: skip


def compare_run(energy: bool) -> dict:
    rows = []
    for index, impl in enumerate(TIMED):
        rows.append({
            "impl": impl, "verdict": "approximate" if impl == "lava-dl" else "exact",
            "reason": "fixed point", "path": "python loop", "speedup": 0.375 + index,
            "speedup_interval": [0.3 + index, 10.5 + index], "speedup_call": 0.5 + index,
            "speedup_call_interval": [0.45 + index, 10.55 + index],
            "inconsistent": ["fwd rounds disagree: 1, 2, 3 ms"] if index == 1 else [],
            "launch_bound": {"fwd": {"call_s": 2.0, "device_s": 1.0, "launch_s": 2.0,
                                     "basis": "call time against the summed kernel time"}}
            if index == 2 else {},
            "timings": {p: timing(213.985 + 100 * index) for p in ("fwd", "bwd", "fwd+bwd")},
            "kernels_per_fwd_bwd": 1108, "kernel_kind": "aten ops (CPU)",
            "peak_bytes": 256 * 2**20, "saved_bytes": 152 * 2**20,
            "energy": {"joules_per_call": 1.203} if energy else
            {"joules_per_call": None, "unavailable_reason": "n/a: no RAPL counter readable"},
        })  # fmt: skip
    for impl, verdict in NOT_RUN.items():
        rows.append({"impl": impl, "verdict": verdict, "reason": f"{impl} cannot run here"})
    return {"case": {"T": 8, "N": 1_048_576, "dtype": "fp32"}, "rows": rows,
            "device": {"name": "x86_64 CPU, 2 threads"}, "copy_bandwidth_gb_per_s": 24.2,
            "baseline": "spikingjelly"}  # fmt: skip


def check_document() -> dict:
    rows = [
        {"impl": impl, "verdict": "exact", "status": "ok", "reason": "", "spike_mismatches": 1,
         "spike_mismatch_fraction": 3e-5, "threshold_ties": 0, "v_max_abs_diff": 1e-7,
         "grad_max_abs_diff": 5e-7, "grad_cosine": 1.0, "path": "a long code path " * 5,
         "timed_build": {"agrees": True}}
        for impl in TIMED
    ] + [{"impl": impl, "verdict": verdict, "status": verdict, "reason": "here is why"}
         for impl, verdict in NOT_RUN.items()]  # fmt: skip
    return {"case": {"T": 8, "N": 4096, "dtype": "fp32"}, "rows": rows,
            "config": {"tau": 2.0, "v_reset": 0.0, "detach_reset": False, "decay_input": True,
                       "surrogate": "superspike", "alpha": 1.0},
            "environment": {"device": {"name": "x86_64 CPU, 2 threads"}}}  # fmt: skip


def rendered(table) -> tuple[list[str], str]:
    """The table's own lines (title and grid, without the caption) and all of its text."""
    console = Console(width=400, record=True)
    console.print(table)
    text = console.export_text()
    lines = [line.rstrip() for line in text.splitlines()]
    rule = next(i for i, line in enumerate(lines) if "───" in line)
    end = next(i for i in range(rule, len(lines)) if not lines[i].strip())
    return lines[:end], text


@pytest.mark.parametrize("energy", [False, True])
def test_the_compare_tables_fit_120_columns(energy):
    grid, text = rendered(report.verdict_table(compare_run(energy)))
    assert max(len(line) for line in grid) <= 120, "\n".join(grid)
    assert ("mJ" in "\n".join(grid)) == energy  # an energy column only where energy was measured
    times, _ = rendered(report.time_table(compare_run(energy)))
    assert max(len(line) for line in times) <= 120, "\n".join(times)
    assert "5.45-15.55" in "\n".join(times)  # the widest call-speedup interval fits too
    for impl in NOT_RUN:
        assert not any(line.lstrip().startswith(impl) for line in grid)
        assert f"{impl}: {NOT_RUN[impl]}: {impl} cannot run here" in text
    assert "not run here:" in text


def test_flags_and_their_reasons_are_shown():
    grid, text = rendered(report.verdict_table(compare_run(False)))
    last = {line.split()[0]: line.split()[-1] for line in grid[4:] if line.strip()}
    assert (last["ref-compile"], last["spikingjelly"], last["snntorch"]) == ("busy?", "launch",
                                                                            "152.0")  # fmt: skip
    assert "ref-compile: inconsistent (machine busy?): fwd rounds disagree: 1, 2, 3 ms" in text
    assert "spikingjelly: fwd launch-bound: call 2000 ms vs device 1000 ms (+100%)" in text


def test_all_rows_keeps_what_did_not_run_in_the_compare_table():
    grid, text = rendered(report.kernel_table(compare_run(False), all_rows=True))
    assert "not run here:" not in text
    assert "sinabs" in text.split("ms: median")[0]


def test_the_check_table_fits_120_columns_and_moves_code_paths_under_it():
    grid, text = rendered(report.check_table(check_document()))
    assert max(len(line) for line in grid) <= 120, "\n".join(grid)
    assert "ref-torch: path: a long code path" in text
    assert "sinabs: unsupported: here is why" in text.split("not run here:")[1]
