"""Run progress on stderr: a rich bar (rate, ETA, cached, failed) on a TTY, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["NullProgress", "PlainProgress", "ProgressReporter", "RichProgress", "make_progress"]


class ProgressReporter(Protocol):
    """What the engine calls while it runs."""

    def start(self, label: str, total: int | None) -> None: ...
    def update(self, done: int, *, cached: int, failed: int, dropped: int) -> None: ...
    def stop(self) -> None: ...


class NullProgress:
    """Shows nothing."""

    def start(self, label: str, total: int | None) -> None:
        """Nothing to show."""

    def update(self, done: int, *, cached: int, failed: int, dropped: int) -> None:
        """Nothing to show."""

    def stop(self) -> None:
        """Nothing to show."""


def _llm_spent() -> float:
    """Dollars nextedit.llm clients of this process spent on new requests (0 when it is not loaded)."""
    llm = sys.modules.get("nextedit.llm.client")
    return llm.total_spent_usd() if llm is not None else 0.0


def _llm_cost(since: float) -> str:
    """", $1.23" when LLM requests cost money since `since` (an earlier `_llm_spent()`), else ""."""
    spent = _llm_spent() - since
    return f", ${spent:.2f}" if spent > 0 else ""


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class PlainProgress:
    """One line to stderr every `every` seconds: done/total, rate, ETA, cached, failed."""

    def __init__(self, every: float = 10.0, stream=None):
        self.every = every
        self.stream = stream or sys.stderr
        self._label = ""
        self._total: int | None = None
        self._t0 = self._last = 0.0
        self._usd0 = 0.0

    def start(self, label: str, total: int | None) -> None:
        """Remember the label and total; print nothing yet."""
        self._label, self._total = label, total
        self._t0 = self._last = time.monotonic()
        self._usd0 = _llm_spent()

    def update(self, done: int, *, cached: int, failed: int, dropped: int) -> None:
        """Print a line when `every` seconds have passed since the last one."""
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        rate = done / max(now - self._t0, 1e-9)
        if self._total:
            left = max(self._total - done, 0)
            where = f"{done}/{self._total} ({100 * done / self._total:.0f}%)"
            eta = f", ETA {_eta(left / rate)}" if rate > 0 else ""
        else:
            where, eta = f"{done}", ""
        print(f"{self._label}: {where}, {rate:,.0f} ex/s{eta}, cached {cached}, failed {failed}, "
              f"dropped {dropped}{_llm_cost(self._usd0)}", file=self.stream, flush=True)

    def stop(self) -> None:
        """Nothing to clean up."""


class RichProgress:
    """A live rich progress bar on stderr."""

    def __init__(self, console: Console | None = None):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("cached {task.fields[cached]}  [red]failed {task.fields[failed]}[/]"),
            console=console or Console(stderr=True), transient=False, refresh_per_second=4,
        )
        self._task = None
        self._t0 = 0.0
        self._usd0 = 0.0

    def start(self, label: str, total: int | None) -> None:
        """Show the bar."""
        self._t0 = time.monotonic()
        self._usd0 = _llm_spent()
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, cached=0, failed=0, rate="")

    def update(self, done: int, *, cached: int, failed: int, dropped: int) -> None:
        """Move the bar."""
        rate = done / max(time.monotonic() - self._t0, 1e-9)
        self._progress.update(self._task, completed=done, cached=cached, failed=failed,
                              rate=f"{rate:,.0f} ex/s{_llm_cost(self._usd0)}")

    def stop(self) -> None:
        """Leave the final bar on screen."""
        self._progress.stop()


def make_progress(enabled: bool | None) -> ProgressReporter:
    """None: a bar on a TTY, plain lines otherwise; False: nothing; True: a bar."""
    if enabled is False:
        return NullProgress()
    if enabled or sys.stderr.isatty():
        return RichProgress()
    return PlainProgress()
