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
        requirements += [r for impl in framework.implementations for r in impl.requires]
        for requirement in requirements:
            top = (requirement.module or requirement.distribution).split(".")[0]
            declared.setdefault(top, set()).add(f"kernelprof/frameworks/{name}.py")
    return declared


# What each part of kernelprof may import of kernelprof (beside itself and reference_kernels).
ALLOWED = {
    "kernelprof.inputs": set(),
    "kernelprof.traces": set(),
    "kernelprof.frameworks": set(),
    "kernelprof.results": {"kernelprof.traces"},  # analysis: the step attribution between traces
    "kernelprof.harness": {"kernelprof.traces", "kernelprof.results"},  # it makes records
    "kernelprof.verify": {"kernelprof.frameworks", "kernelprof.inputs", "kernelprof.results"},
    "kernelprof.requests": {"kernelprof.frameworks", "kernelprof.results"},
    "kernelprof.present": {"kernelprof.results"},
    "kernelprof.runs": {
        "kernelprof.frameworks",
        "kernelprof.harness",
        "kernelprof.inputs",
        "kernelprof.verify",
        "kernelprof.requests",
        "kernelprof.results",
        "kernelprof.traces",
    },  # fmt: skip
    "kernelprof.api": {"kernelprof"},  # the Python API: requests, runs, records, presentation
    "kernelprof.cli": {"kernelprof"},  # parsing and dispatch: anything below it
}
# The modules of kernelprof.results that hold records (not analysis, not reading files).
RECORD_MODULES = {
    module_path.stem
    for module_path in (Path(__file__).resolve().parents[1] / "kernelprof" / "results").glob("*.py")
} - {"analysis", "files", "store", "__init__"}


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
                if node.module == "kernelprof":  # `from kernelprof import api`: its module
                    found |= {f"kernelprof.{alias.name}" for alias in node.names}
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
        "registry.frameworks(); registry.implementations(); registry.networks()\n"
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


def test_presentation_reads_result_records_only():
    """present/ imports of kernelprof: only record modules of kernelprof.results (nothing that
    measures, analyses, runs or reads files) and its own modules."""
    allowed = {f"kernelprof.results.{name}" for name in RECORD_MODULES}
    wrong = []
    for path in sources(PACKAGE / "present"):
        for name in imports(path):
            if name.startswith("kernelprof.present") or not name.startswith("kernelprof"):
                continue
            if name not in allowed:
                wrong.append(f"{module_name(path)} imports {name}")
    assert not wrong, wrong
    assert {"check", "compare", "e2e", "study", "timing", "record"} <= RECORD_MODULES


def record_classes():
    import dataclasses
    import inspect

    found = []
    for name in sorted(RECORD_MODULES):
        module = importlib.import_module(f"kernelprof.results.{name}")
        found += [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
        ]
    return found


def test_every_record_is_frozen_so_no_stage_writes_into_another_stages_record():
    import dataclasses
    import typing

    classes = record_classes()
    assert len(classes) > 40, [c.__name__ for c in classes]
    for cls in classes:
        assert cls.__dataclass_params__.frozen, cls.__name__
        for field in dataclasses.fields(cls):  # mutable containers would let a stage edit one
            hint = typing.get_type_hints(cls)[field.name]
            text = repr(hint)
            assert "list[" not in text and "dict[" not in text, (cls.__name__, field.name, text)


def test_a_record_refuses_to_be_edited():
    import dataclasses

    from tests.documents import compare_document

    document = compare_document()
    with pytest.raises(dataclasses.FrozenInstanceError):
        document.cases[0].rows[0].checked.verdict = "exact"
    with pytest.raises(TypeError):
        document.cases[0].rows[0].bandwidth["fwd"] = None
    with pytest.raises(AttributeError):
        document.cases[0].rows.append(None)


def test_no_function_in_kernelprof_is_over_80_lines():
    long = []
    for path in sources(PACKAGE):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}")
    assert not long, long


def test_the_command_line_only_parses_dispatches_and_prints():
    """cli.py holds no loop over cases, frameworks or ranks: it imports requests, the API, the
    presenters and the runs' own entry points, nothing that measures."""
    allowed = ("kernelprof.requests", "kernelprof.api", "kernelprof.present", "kernelprof.runs",
               "kernelprof.results.record", "kernelprof.results.files", "kernelprof")  # fmt: skip
    for name in imports(PACKAGE / "cli.py"):
        if name.startswith("kernelprof"):
            assert name.startswith(allowed), name
            assert not name.startswith(("kernelprof.harness", "kernelprof.frameworks")), name
