"""`kernelprof report` (kernelprof/present/pages.py): HTML and Markdown from results files of every
kind, checked in a real headless Chromium (installed by scripts/setup-browser.sh, run by make
test)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.cli_runner import run_in_process, run_kernelprof

BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
     if shutil.which(name)),
    None,
)  # fmt: skip
# The flags a sandboxed CI machine needs: no sandbox as root, no GPU, no network chatter.
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Path]:
    """A compare sweep over T, a direct e2e run and a conversion run, written with --out."""
    folder = tmp_path_factory.mktemp("results")
    commands = {
        "compare": ["compare", "--impls", "ref-torch,spikingjelly,snntorch", "--T", "2,4",
                    "--N", "4096", "--device", "cpu", "--repeat-s", "0.01", "--no-energy"],
        "e2e": ["e2e", "--model", "fc", "--dataset", "synthetic", "--frameworks",
                "reference,snntorch", "--steps", "3", "--T", "2", "--limit-train", "128",
                "--limit-test", "32", "--device", "cpu"],
        "conversion": ["e2e", "--mode", "conversion", "--model", "fc", "--dataset", "digits",
                       "--frameworks", "spikingjelly,reference,snntorch", "--epochs", "1",
                       "--T", "8", "--device", "cpu"],
    }  # fmt: skip
    paths = {}
    for name, command in commands.items():
        paths[name] = folder / f"{name}.json"
        done = run_kernelprof(*command, "--format", "json", "--out", str(paths[name]))
        assert done.returncode == 0, done.stderr
    return paths


@pytest.fixture(scope="module")
def html_report(results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    done = run_kernelprof("report", *map(str, results.values()), "-o", str(out))
    assert done.returncode == 0, done.stderr
    # compare: bars per case (2) + time vs T; e2e: breakdown + 1 waterfall; conversion: 1
    assert "6 chart(s)" in done.stdout
    return out


def test_the_html_is_one_self_contained_file(html_report):
    page = html_report.read_text()
    assert page.count('<img class="chart"') == 6
    assert page.count('src="data:image/png;base64,') == 6
    # nothing to fetch: no external scripts, styles, images or fonts
    assert not re.search(r'(src|href)="(https?:)?//', page)
    for heading in ("compare (compare.json)", "e2e: fc on synthetic", "e2e conversion: fc on"):
        assert heading in page
    assert "snnTorch ships no ANN-to-SNN converter" in page  # why a row is empty is in it


def browse(url: str, *flags: str, timeout: int = 120) -> subprocess.CompletedProcess:
    profile = Path(url.removeprefix("file://")).parent / f"profile{len(flags)}"
    return subprocess.run(
        [BROWSER, *BROWSER_FLAGS, f"--user-data-dir={profile}", *flags, url],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.skipif(BROWSER is None, reason="unavailable: no headless Chromium (make test "
                    "installs Debian's chromium; see scripts/setup-browser.sh)")  # fmt: skip
def test_headless_chromium_loads_it_without_errors_and_renders_every_chart(html_report):
    url = html_report.resolve().as_uri()
    done = browse(url, "--virtual-time-budget=10000", "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", done.stdout).group(1)
    state = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert state == {"charts": "6", "charts-rendered": "6", "errors": "0"}, state

    shot = html_report.with_name("shot.png")
    done = browse(url, "--window-size=1280,1600", f"--screenshot={shot}")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1280)
    # not blank: text, table rules and coloured bars make many distinct colours
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50 and pixels.std() > 0.05


def test_markdown_variant_writes_tables_and_chart_files(results, tmp_path):
    out = tmp_path / "notes.md"
    done = run_kernelprof("report", str(results["e2e"]), str(results["conversion"]), "-o",
                          str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(images) == 3 and all((tmp_path / image).stat().st_size > 1000 for image in images)
    assert "| framework | status | test acc |" in text
    assert "| reference | ok |" in text


def test_bad_results_files_are_one_line_errors(tmp_path, results):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "other.json").write_text(json.dumps({"some": "thing"}))
    for path, needle in ((tmp_path / "notes.txt", "not JSON"),
                         (tmp_path / "other.json", "not a kernelprof check or compare or e2e"),
                         (tmp_path / "absent.json", "does not exist")):  # fmt: skip
        done = run_in_process("report", str(path), "-o", str(tmp_path / "r.html"))
        assert done.returncode == 2 and needle in done.stderr and str(path.name) in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    done = run_in_process("report", str(results["e2e"]), "-o", str(tmp_path / "r.pdf"))
    assert done.returncode == 2 and ".html or .md" in done.stderr
    assert not (tmp_path / "r.html").exists()


def test_check_and_study_documents_are_reported_too(tmp_path):
    from kernelprof.results import files
    from tests.documents import check_document, study_document

    paths = [tmp_path / "check.json", tmp_path / "study.json"]
    files.save(check_document(), paths[0])
    files.save(study_document(), paths[1])
    out = tmp_path / "both.md"
    done = run_kernelprof("report", *map(str, paths), "-o", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "## check: T=8, N=4,096, fp32 (check.json)" in text
    assert "### The study's claims" in text and "SpikingJelly is the fastest" in text
    assert "| snntorch | ok | 85.0 % |" in text  # the study's runs follow its tables


def test_a_profile_is_reported_with_its_category_bar_layers_and_roofline(tmp_path):
    from kernelprof.results import files
    from tests.documents import profile_document

    path = tmp_path / "profile.json"
    files.save(profile_document(), path)
    out = tmp_path / "profile.html"
    done = run_kernelprof("report", str(path), "-o", str(out))
    assert done.returncode == 0, done.stderr
    # the step by category, the neuron layers' roofline, memory and spikes per layer
    assert "3 chart(s)" in done.stdout
    text = out.read_text()
    assert "profile: python train.py (profile.json)" in text
    assert "snntorch._neurons.leaky.Leaky" in text and "neuron bwd" in text
    assert "memory, spikes and operations (step 6" in text and "25,600" in text
    assert "energy estimated from operations: 23 nJ a forward pass" in text
    assert "energy measured: 20 mJ a training step above idle (RAPL package" in text
    # the faster path: its check, its step against the layers' own (ratio 1.25 each round)
    assert "kernelprof ref-compile in place of forward (torch.compile)" in text
    assert "lif1 exact" in text and "11.0 -&gt; 8.80" in text and "1.25x (1.25-1.25)" in text
    assert "3.00 -&gt; 1.00" in text and "its V carries over from an earlier call" in text
    if BROWSER is None:
        pytest.skip("unavailable: no Chromium to render it (scripts/setup-browser.sh)")
    done = browse(out.resolve().as_uri(), "--virtual-time-budget=10000", "--dump-dom")
    body = re.search(r"<body([^>]*)>", done.stdout).group(1)
    state = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert state == {"charts": "3", "charts-rendered": "3", "errors": "0"}, state
