"""IF and PLIF cases for the reference kernels, and their check against the float64 oracle
(spikes exact, V and dX within the dtype's atol = rtol, PLIF's dw within it and of the same
sign)."""

from __future__ import annotations

import itertools

import torch

from kernelprof.inputs import lif_input
from kernelprof.verify.agreement import TIE_ATOL, TOLERANCE, spike_agreement
from reference_kernels.model import IFConfig, PLIFConfig, channel_shape
from reference_kernels.torch_ref import trajectory


def if_configs() -> list[IFConfig]:
    """Every reset and detach_reset, a surrogate each (4 configs)."""
    return [
        IFConfig(v_reset=v_reset, detach_reset=detach, surrogate=surrogate, alpha=alpha)
        for (v_reset, detach), (surrogate, alpha) in zip(
            itertools.product((0.0, None), (False, True)),
            (("sigmoid", 4.0), ("atan", 2.0), ("superspike", 1.0), ("piecewise_exp", 1.5)),
            strict=True,
        )
    ]


def plif_configs() -> list[PLIFConfig]:
    """Every reset, decay_input and per_channel, detach_reset alternating (8 configs)."""
    return [
        PLIFConfig(
            tau=2.0 if decay else 3.0,
            v_reset=v_reset,
            decay_input=decay,
            detach_reset=index % 2 == 1,
            per_channel=per_channel,
            surrogate=("sigmoid", "atan")[index % 2],
            alpha=(4.0, 2.0)[index % 2],
        )  # fmt: skip
        for index, (v_reset, decay, per_channel) in enumerate(
            itertools.product((-0.5, None), (True, False), (False, True))
        )
    ]


def neuron_id(config) -> str:
    reset = "soft" if config.v_reset is None else f"hard{config.v_reset:g}"
    parts = [config.neuron, reset, "detach" if config.detach_reset else "attach"]
    if config.neuron == "plif":
        parts += ["decay" if config.decay_input else "nodecay", f"tau{config.tau:g}"]
        parts += ["channels"] if config.per_channel else []
    return "-".join(parts)


def neuron_input(shape, config, dtype=torch.float32, seed=0) -> torch.Tensor:
    """kernelprof's input currents for ``config`` (10-40 % of neuron-steps fire)."""
    return lif_input(tuple(shape), config, dtype=dtype, seed=seed)


def start_w(config, shape, seed=0) -> torch.Tensor | None:
    """A float64 w near w0 (one, or one per channel), away from it so that k != 1/tau0."""
    if config.neuron != "plif":
        return None
    channels = channel_shape(shape[1:])[1]
    generator = torch.Generator().manual_seed(seed + 3)
    w = config.initial_w(channels, dtype=torch.float64)
    return w + 0.3 * torch.randn(w.shape, generator=generator, dtype=torch.float64)


def check_neuron(run, config, x: torch.Tensor, w: torch.Tensor | None, seed: int = 0) -> dict:
    """Runs ``run(x, w) -> (spikes, V)`` (each a fresh leaf) and the float64 oracle with the same
    upstream gradients of S and V; asserts the agreement and returns the figures."""
    generator = torch.Generator().manual_seed(seed + 1)
    grad_s = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    grad_v = torch.randn(x.shape, generator=generator, dtype=torch.float64)

    x_impl = x.detach().clone().requires_grad_()
    w_impl = None if w is None else w.detach().clone().requires_grad_()
    spikes, v = run(x_impl, w_impl)
    torch.autograd.backward([spikes, v], [grad_s.to(spikes), grad_v.to(v)])

    x_ref = x.detach().to("cpu", torch.float64).requires_grad_()
    w_ref = None if w is None else w.detach().double().requires_grad_()
    s_ref, v_ref, h_ref = trajectory(x_ref, config, w_ref)
    ((s_ref * grad_s).sum() + (v_ref * grad_v).sum()).backward()

    tolerance = TOLERANCE[x.dtype]
    agreement = spike_agreement(spikes, s_ref, h_ref, config.v_threshold, TIE_ATOL[x.dtype])
    assert agreement.non_ties == 0, f"{agreement.non_ties} neurons differ away from the threshold"
    keep = agreement.comparable
    steps = x.shape[0]
    for name, got, want in (("V", v, v_ref), ("dX", x_impl.grad, x_ref.grad)):
        got = got.detach().double().cpu().reshape(steps, -1)[:, keep]
        want = want.detach().reshape(steps, -1)[:, keep]
        torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance, msg=name)
    figures = {"firing_rate": float(s_ref.detach().mean()), "diverged": agreement.neurons_diverged}
    if w is not None and agreement.neurons_diverged == 0:
        got, want = w_impl.grad.double().cpu(), w_ref.grad
        torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance, msg="dw")
        significant = want.abs() > tolerance
        assert torch.equal(got.sign()[significant], want.sign()[significant]), "dw sign"
        figures["dw_relative"] = float(((got - want).abs() / want.abs().clamp_min(1e-12)).max())
    return figures
