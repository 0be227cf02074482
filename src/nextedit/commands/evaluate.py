"""`nextedit eval IN [--provider P] --report DIR`: predict, score, summary JSON, HTML report, console table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nextedit.commands.run import EngineOption, RayAddressOption
from nextedit.evaluate.running import evaluate, parse_options


def register(app: typer.Typer) -> None:
    """Add the `eval` command."""

    @app.command("eval")
    def eval_(
        inputs: Annotated[list[Path], typer.Argument(help="Examples JSONL, or Zed Markdown eval files / folders of them.")],
        report: Annotated[Path, typer.Option("--report", "-r", help="Folder for summary.json, report.html and data.")],
        provider: Annotated[list[str] | None, typer.Option("--provider", "-p",
                                           help="Predict first with this provider (repeatable: one run each).")] = None,
        samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Predictions per example and provider.")] = 1,
        option: Annotated[list[str] | None, typer.Option("--option", help="Predictor option KEY=VALUE (repeatable).")] = None,
        resamples: Annotated[int, typer.Option("--resamples", min=10, help="Bootstrap resamples for the 95% CIs.")] = 1000,
        seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
        concurrency: Annotated[int | None, typer.Option("--concurrency", "-j", help="Workers / in-flight examples.")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the result cache.")] = False,
        title: Annotated[str, typer.Option("--title", help="Report title.")] = "nextedit evaluation",
        engine: EngineOption = None,
        ray_address: RayAddressOption = None,
        baseline: Annotated[str | None, typer.Option("--baseline", help="Provider the report's paired differences and "
                                                     "example outcomes compare with (default: propagate, else noop, "
                                                     "else the first).")] = None,
        worst: Annotated[int, typer.Option("--worst", min=0, help="Also list the N examples with the lowest "
                                           "deltaChrF per provider, with the command that shows each.")] = 0,
    ) -> None:
        """Evaluate predictions (made here with --provider, or already in the input) and write a report."""
        from nextedit.evaluate.report import print_console

        summary = evaluate(inputs, report, providers=provider or [], samples=samples, options=parse_options(option or []),
                           concurrency=concurrency, cache=not no_cache, resamples=resamples, seed=seed,
                           title=title, engine=engine, ray_address=ray_address, baseline=baseline)
        if not summary["providers"]:
            typer.echo("error: no predictions to score: the input has none, pass --provider P "
                       "(e.g. --provider noop --provider propagate)", err=True)
            raise typer.Exit(1)
        print_console(summary)
        if worst:
            import shlex

            from nextedit.evaluate.worst import worst_examples

            scored = report / "scored.jsonl"
            for prov, rows in worst_examples(scored, worst).items():
                typer.echo(f"worst {len(rows)} for {prov} (deltaChrF):")
                for eid, value in rows:
                    typer.echo(f"  {value:7.2f}  {eid}  (nextedit show {shlex.quote(str(scored))} "
                               f"--id {shlex.quote(eid)} --diff unified)")
        typer.echo(f"wrote {report / 'summary.json'} and {report / 'report.html'}", err=True)
