"""``kernelprof check``: each neuron's checking build against the float64 oracle, with a verdict.

Verdicts: exact (spikes equal, V and dX within tolerance), close (differences only at exact
threshold ties, with the build's reason such as "fires on H > theta"), approximate (beyond
tolerance, explained by the build's declared approximations), WRONG (beyond tolerance and
unexplained), unsupported (the framework cannot express the config), unavailable (package or
device missing), error (crash, hang or out-of-memory in the worker, or a timed build that
disagrees with its checking build).

The same build is checked on two different inputs in a row, so one that returns a cached
result instead of computing comes out WRONG. The timed build is then compared with the checking
build on the first input (:func:`kernelprof.verify.verdicts.timed_agreement`). Each
implementation runs in its own worker process (:mod:`kernelprof.harness.worker`), which gets an
:class:`ImplementationTask` and answers with a :class:`~kernelprof.results.check.CheckedBuild`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from kernelprof.frameworks import registry
from kernelprof.frameworks.base import NeuronBuild, Unsupported
from kernelprof.harness.worker import run_task
from kernelprof.inputs import DTYPES, lif_input
from kernelprof.results.check import CheckCase, CheckDocument, CheckedBuild, TimedInputCheck
from kernelprof.results.document import Environment
from kernelprof.results.record import decode, encode, record
from kernelprof.verify.agreement import check_against_oracle
from kernelprof.verify.verdicts import VERDICT_ORDER, classify, sample_neurons, timed_agreement
from reference_kernels.model import NeuronConfig

CHECK_INPUTS = 2
FUNCTION = "kernelprof.runs.check:check_implementation"  # what a check worker runs


@record
class ImplementationTask:
    """What a check or compare worker is asked to do for one implementation on one case."""

    function: str
    impl: str
    config: NeuronConfig
    T: int
    N: int
    dtype: str
    device: str
    seed: int = 0
    # compare's, for the timed rounds and the profile
    repeat_s: float = 0.25
    noise_spread: float | None = None  # the machine's noise: how settled a warm-up must be
    trace_dir: str | None = None
    energy: bool = True
    cuda_graph: bool = False
    keep_host_memory: bool = False

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def input(self, neurons: int, seed: int) -> torch.Tensor:
        """A [T, neurons] input for this task's config, dtype and device."""
        return lif_input((self.T, neurons), self.config, dtype=self.torch_dtype,
                         device=self.torch_device, seed=seed)  # fmt: skip


def unavailable(
    name: str, device: torch.device | str, *, quick: bool = False
) -> CheckedBuild | None:
    """The final record of an implementation that cannot run on ``device`` in this interpreter
    (package or device missing), else None. With ``quick``, only what is certain without
    importing anything (package metadata, device type), so that a caller can skip starting a
    worker for it; the worker makes the full check."""
    implementation = registry.implementation(name)
    reason = implementation.unavailable_reason(torch.device(device), quick=quick)
    if reason is None:
        return None
    return CheckedBuild(impl=name, framework=implementation.framework, status="unavailable",
                        verdict="unavailable", reason=reason)  # fmt: skip


def failed(name: str, reason: str, **more: Any) -> CheckedBuild:
    """The record of an implementation whose worker gave no result (crash, hang, kill)."""
    framework = registry.implementation(name).framework
    return CheckedBuild(impl=name, framework=framework, status="error", verdict="error",
                        reason=reason, **more)  # fmt: skip


def received(name: str, reply: dict[str, Any]) -> CheckedBuild:
    """A worker's first reply as its record (its failure as an error record)."""
    if "impl" not in reply:  # the worker never answered with a record
        return failed(name, reply.get("reason", "no result"))
    return decode(CheckedBuild, reply)


def prepare(task: ImplementationTask) -> tuple[CheckedBuild, NeuronBuild | None]:
    """(record, build) for a task; ``build`` is None when the record is already final
    (unavailable or unsupported)."""
    implementation = registry.implementation(task.impl)
    found = unavailable(task.impl, task.device)
    if found is not None:
        return found, None
    checked = CheckedBuild(impl=task.impl, framework=implementation.framework, verdict="error",
                           reference=implementation.reference)  # fmt: skip
    try:
        implementation.check_neuron(task.config)
        build = implementation.build(task.config, task.torch_device, task.torch_dtype)
    except Unsupported as error:
        return replace(checked, status="unsupported", verdict="unsupported",
                       reason=str(error)), None  # fmt: skip
    return replace(checked, timed_code=build.timed.code or None, path=build.path), build


def judge(checked: CheckedBuild, build: NeuronBuild, task: ImplementationTask,
          neurons: int) -> CheckedBuild:  # fmt: skip
    """The checking build against the oracle on CHECK_INPUTS inputs; the worst final verdict
    counts."""
    worst = None
    for offset in range(CHECK_INPUTS):
        seed = task.seed + 1000 * offset
        result = check_against_oracle(build.check, task.input(neurons, seed), task.config,
                                      seed=seed, dw=build.dw)  # fmt: skip
        judged = (result, *classify(result, build))
        if worst is None or VERDICT_ORDER.index(judged[1]) > VERDICT_ORDER.index(worst[1]):
            worst = judged
    result, final, reason = worst
    return replace(checked, status="ok", verdict=final, reason=reason, oracle=result.figures())


def recheck_on(checked: CheckedBuild, build: NeuronBuild, x: torch.Tensor,
               task: ImplementationTask) -> CheckedBuild:  # fmt: skip
    """The checking build against the oracle on sampled neurons of ``x`` itself (the timed
    input); a worse verdict there replaces the record's, and says where."""
    steps = x.shape[0]
    index = sample_neurons(x[0].numel()).to(x.device)
    sample = x.detach().reshape(steps, -1)[:, index].contiguous()
    result = check_against_oracle(build.check, sample, task.config, seed=task.seed + 2000,
                                  dw=build.dw)  # fmt: skip
    final, reason = classify(result, build)
    timed_input = TimedInputCheck(verdict=final, reason=reason, neurons=int(index.numel()),
                                  spike_mismatch_fraction=result.spikes.mismatch_fraction,
                                  grad_cosine=result.grad_cosine)  # fmt: skip
    checked = replace(checked, timed_input=timed_input)
    if VERDICT_ORDER.index(final) > VERDICT_ORDER.index(checked.verdict):
        checked = replace(checked, verdict=final,
                          reason=f"on the timed input's sampled neurons: {reason}")  # fmt: skip
    return checked


def upstream_gradient(shape: torch.Size, like: torch.Tensor, seed: int) -> torch.Tensor:
    """The seeded gradient on the spikes that backward is run with (and timed with)."""
    generator = torch.Generator().manual_seed(seed + 7)
    return torch.randn(shape, generator=generator).to(like)


def compare_builds(checked: CheckedBuild, build: NeuronBuild, x: torch.Tensor,
                   task: ImplementationTask) -> CheckedBuild:  # fmt: skip
    """The timed build against the checking build on ``x``; on a mismatch the record becomes an
    error that says so (the checking verdict kept beside it)."""
    agreement = timed_agreement(build, x, upstream_gradient(x.shape, x, task.seed), task.config)
    checked = replace(checked, timed_build=agreement)
    if agreement.agrees:
        return checked
    return replace(checked, status="error", verdict="error", reason=agreement.reason,
                   checking_verdict=checked.verdict)  # fmt: skip


def detected_path(build: NeuronBuild) -> str:
    return build.detect_path() if build.detect_path is not None else build.path


def check_implementation(data: dict[str, Any]) -> dict[str, Any]:
    """Runs in a worker: builds the task's implementation for its config, compares its checking
    build with the oracle and its timed build with the checking build."""
    task = decode(ImplementationTask, data)
    checked, build = prepare(task)
    if build is not None:
        checked = judge(checked, build, task, task.N)
        checked = compare_builds(checked, build, task.input(task.N, task.seed), task)
        checked = replace(checked, path=detected_path(build))
    return encode(checked)


def preflight(request) -> None:
    """What must hold on this machine before anything starts: the interpreters of --python
    run (RequestError in one line)."""
    from kernelprof.runs.preflight import interpreters

    interpreters(request.python)


def run_check(
    request,
    *,
    environment: Environment,
    notes: tuple[str, ...] = (),
    status: Callable[[str], contextlib.AbstractContextManager] = lambda _: contextlib.nullcontext(),
) -> CheckDocument:
    """Every implementation of ``request`` (a :class:`~kernelprof.requests.CheckRequest`)
    checked in its own worker, one after another; Ctrl-C keeps the rows checked so far."""
    rows: list[CheckedBuild] = []
    interrupted = False
    try:
        for impl in request.impls:
            rows.append(_check_one(request, impl, status))
    except KeyboardInterrupt:
        interrupted = True
    return CheckDocument(
        environment=environment,
        config=request.config,
        case=CheckCase(T=request.T, N=request.N, dtype=request.dtype, device=request.device),
        rows=tuple(rows),
        notes=notes,
        interrupted=interrupted,
    )


def _check_one(request, impl: str, status) -> CheckedBuild:
    python = request.python.get(impl)
    if python is None:  # no worker for what cannot run here
        found = unavailable(impl, request.device, quick=True)
        if found is not None:
            return found
    task = ImplementationTask(function=FUNCTION, impl=impl, config=request.config, T=request.T,
                              N=request.N, dtype=request.dtype, device=request.device,
                              seed=request.seed)  # fmt: skip
    with status(f"checking {impl}"):
        reply = run_task(encode(task), python=python, timeout_s=request.timeout)
    checked = received(impl, reply)
    return checked if python is None else replace(checked, python=python)
