"""Results documents carry a schema version and typed records; `kernelprof report` checks them
and turns an old, foreign or damaged file into one line (exit 2), never a traceback."""

from __future__ import annotations

import copy
import json

import pytest

from kernelprof.results import schema
from tests.cli_runner import run_kernelprof

TIMING = {"median_s": 0.01, "q1_s": 0.009, "q3_s": 0.011, "iqr_s": 0.002, "first_call_s": 0.1,
          "samples_s": [0.01, 0.011], "warnings": [], "gb_per_s": 5.0,
          "copy_bandwidth_fraction": 0.25}  # fmt: skip


def compare_document() -> dict:
    document = schema.new_document("compare", {"device": {"type": "cpu", "name": "test CPU"}})
    document.update(
        config={"tau": 2.0}, copy_bandwidth_gb_per_s=20.0, notes=[],
        runs=[{"case": {"T": 8, "N": 1024, "dtype": "fp32"}, "copy_bandwidth_gb_per_s": 20.0,
               "device": {"type": "cpu", "name": "test CPU"},
               "baseline": "a", "rows": [
                   {"impl": "a", "verdict": "exact", "status": "ok", "speedup": 1.0,
                    "timings": {p: dict(TIMING) for p in ("fwd", "bwd", "fwd+bwd")},
                    "timed_build": {"agrees": True, "reason": "agrees", "neurons": 1024}},
                   {"impl": "b", "verdict": "unavailable", "reason": "not installed"},
               ]}],
    )  # fmt: skip
    return document


def test_a_new_document_validates_and_says_its_kind():
    assert schema.validate(compare_document()) == "compare"
    e2e = schema.new_document("e2e", {})
    e2e.update(mode="direct", task={}, rows=[{"framework": "x", "status": "ok",
                                              "test_accuracy": 0.5}])  # fmt: skip
    assert schema.validate(e2e) == "e2e"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("schema"), "before schema versions (schema 1)"),
        (lambda d: d.update(schema=99), "schema 99 (newer than"),
        (lambda d: d.update(kernelprof="something"), "not a kernelprof"),
        (lambda d: d["runs"][0]["rows"][0].update(verdict="great"),
         "runs[0].rows[0].verdict: 'great' is not one of"),
        (lambda d: d["runs"][0]["rows"][0]["timings"]["bwd"].update(median_s="fast"),
         "runs[0].rows[0].timings.bwd.median_s: expected a number, got a string"),
        (lambda d: d["runs"][0]["case"].pop("N"), "runs[0].case.N: missing"),
        (lambda d: d["runs"][0]["rows"][0]["timed_build"].update(agrees=1),
         "timed_build.agrees: expected true/false, got a number"),
    ],
)  # fmt: skip
def test_damage_is_found_and_named(damage, message):
    document = copy.deepcopy(compare_document())
    damage(document)
    with pytest.raises(schema.SchemaError, match=None) as caught:
        schema.validate(document)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_report_refuses_old_and_foreign_files_in_one_line(tmp_path):
    old = compare_document()
    del old["schema"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": "world"}))
    (tmp_path / "good.json").write_text(json.dumps(compare_document()))
    for name, expected in [("old.json", "schema 1"), ("foreign.json", "not a kernelprof")]:
        done = run_kernelprof("report", str(tmp_path / name), "-o", str(tmp_path / "r.md"))
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert name in line and expected in line
    done = run_kernelprof("report", str(tmp_path / "good.json"), "-o", str(tmp_path / "r.md"))
    assert done.returncode == 0, done.stderr
