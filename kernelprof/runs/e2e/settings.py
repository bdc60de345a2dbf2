"""The two neuron settings of ``kernelprof e2e`` and the study table.

* ``canonical``: every framework's network gets the same neuron (the run's IF, LIF or PLIF
  config, mapped onto each framework's parameters), so the frameworks differ in speed only.
* ``framework-defaults``: each framework's network gets its neuron as its own documentation
  builds it by default (its ``make_default_lif``, or ``make_default_neuron`` for IF and PLIF;
  the settings and where each is written are its module's ``defaults`` or
  ``neuron_defaults``). :func:`neuron_differences` says, for each framework, how that neuron
  differs from the canonical one: setting by setting, and measured with ``check``'s machinery
  (:func:`~kernelprof.verify.agreement.check_against_oracle`: the default neuron against the
  canonical float64 oracle on ``check``'s input), so an accuracy difference comes with its
  cause.
"""

from __future__ import annotations

import torch

from kernelprof.frameworks import registry
from kernelprof.inputs import lif_input
from kernelprof.results.e2e import NeuronCheck, NeuronDifferences, SettingDifference
from kernelprof.verify.agreement import check_against_oracle
from reference_kernels.model import NeuronConfig

CHECK_T, CHECK_NEURONS = 8, 4096  # the size of ``kernelprof check``'s default input


def canonical_value(config: NeuronConfig, field: str) -> str:
    """How the canonical config's ``field`` reads beside a framework's default."""
    if field == "surrogate":
        return f"{config.surrogate} (alpha={config.alpha:g})"
    if field == "v_reset":
        return "soft reset (subtract theta)" if config.v_reset is None else (
            f"{config.v_reset:g} (hard reset)")  # fmt: skip
    return repr(getattr(config, field))


def neuron_differences(network: str, canonical: NeuronConfig, seed: int = 0) -> NeuronDifferences:
    """How the e2e network ``network``'s framework-defaults neuron differs from ``canonical``:
    each written default against the canonical value it corresponds to, then the default neuron
    run against the canonical oracle on check's input (spike mismatch, firing rates, dX cosine).
    """
    framework = registry.networks()[network]
    known = framework.defaults_of(canonical.neuron)
    settings = tuple(
        SettingDifference(setting=d.setting, default=d.value, source=d.source,
                          canonical=canonical_value(canonical, d.canonical) if d.canonical
                          else None)
        for d in known.defaults
    )  # fmt: skip
    if known.neuron is None:
        return NeuronDifferences(settings=settings)
    x = lif_input((CHECK_T, CHECK_NEURONS), canonical, seed=seed)
    fired: list[torch.Tensor] = []

    def run(x_: torch.Tensor) -> tuple[torch.Tensor, None]:
        spikes = known.neuron(x_)
        fired.append(spikes.detach())
        return spikes, None

    result = check_against_oracle(run, x, canonical, seed=seed)
    check = NeuronCheck(
        input=f"check's input [T={CHECK_T}, N={CHECK_NEURONS}] for the canonical "
        f"{canonical.neuron.upper()}, seed {seed}",
        same_neuron=result.verdict in ("exact", "close"),
        verdict=result.verdict,
        spike_mismatch_fraction=result.spikes.mismatch_fraction,
        canonical_firing_rate=result.firing_rate,
        default_firing_rate=float(fired[0].float().mean()),
        grad_cosine=result.grad_cosine,
    )
    return NeuronDifferences(settings=settings, check=check)
