"""The 2025 framework study's table, reproduced: accuracy and training time per framework,
dataset and network (direct surrogate-gradient training; ANN-to-SNN conversion is not built yet).

    .venv/bin/python benchmarks/study_table.py --preset quick   # digits, minutes on 2 CPU cores
    .venv/bin/python benchmarks/study_table.py --preset full --data-dir DATA  # MNIST, FMNIST, CIFAR

Each cell trains in its own worker (kernelprof e2e's runner) and reports test accuracy and the
training time of all its epochs. Printed as Markdown; --json keeps every run's full result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kernelprof.e2e.networks import FRAMEWORKS
from kernelprof.harness.device import default_device
from kernelprof.harness.worker import run_task
from kernelprof.lif import LIFConfig

PRESETS = {
    "quick": {"datasets": ["digits"], "models": ["cnn", "fc"], "epochs": 10, "T": 8},
    "full": {"datasets": ["mnist", "fmnist", "cifar10"], "models": ["cnn", "fc"], "epochs": 5,
             "T": 8},
}  # fmt: skip
STUDY_FRAMEWORKS = [f for f in FRAMEWORKS if f != "reference-compile"]


def cell(row: dict) -> str:
    if row.get("status") != "ok":
        return f"{row.get('status', 'error')}"
    return f"{100 * row['test_accuracy']:.1f} % / {sum(row['epoch_s']):.1f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--frameworks", default=",".join(STUDY_FRAMEWORKS))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    device = args.device or str(default_device())
    frameworks = args.frameworks.split(",")
    results = []
    started = time.perf_counter()
    for dataset in preset["datasets"]:
        for model in preset["models"]:
            for framework in frameworks:
                task = {
                    "kind": "e2e", "framework": framework, "model": model, "dataset": dataset,
                    "data_dir": None if args.data_dir is None else str(args.data_dir),
                    "device": device, "seed": 0, "epochs": preset["epochs"], "steps": None,
                    "T": preset["T"], "batch_size": 64, "lr": 1e-2, "weight_gain": 4.0,
                    "limit_train": None, "limit_test": None,
                    "config": LIFConfig(surrogate="superspike", alpha=1.0).as_dict(),
                }  # fmt: skip
                row = run_task(task, timeout_s=3600)
                row.setdefault("framework", framework)
                results.append({"dataset": dataset, "model": model, "mode": "direct", **row})
                print(f"{dataset} {model} {framework}: {cell(row)}", file=sys.stderr, flush=True)
    columns = [(d, m) for d in preset["datasets"] for m in preset["models"]]
    lines = [
        f"Direct training, T={preset['T']}, {preset['epochs']} epochs, batch 64, Adam 1e-2, on "
        f"{device}: test accuracy / training time",
        "",
        "| framework | " + " | ".join(f"{d} {m}" for d, m in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for framework in frameworks:
        cells = []
        for dataset, model in columns:
            row = next(r for r in results if (r["dataset"], r["model"], r["framework"]) == (
                dataset, model, framework))  # fmt: skip
            cells.append(cell(row))
        lines.append(f"| {framework} | " + " | ".join(cells) + " |")
    lines += ["", f"total wall time {time.perf_counter() - started:.0f} s"]
    for row in results:
        if row.get("status") != "ok":
            lines.append(
                f"- {row['dataset']} {row['model']} {row['framework']}: {row.get('reason')}"
            )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
