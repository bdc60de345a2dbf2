"""The layout holds: each framework's package is imported from its own module only, imports point
down the layers, the worker knows nothing above the harness, and the registry imports no
framework package until a builder runs."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kernelprof"
# The packages of the frameworks: the top-level import names of what each built-in framework
# module declares it requires, each with the modules that declare it (read from the modules, so a
# new framework module is checked without a line here).


def framework_packages() -> dict[str, set[str]]:
    from kernelprof.frameworks import registry

    declared: dict[str, set[str]] = {}
    for name in registry.built_in_modules():
        framework = importlib.import_module(f"kernelprof.frameworks.{name}").FRAMEWORK
        requirements = [*framework.requires]
        requirements += [r for neuron in framework.neurons for r in neuron.requires]
        for requirement in requirements:
            top = (requirement.module or requirement.distribution).split(".")[0]
            declared.setdefault(top, set()).add(f"kernelprof/frameworks/{name}.py")
    return declared


# What each part of kernelprof may import of kernelprof (beside itself and reference_kernels).
ALLOWED = {
    "kernelprof.inputs": set(),
    "kernelprof.traces": set(),
    "kernelprof.harness": {"kernelprof.traces"},  # the profiler reads its traces back
    "kernelprof.frameworks": set(),
    "kernelprof.verify": {"kernelprof.frameworks", "kernelprof.inputs"},
    "kernelprof.results": {"kernelprof.inputs", "kernelprof.traces"},  # trace attribution
    "kernelprof.present": {"kernelprof.results"},
    "kernelprof.runs": {
        "kernelprof.frameworks",
        "kernelprof.harness",
        "kernelprof.inputs",
        "kernelprof.verify",
        "kernelprof.results",
        "kernelprof.traces",
    },  # fmt: skip
    "kernelprof.cli": {"kernelprof"},  # parsing and dispatch: anything below it
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions (absolute names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                package = module_name(path)
                if path.name != "__init__.py":
                    package = package.rsplit(".", 1)[0]
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            else:
                found.add(node.module)
    return found


def sources(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_each_framework_package_is_imported_from_its_own_module_only():
    declared = framework_packages()
    assert {"spikingjelly", "snntorch", "norse", "lava", "sinabs"} <= set(declared)
    seen: dict[str, set[str]] = {name: set() for name in declared}
    for path in sources(PACKAGE):
        for name in imports(path):
            top = name.split(".")[0]
            if top in seen:
                seen[top].add(str(path.relative_to(ROOT)))
    for package, declaring in declared.items():
        assert seen[package], f"no module imports {package}, though {declaring} require it"
        assert len(seen[package]) == 1 and seen[package] <= declaring, (package, seen[package])


def test_imports_point_down_the_layers():
    wrong = []
    for path in sources(PACKAGE):
        name = module_name(path)
        part = next((p for p in sorted(ALLOWED, key=len, reverse=True)
                     if name == p or name.startswith(p + ".")), None)  # fmt: skip
        if part is None:
            continue  # kernelprof/__init__.py
        for imported in imports(path):
            if not imported.startswith("kernelprof") or imported == "kernelprof":
                continue
            if imported.startswith(part) or any(
                imported == a or imported.startswith(a + ".") for a in ALLOWED[part]
            ):
                continue
            wrong.append(f"{name} imports {imported}")
    assert not wrong, wrong


@pytest.mark.parametrize("path", sources(ROOT / "reference_kernels"), ids=lambda p: p.name)
def test_reference_kernels_import_nothing_of_kernelprof(path):
    assert not [name for name in imports(path) if name.startswith("kernelprof")]


def test_the_worker_imports_nothing_of_kernelprof():
    assert not [n for n in imports(PACKAGE / "harness" / "worker.py") if n.startswith("kernelprof")]


def test_finding_the_frameworks_imports_none_of_their_packages():
    packages = framework_packages()
    assert {"spikingjelly", "snntorch", "norse", "lava", "sinabs"} <= set(packages)
    code = (
        "import sys\n"
        "from kernelprof.frameworks import registry\n"
        "registry.frameworks(); registry.neurons(); registry.networks()\n"
        "import reference_kernels.torch_ref, reference_kernels.compiled\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(packages)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_import_scan_sees_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from snntorch import surrogate\n    import norse.torch\n")
    assert {"snntorch", "norse.torch"} <= imports(probe)
