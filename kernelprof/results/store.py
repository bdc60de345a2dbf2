"""A study's results store: one file per finished cell (:class:`~kernelprof.results.study.
CellRecord`) under ``DIR/cells/``, written the moment the cell ends, so that a study killed at
any point keeps every cell that finished and a second run of the same command runs only the
cells still missing (and, when asked, the failed ones).

A cell's file is written atomically: to a temporary file in the same folder, flushed to disk,
then renamed over its name, so a reader (or a crash) never sees half a record. A file that does
not read (damaged, foreign, from an older schema) is reported in one line and its cell counted
as missing, never a traceback.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from kernelprof.results.record import SchemaError, decode, encode
from kernelprof.results.study import CellKey, CellRecord

CELLS = "cells"


class Store:
    """The cells of one study folder."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.cells = self.folder / CELLS

    def path(self, key: CellKey) -> Path:
        return self.cells / f"{key.slug}.json"

    def write(self, cell: CellRecord) -> Path:
        """Writes ``cell`` atomically; returns its path."""
        self.cells.mkdir(parents=True, exist_ok=True)
        target = self.path(cell.key)
        text = json.dumps(encode(cell), indent=1)
        handle, temporary = tempfile.mkstemp(dir=self.cells, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def read(self) -> tuple[dict[CellKey, CellRecord], list[str]]:
        """Every cell that reads, by key, and a line for each file that does not."""
        found: dict[CellKey, CellRecord] = {}
        problems: list[str] = []
        for path in sorted(self.cells.glob("*.json")) if self.cells.is_dir() else ():
            try:
                cell = decode(CellRecord, json.loads(path.read_text()))
            except (OSError, ValueError, SchemaError) as error:
                first = str(error).splitlines()[0] if str(error) else type(error).__name__
                problems.append(f"{path}: not a study cell ({first}); its cell runs again")
                continue
            if path != self.path(cell.key):
                problems.append(f"{path}: holds {cell.key.name}, not the cell of its name; "
                                "left out")  # fmt: skip
                continue
            found[cell.key] = cell
        return found, problems

    def missing(self, keys: Iterable[CellKey], *, retry_failed: bool = False,
                done: dict[CellKey, CellRecord] | None = None) -> list[CellKey]:  # fmt: skip
        """The keys with no finished cell (and the failed ones with ``retry_failed``), in
        order."""
        if done is None:
            done, _ = self.read()
        wanted = []
        for key in keys:
            cell = done.get(key)
            if cell is None or (retry_failed and cell.status == "failed"):
                wanted.append(key)
        return wanted
