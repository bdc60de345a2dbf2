"""The options ``check`` and ``compare`` share: which neuron model and config, which
implementations, on which device, and how their workers run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from kernelprof.requests.options import (
    Request,
    RequestError,
    flag_value,
    names,
    number,
    one_of,
    option,
    positive,
    whole_number,
)
from kernelprof.results.record import FrozenDict
from reference_kernels.model import (
    DEFAULT_ALPHA,
    NEURONS,
    SURROGATES,
    NeuronConfig,
    make_config,
)

# The neurons the e2e networks (e2e, study) train with (a network that cannot build one says so
# in its row); check and compare take every NEURONS.
E2E_NEURONS = ("if", "lif", "plif", "cuba", "alif")
DTYPES = ("fp32", "fp16", "bf16")
# SuperSpike with alpha 1 is the one surrogate SpikingJelly, snnTorch and Norse all express
# exactly (Norse 1.1's 'super' ignores alpha; SpikingJelly's SuperSpike(a) is a/(1+|x|)^2).
COMMON_SURROGATE = "superspike:1"


def surrogate(value: Any, flag: str) -> str:
    """NAME or NAME:ALPHA, normalised to NAME:ALPHA."""
    name, _, alpha = str(value).partition(":")
    if name not in SURROGATES:
        raise RequestError(f"{flag}: unknown {name!r} (choose from {', '.join(SURROGATES)})")
    try:
        alpha_value = float(alpha) if alpha else DEFAULT_ALPHA[name]
    except ValueError:
        raise RequestError(f"{flag}: alpha {alpha!r} is not a number") from None
    return f"{name}:{alpha_value:g}"


def device(value: Any, flag: str) -> str:
    """'cpu' or 'cuda[:N]', usable here; the default device is resolved by the request."""
    import torch

    text = str(value)
    try:
        parsed = torch.device(text)
    except RuntimeError:
        raise RequestError(f"{flag}: unknown device {text!r} (use cpu or cuda)") from None
    if parsed.type not in ("cpu", "cuda"):
        raise RequestError(f"{flag}: {text!r} is not supported (use cpu or cuda)")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise RequestError(f"{flag}: cuda was asked for, but torch sees no CUDA device")
    return str(parsed)


def default_device() -> str:
    """CUDA when present, else CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def interpreters(value: Any, flag: str) -> Mapping[str, str]:
    """IMPL=PATH items (repeatable) as {impl: path}."""
    items = [value] if isinstance(value, str) else list(value)
    if isinstance(value, dict):
        items = [f"{impl}={where}" for impl, where in value.items()]
    found = {}
    for item in items:
        impl, sep, where = str(item).partition("=")
        if not sep or not impl or not where:
            raise RequestError(f"{flag}: expected IMPL=PATH, got {item!r}")
        found[impl] = where
    return FrozenDict(found)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NeuronOptions(Request):
    """The neuron model, its config, and the implementations to run, on one device."""

    neuron: str = option("lif", f"neuron model ({', '.join(NEURONS)})", parse=one_of(*NEURONS))
    impls: tuple[str, ...] | None = option(
        None, "comma list of implementations (default: all; `kernelprof frameworks` lists "
        "them)", parse=names)  # fmt: skip
    skip: tuple[str, ...] = option((), "comma list of implementations to leave out", parse=names)
    device: str | None = option(None, "cpu or cuda (default: cuda if present)", parse=device)
    reset: str = option("hard", "hard or soft", parse=one_of("hard", "soft"), metavar="{hard,soft}")
    v_reset: float = option(0.0, "V_reset for hard reset", parse=number)
    detach_reset: bool = option(False, "detach the reset from the graph", parse=flag_value,
                                action="store_true")  # fmt: skip
    no_decay_input: bool = option(False, "charge with H = V - (V - V_r)/tau + X instead of "
                                  "H = V + (X - (V - V_r))/tau", parse=flag_value,
                                  action="store_true")  # fmt: skip
    tau: float = option(2.0, "membrane time constant (PLIF: tau0, where its learnable decay "
                        "starts; IF has none)", parse=number)  # fmt: skip
    per_channel: bool = option(False, "PLIF: one learnable decay per channel instead of one",
                               parse=flag_value, action="store_true")  # fmt: skip
    tau_syn: float | None = option(None, "CUBA: the synaptic current's time constant (>= 1; "
                                   "default 4)", parse=number)  # fmt: skip
    tau_a: float | None = option(None, "ALIF: the adaptation's time constant (>= 1; default 20)",
                                 parse=number)  # fmt: skip
    beta_a: float | None = option(None, "ALIF: how far one unit of adaptation raises the "
                                  "threshold (default 0.1)", parse=number)  # fmt: skip
    detach_adaptation: bool = option(False, "ALIF: no gradient through the adaptation",
                                     parse=flag_value, action="store_true")  # fmt: skip
    v_threshold: float = option(1.0, "firing threshold", parse=number)
    surrogate: str = option(COMMON_SURROGATE, "NAME[:ALPHA], e.g. atan:2", parse=surrogate)
    seed: int = option(0, "seed of the inputs", parse=whole_number)
    python: Mapping[str, str] = option(
        help="run IMPL's worker under another interpreter (repeatable)", factory=FrozenDict,
        parse=interpreters, action="append", metavar="IMPL=PATH")  # fmt: skip
    timeout: float = option(600.0, "seconds per implementation", parse=positive)

    def check(self) -> None:
        from kernelprof.frameworks import registry

        if self.device is None:
            object.__setattr__(self, "device", default_device())  # the default, resolved
        valid = list(registry.implementations())
        for impl in (*(self.impls or ()), *self.skip):
            if impl not in valid:
                raise RequestError(f"unknown implementation {impl!r} (valid: {', '.join(valid)})")
        chosen = valid if self.impls is None else self.impls
        object.__setattr__(self, "impls", tuple(i for i in chosen if i not in self.skip))
        if not self.impls:
            raise RequestError("--impls: no implementation left to run")
        for impl in self.python:
            if impl not in valid:
                raise RequestError(f"--python: expected IMPL=PATH with IMPL one of "
                                   f"{', '.join(valid)}")  # fmt: skip
        chosen = self.neurons
        if chosen == ("if",) and self.no_decay_input:
            raise RequestError("--no-decay-input: IF has no decay (H = V + X)")
        if self.per_channel and "plif" not in chosen:
            raise RequestError(f"--per-channel: only PLIF learns a decay, not "
                               f"{'/'.join(n.upper() for n in chosen)}")  # fmt: skip
        for flag, value, owner in (("--tau-syn", self.tau_syn, "cuba"),
                                   ("--tau-a", self.tau_a, "alif"),
                                   ("--beta-a", self.beta_a, "alif"),
                                   ("--detach-adaptation", self.detach_adaptation or None,
                                    "alif")):  # fmt: skip
            if value is not None and owner not in chosen:
                raise RequestError(f"{flag}: only {owner.upper()} has it, not "
                                   f"{'/'.join(n.upper() for n in chosen)}")  # fmt: skip
        for neuron in chosen:
            self.config_for(neuron)  # a config the model refuses is refused here

    def _own_fields(self) -> dict:
        """CUBA's and ALIF's own fields where given (their defaults otherwise)."""
        fields = {"tau_syn": self.tau_syn, "tau_a": self.tau_a, "beta_a": self.beta_a,
                  "detach_adaptation": self.detach_adaptation or None}  # fmt: skip
        return {name: value for name, value in fields.items() if value is not None}

    @property
    def neurons(self) -> tuple[str, ...]:
        """The neuron models asked for, in order (compare sweeps a comma list)."""
        return self.neuron if isinstance(self.neuron, tuple) else (self.neuron,)

    @cached_property
    def config(self) -> NeuronConfig:
        """The first neuron's config (check's only one)."""
        return self.config_for(self.neurons[0])

    def config_for(self, neuron: str) -> NeuronConfig:
        """``neuron``'s canonical config from the shared options (IF ignores the decay's)."""
        name, _, alpha = self.surrogate.partition(":")
        common = {
            "v_threshold": self.v_threshold,
            "v_reset": None if self.reset == "soft" else self.v_reset,
            "detach_reset": self.detach_reset,
            "surrogate": name,
            "alpha": float(alpha),
        }
        try:
            return make_config(neuron, tau=self.tau, decay_input=not self.no_decay_input,
                               per_channel=self.per_channel, neuron_fields=self._own_fields(),
                               **common)  # fmt: skip
        except ValueError as error:
            raise RequestError(
                str(error).replace("tau (tau0 of PLIF)", "--tau (tau0 of PLIF)")
            ) from None
