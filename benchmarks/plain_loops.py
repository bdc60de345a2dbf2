"""Does `kernelprof compare` rank the frameworks as their users would measure them?

Times each framework's LIF forward+backward the way its own documentation does: the
framework's module built as its tutorials build it (written out here, none of kernelprof's
framework code), a plain ``time.perf_counter`` loop around ``spikes = module(x);
spikes.backward(grad)``, spikes only, on the same shape and input as compare (T=8, N=2^18, fp32
by default). Interleaved with it, in the same worker process, the same framework's timed build
is measured as compare's worker measures it: the build checked against its checking build on
the timed input, compare's closures, the harness's ``measure``. The two alternate PAIRS times
per worker (who goes first alternates too), one worker per framework per round, the frameworks
rotated from round to round.

It prints the ratio tables against SpikingJelly (the set's baseline) side by side with their
spread over rounds, and the agreement: per round, each framework's kernelprof/plain quotient
(paired alternation by alternation within its worker, so drift cancels) over SpikingJelly's,
median over rounds. Each plain loop is timed twice: warm, as users run it, and with the
harness's cache flush (a 64 MiB read) before each call, outside the timed region, as compare
times every call. The target, on the 2-core CPU, is on the like-for-like quotient (both
flushed): within 20 % for every framework. The warm quotient is printed beside it: where a
framework's call reuses the last-level cache across calls (Spyx's XLA at N=2^18), a user's warm
loop runs faster than compare's cold-cache figure.

A framework whose LIF cannot express compare's default neuron is checked in a neuron set it can
express (``--set``), SpikingJelly in the same config beside it:

* ``default``: compare's default neuron (superspike(1), attached hard reset): SpikingJelly,
  snnTorch, Norse, lava-dl;
* ``detach-sigmoid`` (``compare --detach-reset --surrogate sigmoid:4``): SpikingJelly, BrainCog;
* ``soft-reset`` (``compare --reset soft --surrogate piecewise_exp:2``): SpikingJelly, Rockpool
  (``LIFNeuronTorch``; LIFTorch's dense N x N recurrent matrix refuses N=2^18) and Spyx (JAX: the
  plain loop is ``jax.jit(jax.value_and_grad(loss))`` waited for with ``block_until_ready``).

The IF and PLIF sets (``compare --neuron if`` / ``plif``), each neuron as its framework's users
build it (a PLIF's decay is a parameter the backward also reaches, as in their training):

* ``if`` (superspike(1), attached hard reset): SpikingJelly ``IFNode``, snnTorch
  ``Leaky(beta=1)``, Norse ``IAF``;
* ``plif-soft`` (``--no-decay-input --reset soft --surrogate piecewise_exp:2``): SpikingJelly
  ``ParametricLIFNode``, Sinabs ``LIF(train_alphas=True)``, Rockpool ``LIFNeuronTorch`` with a
  trained tau_mem;
* ``plif-no-decay`` (``--no-decay-input``, superspike(1), attached hard reset): SpikingJelly
  ``ParametricLIFNode``, snnTorch ``Leaky(learn_beta=True)``;
* ``if-detach-sigmoid``, ``plif-detach-sigmoid`` (``--detach-reset --surrogate sigmoid:4``):
  SpikingJelly, BrainCog ``IFNode`` / ``PLIFNode`` called once per step;
* ``if-soft`` (``--reset soft --surrogate piecewise_exp:2``): SpikingJelly, Spyx ``snn.IF``.

CUBA, each framework's own current-based neuron, against Norse:

* ``cuba`` (``compare --neuron cuba``, superspike(1), attached hard reset): Norse
  ``norse.torch.LIF`` with its synapse, snnTorch ``Synaptic``, lava-dl ``cuba.Neuron``,
  SpikingJelly ``CUBALIFNode``.

ALIF, against kernelprof's own eager oracle (``reference_kernels.multistep(x, config)``, the
``ref-torch`` row), since no two frameworks' ALIF share a config:

* ``alif`` (``compare --neuron alif``): Norse ``norse.torch.LSNN``;
* ``alif-detached`` (``--neuron alif --detach-reset --detach-adaptation --surrogate
  piecewise_exp:2``, the configs Sinabs maps): Sinabs ``ALIF``.

And CUBA with a soft reset, the one Spyx's ``CuBaLIF`` has, against the eager oracle too:

* ``cuba-soft`` (``--neuron cuba --reset soft --surrogate piecewise_exp:2``): Spyx
  ``snn.CuBaLIF`` (JAX, as the ``soft-reset`` set's Spyx loop), Sinabs ``LIF(tau_syn=...)``,
  SpikingJelly ``CUBALIFNode`` (Rockpool's ``LIFTorch`` refuses N=2^18: its dense N x N
  recurrent matrix).

    .venv/bin/python benchmarks/plain_loops.py [--set default] [--T 8] [--N 262144]
        [--rounds 5] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find benchmarks/
from benchmarks.rounds import chosen_frameworks, describe, ratios, run_rounds  # noqa: E402
from kernelprof.harness.worker import run_task  # noqa: E402
from kernelprof.inputs import lif_input  # noqa: E402
from reference_kernels.model import (  # noqa: E402
    ALIFConfig,
    CUBAConfig,
    IFConfig,
    LIFConfig,
    NeuronConfig,
    PLIFConfig,
)

BASELINE = "spikingjelly"
TARGET = 0.20
PAIRED_FUNCTION = "benchmarks.plain_loops:paired"
PAIRS = 6  # alternations of plain loop and harness in each worker


# ---- each framework as its documentation writes it: module and the input its users hold ------
# Each takes compare's canonical input [T, N] and the config, and returns ``once``: one
# forward+backward from the spikes alone, finished when it returns.


def torch_loop(step: Callable, inputs: torch.Tensor) -> Callable[[], None]:
    """``spikes = step(inputs); spikes.backward(grad)``, the gradient fixed once."""
    inputs = inputs.detach().requires_grad_()
    grad = torch.randn(step(inputs).shape, generator=torch.Generator().manual_seed(7))

    def once() -> None:
        inputs.grad = None
        step(inputs).backward(grad)

    return once


def spikingjelly(x: torch.Tensor, config: LIFConfig):
    from spikingjelly.activation_based import functional, neuron, surrogate

    function = {"superspike": surrogate.SuperSpike, "sigmoid": surrogate.Sigmoid,
                "piecewise_exp": surrogate.PiecewiseExp}[config.surrogate]  # fmt: skip
    lif = neuron.LIFNode(tau=config.tau, v_threshold=config.v_threshold, v_reset=config.v_reset,
                         decay_input=True, detach_reset=config.detach_reset,
                         surrogate_function=function(alpha=config.alpha),
                         step_mode="m")  # fmt: skip

    def step(inputs):
        functional.reset_net(lif)
        return lif(inputs)

    return torch_loop(step, x)


def snntorch(x: torch.Tensor, config: NeuronConfig):
    """``Leaky(beta=1 - 1/tau)``; IF: ``Leaky(beta=1)``; PLIF (without decay_input):
    ``Leaky(beta=1 - 1/tau0, learn_beta=True)``; the tutorials' loop over T."""
    import snntorch as snn
    from snntorch import surrogate

    beta = 1.0 if config.neuron == "if" else 1 - 1 / config.tau
    lif = snn.Leaky(beta=beta, learn_beta=config.neuron == "plif", threshold=config.v_threshold,
                    reset_mechanism="zero", reset_delay=False,
                    spike_grad=surrogate.fast_sigmoid(slope=1))  # fmt: skip

    def step(current):
        mem = lif.reset_mem()
        spk_rec = []
        for t in range(current.shape[0]):
            spk, mem = lif(current[t], mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec)

    # the input current a user's synapse delivers (LIF: its weights hold the 1/tau)
    return torch_loop(step, x / config.tau if config.neuron == "lif" else x)


def norse(x: torch.Tensor, config: NeuronConfig):
    """``norse.torch.LIF``: for LIF its current vanishes every step; for CUBA it is Norse's own
    synapse, as its users run it."""
    from norse.torch import LIF, LIFParameters

    tau_syn = config.tau_syn if config.neuron == "cuba" else 1.0
    p = LIFParameters(
        tau_syn_inv=torch.tensor(1 / tau_syn),  # dt=1, LIF: the current vanishes every step
        tau_mem_inv=torch.tensor(1 / config.tau),
        v_leak=torch.tensor(0.0),
        v_th=torch.tensor(config.v_threshold),
        v_reset=torch.tensor(0.0),
        method="super",
        alpha=torch.tensor(1.0),
    )
    lif = LIF(p, dt=1.0)

    def step(inputs):
        spikes, _ = lif(inputs)
        return spikes

    return torch_loop(step, x)


def lava_dl(x: torch.Tensor, config: NeuronConfig):
    """``cuba.Neuron``: for LIF its current decays fully each step; for CUBA by 1/tau_syn."""
    from lava.lib.dl.slayer.neuron import cuba

    current_decay = 1 / config.tau_syn if config.neuron == "cuba" else 1.0
    # tau_grad, scale_grad: lava's exponential surrogate with superspike(1)'s peak and area
    neuron = cuba.Neuron(threshold=config.v_threshold, current_decay=current_decay,
                         voltage_decay=1 / config.tau, tau_grad=0.01, scale_grad=20.0,
                         persistent_state=False, requires_grad=False)  # fmt: skip
    # lava-dl's users hold time-last [N, C, T] data; the current carries the 1/tau
    return torch_loop(neuron, (x / config.tau).t().unsqueeze(1).contiguous())


def norse_lsnn(x: torch.Tensor, config: NeuronConfig):
    """ALIF: ``norse.torch.LSNN`` as its users call it. LSNN charges from the previous step's
    input, so T canonical steps are T + 1 of its own (the last input zero), as compare runs it."""
    from norse.torch import LSNN, LSNNParameters

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value)

    p = LSNNParameters(tau_syn_inv=scalar(1.0), tau_mem_inv=scalar(1 / config.tau),
                       tau_adapt_inv=scalar(1 / config.tau_a), v_leak=scalar(0.0),
                       v_th=scalar(config.v_threshold), v_reset=scalar(0.0),
                       beta=scalar(config.beta_a), method="super", alpha=scalar(1.0))  # fmt: skip
    lsnn = LSNN(p, dt=1.0)

    def step(inputs):
        spikes, _ = lsnn(inputs)
        return spikes

    return torch_loop(step, torch.cat([x, torch.zeros_like(x[:1])]))


def reference(x: torch.Tensor, config: NeuronConfig):
    """kernelprof's own eager oracle as its API's users call it: ``multistep(x, config)``."""
    import reference_kernels

    return torch_loop(lambda inputs: reference_kernels.multistep(inputs, config), x)


def snntorch_synaptic(x: torch.Tensor, config: NeuronConfig):
    """CUBA: ``Synaptic(alpha=1 - 1/tau_syn, beta=1 - 1/tau)``, looped as its tutorial does."""
    import snntorch as snn
    from snntorch import surrogate

    lif = snn.Synaptic(alpha=config.syn_decay, beta=1 - 1 / config.tau,
                       threshold=config.v_threshold, reset_mechanism="zero", reset_delay=False,
                       spike_grad=surrogate.fast_sigmoid(slope=1))  # fmt: skip

    def step(current):
        syn, mem = lif.reset_mem()
        spk_rec = []
        for t in range(current.shape[0]):
            spk, syn, mem = lif(current[t], syn, mem)
            spk_rec.append(spk)
        return torch.stack(spk_rec)

    return torch_loop(step, x / config.tau)  # decay_input: the synapse's weights hold 1/tau


def braincog(x: torch.Tensor, config: NeuronConfig):
    """``LIFNode``, ``IFNode`` or ``PLIFNode`` as model_zoo's networks call them."""
    from braincog.base.node.node import IFNode, LIFNode, PLIFNode
    from braincog.base.strategy.surrogate import SigmoidGrad

    if config.neuron == "if":
        node = IFNode(threshold=config.v_threshold)
    else:
        node = (PLIFNode if config.neuron == "plif" else LIFNode)(threshold=config.v_threshold,
                                                                    tau=config.tau)  # fmt: skip
    node.act_fun = SigmoidGrad(alpha=config.alpha, requires_grad=False)  # the node fixes alpha=2

    def step(inputs):  # model_zoo's networks: one node call per step
        node.n_reset()
        return torch.stack([node(inputs[t]) for t in range(inputs.shape[0])])

    return torch_loop(step, x)


def rockpool(x: torch.Tensor, config: NeuronConfig):
    from rockpool.nn.modules import LIFNeuronTorch
    from rockpool.nn.modules.torch.lif_torch import PeriodicExponential
    from rockpool.parameters import Constant

    dt = 1e-3  # Rockpool's default; decay exp(-dt/tau_mem) = 1 - 1/tau
    tau_mem = -dt / math.log(1 - 1 / config.tau)
    # LIF: Constant, fixed (compare times the input's gradient only); PLIF: trained, as
    # Rockpool's parameters are by default
    lif = LIFNeuronTorch(x.shape[1], tau_mem=tau_mem if config.neuron == "plif"
                         else Constant(tau_mem), threshold=Constant(config.v_threshold),
                         bias=Constant(0.0), spike_generation_fn=PeriodicExponential,
                         learning_window=1 / config.alpha, max_spikes_per_dt=1, dt=dt)  # fmt: skip

    def step(inputs):
        lif.reset_state()
        spikes, _, _ = lif(inputs)
        return spikes

    # batch-first [B, T, N]; LIF's input current carries the 1/tau (PLIF's: decay_input=False)
    scale = 1 / config.tau if config.neuron == "lif" else 1.0
    return torch_loop(step, (x * scale).unsqueeze(0))


def spyx(x: torch.Tensor, config: NeuronConfig):
    """``snn.IF``, ``snn.LIF`` or (CUBA) ``snn.CuBaLIF`` through a jitted ``snn.run``, waited for
    with ``block_until_ready``, as Spyx's own benchmark times it."""
    import jax
    import jax.numpy as jnp
    import spyx.axn as axn
    import spyx.nn as snn
    from flax import nnx

    alpha = config.alpha
    beta = 1.0 if config.neuron == "if" else 1 - 1 / config.tau
    activation = axn.custom(lambda v: alpha / 2 * jnp.exp(-alpha * jnp.abs(v)))
    # Spyx spikes from the state before the step's input: one more step, its last input zero
    if config.neuron == "if":
        lif = snn.IF((x.shape[1],), threshold=config.v_threshold, activation=activation)
    elif config.neuron == "cuba":  # CuBaLIF resets before its decay: theta as it is
        lif = snn.CuBaLIF((x.shape[1],), alpha=config.syn_decay, beta=beta,
                          threshold=config.v_threshold, activation=activation,
                          rngs=nnx.Rngs(0))  # fmt: skip
    else:
        lif = snn.LIF((x.shape[1],), beta=beta, threshold=beta * config.v_threshold,
                      activation=activation, rngs=nnx.Rngs(0))  # fmt: skip
    graphdef, params, rest = nnx.split(lif, nnx.Param, ...)
    forward = jax.jit(lambda p, xs: snn.run(nnx.merge(graphdef, p, rest), xs)[0])
    rows = x / config.tau if getattr(config, "decay_input", False) else x
    padded = torch.cat([rows, torch.zeros_like(x[:1])])
    xs = jnp.asarray(padded.numpy())[:, None, :]  # time-major [T + 1, B, N]
    grad = jnp.asarray(torch.randn(xs.shape, generator=torch.Generator().manual_seed(7)).numpy())
    value_and_grad = jax.jit(jax.value_and_grad(lambda xs: jnp.sum(forward(params, xs) * grad)))

    def once() -> None:
        jax.block_until_ready(value_and_grad(xs))

    return once


def spikingjelly_cuba(x: torch.Tensor, config: NeuronConfig):
    """CUBA: ``neuron.CUBALIFNode(c_decay=1 - 1/tau_syn, v_decay=1 - 1/tau, ...)``, set to
    step_mode 'm' (its constructor takes none), reset between calls as its users reset."""
    from spikingjelly.activation_based import functional, neuron

    node = neuron.CUBALIFNode(c_decay=config.syn_decay, v_decay=1 - 1 / config.tau,
                              v_threshold=config.v_threshold, v_reset=config.v_reset,
                              surrogate_function=_sj_surrogate(config))  # fmt: skip
    functional.set_step_mode(node, "m")

    def step(inputs):
        functional.reset_net(node)
        return node(inputs)

    return torch_loop(step, x / config.tau if config.decay_input else x)


def sinabs_alif(x: torch.Tensor, config: NeuronConfig):
    """``sinabs.layers.ALIF``, reset to 0 (MembraneReset), batch-first [B, T, N]; rho =
    exp(-1/tau_adapt) = 1 - 1/tau_a and adapt_scale = beta_a rho / (1 - rho)."""
    from sinabs.activation import MembraneReset
    from sinabs.layers import ALIF

    rho = 1.0 - 1.0 / config.tau_a
    layer = ALIF(tau_mem=-1.0 / math.log(1.0 - 1.0 / config.tau), tau_adapt=-1.0 / math.log(rho),
                 adapt_scale=config.beta_a * rho / (1.0 - rho), norm_input=config.decay_input,
                 **_sinabs_spiking(config, MembraneReset()))  # fmt: skip
    return _sinabs_loop(layer, x)


def _sinabs_spiking(config: NeuronConfig, reset_fn) -> dict:
    """A Sinabs layer's spike settings: SingleSpike, ``reset_fn``, and SingleExponential with
    the canonical piecewise_exp's width."""
    from sinabs.activation import SingleExponential, SingleSpike

    width = 1.0 / (config.alpha * config.v_threshold)
    return dict(spike_threshold=torch.tensor(config.v_threshold), spike_fn=SingleSpike,
                reset_fn=reset_fn,
                surrogate_grad_fn=SingleExponential(grad_width=width, grad_scale=0.5))  # fmt: skip


def sinabs_cuba(x: torch.Tensor, config: NeuronConfig):
    """CUBA: ``sinabs.layers.LIF(tau_mem, tau_syn)``, subtractive reset, batch-first [B, T, N];
    i_syn = alpha_syn (i_syn + x), so the input a user's synapse delivers carries 1/alpha_syn."""
    from sinabs.activation import MembraneSubtract
    from sinabs.layers import LIF

    layer = LIF(tau_mem=-1.0 / math.log(1.0 - 1.0 / config.tau),
                tau_syn=-1.0 / math.log(config.syn_decay), norm_input=config.decay_input,
                **_sinabs_spiking(config, MembraneSubtract()))  # fmt: skip
    return _sinabs_loop(layer, x / float(layer.alpha_syn_calculated.detach()))


def _sj_surrogate(config: NeuronConfig):
    from spikingjelly.activation_based import surrogate

    classes = {"superspike": surrogate.SuperSpike, "sigmoid": surrogate.Sigmoid,
               "piecewise_exp": surrogate.PiecewiseExp}  # fmt: skip
    return classes[config.surrogate](alpha=config.alpha)


def spikingjelly_node(x: torch.Tensor, config: NeuronConfig):
    """SpikingJelly's ``IFNode`` or ``ParametricLIFNode``, multi-step."""
    from spikingjelly.activation_based import functional, neuron

    common = dict(v_threshold=config.v_threshold, v_reset=config.v_reset,
                  detach_reset=config.detach_reset, surrogate_function=_sj_surrogate(config),
                  step_mode="m")  # fmt: skip
    if config.neuron == "if":
        node = neuron.IFNode(**common)
    else:
        node = neuron.ParametricLIFNode(init_tau=config.tau, decay_input=config.decay_input,
                                        **common)  # fmt: skip

    def step(inputs):
        functional.reset_net(node)
        return node(inputs)

    return torch_loop(step, x)


def norse_iaf(x: torch.Tensor, config: NeuronConfig):
    from norse.torch import IAF, IAFParameters

    iaf = IAF(IAFParameters(v_th=torch.tensor(config.v_threshold), v_reset=torch.tensor(0.0),
                            method="super", alpha=torch.tensor(1.0)), dt=1.0)  # fmt: skip

    def step(inputs):
        spikes, _ = iaf(inputs)
        return spikes

    return torch_loop(step, x)


def sinabs_plif(x: torch.Tensor, config: NeuronConfig):
    """``sinabs.layers.LIF(train_alphas=True)``, subtractive reset, batch-first [B, T, N]."""
    from sinabs.activation import MembraneSubtract
    from sinabs.layers import LIF

    layer = LIF(tau_mem=-1.0 / math.log(1.0 - 1.0 / config.tau), train_alphas=True,
                norm_input=config.decay_input,
                **_sinabs_spiking(config, MembraneSubtract()))  # fmt: skip
    return _sinabs_loop(layer, x)


def _sinabs_loop(layer, x: torch.Tensor):
    """A Sinabs layer called as its users call it: states reset, batch-first [B, T, N]."""

    def step(inputs):
        layer.reset_states()
        return layer(inputs)

    return torch_loop(step, x.movedim(0, 1).contiguous())  # [T, N] -> [B = N, T], as check


@dataclass(frozen=True)
class NeuronSet:
    """One neuron config, compare's flags for it, and the frameworks checked in it: plain loop
    -> compare's impl."""

    config: NeuronConfig
    flags: str
    impls: dict[str, str]
    plain: dict[str, Callable] | None = None  # the plain loops, where not PLAIN's LIF ones
    baseline: str = BASELINE  # the framework the ratios are taken against (one that runs it)


SETS = {
    "default": NeuronSet(
        LIFConfig(surrogate="superspike", alpha=1.0), "(compare's default)",
        {"spikingjelly": "spikingjelly", "snntorch": "snntorch", "norse": "norse",
         "lava-dl": "lava-dl"},
    ),
    "detach-sigmoid": NeuronSet(
        LIFConfig(detach_reset=True, surrogate="sigmoid", alpha=4.0),
        "--detach-reset --surrogate sigmoid:4",
        {"spikingjelly": "spikingjelly", "braincog": "braincog"},
    ),
    "soft-reset": NeuronSet(
        LIFConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0),
        "--reset soft --surrogate piecewise_exp:2",
        {"spikingjelly": "spikingjelly", "rockpool": "rockpool-neuron", "spyx": "spyx"},
    ),
    "if": NeuronSet(
        IFConfig(surrogate="superspike", alpha=1.0), "--neuron if",
        {"spikingjelly": "spikingjelly", "snntorch": "snntorch", "norse": "norse"},
        {"spikingjelly": spikingjelly_node, "snntorch": snntorch, "norse": norse_iaf},
    ),
    "plif-soft": NeuronSet(
        PLIFConfig(decay_input=False, v_reset=None, surrogate="piecewise_exp", alpha=2.0),
        "--neuron plif --no-decay-input --reset soft --surrogate piecewise_exp:2",
        {"spikingjelly": "spikingjelly", "sinabs": "sinabs", "rockpool": "rockpool-neuron"},
        {"spikingjelly": spikingjelly_node, "sinabs": sinabs_plif, "rockpool": rockpool},
    ),
    "plif-no-decay": NeuronSet(
        PLIFConfig(decay_input=False, surrogate="superspike", alpha=1.0),
        "--neuron plif --no-decay-input",
        {"spikingjelly": "spikingjelly", "snntorch": "snntorch"},
        {"spikingjelly": spikingjelly_node, "snntorch": snntorch},
    ),
    "if-detach-sigmoid": NeuronSet(
        IFConfig(detach_reset=True, surrogate="sigmoid", alpha=4.0),
        "--neuron if --detach-reset --surrogate sigmoid:4",
        {"spikingjelly": "spikingjelly", "braincog": "braincog"},
        {"spikingjelly": spikingjelly_node, "braincog": braincog},
    ),
    "plif-detach-sigmoid": NeuronSet(
        PLIFConfig(detach_reset=True, surrogate="sigmoid", alpha=4.0),
        "--neuron plif --detach-reset --surrogate sigmoid:4",
        {"spikingjelly": "spikingjelly", "braincog": "braincog"},
        {"spikingjelly": spikingjelly_node, "braincog": braincog},
    ),
    "if-soft": NeuronSet(
        IFConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0),
        "--neuron if --reset soft --surrogate piecewise_exp:2",
        {"spikingjelly": "spikingjelly", "spyx": "spyx"},
        {"spikingjelly": spikingjelly_node, "spyx": spyx},
    ),
    "cuba": NeuronSet(
        CUBAConfig(surrogate="superspike", alpha=1.0), "--neuron cuba",
        {"norse": "norse", "snntorch": "snntorch", "lava-dl": "lava-dl",
         "spikingjelly": "spikingjelly"},
        {"norse": norse, "snntorch": snntorch_synaptic, "lava-dl": lava_dl,
         "spikingjelly": spikingjelly_cuba}, baseline="norse",
    ),
    "alif": NeuronSet(
        ALIFConfig(surrogate="superspike", alpha=1.0), "--neuron alif",
        {"ref-torch": "ref-torch", "norse": "norse"},
        {"ref-torch": reference, "norse": norse_lsnn}, baseline="ref-torch",
    ),
    "cuba-soft": NeuronSet(
        CUBAConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0),
        "--neuron cuba --reset soft --surrogate piecewise_exp:2",
        {"ref-torch": "ref-torch", "spyx": "spyx", "sinabs": "sinabs",
         "spikingjelly": "spikingjelly"},
        {"ref-torch": reference, "spyx": spyx, "sinabs": sinabs_cuba,
         "spikingjelly": spikingjelly_cuba}, baseline="ref-torch",
    ),
    "alif-detached": NeuronSet(
        ALIFConfig(detach_reset=True, detach_adaptation=True, surrogate="piecewise_exp",
                   alpha=2.0),
        "--neuron alif --detach-reset --detach-adaptation --surrogate piecewise_exp:2",
        {"ref-torch": "ref-torch", "sinabs": "sinabs"},
        {"ref-torch": reference, "sinabs": sinabs_alif}, baseline="ref-torch",
    ),
}  # fmt: skip
PLAIN = {"spikingjelly": spikingjelly, "snntorch": snntorch, "norse": norse, "lava-dl": lava_dl,
         "braincog": braincog, "rockpool": rockpool, "spyx": spyx}  # fmt: skip


def paired(task: dict) -> dict:
    """Runs in a fresh worker for one framework: the documented module in a plain perf_counter
    loop, and the framework's timed build through kernelprof's harness (compare's closures and
    ``measure``), on the same input, alternating PAIRS times (who goes first alternates too)."""
    from kernelprof.harness.timer import cache_flusher, measure
    from kernelprof.runs import check
    from kernelprof.runs.check import ImplementationTask
    from kernelprof.runs.compare.worker import timed_closures

    neurons = SETS[task["set"]]
    x = lif_input((task["T"], task["N"]), neurons.config, seed=task["seed"])
    once = (neurons.plain or PLAIN)[task["framework"]](x, neurons.config)

    flush = cache_flusher(torch.device("cpu"))

    def plain_batch(budget_s: float, flushed: bool) -> float:
        """The plain loop; ``flushed``: the harness's cache flush before each call, untimed."""
        times = []
        deadline = time.perf_counter() + budget_s
        while len(times) < 5 or time.perf_counter() < deadline:
            if flushed:
                flush()
            start = time.perf_counter()
            once()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    # kernelprof's side, exactly as compare's worker: the timed build, checked against the
    # checking build on the timed input, then the harness on the prepared closures
    compare_task = ImplementationTask(function="", impl=neurons.impls[task["framework"]],
                                      config=neurons.config, T=task["T"], N=task["N"],
                                      dtype="fp32", device="cpu", seed=task["seed"])  # fmt: skip
    checked, build = check.prepare(compare_task)
    if build is not None:
        checked = check.compare_builds(checked, build, x, compare_task)
    if build is None or not checked.timed_build.agrees:
        return {"error": checked.reason or "no build"}
    closures = timed_closures(build.timed, x, task["seed"])
    budget = task["repeat_s"] / PAIRS
    for _ in range(3):
        once()
        closures.forward_backward()
    plain, flushed, harness = [], [], []
    for index in range(PAIRS):
        first_plain = index % 2 == 0
        if first_plain:
            plain.append(plain_batch(budget, flushed=False))
            flushed.append(plain_batch(budget, flushed=True))
        harness.append(measure(closures.forward_backward, repeat_s=budget).median_s)
        if not first_plain:
            flushed.append(plain_batch(budget, flushed=True))
            plain.append(plain_batch(budget, flushed=False))
    return {"plain_s": plain, "plain_flushed_s": flushed, "harness_s": harness}


def measure_pairs(framework: str, args) -> dict:
    task = {"function": PAIRED_FUNCTION, "framework": framework, "set": args.set, "T": args.T,
            "N": args.N, "seed": 0, "repeat_s": args.repeat_s}  # fmt: skip
    result = run_task(task, timeout_s=900)
    if "plain_s" not in result:
        print(f"{framework}: {result.get('reason') or result.get('error')}", file=sys.stderr)
    return result


KINDS = ("plain_s", "plain_flushed_s", "harness_s")


def quotients(results: list[dict[str, dict]], framework: str, plain: str,
              baseline: str = BASELINE) -> list[float]:  # fmt: skip
    """Per round: the framework's kernelprof/plain quotient over the baseline's, each paired
    alternation by alternation within its worker (so drift cancels)."""

    def paired_quotient(result: dict) -> float | None:
        if plain not in result:
            return None
        return statistics.median(
            h / p for h, p in zip(result["harness_s"], result[plain], strict=True)
        )

    return [
        q / q_base
        for r in results
        if (q := paired_quotient(r[framework])) and (q_base := paired_quotient(r[baseline]))
    ]


def verdict(values: list[float], rounds: int) -> tuple[bool, str]:
    if len(values) != rounds:
        return False, "n/a (a round has no figure)"
    relative = statistics.median(values)
    return abs(relative - 1) <= TARGET, f"{relative:.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=8)
    parser.add_argument("--N", type=int, default=2**18)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat-s", type=float, default=1.0,
                        help="timing budget of each plain loop and each compare phase")  # fmt: skip
    parser.add_argument("--set", choices=SETS, default="default",
                        help="the neuron config and the frameworks checked in it")  # fmt: skip
    parser.add_argument("--frameworks", default=None, help="default: all of the set's")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    neurons = SETS[args.set]
    frameworks = chosen_frameworks(
        parser, args.frameworks or ",".join(neurons.impls), neurons.impls, neurons.baseline
    )

    started = time.perf_counter()
    results: list[dict[str, dict]] = []

    def one(framework: str, index: int) -> float | None:
        result = measure_pairs(framework, args)
        if len(results) <= index:
            results.append({})
        results[index][framework] = result
        if "plain_s" not in result:
            return None
        ms = {kind: 1e3 * statistics.median(result[kind]) for kind in KINDS}
        print(f"round {index + 1}: {framework:<13} plain loop {ms['plain_s']:7.2f} ms, flushed "
              f"{ms['plain_flushed_s']:7.2f} ms, kernelprof {ms['harness_s']:7.2f} ms",
              file=sys.stderr, flush=True)  # fmt: skip
        return ms["plain_s"]

    run_rounds(frameworks, args.rounds, one)
    by_kind = {
        kind: [{fw: statistics.median(r[fw][kind]) if kind in r[fw] else None for fw in r}
               for r in results]
        for kind in KINDS
    }  # fmt: skip
    summary = {kind: ratios(rounds, neurons.baseline) for kind, rounds in by_kind.items()}
    print(f"\n{neurons.config.neuron.upper()} fwd+bwd, set {args.set} {neurons.flags}, "
          f"T={args.T}, N={args.N:,}, fp32, CPU, {args.rounds} rounds of {PAIRS} alternations: "
          f"time relative to {neurons.baseline} (median over rounds, lowest-highest); plain "
          "loops warm (as users run them) and with the harness's cache flush before each "
          "call\n")  # fmt: skip
    print("| framework | plain ms | plain flushed ms | kernelprof ms | plain ratio | "
          "plain flushed ratio | kernelprof ratio | kernelprof / plain flushed | within 20 % | "
          "kernelprof / plain (warm) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    met, warm_met = True, True
    document_quotients: dict[str, dict[str, list[float]]] = {}
    for framework in frameworks:
        ms = {kind: statistics.median([r[framework] for r in by_kind[kind] if r[framework]] or [0])
              for kind in KINDS}  # fmt: skip
        flushed = quotients(results, framework, "plain_flushed_s", neurons.baseline)
        warm = quotients(results, framework, "plain_s", neurons.baseline)
        document_quotients[framework] = {"flushed": flushed, "warm": warm}
        ok, text = verdict(flushed, args.rounds)
        warm_ok, warm_text = verdict(warm, args.rounds)
        met, warm_met = met and ok, warm_met and warm_ok
        cells = [framework, *(f"{1e3 * ms[kind]:.2f}" for kind in KINDS),
                 *(describe(summary[kind][framework]) for kind in KINDS),
                 text, "yes" if ok else "**no**",
                 warm_text + ("" if warm_ok else " (outside 20 %)")]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    print(
        f"\ntarget: kernelprof's ratio within {TARGET:.0%} of the plain loop's, both with the "
        "cache flushed before each call, for every framework: "
        + ("met" if met else "NOT met")
        + f"; against the warm plain loops: {'within' if warm_met else 'NOT within'} 20 %"
        + f"  ({time.perf_counter() - started:.0f} s)"
    )
    if args.json:
        document = {"set": args.set, "config": neurons.config.as_dict(), "rounds": results,
                    "summary": summary, "kernelprof_over_plain": document_quotients}  # fmt: skip
        args.json.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
