#!/usr/bin/env bash
# Creates .venv in the repository root with the pinned CPU set-up, frameworks included,
# and installs kernelprof into it (editable). Idempotent: when .venv already matches the
# pinned files (a hash stamp), it returns at once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.kernelprof-setup"
python="${KERNELPROF_PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

want="$(cat requirements/cpu.txt requirements/cpu-constraints.txt requirements/no-deps.txt pyproject.toml scripts/setup-venv.sh | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "setting up $venv (pinned set from requirements/; a few minutes the first time)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# pip warns once per package about file:// indexes configured on some machines; keep the rest.
quiet() { grep -v "is neither a file nor a directory" || true; }
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install -r requirements/cpu.txt -c requirements/cpu-constraints.txt 2>&1 | quiet
# lava-dl and Sinabs declare requirements that conflict with this set; they run on it all the same.
"${pip[@]}" install --no-deps --ignore-requires-python -r requirements/no-deps.txt 2>&1 | quiet
"${pip[@]}" install --no-deps -e . 2>&1 | quiet
echo "$want" >"$stamp"
