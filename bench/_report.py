"""Shared report plumbing for bench/ scripts: machine line, markdown tables, BENCHMARKS.md sections."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section is appended by a script in bench/.\n"


def machine_line(extra: str = "") -> str:
    """CPU, cores, load and Python, e.g. `x86_64, 2 cores (1-min load average 1.3 at the end), Python 3.12.3`."""
    cpu = platform.processor() or platform.machine()
    notes = "; ".join(n for n in (f"1-min load average {os.getloadavg()[0]:.1f} at the end", extra) if n)
    return f"{cpu}, {os.cpu_count()} cores ({notes}), Python {platform.python_version()}"


def command_line() -> str:
    """The command that started this process, as `python bench/NAME.py ARGS`."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def markdown_table(rows: Iterable[Sequence[object]], headers: Sequence[str] = ("measure", "value"),
                   align: str = "") -> list[str]:
    """Markdown table lines; `align` holds one `l` or `r` per column (default: all left)."""
    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(headers), "l")]
    return [f"| {' | '.join(headers)} |", f"|{'|'.join(rule)}|",
            *(f"| {' | '.join(str(c) for c in row)} |" for row in rows)]


def print_rows(rows: Iterable[tuple[str, object]]) -> None:
    """Print (measure, value) rows as two aligned columns."""
    rows = list(rows)
    width = max((len(k) for k, _ in rows), default=0)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def section(title: str, lines: Sequence[str], note: str = "", extra: str = "", command: str | None = None) -> str:
    """A BENCHMARKS.md section: heading with the UTC time, machine and command line, then `lines`.

    `note` is put right after the command (e.g. " (wall time)"), `extra` inside the machine's parentheses,
    `command` replaces the command this process was started with.
    """
    now = dt.datetime.now(dt.UTC)
    head = (f"## {title} — {now:%Y-%m-%d %H:%M} UTC\n\n"
            f"Machine: {machine_line(extra)}; command: `{command or command_line()}`{note}.\n\n")
    return head + "\n".join(lines) + "\n"


def append_text(text: str, path: Path = BENCHMARKS) -> Path:
    """Append a rendered section to BENCHMARKS.md (created with a short header if missing)."""
    if not path.exists():
        path.write_text(HEADER, encoding="utf-8")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n" + text)
    print(f"appended to {path}", file=sys.stderr)
    return path


def append_section(title: str, lines: Sequence[str], note: str = "", extra: str = "",
                   command: str | None = None, path: Path = BENCHMARKS) -> Path:
    """Render a section (see `section`) and append it to BENCHMARKS.md."""
    return append_text(section(title, lines, note, extra, command), path)
