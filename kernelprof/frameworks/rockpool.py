"""Rockpool (``rockpool`` on PyPI): its torch LIF modules ``LIFTorch`` and ``LIFNeuronTorch``,
and ``LIFExodus`` where sinabs-exodus builds.

Read in Rockpool 3.1.0's sources (rockpool/nn/modules/torch/lif_torch.py, lif_neuron_torch.py,
torch_module.py, sinabs/lif_exodus.py) and checked by tests/test_impl_rockpool.py:

* ``LIFTorch(shape, leak_mode="taus", tau_mem, tau_syn, alpha, beta, bias, threshold, has_rec,
  spike_generation_fn=StepPWL, learning_window=0.5, max_spikes_per_dt=2**16, dt=1e-3)`` takes
  batch-first [B, T, N]. Per step: I += X[t] (+ recurrent); V *= alpha; I *= beta;
  V += I + bias; S = spike_generation_fn(V, threshold, learning_window, max_spikes_per_dt);
  V -= S * threshold. So it always has a synaptic stage before the membrane and always resets
  by subtraction, attached to the gradient: soft reset with detach_reset=False only.
  ``leak_mode="decays"`` takes alpha and beta directly (the default "taus" mode uses
  exp(-dt/tau), not the canonical 1 - 1/tau). The synapse is made transparent with
  beta = 2^-32 and the input multiplied by 2^32 (times 1/tau for decay_input): then
  I[t] = X[t] + 2^-32 * I[t-1], within 2^-32 |X| of the canonical input, below float32's
  resolution of V (checked: V within 2e-7 of the oracle). The 2^32 is an input scaling that a
  user's synaptic weights would hold.
* Even with ``has_rec=False``, LIFTorch keeps a dense zero recurrent matrix of N x N
  (lif_torch.py: w_rec as a SimulationParameter) and multiplies the previous spikes by it every
  step (``hasattr(self, "w_rec")`` is always true): O(N^2) memory and work per step. N = 2^20
  would need 4 TiB, so the timed build refuses an N whose matrix passes MAX_REC_BYTES, saying
  so; the e2e CNN's LIF layers (12,544 and 6,272 neurons) would multiply 630 MB and 157 MB
  zero matrices by a 64-sample batch 8 times a step, so the e2e network is FC only.
* ``LIFNeuronTorch(shape, tau_mem, threshold, bias, spike_generation_fn, learning_window,
  max_spikes_per_dt, dt)``: the same membrane without the synapse and without w_rec, taus only
  (alpha = exp(-dt/tau_mem); tau_mem = -dt/ln(1 - 1/tau) gives 1 - 1/tau within an ulp or
  two).
* Spikes: ``StepPWL`` and ``PeriodicExponential`` fire on V >= threshold, floor(V/threshold)
  spikes per step capped at max_spikes_per_dt (2^16 by default: several spikes per step);
  max_spikes_per_dt=1 gives 0/1 spikes. StepPWL's surrogate is 1[V >= theta - w]/theta (no
  canonical one); PeriodicExponential's, capped at one spike, is exp(-|V - theta|/w)/theta,
  the canonical piecewise_exp(alpha) exactly when w = 1/alpha and theta = 2/alpha. So the
  canonical surrogate is piecewise_exp with alpha * v_threshold = 2 only.
* Calling a module returns (output, state, record); ``record=True`` records 'vmem' after the
  reset (in CPU tensors). The state persists between calls (batch element 0's last state
  seeds the next call): ``reset_state()`` first, as the timed build does.
* IF: LIFTorch with alpha = 1 (decays mode), LIFNeuronTorch with tau_mem = inf (exp(-dt/inf)
  = 1 exactly): V = V + X, the same reset and spikes. PLIF: the membrane decay trained, LIFTorch's
  alpha (= 1 - k, a retention: dw = -k (1 - k) dalpha) or LIFNeuronTorch's tau_mem
  (k = 1 - exp(-dt/tau_mem): dw = -k tau_mem^2/dt dtau_mem), one value or one per neuron; the
  input is not scaled by the learned decay, so decay_input=False only.
* ``LIFExodus`` (EXODUS CUDA kernels) needs sinabs and sinabs-exodus, source-only with a CUDA
  extension, and a CUDA device: never installed or run here. Its surrogate is sinabs'
  ``Heaviside(window)`` by default; ``SingleExponential(grad_width=1/(alpha*theta),
  grad_scale=1/2)`` is piecewise_exp(alpha) for any theta, and taus mode only.
"""

from __future__ import annotations

import importlib
import math
import sys
from functools import cache, partial

import torch
from torch import nn

from kernelprof.frameworks import base
from kernelprof.frameworks.networks import LayerPlan, SpikingNetwork, TimeFolded, step_layer
from reference_kernels.model import LIFConfig, NeuronConfig, make_config

REQUIREMENT = base.Requirement("rockpool", ">=3.1,<4", module="rockpool.nn.modules")
EXODUS = base.Requirement("sinabs-exodus", module="sinabs.exodus")
SYNAPSE_DECAY = 2.0**-32  # beta: the synaptic stage passes the input on, scaled by 2^32
DT = 1e-3  # Rockpool's default time step
MAX_REC_BYTES = 2 * 2**30  # the largest dense N x N recurrent matrix LIFTorch is built with
PATH_TORCH = "python loop: LIFTorch (synapse, zero N x N recurrent matmul, membrane) per step"
PATH_NEURON = "python loop: LIFNeuronTorch (membrane only) per step"
PATH_EXODUS = "EXODUS CUDA kernels: LeakyIntegrator synapse, IntegrateAndFire membrane"


def _problems(config: NeuronConfig) -> list[str]:
    problems = []
    if config.neuron == "plif" and config.decay_input:
        problems.append("PLIF with decay_input: the input is not scaled by the learned decay")
    if not config.soft_reset:
        problems.append("hard reset: Rockpool's LIF subtracts the threshold (V - S*theta)")
    elif config.detach_reset:
        problems.append("detach_reset=True: the subtractive reset keeps the spike's gradient")
    if config.v_threshold <= 0:
        problems.append("a threshold <= 0 (spikes are floor(V/theta))")
    return problems


def lif_parameters(config: NeuronConfig, *, exodus: bool = False) -> dict:
    """The membrane decay, threshold, surrogate window and input scale of ``config``, or
    Unsupported naming every part Rockpool cannot express."""
    problems = _problems(config)
    if config.surrogate != "piecewise_exp":
        problems.append(
            f"surrogate {config.surrogate}: Rockpool's are StepPWL (1[V >= theta - w]/theta) "
            "and PeriodicExponential (piecewise_exp)"
        )
    elif not exodus and not math.isclose(config.alpha * config.v_threshold, 2.0, rel_tol=1e-12):
        problems.append(
            f"piecewise_exp(alpha={config.alpha:g}) with theta={config.v_threshold:g}: "
            "PeriodicExponential's surrogate is exp(-|V - theta|/w)/theta, so alpha*theta must "
            "be 2"
        )
    if problems:
        name = "rockpool-exodus" if exodus else "rockpool"
        raise base.Unsupported(f"{name} cannot express " + "; ".join(problems))
    return {
        "alpha": 1.0 if config.neuron == "if" else 1.0 - 1.0 / config.tau,
        "threshold": float(config.v_threshold),
        "window": 1.0 / config.alpha,
        "input_scale": 1.0 / config.tau
        if config.neuron in ("lif", "cuba") and config.decay_input
        else 1.0,
        "syn_decay": synapse_decay(config),
    }


def synapse_decay(config: NeuronConfig) -> float:
    """LIFTorch's beta: CUBA's 1 - 1/tau_syn (its real synapse: I += X; I *= beta; then
    V = alpha V + I, so I / beta is the canonical current and the input is divided by beta), the
    transparent SYNAPSE_DECAY for the others (and for CUBA with tau_syn = 1, which is LIF)."""
    if config.neuron == "cuba" and config.syn_decay > 0:
        return config.syn_decay
    return SYNAPSE_DECAY


def _decay(config: NeuronConfig, value: float, neurons: int):
    """A membrane decay parameter: a Constant, or for PLIF a trained tensor (one value, or one
    per neuron)."""
    from rockpool.parameters import Constant

    if config.neuron != "plif":
        return Constant(value)
    return torch.full((neurons,), value) if config.per_channel else torch.tensor(value)


def make_lif_torch(config: NeuronConfig, neurons: int, device: torch.device) -> nn.Module:
    """``LIFTorch`` for ``config`` with a transparent synapse (its input must be multiplied by
    ``input_scale(config)``); refuses an N whose zero recurrent matrix passes MAX_REC_BYTES."""
    from rockpool.nn.modules import LIFTorch
    from rockpool.nn.modules.torch.lif_torch import PeriodicExponential
    from rockpool.parameters import Constant

    p = lif_parameters(config)
    rec_bytes = neurons * neurons * 4
    if rec_bytes > MAX_REC_BYTES:
        raise RuntimeError(
            f"rockpool: LIFTorch({neurons:,}) keeps a dense zero N x N recurrent matrix even "
            f"without recurrence ({rec_bytes / 2**30:,.1f} GiB) and multiplies by it every "
            f"step; refused above {MAX_REC_BYTES / 2**30:g} GiB (rockpool-neuron has no synapse "
            "and no such matrix)"
        )
    return LIFTorch(
        neurons,
        leak_mode="decays",
        alpha=_decay(config, p["alpha"], neurons),
        beta=Constant(p["syn_decay"]),
        threshold=Constant(p["threshold"]),
        bias=Constant(0.0),
        spike_generation_fn=PeriodicExponential,
        learning_window=p["window"],
        max_spikes_per_dt=1,
    ).to(device)


def input_scale(config: NeuronConfig) -> float:
    """What LIFTorch's input is multiplied by: the synapse's 1/beta, and 1/tau for
    decay_input (a user's synaptic weights would hold it)."""
    p = lif_parameters(config)
    return p["input_scale"] / p["syn_decay"]


def _batch_first(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).unsqueeze(0)  # [T, ...] -> [1, T, N], batch-first


def _rockpool_build(config, device, dtype, make, scale, path, dw=None) -> base.NeuronBuild:
    """The two builds around a module ``make(N)`` that takes [1, T, N] input times ``scale``;
    PLIF's ``dw(module)`` converts the checking module's trained decay's gradient."""

    @cache
    def module(role: str, neurons: int) -> nn.Module:
        return make(neurons)  # built once per role and N (the module's shape is N)

    checked: list = []

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        mod = module("check", x[0].numel())
        # each check's dw alone (the decay itself stays at w0); Rockpool's own parameters()
        # returns a dict of names, so torch's is asked
        for parameter in nn.Module.parameters(mod):
            parameter.grad = None
        checked[:] = [mod]
        mod.reset_state()
        spikes, _, record = mod(_batch_first(x) * scale, record=True)
        vmem = record["vmem"].to(x.device)  # recorded after the reset, in CPU tensors
        found = spikes[0].reshape(x.shape).to(x.dtype), vmem[0].reshape(x.shape).to(x.dtype)
        if config.neuron != "cuba" or config.syn_decay == 0:
            return found
        # CUBA: isyn = beta (isyn + X scale) is beta times the current of the scaled input,
        # whose scale is 1/beta times input_scale: the canonical I is isyn / input_scale
        isyn = record["isyn"][0, ..., 0].to(x.device) / lif_parameters(config)["input_scale"]
        return (*found, {"i": isyn.reshape(x.shape).to(x.dtype)})

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return _batch_first(x) * scale

    def run(x: torch.Tensor) -> torch.Tensor:
        mod = module("timed", x.shape[-1])  # built by the first (untimed) call
        mod.reset_state()  # the state persists between calls otherwise
        spikes, _, _ = mod(x)
        return spikes

    def canonical(spikes: torch.Tensor) -> torch.Tensor:
        return spikes[0].to(dtype)  # [1, T, N] -> [T, N]

    return base.NeuronBuild(
        check=check,
        timed=base.TimedBuild(
            run=run,
            prepare=prepare,
            spikes=canonical,
            code="mod.reset_state(); spikes, _, _ = mod(x)  # x batch-first [B, T, N]",
        ),  # fmt: skip
        path=path,
        approximations=base.half_current(
            config,
            dtype,
            "input times 1/beta (the scale a user's weights would hold) rounded "
            "to {dtype} before LIFTorch's float32 synapse",
        ),  # fmt: skip
        dw=(lambda: dw(checked[0]) if checked else None) if dw is not None else None,
    )


def build_lif_torch(
    config: NeuronConfig, device: torch.device, dtype: torch.dtype
) -> base.NeuronBuild:
    scale = input_scale(config)
    if scale > torch.finfo(dtype).max:
        raise base.Unsupported(
            f"{str(dtype).removeprefix('torch.')}: LIFTorch's synapse is made transparent "
            f"with beta = 2^-32, so its input is multiplied by {scale:.3g}, beyond the "
            f"dtype's largest value {torch.finfo(dtype).max:g} (rockpool-neuron has no synapse)"
        )
    dw = (lambda mod: base.retention_dw(mod.alpha)) if config.neuron == "plif" else None
    return _rockpool_build(config, device, dtype, lambda n: make_lif_torch(config, n, device),
                           scale, PATH_TORCH, dw)  # fmt: skip


def _tau_dw(mod) -> torch.Tensor | None:
    """PLIF's dw from LIFNeuronTorch's trained tau_mem: k = 1 - exp(-dt/tau), so
    dk/dtau = -(1 - k) dt/tau^2 and dw = k (1 - k) dk = -k tau^2/dt dtau."""
    tau = mod.tau_mem
    if tau.grad is None:
        return None
    tau64 = tau.detach().double()
    k = 1.0 - torch.exp(-DT / tau64)
    return -k * tau64**2 / DT * tau.grad.double()


def build_lif_neuron(
    config: NeuronConfig, device: torch.device, dtype: torch.dtype
) -> base.NeuronBuild:
    from rockpool.nn.modules import LIFNeuronTorch
    from rockpool.nn.modules.torch.lif_torch import PeriodicExponential
    from rockpool.parameters import Constant

    p = lif_parameters(config)
    if p["alpha"] <= 0:
        raise base.Unsupported(f"rockpool-neuron cannot express tau={config.tau:g}: its decay is "
                               "exp(-dt/tau_mem), so 1 - 1/tau must be > 0")  # fmt: skip
    # exp(-dt/tau_mem) = 1 - 1/tau; IF: tau_mem = inf, exp(-dt/inf) = 1 exactly
    tau_mem = math.inf if p["alpha"] == 1.0 else -DT / math.log(p["alpha"])

    def make(neurons: int) -> nn.Module:
        return LIFNeuronTorch(
            neurons, tau_mem=_decay(config, tau_mem, neurons), threshold=Constant(p["threshold"]),
            bias=Constant(0.0), spike_generation_fn=PeriodicExponential,
            learning_window=p["window"], max_spikes_per_dt=1, dt=DT,
        ).to(device)  # fmt: skip

    dw = _tau_dw if config.neuron == "plif" else None
    return _rockpool_build(config, device, dtype, make, p["input_scale"], PATH_NEURON, dw)


def build_lif_exodus(
    config: LIFConfig, device: torch.device, dtype: torch.dtype
) -> base.NeuronBuild:
    """Never run here (sinabs-exodus is source-only and CUDA-only): taus mode, the synapse
    made transparent like LIFTorch's, sinabs' SingleExponential as the surrogate."""
    from rockpool.nn.modules import LIFExodus
    from rockpool.nn.modules.sinabs.lif_exodus import SingleExponential  # sinabs', via Rockpool

    p = lif_parameters(config, exodus=True)
    if p["alpha"] <= 0:
        raise base.Unsupported(
            "rockpool-exodus cannot express tau <= 1: EXODUS needs a decay in [0, 1]"
        )
    tau_mem = -DT / math.log(p["alpha"])
    tau_syn = -DT / math.log(SYNAPSE_DECAY)

    def make(neurons: int) -> nn.Module:
        mod = LIFExodus(neurons, tau_mem=tau_mem, tau_syn=tau_syn, threshold=p["threshold"],
                        dt=DT, max_spikes_per_dt=1).to(device)  # fmt: skip
        mod.spike_generation_fn = SingleExponential(
            grad_width=1.0 / (config.alpha * config.v_threshold), grad_scale=0.5
        )
        return mod

    scale = p["input_scale"] / SYNAPSE_DECAY
    return _rockpool_build(config, device, dtype, make, scale, PATH_EXODUS)


_implementation = partial(base.Implementation, framework="Rockpool", requires=(REQUIREMENT,))
LIF_TORCH = _implementation(
    name="rockpool",
    build=build_lif_torch,
    description="LIFTorch: synapse + membrane, python loop over T (zero N x N recurrence); IF "
    "with alpha = 1, PLIF with alpha trained, CUBA with its synapse's beta = 1 - 1/tau_syn",
    neurons=("if", "lif", "plif", "cuba"),
)
LIF_NEURON = _implementation(
    name="rockpool-neuron",
    build=build_lif_neuron,
    description="LIFNeuronTorch: membrane only, python loop over T; IF with tau_mem = inf, PLIF "
    "with tau_mem trained",
    neurons=("if", "lif", "plif"),
)
LIF_EXODUS = _implementation(
    name="rockpool-exodus",
    build=build_lif_exodus,
    requires=(REQUIREMENT, EXODUS),
    devices=("cuda",),
    description="LIFExodus: EXODUS CUDA kernels (not run here: sinabs-exodus not installed)",
)


# ---- e2e network -------------------------------------------------------------------------------


class RockpoolLIF(nn.Module):
    """LIFTorch on [T, B, N]: the synaptic current scaled (the synapse's 1/beta), batch-first
    into the module, back to time-first."""

    def __init__(self, module: nn.Module, scale: float) -> None:
        super().__init__()
        self.module = module
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, _, _ = self.module((x * self.scale).transpose(0, 1))
        return spikes.transpose(0, 1)


class RockpoolNetwork(SpikingNetwork):
    """torch layers with T folded into the batch and Rockpool's LIFTorch on [B, T, N], each
    layer over the whole sequence. The FC network only: see the module docstring for the CNN."""

    framework = "rockpool"
    neurons = ("if", "lif", "plif", "cuba")  # CUBA: LIFTorch with its own synapse
    default_neurons = ("lif", "cuba")  # LIFTorch() at its defaults is current-based
    no_default_neuron = (
        "Rockpool has no IF or PLIF class of its own: LIFTorch() at its defaults (the "
        "framework-defaults LIF) already learns tau_mem, tau_syn, bias and threshold"
    )

    def make_layer(self, layer: LayerPlan) -> nn.Module:
        if self.spec.kind == "cnn":
            raise base.Unsupported(
                "the CNN's LIF layers have 12,544 and 6,272 neurons, and LIFTorch "
                "multiplies a dense zero N x N recurrent matrix (630 MB and 157 MB) by every "
                "sample's spikes at every step even without recurrence; the FC network is built"
            )
        if layer.category == "flatten":
            return TimeFolded(step_layer(layer))
        if layer.category in ("linear", "readout"):
            return step_layer(layer)  # nn.Linear maps the last axis of [T, B, N] as it is
        self.note_once(f"{self.neuron.upper()}: LIFTorch with a transparent synapse (beta = "
                       "2^-32, input times 2^32) and PeriodicExponential capped at one spike "
                       "per step")  # fmt: skip
        module = make_lif_torch(self.lif_config, layer.out_shape[0], torch.device("cpu"))
        return RockpoolLIF(module, input_scale(self.lif_config))

    def make_default_lif(self, layer: LayerPlan) -> nn.Module:
        from rockpool.nn.modules import LIFTorch

        if self.spec.kind == "cnn":
            raise base.Unsupported(
                "FC network only: LIFTorch's zero N x N recurrent matrix (see the "
                "canonical setting's row)"
            )
        return RockpoolLIF(LIFTorch(layer.out_shape[0]), 1.0)

    def make_default_neuron(self, layer: LayerPlan) -> nn.Module:
        return self.make_default_lif(layer)  # CUBA: the same LIFTorch(), tau_syn 20 ms

    def weight_of(self, module: nn.Module) -> nn.Parameter:
        return module.weight

    def reset(self) -> None:
        for category, module in self.layers:
            if category == "lif":
                module.module.reset_state()

    def run(self, x_seq: torch.Tensor) -> torch.Tensor:
        y = x_seq
        for _, module in self.layers:
            y = module(y)  # nn.Linear applies to the last axis of [T, B, N] as it is
        return y.mean(0)


# ---- the framework's own defaults --------------------------------------------------------------

_LIF = "rockpool/nn/modules/torch/lif_torch.py: LIFBaseTorch.__init__"
DEFAULTS = (
    base.Default("tau_mem", "20 ms with dt = 1 ms: decay exp(-dt/tau_mem) = 0.951 per step", _LIF,
                 canonical="tau"),
    base.Default("tau_syn", "20 ms: a synaptic current stage before the membrane", _LIF),
    base.Default("threshold", "1.0", _LIF, canonical="v_threshold"),
    base.Default("reset", "subtract the threshold per spike (soft), attached to the gradient",
                 "rockpool/nn/modules/torch/lif_torch.py: LIFTorch.forward", canonical="v_reset"),
    base.Default("input", "added to the synaptic current undecayed, I += X",
                 "rockpool/nn/modules/torch/lif_torch.py: LIFTorch.forward",
                 canonical="decay_input"),
    base.Default("spike_generation_fn", "StepPWL: surrogate 1[V >= theta - 0.5]/theta", _LIF,
                 canonical="surrogate"),
    base.Default("max_spikes_per_dt", "2^16 (several spikes per step)", _LIF),
    base.Default("has_rec", "False (a dense zero N x N recurrent matrix is still kept and applied)",
                 _LIF),
)  # fmt: skip


def default_spikes(x: torch.Tensor) -> torch.Tensor:
    """[T, N] -> [T, N]: ``LIFTorch(N)`` at its defaults (multi-spike counts per step)."""
    from rockpool.nn.modules import LIFTorch

    mod = LIFTorch(x[0].numel()).to(x.device)
    spikes, _, _ = mod(_batch_first(x))
    return spikes[0].reshape(x.shape).to(x.dtype)


# ---- neuron modules in any model (kernelprof profile) ------------------------------------------

# Rockpool's torch neuron modules (rockpool/nn/modules/torch): LIFBaseTorch (LIFTorch,
# aLIFTorch, LIFBitshiftTorch, and the sinabs-exodus ones LIFExodus, LIFMembraneExodus,
# LIFSlayer, built on it), LIFNeuronTorch and RateTorch (rate neurons, no spikes: their per-step
# neuron dynamics count, as for the other frameworks' leaky integrators). ExpSynTorch is a
# synapse filter and is not one, though ExpSynExodus, built on LIFBaseTorch, is counted.
# LIFSinabs (sinabs' LIF inside) is added where Rockpool's sinabs backend loaded (else a shim).
_TORCH_NEURONS = (
    ("rockpool.nn.modules.torch.lif_torch", "LIFBaseTorch"),
    ("rockpool.nn.modules.torch.lif_neuron_torch", "LIFNeuronTorch"),
    ("rockpool.nn.modules.torch.rate_torch", "RateTorch"),
)
_SINABS_BACKEND = "rockpool.nn.modules.sinabs"


def neuron_classes() -> tuple[type, ...]:
    classes = [getattr(importlib.import_module(where), name) for where, name in _TORCH_NEURONS]
    lif_sinabs = getattr(sys.modules.get(_SINABS_BACKEND), "LIFSinabs", None)
    if isinstance(lif_sinabs, type) and issubclass(lif_sinabs, nn.Module):  # not the shim
        classes.append(lif_sinabs)
    return tuple(classes)


def neuron_time_steps(module, args: tuple) -> int:
    """Batch-first [B, T, N], or [T, N] (TorchModule._auto_batch adds B = 1); a 1-D input is
    taken as [B, 1, 1]: one step."""
    x = args[0]
    return 1 if x.dim() == 1 else int(x.shape[-2])


def neuron_path(module) -> str:
    name = type(module).__name__
    where = {cls.__module__: cls.__name__ for cls in type(module).__mro__}
    if f"{_SINABS_BACKEND}.lif_exodus" in where:
        return f"EXODUS CUDA kernels (sinabs-exodus): {name} over [B, T, N]"
    if f"{_SINABS_BACKEND}.lif_sinabs" in where:
        return "sinabs' LIF layer inside: python loop over T (sinabs functional.lif_forward)"
    path = f"python loop over T: {name}.forward, eager torch ops per step"
    if "rockpool.nn.modules.torch.lif_torch" in where and hasattr(module, "w_rec"):
        path += "; a dense N x N recurrent matmul every step (w_rec, zero without recurrence)"
    return path


def layer_categories() -> dict[type, str]:
    """Rockpool's own linear and dropout modules (TorchModules, not nn.Linear/nn.Dropout)."""
    from rockpool.nn.modules import torch as rockpool_torch

    named = {"LinearTorch": "linear", "TimeStepDropout": "dropout", "UnitDropout": "dropout"}
    return base.categorised(rockpool_torch, named)


# LIFTorch's parameter of each leak mode: (membrane, synapse).
_LEAK_PARAMETERS = {"taus": ("tau_mem", "tau_syn"), "decays": ("alpha", "beta"),
                    "bitshifts": ("dash_mem", "dash_syn")}  # fmt: skip


def _fixed(module, name: str) -> float:
    """A parameter of the module that must be one value, not trained."""
    value = getattr(module, name)
    if base.learned(value):
        raise base.Unsupported(f"a trained {name} (Constant(...) keeps it fixed)")
    return base.one_value(value, name)


def _spiking(module) -> dict:
    """The canonical fields of a Rockpool LIF's spikes, reset and surrogate: soft reset,
    attached; PeriodicExponential capped at one spike a step, piecewise_exp(1/w) where
    theta = 2w."""
    from rockpool.nn.modules.torch.lif_torch import PeriodicExponential

    if getattr(module.spike_generation_fn, "__self__", None) is not PeriodicExponential:
        name = getattr(module.spike_generation_fn, "__self__", module.spike_generation_fn)
        raise base.Unsupported(
            f"spike_generation_fn {getattr(name, '__name__', name)}: only "
            "PeriodicExponential has a canonical surrogate (piecewise_exp)"
        )
    if float(module.max_spikes_per_dt) != 1.0:
        raise base.Unsupported(f"max_spikes_per_dt={float(module.max_spikes_per_dt):g}: "
                               "floor(V/theta) spikes a step, not one")  # fmt: skip
    if float(module.noise_std) != 0.0 or _fixed(module, "bias") != 0.0:
        raise base.Unsupported("membrane noise or a bias current")
    theta, window = _fixed(module, "threshold"), _fixed(module, "learning_window")
    if theta <= 0 or window <= 0 or not math.isclose(theta, 2.0 * window, rel_tol=1e-6):
        raise base.Unsupported(f"threshold {theta:g} with learning_window {window:g}: "
                               "PeriodicExponential's surrogate is piecewise_exp(1/w) only "
                               "where theta = 2w (alpha*theta = 2)")  # fmt: skip
    return dict(v_threshold=theta, v_reset=None, detach_reset=False, surrogate="piecewise_exp",
                alpha=1.0 / window)  # fmt: skip


def _membrane_decay(module, kind: str) -> tuple[float, bool, float]:
    """The membrane's decay alpha as the module computes it, whether it is trained, and the
    synapse's decay beta (0 for LIFNeuronTorch, which has none). For LIFTorch, Unsupported
    unless it has no recurrence, one synapse and a fixed beta in (0, 1)."""
    if kind == "neuron":  # LIFNeuronTorch: alpha = exp(-dt/tau_mem)
        alpha = torch.exp(-module.dt / module.tau_mem)
        return base.one_value(alpha, "tau_mem"), base.learned(module.tau_mem), 0.0
    if module._has_rec or bool(torch.count_nonzero(module.w_rec)):
        raise base.Unsupported("recurrent weights (has_rec): the canonical neuron has none")
    if module.n_synapses != 1:
        raise base.Unsupported(f"{module.n_synapses} synapses a neuron, summed")
    membrane, synapse = _LEAK_PARAMETERS[module.leak_mode]
    beta = base.one_value(module.beta, "beta")
    if not 0.0 < beta < 1.0:
        raise base.Unsupported(f"synaptic decay beta = {beta:g}: not in (0, 1)")
    if base.learned(getattr(module, synapse)):
        raise base.Unsupported(f"a trained {synapse}: kernelprof's CUBA has a fixed tau_syn")
    alpha = base.one_value(module.alpha, "alpha")
    return alpha, base.learned(getattr(module, membrane)), beta


def module_config(module) -> NeuronConfig:
    """The canonical neuron a Rockpool ``LIFTorch`` or ``LIFNeuronTorch`` computes with its
    settings (see :class:`base.FasterPaths`; the inverse of :func:`make_lif_torch` and
    :func:`build_lif_neuron`'s module): soft reset, the input not decayed (LIFTorch's scaled by
    beta, what the user's weights undo). Where LIFTorch's synapse passes the input on
    (0 < beta <= 2^-32: I[t] = beta X[t] within 2^-32 of it), IF where the membrane decay is 1
    (alpha = 1, tau_mem = inf), PLIF at its current decay where that is trained (k = 1 -
    alpha), LIF otherwise (tau = 1/(1 - alpha)); where it does not, CUBA with tau_syn =
    1/(1 - beta) (I / beta is the canonical current: :func:`synapse_decay`). Unsupported, with
    why, else."""
    from rockpool.nn.modules import torch as rockpool_torch

    kind = base.node_kind(module, rockpool_torch, {"lif": "LIFTorch", "neuron": "LIFNeuronTorch"},
                          ("forward", "evolve"))  # fmt: skip
    common = _spiking(module)
    alpha, trained, beta = _membrane_decay(module, kind)
    if beta > SYNAPSE_DECAY:
        if trained or not 0.0 <= alpha < 1.0:
            raise base.Unsupported(f"CUBA with membrane decay alpha = {alpha:g}"
                                   f"{' trained' if trained else ''}: kernelprof's CUBA has a "
                                   "fixed tau in [1, inf)")  # fmt: skip
        return make_config("cuba", tau=1.0 / (1.0 - alpha), decay_input=False,
                           neuron_fields={"tau_syn": 1.0 / (1.0 - beta)}, **common)  # fmt: skip
    if trained:
        if not 0.0 < alpha < 1.0:
            raise base.Unsupported(f"trained decay alpha = {alpha:g}: 1 - alpha is not in (0, 1)")
        return make_config("plif", tau=1.0 / (1.0 - alpha), decay_input=False, **common)
    if alpha == 1.0:
        return make_config("if", **common)
    if not 0.0 <= alpha < 1.0:
        raise base.Unsupported(f"membrane decay alpha = {alpha:g}: not in [0, 1]")
    return make_config("lif", tau=1.0 / (1.0 - alpha), decay_input=False, **common)


def canonical_module(module, args: tuple, kwargs: dict) -> NeuronConfig:
    """A Rockpool call is batch-first and returns (out, state, record): says why kernelprof's
    kernels do not stand in for it."""
    module_config(module)
    raise base.Unsupported("called as out, state, record = mod(x) on batch-first [B, T, N], "
                           "its state kept between calls: kernelprof's kernels take [T, ...] "
                           "from rest and return the spikes only")  # fmt: skip


NEURON_LAYERS = base.NeuronLayers(
    package="rockpool",
    classes=neuron_classes,
    time_steps=neuron_time_steps,
    path=neuron_path,
    categories=layer_categories,
    faster=base.FasterPaths(canonical=canonical_module, config=module_config),
)

FRAMEWORK = base.Framework(
    name="rockpool",
    display="Rockpool",
    requires=(REQUIREMENT,),
    implementations=(LIF_TORCH, LIF_NEURON, LIF_EXODUS),
    networks={"rockpool": RockpoolNetwork},
    no_converter="Rockpool ships no ANN-to-SNN converter",
    defaults=DEFAULTS,
    default_neuron=default_spikes,
    # CUBA at its defaults is the same LIFTorch(): its synapse has tau_syn 20 ms
    neuron_defaults={
        "cuba": base.NeuronDefaults(base.reading(DEFAULTS, "tau_syn", "tau_syn"), default_spikes)
    },
    description="eager PyTorch modules (LIFTorch, LIFNeuronTorch), EXODUS on CUDA",
    neuron_layers=NEURON_LAYERS,
)
