"""SpikingJelly: its ``LIFNode``, ``IFNode`` and ``ParametricLIFNode`` (2.x, auto and each CUDA
provider; LIFNode also in 0.0.0.0.14, the older release with ``backend='torch'|'cupy'``, still
widely used), its e2e network and its ANN-to-SNN converter.

The timed build is the node as SpikingJelly's users build it, ``LIFNode(step_mode='m', ...)``
with ``store_v_seq`` at its default (False), called as ``functional.reset_net(node);
node(x)``; the checking build is a second node with ``store_v_seq=True``, to expose V.

What SpikingJelly 2.0.0 does, read from its sources (``activation_based/neuron/lif.py``,
``activation_based/functional/neuron.py:lif_multi_step``, ``_ops/lif``, ``_ops/selection.py``):

* ``LIFNode(step_mode='m')`` takes the whole [T, ...] sequence in one call and keeps V in the
  module; ``functional.reset_net`` puts it back to V_r (hard) or 0 (soft). ``store_v_seq=True``
  records ``v_seq`` [T, ...], which is V *after* reset in every path (``reference.step`` appends
  the value returned by ``reset.voltage``; the fused kernels write V after reset too).
* The fused op ``sj_lif::forward`` is used only when the surrogate is one of seven built-ins
  with a scalar alpha (Sigmoid, ATan, PiecewiseQuadratic, PiecewiseExp, SoftSign, SuperSpike,
  Erf), the input is float32/float16/bfloat16 *and* the state V is float32. V takes the input's
  dtype (``BaseNode.materialize_states``), so float16/bfloat16 inputs fall back as well. Any
  fallback runs ``_ops/lif/reference.multi_step``: a Python loop with autograd per step.
* On CPU the fused op itself is a Python loop too (``reference._forward_impl``, autograd per step
  through ``_SurrogateSpike``). On CUDA the op dispatches to a provider chosen once per device
  and cached: native CUDA -> Triton -> torch (a Python loop over T with a hand-written
  reverse-time backward loop). ``SJ_LIF_CUDA_IMPLEMENTATION=auto|cuda|triton|torch`` forces one;
  with a forced provider a profile that needs the fallback raises ``RuntimeError`` instead of
  falling back silently (``_require_automatic_torch``), and a missing provider raises at the
  first call ("No available sj_lif CUDA implementation").
* The variable is read once, when ``spikingjelly._ops.lif`` is first imported (at the first
  multi-step LIF call, not when ``LIFNode`` is built), into ``_selection._requested``; setting
  the variable later has no effect. The forced rows therefore set the variable around that import
  and, since SpikingJelly has no public per-call switch, set ``_selection._requested`` and swap in
  a per-provider selection cache before every call. This is left in place after the call, not
  restored, because the backward (run later by autograd) dispatches through the same selection:
  restoring it would time another provider's backward. Each row normally runs in its own worker
  process, where this is moot.
* ``IFNode`` and ``ParametricLIFNode`` work the same way through their own ops (``sj_if``,
  ``sj_plif``; ``_ops/if_``, ``_ops/plif``) and variables (``SJ_IF_CUDA_IMPLEMENTATION``,
  ``SJ_PLIF_CUDA_IMPLEMENTATION``). PLIF learns one ``w`` (a 0-dim parameter, 1/tau =
  sigmoid(w), initialised to -log(init_tau - 1): the canonical w0), so its gradient is the
  canonical dw as it is; its fused op wants a 0-dim float w as well.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from functools import partial

import torch
from torch import nn

from kernelprof.frameworks import base
from kernelprof.frameworks.networks import (
    KERNEL,
    PADDING,
    PERCENTILE,
    POOL,
    ConvertedSNN,
    LayerPlan,
    NetworkSpec,
    SpikingNetwork,
    run_layers,
)
from reference_kernels.model import LIFConfig, NeuronConfig, make_config

REQUIREMENT = base.Requirement("spikingjelly", ">=2.0,<3", module="spikingjelly.activation_based")
LEGACY_REQUIREMENT = base.Requirement(
    "spikingjelly", "==0.0.0.0.14", module="spikingjelly.activation_based"
)
BACKEND_ENV = "SJ_LIF_CUDA_IMPLEMENTATION"
# Each neuron's op package and provider variable in SpikingJelly 2.x, and its node class.
_OPS = {"lif": "spikingjelly._ops.lif", "if": "spikingjelly._ops.if_",
        "plif": "spikingjelly._ops.plif"}  # fmt: skip
BACKEND_ENVS = {"lif": BACKEND_ENV, "if": "SJ_IF_CUDA_IMPLEMENTATION",
                "plif": "SJ_PLIF_CUDA_IMPLEMENTATION"}  # fmt: skip
NODE_CLASSES = {"lif": "LIFNode", "if": "IFNode", "plif": "ParametricLIFNode"}
CUDA_BACKENDS = ("torch", "triton", "cuda")
# Canonical surrogate -> SpikingJelly class (same formula; superspike only at alpha=1, see below).
SURROGATE_CLASSES = {
    "sigmoid": "Sigmoid",
    "atan": "ATan",
    "piecewise_exp": "PiecewiseExp",
    "superspike": "SuperSpike",
}
# Autograd Functions of SpikingJelly's surrogate classes (their names show in a profile when the
# fallback loop runs) and of the fused op's torch reference.
_FALLBACK_SURROGATE_FUNCTIONS = ("sigmoid", "atan", "piecewise_exp", "super_spike")
_REFERENCE_SURROGATE_FUNCTION = "_SurrogateSpike"
# This module's neurons (the rows of check and compare), by name.
NEURONS: dict[str, base.Implementation] = {}
_CUDA_PROVIDER_PATHS = {
    "cuda": "native CUDA: fused forward kernel over T, fused reverse-time backward kernel",
    "triton": "Triton: fused forward kernel over T, fused reverse-time backward kernel",
    "torch": "torch provider: Python loop over T (sj_lif op), hand-written reverse-time "
    "backward loop",
}


def _add(neuron: base.Implementation) -> None:
    NEURONS[neuron.name] = neuron


def lif_kwargs(config: LIFConfig) -> dict:
    """``LIFNode`` keyword arguments for ``config`` (shared by 2.x and 0.0.0.0.14), without the
    surrogate; raises :class:`Unsupported` where SpikingJelly cannot express it."""
    if config.tau <= 1:
        raise base.Unsupported(
            f"SpikingJelly's LIFNode needs tau > 1 (it asserts a float tau > 1), got "
            f"tau={config.tau:g}"
        )
    surrogate_spec(config)  # raises for a surrogate SpikingJelly has no exact match for
    return {
        "tau": float(config.tau),  # ints fail SpikingJelly's isinstance(tau, float) assert
        "v_threshold": float(config.v_threshold),
        "v_reset": None if config.v_reset is None else float(config.v_reset),
        "decay_input": bool(config.decay_input),
        "detach_reset": bool(config.detach_reset),
    }


def surrogate_spec(config: LIFConfig) -> tuple[str, float]:
    """(SpikingJelly surrogate class name, alpha) computing the canonical surrogate."""
    if config.surrogate == "superspike" and config.alpha != 1:
        raise base.Unsupported(
            "SpikingJelly's SuperSpike(alpha) computes alpha/(1+|x|)^2, which equals the "
            f"canonical superspike 1/(1+alpha|x|)^2 only at alpha=1, got alpha={config.alpha:g}"
        )
    return SURROGATE_CLASSES[config.surrogate], float(config.alpha)


def fallback_reason(surrogate_function, dtype: torch.dtype) -> str | None:
    """Why ``lif_multi_step`` would skip its fused op for this surrogate and input dtype, by
    SpikingJelly 2.x's own test; None when the fused op runs."""
    from spikingjelly._ops.surrogate import _DTYPES, _surrogate_spec

    if _surrogate_spec(surrogate_function) is None:
        return f"surrogate {type(surrogate_function).__name__} not fused"
    if dtype not in _DTYPES:
        return f"dtype {str(dtype).removeprefix('torch.')} not fused"
    if dtype != torch.float32:  # V takes the input's dtype; the op wants a float32 V
        return f"state dtype {str(dtype).removeprefix('torch.')} not fused (needs float32 V)"
    return None


# ---- CUDA provider selection ------------------------------------------------------------------

# SpikingJelly's own choice per neuron: the variable as set when its op package was imported.
_SJ_DEFAULT: dict[str, str] = {}
# One selection cache per neuron and provider, so switching rows never reuses another
# provider's binding.
_CACHES: dict[tuple[str, str], tuple[dict, dict]] = {}
_LIF_OPS = _OPS["lif"]


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _selection(neuron: str = "lif"):
    """SpikingJelly's provider selection of a neuron's op (e.g. ``spikingjelly._ops.lif.
    _selection``)."""
    name = _OPS[neuron]
    module = sys.modules.get(name) or importlib.import_module(name)
    selection = module._selection
    if not any(key[0] == neuron for key in _CACHES):  # what SpikingJelly filled at import
        _CACHES[(neuron, selection._requested)] = (selection._selections,
                                                   selection._compiled_selections)  # fmt: skip
    return selection


def use_cuda_backend(backend: str | None, neuron: str = "lif") -> None:
    """Makes SpikingJelly's next calls of ``neuron`` use ``backend`` (None: SpikingJelly's own
    choice).

    SpikingJelly reads the variable only when the neuron's op package is imported, so it is
    set around that import (and restored); afterwards the selection object is set directly and
    left so (see the module docstring)."""
    name, variable = _OPS[neuron], BACKEND_ENVS[neuron]
    if neuron not in _SJ_DEFAULT:
        imported = name in sys.modules
        _SJ_DEFAULT[neuron] = (
            _selection(neuron)._requested if imported else os.environ.get(variable, "auto")
        )
    requested = backend or _SJ_DEFAULT[neuron]
    if name not in sys.modules:
        with _environment(variable, requested):
            _selection(neuron)
    selection = _selection(neuron)
    if (neuron, requested) not in _CACHES:
        _CACHES[(neuron, requested)] = ({}, {})
    selection._requested = requested
    selection._selections, selection._compiled_selections = _CACHES[(neuron, requested)]


def _provider_problem(backend: str, neuron: str = "lif"):
    """device_problem for a forced provider: why SpikingJelly could not load it, else None."""

    def problem(device: torch.device) -> str | None:
        if backend == "torch":
            return None
        module = {"cuda": "native", "triton": "triton"}[backend]
        try:
            loaded = importlib.import_module(f"{_OPS[neuron]}.{module}")
            if backend == "cuda":
                from spikingjelly._ops.native_loader import _check_native_device

                index = device.index if device.index is not None else torch.cuda.current_device()
                _check_native_device(loaded._build_info, index)
        except (ImportError, OSError) as error:  # what SpikingJelly's selection catches too
            return f"SpikingJelly's {backend} {neuron.upper()} provider is unavailable: {error}"
        return None

    return problem


def _cuda_provider(device: torch.device, neuron: str = "lif") -> str:
    """The provider SpikingJelly has bound (or now binds) for ``device``."""
    return _selection(neuron).diagnostics(device)["implementation"]


# ---- path detection ---------------------------------------------------------------------------


def classify_profile(names: Counter, steps: int, device: torch.device, neuron: str = "lif") -> str:
    """Names the code path from the op and kernel names of one profiled forward+backward."""
    where = "CPU" if device.type == "cpu" else "CUDA"
    aten = sum(count for name, count in names.items() if name.startswith("aten::"))
    loop = f"{aten} aten ops for T={steps}"
    # The native kernels are lif_forward<T>/lif_backward<T> (spikingjelly/_ops/lif/kernels.cuh;
    # if_ and plif_ for the others). Every provider's profile also holds the op's autograd
    # node, named e.g. "GeneratedBackwardFor_sj_lif_forward_default": that is not a kernel.
    native = re.compile(rf"(void )?{neuron}_(forward|backward)\b")
    op = f"sj_{neuron}"
    kernels = sorted(name for name in names if native.match(name))
    if kernels:
        return f"native CUDA kernels ({', '.join(kernels)})"
    triton = sorted(
        name
        for name in names
        if name in ("_forward_kernel", "_backward_kernel") or name.startswith("triton_")
    )
    if triton:
        return f"Triton kernels ({', '.join(triton)})"
    fallback = [name for name in _FALLBACK_SURROGATE_FUNCTIONS if names.get(name)]
    if fallback:
        return (
            f"python loop ({where}): fallback, surrogate autograd Function "
            f"{fallback[0]} x{names[fallback[0]]} ({loop})"
        )
    if names.get(_REFERENCE_SURROGATE_FUNCTION):
        return f"python loop ({where}): torch reference of the {op} op, autograd per step ({loop})"
    if names.get(f"{op}::forward"):
        return f"torch provider ({where}): {op} op, Python loop over T ({loop})"
    return f"unrecognised ({loop}; no SpikingJelly op or kernel in the profile)"


def _profile(run, x: torch.Tensor, device: torch.device) -> Counter:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    x = x.detach().clone().requires_grad_()
    with profile(activities=activities) as prof:
        spikes = run(x)
        spikes.backward(torch.ones_like(spikes))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return Counter(event.name for event in prof.events())


# ---- SpikingJelly 2.x -------------------------------------------------------------------------


def _expected_path(surrogate_function, device, dtype, backend: str | None,
                   neuron: str = "lif") -> str:  # fmt: skip
    reason = fallback_reason(surrogate_function, dtype)
    if device.type == "cpu":
        if reason:
            return f"python loop (CPU): fallback, {reason}"
        return "python loop (CPU): torch reference of the sj_lif op, autograd per step"
    if reason:
        if backend is not None:
            raise base.Unsupported(
                f"{BACKEND_ENVS[neuron]}={backend}: SpikingJelly raises instead of falling back "
                f"to its Python loop for this profile ({reason})"
            )
        return f"python loop: fallback, {reason}"
    provider = backend or _cuda_provider(device, neuron)
    return _CUDA_PROVIDER_PATHS.get(provider, provider)


def node_kwargs(config: NeuronConfig) -> dict:
    """The node's keyword arguments for ``config`` (``LIFNode``, ``IFNode`` or
    ``ParametricLIFNode``), without the surrogate; raises :class:`Unsupported` where
    SpikingJelly cannot express it."""
    if config.neuron == "lif":
        return lif_kwargs(config)
    surrogate_spec(config)
    kwargs = {
        "v_threshold": float(config.v_threshold),
        "v_reset": None if config.v_reset is None else float(config.v_reset),
        "detach_reset": bool(config.detach_reset),
    }
    if config.neuron == "if":
        return kwargs
    if config.per_channel:
        raise base.Unsupported(
            "SpikingJelly's ParametricLIFNode learns one w per layer (a 0-dim parameter), not "
            "one per channel"
        )
    # init_tau must be a float > 1 (asserted), as the canonical tau0 is
    return {**kwargs, "init_tau": float(config.tau), "decay_input": bool(config.decay_input)}


def _half_state(config: NeuronConfig, dtype: torch.dtype) -> list[base.Approximation]:
    """A half-precision input's approximation: V takes the input's dtype
    (BaseNode.materialize_states), so the whole recurrence runs in half precision, where the
    canonical model accumulates in float32."""
    if dtype not in (torch.float16, torch.bfloat16):
        return []
    dtype_name = str(dtype).removeprefix("torch.")
    # Rounding to the state dtype each step (eps 2^-10 fp16, 2^-7 bf16) moves V by a few eps
    # and flips spikes only within that of the threshold: seen 0.01-0.3 % of spikes, cosine
    # >= 0.998, |dV| <= 2 eps at T = 8 to 32; the bounds allow 8 eps.
    eps = torch.finfo(dtype).eps
    return [base.Approximation(
        f"membrane state kept in {dtype_name} (SpikingJelly's V takes the input dtype), not "
        "float32: rounding accumulates over T",
        spike_mismatch=min(1.0, 8 * eps), grad_cosine_drop=0.01,
        v_diff=8 * eps * max(1.0, abs(config.v_threshold)),
        state_diff_per_unit=base.half_current_per_unit(config, dtype),  # CUBA's c
    )]  # fmt: skip


def _builder(backend: str | None):
    def build(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
        kwargs = node_kwargs(config)
        name, alpha = surrogate_spec(config)
        from spikingjelly.activation_based import functional, neuron, surrogate

        node_class = getattr(neuron, NODE_CLASSES[config.neuron])
        surrogate_function = getattr(surrogate, name)(alpha=alpha)
        if device.type == "cuda":
            if backend is not None and config.neuron != "lif":
                problem = _provider_problem(backend, config.neuron)(device)
                if problem is not None:
                    raise base.Unsupported(f"unavailable here: {problem}")
            use_cuda_backend(backend, config.neuron)
        path = _expected_path(surrogate_function, device, dtype, backend, config.neuron)
        # The checking build records V (store_v_seq=True); the timed build is the node as its
        # users build it (store_v_seq defaults to False).
        checking = node_class(
            step_mode="m", surrogate_function=surrogate_function, store_v_seq=True, **kwargs
        ).to(device)
        node = node_class(step_mode="m", surrogate_function=surrogate_function, **kwargs)
        node = node.to(device)
        last: list[tuple[torch.Size, torch.dtype]] = []  # shape and dtype of the last timed call

        def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            functional.reset_net(checking)  # V back to V_r (or 0): no state between calls
            if config.neuron == "plif":
                checking.w.grad = None  # each check's dw alone (w itself stays at w0)
            if x.is_cuda:
                use_cuda_backend(backend, config.neuron)
            spikes = checking(x)
            return spikes, checking.v_seq  # V after reset, [T, ...] (float32 on the fused path)

        def timed(x: torch.Tensor) -> torch.Tensor:
            functional.reset_net(node)
            if x.is_cuda:
                use_cuda_backend(backend, config.neuron)  # a no-op unless a row switched it
            spikes = node(x)
            last[:] = [(x.shape, x.dtype)]
            return spikes

        def detect_path() -> str:
            if not last:
                return f"{path} (expected; not run yet)"
            # The path depends on shape, dtype and device only, so any input of the last call's
            # shape and dtype shows it (and no input is kept alive between calls).
            shape, x_dtype = last[0]
            x = torch.randn(shape, device=device).to(x_dtype) + 1.0
            profiled = _profile(timed, x, device)
            return classify_profile(profiled, shape[0], device, config.neuron)

        approximations = _half_state(config, dtype)

        return base.NeuronBuild(
            check=check,
            timed=base.TimedBuild(
                run=timed, code="functional.reset_net(node); spikes = node(x)", module=node
            ),
            path=path,
            detect_path=detect_path,
            approximations=approximations,
            # SpikingJelly's w is the canonical w: its gradient is dw as it is
            dw=(lambda: checking.w.grad) if config.neuron == "plif" else None,
        )

    return build


def _reset_and_run(node: nn.Module):
    """The timed call of a node as its users make it: ``functional.reset_net(node)``, then the
    node on [T, ...]."""
    from spikingjelly.activation_based import functional

    def timed(x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(node)
        return node(x)

    return timed


PATH_CUBA = ("python loop: CUBALIFNode.multi_step_forward, one cuba_lif_step per t (eager torch "
             "ops, no fused op), autograd backward")  # fmt: skip


def cuba_kwargs(config: NeuronConfig) -> dict:
    """``CUBALIFNode``'s arguments for the canonical CUBA (c = c_decay c + x, H = v_decay v + c,
    then spike and reset: the canonical CUBA with decay_input=False, c_decay = 1 - 1/tau_syn,
    v_decay = 1 - 1/tau; decay_input scales the input by 1/tau, which the current carries),
    without the surrogate; Unsupported naming what it cannot express."""
    surrogate_spec(config)
    problems = []
    if config.v_reset is not None and config.v_reset != 0.0:
        problems.append(f"v_reset={config.v_reset:g}: CUBALIFNode's membrane leaks towards 0 "
                        "(v_decay v), so its hard reset is to 0 only")  # fmt: skip
    if config.detach_reset:
        problems.append("detach_reset=True: CUBALIFNode's constructor takes no detach_reset "
                        "(BaseNode's default, False)")  # fmt: skip
    if problems:
        raise base.Unsupported("spikingjelly cannot express " + "; ".join(problems))
    return {"c_decay": config.syn_decay, "v_decay": 1.0 - 1.0 / config.tau,
            "v_threshold": float(config.v_threshold),
            "v_reset": None if config.v_reset is None else 0.0}  # fmt: skip


def build_cuba(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
    """``CUBALIFNode`` as its users run it over [T, ...] (``functional.set_step_mode(node, 'm')``:
    its constructor takes no step_mode); the checking build steps a twin one step a call and
    reads its V and current c after each."""
    kwargs = cuba_kwargs(config)
    name, alpha = surrogate_spec(config)
    from spikingjelly.activation_based import functional, neuron, surrogate

    surrogate_function = getattr(surrogate, name)(alpha=alpha)
    checking = neuron.CUBALIFNode(surrogate_function=surrogate_function, **kwargs).to(device)
    node = cuba_node(surrogate_function=surrogate_function, **kwargs).to(device)
    scale = 1.0 / config.tau if config.decay_input else 1.0

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return x * scale if scale != 1.0 else x  # the synapse's weights would hold 1/tau

    def check(x: torch.Tensor):
        functional.reset_net(checking)
        spikes, v, current = [], [], []
        for step in prepare(x):
            spikes.append(checking(step))
            v.append(checking.v)  # V after reset
            current.append(checking.c)  # the current of the scaled input
        return torch.stack(spikes), torch.stack(v), {"i": torch.stack(current) / scale}

    return base.NeuronBuild(
        check=check,
        timed=base.TimedBuild(
            run=_reset_and_run(node),
            prepare=prepare,
            module=node,
            code="functional.reset_net(node); spikes = node(x)  # CUBALIFNode, step_mode 'm'",
        ),  # fmt: skip
        path=PATH_CUBA,
        approximations=_half_state(config, dtype),
    )


def cuba_node(**kwargs) -> nn.Module:
    """``neuron.CUBALIFNode(**kwargs)`` set to step_mode 'm' with ``functional.set_step_mode``
    (its constructor takes no step_mode), as its users run it over [T, ...]."""
    from spikingjelly.activation_based import functional, neuron

    node = neuron.CUBALIFNode(**kwargs)
    functional.set_step_mode(node, "m")
    return node


_SJ_BUILD = _builder(None)


def _main_build(config: NeuronConfig, device: torch.device, dtype: torch.dtype):
    """The ``spikingjelly`` row: SpikingJelly's own choice of path; CUBA's own node."""
    if config.neuron == "cuba":
        return build_cuba(config, device, dtype)
    return _SJ_BUILD(config, device, dtype)


_implementation = partial(base.Implementation, framework="SpikingJelly", requires=(REQUIREMENT,),
                          neurons=("if", "lif", "plif"))  # fmt: skip
_add(
    _implementation(
        name="spikingjelly",
        build=_main_build,
        description="neuron.LIFNode / IFNode / ParametricLIFNode(step_mode='m'), CUBALIFNode for "
        "CUBA; on CUDA SpikingJelly picks the provider",
        neurons=("if", "lif", "plif", "cuba"),
    )
)


for _backend in CUDA_BACKENDS:
    _add(
        _implementation(
            name=f"spikingjelly-{_backend}",
            build=_builder(_backend),
            devices=("cuda",),
            description=f"neuron.LIFNode / IFNode / ParametricLIFNode(step_mode='m') with "
            f"SJ_{{LIF,IF,PLIF}}_CUDA_IMPLEMENTATION={_backend}: " + _CUDA_PROVIDER_PATHS[_backend],
            device_problem=_provider_problem(_backend),  # LIF's; a build checks its neuron's
        )
    )


# ---- SpikingJelly 0.0.0.0.14 ------------------------------------------------------------------

LEGACY_BACKENDS = ("torch", "cupy")
_LEGACY_PATHS = {
    "torch": "python loop: BaseNode.multi_step_forward, one single step per t, autograd backward",
    "cupy": "CuPy: one forward kernel over T, one reverse-time backward kernel (multiplies by "
    "1/tau)",
}


def _legacy_builder(backend: str):
    def build(config: NeuronConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
        kwargs = node_kwargs(config)  # 0.0.0.0.14's nodes take 2.x's arguments
        name, alpha = surrogate_spec(config)
        from spikingjelly.activation_based import functional, neuron, surrogate

        surrogate_class = getattr(surrogate, name, None)
        if surrogate_class is None:
            raise base.Unsupported(f"this SpikingJelly has no surrogate.{name}")
        surrogate_function = surrogate_class(alpha=alpha)
        if backend == "cupy":
            # LIFNode's cupy branch accepts float and half only (NotImplementedError otherwise).
            if dtype not in (torch.float32, torch.float16):
                raise base.Unsupported(
                    f"SpikingJelly's cupy neuron kernels take float32/float16, not {dtype}"
                )
            try:  # the backward kernel is generated from the surrogate's CUDA code
                surrogate_function.cuda_codes(y="grad_s", x="over_th", dtype="float")
            except (NotImplementedError, AttributeError) as error:  # base class: no CUDA code
                raise base.Unsupported(
                    f"SpikingJelly 0.0.0.0.14's {name} has no CUDA code for the cupy backend "
                    f"({type(error).__name__})"
                ) from error
        node_class = getattr(neuron, NODE_CLASSES[config.neuron])
        nodes = [
            node_class(
                step_mode="m",
                backend=backend,
                surrogate_function=surrogate_function,
                store_v_seq=store,
                **kwargs,
            ).to(device)
            for store in (True, False)  # the checking build records V; the timed one does not
        ]
        for node in nodes:
            node.train()  # in eval mode 0.0.0.0.14 ignores backend and runs its JIT loops
        checking, node = nodes

        def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            functional.reset_net(checking)  # also clears v_seq
            if config.neuron == "plif":
                checking.w.grad = None  # each check's dw alone (w stays at w0)
            spikes = checking(x)
            # Both backends record V after reset: the torch loop appends self.v after
            # neuronal_reset, the cupy kernel returns v_v_seq[1:].
            return spikes, checking.v_seq

        return base.NeuronBuild(
            check=check,
            timed=base.TimedBuild(
                run=_reset_and_run(node),
                code="functional.reset_net(node); spikes = node(x)",
                module=node,
            ),
            path=_LEGACY_PATHS[backend],
            dw=(lambda: checking.w.grad) if config.neuron == "plif" else None,
        )

    return build


def _cupy_problem(device: torch.device) -> str | None:
    try:
        import cupy  # noqa: F401
    except ImportError as error:
        return f"the cupy backend needs CuPy: {error}"
    return None


def _legacy_implementation(name: str, backend: str, **fields) -> base.Implementation:
    """The 0.0.0.0.14 LIFNode row with ``backend=backend`` (``fields``: the Neuron's others)."""
    return base.Implementation(
        name=name,
        framework="SpikingJelly 0.0.0.0.14",
        build=_legacy_builder(backend),
        requires=(LEGACY_REQUIREMENT,),
        description=f"neuron.LIFNode / IFNode / ParametricLIFNode(step_mode='m', "
        f"backend={backend!r})",
        neurons=("if", "lif", "plif"),
        **fields,
    )


_add(_legacy_implementation("spikingjelly-legacy", "torch"))
_add(
    _legacy_implementation(
        "spikingjelly-legacy-cupy", "cupy", devices=("cuda",), device_problem=_cupy_problem
    )
)


# ---- e2e network -------------------------------------------------------------------------------


class SpikingJellyNetwork(SpikingNetwork):
    """SpikingJelly's multi-step layers (step_mode='m') and ``neuron.LIFNode`` (``IFNode``,
    ``ParametricLIFNode``) on [T, B, ...]."""

    framework = "spikingjelly"
    neurons = default_neurons = ("if", "lif", "plif", "cuba")

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        from spikingjelly.activation_based import layer as sj_layer
        from spikingjelly.activation_based import neuron, surrogate

        if layer.category == "conv":
            return sj_layer.Conv2d(
                layer.in_shape[0],
                layer.out_shape[0],
                KERNEL,
                padding=PADDING,
                bias=False,
                step_mode="m",
            )
        if layer.category == "pool":
            return sj_layer.AvgPool2d(POOL, step_mode="m")
        if layer.category == "flatten":
            return sj_layer.Flatten(step_mode="m")
        if layer.category in ("linear", "readout"):
            return sj_layer.Linear(layer.in_shape[0], layer.out_shape[0], bias=False, step_mode="m")
        if self.neuron == "cuba":
            return self._cuba_node()
        kwargs = node_kwargs(self.lif_config)
        name, alpha = surrogate_spec(self.lif_config)
        node_class = getattr(neuron, NODE_CLASSES[self.neuron])
        return node_class(
            step_mode="m", surrogate_function=getattr(surrogate, name)(alpha=alpha), **kwargs
        )

    def _cuba_node(self) -> nn.Module:
        """CUBALIFNode, multi-step, its input scaled by 1/tau for decay_input."""
        from spikingjelly.activation_based import surrogate

        config = self.lif_config
        name, alpha = surrogate_spec(config)
        node = cuba_node(surrogate_function=getattr(surrogate, name)(alpha=alpha),
                         **cuba_kwargs(config))  # fmt: skip
        scaled = ", its input times 1/tau" if config.decay_input else ""
        self.note_once(f"CUBA: neuron.CUBALIFNode, set to step_mode 'm' (its constructor takes "
                       f"none){scaled}")  # fmt: skip
        return InputScaled(node, 1.0 / config.tau) if config.decay_input else node

    def make_default_lif(self, layer: LayerPlan) -> nn.Module:
        return default_lif()

    def make_default_neuron(self, layer: LayerPlan) -> nn.Module:
        if self.neuron == "cuba":
            self.note_once("CUBA: neuron.CUBALIFNode() at its defaults, set to step_mode 'm'")
        return default_node(self.neuron)

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        return run_layers(self.layers, x_seq).mean(0)

    def reset(self) -> None:
        from spikingjelly.activation_based import functional

        # reset_net calls reset() on every module that has one: given self, it would recurse.
        functional.reset_net(self.body)


# ---- ANN-to-SNN conversion ---------------------------------------------------------------------


def convert(ann: nn.Sequential, calibration: list[torch.Tensor], spec: NetworkSpec) -> ConvertedSNN:
    """``ann2snn.FXConverter(RateCodingRecipe(loader, mode="99.9%"))``: each ReLU becomes
    scale(1/s) -> IFNode (soft reset, threshold 1) -> scale(s), s the layer's activation
    percentile (a running average over calibration batches, momentum 0.1). Run step by step."""
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import FXConverter, RateCodingRecipe

    device = next(ann.parameters()).device
    recipe = RateCodingRecipe([x.to(device) for x in calibration], mode=f"{PERCENTILE}%")
    snn = FXConverter(recipe, device=device).convert(ann).eval()
    note = (
        f"spikingjelly: FXConverter(RateCodingRecipe(mode='{PERCENTILE}%')): ReLU -> "
        "scale(1/s) -> IFNode(soft reset) -> scale(s), run step by step"
    )
    return ConvertedSNN.stepped(snn, lambda: functional.reset_net(snn), [note])


# ---- the framework's own defaults --------------------------------------------------------------

_LIF_NODE = "spikingjelly/activation_based/neuron/lif.py: LIFNode.__init__"
DEFAULTS = (
    base.Default("tau", "2.0", _LIF_NODE, canonical="tau"),
    base.Default("decay_input", "True", _LIF_NODE, canonical="decay_input"),
    base.Default("v_threshold", "1.0", _LIF_NODE, canonical="v_threshold"),
    base.Default("v_reset", "0.0 (hard reset)", _LIF_NODE, canonical="v_reset"),
    base.Default("surrogate_function", "Sigmoid(alpha=4.0, spiking=True)", _LIF_NODE,
                 canonical="surrogate"),
    base.Default("detach_reset", "False", _LIF_NODE, canonical="detach_reset"),
    base.Default("step_mode", "'s' (one step per call; multi-step networks pass 'm')", _LIF_NODE),
    base.Default("store_v_seq", "False", _LIF_NODE),
)  # fmt: skip


def default_lif() -> nn.Module:
    """``neuron.LIFNode(step_mode="m")``: SpikingJelly's LIF with every other argument at its
    default (DEFAULTS), multi-step as its tutorials' networks run it."""
    from spikingjelly.activation_based import neuron

    return neuron.LIFNode(step_mode="m")


def default_spikes(x: torch.Tensor) -> torch.Tensor:
    return default_lif()(x)  # [T, N] in, [T, N] out: a fresh node has no state


def default_node(neuron_name: str) -> nn.Module:
    """``neuron.IFNode(step_mode="m")``, ``neuron.ParametricLIFNode(step_mode="m")`` or
    ``neuron.CUBALIFNode()`` set to step_mode 'm', every other argument at its default
    (NEURON_DEFAULTS)."""
    from spikingjelly.activation_based import neuron

    if neuron_name == "cuba":
        return cuba_node()
    return getattr(neuron, NODE_CLASSES[neuron_name])(step_mode="m")


class InputScaled(nn.Module):
    """A node whose input is scaled first (CUBALIFNode for decay_input: the synapse's weights
    would hold 1/tau); functional.reset_net reaches the node inside."""

    def __init__(self, node: nn.Module, scale: float) -> None:
        super().__init__()
        self.node, self.scale = node, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.node(x * self.scale)


_IF_NODE = "spikingjelly/activation_based/neuron/integrate_and_fire.py: IFNode.__init__"
_PLIF_NODE = "spikingjelly/activation_based/neuron/plif.py: ParametricLIFNode.__init__"


def _node_defaults(source: str) -> tuple[base.Default, ...]:
    return (
        base.Default("v_threshold", "1.0", source, canonical="v_threshold"),
        base.Default("v_reset", "0.0 (hard reset)", source, canonical="v_reset"),
        base.Default("surrogate_function", "Sigmoid(alpha=4.0, spiking=True)", source,
                     canonical="surrogate"),
        base.Default("detach_reset", "False", source, canonical="detach_reset"),
    )  # fmt: skip


_CUBA_NODE = "spikingjelly/activation_based/neuron/lif_variants.py: CUBALIFNode.__init__"
CUBA_DEFAULTS = (
    base.Default("c_decay", "0.5 (tau_syn 2)", _CUBA_NODE, canonical="tau_syn"),
    base.Default("v_decay", "0.75 (tau 4)", _CUBA_NODE, canonical="tau"),
    base.Default("v_threshold", "0.5", _CUBA_NODE, canonical="v_threshold"),
    base.Default("v_reset", "0.0 (hard reset)", _CUBA_NODE, canonical="v_reset"),
    base.Default("surrogate_function", "Rect()", _CUBA_NODE, canonical="surrogate"),
    base.Default("input", "added undecayed: c = c_decay c + x, v = v_decay v + c",
                 "spikingjelly/activation_based/functional/neuron.py: cuba_lif_step",
                 canonical="decay_input"),
)  # fmt: skip


NEURON_DEFAULTS = {
    "if": base.NeuronDefaults(_node_defaults(_IF_NODE), lambda x: default_node("if")(x)),
    "plif": base.NeuronDefaults(
        (base.Default("init_tau", "2.0 (w0 = -log(init_tau - 1) = 0, one w per layer)",
                      _PLIF_NODE, canonical="tau"),
         base.Default("decay_input", "True", _PLIF_NODE, canonical="decay_input"),
         *_node_defaults(_PLIF_NODE)),
        lambda x: default_node("plif")(x),
    ),
    "cuba": base.NeuronDefaults(CUBA_DEFAULTS, lambda x: default_node("cuba")(x)),
}  # fmt: skip


# ---- neuron modules in any model (kernelprof profile) ------------------------------------------

# The bases of every neuron in spikingjelly.activation_based.neuron (2.0.0), looked up by name
# where they exist (0.0.0.0.14 has fewer). Most nodes derive from BaseNode (LIFNode, IFNode,
# ParametricLIFNode, ...) or SimpleBaseNode; the others are their own bases. The non-spiking
# integrators (NonSpikingBaseNode, NoisyNonSpikingBaseNode: the membrane as a readout) are
# counted as neurons too: they run the same per-step neuron dynamics, as sinabs' ExpLeak and
# Norse's LI do (which their frameworks' neuron bases include anyway).
_NODE_BASES = (
    "BaseNode",
    "SimpleBaseNode",
    "NonSpikingBaseNode",
    "ActivationAwareIFNode",
    "DSRIFNode",
    "DSRLIFNode",
    "FewSpikeNode",
    "FlexSN",
    "GatedLIFNode",
    "ILCBaseNode",
    "NoisyBaseNode",
    "NoisyNonSpikingBaseNode",
    "PSN",
    "MaskedPSN",
    "SlidingPSN",
    "STBIFNode",
)
# Nodes whose multi-step call goes through one of SpikingJelly 2.x's fused neuron ops
# (functional.<name>_multi_step -> torch.ops.sj_<name>), by the node class that calls it.
_FUSED_OPS = {
    "LIFNode": "sj_lif",
    "IFNode": "sj_if",
    "ParametricLIFNode": "sj_plif",
    "QIFNode": "sj_qif",
    "EIFNode": "sj_eif",
    "IzhikevichNode": "sj_izhikevich",
    "ILIFNode": "sj_ilif",
    "ActivationAwareIFNode": "sj_activation_aware_if",
    "STBIFNode": "sj_stbif",
}
# A subclass that defines one of these runs its own code, not its SpikingJelly base's.
_STEP_METHODS = (
    "forward",
    "multi_step_forward",
    "single_step_forward",
    "multi_step_functional_forward",
    "single_step_functional_forward",
)


def neuron_classes() -> tuple[type, ...]:
    from spikingjelly.activation_based import neuron

    return base.classes_in(neuron, _NODE_BASES)


def _step_mode(module) -> str:
    mode = getattr(module, "step_mode", None)
    if mode is None:  # a MultiStepModule (PSN, NonSpikingBaseNode, ...) has none: always 'm'
        from spikingjelly.activation_based import base as sj_base

        multi = getattr(sj_base, "MultiStepModule", ())
        return "m" if multi and isinstance(module, multi) else "s"
    return mode


def neuron_time_steps(module, args: tuple) -> int | None:
    """[T, ...] in step_mode 'm'; one step per call in 's'."""
    return int(args[0].shape[0]) if _step_mode(module) == "m" else None


def _bound_lif_provider(device: torch.device) -> str | None:
    """The CUDA provider SpikingJelly has bound for ``device``, without binding one."""
    ops = sys.modules.get(_LIF_OPS)
    selection = getattr(ops, "_selection", None)
    bound = getattr(selection, "_selections", {}).get(device.index)
    return getattr(bound, "name", None)


def _lif_node_path(module) -> str:
    """A multi-step LIFNode's path: ``lif_multi_step``'s choice (see the module docstring),
    from the device and dtype of its state V when a call has left one."""
    if getattr(module, "_neuron_precision", None) is not None:
        return "explicit neuron precision: Triton mixed-precision LIF kernels (CUDA only)"
    surrogate_function = module.surrogate_function
    v = getattr(module, "v", None)  # a float until a call (or after reset_net); then [...]
    if not isinstance(v, torch.Tensor):
        reason = fallback_reason(surrogate_function, torch.float32)
        if reason:
            return f"python loop: fallback, {reason} (on any device)"
        return (
            "sj_lif op, decided by the call's input: on CPU a Python loop over T (the op's "
            "torch reference, autograd per step); on CUDA the provider SpikingJelly binds for "
            "the device (native CUDA -> Triton -> torch); a non-float32 input falls back to the "
            "Python-loop reference"
        )
    if v.device.type != "cuda":
        return _expected_path(surrogate_function, v.device, v.dtype, None)
    reason = fallback_reason(surrogate_function, v.dtype)
    if reason:
        return f"python loop: fallback, {reason}"
    provider = _bound_lif_provider(v.device)
    if provider is None:
        return (
            "sj_lif op on CUDA: provider not bound yet (SpikingJelly binds native CUDA -> "
            f"Triton -> torch at the first call; {BACKEND_ENV} forces one)"
        )
    return _CUDA_PROVIDER_PATHS.get(provider, provider)


def neuron_path(module) -> str:
    name = type(module).__name__
    if _step_mode(module) != "m":
        return f"single step per call: {name}, eager torch ops (the script loops over T)"
    backend = getattr(module, "backend", None)  # 0.0.0.0.14's nodes; 2.x nodes have none
    if backend is not None:
        path = f"multi-step, backend={backend!r}: {_LEGACY_PATHS.get(backend, backend)}"
        if not module.training and "LIFNode" in (cls.__name__ for cls in type(module).__mro__):
            path += " (in eval mode 0.0.0.0.14's LIFNode ignores backend: its JIT loops)"
        return path
    mro = type(module).__mro__
    origin = next(cls for cls in mro if cls.__module__.startswith("spikingjelly."))
    own = [
        method
        for method in _STEP_METHODS
        if any(method in vars(cls) for cls in mro[: mro.index(origin)])
    ]
    if own:
        return f"multi-step: {name}'s own {own[0]} (a subclass of {origin.__name__}) on [T, ...]"
    op = _FUSED_OPS.get(origin.__name__)
    if op is None:
        return f"multi-step: {origin.__name__}.multi_step_forward on [T, ...] (no fused neuron op)"
    if origin.__name__ == "LIFNode":
        return _lif_node_path(module)
    return (
        f"multi-step: {op} op where SpikingJelly admits the surrogate and dtype, else its "
        "Python-loop reference; the op is a Python loop over T on CPU and, on CUDA, the "
        "provider SpikingJelly binds for the device (native CUDA -> Triton -> torch)"
    )


def layer_categories() -> dict[type, str]:
    """SpikingJelly layers whose torch base class would misstate them (plain nn.Module)."""
    from spikingjelly.activation_based import layer

    named = {"Dropout": "dropout", "Dropout2d": "dropout", "NeuNorm": "norm"}
    return base.categorised(layer, named)


# ---- faster paths (kernelprof profile) -------------------------------------------------------

_CANONICAL_SURROGATES = {name: canonical for canonical, name in SURROGATE_CLASSES.items()}


def _node_kind(module) -> str:
    """The kind ("if", "lif", "plif" or "cuba") of the SpikingJelly node class the module is (or
    subclasses without a step of its own); Unsupported for any other neuron."""
    from spikingjelly.activation_based import neuron

    return base.node_kind(module, neuron, {**NODE_CLASSES, "cuba": "CUBALIFNode"}, _STEP_METHODS)


def _node_surrogate(surrogate_function) -> tuple[str, float]:
    """(canonical surrogate, alpha) of a node's surrogate function, or Unsupported."""
    canonical = _CANONICAL_SURROGATES.get(type(surrogate_function).__name__)
    alpha = getattr(surrogate_function, "alpha", None)
    if canonical is None or not getattr(surrogate_function, "spiking", True) or \
            not isinstance(alpha, (int, float)):  # fmt: skip
        raise base.Unsupported(f"surrogate {type(surrogate_function).__name__}: no canonical "
                               "match")  # fmt: skip
    if canonical == "superspike" and alpha != 1:
        raise base.Unsupported(f"SuperSpike(alpha={alpha:g}) computes alpha/(1+|x|)^2: the "
                               "canonical superspike only at alpha=1")  # fmt: skip
    return canonical, float(alpha)


def node_config(module) -> NeuronConfig:
    """The canonical neuron a ``LIFNode``, ``IFNode``, ``ParametricLIFNode`` or ``CUBALIFNode``
    computes with its settings (see :class:`base.FasterPaths`): PLIF at its current w, tau =
    1/sigmoid(w); :class:`base.Unsupported` with the reason for any other node."""
    kind = _node_kind(module)
    surrogate, alpha = _node_surrogate(module.surrogate_function)
    if not isinstance(module.v_threshold, (int, float)) or \
            not isinstance(module.v_reset, (int, float, type(None))):  # fmt: skip
        raise base.Unsupported("a tensor threshold or reset")
    common = dict(v_threshold=float(module.v_threshold), detach_reset=bool(module.detach_reset),
                  v_reset=None if module.v_reset is None else float(module.v_reset),
                  surrogate=surrogate, alpha=alpha)  # fmt: skip
    if kind == "if":
        return make_config("if", **common)
    if kind == "cuba":
        return _cuba_config(module, common)
    if kind == "lif":
        if not isinstance(module.tau, (int, float)):
            raise base.Unsupported("a tensor tau")
        return make_config("lif", tau=float(module.tau), decay_input=bool(module.decay_input),
                           **common)  # fmt: skip
    w = module.w
    if not isinstance(w, torch.Tensor) or w.dim() != 0 or not w.dtype.is_floating_point:
        raise base.Unsupported("its w is not one floating-point value (a 0-dim tensor)")
    k = float(torch.sigmoid(w.detach().double()))
    if not 0.0 < k < 1.0:
        raise base.Unsupported(f"its decay k = sigmoid(w) = {k:g} rounds to 0 or 1")
    return make_config("plif", tau=1.0 / k, decay_input=bool(module.decay_input), **common)


def _cuba_config(module, common: dict) -> NeuronConfig:
    """CUBA from a CUBALIFNode's decays (the inverse of :func:`cuba_kwargs`): input not
    decayed, its membrane leaking towards 0."""
    decays = {name: getattr(module, name) for name in ("c_decay", "v_decay")}
    if not all(isinstance(d, (int, float)) and 0.0 <= d < 1.0 for d in decays.values()):
        raise base.Unsupported(f"decays {decays}: CUBA needs each in [0, 1)")
    if common["v_reset"] not in (None, 0.0):
        raise base.Unsupported(f"v_reset={common['v_reset']:g}: CUBALIFNode's membrane leaks "
                               "towards 0, the canonical one towards its reset "
                               "potential")  # fmt: skip
    tau_syn = 1.0 / (1.0 - decays["c_decay"])
    return make_config("cuba", tau=1.0 / (1.0 - decays["v_decay"]), decay_input=False,
                       neuron_fields={"tau_syn": tau_syn}, **common)  # fmt: skip


def canonical_node(module, args: tuple, kwargs: dict) -> NeuronConfig:
    """The canonical neuron a multi-step ``LIFNode``, ``IFNode``, ``ParametricLIFNode`` or
    ``CUBALIFNode`` call computes (see :class:`base.FasterPaths`); :class:`base.Unsupported`
    with the reason where it computes something else or keeps more."""
    config = node_config(module)
    if _step_mode(module) != "m":
        raise base.Unsupported("step_mode 's': one time step a call (the script loops over T)")
    if getattr(module, "store_v_seq", False):
        raise base.Unsupported("store_v_seq=True: the model keeps V at every step")
    if getattr(module, "_neuron_precision", None) is not None:
        raise base.Unsupported("an explicit neuron precision (SpikingJelly's mixed-precision "
                               "kernels)")  # fmt: skip
    if kwargs or len(args) != 1 or not isinstance(args[0], torch.Tensor) or args[0].dim() < 2:
        raise base.Unsupported("not called with one [T, ...] tensor")
    v, rest = module.v, module._memories_rv.get("v")
    if not isinstance(v, (int, float)) or v != rest:
        raise base.Unsupported("its V carries over from an earlier call (no reset_net "
                               "between its calls)")  # fmt: skip
    if v != config.v_initial:
        raise base.Unsupported(f"it starts from V={v:g}, not the canonical {config.v_initial:g}")
    if config.neuron == "cuba" and not (module.c == module._memories_rv.get("c") == 0.0):
        raise base.Unsupported("its current c carries over from an earlier call")
    return config


def lif_backends(module, device: torch.device) -> tuple[base.Backend, ...]:
    """SpikingJelly's CUDA LIF providers a multi-step LIFNode can take (none on CPU: its op is
    one Python loop there), the one bound now marked current."""
    from spikingjelly.activation_based import neuron

    if device.type != "cuda" or type(module) is not neuron.LIFNode or _step_mode(module) != "m":
        return ()
    if fallback_reason(module.surrogate_function, torch.float32):
        return ()  # SpikingJelly falls back to its Python loop whatever the provider
    bound = _bound_lif_provider(device)
    found = []
    for backend in CUDA_BACKENDS:
        if _provider_problem(backend)(device) is None:
            found.append(base.Backend(name=f"SpikingJelly provider {backend}",
                                      path=_CUDA_PROVIDER_PATHS[backend],
                                      use=partial(_provider_in_use, backend),
                                      current=backend == bound))  # fmt: skip
    return tuple(found)


@contextlib.contextmanager
def _provider_in_use(backend: str) -> Iterator[None]:
    """SpikingJelly's LIF calls (and their backward) take ``backend`` inside; its own choice
    after."""
    use_cuda_backend(backend)
    try:
        yield
    finally:
        use_cuda_backend(None)


def fresh_node(module):
    """A copy of the node with its state at rest (the model's own is not touched)."""
    import copy

    twin = copy.deepcopy(module)
    twin.reset()
    return twin


NEURON_LAYERS = base.NeuronLayers(
    package="spikingjelly",
    classes=neuron_classes,
    time_steps=neuron_time_steps,
    path=neuron_path,
    categories=layer_categories,
    faster=base.FasterPaths(
        canonical=canonical_node,
        backends=lif_backends,
        fresh=fresh_node,
        config=node_config,
        decay=base.LearnedDecay(parameter=lambda node: node.w),
    ),
)

FRAMEWORK = base.Framework(
    name="spikingjelly",
    display="SpikingJelly",
    requires=(REQUIREMENT,),
    implementations=tuple(NEURONS.values()),
    networks={"spikingjelly": SpikingJellyNetwork},
    converters={"spikingjelly": convert},
    defaults=DEFAULTS,
    default_neuron=default_spikes,
    neuron_defaults=NEURON_DEFAULTS,
    description="multi-step LIFNode; fused CUDA/Triton kernels on GPU, a Python loop on CPU",
    neuron_layers=NEURON_LAYERS,
)
