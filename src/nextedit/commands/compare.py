"""`nextedit compare A.json B.json ...`: runs side by side, paired bootstrap CIs on their differences."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `compare` command."""

    @app.command("compare")
    def compare_(
        summaries: Annotated[list[Path], typer.Argument(help="summary.json files (or report folders) from `nextedit eval`.")],
        baseline: Annotated[str | None, typer.Option("--baseline", "-b", help="Run label to compare against (default: first).")] = None,
        metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="Per-example metric to compare (repeatable).")] = None,
        resamples: Annotated[int, typer.Option("--resamples", min=10, help="Bootstrap resamples.")] = 1000,
        seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
        output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the comparison JSON here.")] = None,
    ) -> None:
        """Compare evaluation runs example by example (paired bootstrap over shared example ids)."""
        import orjson

        from nextedit.evaluate.compare import (
            DEFAULT_METRICS,
            CompareError,
            compare,
            print_comparison,
        )

        try:
            result = compare(summaries, metrics=tuple(metric or ()) or DEFAULT_METRICS, baseline=baseline,
                             resamples=resamples, seed=seed)
        except CompareError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        print_comparison(result)
        if output is not None:
            output.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
