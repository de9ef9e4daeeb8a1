"""Progress display for `bench run`: a rich progress bar on a terminal, one line per case
otherwise (CI logs)."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from accelbench.benchmark import Case
from accelbench.records import CaseRecord


def headline(record: CaseRecord) -> str:
    """The figure the case is known by (its benchmark's declaration), else why it has none."""
    m = record.headline_metric()
    return f"{m.value:.4g} {m.unit}" if m is not None else record.reason or ""


class CaseProgress:
    def __init__(self, total: int, console: Console):
        self.console = console
        self.interactive = console.is_terminal
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=True)
        self._task = self._bar.add_task("starting", total=total)
        self.done = 0
        self.total = total

    def __enter__(self) -> "CaseProgress":
        if self.interactive:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.interactive:
            self._bar.stop()

    def case_started(self, benchmark: str, case: Case) -> None:
        self._bar.update(self._task, description=f"{benchmark} {case.case_id}")

    def case_finished(self, record: CaseRecord) -> None:
        self.done += 1
        self._bar.advance(self._task)
        mark = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[record.status]
        flag = " [throttled]" if record.throttled else ""
        line = f"[{self.done}/{self.total}] {record.benchmark} {record.case_id}: {mark} {headline(record)}{flag}"
        if self.interactive:
            if record.status != "ok":
                self._bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)
