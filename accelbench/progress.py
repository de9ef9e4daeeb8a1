"""Progress display for `bench run`: a rich progress bar on a terminal, one line per case
otherwise (CI logs)."""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from accelbench.benchmark import Case
from accelbench.contention import loaded
from accelbench.records import CaseRecord


def headline(record: CaseRecord) -> str:
    """The figure the case is known by (its benchmark's declaration), else why it has none."""
    m = record.headline_metric()
    return f"{m.value:.4g} {m.unit}" if m is not None else record.reason or ""


# Where a long case reports how far it is (case_detail): the running CaseProgress, if any.
_detail_sink: Optional[Callable[[str], None]] = None


def case_detail(text: str) -> None:
    """A long case's progress inside itself ("hellaswag: 120/400 requests"), shown beside the case
    in the progress bar (interactive) or as a line on stderr at most every 10 s (logs)."""
    if _detail_sink is not None:
        _detail_sink(text)


class CaseProgress:
    def __init__(self, total: int, console: Console):
        self.console = console
        self.interactive = console.is_terminal
        self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=True)
        self._task = self._bar.add_task("starting", total=total)
        self.done = 0
        self.total = total
        self._current = "starting"
        self._last_detail = 0.0

    def __enter__(self) -> "CaseProgress":
        global _detail_sink
        if self.interactive:
            self._bar.start()
        _detail_sink = self.detail
        return self

    def __exit__(self, *exc) -> None:
        global _detail_sink
        _detail_sink = None
        if self.interactive:
            self._bar.stop()

    def case_started(self, benchmark: str, case: Case) -> None:
        self._current = f"{benchmark} {case.case_id}"
        self._bar.update(self._task, description=self._current)

    def detail(self, text: str) -> None:
        if self.interactive:
            self._bar.update(self._task, description=f"{self._current} · {text}")
        elif time.monotonic() - self._last_detail >= 10.0:
            self._last_detail = time.monotonic()
            print(f"  {self._current}: {text}", file=sys.stderr, flush=True)

    def case_finished(self, record: CaseRecord) -> None:
        self.done += 1
        self._bar.advance(self._task)
        mark = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}[record.status]
        flag = " [throttled]" if record.throttled else ""
        if loaded(record.other_load):
            flag += f" [beside other load: {record.other_load:.1f} CPUs]"
        line = f"[{self.done}/{self.total}] {record.benchmark} {record.case_id}: {mark} {headline(record)}{flag}"
        if self.interactive:
            if record.status != "ok":
                self._bar.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=sys.stderr, flush=True)
