"""Spyx (``spyx`` on PyPI, JAX + Flax NNX): its LIF, jitted and timed as JAX users time it.

Read in Spyx 1.0.0's sources (spyx/nn.py, spyx/axn.py, spyx/bench.py) and checked by
tests/test_impl_spyx.py:

* ``snn.LIF(hidden_shape, beta=None, threshold=1.0, activation=None, *, rngs)``; per step
  (nn.py: LIF.__call__): S[t] = activation(U[t-1] - threshold), then
  U[t] = clip(beta, 0, 1) * U[t-1] + x[t] - S[t] * threshold. The spike reads the state
  *before* this step's input, and the subtractive reset comes after the decay; there is no
  hard reset and no detached reset. ``snn.run(model, x, state=None)`` is a ``jax.lax.scan``
  over time-major [T, B, ...] input from ``initial_state`` (zeros) or the ``state`` given.
* Its activations (spyx/axn.py) fire on x > 0; ``axn.custom(bwd, fwd)`` is the public way to
  give any surrogate (a ``jax.custom_gradient`` around ``fwd``, gradient ``bwd``), used here
  with the canonical surrogate and a forward that fires on x >= 0.
* The canonical soft-reset LIF is Spyx's LIF exactly, up to one step of latency, with
  beta = 1 - 1/tau, threshold beta*theta, input X' = X/tau (or X) - (1 - beta)^2 theta and
  initial state -(1 - beta) theta: then U[t] = H[t] - (1 - beta) theta, Spyx's spike at step
  t+1 is the canonical S[t], and the surrogate's argument is H - theta (derivation in
  docs/frameworks.md). So T canonical steps take T + 1 Spyx steps, the last input row a
  pad (1/T more work than a T-step run, stated in the row's path). The input transform is an
  affine map that a user's synaptic weights and bias would hold; it runs in ``prepare``.
  Hard reset, detach_reset=True, tau < 1 (beta clipped at 0) and theta <= 0 are Unsupported.
* CUBA is ``snn.CuBaLIF(hidden_shape, alpha, beta, threshold, activation)``: per step
  S = activation(V - threshold), V = V - S threshold, I = alpha I + x, V = beta V + I, its
  state [V, I] side by side. It resets before the decay, as the canonical model does, so with
  alpha = 1 - 1/tau_syn, beta = 1 - 1/tau and threshold theta its V after step t is the
  canonical H[t] and its spike at step t + 1 the canonical S[t], from a zero state, with no
  input transform (X/tau for decay_input): exact, soft reset attached only, T + 1 steps as LIF.
* Timing follows Spyx's own benchmark (spyx/bench.py): ``nnx.split`` the module, ``jax.jit``
  a function that merges it and calls ``snn.run``; every timed call ends with
  ``block_until_ready`` (JAX dispatch is asynchronous: without it a call times its dispatch).
  Backward alone is the ``jax.vjp`` pullback of the jitted forward applied to the upstream
  gradient (jitted); forward+backward is ``jax.jit(jax.value_and_grad(loss))`` with
  loss = sum(spikes * grad), as JAX users train. JAX runs on the CPU here (float32; x64 off).
* Spyx trains in JAX (flax.nnx, optax); kernelprof's e2e loop, profiler breakdown and data
  pipeline are PyTorch's, so Spyx has no e2e network (its rows say so).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from kernelprof.frameworks import base
from reference_kernels.model import LIFConfig, NeuronConfig

REQUIREMENT = base.Requirement("spyx", ">=1.0,<2", module="spyx.nn")
JAX = (base.Requirement("jax", ">=0.6"), base.Requirement("flax", ">=0.12.7", module="flax.nnx"))
PATH = "jax.jit(snn.run) over T + 1 steps (one step of Spyx's spike latency), XLA on the CPU"
E2E_REASON = (
    "Spyx trains in JAX (flax.nnx and optax), while kernelprof's e2e training loop, "
    "step breakdown (torch.profiler) and data pipeline are PyTorch's; its LIF is in check and "
    "compare"
)


def lif_parameters(config: NeuronConfig) -> dict:
    """beta, Spyx's threshold, the input's scale and offset and the initial state for
    ``config``, or Unsupported naming every part Spyx cannot express."""
    problems = []
    if not config.soft_reset:
        problems.append("hard reset: Spyx's LIF subtracts the threshold")
    elif config.detach_reset:
        problems.append("detach_reset=True: Spyx's reset keeps the spike's gradient")
    if config.neuron == "lif" and config.tau < 1.0:
        problems.append(f"tau={config.tau:g}: beta = 1 - 1/tau < 0 is clipped to 0 by Spyx")
    if config.v_threshold <= 0:
        problems.append("a threshold <= 0 (the mapping's initial state would fire at once)")
    if problems:
        raise base.Unsupported("spyx cannot express " + "; ".join(problems))
    beta = 1.0 if config.neuron == "if" else 1.0 - 1.0 / config.tau  # IF: snn.IF, no leak
    theta = float(config.v_threshold)
    return {
        "beta": beta,
        "threshold": beta * theta,
        "scale": 1.0 / config.tau if getattr(config, "decay_input", False) else 1.0,
        "offset": -((1.0 - beta) ** 2) * theta,
        "initial": -(1.0 - beta) * theta,  # U[-1] = V[-1] - (1 - beta) theta, V[-1] = 0
        "theta": theta,
    }


def cuba_parameters(config: NeuronConfig) -> dict:
    """CuBaLIF's alpha, beta and threshold and the input's scale for the canonical CUBA, or
    Unsupported naming every part Spyx cannot express. CuBaLIF resets before its decay
    (V = beta (V - S theta) + I, I = alpha I + x), as the canonical model does, so its state V
    after step t is the canonical H[t] and its spike at step t + 1 the canonical S[t]: no
    input offset and no initial state are needed, only the step of latency."""
    problems = []
    if not config.soft_reset:
        problems.append("hard reset: Spyx's CuBaLIF subtracts the threshold")
    elif config.detach_reset:
        problems.append("detach_reset=True: Spyx's reset keeps the spike's gradient")
    if config.tau < 1.0:
        problems.append(f"tau={config.tau:g}: beta = 1 - 1/tau < 0 is clipped to 0 by Spyx")
    if config.v_threshold <= 0:
        problems.append("a threshold <= 0 (a state at rest would fire at once)")
    if problems:
        raise base.Unsupported("spyx cannot express " + "; ".join(problems))
    return {
        "alpha": config.syn_decay,
        "beta": 1.0 - 1.0 / config.tau,
        "threshold": float(config.v_threshold),
        "scale": 1.0 / config.tau if config.decay_input else 1.0,
        "offset": 0.0,
        "initial": 0.0,  # V and I at rest
        "theta": float(config.v_threshold),
    }


def surrogate_grad(config: LIFConfig):
    """The canonical surrogate's derivative as a jax function of x = H - theta."""
    import jax
    import jax.numpy as jnp

    alpha = float(config.alpha)
    if config.surrogate == "sigmoid":
        return lambda x: alpha * jax.nn.sigmoid(alpha * x) * (1.0 - jax.nn.sigmoid(alpha * x))
    if config.surrogate == "atan":
        return lambda x: (alpha / 2.0) / (1.0 + (jnp.pi / 2.0 * alpha * x) ** 2)
    if config.surrogate == "superspike":
        return lambda x: 1.0 / (1.0 + alpha * jnp.abs(x)) ** 2
    return lambda x: (alpha / 2.0) * jnp.exp(-alpha * jnp.abs(x))  # piecewise_exp


def _to_jax(tensor: torch.Tensor):
    import jax.numpy as jnp

    return jnp.asarray(tensor.detach().to("cpu", torch.float32).numpy())


def _to_torch(array, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).to(device=like.device, dtype=like.dtype)


class JaxFunction(torch.autograd.Function):
    """A jax function of one array as a torch function that autograd differentiates (through
    ``jax.vjp``): for the checks only, never timed."""

    @staticmethod
    def forward(ctx, function, x):
        import jax

        outputs, pullback = jax.vjp(function, _to_jax(x))
        ctx.pullback, ctx.like, ctx.shapes = pullback, x, [o.shape for o in outputs]
        ctx.set_materialize_grads(False)
        return tuple(_to_torch(output, x) for output in outputs)

    @staticmethod
    def backward(ctx, *grads):
        import jax.numpy as jnp

        cotangents = tuple(
            jnp.zeros(shape, jnp.float32) if grad is None else _to_jax(grad)
            for grad, shape in zip(grads, ctx.shapes, strict=True)
        )
        (grad_x,) = ctx.pullback(cotangents)
        return None, _to_torch(grad_x, ctx.like)


class SpyxLIF:
    """Spyx's LIF for one config and N, split as Spyx's benchmark splits it, and the jitted
    functions of its builds."""

    def __init__(self, config: LIFConfig, neurons: int) -> None:
        import jax
        import jax.numpy as jnp
        import spyx.axn as axn
        import spyx.nn as snn
        from flax import nnx

        cuba = config.neuron == "cuba"
        p = cuba_parameters(config) if cuba else lif_parameters(config)
        self.p, self.neurons, self.cuba = p, neurons, cuba
        fires = lambda x: jnp.where(x >= 0, 1.0, 0.0).astype(x.dtype)  # noqa: E731
        activation = axn.custom(surrogate_grad(config), fires)
        if config.neuron == "if":  # U = U + x - S theta: the LIF mapping with beta = 1
            self.module = snn.IF((neurons,), threshold=p["threshold"], activation=activation)
        elif cuba:  # its state is [V, I] side by side: [B, 2N]
            self.module = snn.CuBaLIF((neurons,), alpha=p["alpha"], beta=p["beta"],
                                      threshold=p["threshold"], activation=activation,
                                      rngs=nnx.Rngs(0))  # fmt: skip
        else:
            self.module = snn.LIF((neurons,), beta=p["beta"], threshold=p["threshold"],
                                  activation=activation, rngs=nnx.Rngs(0))  # fmt: skip
        graphdef, params, rest = nnx.split(self.module, nnx.Param, ...)
        self.params = params
        width = 2 * neurons if cuba else neurons

        def forward(params, x):  # x: [T + 1, B, N], time-major; the users' timed call
            model = nnx.merge(graphdef, params, rest)
            state = jnp.full((x.shape[1], width), p["initial"], x.dtype)
            spikes, _ = snn.run(model, x, state=state)
            return spikes

        def with_states(x):  # checking only: every step's state, as spyx.nir scans it
            model = nnx.merge(graphdef, params, rest)
            state = jnp.full((x.shape[1], width), p["initial"], x.dtype)

            def body(carry, x_t):
                out, new = model(x_t, carry)
                return new, (out, new)

            _, (spikes, states) = jax.lax.scan(body, state, x)
            return spikes, states

        self.forward = jax.jit(forward)
        self.with_states = jax.jit(with_states)

    def prepare(self, x):
        """Canonical [T, N] (torch) -> Spyx's input [T + 1, 1, N]: X' = scale X + offset, and a
        pad row (its value reaches no output that is kept)."""
        p = self.p
        rows = x.reshape(x.shape[0], 1, -1) * p["scale"] + p["offset"]
        return torch.cat([rows, torch.zeros_like(rows[:1])])

    def canonical_check(self, prepared):
        """jax [T + 1, 1, N] from :meth:`prepare` -> the canonical (S, V after reset) [T, N]
        (see module doc); CUBA adds I, the current of the prepared input."""
        spikes, states = self.with_states(prepared)
        s = spikes[1:, 0]  # Spyx's spike at step t+1 is the canonical S[t]
        u = states[:-1, 0, : self.neurons]  # U[t] = H[t] + initial
        v = u - self.p["initial"] - s * self.p["theta"]  # V = H - S theta
        return (s, v, states[:-1, 0, self.neurons :]) if self.cuba else (s, v)


def build(config: LIFConfig, device: torch.device, dtype: torch.dtype) -> base.NeuronBuild:
    if dtype != torch.float32:
        raise base.Unsupported(f"spyx: float32 only here (JAX's x64 is off; {dtype} not adapted)")
    cuba = config.neuron == "cuba"
    (cuba_parameters if cuba else lif_parameters)(config)  # Unsupported before anything is built

    @cache
    def lif(neurons: int) -> SpyxLIF:
        return SpyxLIF(config, neurons)  # built once per N

    def check(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        model = lif(x[0].numel())
        # the input map in torch (prepare's), so dX reaches x through it
        spikes, v, *current = JaxFunction.apply(model.canonical_check, model.prepare(x))
        if not cuba:
            return spikes.reshape(x.shape), v.reshape(x.shape)
        # CuBaLIF's current is that of the scaled input (X / tau with decay_input)
        i = current[0].reshape(x.shape) / model.p["scale"]
        return spikes.reshape(x.shape), v.reshape(x.shape), {"i": i}

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return lif(x[0].numel()).prepare(x)

    def run(prepared: torch.Tensor) -> torch.Tensor:
        # the jitted forward that is timed, behind torch's autograd for the checks
        model = lif(prepared.shape[-1])
        (spikes,) = JaxFunction.apply(lambda x: (model.forward(model.params, x),), prepared)
        return spikes

    def spikes(output: torch.Tensor) -> torch.Tensor:
        return output[1:, 0]  # Spyx's spike at step t+1 is the canonical S[t]

    def phases(x: torch.Tensor, grad: torch.Tensor) -> dict:
        return timed_phases(lif(x[0].numel()), x, grad)

    return base.NeuronBuild(
        check=check,
        timed=base.TimedBuild(
            run=run,
            prepare=prepare,
            spikes=spikes,
            phases=phases,
            code="f = jax.jit(lambda p, x: snn.run(nnx.merge(g, p, r), x, state=s0)[0]); "
            "f(params, x).block_until_ready()" + ("  # g from snn.CuBaLIF" if cuba else ""),
        ),  # fmt: skip
        path=PATH.replace("snn.run", "snn.run of CuBaLIF") if cuba else PATH,
    )


def timed_phases(model: SpyxLIF, x: torch.Tensor, grad: torch.Tensor) -> dict:
    """What JAX users run for each phase, each waited for with ``block_until_ready``, on the
    prepared input; the gradients are checked once against the torch bridge's (which the
    timed build's agreement check compared with the checking build), before any timing."""
    import jax
    import jax.numpy as jnp

    prepared = _to_jax(model.prepare(x.reshape(x.shape[0], -1)))
    upstream = _to_jax(grad.reshape(grad.shape[0], -1))
    cotangent = jnp.concatenate([jnp.zeros_like(upstream[:1]), upstream])[:, None, :]
    params, forward = model.params, model.forward

    def loss(xs):
        return jnp.sum(forward(params, xs) * cotangent)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    _, pullback = jax.vjp(lambda xs: forward(params, xs), prepared)
    apply_pullback = jax.jit(lambda pullback, g: pullback(g))

    def fwd():
        return forward(params, prepared).block_until_ready()

    def bwd():
        return jax.block_until_ready(apply_pullback(pullback, cotangent))

    def fwd_bwd():
        return jax.block_until_ready(value_and_grad(prepared))

    (from_pullback,) = bwd()
    _, from_value_and_grad = fwd_bwd()
    if not np.allclose(np.asarray(from_pullback), np.asarray(from_value_and_grad), rtol=1e-5,
                       atol=1e-6):  # fmt: skip
        raise RuntimeError("spyx: jax.value_and_grad and the vjp pullback disagree on dX")
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd_bwd}


NEURON = base.Implementation(
    name="spyx",
    framework="Spyx",
    build=build,
    requires=(REQUIREMENT, *JAX),
    devices=("cpu",),
    description="spyx.nn.LIF (IF for IF, CuBaLIF for CUBA) through jax.jit(snn.run) on "
    "XLA:CPU; jax.vjp / value_and_grad",
    neurons=("if", "lif", "cuba"),
    not_mapped={
        "plif": (
            "Spyx's LIF learns beta (an nnx.Param) but spikes from the state before the step's "
            "input; kernelprof's exact mapping of it sets the threshold (beta theta), the input's "
            "offset (-(1 - beta)^2 theta) and the initial state from beta, which Spyx keeps fixed "
            "while beta learns: its d(beta) is not the canonical PLIF's dw"
        )
    },
)


def _no_network(spec, lif, steps, seed, neuron="lif"):
    raise base.Unsupported(E2E_REASON)


# ---- the framework's own defaults --------------------------------------------------------------

_LIF = "spyx/nn.py: LIF.__init__"
DEFAULTS = (
    base.Default("beta", "None: per neuron, trainable, truncated normal (std 0.25) + 0.5, clipped "
                 "to [0, 1]", _LIF, canonical="tau"),
    base.Default("threshold", "1.0", _LIF, canonical="v_threshold"),
    base.Default("activation", "superspike(k=25): 1/(1 + 25|x|)^2, fires on x > 0",
                 "spyx/nn.py: _DEFAULT_ACTIVATION; spyx/axn.py: superspike", canonical="surrogate"),
    base.Default("reset", "subtract the threshold after the decay, attached to the gradient",
                 "spyx/nn.py: LIF.__call__", canonical="v_reset"),
    base.Default("input", "added undecayed: U = beta U + x - S theta", "spyx/nn.py: LIF.__call__",
                 canonical="decay_input"),
    base.Default("spike timing", "from the state before the step's input (one step of latency)",
                 "spyx/nn.py: LIF.__call__"),
)  # fmt: skip


def default_spikes(x: torch.Tensor) -> torch.Tensor:
    """[T, N] -> [T, N]: ``snn.LIF((N,), rngs=nnx.Rngs(0))`` at its defaults over T steps."""
    import spyx.nn as snn
    from flax import nnx

    flat = x.reshape(x.shape[0], 1, -1)
    model = snn.LIF((flat.shape[-1],), rngs=nnx.Rngs(0))
    spikes, _ = snn.run(model, _to_jax(flat))
    return _to_torch(spikes[:, 0], x).reshape(x.shape)


FRAMEWORK = base.Framework(
    name="spyx",
    display="Spyx",
    requires=(REQUIREMENT, *JAX),
    implementations=(NEURON,),
    networks={"spyx": _no_network},
    no_converter="Spyx ships no ANN-to-SNN converter",
    defaults=DEFAULTS,
    default_neuron=default_spikes,
    description="JAX and Flax NNX, jitted by XLA (CPU here)",
)
