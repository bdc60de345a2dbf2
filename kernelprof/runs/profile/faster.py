"""The faster-path search of ``kernelprof profile``: what could stand in for each neuron layer,
checked on the layer's own input and then measured in the script's own steps.

After the profiled rounds, one more step (untimed) records each neuron layer's first call: its
input X, its spikes, and, through tensor hooks, the gradient that reached the spikes in the
backward and the one the layer gave X. Every call of the step is asked whether it computes
one of kernelprof's canonical neurons (IF, LIF, PLIF) from rest (the framework's
``FasterPaths.canonical``): a layer whose every call does can be run by kernelprof's fused
reference kernels instead (``reference_kernels.run(x, config, impl=..., w=...)``: ``compile``
anywhere, ``triton`` and ``cupy`` on CUDA where they load). A PLIF layer's kernels take the
module's own learned w (``FasterPaths.decay``: converted from what the framework learns, a
beta = 1 - k say, differentiably), so the gradient of w flows back into the module's own
parameter; the recording step keeps the gradient that parameter got, and the check compares
the path's with it. A PLIF layer whose framework gives no such conversion, or that is called
more than once a step (its parameter's gradient is then not one call's), gets none. The
framework may also offer its own paths for the layer (``FasterPaths.backends``:
SpikingJelly's CUDA providers).

Each path is checked on every layer it would stand in for: it runs on a copy of X, its
backward gets the recorded upstream gradient, and its spikes and dX are compared with what the
layer itself computed (:func:`kernelprof.verify.verdicts.same_neuron`). Only the layers whose
check passes (exact, or close: threshold ties) get the path; a path that passes nowhere is not
measured. The session then runs, for each path, one inspected step with it in place (the
memory it saves for backward, the device's peak) and rounds of plain steps: in each round the
layers' own step and one with each path, their order turning from round to round.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

import reference_kernels
from kernelprof.frameworks.base import Backend, LearnedDecay, Unsupported
from kernelprof.frameworks.reference import PATHS as REFERENCE_PATHS
from kernelprof.results.profile import FasterPath, PathCheck
from kernelprof.runs.e2e.breakdown import Replaced
from kernelprof.verify.verdicts import same_decay_grad, same_neuron
from reference_kernels.model import NeuronConfig

REFERENCE_IMPLS = ("compile", "triton", "cupy")  # the fused ones: what could be faster


@dataclass
class _Call:
    """A neuron layer's first call in the recording step, and what its calls allow."""

    name: str
    module: nn.Module
    faster: object  # its framework's FasterPaths
    config: NeuronConfig | None = None
    refused: str = ""  # why the reference kernels cannot stand in for it
    backends: tuple[Backend, ...] = ()
    x: torch.Tensor | None = None
    spikes: torch.Tensor | None = None
    grad_spikes: torch.Tensor | None = None
    grad_x: torch.Tensor | None = None
    grad_decay: torch.Tensor | None = None  # PLIF: the gradient its learned decay got
    calls: int = 0


@dataclass
class Candidate:
    """A path to measure: the layers it stands in for and how to put it in place."""

    change: str
    path: str
    checks: tuple[PathCheck, ...]
    # (module, its canonical config or None, PLIF's LearnedDecay or None)
    modules: tuple[tuple[nn.Module, NeuronConfig | None, LearnedDecay | None], ...]
    impl: str | None = None  # a reference kernel's, else the backend's
    backend: Backend | None = None
    _replaced: Replaced = field(default_factory=Replaced)
    _context: object = None

    def enter(self) -> None:
        if self.backend is not None:
            self._context = self.backend.use()
            self._context.__enter__()
            return
        for module, config, decay in self.modules:
            forward = partial(_reference, config=config, impl=self.impl)
            if decay is not None:  # the module's own w, taken afresh at every call
                forward = partial(_learned, forward, module, decay)
            self._replaced.set(module, "forward", forward)

    def exit(self) -> None:
        if self._context is not None:
            context, self._context = self._context, None
            context.__exit__(None, None, None)
        self._replaced.restore()


def _reference(x: torch.Tensor, *, config: NeuronConfig, impl: str,
               w: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    return reference_kernels.run(x, config, impl=impl, w=w)


def _learned(forward, module: nn.Module, decay: LearnedDecay, x: torch.Tensor) -> torch.Tensor:
    """A PLIF layer's reference kernel with the module's own w (its gradient reaches the
    module's parameter through ``to_w``)."""
    return forward(x, w=decay.to_w(decay.parameter(module)))


class Recorder:
    """Records the neuron layers' calls of one step (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.calls: dict[str, _Call] = {}
        self.none: dict[str, str] = {}  # layer -> why nothing stands in for it
        self.problems: list[str] = []
        self._replaced = Replaced()
        self._hooks: list = []  # on PLIF layers' learned parameters, removed with the wrappers

    def install(self, entries) -> None:
        """Wraps the forward of each (entry, module) neuron layer for the step."""
        for entry, module in entries:
            faster = entry.neuron.declaration.faster
            if faster is None or faster.canonical is None and faster.backends is None:
                self.none[entry.name] = f"{entry.neuron.framework} offers no other path"
                continue
            self._wrap(entry.name, module, faster)

    def uninstall(self) -> None:
        self._replaced.restore()
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def _wrap(self, name: str, module: nn.Module, faster) -> None:
        forward = module.forward

        def recording(*args, **kwargs):
            call = self._before(name, module, faster, args, kwargs)
            output = forward(*args, **kwargs)
            if call is not None:
                self._after(call, output)
            return output

        try:
            self._replaced.set(module, "forward", recording)
        except (AttributeError, TypeError, RuntimeError) as error:
            self.none[name] = f"its forward cannot be replaced ({type(error).__name__})"

    def _before(self, name, module, faster, args, kwargs) -> _Call | None:
        call = self.calls.get(name)
        first = call is None
        if first:
            call = self.calls[name] = _Call(name, module, faster)
        call.calls += 1
        if faster.canonical is not None and not call.refused:
            try:
                config = faster.canonical(module, args, kwargs)
                if call.config is not None and config != call.config:
                    raise Unsupported("its settings changed between calls")
                call.config = config
            except Unsupported as why:
                call.config, call.refused = None, f"call {call.calls}: {why}"
            except Exception as error:  # noqa: BLE001 - a mapping that fails: said, not fatal
                call.config = None
                call.refused = (f"call {call.calls}: its mapping failed "
                                f"({type(error).__name__}: {error})")  # fmt: skip
        elif faster.canonical is None:
            call.refused = "its framework maps it to no canonical neuron"
        if not first:
            return None
        if call.config is not None and call.config.neuron == "plif":
            self._watch_decay(call)
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is None:
            call.refused = call.refused or "no tensor input"
            return None
        call.x = _copy(call, x)
        if call.x is not None and x.requires_grad:
            x.register_hook(partial(_keep, call, "grad_x"))
        return call

    def _after(self, call: _Call, output) -> None:
        spikes = output if isinstance(output, torch.Tensor) else None
        if spikes is None:
            call.refused = call.refused or "its output is not one tensor"
            call.x = None  # nothing to check a path against
            return
        call.spikes = _copy(call, spikes)
        if call.spikes is None:
            call.x = None  # not searched: the reason is in refused
            return
        if spikes.requires_grad:
            spikes.register_hook(partial(_keep, call, "grad_spikes"))
        if call.faster.backends is not None:
            try:
                call.backends = tuple(call.faster.backends(call.module, self.device))
            except Exception as error:  # noqa: BLE001 - never break the user's step
                self.problems.append(f"{call.name}: its framework's paths not read "
                                     f"({type(error).__name__}: {error})")  # fmt: skip

    def _watch_decay(self, call: _Call) -> None:
        """PLIF: keeps the gradient the layer's learned parameter gets in the step's backward
        (what a path must give it too); no path without a way to pass the module's w."""
        decay = call.faster.decay
        if decay is None:
            call.config, call.refused = None, ("PLIF: its framework gives kernelprof's kernels "
                                               "no way to take its learned decay")  # fmt: skip
            return
        try:
            parameter = decay.parameter(call.module)
            if parameter.requires_grad:
                self._hooks.append(parameter.register_hook(partial(_keep, call, "grad_decay")))
        except Exception as error:  # noqa: BLE001 - a layer given up, never the user's step
            call.config = None
            call.refused = f"PLIF: its learned decay not read ({type(error).__name__}: {error})"

    # ---- the search, between steps ------------------------------------------------------------

    def search(self) -> tuple[list[Candidate], list[FasterPath]]:
        """(the paths to measure, those not measured and why), every layer checked."""
        calls = [call for call in self.calls.values() if call.x is not None]
        for call in calls:
            if call.config is not None and call.config.neuron == "plif" and call.calls > 1:
                call.config, call.refused = None, (
                    f"PLIF called {call.calls} times in the step: its learned decay's gradient "
                    "is not one call's, so a path's cannot be checked against it")  # fmt: skip
        candidates, unmeasured = [], []
        eligible = [call for call in calls if call.config is not None]
        for impl in REFERENCE_IMPLS if eligible else ():
            change = f"kernelprof ref-{impl} in place of forward"
            reason = reference_kernels.unavailable_reason(impl, self.device)
            if reason is None and impl == "triton" and self.device.type != "cuda":
                reason = "on the CPU Triton runs only in its interpreter, a checking tool"
            if reason is not None:
                unmeasured.append(FasterPath(change=change, path=REFERENCE_PATHS[impl],
                                             checks=(),
                                             problem=f"unavailable: {reason}"))  # fmt: skip
                continue
            checks = tuple(self._check(call, *_path_run(call, impl)) for call in eligible)
            self._add(candidates, unmeasured,
                      Candidate(change=change, path=REFERENCE_PATHS[impl], checks=checks,
                                modules=_passing(eligible, checks), impl=impl))  # fmt: skip
        by_backend: dict[str, list[tuple[_Call, Backend]]] = {}
        for call in calls:
            for backend in call.backends:
                if not backend.current:
                    by_backend.setdefault(backend.name, []).append((call, backend))
        for name, offered in by_backend.items():
            backend = offered[0][1]
            checks = tuple(self._check(call, partial(_fresh_call, call), context=other.use)
                           for call, other in offered)  # fmt: skip
            self._add(candidates, unmeasured,
                      Candidate(change=name, path=backend.path, checks=checks,
                                modules=_passing([call for call, _ in offered], checks),
                                backend=backend))  # fmt: skip
        for call in self.calls.values():
            offered = call.x is not None and (
                call.config is not None or any(not b.current for b in call.backends)
            )
            if not offered and call.name not in self.none:
                self.none[call.name] = call.refused or "its framework offers no other path here"
        self.calls = {}  # the recorded tensors are let go
        return candidates, unmeasured

    @staticmethod
    def _add(candidates: list, unmeasured: list, candidate: Candidate) -> None:
        if candidate.modules:
            candidates.append(candidate)
        else:
            unmeasured.append(FasterPath(change=candidate.change, path=candidate.path,
                                         checks=candidate.checks,
                                         problem="not measured: no layer's check "
                                                 "passed"))  # fmt: skip

    def _check(self, call: _Call, run, learned: torch.Tensor | None = None,
               context=contextlib.nullcontext) -> PathCheck:  # fmt: skip
        """``run`` on the layer's input, its forward and backward inside ``context()`` (a
        framework's path is picked at each call, the backward's too). ``learned``: PLIF's copy
        of the layer's learned parameter that ``run`` takes its w from; the gradient it gets
        must be the one the layer's own parameter got."""
        try:
            x = call.x.clone().requires_grad_(call.grad_x is not None)
            with context():
                spikes = run(x)
                if call.grad_spikes is not None:
                    spikes.backward(call.grad_spikes)
            verdict, reason = same_neuron(spikes, x.grad, call.spikes, call.grad_x, call.x,
                                          call.config)  # fmt: skip
            if learned is not None and verdict in ("exact", "close"):
                verdict, reason = _decay_verdict(call, learned, verdict, reason)
        except Exception as error:  # noqa: BLE001 - a path that fails is said, not fatal
            first = str(error).splitlines()[0] if str(error) else ""
            verdict, reason = "failed", f"{type(error).__name__}: {first}"
        return PathCheck(layer=call.name, verdict=verdict, reason=reason)


def _copy(call: _Call, tensor: torch.Tensor) -> torch.Tensor | None:
    """A copy of what the layer saw, or None (and why) where the device has no room for it:
    the search gives the layer up rather than the user's step."""
    try:
        return tensor.detach().clone()
    except RuntimeError as error:  # torch.OutOfMemoryError among them
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        call.refused = f"not recorded: {first}"
        return None


def _keep(call: _Call, attribute: str, grad: torch.Tensor) -> None:
    if getattr(call, attribute) is None and call.x is not None:
        kept = _copy(call, grad)
        if kept is None:
            call.x = None  # not searched: its check would lack a gradient
        setattr(call, attribute, kept)


def _path_run(call: _Call, impl: str):
    """(run, PLIF's copy of the learned parameter or None): the reference kernel ``impl`` on a
    layer's input, a PLIF's w taken from a copy of its parameter (the model's is not
    touched)."""
    run = partial(_reference, config=call.config, impl=impl)
    if call.config.neuron != "plif":
        return run, None
    decay = call.faster.decay
    learned = decay.parameter(call.module).detach().clone()
    learned.requires_grad_(call.grad_decay is not None)
    return (lambda x: run(x, w=decay.to_w(learned))), learned


def _decay_verdict(call: _Call, learned: torch.Tensor, verdict: str, reason: str):
    """A PLIF path's verdict once its decay's gradient is compared with the layer's own."""
    if call.grad_decay is None:
        return verdict, f"{reason}; its learned decay needs no gradient"
    if verdict == "close":  # a tie changes a neuron's whole contribution to the sum
        return verdict, f"{reason}; the decay's gradient not compared (spikes differ at ties)"
    problem = same_decay_grad(learned.grad, call.grad_decay, call.x.dtype)
    if problem:
        return "WRONG", problem
    return verdict, f"{reason}; the learned decay's gradient within tolerance"


def _fresh_call(call: _Call, x: torch.Tensor) -> torch.Tensor:
    """The layer on ``x``, in a copy of it at rest (the model's own state is not touched)."""
    return call.faster.fresh(call.module)(x)


def _passing(calls: list[_Call], checks: tuple[PathCheck, ...]):
    return tuple((call.module, call.config,
                  call.faster.decay if call.config and call.config.neuron == "plif" else None)
                 for call, check in zip(calls, checks, strict=True)
                 if check.verdict in ("exact", "close"))  # fmt: skip
