"""A framework from outside the source tree: installed with pip into a scratch folder, found
through its `kernelprof.frameworks` entry point alone, and seen in check, compare and e2e."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kernelprof.results import files

FIXTURE = Path(__file__).parent / "plugin_fixture"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """An environment whose PYTHONPATH holds the plugin, pip-installed (not a source folder)."""
    scratch = tmp_path_factory.mktemp("plugin")
    source = scratch / "source"
    shutil.copytree(FIXTURE, source)
    site = scratch / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    entry_points = next(site.glob("kpfake_lif-*.dist-info")) / "entry_points.txt"
    assert "kernelprof.frameworks" in entry_points.read_text()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env.pop("KERNELPROF_EXTRA_FRAMEWORKS", None)
    return env


def kernelprof(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kernelprof.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env)  # fmt: skip


def test_the_plugin_is_checked(plugin_env):
    done = kernelprof(plugin_env, "check", "--impls", "fakefw-lif,ref-torch", "--T", "6",
                      "--N", "3000", "--device", "cpu", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row.impl: row for row in files.loads(done.stdout).rows}
    assert rows["fakefw-lif"].framework == "FakeFW"
    assert rows["fakefw-lif"].verdict in ("exact", "close"), rows["fakefw-lif"]
    assert rows["fakefw-lif"].timed_build.agrees


def test_the_plugin_is_compared(plugin_env):
    done = kernelprof(plugin_env, "compare", "--impls", "fakefw-lif,ref-torch", "--T", "4",
                      "--N", "8192", "--device", "cpu", "--repeat-s", "0.05", "--no-energy",
                      "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = files.loads(done.stdout)
    row = {row.impl: row for row in document.rows}["fakefw-lif"]
    assert row.verdict in ("exact", "close") and row.checked.timed_build.agrees, row
    assert row.timings["fwd+bwd"].call_s > 0 and row.speedup.value > 0
    assert row.checked.timed_code.startswith("spikes, _ = fake_lif")
    versions = document.environment.versions
    assert "spikingjelly" in versions  # the built-in frameworks are still there


def test_the_plugin_trains_end_to_end(plugin_env):
    done = kernelprof(plugin_env, "e2e", "--model", "fc", "--dataset", "synthetic",
                      "--frameworks", "fakefw,reference", "--epochs", "1", "--steps", "4",
                      "--limit-test", "64", "--device", "cpu", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row.framework: row for row in files.loads(done.stdout).rows}
    assert rows["fakefw"].status == "ok", rows["fakefw"]
    # the same LIF (exact), weights and data order as the reference: the same accuracy
    assert rows["fakefw"].training.test_accuracy == rows["reference"].training.test_accuracy
    conversion = kernelprof(plugin_env, "e2e", "--mode", "conversion", "--frameworks",
                            "fakefw", "--dataset", "synthetic", "--epochs", "1", "--steps", "2",
                            "--T", "2", "--limit-test", "64", "--device", "cpu",
                            "--format", "json")  # fmt: skip
    assert conversion.returncode == 1, conversion.stderr  # the only row converted nothing
    (row,) = files.loads(conversion.stdout).rows
    assert row.status == "unsupported" and "FakeFW ships no" in row.reason


def test_the_plugin_is_listed_and_its_absence_changes_nothing(plugin_env):
    done = kernelprof(plugin_env, "frameworks", "--format", "json")
    assert done.returncode == 0, done.stderr
    listed = {fw["name"]: fw for fw in json.loads(done.stdout)["frameworks"]}
    assert listed["fakefw"]["implementations"] == ["fakefw-lif"]
    assert listed["fakefw"]["networks"] == ["fakefw"]
    without = {k: v for k, v in plugin_env.items() if k != "PYTHONPATH"}
    done = kernelprof(without, "frameworks", "--format", "json")
    assert "fakefw" not in {fw["name"] for fw in json.loads(done.stdout)["frameworks"]}


def test_a_broken_plugin_is_reported_and_the_others_still_run(tmp_path, plugin_env):
    site = tmp_path / "broken"
    info = site / "kpbroken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kpbroken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kernelprof.frameworks]\nbroken = kpbroken:FRAMEWORK\n")
    env = {**plugin_env, "PYTHONPATH": f"{site}{os.pathsep}{plugin_env['PYTHONPATH']}"}
    done = kernelprof(env, "check", "--impls", "fakefw-lif", "--T", "2", "--N", "64",
                      "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "broken = kpbroken:FRAMEWORK" in done.stdout and "failed to load" in done.stdout


def test_a_plugin_that_reuses_a_name_or_does_not_import_is_left_out_with_why(tmp_path):
    (tmp_path / "kpclash.py").write_text(
        "from kernelprof.frameworks.base import Framework\n"
        "FRAMEWORK = Framework(name='snntorch', display='clash')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path),
           "KERNELPROF_EXTRA_FRAMEWORKS": "kpclash,kpnothere"}  # fmt: skip
    done = kernelprof(env, "frameworks", "--format", "json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    names = [fw["name"] for fw in listing["frameworks"]]
    assert names.count("snntorch") == 1
    assert next(fw for fw in listing["frameworks"] if fw["name"] == "snntorch")["display"] == (
        "snnTorch")  # fmt: skip
    problems = " | ".join(listing["problems"])
    assert "'snntorch' from KERNELPROF_EXTRA_FRAMEWORKS module kpclash left out" in problems
    assert "kpnothere failed to load: ModuleNotFoundError" in problems


def test_a_module_in_the_frameworks_package_is_found_without_registering(tmp_path):
    """Adding a built-in framework is adding its module: the registry lists the package and
    takes every module with a FRAMEWORK (after the fixed display order), not a helper module."""
    (tmp_path / "aa_found.py").write_text(
        "from kernelprof.frameworks.base import Framework\n"
        "FRAMEWORK = Framework(name='aa-found', display='AA')\n"
    )
    (tmp_path / "aa_helper.py").write_text("HELPER = True\n")
    code = (
        "import kernelprof.frameworks as package\n"
        f"package.__path__.append({str(tmp_path)!r})\n"
        "from kernelprof.frameworks import registry\n"
        "print(','.join(registry.frameworks()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    names = done.stdout.strip().split(",")
    assert names[:6] == ["reference", "spikingjelly", "snntorch", "norse", "lava-dl", "sinabs"]
    assert "aa-found" in names[6:] and "aa-helper" not in names
