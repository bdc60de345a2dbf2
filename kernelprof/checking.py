"""``kernelprof check``: each implementation against the float64 oracle, with a verdict.

Verdicts: exact (spikes equal, V and dX within tolerance), close (differences only at exact
threshold ties, with the implementation's reason such as "fires on H > theta"), approximate
(beyond tolerance, explained by the implementation's declared approximations), WRONG (beyond
tolerance and unexplained), unsupported (the framework cannot express the config), unavailable
(package or device missing), error (crash, hang or out-of-memory in the worker).

The same built implementation is checked on two different inputs in a row, so one that returns
a cached result instead of computing comes out WRONG.
"""

from __future__ import annotations

from typing import Any

import torch

from kernelprof.agreement import check_against_oracle
from kernelprof.impls import registry
from kernelprof.inputs import lif_input
from kernelprof.lif import LIFConfig

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
VERDICT_ORDER = ("exact", "close", "approximate", "WRONG")  # later is worse
CHECK_INPUTS = 2


def unavailable_row(
    name: str, device: torch.device | str, *, quick: bool = False
) -> dict[str, Any] | None:
    """The final row of an implementation that cannot run on ``device`` in this interpreter
    (package or device missing), else None. With ``quick``, only what is certain without
    importing anything (package metadata, device type), so that a caller can skip starting a
    worker for it; the worker makes the full check."""
    implementation = registry.get(name)
    reason = implementation.unavailable_reason(torch.device(device), quick=quick)
    if reason is None:
        return None
    return {"impl": name, "framework": implementation.framework, "status": "unavailable",
            "verdict": "unavailable", "reason": reason}  # fmt: skip


def prepare(task: dict[str, Any]):
    """(row, built) for a task; ``built`` is None when the row is already final (unavailable or
    unsupported)."""
    name = task["impl"]
    implementation = registry.get(name)
    row: dict[str, Any] = {"impl": name, "framework": implementation.framework}
    device = torch.device(task["device"])
    unavailable = unavailable_row(name, device)
    if unavailable is not None:
        return unavailable, None
    config = LIFConfig(**task["config"])
    try:
        built = implementation.build(config, device, DTYPES[task["dtype"]])
    except registry.Unsupported as error:
        return {
            **row,
            "status": "unsupported",
            "verdict": "unsupported",
            "reason": str(error),
        }, None
    return row, built


def verdict(built: registry.Built, task: dict[str, Any], neurons: int) -> dict[str, Any]:
    """Checks ``built`` against the oracle on CHECK_INPUTS inputs; the worst result counts."""
    config = LIFConfig(**task["config"])
    device, dtype = torch.device(task["device"]), DTYPES[task["dtype"]]
    worst = None
    for offset in range(CHECK_INPUTS):
        seed = task["seed"] + 1000 * offset
        x = lif_input((task["T"], neurons), config, dtype=dtype, device=device, seed=seed)
        result = check_against_oracle(built.run, x, config, seed=seed)
        if worst is None or VERDICT_ORDER.index(result.verdict) > VERDICT_ORDER.index(
            worst.verdict
        ):
            worst = result
    path = built.detect_path() if built.detect_path is not None else built.path
    final, reason = classify(worst.verdict, worst.reason, built)
    # the oracle's own verdict and reason are replaced by the explained ones
    return {**worst.as_dict(), "status": "ok", "verdict": final, "reason": reason, "path": path}


def check_implementation(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: builds ``task['impl']`` for the config and compares it with the oracle."""
    row, built = prepare(task)
    if built is None:
        return row
    return {**row, **verdict(built, task, task["N"])}


def classify(oracle_verdict: str, oracle_reason: str, built: registry.Built) -> tuple[str, str]:
    """The final verdict: the oracle comparison, explained by what the implementation declares."""
    if oracle_verdict == "exact":
        return "exact", oracle_reason
    if oracle_verdict == "close":
        why = "; ".join(built.tie_notes) or "float rounding at the threshold"
        return "close", f"{why} ({oracle_reason})"
    if built.approximations:
        return "approximate", f"{'; '.join(built.approximations)} ({oracle_reason})"
    return "WRONG", oracle_reason
