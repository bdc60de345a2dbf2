"""ANN-to-SNN conversion (``kernelprof e2e --mode conversion``).

The ANN twin of a :class:`~kernelprof.e2e.networks.NetworkSpec` (ReLU where the spec has LIF,
the same seeded initial weights, no biases) is trained once with Adam on cross-entropy. Each
framework's converter then turns that same trained ANN into an SNN, which is run on the test set
for up to ``T`` steps with the static image as input current at every step; the logits are the
mean of the readout over the steps so far, so one pass gives the accuracy at every T <= T max.

Converters, each with its documented defaults and the same calibration data (the first
``CALIBRATION_SAMPLES`` training samples) and activation percentile (``PERCENTILE``):

* spikingjelly: ``ann2snn.FXConverter(RateCodingRecipe(loader, mode="99.9%"))``: each ReLU
  becomes scale(1/s) -> IFNode (soft reset, threshold 1) -> scale(s), s the layer's activation
  percentile (a running average over calibration batches, momentum 0.1). Run step by step.
* sinabs: ``sinabs.utils.normalize_weights`` (weights rescaled so each layer's activation
  percentile is 1), then ``sinabs.from_model`` with its defaults: IAFSqueeze neurons, MultiSpike
  (several spikes per step where v allows), MembraneSubtract, threshold 1, v >= -1. Run on all
  T steps at once, batch and time folded.
* reference: kernelprof's own rate-coding conversion, written from Rueckauer et al. (2017):
  each ReLU becomes an integrate-and-fire neuron with threshold = the layer's activation
  percentile over the calibration set, soft reset, emitting spikes of that height (so the rate
  approximates the ReLU). It is the yardstick the framework converters are compared with.

snnTorch and Norse ship no converter; lava-dl's ANN-to-SNN route (``lava.lib.dl.bootstrap``)
trains the SNN itself in ANN, SAMPLE and FIT modes, which is training rather than converting a
trained ANN. Those rows say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kernelprof.e2e.data import Dataset, batches
from kernelprof.e2e.networks import POOL, NetworkSpec, initial_weights
from kernelprof.e2e.train import evaluate
from kernelprof.harness.timer import synchronize
from kernelprof.impls.registry import Requirement, Unsupported

CALIBRATION_SAMPLES = 512
PERCENTILE = 99.9
CONVERTERS = ("spikingjelly", "sinabs", "reference")
NO_CONVERTER = {
    "snntorch": "snnTorch ships no ANN-to-SNN converter",
    "norse": "Norse ships no ANN-to-SNN converter",
    "lava-dl": (
        "lava-dl has no converter for a trained ANN: its ANN-to-SNN route, lava.lib.dl.bootstrap, "
        "trains the SNN itself (ANN, SAMPLE and FIT modes of its CUBA blocks)"
    ),
    "reference-compile": "conversion uses integrate-and-fire neurons, not the compiled LIF kernel",
}
REQUIREMENTS = {
    "spikingjelly": Requirement("spikingjelly", ">=2.0,<3"),
    "sinabs": Requirement("sinabs", ">=3"),
}


def build_ann(spec: NetworkSpec, seed: int) -> nn.Sequential:
    """The spec with ReLU for LIF, as an ``nn.Sequential``, with the seeded initial weights."""
    modules: list[nn.Module] = []
    weights = initial_weights(spec, seed)
    for layer in spec.plan():
        if layer.category == "conv":
            module = nn.Conv2d(layer.in_shape[0], layer.out_shape[0], 3, padding=1, bias=False)
        elif layer.category in ("linear", "readout"):
            module = nn.Linear(layer.in_shape[0], layer.out_shape[0], bias=False)
        elif layer.category == "lif":
            module = nn.ReLU()
        elif layer.category == "pool":
            module = nn.AvgPool2d(POOL)
        else:
            module = nn.Flatten()
        if layer.name in weights:
            with torch.no_grad():
                module.weight.copy_(weights[layer.name])
        modules.append(module)
    return nn.Sequential(*modules)


def train_ann(
    ann: nn.Module,
    data: Dataset,
    *,
    device: torch.device,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Adam on cross-entropy; returns epoch and step times, samples/s and test accuracy."""
    ann.to(device).train()
    optimizer = torch.optim.Adam(ann.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    epoch_times, step_times, steps = [], [], 0
    for epoch in range(epochs):
        synchronize(device)
        epoch_start = time.perf_counter()
        order = seed + epoch  # a fresh order each epoch, as in direct training
        for x, y in batches(data.train_x, data.train_y, batch_size, shuffle=True, seed=order):
            if max_steps is not None and steps >= max_steps:
                break
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(ann(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            synchronize(device)
            step_times.append(time.perf_counter() - start)
            steps += 1
        epoch_times.append(time.perf_counter() - epoch_start)
    ann.eval()
    step_median = sorted(step_times)[len(step_times) // 2] if step_times else None
    return {
        "epochs": epochs,
        "steps": steps,
        "epoch_s": epoch_times,
        "step_median_s": step_median,
        "samples_per_s": None if not step_median else batch_size / step_median,
        "test_accuracy": evaluate(ann, data, device, batch_size),
    }


def checkpoints(max_steps: int) -> list[int]:
    """The T at which accuracy is reported: powers of two below ``max_steps``, and it."""
    if max_steps < 1:
        raise ValueError(f"T must be >= 1, got {max_steps}")
    points = []
    t = 1
    while t < max_steps:
        points.append(t)
        t *= 2
    return [*points, max_steps]


# ---- the SNNs ----------------------------------------------------------------------------------


class ConvertedSNN:
    """A converted network: ``readout(x, steps)`` gives the readout at every step,
    [steps, B, classes], from a fresh state. ``notes`` say how it was converted."""

    def __init__(self, readout: Callable[[torch.Tensor, int], torch.Tensor], notes: list[str]):
        self.readout = readout
        self.notes = notes


def calibration_batches(data: Dataset, batch_size: int) -> list[torch.Tensor]:
    x = data.train_x[:CALIBRATION_SAMPLES]
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]


def activation_percentiles(ann: nn.Sequential, calibration: list[torch.Tensor]) -> list[float]:
    """Per ReLU, in order: the PERCENTILE-th percentile of its outputs over the calibration set."""
    outputs: dict[int, list[torch.Tensor]] = {}
    handles = []
    for index, module in enumerate(ann):
        if isinstance(module, nn.ReLU):
            outputs[index] = []
            handles.append(
                module.register_forward_hook(
                    lambda m, a, out, index=index: outputs[index].append(out.detach().flatten())
                )
            )
    try:
        with torch.no_grad():
            for x in calibration:
                ann(x)
    finally:
        for handle in handles:
            handle.remove()
    levels = []
    for index in sorted(outputs):
        values = torch.cat(outputs[index]).float()
        # torch.quantile refuses very large inputs; kthvalue gives the same order statistic
        k = max(1, min(values.numel(), round(PERCENTILE / 100 * values.numel())))
        levels.append(max(float(values.kthvalue(k).values), 1e-6))
    return levels


class IFNeuron(nn.Module):
    """Integrate-and-fire, soft reset, threshold ``level``, spikes of height ``level``."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level
        self.v: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x if self.v is None else self.v + x
        spikes = (v >= self.level).to(x.dtype)
        self.v = v - spikes * self.level
        return spikes * self.level


def convert_reference(ann: nn.Sequential, calibration: list[torch.Tensor]) -> ConvertedSNN:
    levels = iter(activation_percentiles(ann, calibration))
    snn = nn.Sequential(
        *[IFNeuron(next(levels)) if isinstance(m, nn.ReLU) else m for m in ann]
    ).eval()

    @torch.no_grad()
    def readout(x: torch.Tensor, steps: int) -> torch.Tensor:
        for module in snn:
            if isinstance(module, IFNeuron):
                module.v = None
        return torch.stack([snn(x) for _ in range(steps)])

    levels_text = ", ".join(f"{m.level:.3g}" for m in snn if isinstance(m, IFNeuron))
    return ConvertedSNN(
        readout,
        [f"reference: IF neurons, soft reset, thresholds = {PERCENTILE}th percentile "
         f"activations ({levels_text})"],
    )  # fmt: skip


def convert_spikingjelly(ann: nn.Sequential, calibration: list[torch.Tensor]) -> ConvertedSNN:
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.ann2snn import FXConverter, RateCodingRecipe

    device = next(ann.parameters()).device
    recipe = RateCodingRecipe([x.to(device) for x in calibration], mode=f"{PERCENTILE}%")
    snn = FXConverter(recipe, device=device).convert(ann).eval()

    @torch.no_grad()
    def readout(x: torch.Tensor, steps: int) -> torch.Tensor:
        functional.reset_net(snn)
        return torch.stack([snn(x) for _ in range(steps)])

    return ConvertedSNN(
        readout,
        [f"spikingjelly: FXConverter(RateCodingRecipe(mode='{PERCENTILE}%')): ReLU -> "
         "scale(1/s) -> IFNode(soft reset) -> scale(s), run step by step"],
    )  # fmt: skip


def convert_sinabs(
    ann: nn.Sequential, calibration: list[torch.Tensor], spec: NetworkSpec
) -> ConvertedSNN:
    import copy

    import sinabs
    from sinabs.utils import normalize_weights

    device = next(ann.parameters()).device
    ann = copy.deepcopy(ann)  # normalize_weights rescales in place
    names = [name for name, _ in ann.named_children()]
    relus = [i for i, m in enumerate(ann) if isinstance(m, nn.ReLU)]
    params = [max(j for j in range(i) if isinstance(ann[j], (nn.Conv2d, nn.Linear))) for i in relus]
    normalize_weights(
        ann,
        torch.cat(calibration).to(device),
        output_layers=[names[i] for i in relus],
        param_layers=[names[j] for j in params],
        percentile=PERCENTILE,
    )
    converted: dict[int, Any] = {}

    @torch.no_grad()
    def readout(x: torch.Tensor, steps: int) -> torch.Tensor:
        if steps not in converted:  # IAFSqueeze folds batch and time: built per T
            converted[steps] = sinabs.from_model(
                ann, input_shape=spec.input_shape, num_timesteps=steps
            ).to(device)
        network = converted[steps]
        network.reset_states()
        folded = x.unsqueeze(1).expand(-1, steps, *x.shape[1:]).flatten(0, 1)
        return network(folded).unflatten(0, (x.shape[0], steps)).transpose(0, 1)

    return ConvertedSNN(
        readout,
        [f"sinabs: normalize_weights(percentile={PERCENTILE}) then from_model defaults "
         "(IAFSqueeze, MultiSpike, MembraneSubtract, threshold 1, min_v_mem -1)"],
    )  # fmt: skip


def check_route(framework: str) -> None:
    """Raises Unsupported when ``framework`` has no converter, RuntimeError when its package is
    missing: cheap, so a worker can say so before loading any data."""
    if framework in NO_CONVERTER:
        raise Unsupported(NO_CONVERTER[framework])
    if framework not in CONVERTERS:
        raise ValueError(f"no conversion route named {framework!r}")
    requirement = REQUIREMENTS.get(framework)
    if requirement is not None and (problem := requirement.problem()) is not None:
        raise RuntimeError(f"{framework} is unavailable: {problem}")


def convert(
    framework: str, ann: nn.Sequential, calibration: list[torch.Tensor], spec: NetworkSpec
) -> ConvertedSNN:
    """``framework``'s conversion of the trained ``ann``; Unsupported where it has none."""
    check_route(framework)
    if framework == "spikingjelly":
        return convert_spikingjelly(ann, calibration)
    if framework == "sinabs":
        return convert_sinabs(ann, calibration, spec)
    return convert_reference(ann, calibration)


def evaluate_over_t(
    snn: ConvertedSNN,
    data: Dataset,
    *,
    device: torch.device,
    steps: int,
    batch_size: int,
    limit: int | None = None,
) -> dict[str, Any]:
    """Test accuracy at every checkpoint T <= ``steps`` in one pass; time per batch at ``steps``."""
    points = checkpoints(steps)
    correct = dict.fromkeys(points, 0)
    count = 0
    batch_times = []
    for x, y in batches(data.test_x[:limit], data.test_y[:limit], batch_size, shuffle=False,
                        seed=0):  # fmt: skip
        x, y = x.to(device), y.to(device)
        synchronize(device)
        start = time.perf_counter()
        outputs = snn.readout(x, steps)
        synchronize(device)
        batch_times.append(time.perf_counter() - start)
        running = outputs.cumsum(0)
        for t in points:
            correct[t] += int((running[t - 1].argmax(dim=1) == y).sum())
        count += len(y)
    median = sorted(batch_times)[len(batch_times) // 2]
    return {
        "accuracy_by_T": {str(t): correct[t] / count for t in points},
        "test_accuracy": correct[steps] / count,
        "inference_batch_median_s": median,
        "inference_samples_per_s": batch_size / median,
        "test_samples": count,
    }


def save_ann(ann: nn.Module, path: Path) -> None:
    torch.save({k: v.cpu() for k, v in ann.state_dict().items()}, path)


def load_ann(spec: NetworkSpec, seed: int, path: Path, device: torch.device) -> nn.Sequential:
    ann = build_ann(spec, seed)
    ann.load_state_dict(torch.load(path, weights_only=True))
    return ann.to(device).eval()
