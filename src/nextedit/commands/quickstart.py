"""`nextedit quickstart`: the main job, offline: mine this repository, fine-tune a small student, evaluate, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _fmt(value: Any, digits: int = 3, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.0f}%" if pct else f"{value:.{digits}f}"


def summary_table(rows: list[dict[str, Any]]) -> Any:
    """The quickstart's compact table: one row per provider."""
    from rich.table import Table

    table = Table(title="quickstart summary (held-out examples)")
    for col in ("provider", "preds", "errors", "deltaChrF", "exact-lines F1", "reversal", "no-edit",
                "no-edit P/R", "checks passed", "p50 ms"):
        table.add_column(col, justify="left" if col == "provider" else "right")
    for r in rows:
        table.add_row(r["provider"], str(r["predictions"]), str(r["errors"]), _fmt(r["delta_chrf"], 2),
                      _fmt(r["exact_lines_f1"], 3), _fmt(r["reversal_ratio"], 3), _fmt(r["no_edit_rate"], pct=True),
                      f"{_fmt(r['no_edit_precision'], 2)}/{_fmt(r['no_edit_recall'], 2)}",
                      _fmt(r["checks_passed"], pct=True), _fmt(r["latency_ms_p50"], 0))
    return table


def register(app: typer.Typer) -> None:
    """Add the `quickstart` command."""

    @app.command("quickstart")
    def quickstart(
        out: Annotated[Path, typer.Option("-o", "--out", help="Folder for every file the quickstart writes.")] = Path(
            "out/quickstart"),
        repo: Annotated[Path | None, typer.Option("--repo", help="Git repository to mine (default: the one here).")
                        ] = None,
        fast: Annotated[bool, typer.Option("--fast", help="A short version (few commits, a few training steps), "
                                                          "as the tests run it.")] = False,
        no_train: Annotated[bool, typer.Option("--no-train", help="Skip fine-tuning: evaluate the baselines only.")
                            ] = False,
        seed: Annotated[int, typer.Option("--seed", help="Seed of mining, split, training and bootstrap.")] = 0,
    ) -> None:
        """Run the offline loop end to end on this repository's own git history.

        No network, API key or GPU. Mines examples, retrieves related code and diagnostics, validates,
        splits by time, fine-tunes every weight of SmolLM2-135M-Instruct on the older examples, predicts the
        held-out ones with the student, its base model and the noop / propagate baselines, runs the
        deterministic checks, scores and writes an evaluation report. Re-running resumes and reuses
        cached results.
        """
        import sys

        from rich.console import Console

        from nextedit.evaluate.report import print_console
        from nextedit.quickstart import QuickstartError, run_quickstart
        from nextedit.recipe.report import withheld_lines

        console = Console() if sys.stdout.isatty() else Console(width=120)  # files and CI logs: room for the table
        try:
            result = run_quickstart(out, repo=repo, fast=fast, seed=seed, train=not no_train)
        except QuickstartError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        print_console(result.summary, console)
        console.print(summary_table(result.table))
        for line in withheld_lines(result.table):
            console.print(line)
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        console.print(f"examples: {counts}")
        if result.train:
            t = result.train
            console.print(f"student: {t.get('steps')} {t.get('method', '')} steps on {t.get('train_rows')} rows, held-out loss "
                          f"{_fmt(t.get('eval_loss_before'))} -> {_fmt(t.get('eval_loss_after'))}; "
                          f"model: {(t.get('exported') or {}).get('merged')}")
        for line in result.verdicts:
            console.print(f"[bold]{line}[/bold]")
        for note in result.notes:
            console.print(f"note: {note}")
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items())
        console.print(f"report: {result.report}  (summary: {result.report.parent / 'summary.json'})")
        console.print(f"done in {result.seconds:.0f} s ({steps})")
