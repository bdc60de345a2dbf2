"""Tests of the CUDA C kernels in reference_kernels/cuda/lif.cu, most of them without a GPU.

* lif.cu builds with nvcc for sm_80 and sm_90, and with NVRTC as CuPy compiles it, and exports
  the six unmangled kernel names the loader asks for;
* the same file, built as host C++ through host_shim.h (host_launch.cpp), runs its kernels
  serially behind the real autograd wrapper (reference_kernels.fused.lif_fused) and is checked
  against the float64 oracle and its autograd gradients over a covering grid of configurations,
  and its forward bit for bit against the oracle evaluated in the kernel's own precision;
* its software fp16/bf16 conversions agree with PyTorch's bitwise (exhaustively from half);
* on a CUDA machine, the CuPy backend (reference_kernels.cupy_lif) passes the same checks;
* cupy_unavailable_reason() explains itself on a machine without a usable GPU.
"""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from kernelprof.inputs import lif_input
from reference_kernels.cupy_lif import KERNEL_NAMES, CupyKernels, cupy_unavailable_reason
from reference_kernels.fused import FusedKernels, lif_fused
from reference_kernels.model import DEFAULT_ALPHA, SURROGATES, LIFConfig
from reference_kernels.torch_ref import lif_trajectory
from tests.lif_cases import case_id, check_case, covering_cases

CUDA_DIR = Path(__file__).resolve().parents[1] / "reference_kernels" / "cuda"
LIF_CU = CUDA_DIR / "lif.cu"
HOST_LAUNCH = CUDA_DIR / "host_launch.cpp"

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    """The tensors here are small: intra-op threads only add synchronisation, and when other
    processes share the cores their spinning made this file ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _symbol_in(binary: bytes, name: str) -> bool:
    # An ELF string table holds each symbol NUL-terminated; the leading NUL rules out matches
    # inside longer names such as section names ".text.lif_forward_f32".
    return b"\x00" + name.encode() + b"\x00" in binary


# --------------------------------------------------------------------------------------------
# The source builds for the GPU
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_builds_cubin(arch: str, tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found")
    cubin = tmp_path / f"lif_{arch}.cubin"
    cmd = [nvcc, "-cubin", f"-arch={arch}", "-std=c++17", "-Werror", "all-warnings"]
    result = subprocess.run(
        [*cmd, "-o", str(cubin), str(LIF_CU)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    binary = cubin.read_bytes()
    missing = [name for name in KERNEL_NAMES if not _symbol_in(binary, name)]
    assert not missing, f"kernels missing from the {arch} cubin: {missing}"


def test_nvrtc_builds_like_cupy() -> None:
    """NVRTC, with the options cupy.RawModule adds, compiles lif.cu with no header available."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except (ImportError, RuntimeError, OSError) as exc:
        pytest.skip(f"NVRTC unavailable: {exc}")
    program = nvrtc.createProgram(LIF_CU.read_text(), "lif.cu", (), ())
    try:
        options = ("-std=c++17", "-arch=sm_90", "--device-as-default-execution-space")
        try:
            nvrtc.compileProgram(program, options)
        except nvrtc.NVRTCError:
            pytest.fail(f"NVRTC failed:\n{nvrtc.getProgramLog(program)}")
        binary = nvrtc.getCUBIN(program)
    finally:
        nvrtc.destroyProgram(program)
    missing = [name for name in KERNEL_NAMES if not _symbol_in(binary, name)]
    assert not missing, f"kernels missing from the NVRTC cubin: {missing}"


# --------------------------------------------------------------------------------------------
# The same source built for the host
# --------------------------------------------------------------------------------------------

_PTR = ctypes.c_void_p
_FORWARD_ARGS = [ctypes.c_uint, ctypes.c_uint, *[_PTR] * 5, ctypes.c_longlong, ctypes.c_int]
_FORWARD_ARGS += [ctypes.c_float] * 3 + [ctypes.c_int] * 2
_BACKWARD_ARGS = [ctypes.c_uint, ctypes.c_uint, *[_PTR] * 5, ctypes.c_longlong, ctypes.c_int]
_BACKWARD_ARGS += [ctypes.c_float] * 3 + [ctypes.c_int] * 4 + [ctypes.c_float]


@pytest.fixture(scope="session")
def host_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """lif.cu compiled by g++ through host_shim.h (host_launch.cpp), loaded with ctypes."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ not found")
    library = tmp_path_factory.mktemp("lif_host") / "liblif_host.so"
    cmd = [compiler, "-O2", "-std=c++17", "-Wall", "-Wextra", "-shared", "-fPIC"]
    result = subprocess.run(
        [*cmd, "-o", str(library), str(HOST_LAUNCH)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lib = ctypes.CDLL(str(library))
    for suffix in SUFFIX.values():
        getattr(lib, f"host_launch_lif_forward_{suffix}").argtypes = _FORWARD_ARGS
        getattr(lib, f"host_launch_lif_backward_{suffix}").argtypes = _BACKWARD_ARGS
    for name in ("half_to_float", "float_to_half", "bf16_to_float", "float_to_bf16"):
        getattr(lib, f"host_{name}").argtypes = [_PTR, _PTR, ctypes.c_longlong]
    return lib


def _ptr(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


class HostKernels:
    """The FusedKernels protocol over the host build: a serial launch of grid x block threads."""

    name = "cuda-host"

    def __init__(self, lib: ctypes.CDLL, grid: int, block: int) -> None:
        self.lib, self.grid, self.block = lib, grid, block

    def forward(self, x, spikes, margin, spikes_u8, v, config: LIFConfig) -> None:
        steps, n = x.shape
        launch = getattr(self.lib, f"host_launch_lif_forward_{SUFFIX[x.dtype]}")
        launch(
            self.grid, self.block, _ptr(x), _ptr(spikes), _ptr(margin), _ptr(spikes_u8), _ptr(v),
            n, steps, config.tau, config.v_threshold, config.v_initial,
            int(config.soft_reset), int(config.decay_input),
        )  # fmt: skip

    def backward(self, grad_spikes, grad_v, margin, spikes_u8, grad_x, config: LIFConfig) -> None:
        steps, n = margin.shape
        launch = getattr(self.lib, f"host_launch_lif_backward_{SUFFIX[margin.dtype]}")
        launch(
            self.grid, self.block, _ptr(grad_spikes), _ptr(grad_v), _ptr(margin), _ptr(spikes_u8),
            _ptr(grad_x), n, steps, config.tau, config.v_threshold, config.v_initial,
            int(config.soft_reset), int(config.decay_input), int(config.detach_reset),
            SURROGATES.index(config.surrogate), config.alpha,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The host build against the oracle, over the project's grid (tests/lif_cases.py)
# --------------------------------------------------------------------------------------------

HOST_CASES = covering_cases()
# Small launch geometries, so that threads also walk the grid-stride loop over several neurons.
GEOMETRIES = ((32, 1), (64, 2), (256, 3))  # (block, at most this many blocks)


def host_kernels(lib: ctypes.CDLL, neurons: int, seed: int) -> HostKernels:
    block, blocks = GEOMETRIES[seed % len(GEOMETRIES)]
    return HostKernels(lib, grid=min(math.ceil(neurons / block), blocks), block=block)


def test_grid_walks_the_grid_stride_loop() -> None:
    assert any(
        k.grid * k.block < case[2]
        for case in HOST_CASES
        for k in [host_kernels(None, case[2], case[4])]
    )


@pytest.mark.parametrize("case", HOST_CASES, ids=case_id)
def test_host_build_matches_oracle(host_lib: ctypes.CDLL, case) -> None:
    config, _, neurons, _, seed = case
    kernels = host_kernels(host_lib, neurons, seed)
    check_case(lambda x: lif_fused(x, kernels, config, True), case, "cpu")


def assert_forward_bit_exact(kernels: FusedKernels, case, device: str) -> None:
    """The kernel forward, called directly, equals the oracle evaluated in the kernel's own
    precision (float32 arithmetic, same operation order, one rounding to the storage dtype)
    bit for bit: spikes, V, the saved margin H - theta and the uint8 spikes."""
    config, steps, neurons, dtype, seed = case
    x = lif_input((steps, neurons), config, dtype=dtype, seed=seed)
    xd = x.to(device)
    spikes, margin, v = torch.empty_like(xd), torch.empty_like(xd), torch.empty_like(xd)
    spikes_u8 = torch.empty(xd.shape, dtype=torch.uint8, device=device)
    kernels.forward(xd, spikes, margin, spikes_u8, v, config)
    with torch.no_grad():
        s_same, v_same, h_same = lif_trajectory(x, config)
    assert torch.equal(spikes.cpu(), s_same)
    assert torch.equal(spikes_u8.cpu().to(dtype), s_same)
    assert torch.equal(v.cpu(), v_same)
    assert torch.equal(margin.cpu(), (h_same - config.v_threshold).to(dtype))


@pytest.mark.parametrize("case", HOST_CASES, ids=case_id)
def test_host_forward_is_bit_exact_in_kernel_precision(host_lib: ctypes.CDLL, case) -> None:
    assert_forward_bit_exact(host_kernels(host_lib, case[2], case[4]), case, "cpu")


def test_host_backward_recomputes_float32_spikes_without_u8(host_lib: ctypes.CDLL) -> None:
    """With spikes_u8 = nullptr, backward takes S = (margin >= 0) from the stored margin; in
    float32 that is exact, so the gradient equals the one computed from the forward's spikes."""
    config = LIFConfig(surrogate="atan", alpha=2.0)
    kernels = HostKernels(host_lib, grid=2, block=64)
    x = lif_input((8, 300), config, seed=3)
    spikes, margin = torch.empty_like(x), torch.empty_like(x)
    spikes_u8 = torch.empty(x.shape, dtype=torch.uint8)
    kernels.forward(x, spikes, margin, spikes_u8, None, config)
    grad_s = torch.randn_like(x)
    grad_u8, grad_none = torch.empty_like(x), torch.empty_like(x)
    kernels.backward(grad_s, None, margin, spikes_u8, grad_u8, config)
    kernels.backward(grad_s, None, margin, None, grad_none, config)
    assert spikes.sum() > 0
    assert torch.equal(grad_u8, grad_none)


def test_host_fp16_backward_uses_saved_spikes_when_margin_underflows(host_lib: ctypes.CDLL) -> None:
    """A margin H - theta below fp16's smallest subnormal is stored as -0.0, which compares
    >= 0: backward must take S from the forward's uint8 spikes, not from the stored margin."""
    x = torch.tensor([[0.2], [0.2]], dtype=torch.float16)
    tau = 3.0
    h0 = np.float32(x[0, 0].item()) / np.float32(tau)  # H[0] = x / tau (V starts at 0)
    theta = float(np.nextafter(h0, np.float32(np.inf)))  # one float32 ulp above H[0]
    config = LIFConfig(tau=tau, v_threshold=theta, v_reset=0.0, surrogate="sigmoid", alpha=4.0)
    kernels = HostKernels(host_lib, grid=1, block=32)

    spikes, margin = torch.empty_like(x), torch.empty_like(x)
    spikes_u8 = torch.empty(x.shape, dtype=torch.uint8)
    kernels.forward(x, spikes, margin, spikes_u8, None, config)
    assert spikes[0, 0] == 0 and margin[0, 0] == 0 and math.copysign(1, margin[0, 0]) < 0

    grad_s = torch.tensor([[0.5], [-1.0]], dtype=torch.float16)
    grad_v = torch.tensor([[0.25], [1.0]], dtype=torch.float16)
    x_fused = x.clone().requires_grad_()
    s_fused, v_fused = lif_fused(x_fused, kernels, config, True)
    torch.autograd.backward([s_fused, v_fused], [grad_s, grad_v])
    x_oracle = x.double().requires_grad_()
    s_oracle, v_oracle, _ = lif_trajectory(x_oracle, config)
    torch.autograd.backward([s_oracle, v_oracle], [grad_s.double(), grad_v.double()])
    assert torch.equal(s_fused.detach(), s_oracle.detach().half())
    torch.testing.assert_close(x_fused.grad.double(), x_oracle.grad, atol=1e-2, rtol=1e-2)


# --------------------------------------------------------------------------------------------
# Software fp16 / bf16 conversions
# --------------------------------------------------------------------------------------------


def _convert(lib: ctypes.CDLL, name: str, values: torch.Tensor, out_dtype: torch.dtype):
    values = values.contiguous()
    out = torch.empty(values.shape, dtype=out_dtype)
    getattr(lib, f"host_{name}")(values.data_ptr(), out.data_ptr(), values.numel())
    return out


def _assert_same_floats(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Bitwise equal, except that any NaN matches any NaN (payloads are not specified)."""
    nan = expected.isnan()
    assert torch.equal(actual.isnan(), nan)
    a, e = actual[~nan].view(torch.int32), expected[~nan].view(torch.int32)
    bad = (a != e).nonzero().flatten()
    assert bad.numel() == 0, f"{bad.numel()} differ, e.g. {a[bad[:5]]} vs {e[bad[:5]]}"


def _assert_same_halves(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Bitwise equal 16-bit patterns, except that any NaN matches any NaN."""
    nan = expected.isnan()
    assert torch.equal(actual.view(expected.dtype).isnan(), nan)
    a, e = actual[~nan], expected[~nan].view(torch.int16)
    bad = (a != e).nonzero().flatten()
    assert bad.numel() == 0, f"{bad.numel()} differ, e.g. {a[bad[:5]]} vs {e[bad[:5]]}"


ALL_16BIT = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_half_to_float_exhaustive(host_lib: ctypes.CDLL, half: torch.dtype) -> None:
    name = "half_to_float" if half == torch.float16 else "bf16_to_float"
    actual = _convert(host_lib, name, ALL_16BIT, torch.float32)
    _assert_same_floats(actual, ALL_16BIT.view(half).float())


def _float_samples(half: torch.dtype) -> torch.Tensor:
    """Random float32 bit patterns (every class: NaN, inf, normal, subnormal, zero), values
    spread over the half type's exponent range, and every exact midpoint between neighbouring
    finite halves with its float32 neighbours (the round-to-nearest-even ties and near-ties)."""
    gen = torch.Generator().manual_seed(7)
    random_bits = torch.randint(-(2**31), 2**31, (1 << 20,), generator=gen, dtype=torch.int64)
    samples = [random_bits.to(torch.int32).view(torch.float32)]
    exponent = torch.randint(-30, 20, (1 << 18,), generator=gen).double()
    samples.append((torch.randn(1 << 18, generator=gen, dtype=torch.float64) * 2**exponent).float())
    halves = ALL_16BIT.view(half).double()
    finite = halves[torch.isfinite(halves)].unique()  # sorted; -0 and +0 merge
    midpoints = ((finite[:-1] + finite[1:]) / 2).float()  # exact in float32
    assert torch.equal(midpoints.double(), (finite[:-1] + finite[1:]) / 2)
    largest = finite[-1].item()
    beyond = [largest + (largest - finite[-2].item()) / 2]  # halfway to the next power: ties to inf
    samples += [
        midpoints,
        torch.nextafter(midpoints, torch.tensor(math.inf)),
        torch.nextafter(midpoints, torch.tensor(-math.inf)),
        finite.float(),
        torch.tensor(beyond + [-beyond[0], 0.0, -0.0, math.inf, -math.inf, math.nan]),
        torch.tensor([2.0**-25, 2.0**-24, 2.0**-14, 2.0**-126, 2.0**-149, 3e38, -3e38]),
    ]
    samples = torch.cat([s.float().flatten() for s in samples])
    return torch.cat([samples, torch.nextafter(samples, torch.tensor(0.0))])


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_float_to_half_round_to_nearest_even(host_lib: ctypes.CDLL, half: torch.dtype) -> None:
    name = "float_to_half" if half == torch.float16 else "float_to_bf16"
    values = _float_samples(half)
    _assert_same_halves(_convert(host_lib, name, values, torch.int16), values.to(half))


# --------------------------------------------------------------------------------------------
# The CuPy backend on a CUDA device
# --------------------------------------------------------------------------------------------

# test_reference_impls.py runs the cupy impl over the grid through lif_multistep; here, the
# forward bit for bit and a launch larger than the grid limit.
CUDA_CASES = covering_cases(every=12)


@pytest.mark.cuda
@pytest.mark.parametrize("case", CUDA_CASES, ids=case_id)
def test_cupy_forward_is_bit_exact_in_kernel_precision(case) -> None:
    assert_forward_bit_exact(CupyKernels(), case, "cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16", "bf16"])
def test_cupy_kernels_large_grid(dtype) -> None:
    """N beyond the grid limit (SMs x 8 blocks) so every thread strides over several neurons."""
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    neurons = sms * 8 * 256 * 3 + 17
    config = LIFConfig(v_reset=None, surrogate="atan", alpha=DEFAULT_ALPHA["atan"])
    case = (config, 8, neurons, dtype, 5)
    check_case(lambda x: lif_fused(x, CupyKernels(), config, True), case, "cuda")


def test_cupy_kernels_reject_cpu_tensors() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="CUDA tensor"):
        CupyKernels().forward(x, x.clone(), x.clone(), None, None, LIFConfig())


def test_cupy_unavailable_reason_explains_itself() -> None:
    reason = cupy_unavailable_reason()
    if torch.cuda.is_available():
        assert reason is None, reason
        return
    assert isinstance(reason, str) and reason.strip()
    assert "\n" not in reason
    # The reason must carry the error that actually stops CuPy here.
    try:
        import cupy
    except ImportError as exc:
        assert str(exc) in reason
        return
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # whatever it is, the reason must quote it
        assert " ".join(str(exc).split()) in reason
    else:
        assert count == 0 and "no CUDA device" in reason
