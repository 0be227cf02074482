"""`nextedit stats`: counts, languages, sizes, sources and predictions of an examples file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer


def register(app: typer.Typer) -> None:
    """Add the `stats` command."""

    @app.command("stats")
    def stats(
        file: Annotated[Path, typer.Argument(help="Examples JSONL file (.gz ok).")],
        as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")] = False,
        top: Annotated[int, typer.Option("--top", min=0, help="How many repositories to list.")] = 10,
    ) -> None:
        """Summarise a file: counts, languages, sizes (percentiles), sources, labels, predictions."""
        from nextedit.dataset.stats import render_stats, stats_file
        from nextedit.record import RecordError

        try:
            result = stats_file(file, top=top)
        except (RecordError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        else:
            from rich.console import Console

            render_stats(result, Console(highlight=False))
