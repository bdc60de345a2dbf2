"""Results documents are the records of kernelprof.results: written from them and read back into
them for every kind (check, compare, e2e, conversion, study); an old, foreign or damaged file is
a one-line error naming where, and `kernelprof report` exits 2 on it, never with a traceback."""

from __future__ import annotations

import copy
import json

import pytest

from kernelprof.results import files
from kernelprof.results.document import SCHEMA_VERSION
from kernelprof.results.record import FrozenDict, SchemaError, decode
from kernelprof.results.timing import Measurement
from tests.cli_runner import run_in_process, run_kernelprof
from tests.documents import ALL, compare_document


@pytest.mark.parametrize("kind", sorted(ALL))
def test_every_kind_of_document_reads_back_into_the_same_records(kind, tmp_path):
    document = ALL[kind]()
    assert document.kernelprof == kind
    path = tmp_path / f"{kind}.json"
    written, problem = files.save(document, path)
    assert (written, problem) == (path, None)
    again = files.load(path)
    assert type(again) is type(document) and again == document
    assert files.dumps(again) == files.dumps(document)  # and writes the same text again


def test_derived_figures_are_written_for_readers_and_not_read_back():
    text = files.dumps(compare_document())
    data = json.loads(text)
    timing = data["cases"][0]["rows"][0]["timings"]["fwd"]
    assert timing["device_s"] == pytest.approx(0.8 * 213.985e-3)  # written: a reader's figure
    timing["device_s"] = 99.0  # a derived figure is recomputed from the samples, not trusted
    again = files.read(data)
    assert again.cases[0].rows[0].timings["fwd"].device_s == pytest.approx(0.8 * 213.985e-3)


def test_records_are_frozen_all_the_way_down():
    document = compare_document()
    row = document.cases[0].rows[0]
    with pytest.raises(AttributeError):
        row.speedup = None
    with pytest.raises(TypeError):
        row.timings["fwd"] = None
    assert isinstance(row.timings, FrozenDict) and isinstance(document.cases, tuple)
    assert isinstance(row.timings["fwd"].rounds[0].call.samples_s, tuple)
    lists = Measurement(samples_s=[1.0, 2.0])  # lists given are frozen on construction
    assert lists.samples_s == (1.0, 2.0)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("schema"), "before schema versions (schema 1)"),
        (lambda d: d.update(schema=99), "schema 99 (newer than"),
        (lambda d: d.update(schema=2), "schema 2 (written by an earlier kernelprof"),
        (lambda d: d.update(kernelprof="something"), "not a kernelprof"),
        (lambda d: d["cases"][0]["rows"][0]["checked"].update(verdict="great"),
         "cases[0].rows[0].checked.verdict: 'great' is not one of"),
        (lambda d: d["cases"][0]["rows"][0]["timings"]["bwd"]["rounds"][0]["call"].update(
            samples_s="fast"),
         "cases[0].rows[0].timings.bwd.rounds[0].call.samples_s: expected a list, got a string"),
        (lambda d: d["cases"][0]["case"].pop("N"), "cases[0].case.N: missing"),
        (lambda d: d["cases"][0]["rows"][0]["checked"]["timed_build"].update(neurons=True),
         "timed_build.neurons: expected a number, got true/false"),
        (lambda d: d["config"].update(tau=-1.0), "config: tau must be a finite number > 0"),
    ],
)  # fmt: skip
def test_damage_is_found_and_named_in_one_line(damage, message):
    document = json.loads(files.dumps(compare_document()))
    damage(document)
    with pytest.raises(files.DocumentError) as caught:
        files.read(document)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_two_problems_are_named_and_the_rest_counted():
    class_ = type(compare_document().noise_probe)
    with pytest.raises(SchemaError) as caught:
        decode(class_, {"workload": 1, "median_s": "x", "spread": None, "calls": []})
    text = str(caught.value)
    assert text.startswith("workload: expected a string, got a number; median_s: expected")
    assert text.endswith("(and 2 more)")


def test_schema_2_files_say_how_to_regenerate_them():
    old = copy.deepcopy(json.loads(files.dumps(compare_document())))
    old["schema"] = 2
    with pytest.raises(files.DocumentError, match="kernelprof compare` command again with --out"):
        files.read(old)
    assert SCHEMA_VERSION == 3


def test_report_refuses_old_and_foreign_files_in_one_line(tmp_path):
    old = json.loads(files.dumps(compare_document()))
    del old["schema"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "foreign.json").write_text(json.dumps({"hello": "world"}))
    files.save(compare_document(), tmp_path / "good.json")
    for name, expected in [("old.json", "schema 1"), ("foreign.json", "not a kernelprof")]:
        done = run_in_process("report", str(tmp_path / name), "-o", str(tmp_path / "r.md"))
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert name in line and expected in line
    done = run_kernelprof("report", str(tmp_path / "good.json"), "-o", str(tmp_path / "r.md"))
    assert done.returncode == 0, done.stderr
