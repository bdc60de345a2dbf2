"""Outputs a request will write, checked before anything is measured, so that a long run never
ends in losing its results: a file must be creatable, a folder writable."""

from __future__ import annotations

import tempfile
from pathlib import Path

from kernelprof.requests.options import RequestError

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def writable_folder(folder: Path, flag: str) -> None:
    """Creates ``folder`` if needed and proves a file can be written in it."""
    if folder.exists() and not folder.is_dir():
        raise RequestError(f"{flag}: {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kernelprof-probe-"):
            pass
    except OSError as error:
        reason = error.strerror or error
        raise RequestError(f"{flag}: cannot write in {folder} ({reason})") from None


def writable_file(path: Path, flag: str) -> None:
    if path.is_dir():
        raise RequestError(f"{flag}: {path} is a folder, not a file")
    writable_folder(path.parent, flag)


def plot_file(path: Path, flag: str) -> None:
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise RequestError(f"{flag}: {path} must end in {', '.join(PLOT_SUFFIXES)}")
    writable_file(path, flag)
