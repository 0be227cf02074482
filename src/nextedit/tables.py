"""Printing rich tables that stay readable: folded (never cut to "…") on a terminal, and a plain
aligned layout with every cell in full when the output is piped or redirected."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["plain_lines", "print_table"]


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def plain_lines(table: Table) -> list[str]:
    """The table as aligned text: optional title, header, a rule, one line per row (cells in full)."""
    headers = [_plain(c.header) for c in table.columns]
    columns = [[_plain(cell) for cell in c.cells] for c in table.columns]
    rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    right = [c.justify == "right" for c in table.columns]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    out = [_plain(table.title)] if table.title else []
    out += [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return out


def print_table(table: Table, console: Console | None = None) -> None:
    """Print `table`: on a terminal with long cells folded onto more lines (at any width); elsewhere
    (a pipe, a file, CI logs) as plain aligned text that no width limit can cut."""
    console = console or Console(highlight=False)
    if console.is_terminal:
        for column in table.columns:
            column.overflow = "fold"
        console.print(table)
        return
    for text in plain_lines(table):
        console.print(text, markup=False, highlight=False, soft_wrap=True)
