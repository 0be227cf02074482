"""`nextedit score IN -o OUT`: add metric scores (deltaChrF, exact lines, reversal, kept rate, ...) for every prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextedit.evaluate.running import run
from nextedit.evaluate.stages import ScoreStage


def register(app: typer.Typer) -> None:
    """Add the `score` command."""

    @app.command("score")
    def score(
        input: Annotated[Path, typer.Argument(help="Examples with predictions (JSONL, .gz ok).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the scored examples.")],
        concurrency: Annotated[int | None, typer.Option("--concurrency", "-j", help="Worker processes.")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the result cache.")] = False,
        restart: Annotated[bool, typer.Option("--restart", help="Ignore a checkpoint of an interrupted run.")] = False,
    ) -> None:
        """Score every prediction against the best expected patch (replaces earlier scores)."""
        run(ScoreStage(), input, output, concurrency=concurrency, cache=not no_cache, restart=restart)
