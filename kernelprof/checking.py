"""``kernelprof check``: each implementation against the float64 oracle, with a verdict.

Verdicts: exact (spikes equal, V and dX within tolerance), close (differences only at exact
threshold ties, with the implementation's reason such as "fires on H > theta"), approximate
(beyond tolerance, explained by the implementation's declared approximations), WRONG (beyond
tolerance and unexplained), unsupported (the framework cannot express the config), unavailable
(package or device missing), error (crash, hang or out-of-memory in the worker).
"""

from __future__ import annotations

from typing import Any

import torch

from kernelprof.agreement import check_against_oracle
from kernelprof.impls import registry
from kernelprof.inputs import lif_input
from kernelprof.lif import LIFConfig

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_implementation(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: builds ``task['impl']`` for the config and compares it with the oracle."""
    name = task["impl"]
    config = LIFConfig(**task["config"])
    device = torch.device(task["device"])
    dtype = DTYPES[task["dtype"]]
    implementation = registry.get(name)
    row: dict[str, Any] = {"impl": name, "framework": implementation.framework}
    reason = implementation.unavailable_reason(device)
    if reason is not None:
        return {**row, "status": "unavailable", "verdict": "unavailable", "reason": reason}
    try:
        built = implementation.build(config, device, dtype)
    except registry.Unsupported as error:
        return {**row, "status": "unsupported", "verdict": "unsupported", "reason": str(error)}
    x = lif_input((task["T"], task["N"]), config, dtype=dtype, device=device, seed=task["seed"])
    result = check_against_oracle(built.run, x, config, seed=task["seed"])
    path = built.detect_path() if built.detect_path is not None else built.path
    verdict, reason = classify(result.verdict, result.reason, built)
    # the oracle's own verdict and reason are replaced by the explained ones
    return {
        **row,
        **result.as_dict(),
        "status": "ok",
        "verdict": verdict,
        "reason": reason,
        "path": path,
    }


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
