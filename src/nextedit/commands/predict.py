"""`nextedit predict IN --provider P -o OUT`: add predictions from a provider (noop, propagate, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextedit.evaluate.running import parse_options, run
from nextedit.evaluate.stages import PredictStage
from nextedit.predictors.base import PREDICTORS, PredictorError


def register(app: typer.Typer) -> None:
    """Add the `predict` command."""

    @app.command("predict")
    def predict(
        input: Annotated[Path, typer.Argument(help="Examples (JSONL, .gz ok).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the examples with predictions.")],
        provider: Annotated[str, typer.Option("--provider", "-p",
                                     help=f"Provider string: {', '.join(sorted(PREDICTORS))}, or SCHEME:ARG.")] = "noop",
        samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Predictions per example.")] = 1,
        option: Annotated[list[str] | None, typer.Option("--option", help="Predictor option KEY=VALUE (repeatable).")] = None,
        concurrency: Annotated[int | None, typer.Option("--concurrency", "-j", help="In-flight examples.")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the result cache.")] = False,
        restart: Annotated[bool, typer.Option("--restart", help="Ignore a checkpoint of an interrupted run.")] = False,
    ) -> None:
        """Ask a predictor for the next edit of every example; replaces that provider's earlier predictions."""
        try:
            stage = PredictStage({"provider": provider, "samples": samples, "options": parse_options(option or [])})
        except PredictorError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        run(stage, input, output, concurrency=concurrency, cache=not no_cache, restart=restart)
