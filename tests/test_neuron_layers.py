"""Each framework's ``neuron_layers`` (what ``kernelprof profile`` recognises) on its real modules.

For every framework whose package is installed: one or two of its neuron modules, built and
called once on a small CPU tensor as its users do, are recognised by ``classes()`` (a user's
subclass too, a plain nn.Linear not), ``time_steps`` gives the T of that call (T, the batch and
the neuron count all differ, so a wrong axis fails) and ``path`` says what the module ran. The
frameworks' packages are real import names, and the framework modules import without them.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from kernelprof.frameworks import registry

T, B, N = 5, 2, 3  # distinct, so that a time_steps reading the wrong axis fails
DECLARING = ("spikingjelly", "snntorch", "norse", "lava_dl", "sinabs", "braincog", "rockpool")


def layers_of(module_name: str):
    """The framework's NeuronLayers; skips (with the framework's own reason) where it is not
    installed."""
    framework = importlib.import_module(f"kernelprof.frameworks.{module_name}").FRAMEWORK
    problem = framework.problem()
    if problem is not None:
        pytest.skip(problem)
    assert framework.neuron_layers is not None
    return framework.neuron_layers


def recognised(layers, module: nn.Module, args: tuple, steps: int | None) -> str:
    """Asserts what every neuron module must satisfy; returns its path."""
    classes = layers.classes()
    assert classes and all(isinstance(cls, type) for cls in classes)
    assert isinstance(module, classes), f"{type(module).__name__} not recognised"
    assert not isinstance(nn.Linear(N, N), classes)
    assert layers.time_steps(module, args) == steps
    path = layers.path(module)
    assert isinstance(path, str) and path.strip()
    return path


def sequence(*shape: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(*shape) * 2.0  # reaches the thresholds: the neurons spike


# ---- SpikingJelly --------------------------------------------------------------------------------


def test_spikingjelly_multi_step_lif_node():
    layers = layers_of("spikingjelly")
    from spikingjelly.activation_based import functional, neuron

    node = neuron.LIFNode(step_mode="m")
    x = sequence(T, B, N)
    functional.reset_net(node)
    assert layers.path(node)  # before any call: what the call's input will decide
    spikes = node(x)
    assert spikes.shape == (T, B, N) and spikes.sum() > 0
    path = recognised(layers, node, (x,), T)
    # float32 on CPU with the default Sigmoid: the sj_lif op's torch reference (lif_multi_step)
    assert path == "python loop (CPU): torch reference of the sj_lif op, autograd per step"

    class Mine(neuron.LIFNode):
        pass

    mine = Mine(step_mode="m")
    mine(x)
    assert recognised(layers, mine, (x,), T) == path


def test_spikingjelly_single_step_and_other_nodes():
    layers = layers_of("spikingjelly")
    from spikingjelly.activation_based import functional, neuron

    x = sequence(T, B, N)
    node = neuron.IFNode()  # step_mode 's' (the default): the script loops over T
    functional.reset_net(node)
    for t in range(T):
        node(x[t])
    assert "single step per call" in recognised(layers, node, (x[-1],), None)

    plif = neuron.ParametricLIFNode(step_mode="m")
    plif(x)
    assert "sj_plif" in recognised(layers, plif, (x,), T)

    readout = neuron.NonSpikingLIFNode()  # a MultiStepModule: no step_mode, always [T, ...]
    readout(x)
    recognised(layers, readout, (x,), T)


def test_spikingjelly_every_neuron_class_is_covered():
    layers = layers_of("spikingjelly")
    from spikingjelly.activation_based import layer, neuron

    classes = layers.classes()
    exported = [
        obj
        for obj in vars(neuron).values()
        if isinstance(obj, type)
        and issubclass(obj, nn.Module)
        and obj.__module__.startswith("spikingjelly.activation_based.neuron")
    ]
    assert len(exported) > 30
    missed = [cls.__name__ for cls in exported if not issubclass(cls, classes)]
    assert missed == []
    assert not issubclass(layer.Linear, classes)
    assert layers.categories()[layer.Dropout] == "dropout"


# ---- snnTorch ------------------------------------------------------------------------------------


def test_snntorch_leaky_one_step_per_call():
    layers = layers_of("snntorch")
    import snntorch as snn

    lif = snn.Leaky(beta=0.9)
    x = sequence(T, B, N)
    mem = lif.reset_mem()
    for t in range(T):
        spk, mem = lif(x[t], mem)
    path = recognised(layers, lif, (x[-1], mem), None)
    assert path.startswith("per-step call: Leaky.forward")

    class Mine(snn.Leaky):
        pass

    mine = Mine(beta=0.5)
    spk, mem = mine(x[0], mine.reset_mem())
    recognised(layers, mine, (x[0], mem), None)


def test_snntorch_sequence_neurons():
    layers = layers_of("snntorch")
    import snntorch as snn

    x = sequence(T, B, N)
    state = snn.StateLeaky(beta=0.9, channels=N)
    spk, mem = state(x)
    assert spk.shape == (T, B, N)
    assert "conv1d" in recognised(layers, state, (x,), T)

    parallel = snn.LeakyParallel(input_size=N, hidden_size=4)
    assert parallel(x).shape == (T, B, 4)
    assert "nn.RNN" in recognised(layers, parallel, (x,), T)


# ---- Norse ---------------------------------------------------------------------------------------


def test_norse_lif_over_t_and_cell():
    layers = layers_of("norse")
    import norse.torch as norse_torch

    x = sequence(T, B, N)
    lif = norse_torch.LIF()
    spikes, _ = lif(x)
    assert spikes.shape == (T, B, N)
    assert "lif_feed_forward_step" in recognised(layers, lif, (x,), T)

    cell = norse_torch.LIFCell()
    state = None
    for t in range(T):
        _, state = cell(x[t], state)
    assert recognised(layers, cell, (x[-1], state), None).startswith("one step per call")

    class Mine(norse_torch.LIF):
        pass

    mine = Mine()
    mine(x)
    recognised(layers, mine, (x,), T)

    integrator = norse_torch.LI()  # a leaky integrator (no spikes): an SNN module, counted
    integrator(x)
    recognised(layers, integrator, (x,), T)


# ---- lava-dl -------------------------------------------------------------------------------------


def test_lava_dl_cuba_neuron_and_synapses():
    layers = layers_of("lava_dl")
    from lava.lib.dl import slayer

    from kernelprof.frameworks import lava_dl

    x = sequence(B, N, T)  # time-last [N, C, T]
    dense = slayer.synapse.Dense(N, 4)
    neuron = slayer.neuron.cuba.Neuron(threshold=0.5, current_decay=1.0, voltage_decay=0.1)
    spikes = neuron(dense(x))
    assert spikes.shape == (B, 4, T) and spikes.sum() > 0
    path = recognised(layers, neuron, (dense(x),), T)
    assert path == lava_dl.PATH_CPU

    categories = layers.categories()
    assert categories[type(dense)] == "linear"
    assert categories[slayer.synapse.Conv] == "conv"
    assert categories[slayer.synapse.Pool] == "pool"
    assert not isinstance(dense, layers.classes())
    assert isinstance(dense, nn.Conv3d)  # why the mapping is needed

    class Mine(slayer.neuron.cuba.Neuron):
        pass

    mine = Mine(threshold=0.5, current_decay=1.0, voltage_decay=0.1)
    mine(x)
    assert recognised(layers, mine, (x,), T) == lava_dl.PATH_CPU


# ---- Sinabs --------------------------------------------------------------------------------------


def test_sinabs_batch_first_and_squeeze_layers():
    layers = layers_of("sinabs")
    from sinabs import layers as sl

    x = sequence(B, T, N)  # batch-first [B, T, N]
    lif = sl.LIF(tau_mem=10.0)
    assert lif(x).shape == (B, T, N)
    assert "lif_forward" in recognised(layers, lif, (x,), T)

    folded = x.flatten(0, 1)  # [B*T, N]
    by_batch = sl.IAFSqueeze(batch_size=B)
    assert by_batch(folded).shape == (B * T, N)
    assert "Squeeze" in recognised(layers, by_batch, (folded,), T)
    by_steps = sl.IAFSqueeze(num_timesteps=T)
    by_steps(folded)
    recognised(layers, by_steps, (folded,), T)

    leak = sl.ExpLeak(tau_mem=5.0)  # a leaky integrator: counted, its path says it does not spike
    leak(x)
    assert "no spikes" in recognised(layers, leak, (x,), T)

    class Mine(sl.LIF):
        pass

    mine = Mine(tau_mem=10.0)
    mine(x)
    recognised(layers, mine, (x,), T)
    assert layers.categories()[sl.SumPool2d] == "pool"


# ---- BrainCog ------------------------------------------------------------------------------------


def test_braincog_lif_node_per_step_and_layer_by_layer():
    layers = layers_of("braincog")
    from braincog.base.node.node import LIFNode

    x = sequence(T, B, N)
    node = LIFNode()
    node.n_reset()
    for t in range(T):
        node(x[t])
    assert recognised(layers, node, (x[-1],), None).startswith("one step per call")

    whole = LIFNode(layer_by_layer=True, step=T)
    folded = x.flatten(0, 1)  # [(T*B), N]
    whole.n_reset()
    assert whole(folded).shape == (T * B, N)
    assert f"step={T}" in recognised(layers, whole, (folded,), T)

    class Mine(LIFNode):
        pass

    mine = Mine()
    mine(x[0])
    recognised(layers, mine, (x[0],), None)


# ---- Rockpool ------------------------------------------------------------------------------------


def test_rockpool_torch_modules():
    layers = layers_of("rockpool")
    from rockpool.nn.modules import LIFNeuronTorch, LIFTorch, LinearTorch

    x = sequence(B, T, N)  # batch-first [B, T, N]
    lif = LIFTorch(N)
    spikes, _, _ = lif(x)
    assert spikes.shape == (B, T, N)
    assert "recurrent matmul" in recognised(layers, lif, (x,), T)

    membrane = LIFNeuronTorch(N)
    membrane(x[0])  # [T, N]: Rockpool adds the batch
    assert "recurrent" not in recognised(layers, membrane, (x[0],), T)

    class Mine(LIFTorch):
        pass

    mine = Mine(N)
    mine(x)
    recognised(layers, mine, (x,), T)
    assert not isinstance(LinearTorch((N, N)), layers.classes())
    assert layers.categories()[LinearTorch] == "linear"


# ---- all frameworks ------------------------------------------------------------------------------


def test_declared_packages_are_import_names():
    frameworks = registry.frameworks()
    declared = {name for name, fw in frameworks.items() if fw.neuron_layers is not None}
    assert declared >= {"spikingjelly", "snntorch", "norse", "lava-dl", "sinabs", "braincog",
                        "rockpool"}  # fmt: skip
    assert frameworks["spyx"].neuron_layers is None  # JAX: no torch modules
    assert frameworks["reference"].neuron_layers is None
    for name in sorted(declared):
        framework = frameworks[name]
        if framework.problem(import_it=False) is None:
            package = framework.neuron_layers.package
            assert importlib.util.find_spec(package) is not None, (name, package)


def test_framework_modules_import_without_their_frameworks():
    """With every framework's package made unimportable, the framework modules still import and
    declare their neuron layers (the imports are inside the callables)."""
    blocked = ["spikingjelly", "snntorch", "norse", "lava", "sinabs", "braincog", "rockpool"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import importlib\n"
        f"for name in {list(DECLARING)!r}:\n"
        "    fw = importlib.import_module('kernelprof.frameworks.' + name).FRAMEWORK\n"
        "    assert fw.neuron_layers is not None, name\n"
        "    assert fw.problem() is not None, name\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
