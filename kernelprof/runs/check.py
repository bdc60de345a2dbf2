"""``kernelprof check``: each neuron's checking build against the float64 oracle, with a verdict.

Verdicts: exact (spikes equal, V and dX within tolerance), close (differences only at exact
threshold ties, with the build's reason such as "fires on H > theta"), approximate (beyond
tolerance, explained by the build's declared approximations), WRONG (beyond tolerance and
unexplained), unsupported (the framework cannot express the config), unavailable (package or
device missing), error (crash, hang or out-of-memory in the worker, or a timed build that
disagrees with its checking build).

The same build is checked on two different inputs in a row, so one that returns a cached
result instead of computing comes out WRONG. The timed build is then compared with the checking
build on the first input (:func:`kernelprof.verify.verdicts.timed_agreement`).
"""

from __future__ import annotations

from typing import Any

import torch

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import NeuronBuild, Unsupported
from kernelprof.inputs import DTYPES, lif_input
from kernelprof.verify.agreement import check_against_oracle
from kernelprof.verify.verdicts import VERDICT_ORDER, classify, sample_neurons, timed_agreement
from reference_kernels.model import LIFConfig

CHECK_INPUTS = 2
FUNCTION = "kernelprof.runs.check:check_implementation"  # what a check worker runs


def unavailable_row(
    name: str, device: torch.device | str, *, quick: bool = False
) -> dict[str, Any] | None:
    """The final row of a neuron that cannot run on ``device`` in this interpreter (package or
    device missing), else None. With ``quick``, only what is certain without importing anything
    (package metadata, device type), so that a caller can skip starting a worker for it; the
    worker makes the full check."""
    neuron = registry.neuron(name)
    reason = neuron.unavailable_reason(torch.device(device), quick=quick)
    if reason is None:
        return None
    return {"impl": name, "framework": neuron.framework, "status": "unavailable",
            "verdict": "unavailable", "reason": reason}  # fmt: skip


def prepare(task: dict[str, Any]) -> tuple[dict[str, Any], NeuronBuild | None]:
    """(row, build) for a task; ``build`` is None when the row is already final (unavailable or
    unsupported)."""
    name = task["impl"]
    neuron = registry.neuron(name)
    row: dict[str, Any] = {"impl": name, "framework": neuron.framework}
    if neuron.reference:
        row["reference"] = True
    device = torch.device(task["device"])
    unavailable = unavailable_row(name, device)
    if unavailable is not None:
        return unavailable, None
    config = LIFConfig(**task["config"])
    try:
        build = neuron.build(config, device, DTYPES[task["dtype"]])
    except Unsupported as error:
        return {**row, "status": "unsupported", "verdict": "unsupported",
                "reason": str(error)}, None  # fmt: skip
    if build.timed.code:
        row["timed_code"] = build.timed.code
    return row, build


def check_input(task: dict[str, Any], neurons: int, offset: int = 0) -> torch.Tensor:
    config = LIFConfig(**task["config"])
    seed = task["seed"] + 1000 * offset
    return lif_input((task["T"], neurons), config, dtype=DTYPES[task["dtype"]],
                     device=torch.device(task["device"]), seed=seed)  # fmt: skip


def verdict(build: NeuronBuild, task: dict[str, Any], neurons: int) -> dict[str, Any]:
    """Checks the checking build against the oracle on CHECK_INPUTS inputs; the worst final
    verdict counts."""
    config = LIFConfig(**task["config"])
    worst = None
    for offset in range(CHECK_INPUTS):
        x = check_input(task, neurons, offset)
        result = check_against_oracle(build.check, x, config, seed=task["seed"] + 1000 * offset)
        judged = (result, *classify(result, build))
        if worst is None or VERDICT_ORDER.index(judged[1]) > VERDICT_ORDER.index(worst[1]):
            worst = judged
    result, final, reason = worst
    # the oracle's own verdict and reason are replaced by the explained ones
    return {**result.as_dict(), "status": "ok", "verdict": final, "reason": reason}


def recheck_on(row: dict[str, Any], build: NeuronBuild, x: torch.Tensor, task: dict) -> None:
    """The checking build against the oracle on sampled neurons of ``x`` itself (the timed
    input), recorded in ``row``; a worse verdict there replaces the row's, and says where."""
    config = LIFConfig(**task["config"])
    steps = x.shape[0]
    index = sample_neurons(x[0].numel()).to(x.device)
    sample = x.detach().reshape(steps, -1)[:, index].contiguous()
    result = check_against_oracle(build.check, sample, config, seed=task["seed"] + 2000)
    final, reason = classify(result, build)
    row["timed_input_check"] = {
        "verdict": final, "reason": reason, "neurons": int(index.numel()),
        "spike_mismatch_fraction": result.spikes.mismatch_fraction,
        "grad_cosine": result.grad_cosine,
    }  # fmt: skip
    current = row.get("verdict")
    if current in VERDICT_ORDER and VERDICT_ORDER.index(final) > VERDICT_ORDER.index(current):
        row.update(verdict=final, reason=f"on the timed input's sampled neurons: {reason}")


def upstream_gradient(shape: torch.Size, like: torch.Tensor, seed: int) -> torch.Tensor:
    """The seeded gradient on the spikes that backward is run with (and timed with)."""
    generator = torch.Generator().manual_seed(seed + 7)
    return torch.randn(shape, generator=generator).to(like)


def compare_builds(row: dict[str, Any], build: NeuronBuild, x: torch.Tensor, task: dict) -> bool:
    """The timed build against the checking build on ``x``, recorded in ``row``; on a mismatch
    the row becomes an error that says so (the checking verdict is kept beside it). Returns
    whether they agree."""
    config = LIFConfig(**task["config"])
    agreement = timed_agreement(build, x, upstream_gradient(x.shape, x, task["seed"]), config)
    row["timed_build"] = agreement.as_dict()
    if not agreement.agrees:
        row["checking_verdict"] = row.get("verdict")
        row.update(status="error", verdict="error", reason=agreement.reason)
    return agreement.agrees


def check_implementation(task: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: builds ``task['impl']`` for the config, compares its checking build with
    the oracle and its timed build with the checking build."""
    row, build = prepare(task)
    if build is None:
        return row
    row.update(verdict(build, task, task["N"]))
    compare_builds(row, build, check_input(task, task["N"]), task)
    row["path"] = build.detect_path() if build.detect_path is not None else build.path
    return row
