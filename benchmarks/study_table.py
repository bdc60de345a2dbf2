"""The 2025 framework study's table, reproduced: accuracy and training time per framework,
dataset and network, for direct surrogate-gradient training (in both neuron settings) and for
ANN-to-SNN conversion, with the study's three claims checked against what was measured.

    .venv/bin/python benchmarks/study_table.py --preset quick   # digits, minutes on 2 CPU cores
    .venv/bin/python benchmarks/study_table.py --preset full    # MNIST + Fashion-MNIST, < 90 min

Direct: each cell trains in its own worker (kernelprof e2e's runner), once with the canonical
LIF in every framework (differences are speed only) and once with each framework's own default
neuron (framework-defaults: each row says how that neuron differs from the canonical one).
Conversion: per dataset and network the ANN is trained once and each framework converts it in
its own worker (lava-dl trains its own SNN through bootstrap instead); a cell is the SNN's test
accuracy at T steps. Every run is also written as an ordinary e2e results document, so
``kernelprof report`` reads them; the study itself is written as Markdown, JSON and HTML
(``--out DIR``: study.md, study.json, study.html).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kernelprof.frameworks import registry
from kernelprof.harness.device import default_device
from kernelprof.harness.worker import run_task
from kernelprof.results import schema
from kernelprof.results.analysis import attribution
from kernelprof.runs.e2e import run as e2e_run
from kernelprof.runs.e2e.settings import SETTINGS
from kernelprof.runs.environment import environment
from reference_kernels.model import LIFConfig

# Sized to the 2-core CPU: "full" runs within 90 minutes there (a whole Fashion-MNIST epoch of
# five frameworks' CNNs alone takes about 25 minutes, so the training sets are cut and printed).
PRESETS = {
    "quick": {"datasets": ["digits"], "models": ["cnn", "fc"], "epochs": 10, "T": 8,
              "conversion_T": 32, "limit_train": None, "limit_test": None},
    "full": {"datasets": ["mnist", "fmnist"], "models": ["cnn", "fc"], "epochs": 1, "T": 8,
             "conversion_T": 32, "limit_train": 12800, "limit_test": 2000},
}  # fmt: skip
MODES = ("direct", "conversion")
DIRECT_FRAMEWORKS = ["spikingjelly", "snntorch", "norse", "lava-dl", "reference"]
CONVERSION_FRAMEWORKS = ["spikingjelly", "sinabs", "lava-dl", "reference"]
BATCH, LR, WEIGHT_GAIN = 64, 1e-2, 4.0
# Step-time ratios closer than this are not told apart on this shared, noisy machine.
RESOLVED = 0.05


def cell(row: dict) -> str:
    """A direct-training cell: accuracy / training time, or why there is none."""
    if row.get("status") != "ok":
        return f"{row.get('status', 'error')}"
    return f"{100 * row['test_accuracy']:.1f} % / {sum(row['epoch_s']):.1f} s"


def conversion_cell(row: dict) -> str:
    """A conversion cell: accuracy at T / the time to get the SNN (its own training for a
    route that trains, else the conversion), or why there is none."""
    if row.get("status") != "ok":
        return f"{row.get('status', 'error')}"
    if row.get("training"):
        return f"{100 * row['test_accuracy']:.1f} % / {row['training']['train_s']:.1f} s trained"
    return f"{100 * row['test_accuracy']:.1f} % / {row['convert_s']:.2f} s"


def base_task(dataset, model, device, args, preset) -> dict:
    return {
        "model": model, "dataset": dataset,
        "data_dir": None if args.data_dir is None else str(args.data_dir),
        "device": device, "seed": 0, "epochs": preset["epochs"], "steps": None,
        "batch_size": BATCH, "lr": LR, "weight_gain": WEIGHT_GAIN,
        "limit_train": preset["limit_train"], "limit_test": preset["limit_test"],
        "config": LIFConfig(surrogate="superspike", alpha=1.0).as_dict(),
    }  # fmt: skip


def _document(mode: str, task: dict, env: dict) -> dict:
    document = schema.new_document("e2e", env)
    document.update(mode=mode, task={k: v for k, v in task.items() if k != "function"},
                    notes=[], rows=[])  # fmt: skip
    return document


def _log(started: float, text: str) -> None:
    print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {text}", file=sys.stderr, flush=True)


def run_direct(columns, frameworks, settings, device, args, preset, env, started) -> list[dict]:
    documents = []
    for dataset, model in columns:
        for setting in settings:
            task = {
                **base_task(dataset, model, device, args, preset),
                "function": e2e_run.DIRECT,
                "T": preset["T"],
                "neuron_setting": setting,
            }
            document = _document("direct", task, env)
            for framework in frameworks:
                row = run_task({**task, "framework": framework}, timeout_s=3600)
                row.setdefault("framework", framework)
                document["rows"].append(row)
                _log(started, f"direct {setting} {dataset} {model} {framework}: {cell(row)}")
            document["attribution"] = attribution(document["rows"])
            documents.append(document)
    return documents


def run_conversion(columns, frameworks, device, args, preset, env, started) -> list[dict]:
    documents = []
    for dataset, model in columns:
        with tempfile.TemporaryDirectory(prefix="kernelprof-ann-") as scratch:
            task = {
                **base_task(dataset, model, device, args, preset),
                "function": e2e_run.ANN,
                "T": preset["conversion_T"],
                "ann_path": str(Path(scratch) / "ann.pt"),
            }
            document = _document("conversion", task, env)
            document["ann"] = run_task(task, timeout_s=3600)
            _log(started, f"ANN {dataset} {model}: {cell(document['ann'])}")
            for framework in frameworks:
                row = {"status": "error", "reason": "the ANN did not train"}
                if document["ann"].get("status") == "ok":
                    row = run_task({**task, "function": e2e_run.CONVERT, "framework": framework},
                                   timeout_s=3600)  # fmt: skip
                row.setdefault("framework", framework)
                document["rows"].append(row)
                _log(started, f"conversion {dataset} {model} {framework}: "
                              f"{conversion_cell(row)}")  # fmt: skip
            documents.append(document)
    return documents


# ---- the tables and the claims (pure: tested in tests/test_benchmarks.py) ---------------------


def _key(document: dict) -> tuple[str, str]:
    return document["task"]["dataset"], document["task"]["model"]


def table(documents: list[dict], render, extra_row=None) -> tuple[list[str], list[list[str]]]:
    """(header, rows): a row per framework, a column per dataset and network."""
    header = ["framework", *(f"{d} {m}" for d, m in map(_key, documents))]
    frameworks = list(dict.fromkeys(r["framework"] for doc in documents for r in doc["rows"]))
    rows = []
    if extra_row is not None:
        rows.append(extra_row(documents))
    for framework in frameworks:
        cells = []
        for document in documents:
            row = next((r for r in document["rows"] if r["framework"] == framework), {})
            cells.append(render(row))
        rows.append([framework, *cells])
    return header, rows


def _ann_row(documents: list[dict]) -> list[str]:
    return ["ANN (shared)", *(cell(doc.get("ann") or {}) for doc in documents)]


def _ok(document: dict) -> list[dict]:
    return [row for row in document["rows"] if row.get("status") == "ok"]


# kernelprof's own kernels: in the tables as the yardstick, but not one of the study's
# frameworks, so never a contender in its claims.
YARDSTICKS = ("reference", "reference-compile")


def _contenders(document: dict) -> list[dict]:
    return [row for row in _ok(document) if row["framework"] not in YARDSTICKS]


def fastest(document: dict) -> dict:
    """Per column: the framework with the lowest median step time, and SpikingJelly's step
    time over it (1.0 when SpikingJelly is the fastest); the yardsticks do not compete."""
    ok = _contenders(document)
    if not ok:
        return {"fastest": None, "spikingjelly_over_fastest": None, "runner_up_over_fastest": None}
    ranked = sorted(ok, key=lambda row: row["step_median_s"])
    sj = next((row for row in ok if row["framework"] == "spikingjelly"), None)
    best = ranked[0]["step_median_s"]
    return {
        "fastest": ranked[0]["framework"],
        "spikingjelly_over_fastest": None if sj is None else sj["step_median_s"] / best,
        "runner_up_over_fastest": ranked[1]["step_median_s"] / best if len(ranked) > 1 else None,
    }


def most_accurate(document: dict) -> dict:
    """Per column: the most accurate framework(s) (all those tied at the top), the lead over
    the next, and whether that lead exceeds two standard errors of the test accuracy
    (sqrt(p(1-p)/n) over its n test images): a smaller lead is not told apart from the test
    set's sampling. The yardsticks do not compete."""
    ok = sorted(_contenders(document), key=lambda row: -row["test_accuracy"])
    if not ok:
        return {"best": [], "lead_points": None, "resolved": False, "accuracy": {}}
    top = ok[0]["test_accuracy"]
    best = [row["framework"] for row in ok if row["test_accuracy"] == top]
    runner = next((row["test_accuracy"] for row in ok if row["test_accuracy"] < top), None)
    samples = ok[0].get("test_samples")
    error = (top * (1 - top) / samples) ** 0.5 if samples else None
    lead = None if runner is None else top - runner
    resolved = len(best) == 1 and lead is not None and error is not None and lead > 2 * error
    return {"best": best, "lead_points": None if lead is None else 100 * lead,
            "standard_error_points": None if error is None else 100 * error,
            "resolved": resolved,
            "accuracy": {row["framework"]: row["test_accuracy"] for row in ok}}  # fmt: skip


def _claim(claim: str, columns: list[dict], won, measure: str) -> dict:
    wins = [column for column in columns if won(column)]
    return {"claim": claim, "reproduced": bool(columns) and len(wins) == len(columns),
            "wins": f"{len(wins)} of {len(columns)} columns", "columns": columns,
            "measure": measure}  # fmt: skip


def _columns(documents: list[dict], judge) -> list[dict]:
    columns = []
    for document in documents:
        column = {"column": " ".join(_key(document))}
        if document["mode"] == "direct":
            column["setting"] = document["task"].get("neuron_setting", "canonical")
        else:
            column["T"] = document["task"]["T"]
        columns.append({**column, **judge(document)})
    return columns


ACCURACY_WIN = ("a win counts when it is the only best and leads by more than two standard "
                "errors")  # fmt: skip


def check_claims(direct: list[dict], conversion: list[dict]) -> list[dict]:
    """The study's three claims, each held against every column it concerns: reproduced where
    the framework wins every such column, else not, with the numbers per column."""
    return [
        _claim("SpikingJelly is the fastest in direct training", _columns(direct, fastest),
               lambda c: c["fastest"] == "spikingjelly",
               "median training-step time (forward, backward, optimizer; batch 64)"),
        _claim("SpikingJelly is the most accurate in direct training",
               _columns(direct, most_accurate),
               lambda c: c["best"] == ["spikingjelly"] and c["resolved"],
               f"test accuracy after the same training; {ACCURACY_WIN}"),
        _claim("Lava is the most accurate in ANN-to-SNN conversion",
               _columns(conversion, most_accurate),
               lambda c: c["best"] == ["lava-dl"] and c["resolved"],
               f"test accuracy of the SNN at T max; {ACCURACY_WIN}"),
    ]  # fmt: skip


def claim_lines(claims: list[dict]) -> list[str]:
    """Each claim as Markdown: the verdict, then the numbers per column."""
    lines = []
    for claim in claims:
        verdict = "reproduced" if claim["reproduced"] else "not reproduced"
        lines += [f"- **{claim['claim']}**: {verdict} ({claim['wins']}; {claim['measure']})"]
        for column in claim["columns"]:
            where = column["column"] + (f", {column['setting']}" if "setting" in column else "")
            if "fastest" in column:
                sj = column["spikingjelly_over_fastest"]
                runner = column["runner_up_over_fastest"]
                close = runner is not None and runner - 1 < RESOLVED
                lines.append(
                    f"  - {where}: fastest {column['fastest']}"
                    + ("" if sj is None else f", SpikingJelly at {sj:.2f}x its step time")
                    + (" (the next within 5 %: not resolved from noise)" if close else "")
                )
            else:
                accuracies = ", ".join(f"{fw} {100 * a:.1f} %"
                                       for fw, a in column["accuracy"].items())  # fmt: skip
                lead, error = column["lead_points"], column.get("standard_error_points")
                best = " and ".join(column["best"]) or "none"
                lines.append(
                    f"  - {where}: most accurate {best}"
                    + ("" if lead is None else f" by {lead:.1f} points")
                    + ("" if error is None else f" (standard error {error:.1f})")
                    + ("" if column["resolved"] else ": not resolved")
                    + f"; {accuracies}"
                )
    return lines


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, check=False)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=Path(__file__).parent,
                               check=False).stdout.strip()  # fmt: skip
        return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def _sources(study: dict) -> list[str]:
    """Where each dataset's images came from, as the runs said."""
    found = {}
    for document in [*study["direct"], *study["conversion"]]:
        for row in [document.get("ann") or {}, *document["rows"]]:
            if row.get("dataset_source"):
                found.setdefault(document["task"]["dataset"], row["dataset_source"])
    return [f"- {name}: {source}" for name, source in found.items()] + ([""] if found else [])


def _run_line(study: dict) -> str:
    return (f"Run {study['date']} at commit {study['commit']} on {study['device']} "
            f"({study['device_name']}), {study['wall_s'] / 60:.1f} minutes.")  # fmt: skip


def markdown(study: dict) -> str:
    from kernelprof.present.report import markdown_table, neuron_difference_line

    preset = study["preset"]
    lines = [
        _run_line(study),
        "",
        f"Sizes: {preset['epochs']} epoch(s), batch {BATCH}, Adam {LR:g}, T={preset['T']} "
        f"(conversion up to T={preset['conversion_T']}), training images per dataset: "
        f"{preset['limit_train'] or 'all'}, test images: {preset['limit_test'] or 'all'}.",
        "",
        *_sources(study),
        f"The claims' contenders are the frameworks; {', '.join(YARDSTICKS)} (kernelprof's own "
        "kernels) are shown as the yardstick only.",
        "",
    ]
    for setting in SETTINGS:
        documents = [d for d in study["direct"] if d["task"]["neuron_setting"] == setting]
        if not documents:
            continue
        lines += [f"### Direct training, {setting} neurons: test accuracy / training time", ""]
        lines += [*markdown_table(*table(documents, cell)), ""]
        if setting == "framework-defaults":
            notes = {}
            for document in documents:
                for row in document["rows"]:
                    if "neuron_differences" in row:
                        notes[row["framework"]] = neuron_difference_line(row["neuron_differences"])
            lines += [f"- {fw}: {line}" for fw, line in notes.items()] + [""]
    if study["conversion"]:
        lines += ["### ANN-to-SNN conversion: test accuracy at T max / time to the SNN", ""]
        lines += [*markdown_table(*table(study["conversion"], conversion_cell, _ann_row)), ""]
    lines += ["### The study's claims", "", *claim_lines(study["claims"]), ""]
    problems = [f"- {mode} {' '.join(_key(doc))} {row['framework']}: {row.get('status')}: "
                f"{row.get('reason')}"
                for mode in ("direct", "conversion") for doc in study[mode]
                for row in doc["rows"] if row.get("status") != "ok"]  # fmt: skip
    if problems:
        lines += ["Rows without a result:", "", *problems, ""]
    return "\n".join(lines)


def write_html(study: dict, path: Path) -> None:
    from kernelprof.present import documents as pages

    intro: list[tuple] = [("h2", "The study's table"), ("note", _run_line(study))]
    for setting in SETTINGS:
        chosen = [d for d in study["direct"] if d["task"]["neuron_setting"] == setting]
        if chosen:
            intro += [
                ("h3", f"Direct training, {setting} neurons"),
                ("table", *table(chosen, cell)),
            ]
    if study["conversion"]:
        intro += [
            ("h3", "ANN-to-SNN conversion"),
            ("table", *table(study["conversion"], conversion_cell, _ann_row)),
        ]
    intro += [("h3", "The study's claims")] + [
        ("note", line) for line in claim_lines(study["claims"])
    ]
    runs = [(f"{d['mode']} {d['task'].get('neuron_setting', '')}", d)
            for d in [*study["direct"], *study["conversion"]]]  # fmt: skip
    pages.write_html(runs, path, intro=intro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--modes", default=",".join(MODES), help="direct,conversion")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help="neuron settings of direct training")  # fmt: skip
    parser.add_argument("--frameworks", default=None,
                        help="default: every framework of the mode")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for study.md, study.json, study.html")  # fmt: skip
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="a study.json written before: check the claims and write the "
                        "tables again from it, measuring nothing")  # fmt: skip
    args = parser.parse_args(argv)
    if args.source is not None:
        try:
            study = json.loads(args.source.read_text())
        except (OSError, ValueError) as error:
            parser.error(f"--from: cannot read {args.source}: {error}")
        return _publish(study, args.out)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    settings = [s for s in args.settings.split(",") if s]
    if not settings or any(s not in SETTINGS for s in settings):
        parser.error(f"--settings: choose from {', '.join(SETTINGS)}")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out: {args.out} is not a folder")
    preset = PRESETS[args.preset]
    device = args.device or str(default_device())
    import torch

    env = environment(torch.device(device))
    columns = [(d, m) for d in preset["datasets"] for m in preset["models"]]
    chosen = None if args.frameworks is None else args.frameworks.split(",")
    print(f"study preset {args.preset} on {device}: {preset}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    study = {
        "preset": {"name": args.preset, **preset},
        "device": device,
        "device_name": env["device"]["name"],
        "commit": _commit(),
        "date": datetime.date.today().isoformat(),
        "direct": [],
        "conversion": [],
    }
    try:
        if "direct" in modes:
            frameworks = [f for f in chosen or DIRECT_FRAMEWORKS if f in registry.networks()]
            study["direct"] = run_direct(columns, frameworks, settings, device, args, preset,
                                         env, started)  # fmt: skip
        if "conversion" in modes:
            known = registry.conversion_routes()
            frameworks = [f for f in chosen or CONVERSION_FRAMEWORKS if f in known]
            study["conversion"] = run_conversion(columns, frameworks, device, args, preset, env,
                                                 started)  # fmt: skip
    except KeyboardInterrupt:
        study["interrupted"] = True  # what was measured is still written below
    study["wall_s"] = time.perf_counter() - started
    return _publish(study, args.out)


def _publish(study: dict, out: Path | None) -> int:
    """Checks the claims, prints the Markdown and writes the three files to ``out``."""
    study["claims"] = check_claims(study["direct"], study["conversion"])
    text = markdown(study)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "study.md").write_text(text)
        (out / "study.json").write_text(json.dumps(study, indent=1, default=str))
        try:
            write_html(study, out / "study.html")
        except ImportError as error:
            print(f"study.html: unavailable: {error}", file=sys.stderr)
        print(f"written: {out}/study.md, study.json, study.html", file=sys.stderr)
    return 130 if study.get("interrupted") else 0


if __name__ == "__main__":
    sys.exit(main())
