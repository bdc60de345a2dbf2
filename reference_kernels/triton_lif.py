"""Fused multi-step neurons in Triton: one forward kernel over T, one reverse-time backward
kernel, for IF, LIF and PLIF, and a second pair for the two-state CUBA and ALIF (see their
section below and :mod:`reference_kernels.fused_states`).

Each program owns BLOCK neurons and keeps their membrane in registers for the whole sequence.
Forward reads X once and writes S and the margin H - theta once (and V only when asked);
backward reads dS (and dV) and the margin once and writes dX once: the minimum traffic of this
algorithm (see :mod:`reference_kernels.fused` for what is saved and why).
Arithmetic is float32 whatever the storage dtype. Division is correctly rounded (``div_rn``) so
float32 results match the eager oracle bit for bit; PLIF's forward is compiled without
fused multiply-add (``enable_fp_fusion=False``) for the same reason (its charge multiplies by k).

PLIF (``NEURON`` 2) loads k once per program (one value, or each lane's channel's) and its
backward accumulates gH[t] * (H[t] - V[t-1]) (decay_input) or -gH[t] * (V[t-1] - V_r) in
registers over the time loop, V[t-1] from the margin of step t-1 that the loop prefetches
anyway; at the end each program writes the sum of its lanes (one float32) or, per channel,
each lane's sum. :mod:`reference_kernels.fused` reduces them.

On CPU tensors the kernels run only under the Triton interpreter (``TRITON_INTERPRET=1`` set
before this module is imported): slow, meant for tests.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .fused import register
from .model import NEURON_ID, SURROGATE_ID, NeuronConfig, kernel_tau, state_decay

# Launch configurations (BLOCK neurons per program, warps per program) tried on a GPU. Each
# thread owns BLOCK / (32 * num_warps) neurons: 4 is one 128-bit access per fp32 tensor and
# step, 8 keeps twice the loads in flight at the cost of registers. tests/triton_aot.py compiles
# every one for sm_90 and counts ptxas's registers: 8 per thread in 8 warps, or 16 per thread,
# took 177 to 254 on the unaligned backward path (one 256-thread block per SM), so those are not
# offered. The fastest is picked per shape, dtype and variant by Triton's autotuner, timed on
# the device with the real arguments (the kernels only overwrite their outputs, so trying a
# configuration changes nothing), and cached on disk (Triton's cache directory), so a later
# process does not tune again.
CONFIGS = ((256, 2), (512, 4), (1024, 4), (1024, 8))
# The interpreter times nothing: it runs one fixed configuration (a 1-D block of 1024 lanes).
INTERPRETER_CONFIG = (1024, 4)
# What decides the kernel a launch needs, beside the dtypes the autotuner adds itself.
_FORWARD_KEY = ["n", "steps", "NEURON", "K_PER_CHANNEL", "SOFT_RESET", "DECAY_INPUT",
                "WRITE_SPIKES", "WRITE_MARGIN", "WRITE_V"]  # fmt: skip
_BACKWARD_KEY = ["n", "steps", "NEURON", "K_PER_CHANNEL", "SOFT_RESET", "DECAY_INPUT",
                 "DETACH_RESET", "HAS_GRAD_V", "SURROGATE"]  # fmt: skip


@triton.jit
def _surrogate_grad(x, alpha, SURROGATE: tl.constexpr):
    if SURROGATE == 0:  # sigmoid
        sig = 1.0 / (1.0 + tl.exp(-alpha * x))
        grad = alpha * sig * (1.0 - sig)
    elif SURROGATE == 1:  # atan
        scaled = 1.5707963267948966 * alpha * x
        grad = (alpha * 0.5) / (1.0 + scaled * scaled)
    elif SURROGATE == 2:  # superspike
        denominator = 1.0 + alpha * tl.abs(x)
        grad = 1.0 / (denominator * denominator)
    else:  # piecewise_exp
        grad = (alpha * 0.5) * tl.exp(-alpha * tl.abs(x))
    return grad


@triton.jit
def _charge(v, current, tau, v_rest, DECAY_INPUT: tl.constexpr):
    if DECAY_INPUT:
        h = v + tl.math.div_rn(current - (v - v_rest), tau)
    else:
        h = v - tl.math.div_rn(v - v_rest, tau) + current
    return h


@triton.jit
def _reset(h, spike, theta, v_rest, SOFT_RESET: tl.constexpr):
    """V[t] after the step's reset: hard to V_r, or soft, subtracting the step's threshold."""
    if SOFT_RESET:
        v = h - spike * theta
    else:
        v = spike * v_rest + (1.0 - spike) * h
    return v


@triton.jit
def _decay_k(k_ptr, offsets, mask, k_channels, k_inner, K_PER_CHANNEL: tl.constexpr):
    """PLIF's k for each lane: one value, or the lane's channel's (outside the time loop)."""
    if K_PER_CHANNEL:
        k = tl.load(k_ptr + (offsets // k_inner) % k_channels, mask=mask, other=0.0)
    else:
        k = tl.load(k_ptr)
    return k


# The launcher turns an int argument equal to 1 into a compile-time constant (a Python int in
# the kernel body), so T=1 would get code where `steps.to(...)` fails to compile: `steps` is
# never specialised. `n` is: the launcher then learns when N is a multiple of 16, which proves
# every row start 16-byte aligned, and the loads and stores become 128-bit (tests/triton_aot.py
# counts them in the sm_90 PTX); odd or unaligned N keeps the scalar, masked path.
#
# Both loops load step t+1 (t-1 backward) before computing step t and carry it into the next
# iteration: the loads do not depend on the recurrence, so one step's memory latency overlaps
# the previous step's arithmetic and stores.
@triton.jit(do_not_specialize=["steps"])
def _lif_forward_kernel(
    x_ptr,
    spikes_ptr,
    margin_ptr,
    v_ptr,
    k_ptr,
    n,
    steps,
    tau,
    v_threshold,
    v_rest,
    k_channels,
    k_inner,
    NEURON: tl.constexpr,
    K_PER_CHANNEL: tl.constexpr,
    SOFT_RESET: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    WRITE_SPIKES: tl.constexpr,
    WRITE_MARGIN: tl.constexpr,
    WRITE_V: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    v = tl.zeros([BLOCK], dtype=tl.float32) + v_rest
    if NEURON == 2:
        k = _decay_k(k_ptr, offsets, mask, k_channels, k_inner, K_PER_CHANNEL)
    index = offsets
    x_raw = tl.load(x_ptr + index, mask=mask, other=0.0)
    for step in range(steps):
        x_next = tl.load(x_ptr + index + n, mask=mask & (step + 1 < steps), other=0.0)
        x = x_raw.to(tl.float32)
        if NEURON == 1:  # IF
            h = v + x
        elif NEURON == 2:  # PLIF
            if DECAY_INPUT:
                h = v + (x - (v - v_rest)) * k
            else:
                h = v - (v - v_rest) * k + x
        else:  # LIF
            h = _charge(v, x, tau, v_rest, DECAY_INPUT)
        spike = (h >= v_threshold).to(tl.float32)
        v = _reset(h, spike, v_threshold, v_rest, SOFT_RESET)
        if WRITE_SPIKES:
            tl.store(spikes_ptr + index, spike.to(spikes_ptr.dtype.element_ty), mask=mask)
        if WRITE_MARGIN:
            # Backward reads S from the margin's sign bit. Its one wrong sign in float32 would be
            # H = -0.0 against theta = +0.0, which cannot happen here: V starts at 0.0 + v_rest,
            # +0.0 even for V_r = -0.0, and a sum is -0.0 only when both terms are.
            margin = (h - v_threshold).to(margin_ptr.dtype.element_ty)
            tl.store(margin_ptr + index, margin, mask=mask)
        if WRITE_V:
            tl.store(v_ptr + index, v.to(v_ptr.dtype.element_ty), mask=mask)
        x_raw = x_next
        index += n


@triton.jit(do_not_specialize=["steps"])
def _lif_backward_kernel(
    grad_spikes_ptr,
    grad_v_ptr,
    margin_ptr,
    grad_x_ptr,
    k_ptr,
    dk_ptr,
    n,
    steps,
    tau,
    decay,
    v_threshold,
    v_rest,
    alpha,
    k_channels,
    k_inner,
    NEURON: tl.constexpr,
    K_PER_CHANNEL: tl.constexpr,
    SOFT_RESET: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    HAS_GRAD_V: tl.constexpr,
    SURROGATE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    grad_h_next = tl.zeros([BLOCK], dtype=tl.float32)
    if NEURON == 2:
        k = _decay_k(k_ptr, offsets, mask, k_channels, k_inner, K_PER_CHANNEL)
        decay = 1.0 - k
        dk = tl.zeros([BLOCK], dtype=tl.float32)
    index = offsets + (steps - 1).to(tl.int64) * n
    margin_raw = tl.load(margin_ptr + index, mask=mask, other=0.0)
    grad_s_raw = tl.load(grad_spikes_ptr + index, mask=mask, other=0.0)
    if HAS_GRAD_V:
        grad_v_raw = tl.load(grad_v_ptr + index, mask=mask, other=0.0)
    for step in range(steps):
        earlier = mask & (step + 1 < steps)
        margin_next = tl.load(margin_ptr + index - n, mask=earlier, other=0.0)
        grad_s_next = tl.load(grad_spikes_ptr + index - n, mask=earlier, other=0.0)
        margin = margin_raw.to(tl.float32)
        h = margin + v_threshold
        # S from the margin's sign bit: exact in every dtype, -0.0 included (see fused.py)
        spike = (margin.to(tl.int32, bitcast=True) >= 0).to(tl.float32)
        sg = _surrogate_grad(margin, alpha, SURROGATE)
        grad_v_total = grad_h_next * decay
        if HAS_GRAD_V:
            grad_v_next = tl.load(grad_v_ptr + index - n, mask=earlier, other=0.0)
            grad_v_total += grad_v_raw.to(tl.float32)
            grad_v_raw = grad_v_next
        grad_s = grad_s_raw.to(tl.float32)
        if SOFT_RESET:
            if not DETACH_RESET:
                grad_s = grad_s - grad_v_total * v_threshold
            grad_h = grad_s * sg + grad_v_total
        else:
            if not DETACH_RESET:
                grad_s = grad_s + grad_v_total * (v_rest - h)
            grad_h = grad_s * sg + grad_v_total * (1.0 - spike)
        if NEURON == 2:
            # V[t-1] from step t-1's margin (V_rest before the first step)
            margin_prev = margin_next.to(tl.float32)
            h_prev = margin_prev + v_threshold
            spike_prev = (margin_prev.to(tl.int32, bitcast=True) >= 0).to(tl.float32)
            if SOFT_RESET:
                v_prev = h_prev - spike_prev * v_threshold
            else:
                v_prev = spike_prev * v_rest + (1.0 - spike_prev) * h_prev
            v_prev = tl.where(step + 1 < steps, v_prev, v_rest)
            if DECAY_INPUT:
                dk += grad_h * (h - v_prev)  # k * dH/dk; fused.py divides by k once
            else:
                dk -= grad_h * (v_prev - v_rest)
        if NEURON == 2 and DECAY_INPUT:
            grad_x = grad_h * k
        elif NEURON == 0 and DECAY_INPUT:
            grad_x = tl.math.div_rn(grad_h, tau)
        else:
            grad_x = grad_h
        tl.store(grad_x_ptr + index, grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)
        grad_h_next = grad_h
        margin_raw = margin_next
        grad_s_raw = grad_s_next
        index -= n
    if NEURON == 2:
        if K_PER_CHANNEL:
            tl.store(dk_ptr + offsets, dk, mask=mask)  # per neuron; fused.py sums per channel
        else:
            tl.store(dk_ptr + tl.program_id(0), tl.sum(dk, axis=0))  # per program


# ---- the two-state neurons: CUBA (NEURON 3) and ALIF (NEURON 4) ---------------------------------
# The second state (CUBA's current I, ALIF's adaptation A) stays in registers beside V. Forward
# reads X once and writes S and the margin once per step; ALIF also writes its threshold
# theta[t] when the backward needs it (not with detach_reset), and V and the state only when
# asked. Backward carries both adjoints in reverse time (gH and gI, or gH and gA_d), reading the
# margin (and theta) and dS (and dV, d-state) once and writing dX once. Forward runs without
# fused multiply-add so that I = d I + X and theta = theta0 + beta_a d A round as torch does.
_STATES_FORWARD_KEY = ["n", "steps", "NEURON", "SOFT_RESET", "DECAY_INPUT", "WRITE_SPIKES",
                       "WRITE_MARGIN", "WRITE_THETA", "WRITE_STATES"]  # fmt: skip
_STATES_BACKWARD_KEY = ["n", "steps", "NEURON", "SOFT_RESET", "DECAY_INPUT", "DETACH_RESET",
                        "DETACH_ADAPTATION", "HAS_THETA", "HAS_GRAD_V", "HAS_GRAD_STATE",
                        "SURROGATE"]  # fmt: skip


@triton.jit(do_not_specialize=["steps"])
def _states_forward_kernel(
    x_ptr,
    spikes_ptr,
    margin_ptr,
    theta_ptr,
    v_ptr,
    state_ptr,
    n,
    steps,
    tau,
    v_threshold,
    v_rest,
    state_decay,
    beta_a,
    NEURON: tl.constexpr,
    SOFT_RESET: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    WRITE_SPIKES: tl.constexpr,
    WRITE_MARGIN: tl.constexpr,
    WRITE_THETA: tl.constexpr,
    WRITE_STATES: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    v = tl.zeros([BLOCK], dtype=tl.float32) + v_rest
    state = tl.zeros([BLOCK], dtype=tl.float32)  # I (CUBA) or A (ALIF)
    index = offsets
    x_raw = tl.load(x_ptr + index, mask=mask, other=0.0)
    for step in range(steps):
        x_next = tl.load(x_ptr + index + n, mask=mask & (step + 1 < steps), other=0.0)
        x = x_raw.to(tl.float32)
        if NEURON == 3:  # CUBA: the current filters X, V charges from it
            state = state * state_decay + x
            theta = tl.zeros([BLOCK], dtype=tl.float32) + v_threshold
            h = _charge(v, state, tau, v_rest, DECAY_INPUT)
        else:  # ALIF: the threshold rises with the decayed adaptation
            adapted = state * state_decay
            theta = v_threshold + beta_a * adapted
            h = _charge(v, x, tau, v_rest, DECAY_INPUT)
        spike = (h >= theta).to(tl.float32)
        v = _reset(h, spike, theta, v_rest, SOFT_RESET)
        if NEURON == 4:
            state = adapted + spike
        if WRITE_SPIKES:
            tl.store(spikes_ptr + index, spike.to(spikes_ptr.dtype.element_ty), mask=mask)
        if WRITE_MARGIN:  # S from its sign bit in backward, as LIF's (see _lif_forward_kernel)
            tl.store(margin_ptr + index, (h - theta).to(margin_ptr.dtype.element_ty), mask=mask)
        if WRITE_THETA:
            tl.store(theta_ptr + index, theta.to(theta_ptr.dtype.element_ty), mask=mask)
        if WRITE_STATES:
            tl.store(v_ptr + index, v.to(v_ptr.dtype.element_ty), mask=mask)
            tl.store(state_ptr + index, state.to(state_ptr.dtype.element_ty), mask=mask)
        x_raw = x_next
        index += n


@triton.jit(do_not_specialize=["steps"])
def _states_backward_kernel(
    grad_spikes_ptr,
    grad_v_ptr,
    grad_state_ptr,
    margin_ptr,
    theta_ptr,
    grad_x_ptr,
    n,
    steps,
    tau,
    decay,
    v_threshold,
    v_rest,
    alpha,
    state_decay,
    beta_a,
    NEURON: tl.constexpr,
    SOFT_RESET: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    DETACH_ADAPTATION: tl.constexpr,
    HAS_THETA: tl.constexpr,
    HAS_GRAD_V: tl.constexpr,
    HAS_GRAD_STATE: tl.constexpr,
    SURROGATE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    grad_h_next = tl.zeros([BLOCK], dtype=tl.float32)
    grad_state_next = tl.zeros([BLOCK], dtype=tl.float32)  # gI[t+1] (CUBA) or gA_d[t+1] (ALIF)
    index = offsets + (steps - 1).to(tl.int64) * n
    margin_raw = tl.load(margin_ptr + index, mask=mask, other=0.0)
    grad_s_raw = tl.load(grad_spikes_ptr + index, mask=mask, other=0.0)
    for step in range(steps):
        earlier = mask & (step + 1 < steps)
        margin_next = tl.load(margin_ptr + index - n, mask=earlier, other=0.0)
        grad_s_next = tl.load(grad_spikes_ptr + index - n, mask=earlier, other=0.0)
        margin = margin_raw.to(tl.float32)
        if HAS_THETA:
            theta = tl.load(theta_ptr + index, mask=mask, other=0.0).to(tl.float32)
        else:
            theta = tl.zeros([BLOCK], dtype=tl.float32) + v_threshold  # CUBA, or unused
        spike = (margin.to(tl.int32, bitcast=True) >= 0).to(tl.float32)
        sg = _surrogate_grad(margin, alpha, SURROGATE)
        grad_v = grad_h_next * decay
        if HAS_GRAD_V:
            grad_v += tl.load(grad_v_ptr + index, mask=mask, other=0.0).to(tl.float32)
        grad_s = grad_s_raw.to(tl.float32)
        if NEURON == 4:  # A[t] = A_d[t] + S[t]: A's adjoint reaches S[t]
            grad_a = grad_state_next * state_decay
            if HAS_GRAD_STATE:
                grad_a += tl.load(grad_state_ptr + index, mask=mask, other=0.0).to(tl.float32)
            grad_s = grad_s + grad_a
        if not DETACH_RESET:
            if SOFT_RESET:
                grad_s = grad_s - grad_v * theta
            else:
                grad_s = grad_s + grad_v * (v_rest - (margin + theta))
        grad_m = grad_s * sg
        if SOFT_RESET:
            grad_h = grad_m + grad_v
        else:
            grad_h = grad_m + grad_v * (1.0 - spike)
        if DECAY_INPUT:
            grad_in = tl.math.div_rn(grad_h, tau)
        else:
            grad_in = grad_h
        if NEURON == 4:
            if SOFT_RESET:
                grad_theta = -grad_m - grad_v * spike
            else:
                grad_theta = -grad_m
            if DETACH_ADAPTATION:
                grad_state_next = tl.zeros([BLOCK], dtype=tl.float32)
            else:
                grad_state_next = grad_theta * beta_a + grad_a
            grad_x = grad_in
        else:  # CUBA: I[t] feeds H[t] and, decayed, I[t+1]
            grad_x = grad_in + grad_state_next * state_decay
            if HAS_GRAD_STATE:
                grad_x += tl.load(grad_state_ptr + index, mask=mask, other=0.0).to(tl.float32)
            grad_state_next = grad_x
        tl.store(grad_x_ptr + index, grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)
        grad_h_next = grad_h
        margin_raw = margin_next
        grad_s_raw = grad_s_next
        index -= n


def interpreted() -> bool:
    """Whether the kernels were built for the Triton interpreter (TRITON_INTERPRET=1)."""
    return not isinstance(_lif_forward_kernel, triton.runtime.JITFunction)


def _tuned(kernel, key):
    configs = [triton.Config({"BLOCK": block}, num_warps=warps) for block, warps in CONFIGS]
    # dk_ptr holds per-program sums that a configuration with more programs leaves behind: the
    # autotuner zeroes it after trying them (the kernels only overwrite their other outputs, so
    # trying a configuration changes nothing else).
    reset = ["dk_ptr"] if "dk_ptr" in kernel.arg_names else None
    return triton.autotune(configs=configs, key=key, cache_results=True,
                           reset_to_zero=reset)(kernel)  # fmt: skip


_UNTUNED = (_lif_forward_kernel, _lif_backward_kernel, _states_forward_kernel,
            _states_backward_kernel)  # fmt: skip
if interpreted():
    _forward, _backward = _lif_forward_kernel, _lif_backward_kernel
    _states_forward, _states_backward = _states_forward_kernel, _states_backward_kernel
else:
    _forward = _tuned(_lif_forward_kernel, _FORWARD_KEY)
    _backward = _tuned(_lif_backward_kernel, _BACKWARD_KEY)
    _states_forward = _tuned(_states_forward_kernel, _STATES_FORWARD_KEY)
    _states_backward = _tuned(_states_backward_kernel, _STATES_BACKWARD_KEY)

# Programs of the smallest block: what a per-program dk partial buffer must hold.
_SMALLEST_BLOCK = min(block for block, _ in (*CONFIGS, INTERPRETER_CONFIG))


def _launch(kernel, n: int, args: tuple, flags: dict) -> None:
    """The one place a kernel is launched (benchmarks/host_overhead.py stubs it)."""
    if any(kernel is untuned for untuned in _UNTUNED):  # the interpreter
        block, warps = INTERPRETER_CONFIG
        flags = {name: value for name, value in flags.items() if name != "enable_fp_fusion"}
        kernel[(triton.cdiv(n, block),)](*args, **flags, BLOCK=block, num_warps=warps)
    else:
        kernel[lambda meta: (triton.cdiv(n, meta["BLOCK"]),)](*args, **flags)


def chosen_configs() -> list[dict]:
    """The configuration the autotuner picked for each key tuned in this process (empty under
    the interpreter): what a benchmark reports beside its timings."""
    found = []
    tuned = (("forward", _forward, _FORWARD_KEY), ("backward", _backward, _BACKWARD_KEY),
             ("states forward", _states_forward, _STATES_FORWARD_KEY),
             ("states backward", _states_backward, _STATES_BACKWARD_KEY))  # fmt: skip
    for direction, kernel, key in tuned:
        for values, config in getattr(kernel, "cache", {}).items():
            named = dict(zip(key, values[: len(key)], strict=True))
            found.append(
                {
                    "kernel": direction,
                    "key": named | {"dtypes": list(values[len(key) :])},
                    "BLOCK": config.kwargs["BLOCK"],
                    "num_warps": config.num_warps,
                }
            )
    return found


def _decay_args(decay, like: torch.Tensor) -> tuple:
    """(k pointer, channels, inner) for a launch: PLIF's k, or a placeholder never read."""
    if decay is None:
        return like, 1, 1
    return decay.k, decay.channels, decay.inner


class TritonKernels:
    """The Triton backend of :mod:`reference_kernels.fused`."""

    name = "triton"

    def forward(self, x, spikes, margin, v, config: NeuronConfig, decay=None) -> None:
        steps, n = x.shape
        if steps == 0 or n == 0:
            return
        placeholder = next(t for t in (spikes, margin, v, x) if t is not None)
        k, channels, inner = _decay_args(decay, x)
        args = (
            x,
            placeholder if spikes is None else spikes,  # unwritten outputs get a placeholder
            placeholder if margin is None else margin,
            placeholder if v is None else v,
            k,
            n,
            steps,
            kernel_tau(config),
            float(config.v_threshold),
            config.v_rest,
            channels,
            inner,
        )
        flags = {
            "NEURON": NEURON_ID[config.neuron],
            "K_PER_CHANNEL": channels > 1,
            "SOFT_RESET": config.soft_reset,
            "DECAY_INPUT": config.decay_input,
            "WRITE_SPIKES": spikes is not None,
            "WRITE_MARGIN": margin is not None,
            "WRITE_V": v is not None,
        }
        if config.neuron == "plif":
            flags["enable_fp_fusion"] = False  # v + d * k stays two roundings, as in torch
        _launch(_forward, n, args, flags)

    def backward(self, grad_spikes, grad_v, margin, grad_x, config: NeuronConfig, decay=None):
        steps, n = margin.shape
        partials = None
        if decay is not None:  # per neuron, or one per program (zeros past the last program)
            size = n if decay.per_channel else triton.cdiv(n, _SMALLEST_BLOCK)
            partials = torch.zeros(max(size, 1), dtype=torch.float32, device=margin.device)
        if steps == 0 or n == 0:
            return partials
        k, channels, inner = _decay_args(decay, margin)
        if config.neuron == "lif":
            decay_factor = 1.0 - 1.0 / config.tau
        else:
            decay_factor = 1.0  # IF keeps all of V; PLIF's 1 - k is computed in the kernel
        args = (
            grad_spikes,
            margin if grad_v is None else grad_v,
            margin,
            grad_x,
            k,
            _dk_placeholder(margin.device) if partials is None else partials,
            n,
            steps,
            kernel_tau(config),
            decay_factor,
            float(config.v_threshold),
            config.v_rest,
            float(config.alpha),
            channels,
            inner,
        )
        flags = {
            "NEURON": NEURON_ID[config.neuron],
            "K_PER_CHANNEL": channels > 1,
            "SOFT_RESET": config.soft_reset,
            "DECAY_INPUT": config.decay_input,
            "DETACH_RESET": config.detach_reset,
            "HAS_GRAD_V": grad_v is not None,
            "SURROGATE": SURROGATE_ID[config.surrogate],
        }
        _launch(_backward, n, args, flags)
        return partials

    def forward_states(self, x, spikes, margin, theta, v, state, config: NeuronConfig) -> None:
        """CUBA or ALIF: writes each output that is not None (V and the state together)."""
        steps, n = x.shape
        if steps == 0 or n == 0:
            return
        placeholder = next(t for t in (spikes, margin, v, x) if t is not None)
        args = (
            x,
            *(placeholder if out is None else out for out in (spikes, margin, theta, v, state)),
            n,
            steps,
            float(config.tau),
            float(config.v_threshold),
            config.v_rest,
            state_decay(config),
            float(getattr(config, "beta_a", 0.0)),
        )
        flags = {
            "NEURON": NEURON_ID[config.neuron],
            "SOFT_RESET": config.soft_reset,
            "DECAY_INPUT": config.decay_input,
            "WRITE_SPIKES": spikes is not None,
            "WRITE_MARGIN": margin is not None,
            "WRITE_THETA": theta is not None,
            "WRITE_STATES": v is not None,
            "enable_fp_fusion": False,  # d I + X and theta0 + beta_a A_d round as in torch
        }
        _launch(_states_forward, n, args, flags)

    def backward_states(self, grad_spikes, grad_v, grad_state, margin, theta, grad_x,
                        config: NeuronConfig) -> None:  # fmt: skip
        """CUBA or ALIF: writes grad_x from dS (dV, d-state) and the margin (and theta)."""
        steps, n = margin.shape
        if steps == 0 or n == 0:
            return
        args = (
            grad_spikes,
            margin if grad_v is None else grad_v,
            margin if grad_state is None else grad_state,
            margin,
            margin if theta is None else theta,
            grad_x,
            n,
            steps,
            float(config.tau),
            1.0 - 1.0 / config.tau,
            float(config.v_threshold),
            config.v_rest,
            float(config.alpha),
            state_decay(config),
            float(getattr(config, "beta_a", 0.0)),
        )
        flags = {
            "NEURON": NEURON_ID[config.neuron],
            "SOFT_RESET": config.soft_reset,
            "DECAY_INPUT": config.decay_input,
            "DETACH_RESET": config.detach_reset,
            "DETACH_ADAPTATION": bool(getattr(config, "detach_adaptation", False)),
            "HAS_THETA": theta is not None,
            "HAS_GRAD_V": grad_v is not None,
            "HAS_GRAD_STATE": grad_state is not None,
            "SURROGATE": SURROGATE_ID[config.surrogate],
        }
        _launch(_states_backward, n, args, flags)


_DK_PLACEHOLDERS: dict[torch.device, torch.Tensor] = {}


def _dk_placeholder(device: torch.device) -> torch.Tensor:
    """A float32 scalar for dk_ptr where nothing is written (IF, LIF): the autotuner zeroes
    dk_ptr, so it must never be one of the real tensors."""
    found = _DK_PLACEHOLDERS.get(device)
    if found is None:
        found = _DK_PLACEHOLDERS[device] = torch.zeros(1, dtype=torch.float32, device=device)
    return found


KERNELS = TritonKernels()
register(KERNELS)  # callable from the custom ops of reference_kernels.fused (torch.compile)


def check_device(device: torch.device) -> None:
    """Raises ValueError when the kernels cannot run on ``device``."""
    if device.type == "cuda" or (device.type == "cpu" and interpreted()):
        return
    if device.type == "cpu":
        raise ValueError(
            "device: impl='triton' runs on CUDA tensors; on CPU only under the Triton interpreter "
            "(set TRITON_INTERPRET=1 before importing reference_kernels)"
        )
    raise ValueError(f"device: impl='triton' cannot run on {device.type!r} tensors")
