"""Compiles the Triton reference kernels for a GPU that is not there: Triton's own launcher
binder specialises the arguments exactly as a launch would (an int equal to 1 becomes a
compile-time constant, pointers get alignment hints), then Triton compiles to a cubin for sm_90.

Run as ``python -m tests.triton_aot`` without TRITON_INTERPRET (the interpreter never compiles):
prints one JSON line per launch and configuration, {"kernel", "neuron", "T", "N", "dtype", "BLOCK",
"num_warps", "ok", "error", "global"}, where
"global" counts the PTX's global loads and stores by width (e.g. "ld.v4.b32": 128-bit loads),
"registers" is ptxas's count per thread for sm_90 (None without ptxas), "threads" per block.
"""

from __future__ import annotations

import json
import os
import sys

import torch


def launches():
    """The kernel launches of one forward and one backward per neuron, as TritonKernels makes
    them, each with every configuration the autotuner may pick (triton_lif.CONFIGS). IF, PLIF
    (one k, and k per channel), CUBA and ALIF (their own pair of kernels, every output and
    upstream gradient written or read) are compiled at fewer shapes than LIF: the neuron changes
    the arithmetic, not how the [T, N] tensors are indexed."""
    import reference_kernels.triton_lif as module
    from reference_kernels.fused import LearnedDecay
    from reference_kernels.model import ALIFConfig, CUBAConfig, IFConfig, LIFConfig, PLIFConfig

    kernels = {"forward": module._lif_forward_kernel, "backward": module._lif_backward_kernel,
               "states forward": module._states_forward_kernel,
               "states backward": module._states_backward_kernel}  # fmt: skip
    names = {id(module._forward): "forward", id(module._backward): "backward",
             id(module._states_forward): "states forward",
             id(module._states_backward): "states backward"}  # fmt: skip
    recorded = []

    def record(kernel, n, args, flags):
        for block, warps in module.CONFIGS:
            config = {"BLOCK": block, "num_warps": warps}
            recorded.append((names[id(kernel)], args, flags | config))

    lif = LIFConfig(surrogate="sigmoid", alpha=4.0)
    every = ((1, 1), (1, 300), (8, 1), (8, 4097), (8, 1 << 20))
    fewer = ((1, 1), (8, 4097), (8, 1 << 20))
    neurons = (
        ("lif", lif, None, every),
        ("if", IFConfig(), None, fewer),
        ("plif", PLIFConfig(), 1, fewer),
        ("plifc", PLIFConfig(per_channel=True), 16, fewer),
        ("cuba", CUBAConfig(), None, fewer),
        ("alif", ALIFConfig(), None, fewer),
    )
    cases = []
    launch = module._launch
    module._launch = record
    try:
        for neuron, config, channels, shapes in neurons:
            for steps, n in shapes:
                for dtype in (torch.float32, torch.float16):
                    x = torch.zeros(steps, n, dtype=dtype)
                    if neuron in ("cuba", "alif"):  # every output and gradient, ALIF's theta
                        outputs = [x.clone() for _ in range(5)]
                        module.KERNELS.forward_states(x, *outputs, config)
                        module.KERNELS.backward_states(x, *outputs, config)
                        dtype_name = str(dtype).removeprefix("torch.")
                        cases += [(neuron, steps, n, dtype_name, launch) for launch in recorded]
                        recorded.clear()
                        continue
                    decay = None
                    if channels is not None:
                        decay = LearnedDecay(torch.full((channels,), 0.5), channels, 1)
                    module.KERNELS.forward(x, x.clone(), x.clone(), x.clone(), config, decay)
                    module.KERNELS.backward(x, x.clone(), x.clone(), x.clone(), config, decay)
                    dtype_name = str(dtype).removeprefix("torch.")
                    cases += [(neuron, steps, n, dtype_name, launch) for launch in recorded]
                    recorded.clear()
    finally:
        module._launch = launch
    return kernels, cases


def global_accesses(ptx: str) -> dict[str, int]:
    """Global loads and stores in the PTX by kind and width: {"ld.v4.b32": 2, "st.b8": 1, ...}."""
    import re

    counts: dict[str, int] = {}
    for op, vector, width in re.findall(
        r"\b(ld|st)\.global(?:\.[a-z_]+)*?(\.v[248])?\.([bsuf]\d+)", ptx
    ):
        key = f"{op}{vector}.{width}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def registers(ptx: str) -> int | None:
    """Registers per thread as ptxas assigns them for sm_90a, the target Triton writes for
    sm_90 (None where ptxas is missing)."""
    import re
    import shutil
    import subprocess
    import tempfile

    ptxas = shutil.which("ptxas")
    if ptxas is None or not ptx:
        return None
    with tempfile.TemporaryDirectory() as scratch:
        source = os.path.join(scratch, "kernel.ptx")
        with open(source, "w") as handle:
            handle.write(ptx)
        done = subprocess.run([ptxas, "-arch=sm_90a", "-v", "-o", os.devnull, source],
                              capture_output=True, text=True, check=False)  # fmt: skip
    found = re.search(r"Used (\d+) registers", done.stdout + done.stderr)
    return int(found.group(1)) if found else None


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("run without TRITON_INTERPRET=1: the interpreter does not compile", file=sys.stderr)
        return 2
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile, make_backend
    from triton.runtime.jit import create_function_from_signature

    target = GPUTarget("cuda", 90, 32)
    backend = make_backend(target)
    kernels, cases = launches()
    for neuron, steps, n, dtype, (name, args, kwargs) in cases:
        kernel = kernels[name]
        result = {"kernel": name, "neuron": neuron, "T": steps, "N": n, "dtype": dtype,
                  "ok": True, "error": None}  # fmt: skip
        result |= {"BLOCK": kwargs["BLOCK"], "num_warps": kwargs["num_warps"]}
        try:
            binder = create_function_from_signature(kernel.signature, kernel.params, backend)
            bound, specialization, options = binder(*args, **kwargs)
            options, signature, constexprs, attrs = kernel._pack_args(
                backend, kwargs, bound, specialization, options
            )
            compiled = compile(
                ASTSource(kernel, signature, constexprs, attrs),
                target=target,
                options=options.__dict__,
            )
            result["ok"] = "cubin" in compiled.asm
            result["global"] = global_accesses(compiled.asm.get("ptx", ""))
            result["registers"] = registers(compiled.asm.get("ptx", ""))
            result["threads"] = 32 * options.num_warps
        except Exception as error:  # reported per launch
            result["ok"] = False
            result["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1]}"
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
