"""Progress while a command runs: a spinner line per step, and for training a bar fed by the
worker's reports (steps done of the total, epoch, ETA). Shown on stderr, and only when stderr is
a terminal: piped or in a notebook, nothing is printed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console


class Progress:
    def __init__(self, console: Console | None = None, bars: bool = True) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.shown = self.console.is_terminal
        self.bars = bars

    @contextlib.contextmanager
    def status(self, label: str) -> Iterator[None]:
        if not self.shown:
            yield
            return
        with self.console.status(label):
            yield

    @contextlib.contextmanager
    def training(self, label: str) -> Iterator[Callable[[dict], None] | None]:
        """A bar fed by the worker's progress reports (its ``on_progress`` is what this yields);
        a spinner where bars are off."""
        if not self.shown or not self.bars:
            with self.status(label):
                yield None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("steps, {task.fields[where]}"), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn())  # fmt: skip
        with Bar(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task(label, total=None, where="starting")

            def on_progress(report: dict) -> None:
                training = report.get("phase") == "training"
                where = (f"epoch {report.get('epoch')}/{report.get('epochs')}" if training
                         else str(report.get("phase")))  # fmt: skip
                bar.update(task, completed=report.get("done"), total=report.get("total"),
                           where=where)  # fmt: skip

            yield on_progress

    @contextlib.contextmanager
    def summary(self, label: str) -> Iterator[Callable[[str], None]]:
        """A status line whose text the caller replaces as things change (a study's cells)."""
        if not self.shown:
            yield lambda text: None
            return
        with self.console.status(label) as status:
            yield status.update
