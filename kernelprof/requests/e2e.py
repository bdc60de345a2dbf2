"""``kernelprof e2e``'s request: the same network trained by each framework (direct), or one ANN
converted by each (conversion)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kernelprof.requests.neuron import E2E_NEURONS, default_device, device
from kernelprof.requests.options import (
    Command,
    Request,
    RequestError,
    at_least,
    names,
    one_of,
    option,
    output_format,
    path,
    positive,
    whole_number,
)
from kernelprof.requests.outputs import writable_file, writable_folder

DATASETS = ("mnist", "fmnist", "cifar10", "digits", "synthetic")
MODES = ("direct", "conversion")
SETTINGS = ("canonical", "framework-defaults")
# The frameworks `kernelprof e2e` runs when --frameworks is not given, per mode.
DEFAULT_FRAMEWORKS = {
    "direct": ("spikingjelly", "snntorch", "norse", "lava-dl", "reference"),
    "conversion": ("spikingjelly", "sinabs", "lava-dl", "reference"),
}


def known_frameworks(mode: str) -> list[str]:
    """The frameworks that can run in ``mode``: e2e networks (direct) or conversion routes."""
    from kernelprof.frameworks import registry

    return list(registry.networks() if mode == "direct" else registry.conversion_routes())


def optional_count(value, flag: str) -> int | None:
    return at_least(1)(value, flag)


@dataclasses.dataclass(frozen=True, kw_only=True)
class E2ERequest(Request):
    COMMAND = "e2e"

    model: str = option("cnn", "cnn or fc", parse=one_of("cnn", "fc"), metavar="{cnn,fc}")
    dataset: str = option("digits", ", ".join(DATASETS), parse=one_of(*DATASETS))
    data_dir: Path | None = option(None, "where datasets are (or go)", parse=path)
    frameworks: tuple[str, ...] | None = option(
        None, "comma list of e2e networks (direct) or conversion routes (conversion), as listed "
        f"by `kernelprof frameworks`. Default: {','.join(DEFAULT_FRAMEWORKS['direct'])} "
        f"(direct), {','.join(DEFAULT_FRAMEWORKS['conversion'])} (conversion)",
        parse=names)  # fmt: skip
    mode: str = option("direct", "direct: surrogate-gradient BPTT; conversion: train the ANN "
                       "once, convert it with each framework, report accuracy against T "
                       "(powers of two up to --T)", parse=one_of(*MODES),
                       metavar="{direct,conversion}")  # fmt: skip
    neuron: str = option("lif", f"the networks' spiking neuron in direct training "
                         f"({', '.join(E2E_NEURONS)}; canonical: tau 2 or PLIF's tau0 2, hard "
                         "reset to 0, superspike(1); CUBA's tau_syn 4, ALIF's tau_a 20 and "
                         "beta_a 0.1)", parse=one_of(*E2E_NEURONS))  # fmt: skip
    neuron_setting: str = option(
        "canonical", "canonical: the same neuron in every framework (differences are speed only); "
        "framework-defaults: each framework's neuron as its documentation builds it by default, "
        "with how it differs from the canonical one (direct mode)", parse=one_of(*SETTINGS),
        metavar="{canonical,framework-defaults}")  # fmt: skip
    epochs: int = option(1, "training epochs", parse=at_least(1))
    max_steps: int | None = option(None, "stop each run after this many training steps",
                                   parse=optional_count, aliases=("--steps",))  # fmt: skip
    T: int = option(8, "time steps", parse=at_least(1))
    batch_size: int = option(64, "samples per training step", parse=at_least(1))
    lr: float = option(1e-2, "Adam learning rate", parse=positive)
    weight_gain: float = option(4.0, "scale of the kaiming initial weights (1 leaves deep layers "
                                "silent)", parse=positive)  # fmt: skip
    limit_train: int | None = option(None, "train on this many images at most",
                                     parse=optional_count)  # fmt: skip
    limit_test: int | None = option(None, "test on this many images at most",
                                    parse=optional_count)  # fmt: skip
    device: str | None = option(None, "cpu or cuda (default: cuda if present)", parse=device)
    seed: int = option(0, "seed of the weights and the data order", parse=whole_number)
    out: Path | None = option(None, "also write the results (JSON) here", parse=path)
    trace_dir: Path | None = option(None, "write the Chrome traces of the profiled training "
                                    "steps per framework here", parse=path)  # fmt: skip
    timeout: float = option(3600.0, "seconds per framework", parse=positive)

    def check(self) -> None:
        if self.device is None:
            object.__setattr__(self, "device", default_device())
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise RequestError(f"--data-dir: {self.data_dir} is not a folder")
        direct = self.mode == "direct"
        valid = known_frameworks(self.mode)
        chosen = self.frameworks if self.frameworks is not None else DEFAULT_FRAMEWORKS[self.mode]
        if not chosen:
            raise RequestError("--frameworks: name at least one framework")
        for framework in chosen:
            if framework not in valid:
                raise RequestError(f"--frameworks: unknown {framework!r} for --mode {self.mode} "
                                   f"(valid: {', '.join(valid)})")  # fmt: skip
        object.__setattr__(self, "frameworks", tuple(chosen))
        if not direct and self.neuron_setting != "canonical":
            raise RequestError("--neuron-setting framework-defaults is for --mode direct: each "
                               "converter builds its own spiking neurons")  # fmt: skip
        if not direct and self.neuron != "lif":
            raise RequestError(f"--neuron {self.neuron}: is for --mode direct; each converter "
                               "builds its own IF neurons")  # fmt: skip
        if not direct and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RequestError("--mode conversion runs in one process: torchrun is for direct "
                               "training")  # fmt: skip
        if self.out is not None:
            writable_file(self.out, "--out")
        if self.trace_dir is not None:
            writable_folder(self.trace_dir, "--trace-dir")


COMMAND = Command(
    name="e2e",
    help="train the same network with each framework; attribute the step-time differences",
    description="Trains the same network (same seeded weights, data order, encoding, loss and "
    "optimizer) with each framework in its own worker, times epochs and steps, splits a step "
    "into categories of work and attributes each framework's difference from the fastest to "
    "them.",
    request=E2ERequest,
    display=(output_format("table", "json", "md"),),
)
