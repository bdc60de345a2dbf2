"""What one untimed step of a profile counts, layer by layer: memory saved for backward, spikes,
and the synaptic operations and MACs behind them.

The inspected step comes right after the warm-up, with every layer's forward wrapped as in a
profiled step but no profiler running, and it is never timed. In it:

* **Saved for backward**: autograd's saved-tensor hooks (``torch.autograd.graph.
  saved_tensors_hooks``) see every tensor a node keeps for the backward pass, custom autograd
  functions' ``ctx.save_for_backward`` included. Each is charged, once per storage, to the
  layer whose forward was running when it was saved (outside every layer: ``(outside
  layers)``); its bytes are its storage's, which is what stays alive until the backward. A
  saved tensor is followed until its node lets it go (a branch the loss never reaches is freed
  during the forward), and the figures are those of the moment the most was held at once.
  Parameters (the model's, views of them included, and any leaf that requires a gradient) are
  counted apart: they live whether or not anything trains. Tensors a custom function keeps as
  plain ``ctx`` attributes bypass the hooks and are not seen.
* **Spikes** of each neuron layer: its output (the first tensor of what it returns) when every
  value is 0 or 1; the firing rate at each time step (a multi-step call's time axis is the
  dimension holding its T, first or last; a call per time step is one time step); and the
  (sample, neuron) pairs that never fired in the step.
* **Operations** of each conv and linear layer, exactly, from its shape and a mask of its input
  (:func:`_operations`): binary input (spikes), the mask of the spikes gives the accumulates
  (synaptic operations: every spike times the outputs it reaches, padding and stride
  included); any other input, a mask of ones gives the dense MACs. The neuron layer whose
  output is the input (the same storage) is its source.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from kernelprof.results.profile import Inspection, LayerCounts

OUTSIDE = "(outside layers)"


@dataclass
class _Neuron:
    spikes: int = 0
    outputs: int = 0
    per_step: list[tuple[int, int]] = field(default_factory=list)  # (spikes, elements)
    fired: torch.Tensor | None = None  # (sample, neuron) pairs that fired, per-step calls
    pairs: list[tuple[int, int]] = field(default_factory=list)  # (fired, all) per call
    binary: bool = True


@dataclass
class _Synaptic:
    synops: int = 0
    macs: int = 0
    sources: set[str] = field(default_factory=set)


class Inspector:
    """Counts what one step does; ``layer()`` names the layer whose forward is running."""

    def __init__(self, layer, time_steps, parameters=()) -> None:
        self._layer = layer  # () -> the running layer's name, or None
        self._time_steps = time_steps  # (name, module, args) -> T of one call, or None
        # the model's parameters' storages: a weight saved as a view (``weight.t()``) is not new
        self._parameters = {(str(p.device), p.untyped_storage().data_ptr()) for p in parameters}
        self.saved: dict[str, int] = {}  # by layer, when the most was held at once
        self.parameter_bytes = 0
        self._parameters_seen: set[tuple[str, int]] = set()
        self._live: dict[tuple[str, int], list] = {}  # storage -> [holders, bytes, layer]
        self._live_by_layer: dict[str, int] = defaultdict(int)
        self._live_total = 0
        self._most = -1
        self.neurons: dict[str, _Neuron] = {}
        self.synaptic: dict[str, _Synaptic] = {}
        self.spike_storages: dict[int, str] = {}  # a neuron output's storage -> its layer
        self.problems: list[str] = []
        self._input_shape: tuple[int, ...] | None = None  # the model's first input
        self._time_steps_seen: set[int] = set()
        self._uncounted: set[str] = set()  # layers whose operations could not be counted
        self._hooks = None

    # ---- saved for backward -------------------------------------------------------------------

    def __enter__(self) -> Inspector:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._hooks is not None:
            self._hooks.__exit__(*exc)
            self._hooks = None

    def _pack(self, tensor: torch.Tensor):
        try:
            storage = tensor.untyped_storage()
            key = (str(tensor.device), storage.data_ptr())
            nbytes = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # a tensor with no storage (sparse, meta)
            return tensor
        if key in self._parameters or (tensor.is_leaf and tensor.requires_grad):
            if key not in self._parameters_seen:
                self._parameters_seen.add(key)
                self.parameter_bytes += nbytes
            return tensor
        live = self._live.get(key)
        if live is not None:  # another saved view of a storage already held
            live[0] += 1
        else:
            layer = self._layer() or OUTSIDE
            self._live[key] = [1, nbytes, layer]
            self._live_by_layer[layer] += nbytes
            self._live_total += nbytes
            if self._live_total > self._most:  # the most held at once so far, by layer
                self._most = self._live_total
                self.saved = {name: n for name, n in self._live_by_layer.items() if n}
        return _Held(self, key, tensor)

    def _release(self, key: tuple[str, int]) -> None:
        """A saved tensor's node let it go (its graph freed, or the backward done)."""
        live = self._live.get(key)
        if live is None:
            return
        live[0] -= 1
        if live[0] == 0:
            del self._live[key]
            self._live_by_layer[live[2]] -= live[1]
            self._live_total -= live[1]

    # ---- spikes and operations ----------------------------------------------------------------

    def model_input(self, args: tuple) -> None:
        x = _first_tensor(args)
        if x is not None and self._input_shape is None:
            self._input_shape = tuple(x.shape)

    def neuron_output(self, name: str, module: nn.Module, args: tuple, output) -> None:
        spikes = _first_tensor(output)
        if spikes is None:
            return
        counts = self.neurons.setdefault(name, _Neuron())
        with torch.no_grad():
            if counts.binary and not bool(((spikes == 0) | (spikes == 1)).all()):
                counts.binary = False
            if not counts.binary:
                return
            self.spike_storages[spikes.untyped_storage().data_ptr()] = name
            total = int(spikes.count_nonzero())
            counts.spikes += total
            counts.outputs += spikes.numel()
            steps = self._time_steps(name, module, args)
            axis = _time_axis(spikes, steps)
            if axis is not None:
                self._time_steps_seen.add(spikes.shape[axis])
            if axis is None:  # one time step a call: pairs fired over the calls
                counts.per_step.append((total, spikes.numel()))
                fired = spikes != 0
                counts.fired = fired if counts.fired is None or counts.fired.shape != \
                    fired.shape else counts.fired | fired  # fmt: skip
            else:
                moved = spikes.movedim(axis, 0).reshape(spikes.shape[axis], -1)
                per = moved.count_nonzero(dim=1).tolist()
                counts.per_step += [(int(n), moved.shape[1]) for n in per]
                counts.pairs.append((int((moved != 0).any(dim=0).sum()), moved.shape[1]))

    def synaptic_input(self, name: str, module: nn.Module, args: tuple) -> None:
        x = _first_tensor(args)
        if x is None or name in self._uncounted:
            return
        counts = self.synaptic.setdefault(name, _Synaptic())
        try:
            with torch.no_grad():
                spikes = bool(((x == 0) | (x == 1)).all())
                mask = (x != 0) if spikes else torch.ones_like(x, dtype=torch.bool)
                ops = _operations(module, mask)
            if spikes:
                counts.synops += ops
                source = self.spike_storages.get(x.untyped_storage().data_ptr())
                if source is not None:
                    counts.sources.add(source)
            else:
                counts.macs += ops
        except Exception as error:  # noqa: BLE001 - never break the user's step
            first = str(error).splitlines()[0] if str(error) else ""
            self.problems.append(f"{name}: operations not counted ({type(error).__name__}: "
                                 f"{first})")  # fmt: skip
            self.synaptic.pop(name, None)
            self._uncounted.add(name)  # said once, not at each of its calls

    # ---- the record ------------------------------------------------------------------------------

    def result(self, step: int, peak_bytes: int | None, peak_source: str) -> Inspection:
        names = list(dict.fromkeys([*self.saved, *self.neurons, *self.synaptic]))
        layers = []
        for name in names:
            neuron, synaptic = self.neurons.get(name), self.synaptic.get(name)
            spiking = neuron is not None and neuron.binary and neuron.outputs > 0
            layers.append(LayerCounts(
                name=name, saved_bytes=self.saved.get(name, 0),
                spikes=neuron.spikes if spiking else None,
                outputs=neuron.outputs if spiking else None,
                rate_per_step=tuple(n / all_ for n, all_ in neuron.per_step) if spiking else (),
                silent=_silent(neuron) if spiking else None,
                synops=synaptic.synops if synaptic else None,
                macs=synaptic.macs if synaptic else None,
                sources=tuple(sorted(synaptic.sources)) if synaptic else (),
            ))  # fmt: skip
        return Inspection(step=step, layers=tuple(layers), saved_bytes=sum(self.saved.values()),
                          parameter_bytes=self.parameter_bytes, peak_bytes=peak_bytes,
                          peak_source=peak_source, samples=self._samples(),
                          problems=tuple(self.problems))  # fmt: skip

    def _samples(self) -> int | None:
        """The batch: the model input's first dimension, or its second where the first is the
        time steps the neuron layers were given ([T, B, ...])."""
        shape = self._input_shape
        if not shape:
            return None
        if len(shape) > 1 and shape[0] in self._time_steps_seen:
            return shape[1]
        return shape[0]


class _Held:
    """What autograd keeps in place of a saved tensor: the tensor itself, and a note to the
    inspector when the node drops it, so that a storage freed in the forward (a branch the loss
    does not reach) is not counted as held, and an address used again is counted again."""

    __slots__ = ("inspector", "key", "tensor")

    def __init__(self, inspector: Inspector, key: tuple[str, int], tensor: torch.Tensor):
        self.inspector, self.key, self.tensor = inspector, key, tensor

    def __del__(self) -> None:
        self.inspector._release(self.key)


def _unpack(held) -> torch.Tensor:
    return held.tensor if isinstance(held, _Held) else held


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _time_axis(spikes: torch.Tensor, steps: int | None) -> int | None:
    """The dimension of a multi-step call's time steps (None: the call is one time step)."""
    if steps is None or steps <= 1 or spikes.dim() < 2:
        return None
    if spikes.shape[0] == steps:
        return 0
    if spikes.shape[-1] == steps:
        return spikes.dim() - 1
    return None


def _silent(neuron: _Neuron) -> float | None:
    if neuron.pairs:
        fired = sum(n for n, _ in neuron.pairs)
        return 1.0 - fired / sum(all_ for _, all_ in neuron.pairs)
    if neuron.fired is not None and neuron.fired.numel():
        return 1.0 - float(neuron.fired.float().mean())
    return None


_CONVOLUTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _operations(module: nn.Module, mask: torch.Tensor) -> int:
    """The accumulates a layer does on the nonzero entries of ``mask``, exactly, from its
    shape alone (not its forward, which may rescale or normalise its weight): a linear layer,
    every nonzero input times its outputs; a convolution, the convolution of the mask with a
    kernel of ones (stride, padding, dilation and groups its own), summed: every nonzero input
    times the outputs it reaches, borders included. A multi-step input ([T, B, C, ...]) is
    folded into the batch, as the layer folds it; missing spatial dimensions are 1."""
    if isinstance(module, nn.Linear):
        if mask.shape[-1] != module.in_features:
            raise ValueError(f"input's last dimension {mask.shape[-1]}, not in_features "
                             f"{module.in_features}")  # fmt: skip
        return int(mask.count_nonzero()) * module.out_features
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        dims = len(module.kernel_size)
        if module.padding_mode != "zeros" or dims not in _CONVOLUTIONS:
            raise ValueError(f"padding mode {module.padding_mode!r}, {dims}-d: not counted")
        if 2 <= mask.dim() < dims + 2 and mask.shape[1] == module.in_channels:
            # [B, C, T] into a 3-d convolution (lava-dl's synapses): the missing spatial
            # dimensions are 1, as the layer reshapes them
            mask = mask.reshape(*mask.shape[:2], *([1] * (dims + 2 - mask.dim())),
                                *mask.shape[2:])  # fmt: skip
        if mask.dim() < dims + 1 or mask.shape[-dims - 1] != module.in_channels:
            raise ValueError(f"input of shape {list(mask.shape)} for {module.in_channels} "
                             "channels")  # fmt: skip
        folded = mask.reshape(-1, *mask.shape[-dims - 1 :]).float()
        ones = torch.ones(module.out_channels, module.in_channels // module.groups,
                          *module.kernel_size, device=mask.device)  # fmt: skip
        counts = _CONVOLUTIONS[dims](folded, ones, None, module.stride, module.padding,
                                     module.dilation, module.groups)  # fmt: skip
        return int(round(float(counts.double().sum())))
    raise ValueError(f"{type(module).__name__} is neither a linear layer nor a convolution")
