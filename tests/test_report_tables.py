"""The compare and check tables fit 120 columns: what did not run is listed under them with its
reason (--all-rows keeps it in), a column empty in every row is left out, a case in which
nothing was timed shows its reasons and no empty table; the e2e tables read every record."""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from kernelprof.present import check, compare, e2e
from kernelprof.results.compare import CompareRow
from tests.documents import NOT_RUN, check_document, compare_case, conversion_document, e2e_document


def rendered(table) -> tuple[list[str], str]:
    """The table's own lines (title and grid, without the caption) and all of its text."""
    console = Console(width=400, record=True)
    console.print(table)
    text = console.export_text()
    lines = [line.rstrip() for line in text.splitlines()]
    rule = next(i for i, line in enumerate(lines) if "───" in line)
    end = next(i for i in range(rule, len(lines)) if not lines[i].strip())
    return lines[:end], text


def everything(renderables) -> str:
    console = Console(width=400, record=True)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize("energy", [False, True])
def test_the_compare_tables_fit_120_columns(energy):
    case = compare_case(energy)
    grid, text = rendered(compare.verdict_table(case))
    assert max(len(line) for line in grid) <= 120, "\n".join(grid)
    assert ("mJ" in "\n".join(grid)) == energy  # an energy column only where energy was measured
    times, _ = rendered(compare.time_table(case))
    assert max(len(line) for line in times) <= 130, "\n".join(times)
    assert "5.45-15.55" in "\n".join(times)  # the widest call-speedup interval fits too
    assert "10/10/10" in "\n".join(times)  # the warm-up calls of each phase
    for impl in NOT_RUN:
        assert not any(line.lstrip().startswith(impl) for line in grid)
        assert f"{impl}: {NOT_RUN[impl]}: {impl} cannot run here" in text
    assert "not run here:" in text


def test_flags_and_their_reasons_are_shown():
    grid, text = rendered(compare.verdict_table(compare_case(False)))
    last = {line.split()[0]: line.split()[-1] for line in grid[4:] if line.strip()}
    assert (last["ref-compile"], last["spikingjelly"], last["snntorch"]) == ("busy?", "launch",
                                                                            "152.0")  # fmt: skip
    assert "ref-compile: inconsistent (machine busy?): fwd rounds disagree: 1, 2, 3 ms" in text
    assert "spikingjelly fwd launch-bound: call 2000 ms vs device 1000 ms (+100%)" in text


def test_all_rows_keeps_what_did_not_run_in_the_compare_table():
    text = everything([compare.case_renderable(compare_case(False), all_rows=True)])
    assert "not run here:" not in text
    assert "sinabs" in text.split("ms: device time")[0]


def test_a_case_in_which_nothing_was_timed_shows_its_reasons_and_no_empty_table():
    case = compare_case(False)
    failed = [dataclasses.replace(CompareRow(checked=row.checked), errors=("round 1: killed",))
              for row in case.rows if row.timed]  # fmt: skip
    case = dataclasses.replace(case, rows=(*failed, *(r for r in case.rows if not r.timed)))
    text = everything([compare.case_renderable(case)])
    assert "nothing was timed" in " ".join(text.split()) and "not timed: round 1: killed" in text
    assert "fwd+bwd" not in text and "speed" not in text


def test_the_check_table_fits_120_columns_and_moves_code_paths_under_it():
    grid, text = rendered(check.check_table(check_document()))
    assert max(len(line) for line in grid) <= 120, "\n".join(grid)
    assert "ref-torch: path: a long code path" in text
    assert "sinabs: unsupported: sinabs cannot run here" in text.split("not run here:")[1]


def test_the_e2e_and_conversion_tables_show_every_part():
    text = everything(e2e.document_renderables(e2e_document("framework-defaults")))
    for needle in ("spikingjelly", "90.0 %", "lava-dl: unsupported: cannot express it",
                   "median step breakdown", "snntorch: +10.0 ms/step (plain steps +11.0)",
                   "aten::mul 8 more calls", "snntorch: its default neuron", "data-parallel",
                   "100 operators/step"):  # fmt: skip
        assert needle in text, needle
    text = everything(e2e.document_renderables(conversion_document()))
    for needle in ("ANN (ReLU twin", "test accuracy against T", "snntorch: unsupported: no",
                   "95.0 %"):  # fmt: skip
        assert needle in text, needle


def test_the_copy_caption_counts_the_cases_own_passes():
    """% copy is taken over the traffic model's passes, which ALIF's saved threshold raises to 8;
    the caption says the count that case's % used (it said LIF's 6 for every neuron)."""
    lif = compare_case(False)
    alif = dataclasses.replace(lif, case=dataclasses.replace(lif.case, neuron="alif", saved=2))
    assert "(6 passes over [T, N])" in rendered(compare.verdict_table(lif))[1]
    assert "(8 passes over [T, N])" in rendered(compare.verdict_table(alif))[1]
