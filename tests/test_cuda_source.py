"""Tests of the CUDA C kernels in reference_kernels/cuda/lif.cu, most of them without a GPU.

* lif.cu builds with nvcc for sm_80 and sm_90, and with NVRTC as CuPy compiles it, and exports
  the 48 unmangled kernel names the loader asks for (scalar and vector path of each direction
  and dtype, for LIF, IF, PLIF with one k and PLIF with k per channel);
* the vector entry points' global accesses are all 128-bit, the fp16/bf16 conversions are the
  hardware cvt instructions, and ptxas keeps every kernel within its launch bounds (registers,
  no spills);
* the same file, built as host C++ through host_shim.h (host_launch.cpp), runs its kernels
  serially behind the real autograd wrapper (reference_kernels.fused.lif_fused), choosing the
  vector or the scalar path by the rule the CuPy backend uses, and is checked against the
  float64 oracle and its autograd gradients over a covering grid of configurations that takes
  both paths in every dtype, and its forward bit for bit against the oracle evaluated in the
  kernel's own precision;
* IF and PLIF (dw included) through the host build against the oracle, on both paths;
* backward reads the spikes from the margin's sign bit, right where a value test is wrong;
* its software fp16/bf16 conversions agree with PyTorch's bitwise (exhaustively from half);
* the launch arithmetic (path rule, persistent grid) without a GPU;
* on a CUDA machine, the CuPy backend (reference_kernels.cupy_lif) passes the same checks;
* cupy_unavailable_reason() explains itself on a machine without a usable GPU.
"""

from __future__ import annotations

import ctypes
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import reference_kernels
from kernelprof.inputs import lif_input
from reference_kernels import cuda_host
from reference_kernels.cuda_host import HostKernels
from reference_kernels.cupy_lif import (
    BLOCK_SIZE,
    KERNEL_NAMES,
    KERNEL_PREFIXES,
    MIN_BLOCKS_PER_SM,
    CupyKernels,
    blocks_per_sm_from_registers,
    cupy_unavailable_reason,
    kernel_name,
    persistent_grid,
    use_vector_path,
    vector_lanes,
)
from reference_kernels.fused import FusedKernels, lif_fused, neuron_fused
from reference_kernels.fused_states import states_fused
from reference_kernels.model import DEFAULT_ALPHA, STATES, LIFConfig
from reference_kernels.torch_ref import lif_trajectory
from tests.lif_cases import case_id, check_case, covering_cases
from tests.neuron_cases import (
    check_neuron,
    if_configs,
    neuron_id,
    neuron_input,
    plif_configs,
    start_w,
)
from tests.test_fused_states import CONFIGS as STATE_CONFIGS

CUDA_DIR = Path(__file__).resolve().parents[1] / "reference_kernels" / "cuda"
LIF_CU = CUDA_DIR / "lif.cu"

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
VECTOR_KERNELS = tuple(name for name in KERNEL_NAMES if name.endswith("_vec"))
SCALAR_KERNELS = tuple(name for name in KERNEL_NAMES if not name.endswith("_vec"))
REGISTERS_PER_SM = 65536
# PLIF with k per channel keeps k and dk per lane, CUBA and ALIF a second state and its
# adjoint: they ask for 3 blocks per SM (lif.cu).
MIN_BLOCKS_PER_SM_CHANNELS = 3
WIDE_PREFIXES = ("plifc_", "cuba_", "alif_")


def min_blocks(name: str) -> int:
    return MIN_BLOCKS_PER_SM_CHANNELS if name.startswith(WIDE_PREFIXES) else MIN_BLOCKS_PER_SM


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


def _nvcc() -> str:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found")
    return nvcc


NVCC_FLAGS = ("-std=c++17", "-Werror", "all-warnings")


# --------------------------------------------------------------------------------------------
# The source builds for the GPU, within its launch bounds, with 128-bit accesses
# --------------------------------------------------------------------------------------------


def parse_ptxas_info(log: str) -> dict[str, dict[str, int]]:
    """Per entry function, from ``ptxas -v`` output: registers and spill stores/loads bytes."""
    kernels: dict[str, dict[str, int]] = {}
    current = None
    for line in log.splitlines():
        if match := re.search(r"Compiling entry function '(\w+)'", line):
            current = kernels.setdefault(match[1], {})
        elif current is None:
            continue
        elif match := re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line):
            current["spill_stores"], current["spill_loads"] = int(match[1]), int(match[2])
        elif match := re.search(r"Used (\d+) registers", line):
            current["registers"] = int(match[1])
    return kernels


def assert_within_launch_bounds(log: str, where: str) -> None:
    """Every kernel, as ptxas allocated it, lets MIN_BLOCKS_PER_SM blocks of BLOCK_SIZE threads
    share an SM's 64K registers, without spilling to local memory to get there."""
    info = parse_ptxas_info(log)
    assert set(info) == set(KERNEL_NAMES), f"{where}: ptxas reported {sorted(info)}"
    for name, usage in info.items():
        assert usage["registers"] * BLOCK_SIZE * min_blocks(name) <= REGISTERS_PER_SM, (
            f"{where}: {name} uses {usage['registers']} registers"
        )
        assert usage["spill_stores"] == usage["spill_loads"] == 0, f"{where}: {name} spills"


def test_launch_shape_constants_agree() -> None:
    """The block size and blocks per SM in lif.cu's __launch_bounds__ are the loader's."""
    source = LIF_CU.read_text()
    assert re.search(rf"^#define LIF_BLOCK_SIZE {BLOCK_SIZE}$", source, re.M)
    assert re.search(rf"^#define LIF_MIN_BLOCKS_PER_SM {MIN_BLOCKS_PER_SM}$", source, re.M)
    for name in ("CHANNELS", "STATES"):
        assert re.search(rf"^#define LIF_MIN_BLOCKS_PER_SM_{name} {MIN_BLOCKS_PER_SM_CHANNELS}$",
                         source, re.M), name  # fmt: skip


# sm_90 (H100, H200: the GPUs kernelprof is measured on) in the default run; sm_80 (A100) under
# the slow marker (20 s of nvcc), as gpu_check.sh's slow step runs it.
ARCHS = [pytest.param("sm_80", marks=pytest.mark.slow), "sm_90"]


@pytest.mark.parametrize("arch", ARCHS)
def test_nvcc_builds_cubin_within_launch_bounds(arch: str, tmp_path: Path) -> None:
    cubin = tmp_path / f"lif_{arch}.cubin"
    cmd = [_nvcc(), "-cubin", f"-arch={arch}", *NVCC_FLAGS, "-Xptxas", "-v"]
    result = subprocess.run(
        [*cmd, "-o", str(cubin), str(LIF_CU)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    binary = cubin.read_bytes()
    missing = [name for name in KERNEL_NAMES if not _symbol_in(binary, name)]
    assert not missing, f"kernels missing from the {arch} cubin: {missing}"
    assert_within_launch_bounds(result.stdout + result.stderr, f"nvcc {arch}")


def _ptx_entries(ptx: str) -> dict[str, str]:
    """Entry name -> its PTX (the directives before the body, and the body)."""
    parts = re.split(r"^\.visible \.entry (\w+)\(", ptx, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _global_accesses(body: str) -> list[str]:
    return re.findall(r"^\s*(?:@!?%p\d+\s+)?((?:ld|st)\.global[\w.]*)", body, re.M)


@pytest.fixture(scope="module", params=ARCHS)
def ptx_entries(request, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    arch = request.param
    ptx = tmp_path_factory.mktemp("lif_ptx") / f"lif_{arch}.ptx"
    cmd = [_nvcc(), "-ptx", f"-arch={arch}", *NVCC_FLAGS, "-o", str(ptx), str(LIF_CU)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = _ptx_entries(ptx.read_text())
    assert set(entries) == set(KERNEL_NAMES)
    return arch, entries


def test_ptx_launch_bounds(ptx_entries) -> None:
    """__launch_bounds__ reaches every entry point (and so constrains ptxas)."""
    _, entries = ptx_entries
    for name, body in entries.items():
        head = body[: body.index("{")]
        assert re.search(rf"\.maxntid {BLOCK_SIZE}, 1, 1", head), name
        assert re.search(rf"\.minnctapersm {min_blocks(name)}\b", head), name


def test_ptx_vector_path_is_128_bit(ptx_entries) -> None:
    """Every global load and store of a [T, N] tensor in a vector entry point moves 16 bytes
    (.v4 of 32-bit words): forward loads X and stores spikes, margin and V; backward loads the
    margin, dS and dV and stores dX. PLIF's other accesses are outside the time loop and
    counted: the one k (one 32-bit load) and each thread's dk partial (one 32-bit store, and
    one more on the T = 0 early exit); per channel, each lane's k (32-bit loads, one per lane)
    and each lane's dk (16-byte stores). The scalar entry points stay element-wise."""
    _, entries = ptx_entries
    vector_access = re.compile(r"(ld|st)\.global(\.nc)?\.v4\.(b32|u32|f32)")
    narrow_32 = re.compile(r"(ld|st)\.global(\.nc)?\.(b32|u32|f32)")
    for name in VECTOR_KERNELS:
        accesses = _global_accesses(entries[name])
        narrow = [a for a in accesses if not vector_access.fullmatch(a)]
        lanes = 4 if "_f32" in name else 8
        allowed = {  # (32-bit loads, 32-bit stores) outside the [T, N] traffic
            "lif": (0, 0), "if": (0, 0),
            "plif_forward": (1, 0), "plif_backward": (1, 2),
            "plifc_forward": (lanes, 0), "plifc_backward": (lanes, 0),
            "cuba": (0, 0), "alif": (0, 0),
        }  # fmt: skip
        prefix = name.split("_")[0]
        expected = allowed.get(prefix) or allowed[f"{prefix}_{name.split('_')[1]}"]
        assert all(narrow_32.fullmatch(a) for a in narrow), f"{name}: {sorted(set(narrow))}"
        counted = (sum(a.startswith("ld.") for a in narrow),
                   sum(a.startswith("st.") for a in narrow))  # fmt: skip
        assert counted == expected, f"{name}: narrow (loads, stores) {counted}, not {expected}"
        loads = sum(a.startswith("ld.") for a in accesses) - counted[0]
        stores = sum(a.startswith("st.") for a in accesses) - counted[1]
        needed = (1, 3) if "forward" in name else (3, 1)
        assert loads >= needed[0] and stores >= needed[1], f"{name}: {loads} ld, {stores} st"
    for name in SCALAR_KERNELS:
        accesses = _global_accesses(entries[name])
        assert accesses and not [a for a in accesses if ".v" in a], name


def test_ptx_converts_in_hardware(ptx_entries) -> None:
    """fp16 and bf16 conversions are single cvt instructions on the device, not the software
    bit manipulation the host build uses (sm_80 and later have cvt.rn.bf16.f32)."""
    _, entries = ptx_entries
    for name, body in entries.items():
        if "_f16" in name:
            assert "cvt.f32.f16" in body and "cvt.rn.f16.f32" in body, name
        if "_bf16" in name:
            assert "cvt.rn.bf16.f32" in body, name


def test_nvrtc_builds_like_cupy() -> None:
    """NVRTC, with the options cupy.RawModule adds, compiles lif.cu with no header available,
    and within the launch bounds (what CuPy loads, not only what nvcc makes)."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except (ImportError, RuntimeError, OSError) as exc:
        pytest.skip(f"NVRTC unavailable: {exc}")
    program = nvrtc.createProgram(LIF_CU.read_text(), "lif.cu", (), ())
    try:
        options = ("-std=c++17", "-arch=sm_90", "--device-as-default-execution-space")
        try:
            nvrtc.compileProgram(program, (*options, "--ptxas-options=-v"))
        except nvrtc.NVRTCError:
            pytest.fail(f"NVRTC failed:\n{nvrtc.getProgramLog(program)}")
        binary = nvrtc.getCUBIN(program)
        log = nvrtc.getProgramLog(program)
    finally:
        nvrtc.destroyProgram(program)
    missing = [name for name in KERNEL_NAMES if not _symbol_in(binary, name)]
    assert not missing, f"kernels missing from the NVRTC cubin: {missing}"
    assert_within_launch_bounds(log, "NVRTC sm_90")


# --------------------------------------------------------------------------------------------
# Launch arithmetic, shared by the CuPy backend and the host build
# --------------------------------------------------------------------------------------------


def test_vector_lanes_are_16_bytes() -> None:
    assert [vector_lanes(torch.empty(0, dtype=d).element_size()) for d in DTYPES] == [4, 8, 8]


def test_use_vector_path_rule() -> None:
    aligned = (0x7F0000000000, 0x7F0000000100, 0)  # 0: an absent (null) tensor
    assert use_vector_path(300, 4, aligned)
    assert not use_vector_path(302, 4, aligned)  # rows would start 8 bytes off
    assert use_vector_path(1000, 2, aligned)
    assert not use_vector_path(300, 2, aligned)  # 300 % 8 = 4
    assert not use_vector_path(1000, 2, (*aligned, 0x7F0000000002))
    assert not use_vector_path(300, 4, (0x7F0000000008,))
    assert not use_vector_path(1, 4, ())


def test_kernel_name_covers_the_exports() -> None:
    names = {
        kernel_name(direction, dtype, vector, prefix)
        for prefix in KERNEL_PREFIXES
        for direction in ("forward", "backward")
        for dtype in DTYPES
        for vector in (False, True)
    }
    assert names == set(KERNEL_NAMES) and len(KERNEL_NAMES) == 72  # 6 prefixes x 12
    assert kernel_name("forward", torch.float32, True) == "lif_forward_f32_vec"


def test_persistent_grid() -> None:
    assert persistent_grid(1, 256, 4, 132) == 1
    assert persistent_grid(0, 256, 4, 132) == 1
    assert persistent_grid(256 * 10 + 1, 256, 4, 132) == 11
    assert persistent_grid(10**9, 256, 4, 132) == 528  # resident blocks only; threads stride
    assert persistent_grid(10**9, 256, 0, 132) == 132  # a failed query still launches


def test_blocks_per_sm_from_registers() -> None:
    # As CUDA's occupancy calculator has it for 256-thread blocks on sm_80 .. sm_90.
    assert blocks_per_sm_from_registers(64, 256) == 4
    assert blocks_per_sm_from_registers(56, 256) == 4
    assert blocks_per_sm_from_registers(40, 256) == 6
    assert blocks_per_sm_from_registers(32, 256) == 8
    assert blocks_per_sm_from_registers(16, 256) == 8  # thread slots: 2048 per SM
    assert blocks_per_sm_from_registers(255, 256) == 1


# --------------------------------------------------------------------------------------------
# The same source built for the host
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def host_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """lif.cu compiled by g++ through host_shim.h (host_launch.cpp), loaded with ctypes: a fresh
    build, so that this session proves the sources compile."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found")
    try:
        library = cuda_host.build(tmp_path_factory.mktemp("lif_host"))
    except cuda_host.HostBuildError as error:
        pytest.fail(str(error))
    return cuda_host.load(library)


# --------------------------------------------------------------------------------------------
# The host build against the oracle, over the project's grid (tests/lif_cases.py)
# --------------------------------------------------------------------------------------------

# The project's grid has N = 1, 300, 4097: the float32 vector path (4 | 300) and the scalar
# path in every dtype. N = 1000 (8 | 1000) adds the fp16/bf16 vector path on a quarter of the
# configurations.
HALF_DTYPES = (torch.float16, torch.bfloat16)
VECTOR_N = 1000
HOST_CASES = covering_cases() + [
    (config, steps, VECTOR_N, dtype, seed)
    for config, steps, _, dtype, seed in covering_cases(dtypes=HALF_DTYPES, every=4)
]
# Small launch geometries, so that threads also walk the grid-stride loop over several neurons.
GEOMETRIES = ((32, 1), (64, 2), (256, 3))  # (block, at most this many blocks)


def host_kernels(lib: ctypes.CDLL, seed: int) -> HostKernels:
    block, blocks = GEOMETRIES[seed % len(GEOMETRIES)]
    return HostKernels(lib, max_blocks=blocks, block=block)


def _vector_case(case) -> bool:
    """The path the host build takes for a case (torch's CPU allocations are 64-byte aligned)."""
    _, _, neurons, dtype, _ = case
    return use_vector_path(neurons, torch.empty(0, dtype=dtype).element_size(), ())


def test_cases_take_both_paths_in_every_dtype() -> None:
    for dtype in DTYPES:
        paths = {_vector_case(case) for case in HOST_CASES if case[3] == dtype}
        assert paths == {False, True}, dtype


def test_grid_walks_the_grid_stride_loop() -> None:
    """On each path some case has fewer threads than work items, so threads stride."""
    for vector in (False, True):
        walks = []
        for case in HOST_CASES:
            if _vector_case(case) != vector:
                continue
            kernels = host_kernels(None, case[4])
            lanes = vector_lanes(torch.empty(0, dtype=case[3]).element_size()) if vector else 1
            items = case[2] // lanes
            grid = persistent_grid(items, kernels.block, kernels.max_blocks, 1)
            walks.append(grid * kernels.block < items)
        assert any(walks), vector


def _expected_launch(case, direction: str) -> str:
    return kernel_name(direction, case[3], _vector_case(case))


@pytest.mark.parametrize("case", HOST_CASES, ids=case_id)
def test_host_build_matches_oracle(host_lib: ctypes.CDLL, case) -> None:
    config, _, neurons, _, seed = case
    kernels = host_kernels(host_lib, seed)
    check_case(lambda x: lif_fused(x, kernels, config, True), case, "cpu")
    assert set(kernels.launched) == {
        _expected_launch(case, "forward"),
        _expected_launch(case, "backward"),
    }


NEURON_HOST_CASES = [
    (config, shape, dtype)
    for config in (*if_configs(), *plif_configs())
    for shape, dtype in (((6, 301), torch.float32), ((5, 2, 8, 25), torch.float32),
                         ((5, 2, 8, 25), torch.float16), ((4, 3, 5, 7), torch.bfloat16))
]  # fmt: skip


@pytest.mark.parametrize(
    "case", NEURON_HOST_CASES,
    ids=lambda c: f"{neuron_id(c[0])}-{'x'.join(map(str, c[1]))}-{str(c[2])[6:]}",
)  # fmt: skip
def test_host_build_if_and_plif_match_oracle(host_lib: ctypes.CDLL, case) -> None:
    """IF and PLIF (one k, k per channel; dw included) through the host build, on the vector
    path (N = 400: a multiple of 4 and 8) and the scalar one (301, and 105 in bf16)."""
    config, shape, dtype = case
    seed = len(neuron_id(config)) + shape[-1]
    kernels = host_kernels(host_lib, seed)

    def run(x, w):
        k = None if w is None else torch.sigmoid(w.float())
        return neuron_fused(x, kernels, config, True, "margin", k)

    x = neuron_input(shape, config, dtype=dtype, seed=seed)
    check_neuron(run, config, x, start_w(config, shape, seed), seed=seed)
    neurons = math.prod(shape[1:])
    vector = use_vector_path(neurons, x.element_size(), ())
    prefix = "plifc" if config.neuron == "plif" and config.per_channel else config.neuron
    assert set(kernels.launched) == {kernel_name(direction, dtype, vector, prefix)
                                     for direction in ("forward", "backward")}  # fmt: skip


STATE_HOST_CONFIGS = STATE_CONFIGS  # every reset, decay and detach setting of the Triton tests


def _states_and_grad(x, config, kernels, loss) -> tuple:
    """(S, V, the second state, dX after ``loss``'s backward) of CUBA or ALIF over ``x``: the
    eager oracle (``kernels`` None), or ``states_fused`` through ``kernels``."""
    (name,) = STATES[config.neuron]
    xr = x.clone().requires_grad_()
    if kernels is None:
        spikes, states = reference_kernels.multistep(xr, config, return_state=True)
        v, state = states["v"], states[name]
    else:
        spikes, v, states = states_fused(xr, kernels, config, True)
        state = states[name]
    loss((spikes, v, state)).backward()
    return spikes, v, state, xr.grad


@pytest.mark.parametrize("config", STATE_HOST_CONFIGS, ids=str)
@pytest.mark.parametrize(("neurons", "dtype"), [
    (300, torch.float32), (301, torch.float32), (400, torch.float16), (105, torch.bfloat16),
])  # fmt: skip
def test_host_build_cuba_and_alif_match_oracle(host_lib: ctypes.CDLL, config, neurons, dtype):
    """CUBA and ALIF through the host build (reference_kernels.fused_states), on the vector
    path (N = 300 fp32, 400 fp16) and the scalar one: against the eager oracle in the same
    precision (float32 inside, one rounding on storing), spikes, V and the state equal bit for
    bit; dX, with upstream gradients on all three, within the storage dtype's rounding."""
    kernels = HostKernels(host_lib, max_blocks=2, block=32)
    x = lif_input((8, neurons), config, seed=neurons).to(dtype)
    generator = torch.Generator().manual_seed(3)
    upstream = [torch.randn(x.shape, generator=generator).to(dtype) for _ in range(3)]

    def loss(outputs):
        return sum((out.float() * g.float()).sum()
                   for out, g in zip(outputs, upstream, strict=True))  # fmt: skip

    oracle, host = (_states_and_grad(x, config, route, loss) for route in (None, kernels))
    assert 0.05 < float(oracle[0].float().mean()) < 0.7
    for got, want in zip(host[:3], oracle[:3], strict=True):
        assert torch.equal(got, want)
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(host[3].float(), oracle[3].float(), atol=tolerance,
                               rtol=tolerance)  # fmt: skip
    vector = use_vector_path(neurons, x.element_size(), ())
    assert kernels.launched == [kernel_name(direction, dtype, vector, config.neuron)
                                for direction in ("forward", "backward")]  # fmt: skip


def assert_forward_bit_exact(kernels: FusedKernels, case, device: str) -> None:
    """The kernel forward, called directly, equals the oracle evaluated in the kernel's own
    precision (float32 arithmetic, same operation order, one rounding to the storage dtype)
    bit for bit: spikes, V and the saved margin H - theta, whose sign bit is clear exactly
    where a spike fired."""
    config, steps, neurons, dtype, seed = case
    x = lif_input((steps, neurons), config, dtype=dtype, seed=seed)
    xd = x.to(device)
    spikes, margin, v = torch.empty_like(xd), torch.empty_like(xd), torch.empty_like(xd)
    kernels.forward(xd, spikes, margin, v, config)
    with torch.no_grad():
        s_same, v_same, h_same = lif_trajectory(x, config)
    assert torch.equal(spikes.cpu(), s_same)
    assert torch.equal(v.cpu(), v_same)
    margin = margin.cpu()
    assert torch.equal(margin, (h_same - config.v_threshold).to(dtype))
    assert torch.equal(_sign_clear(margin), s_same.bool())


def _sign_clear(values: torch.Tensor) -> torch.Tensor:
    """Elementwise: the sign bit of the stored bits is 0 (what backward reads as a spike)."""
    bits = values.view(torch.int32 if values.element_size() == 4 else torch.int16)
    return bits >= 0


@pytest.mark.parametrize("case", HOST_CASES, ids=case_id)
def test_host_forward_is_bit_exact_in_kernel_precision(host_lib: ctypes.CDLL, case) -> None:
    kernels = host_kernels(host_lib, case[4])
    assert_forward_bit_exact(kernels, case, "cpu")
    assert kernels.launched == [_expected_launch(case, "forward")]


@pytest.mark.parametrize(
    ("neurons", "dtype"),
    [(300, torch.float32), (301, torch.float32), (1000, torch.float16), (300, torch.bfloat16)],
)
def test_host_forward_skips_absent_outputs(host_lib: ctypes.CDLL, neurons, dtype) -> None:
    """A null spikes (a margin recompute) or margin (a memory-lean forward) is not written; the
    outputs that are given are the full forward's."""
    config = LIFConfig(v_reset=None, surrogate="atan", alpha=2.0)
    kernels = HostKernels(host_lib, max_blocks=2, block=32)
    x = lif_input((5, neurons), config, dtype=dtype, seed=11)
    spikes, margin, v = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    kernels.forward(x, spikes, margin, v, config)
    margin_only = torch.full_like(x, 7.0)
    kernels.forward(x, None, margin_only, None, config)
    spikes_v, v_only = torch.full_like(x, 7.0), torch.full_like(x, 7.0)
    kernels.forward(x, spikes_v, None, v_only, config)
    assert torch.equal(margin_only, margin)
    assert torch.equal(spikes_v, spikes) and torch.equal(v_only, v)
    assert spikes.sum() > 0


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16", "bf16"])
def test_host_unaligned_tensors_take_the_scalar_path(host_lib: ctypes.CDLL, dtype) -> None:
    """A tensor starting one element past a 16-byte boundary (N divisible by the lanes) runs
    on the scalar path, with the same results as the aligned tensor on the vector path."""
    config = LIFConfig(surrogate="superspike", alpha=DEFAULT_ALPHA["superspike"])
    kernels = HostKernels(host_lib, max_blocks=2, block=64)
    x = lif_input((4, 1000), config, dtype=dtype, seed=2)
    flat = torch.empty(x.numel() + 16, dtype=dtype)
    start = (-flat.data_ptr()) % 16 // x.element_size() + 1
    x_unaligned = flat[start : start + x.numel()].view(x.shape)
    assert x_unaligned.data_ptr() % 16 == x.element_size()
    x_unaligned.copy_(x)
    results = []
    for inputs in (x, x_unaligned):
        outputs = [torch.empty_like(x) for _ in range(3)]
        kernels.forward(inputs, *outputs, config)
        results.append(outputs)
    assert kernels.launched == [kernel_name("forward", dtype, v) for v in (True, False)]
    for aligned, unaligned in zip(*results, strict=True):
        assert torch.equal(aligned, unaligned)


def _oracle_gradient(x: torch.Tensor, config: LIFConfig, grad_s, grad_v) -> torch.Tensor:
    x_oracle = x.double().requires_grad_()
    s_oracle, v_oracle, _ = lif_trajectory(x_oracle, config)
    torch.autograd.backward([s_oracle, v_oracle], [grad_s.double(), grad_v.double()])
    return x_oracle.grad


def _fused_gradient(x: torch.Tensor, kernels, config: LIFConfig, grad_s, grad_v):
    x_fused = x.clone().requires_grad_()
    s_fused, v_fused = lif_fused(x_fused, kernels, config, True)
    torch.autograd.backward([s_fused, v_fused], [grad_s, grad_v])
    return s_fused.detach(), x_fused.grad


@pytest.mark.parametrize("neurons", [8, 3], ids=["vector", "scalar"])
def test_host_float32_spikes_from_the_margin_sign(host_lib: ctypes.CDLL, neurons: int) -> None:
    """float32 threshold ties: H == theta fires with margin +0.0, and so does H = -0.0 against
    theta = +0.0 (reachable with V_r = -0.0 and X = -0.0), whose plain difference H - theta is
    -0.0: forward must store it as +0.0 so that its sign bit still reads as a spike in
    backward, where the hard reset makes S decide whether dV reaches H."""
    kernels = HostKernels(host_lib, max_blocks=1, block=32)
    grad_s = torch.full((2, neurons), 0.5)
    grad_v = torch.full((2, neurons), 1.0)
    for x, config in [
        (torch.full((2, neurons), 1.0), LIFConfig(tau=2.0, v_threshold=0.5, v_reset=0.0)),
        (torch.full((2, neurons), -0.0), LIFConfig(tau=2.0, v_threshold=0.0, v_reset=-0.0)),
    ]:
        spikes, margin = torch.empty_like(x), torch.empty_like(x)
        kernels.forward(x, spikes, margin, None, config)
        assert bool(spikes[0].eq(1).all())
        assert torch.equal(margin[0].view(torch.int32), torch.zeros(neurons, dtype=torch.int32))
        s_fused, grad_fused = _fused_gradient(x, kernels, config, grad_s, grad_v)
        grad_oracle = _oracle_gradient(x, config, grad_s, grad_v)
        assert torch.equal(s_fused, torch.ones_like(x))
        torch.testing.assert_close(grad_fused.double(), grad_oracle, atol=1e-6, rtol=1e-6)
    expected = kernel_name("backward", torch.float32, neurons % 4 == 0)
    assert expected in kernels.launched


def _one_ulp_below_threshold_case(x: torch.Tensor, tau: float) -> LIFConfig:
    """A config whose threshold is one float32 ulp above H[0] = X[0] / tau (V starts at 0), so
    step 0 does not fire but its float32 margin is tiny and negative."""
    h0 = np.float32(x[0, 0].item()) / np.float32(tau)
    theta = float(np.nextafter(h0, np.float32(np.inf)))
    return LIFConfig(tau=tau, v_threshold=theta, v_reset=0.0, surrogate="sigmoid", alpha=4.0)


@pytest.mark.parametrize(
    ("dtype", "value"),
    # fp16: H[0] ~ 0.067, so its ulp (2^-27) is below fp16's smallest subnormal (2^-24).
    # bf16 keeps float32's exponent range, so the margin must be a float32 subnormal below
    # bf16's smallest (2^-133): H[0] = 2^-128 / 3 is a float32 subnormal, its ulp 2^-149.
    [(torch.float16, 0.2), (torch.bfloat16, 2.0**-128)],
    ids=["f16", "bf16"],
)
@pytest.mark.parametrize("neurons", [8, 1], ids=["vector", "scalar"])
def test_host_half_backward_reads_underflowed_margin_as_no_spike(
    host_lib: ctypes.CDLL, dtype, value, neurons: int
) -> None:
    """A negative margin H - theta that rounds to -0.0 in the storage dtype compares >= 0:
    backward must take S = 0 from its sign bit, not S = 1 from its value."""
    x = torch.full((2, neurons), value, dtype=dtype)
    config = _one_ulp_below_threshold_case(x, tau=3.0)
    kernels = HostKernels(host_lib, max_blocks=1, block=32)

    spikes, margin = torch.empty_like(x), torch.empty_like(x)
    kernels.forward(x, spikes, margin, None, config)
    assert bool((spikes[0] == 0).all()) and bool((spikes[1] == 1).all())
    minus_zero = torch.full((neurons,), -(2**15), dtype=torch.int16)
    assert torch.equal(margin[0].view(torch.int16), minus_zero)

    grad_s = torch.tensor([[0.5], [-1.0]], dtype=dtype).expand(2, neurons).contiguous()
    grad_v = torch.tensor([[0.25], [1.0]], dtype=dtype).expand(2, neurons).contiguous()
    s_fused, grad_fused = _fused_gradient(x, kernels, config, grad_s, grad_v)
    grad_oracle = _oracle_gradient(x, config, grad_s, grad_v)
    assert torch.equal(s_fused, spikes)
    torch.testing.assert_close(grad_fused.double(), grad_oracle, atol=1e-2, rtol=1e-2)
    expected = kernel_name("backward", dtype, neurons % 8 == 0)
    assert expected in kernels.launched


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
# forward bit for bit, a launch larger than the persistent grid on each path, and a launch on
# a stream other than the default one.
CUDA_CASES = covering_cases(every=12) + [
    (config, steps, VECTOR_N, dtype, seed)
    for config, steps, _, dtype, seed in covering_cases(dtypes=HALF_DTYPES, every=12)
]


@pytest.mark.cuda
@pytest.mark.parametrize("case", CUDA_CASES, ids=case_id)
def test_cupy_forward_is_bit_exact_in_kernel_precision(case) -> None:
    assert_forward_bit_exact(CupyKernels(), case, "cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("extra", [17, 0], ids=["scalar", "vector"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f16", "bf16"])
def test_cupy_kernels_large_grid(dtype, extra: int) -> None:
    """N beyond the persistent grid (at most 8 blocks of 256 threads per SM, 8 lanes on the
    vector path) so every thread strides over several neurons or packets."""
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    neurons = sms * 8 * 256 * 8 * 2 + extra
    config = LIFConfig(v_reset=None, surrogate="atan", alpha=DEFAULT_ALPHA["atan"])
    case = (config, 8, neurons, dtype, 5)
    check_case(lambda x: lif_fused(x, CupyKernels(), config, True), case, "cuda")


@pytest.mark.cuda
def test_cupy_kernels_run_on_torch_current_stream() -> None:
    """Launches follow torch's current stream: a forward on a side stream, read there right
    after, sees its own results (the wrapper of each stream is cached by its handle)."""
    config = LIFConfig()
    x = lif_input((4, 4096), config, device="cuda", seed=1)
    expected = [torch.empty_like(x) for _ in range(3)]
    CupyKernels().forward(x, *expected, config)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # the second call takes the cached stream wrapper
            outputs = [torch.empty_like(x) for _ in range(3)]
            CupyKernels().forward(x, *outputs, config)
            assert all(torch.equal(a, e) for a, e in zip(outputs, expected, strict=True))
    torch.cuda.synchronize()


def test_cupy_kernels_reject_cpu_tensors() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="CUDA tensor"):
        CupyKernels().forward(x, x.clone(), x.clone(), None, LIFConfig())


def test_cupy_kernels_name() -> None:
    assert CupyKernels().name == "cupy"  # the fused wrapper's registry key


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


class HostRoutedCupy(CupyKernels):
    """The CuPy backend's own planning and argument marshalling (entry point, grid, scalars as
    their C types, pointer order) on CPU tensors, each launch handed to the host build's entry
    point of the same name: what the GPU would be given, run by the very same kernel body."""

    device_type = "cpu"

    def __init__(self, lib: ctypes.CDLL) -> None:
        super().__init__()
        self.name, self.lib, self.launched = "cupy-host-routed", lib, []

    def _kernel(self, device, name):
        from reference_kernels.cupy_lif import _Kernel

        return _Kernel(function=name, blocks_per_sm=1, sm_count=2)

    def _stream(self, device):
        return None

    def _launch(self, device, function, grid, args, stream) -> None:
        self.launched.append(function)
        plain = [float(a) if isinstance(a, np.floating) else int(a) for a in args]
        getattr(self.lib, f"host_launch_{function}")(grid, BLOCK_SIZE, *plain)


@pytest.mark.parametrize("config", [STATE_CONFIGS[0], STATE_CONFIGS[4], STATE_CONFIGS[6]],
                         ids=str)  # fmt: skip
@pytest.mark.parametrize("neurons", [300, 301])
def test_cupy_backend_passes_cuba_and_alif_what_their_kernels_take(host_lib, config, neurons):
    """CupyKernels.forward_states / backward_states, their launches run by the host build:
    the oracle's spikes, V and state bit for bit and its dX, on both paths."""
    kernels = HostRoutedCupy(host_lib)
    x = lif_input((6, neurons), config, seed=2)

    def loss(outputs):
        spikes, v, state = outputs
        return spikes.sum() + (v * v).sum() + (state * 0.5).sum()

    results = [_states_and_grad(x, config, route, loss) for route in (None, kernels)]
    for got, want in zip(results[1][:3], results[0][:3], strict=True):
        assert torch.equal(got, want)
    torch.testing.assert_close(results[1][3], results[0][3], atol=1e-5, rtol=1e-5)
    vector = use_vector_path(neurons, 4, ())
    assert kernels.launched == [kernel_name(d, torch.float32, vector, config.neuron)
                                for d in ("forward", "backward")]  # fmt: skip
