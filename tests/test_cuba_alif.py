"""CUBA and ALIF, the canonical model: the oracle against loops written here from the issue's
equations (forward states and, by hand, the backward's adjoints), the configs' refusals, and the
frameworks' mappings (the fused kernels: tests/test_fused_states.py, tests/test_cuda_source.py)."""

from __future__ import annotations

import itertools

import pytest
import torch

import reference_kernels
from reference_kernels.model import ALIFConfig, CUBAConfig, LIFConfig, surrogate_grad

T, N = 12, 257
RESETS = ((0.0, False), (0.0, True), (None, False), (None, True), (-0.4, False))


def inputs(seed: int, mean: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Input currents and an upstream gradient, [T, N] float64."""
    generator = torch.Generator().manual_seed(seed)
    x = mean + std * torch.randn(T, N, generator=generator, dtype=torch.float64)
    return x, torch.randn(T, N, generator=generator, dtype=torch.float64)


def cuba_by_hand(x, gs, c: CUBAConfig):
    """Forward (S, V, I) and dX from the equations, the adjoints written out."""
    d_syn, d_mem = 1 - 1 / c.tau_syn, 1 - 1 / c.tau
    scale = 1 / c.tau if c.decay_input else 1.0
    v_r = 0.0 if c.v_reset is None else c.v_reset
    i, v = torch.zeros(N, dtype=x.dtype), torch.full((N,), v_r, dtype=x.dtype)
    hs, ss, vs, is_ = [], [], [], []
    for t in range(T):
        i = d_syn * i + x[t]
        h = v + (i - (v - v_r)) / c.tau if c.decay_input else v - (v - v_r) / c.tau + i
        s = (h >= c.v_threshold).double()
        v = h - s * c.v_threshold if c.v_reset is None else s * v_r + (1 - s) * h
        hs.append(h), ss.append(s), vs.append(v), is_.append(i)
    g_h_next, g_i_next, gx = torch.zeros(N, dtype=x.dtype), torch.zeros(N, dtype=x.dtype), []
    for t in reversed(range(T)):
        h, s = hs[t], ss[t]
        sg = surrogate_grad(h - c.v_threshold, c.surrogate, c.alpha)
        g_v = g_h_next * d_mem
        g_s = gs[t]
        if not c.detach_reset:
            g_s = g_s + g_v * (-c.v_threshold if c.v_reset is None else v_r - h)
        g_h = g_s * sg + g_v * (1.0 if c.v_reset is None else 1 - s)
        g_i = g_h * scale + g_i_next * d_syn
        gx.append(g_i)
        g_h_next, g_i_next = g_h, g_i
    return torch.stack(ss), torch.stack(vs), torch.stack(is_), torch.stack(gx[::-1])


def alif_by_hand(x, gs, c: ALIFConfig):
    """Forward (S, V, A) and dX from the equations, the adjoints written out."""
    d_a, d_mem = 1 - 1 / c.tau_a, 1 - 1 / c.tau
    v_r = 0.0 if c.v_reset is None else c.v_reset
    a, v = torch.zeros(N, dtype=x.dtype), torch.full((N,), v_r, dtype=x.dtype)
    rows = []
    for t in range(T):
        a_d = d_a * a
        theta = c.v_threshold + c.beta_a * a_d
        h = v + (x[t] - (v - v_r)) / c.tau if c.decay_input else v - (v - v_r) / c.tau + x[t]
        s = (h >= theta).double()
        v = h - s * theta if c.v_reset is None else s * v_r + (1 - s) * h
        a = a_d + s
        rows.append((h, theta, s, v, a))
    g_h_next, g_ad_next, gx = (torch.zeros(N, dtype=x.dtype) for _ in range(3))
    gx = []
    for t in reversed(range(T)):
        h, theta, s, _, _ = rows[t]
        sg = surrogate_grad(h - theta, c.surrogate, c.alpha)
        g_v = g_h_next * d_mem
        g_a = 0.0 if c.detach_adaptation else g_ad_next * d_a  # into A[t] = A_d[t] + S[t]
        g_s = gs[t] + g_a
        if not c.detach_reset:
            g_s = g_s + g_v * (-theta if c.v_reset is None else v_r - h)
        g_m = g_s * sg
        g_h = g_m + g_v * (1.0 if c.v_reset is None else 1 - s)
        g_theta = -g_m - (g_v * s if c.v_reset is None else 0.0)
        g_ad = g_theta * c.beta_a + g_a
        gx.append(g_h / c.tau if c.decay_input else g_h)
        g_h_next, g_ad_next = g_h, (torch.zeros_like(g_h) if c.detach_adaptation else g_ad)
    s, v, a = (torch.stack([row[i] for row in rows]) for i in (2, 3, 4))
    return s, v, a, torch.stack(gx[::-1])


def _cases(kind):
    for (v_reset, detach), decay_input, surrogate in itertools.product(
            RESETS, (True, False), ("sigmoid", "superspike")):  # fmt: skip
        common = dict(v_reset=v_reset, detach_reset=detach, decay_input=decay_input,
                      surrogate=surrogate, alpha=2.0)  # fmt: skip
        if kind == "cuba":
            yield CUBAConfig(tau=2.0, tau_syn=4.0, **common)
        else:
            for detach_a in (False, True):
                yield ALIFConfig(tau=2.0, tau_a=5.0, beta_a=0.3, detach_adaptation=detach_a,
                                 **common)  # fmt: skip


@pytest.mark.parametrize("config", list(_cases("cuba")), ids=str)
def test_cuba_oracle_is_the_equations(config):
    x, gs = inputs(1, 1.2, 1.5)  # I settles at tau_syn X (and V at I, or tau I)
    x = x / (config.tau_syn if config.decay_input else config.tau * config.tau_syn)
    xr = x.clone().requires_grad_()
    spikes, state = reference_kernels.multistep(xr, config, return_state=True)
    spikes.backward(gs)
    s, v, i, gx = cuba_by_hand(x, gs, config)
    assert 0.05 < float(s.mean()) < 0.6  # the neurons fire: a comparison that can fail
    assert torch.equal(spikes, s) and sorted(state) == ["i", "v"]
    torch.testing.assert_close(state["v"], v, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(state["i"], i, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(xr.grad, gx, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("config", list(_cases("alif")), ids=str)
def test_alif_oracle_is_the_equations(config):
    x, gs = inputs(2, 1.4, 1.0)
    x = x if config.decay_input else x / config.tau
    xr = x.clone().requires_grad_()
    spikes, state = reference_kernels.multistep(xr, config, return_state=True)
    spikes.backward(gs)
    s, v, a, gx = alif_by_hand(x, gs, config)
    assert 0.05 < float(s.mean()) < 0.6 and float(a.max()) > 1.0  # adaptation builds up
    assert torch.equal(spikes, s) and sorted(state) == ["a", "v"]
    torch.testing.assert_close(state["v"], v, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(state["a"], a, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(xr.grad, gx, atol=1e-10, rtol=1e-10)


def test_the_adaptation_changes_what_fires_and_its_gradient():
    """beta_a = 0 is LIF; a positive beta_a fires less; detach_adaptation changes dX only."""
    x, gs = inputs(3, 1.4, 1.0)
    lif = reference_kernels.multistep(x, LIFConfig(surrogate="atan", alpha=2.0))
    flat = reference_kernels.multistep(x, ALIFConfig(beta_a=0.0, surrogate="atan", alpha=2.0))
    adapting = ALIFConfig(beta_a=0.5, surrogate="atan", alpha=2.0)
    assert torch.equal(lif, flat)
    assert reference_kernels.multistep(x, adapting).sum() < lif.sum()
    grads = []
    for detach in (False, True):
        xr = x.clone().requires_grad_()
        config = ALIFConfig(beta_a=0.5, detach_adaptation=detach, surrogate="atan", alpha=2.0)
        reference_kernels.multistep(xr, config).backward(gs)
        grads.append(xr.grad)
    assert not torch.allclose(grads[0], grads[1])


@pytest.mark.parametrize(("make", "message"), [
    (lambda: CUBAConfig(tau_syn=0.5), "tau_syn must be a finite number >= 1"),
    (lambda: CUBAConfig(tau_syn=float("inf")), "tau_syn must be a finite number >= 1"),
    (lambda: ALIFConfig(tau_a=0.0), "tau_a must be a finite number >= 1"),
    (lambda: ALIFConfig(beta_a=float("nan")), "beta_a must be a finite number"),
    (lambda: ALIFConfig(detach_adaptation=1), "detach_adaptation must be True or False"),
])  # fmt: skip
def test_configs_refuse_what_has_no_meaning(make, message):
    with pytest.raises(ValueError, match=message):
        make()


COMPILED = [
    CUBAConfig(surrogate="atan", alpha=2.0),
    CUBAConfig(v_reset=None, decay_input=False, tau_syn=8.0),
    CUBAConfig(v_reset=-0.4, detach_reset=True, surrogate="piecewise_exp", alpha=2.0),
    ALIFConfig(surrogate="atan", alpha=2.0),
    ALIFConfig(v_reset=None, decay_input=False, beta_a=0.3, tau_a=5.0),
    ALIFConfig(v_reset=None, detach_reset=True, detach_adaptation=True, surrogate="superspike",
               alpha=1.0),
]  # fmt: skip


# Each (config, dtype) compiles its own pair of loops (15-20 s on 2 cores): one of each neuron in
# the default run, the rest under the slow marker (make test-slow, and the GPU check).
_FAST = {(0, torch.float32), (4, torch.float32)}


@pytest.mark.parametrize(("config", "dtype"), [
    pytest.param(config, dtype, id=f"{config.neuron}{index}-{str(dtype)[6:]}",
                 marks=() if (index, dtype) in _FAST else pytest.mark.slow)
    for index, config in enumerate(COMPILED) for dtype in (torch.float64, torch.float32)
])  # fmt: skip
def test_compile_runs_the_oracles_neuron_and_its_adjoints(config, dtype):
    """impl='compile' (one fused forward loop, one reverse-time backward loop) against the
    oracle: spikes equal, V and the second state and dX (upstream gradients on S, V and the
    state) within rounding."""
    from kernelprof.inputs import lif_input

    x = lif_input((8, 300), config, dtype=dtype, seed=4)
    generator = torch.Generator().manual_seed(5)
    upstream = [torch.randn(x.shape, generator=generator, dtype=dtype) for _ in range(3)]
    name = "i" if config.neuron == "cuba" else "a"
    out = {}
    for impl in ("torch", "compile"):
        xr = x.clone().requires_grad_()
        spikes, state = reference_kernels.multistep(xr, config, impl=impl, return_state=True)
        loss = spikes * upstream[0] + state["v"] * upstream[1] + state[name] * upstream[2]
        loss.sum().backward()
        out[impl] = (spikes, state["v"], state[name], xr.grad)
    assert 0.05 < float(out["torch"][0].mean()) < 0.7
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.equal(out["torch"][0], out["compile"][0])
    for got, want in zip(out["compile"][1:], out["torch"][1:], strict=True):
        torch.testing.assert_close(got, want, atol=tol, rtol=tol)


def test_compare_counts_alifs_saved_threshold_in_its_traffic():
    from kernelprof.requests.compare import CompareRequest
    from kernelprof.results.analysis import traffic_bytes

    request = CompareRequest(neuron="lif,cuba,alif", T=(8,), N=(1024,), device="cpu",
                             impls=("ref-torch",))  # fmt: skip
    request.check()
    bytes_of = {case.neuron: traffic_bytes(case)["fwd+bwd"] for case in request.cases}
    one_pass = 8 * 1024 * 4
    assert bytes_of == {"lif": 6 * one_pass, "cuba": 6 * one_pass, "alif": 8 * one_pass}
    detached = CompareRequest(neuron="alif", T=(8,), N=(1024,), device="cpu",
                              impls=("ref-torch",), detach_reset=True)  # fmt: skip
    detached.check()
    (case,) = detached.cases
    assert traffic_bytes(case)["fwd+bwd"] == 6 * one_pass


@pytest.mark.parametrize("neuron", [
    "cuba", pytest.param("alif", marks=pytest.mark.slow),  # the same path: 14 s each
])  # fmt: skip
def test_check_runs_the_reference_rows_and_says_why_the_others_cannot(neuron):
    import json

    from tests.cli_runner import run_in_process

    done = run_in_process("check", "--neuron", neuron, "--device", "cpu", "--N", "1024",
                          "--impls", "ref-torch,ref-triton,spikingjelly,braincog",
                          "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    rows = {row["impl"]: row for row in document["rows"]}
    assert document["config"]["neuron"] == neuron
    assert rows["ref-torch"]["verdict"] == "exact", rows["ref-torch"]
    assert rows["ref-triton"]["verdict"] in ("exact", "close"), rows["ref-triton"]
    refused = ("spikingjelly", "braincog") if neuron == "alif" else ("braincog",)
    for impl in refused:
        assert rows[impl]["verdict"] == "unsupported" and "so far" in rows[impl]["reason"]
    if neuron == "cuba":  # SpikingJelly's CUBALIFNode (hard reset to 0, attached)
        assert rows["spikingjelly"]["verdict"] in ("exact", "close"), rows["spikingjelly"]


# What each framework refuses of the configs below (its reason), None where it runs.
REFUSED = {
    ("cuba", "norse"): lambda c: (
        "norse cannot express" if c.soft_reset or c.detach_reset
        or (c.surrogate, c.alpha) not in (("superspike", 1.0), ("sigmoid", 4.0)) else None
    ),
    ("cuba", "snntorch"): lambda c: (
        "Synaptic's delayed zero reset" if c.detach_reset and not c.soft_reset
        else "cannot detach a subtractive reset" if c.soft_reset and c.detach_reset
        else "resets to 0 only" if c.v_reset not in (None, 0.0)
        else "no built-in piecewise_exp" if c.surrogate == "piecewise_exp" else None
    ),
    ("cuba", "rockpool"): lambda c: (
        "rockpool cannot express" if not c.soft_reset or c.detach_reset
        or c.surrogate != "piecewise_exp" or c.alpha * c.v_threshold != 2.0 else None
    ),
    ("cuba", "lava-dl"): lambda c: "no subtractive reset" if c.soft_reset else None,
    ("cuba", "spikingjelly"): lambda c: (
        "membrane leaks towards 0" if c.v_reset not in (None, 0.0)
        else "detach_reset=True: CUBALIFNode" if c.detach_reset else None
    ),
    ("cuba", "spyx"): lambda c: (
        "hard reset: Spyx's CuBaLIF" if not c.soft_reset
        else "detach_reset=True: Spyx's reset" if c.detach_reset else None
    ),
    ("cuba", "sinabs"): lambda c: (
        "sinabs cannot express" if c.surrogate != "piecewise_exp"
        or (c.soft_reset == c.detach_reset) or c.v_reset not in (None, 0.0) else None
    ),
    ("alif", "norse"): lambda c: (
        "norse cannot express" if c.soft_reset or c.detach_reset or c.detach_adaptation
        or (c.surrogate, c.alpha) not in (("superspike", 1.0), ("sigmoid", 4.0)) else None
    ),
    ("alif", "sinabs"): lambda c: (
        "the threshold's gradient" if c.soft_reset or not c.detach_adaptation
        else "sinabs cannot express" if c.surrogate != "piecewise_exp" or not c.detach_reset
        or c.v_reset != 0.0 else None
    ),
}  # fmt: skip
FRAMEWORK_CONFIGS = {
    "cuba": [
        CUBAConfig(surrogate="superspike", alpha=1.0),
        CUBAConfig(decay_input=False, tau_syn=8.0, surrogate="sigmoid", alpha=4.0),
        CUBAConfig(v_reset=-0.5, tau=4.0, surrogate="superspike", alpha=1.0),
        CUBAConfig(detach_reset=True, surrogate="atan", alpha=2.0),
        CUBAConfig(v_reset=None, tau_syn=2.0, surrogate="atan", alpha=2.0),
        CUBAConfig(v_reset=None, detach_reset=True, surrogate="piecewise_exp", alpha=2.0),
        CUBAConfig(
            v_reset=None, decay_input=False, tau_syn=8.0, surrogate="piecewise_exp", alpha=2.0
        ),
        CUBAConfig(tau=4.0, tau_syn=3.0, detach_reset=True, surrogate="piecewise_exp", alpha=2.0),
    ],
    "alif": [
        ALIFConfig(surrogate="superspike", alpha=1.0),
        ALIFConfig(decay_input=False, tau_a=5.0, beta_a=0.5, surrogate="sigmoid", alpha=4.0),
        ALIFConfig(v_reset=-0.3, tau=4.0, surrogate="superspike", alpha=1.0),
        ALIFConfig(detach_adaptation=True, surrogate="superspike", alpha=1.0),
        ALIFConfig(v_reset=None, surrogate="sigmoid", alpha=4.0),
        ALIFConfig(detach_reset=True, detach_adaptation=True, surrogate="piecewise_exp", alpha=2.0),
        ALIFConfig(
            decay_input=False,
            detach_reset=True,
            detach_adaptation=True,
            tau_a=5.0,
            beta_a=0.6,
            surrogate="piecewise_exp",
            alpha=2.0,
        ),
    ],
}


@pytest.mark.parametrize(("impl", "config"), [
    pytest.param(impl, config, id=f"{impl}-{config}")
    for (neuron, impl) in REFUSED for config in FRAMEWORK_CONFIGS[neuron]
])  # fmt: skip
def test_frameworks_match_the_oracle_or_are_refused_with_the_reason(impl, config):
    """Norse's LIF (CUBA) and LSNN (ALIF, one step late), snnTorch's Synaptic (CUBA), Spyx's
    CuBaLIF (CUBA, one step late), Rockpool's
    LIFTorch with its synapse (CUBA), Sinabs' LIF with tau_syn (CUBA, its input times
    1/alpha_syn), lava-dl's cuba.Neuron (approximate: fixed point, SLAYER's
    backward), Sinabs' ALIF (approximate: its surrogate widens with the threshold): against the
    oracle at T = 12 (the current and the threshold build up over the steps), V included where
    exposed, or the framework's reason; only soft reset (and lava-dl, Sinabs' ALIF) may be
    approximate."""
    from kernelprof.frameworks import registry
    from kernelprof.frameworks.base import Unsupported
    from kernelprof.inputs import lif_input
    from kernelprof.verify.agreement import check_against_oracle
    from kernelprof.verify.verdicts import classify

    implementation = registry.implementation(impl)
    refusal = REFUSED[(config.neuron, impl)](config)
    if refusal is not None:
        with pytest.raises(Unsupported, match=refusal):
            implementation.check_neuron(config)
            implementation.build(config, torch.device("cpu"), torch.float32)
        return
    build = implementation.build(config, torch.device("cpu"), torch.float32)
    for seed in (0, 1000):
        x = lif_input((12, 600), config, seed=seed)
        result = check_against_oracle(build.check, x, config, seed=seed)
        verdict, reason = classify(result, build)
        if impl == "lava-dl" or (impl, config.neuron) == ("sinabs", "alif"):
            assert verdict == "approximate", reason
            if impl == "sinabs":  # its forward is the canonical one, dX bounded
                assert result.spikes.mismatch_fraction <= 1e-3, reason
            assert result.states_compared == EXPOSED.get((impl, config.neuron)), result
            continue
        assert verdict in (("exact", "close", "approximate") if config.soft_reset
                           else ("exact", "close")), reason  # fmt: skip
        assert result.v_max_abs_diff is not None, "V compared"
        exposed = EXPOSED.get((impl, config.neuron))
        assert result.states_compared == exposed, result
        if exposed and verdict == "exact":
            assert f"V, {exposed} and dX" in result.reason


# The second state each framework's checking build exposes, converted to the canonical one.
EXPOSED = {("norse", "cuba"): "I", ("snntorch", "cuba"): "I", ("spyx", "cuba"): "I",
           ("spikingjelly", "cuba"): "I", ("sinabs", "cuba"): "I",
           ("rockpool", "cuba"): "I", ("lava-dl", "cuba"): "I",
           ("norse", "alif"): "A"}  # fmt: skip


def test_lava_dls_current_is_compared_within_its_fixed_point_bound_and_wrong_beyond_it():
    """lava-dl's CUBA current is the canonical I but for its fixed point: within the declared
    bound (tau_syn 2/4096 per unit of its current, and tau_syn times the rounded current decay
    per unit of I) it is approximate; 1 % off, it is WRONG, the reason naming I."""
    from kernelprof.frameworks import registry
    from kernelprof.inputs import lif_input
    from kernelprof.verify.agreement import check_against_oracle
    from kernelprof.verify.verdicts import classify

    pytest.importorskip("lava.lib.dl.slayer")
    config = CUBAConfig(tau_syn=3.0, tau=4.0, surrogate="superspike", alpha=1.0)
    build = registry.implementation("lava-dl").build(config, torch.device("cpu"), torch.float32)
    x = lif_input((16, 2000), config, seed=0)

    def scaled(x, factor):
        spikes, v, states = build.check(x)
        return spikes, v, {"i": states["i"] * factor}

    good = check_against_oracle(lambda x: scaled(x, 1.0), x, config)
    bad = check_against_oracle(lambda x: scaled(x, 1.01), x, config)
    assert good.state_max_abs_diff > 1e-4, "the fixed point moves I beyond float rounding"
    assert classify(good, build)[0] == "approximate", classify(good, build)
    verdict, reason = classify(bad, build)
    assert verdict == "WRONG" and "|dI| beyond tolerance" in reason, reason


@pytest.mark.parametrize("config", [CUBAConfig(), ALIFConfig(beta_a=0.3, tau_a=5.0)], ids=str)
def test_an_exposed_state_off_by_a_percent_is_wrong(config):
    """The check compares the second state itself, not only what it does to S, V and dX."""
    from kernelprof.inputs import lif_input
    from kernelprof.verify.agreement import check_against_oracle

    (name,) = ("i",) if config.neuron == "cuba" else ("a",)

    def run(x, factor):
        spikes, state = reference_kernels.multistep(x, config, return_state=True)
        return spikes, state["v"], {name: state[name] * factor}

    x = lif_input((8, 400), config, seed=3)
    good = check_against_oracle(lambda x: run(x, 1.0), x, config)
    bad = check_against_oracle(lambda x: run(x, 1.01), x, config)
    assert good.verdict == "exact" and good.states_compared == name.upper()
    assert bad.verdict == "WRONG" and f"{name.upper()} beyond" in bad.reason, bad.reason


@pytest.mark.parametrize("impl", ["snntorch", "spikingjelly", "sinabs", "rockpool"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_a_half_precision_current_is_an_approximation_declared_within_its_bounds(impl, dtype):
    """snnTorch's Synaptic keeps its current in the input's half dtype (its alpha buffer takes
    the module's dtype), SpikingJelly's CUBALIFNode its V and c; Sinabs and Rockpool keep
    theirs in float32 but take the input times their scale (1/alpha_syn, 1/beta) rounded to
    half: approximate, never WRONG, the current within its bound, with the reason naming the
    half dtype."""
    from kernelprof.frameworks import registry
    from kernelprof.inputs import lif_input
    from kernelprof.verify.agreement import check_against_oracle
    from kernelprof.verify.verdicts import classify

    pytest.importorskip(impl)
    config = CUBAConfig(surrogate="atan", alpha=2.0)
    if impl in ("sinabs", "rockpool"):  # their surrogate, and the reset both express
        config = CUBAConfig(v_reset=None, tau_syn=3.0, surrogate="piecewise_exp", alpha=2.0)
    build = registry.implementation(impl).build(config, torch.device("cpu"), dtype)
    x = lif_input((8, 2048), config, seed=0).to(dtype)
    verdict, reason = classify(check_against_oracle(build.check, x, config), build)
    assert verdict in ("approximate", "close", "exact"), reason
    assert any(str(dtype).removeprefix("torch.") in a.reason for a in build.approximations)


def test_rockpools_lif_in_float16_is_refused_for_its_transparent_synapses_scale():
    """LIFTorch's synapse passes a LIF's input on with beta = 2^-32, the input times 2^32:
    beyond float16's range (every spike was NaN), so float16 is refused with that reason;
    bfloat16 holds it, and CUBA's real synapse needs no such scale."""
    from kernelprof.frameworks import registry
    from kernelprof.frameworks.base import Unsupported
    from reference_kernels.model import LIFConfig

    pytest.importorskip("rockpool")
    lif = LIFConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0)
    rockpool = registry.implementation("rockpool")
    with pytest.raises(Unsupported, match="float16: LIFTorch's synapse is made transparent"):
        rockpool.build(lif, torch.device("cpu"), torch.float16)
    rockpool.build(lif, torch.device("cpu"), torch.bfloat16)
    rockpool.build(CUBAConfig(v_reset=None, surrogate="piecewise_exp", alpha=2.0),
                   torch.device("cpu"), torch.float16)  # fmt: skip
