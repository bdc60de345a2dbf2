"""The 2025 framework study's table, reproduced: accuracy and training time per framework,
dataset and network, for direct surrogate-gradient training and for ANN-to-SNN conversion.

    .venv/bin/python benchmarks/study_table.py --preset quick   # digits, minutes on 2 CPU cores
    .venv/bin/python benchmarks/study_table.py --preset full --data-dir DATA  # MNIST, FMNIST, CIFAR

Direct: each cell trains in its own worker (kernelprof e2e's runner) and reports test accuracy
and the training time of all its epochs. Conversion: per dataset and network the ANN is trained
once, then each framework converts it in its own worker; a cell is the converted network's test
accuracy at T steps and the time to convert it (the ANN's accuracy and training time head the
column). Printed as Markdown; --json keeps every run's full result.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from kernelprof.frameworks import registry
from kernelprof.harness.device import default_device
from kernelprof.harness.worker import run_task
from kernelprof.runs.e2e import run as e2e_run
from reference_kernels.model import LIFConfig

PRESETS = {
    "quick": {"datasets": ["digits"], "models": ["cnn", "fc"], "epochs": 10, "T": 8,
              "conversion_T": 32},
    "full": {"datasets": ["mnist", "fmnist", "cifar10"], "models": ["cnn", "fc"], "epochs": 5,
             "T": 8, "conversion_T": 64},
}  # fmt: skip
MODES = ("direct", "conversion")
DIRECT_FRAMEWORKS = ["spikingjelly", "snntorch", "norse", "lava-dl", "reference"]
CONVERSION_FRAMEWORKS = ["spikingjelly", "sinabs", "lava-dl", "reference"]


def cell(row: dict) -> str:
    """A direct-training cell: accuracy / training time, or why there is none."""
    if row.get("status") != "ok":
        return f"{row.get('status', 'error')}"
    return f"{100 * row['test_accuracy']:.1f} % / {sum(row['epoch_s']):.1f} s"


def conversion_cell(row: dict) -> str:
    """A conversion cell: accuracy at T / conversion time, or why there is none."""
    if row.get("status") != "ok":
        return f"{row.get('status', 'error')}"
    return f"{100 * row['test_accuracy']:.1f} % / {row['convert_s']:.2f} s"


def base_task(dataset, model, device, args, preset) -> dict:
    return {
        "model": model, "dataset": dataset,
        "data_dir": None if args.data_dir is None else str(args.data_dir),
        "device": device, "seed": 0, "epochs": preset["epochs"], "steps": None,
        "batch_size": 64, "lr": 1e-2, "weight_gain": 4.0, "limit_train": None,
        "limit_test": None, "config": LIFConfig(surrogate="superspike", alpha=1.0).as_dict(),
    }  # fmt: skip


def run_direct(columns, frameworks, device, args, preset) -> list[dict]:
    results = []
    for dataset, model in columns:
        for framework in frameworks:
            task = {**base_task(dataset, model, device, args, preset), "function": e2e_run.DIRECT,
                    "framework": framework, "T": preset["T"]}  # fmt: skip
            row = run_task(task, timeout_s=3600)
            row.setdefault("framework", framework)
            results.append({"dataset": dataset, "model": model, "mode": "direct", **row})
            print(f"direct {dataset} {model} {framework}: {cell(row)}", file=sys.stderr,
                  flush=True)  # fmt: skip
    return results


def run_conversion(columns, frameworks, device, args, preset) -> list[dict]:
    results = []
    for dataset, model in columns:
        with tempfile.TemporaryDirectory(prefix="kernelprof-ann-") as scratch:
            ann_path = str(Path(scratch) / "ann.pt")
            task = {**base_task(dataset, model, device, args, preset), "function": e2e_run.ANN,
                    "T": preset["conversion_T"], "ann_path": ann_path}  # fmt: skip
            ann = run_task(task, timeout_s=3600)
            results.append({"dataset": dataset, "model": model, "mode": "ann",
                            "framework": "ANN", **ann})  # fmt: skip
            print(f"ANN {dataset} {model}: {cell(ann)}", file=sys.stderr, flush=True)
            for framework in frameworks:
                row = {"status": "error", "reason": "the ANN did not train"}
                if ann.get("status") == "ok":
                    row = run_task({**task, "function": e2e_run.CONVERT, "framework": framework},
                                   timeout_s=3600)  # fmt: skip
                row.setdefault("framework", framework)
                results.append({"dataset": dataset, "model": model, "mode": "conversion", **row})
                print(f"conversion {dataset} {model} {framework}: {conversion_cell(row)}",
                      file=sys.stderr, flush=True)  # fmt: skip
    return results


def table(results, mode, columns, frameworks, render) -> list[str]:
    lines = [
        "| framework | " + " | ".join(f"{d} {m}" for d, m in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for framework in frameworks:
        cells = []
        for dataset, model in columns:
            row = next(r for r in results if (r["mode"], r["dataset"], r["model"],
                       r["framework"]) == (mode, dataset, model, framework))  # fmt: skip
            cells.append(render(row))
        lines.append(f"| {framework} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--modes", default=",".join(MODES), help="direct,conversion")
    parser.add_argument("--frameworks", default=None,
                        help="default: every framework of the mode")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    preset = PRESETS[args.preset]
    device = args.device or str(default_device())
    columns = [(d, m) for d in preset["datasets"] for m in preset["models"]]
    chosen = None if args.frameworks is None else args.frameworks.split(",")
    results: list[dict] = []
    started = time.perf_counter()
    lines = []
    if "direct" in modes:
        frameworks = [f for f in chosen or DIRECT_FRAMEWORKS if f in registry.networks()]
        results += run_direct(columns, frameworks, device, args, preset)
        lines += [
            f"Direct training, T={preset['T']}, {preset['epochs']} epochs, batch 64, Adam 1e-2, "
            f"on {device}: test accuracy / training time",
            "",
            *table(results, "direct", columns, frameworks, cell),
            "",
        ]
    if "conversion" in modes:
        known = registry.conversion_routes()
        frameworks = [f for f in chosen or CONVERSION_FRAMEWORKS if f in known]
        results += run_conversion(columns, frameworks, device, args, preset)
        lines += [
            f"ANN-to-SNN conversion: the ANN twin trained {preset['epochs']} epochs (batch 64, "
            f"Adam 1e-2), converted, run T={preset['conversion_T']} steps, on {device}: test "
            "accuracy / conversion time (ANN row: accuracy / training time)",
            "",
            *table(results, "ann", columns, ["ANN"], cell),
            *table(results, "conversion", columns, frameworks, conversion_cell)[2:],
            "",
        ]
    lines.append(f"total wall time {time.perf_counter() - started:.0f} s")
    for row in results:
        if row.get("status") != "ok":
            lines.append(
                f"- {row['mode']} {row['dataset']} {row['model']} {row['framework']}: "
                f"{row.get('reason')}"
            )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
