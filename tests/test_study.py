"""The study's claims, checked against every column of the runs they concern, and the study's
tables; from records as the runs make them."""

from __future__ import annotations

import dataclasses

from kernelprof.present import study as shown
from kernelprof.results.analysis import check_claims
from kernelprof.results.e2e import TrainingRow
from tests.documents import conversion_document, e2e_document, training


def _trained(framework: str, step_s: float, accuracy: float, samples: int = 2000):
    run = dataclasses.replace(training(accuracy, step_s), test_samples=samples)
    return TrainingRow(framework=framework, status="ok", training=run)


def _column(rows, setting: str = "canonical"):
    document = e2e_document(setting, dataset="fmnist")
    return dataclasses.replace(document, rows=tuple(rows))


def _converted(rows):
    document = conversion_document("fmnist")
    converted = []
    for framework, accuracy, samples in rows:
        base = document.rows[0].conversion
        result = dataclasses.replace(base, test_accuracy=accuracy, test_samples=samples)
        converted.append(dataclasses.replace(document.rows[0], framework=framework,
                                             conversion=result))  # fmt: skip
    return dataclasses.replace(document, rows=tuple(converted))


def test_study_claims_are_checked_against_every_column():
    direct = [
        # kernelprof's reference is the yardstick, shown but never a contender
        _column([_trained("spikingjelly", 0.10, 0.90), _trained("snntorch", 0.12, 0.80),
                 _trained("reference", 0.05, 0.95)]),
        _column([_trained("spikingjelly", 0.10, 0.85), _trained("snntorch", 0.09, 0.85)],
                "framework-defaults"),
    ]  # fmt: skip
    conversion = [_converted([("lava-dl", 0.86, 2000), ("sinabs", 0.80, 2000)])]
    speed, accuracy, lava = check_claims(direct, conversion)
    # snnTorch is faster in the second column: the claim does not hold everywhere
    assert not speed.reproduced and (speed.wins, len(speed.columns)) == (1, 2)
    assert speed.columns[0].fastest == "spikingjelly"
    assert accuracy.columns[0].best == ("spikingjelly",)
    assert speed.columns[1].fastest == "snntorch"
    assert speed.columns[1].spikingjelly_over_fastest > 1.1
    # a tie at the top is no win
    assert not accuracy.reproduced and accuracy.columns[1].best == ("spikingjelly", "snntorch")
    # 6 points over 2,000 test images is far beyond two standard errors (about 1.6 points)
    assert lava.reproduced and lava.columns[0].resolved
    lines = shown.claim_lines((speed, accuracy, lava))
    assert any("not reproduced" in line and "1 of 2 columns" in line for line in lines)
    assert any("spikingjelly and snntorch" in line and "not resolved" in line for line in lines)


def test_a_lead_within_the_test_sets_sampling_is_not_a_win():
    close = [_converted([("lava-dl", 0.860, 500), ("sinabs", 0.850, 500)])]
    (claim,) = check_claims([], close)[2:]
    assert not claim.reproduced and not claim.columns[0].resolved
    assert claim.columns[0].best == ("lava-dl",)


def test_study_table_cells_show_accuracy_and_time_or_why_not():
    row = _trained("spikingjelly", 0.1, 0.8912)
    row = dataclasses.replace(row, training=dataclasses.replace(row.training, epoch_s=(1.0, 1.5)))
    assert shown.cell(row) == "89.1 % / 2.5 s"
    assert shown.cell(TrainingRow(framework="x", status="unsupported", reason="soft")) == (
        "unsupported"
    )
    trained, converted, refused = conversion_document().rows[1], *conversion_document().rows[::2]
    assert shown.conversion_cell(trained) == "95.0 % / 2.0 s trained"
    assert shown.conversion_cell(converted) == "90.0 % / 0.50 s"
    assert shown.conversion_cell(refused) == "unsupported"
