"""``kernelprof check`` shown: one row per implementation that ran, with its figures against the
float64 oracle, its code path and reasons underneath, then what did not run here; and the flat
CSV and Markdown. Reads records only."""

from __future__ import annotations

from kernelprof.results.check import NOT_RUN, CheckDocument, CheckedBuild

from .compare import flat_table
from .tables import fill, plain, table, verdict_cell

HEADERS = ("impl", "verdict", "spike\nmismatches", "ties", "max\n|dV|", "max\n|d dX|", "cos\ndX",
           "timed\nbuild")  # fmt: skip


def config_line(config) -> str:
    """A canonical config in one line: its leak (tau, PLIF's tau0 and what it learns), reset,
    detach_reset, decay_input and surrogate."""
    reset = "soft" if config.v_reset is None else f"hard (V_r={config.v_reset:g})"
    parts = []
    if config.neuron in ("lif", "cuba", "alif"):
        parts.append(f"tau={config.tau:g}")
    if config.neuron == "cuba":
        parts.append(f"tau_syn={config.tau_syn:g}")
    elif config.neuron == "alif":
        parts.append(
            f"theta0={config.v_threshold:g}, tau_a={config.tau_a:g}, "
            f"beta_a={config.beta_a:g}, detach_adaptation={config.detach_adaptation}"
        )
    elif config.neuron == "plif":
        learns = "one per channel" if config.per_channel else "one per layer"
        parts.append(f"tau0={config.tau:g} (k = sigmoid(w) learned, {learns})")
    parts += [reset, f"detach_reset={config.detach_reset}"]
    if config.neuron != "if":
        parts.append(f"decay_input={config.decay_input}")
    return ", ".join([*parts, f"{config.surrogate}({config.alpha:g})"])


def _title(document: CheckDocument) -> str:
    case, config = document.case, document.config
    return (f"{config.neuron.upper()} vs float64 oracle: T={case.T} N={case.N:,} {case.dtype} on "
            f"{document.environment.device.name}\n{config_line(config)}")  # fmt: skip


def check_table(document: CheckDocument, all_rows: bool = False):
    cells: list[list[str]] = []
    reasons, paths, not_run = [], [], []
    for row in document.rows:
        shown = [row.impl, verdict_cell(row.verdict)]
        if row.verdict in NOT_RUN and not all_rows:
            not_run.append(f"{row.impl}: {row.verdict}: {row.reason}")
            continue
        if row.oracle is None or row.status != "ok":
            cells.append(shown + [""] * 5 + [timed_build_cell(row)])
            reasons.append(f"{row.impl}: {row.verdict}: {row.reason}")
            continue
        oracle = row.oracle
        cells.append(shown + [
            f"{oracle.spike_mismatches:,} ({100 * oracle.spike_mismatch_fraction:.3f} %)",
            str(oracle.threshold_ties),
            "not exposed" if oracle.v_max_abs_diff is None else f"{oracle.v_max_abs_diff:.2e}",
            f"{oracle.grad_max_abs_diff:.2e}", f"{oracle.grad_cosine:.6f}",
            timed_build_cell(row),
        ])  # fmt: skip
        paths.append(f"{row.impl}: path: {row.path}")
        if oracle.states_compared:
            paths.append(f"{row.impl}: {oracle.states_compared} compared too, max |diff| "
                         f"{oracle.state_max_abs_diff:.2e}")  # fmt: skip
        if oracle.dw_relative_error is not None:
            paths.append(f"{row.impl}: dw relative error {oracle.dw_relative_error:.2g}, "
                         f"signs {'agree' if oracle.dw_sign_agrees else 'DIFFER'}")  # fmt: skip
        if row.verdict != "exact":
            reasons.append(f"{row.impl}: {row.verdict}: {row.reason}")
    result = table(_title(document))
    fill(result, HEADERS, cells, left=2)
    result.caption = plain([
        "ties: neurons whose spikes first differ where the oracle's |H - theta| <= 1e-5",
        "timed build: what the framework's users run (timed by compare), against the checking "
        "build on the same input (spikes and dX)",
        *paths, *reasons, *(["not run here:", *[f"  {line}" for line in not_run]]
                            if not_run else []),
    ])  # fmt: skip
    return result


def document_renderables(document: CheckDocument, all_rows: bool = False) -> list:
    """Everything ``kernelprof check`` prints for a document."""
    return [check_table(document, all_rows), *(f"[dim]{note}[/]" for note in document.notes)]


def timed_build_cell(row: CheckedBuild) -> str:
    if row.timed_build is None:
        return ""
    return "agrees" if row.timed_build.agrees else "[red]DIFFERS[/]"


def flat_rows(document: CheckDocument) -> list[dict]:
    records = []
    for row in document.rows:
        oracle = row.oracle
        records.append({
            "T": document.case.T, "N": document.case.N, "dtype": document.case.dtype,
            "impl": row.impl, "framework": row.framework, "verdict": row.verdict,
            "status": row.status, "reason": row.reason, "path": row.path,
            "timed_build": None if row.timed_build is None else row.timed_build.agrees,
            **({} if oracle is None else {
                "spike_mismatches": oracle.spike_mismatches,
                "spike_mismatch_fraction": oracle.spike_mismatch_fraction,
                "threshold_ties": oracle.threshold_ties, "firing_rate": oracle.firing_rate,
                "v_max_abs_diff": oracle.v_max_abs_diff,
                "states_compared": oracle.states_compared,
                "state_max_abs_diff": oracle.state_max_abs_diff,
                "grad_max_abs_diff": oracle.grad_max_abs_diff, "grad_cosine": oracle.grad_cosine,
            }),
        })  # fmt: skip
    return records


def flat(document: CheckDocument, kind: str) -> str:
    records = flat_rows(document)
    columns = list(dict.fromkeys(key for record in records for key in record))
    return flat_table(records, columns, kind)
