"""`nextedit show`: print one example (excerpt with cursor and editable region, patches, predictions)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `show` command."""

    @app.command("show")
    def show(
        file: Annotated[Path, typer.Argument(help="Examples JSONL file (.gz ok).")],
        example_id: Annotated[str | None, typer.Option("--id", help="Show the example with this id.")] = None,
        index: Annotated[int | None, typer.Option("--index", min=0, help="Show the example at this 0-based position.")] = None,
        around: Annotated[int | None, typer.Option("--around", min=0,
                                          help="Show only this many lines either side of the editable region.")] = None,
        raw: Annotated[bool, typer.Option("--raw", help="Also print each prediction's raw model output.")] = False,
        diff: Annotated[str | None, typer.Option("--diff", help="Also show each prediction against the "
                                                 "expected edit: unified or side-by-side.")] = None,
        color: Annotated[bool | None, typer.Option("--color/--no-color",
                                          help="Colour and highlighting (default: only on a terminal).")] = None,
    ) -> None:
        """Show one example: snapshot with cursor and editable region marked, history, expected, predictions."""
        from nextedit.dataset.show import NotFound, render_plain, render_rich, show_file
        from nextedit.record import RecordError

        if example_id is not None and index is not None:
            raise typer.BadParameter("give --id or --index, not both")
        if diff not in (None, "unified", "side-by-side"):
            typer.echo(f"error: --diff {diff!r}: use unified or side-by-side", err=True)
            raise typer.Exit(2)
        try:
            sections = show_file(file, example_id=example_id, index=index, around=around, raw=raw, diff=diff)
        except (RecordError, NotFound, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        use_color = sys.stdout.isatty() if color is None else color
        if use_color:
            from rich.console import Console

            render_rich(sections, Console(force_terminal=True, highlight=False))
        else:
            typer.echo(render_plain(sections), nl=False)
