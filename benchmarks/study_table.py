"""The 2025 framework study's table, reproduced: accuracy and training time per framework,
dataset and network, for direct surrogate-gradient training (in both neuron settings) and for
ANN-to-SNN conversion, with the study's three claims checked against what was measured.

    .venv/bin/python benchmarks/study_table.py --preset quick   # digits, minutes on 2 CPU cores
    .venv/bin/python benchmarks/study_table.py --preset full    # MNIST + Fashion-MNIST, < 90 min

Each column is one ``kernelprof e2e`` run through the Python API (every framework in its own
worker): direct training once with the canonical LIF in every framework (differences are speed
only) and once with each framework's own default neuron (framework-defaults: each row says how
that neuron differs from the canonical one); conversion trains the ANN once per column and each
framework converts it (lava-dl trains its own SNN through bootstrap instead). The study is one
results document (:class:`~kernelprof.results.study.StudyDocument`) holding those runs and the
claims checked against them (:func:`kernelprof.results.analysis.check_claims`); ``--out DIR``
writes study.md, study.json (``kernelprof report`` reads it) and a self-contained study.html.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from kernelprof import api
from kernelprof.frameworks import registry
from kernelprof.present import study as shown
from kernelprof.requests.e2e import DEFAULT_FRAMEWORKS, SETTINGS
from kernelprof.requests.study import PRESETS
from kernelprof.results import analysis, files
from kernelprof.results.study import StudyDocument, StudyPreset
from kernelprof.runs.environment import environment
from kernelprof.runs.study.run import commit

MODES = ("direct", "conversion")


def _log(started: float, text: str) -> None:
    print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {text}", file=sys.stderr, flush=True)


def _run(preset: StudyPreset, columns, frameworks, device, data_dir, started, **how):
    """One e2e run per column (dataset, network), each framework in its own worker."""
    documents = []
    for dataset, model in columns:
        result = api.e2e(model=model, dataset=dataset, frameworks=frameworks, device=device,
                         epochs=preset.epochs, limit_train=preset.limit_train,
                         limit_test=preset.limit_test, batch_size=preset.batch_size,
                         lr=preset.lr, data_dir=data_dir, **how)  # fmt: skip
        documents.append(result.document)
        cells = ", ".join(f"{row.framework} {_cell(row)}" for row in result.rows)
        _log(started, f"{how.get('mode', 'direct')} {how.get('neuron_setting', '')} {dataset} "
                      f"{model}: {cells}")  # fmt: skip
        if result.document.interrupted:
            raise KeyboardInterrupt
    return documents


def _cell(row) -> str:
    return shown.cell(row) if hasattr(row, "training") else shown.conversion_cell(row)


def measure(args, preset: StudyPreset, modes, settings, chosen) -> StudyDocument:
    device = args.device or ("cuda" if _cuda() else "cpu")
    env = environment(device)
    columns = [(d, m) for d in preset.datasets for m in preset.models]
    print(f"study preset {preset.name} on {device}: {preset}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    direct, conversion, interrupted = [], [], False
    try:
        if "direct" in modes:
            known = registry.networks()
            frameworks = [f for f in chosen or DEFAULT_FRAMEWORKS["direct"] if f in known]
            for setting in settings:
                direct += _run(preset, columns, frameworks, device, args.data_dir, started,
                               T=preset.T, neuron_setting=setting)  # fmt: skip
        if "conversion" in modes:
            known = registry.conversion_routes()
            frameworks = [f for f in chosen or DEFAULT_FRAMEWORKS["conversion"] if f in known]
            conversion += _run(preset, columns, frameworks, device, args.data_dir, started,
                               T=preset.conversion_T, mode="conversion")  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True  # what was measured is still written
    return StudyDocument(
        environment=env, preset=preset, device=device, device_name=env.device.name,
        commit=commit(), date=datetime.date.today().isoformat(),
        wall_s=time.perf_counter() - started, direct=tuple(direct), conversion=tuple(conversion),
        claims=analysis.check_claims(direct, conversion), interrupted=interrupted,
    )  # fmt: skip


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out: {args.out} is not a folder")
    if args.source is not None:
        try:
            study = files.load(args.source, kinds=("study",))
        except files.DocumentError as error:
            parser.error(f"--from: {error}")
        return publish(study, args.out)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    settings = [s for s in args.settings.split(",") if s]
    if not settings or any(s not in SETTINGS for s in settings):
        parser.error(f"--settings: choose from {', '.join(SETTINGS)}")
    chosen = None if args.frameworks is None else args.frameworks.split(",")
    try:
        study = measure(args, PRESETS[args.preset], modes, settings, chosen)
    except api.RequestError as error:  # e.g. a dataset that is not there: before any run
        parser.error(str(error))
    return publish(study, args.out)


def publish(study: StudyDocument, out: Path | None) -> int:
    """Checks the claims again (from the runs alone), prints the Markdown and writes the three
    files to ``out``."""
    import dataclasses

    study = dataclasses.replace(study, claims=analysis.check_claims(study.direct,
                                                                    study.conversion))  # fmt: skip
    text = shown.markdown(study)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "study.md").write_text(text)
        files.save(study, out / "study.json")
        try:
            from kernelprof.present import pages

            pages.write_html([("study.json", study)], out / "study.html")
        except ImportError as error:
            print(f"study.html: unavailable: {error}", file=sys.stderr)
        print(f"written: {out}/study.md, study.json, study.html", file=sys.stderr)
    return 130 if study.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
