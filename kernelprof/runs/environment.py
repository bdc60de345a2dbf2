"""What a result depends on: machine, device, library versions, kernelprof's commit.

Versions are read from package metadata (nothing is imported): kernelprof's own dependencies
that matter for the figures, and every distribution a registered framework needs.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import torch

from kernelprof.frameworks import registry
from kernelprof.harness.device import describe
from kernelprof.results.document import DeviceInfo, Environment

# Recorded with every result besides the frameworks' own requirements.
TOOLS = ("kernelprof", "triton", "cupy-cuda13x", "cupy-cuda12x", "nvidia-ml-py", "numpy")


def tracked_distributions() -> tuple[str, ...]:
    names = [*TOOLS[:1]]
    for framework in registry.frameworks().values():
        names += framework.distributions
    return tuple(dict.fromkeys([*names, *TOOLS[1:]]))


def environment(device: torch.device | str) -> Environment:
    device = torch.device(device)
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for distribution in tracked_distributions():
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = "not installed"
    gpu = {}
    if device.type == "cuda":
        gpu = {"cuda": torch.version.cuda,
               "capability": tuple(torch.cuda.get_device_capability(device))}  # fmt: skip
    return Environment(device=DeviceInfo(type=device.type, name=describe(device), **gpu),
                       platform=platform.platform(), versions=versions,
                       git_commit=_git_commit())  # fmt: skip


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
