"""`nextedit quickstart`: the main job, offline: mine this repository, check, predict, evaluate, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `quickstart` command."""

    @app.command("quickstart")
    def quickstart(
        out: Annotated[Path, typer.Option("-o", "--out", help="Folder for every file the quickstart writes.")] = Path(
            "out/quickstart"),
        repo: Annotated[Path | None, typer.Option("--repo", help="Git repository to mine (default: the one here).")
                        ] = None,
        fast: Annotated[bool, typer.Option("--fast", help="A short version (few commits), as the tests run it.")
                        ] = False,
        seed: Annotated[int, typer.Option("--seed", help="Seed of mining, split and bootstrap.")] = 0,
    ) -> None:
        """Run the offline loop end to end on this repository's own git history.

        No network, API key or GPU. Mines examples, retrieves related code and diagnostics, validates,
        splits by time, predicts the held-out examples with the noop and propagate baselines and writes
        an evaluation report. Re-running resumes and reuses cached results.
        """
        from rich.console import Console

        from nextedit.evaluate.report import print_console
        from nextedit.quickstart import QuickstartError, run_quickstart

        console = Console()
        try:
            result = run_quickstart(out, repo=repo, fast=fast, seed=seed)
        except QuickstartError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        print_console(result.summary, console)
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        console.print(f"examples: {counts}")
        console.print(f"report: {result.report}  (summary: {result.report.parent / 'summary.json'})")
        console.print(f"done in {result.seconds:.0f} s")
