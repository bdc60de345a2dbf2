#!/usr/bin/env bash
# Fills .whl/ (git-ignored) with the pure-Python wheels the GPU check needs beyond what the GPU
# machine has (it has torch, triton, cupy, nvidia-ml-py, matplotlib, pytest; Python 3.12; no
# internet). Pass .whl in the device tool's `carry`. Versions match requirements/cpu-constraints.txt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p .whl
pip_download=(python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12
    --implementation py --abi none --platform any -d .whl)
"${pip_download[@]}" rich==14.2.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0 \
    spikingjelly==2.0.0 snntorch==1.0.0 nir==1.0.8 nirtorch==2.6 loguru==0.7.3 scienceplots==2.2.2
# norse 1.x is an sdist only; --only-binary would silently pick norse 0.0.4. Rockpool 3.1.0 too.
# (BrainCog's node imports its whole package, timm, tonic and dv among it, and Spyx needs JAX: not
# carried, so their rows on the GPU machine say they are not installed.)
python3 -m pip wheel -q --no-deps -w .whl norse==1.1.0 rockpool==3.1.0
ls -la .whl
