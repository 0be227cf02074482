"""`nextedit calibrate SCORED --provider P`: choose a student's abstention threshold on validation data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add the `calibrate` command."""

    @app.command("calibrate")
    def calibrate(
        scored: Annotated[Path, typer.Argument(help="Scored validation examples (nextedit eval's scored.jsonl) "
                                                    "with predictions made with --option confidence=true.")],
        provider: Annotated[str, typer.Option("--provider", "-p", help="Whose predictions to calibrate.")],
        write: Annotated[Path | None, typer.Option("--write", help="Model folder whose nextedit.json gets "
                                                                   "abstain_below (used by local:PATH).")] = None,
        min_gain: Annotated[float, typer.Option("--min-gain", help="Abstain only when it gains more than "
                                                                   "this many deltaChrF points.")] = 0.0,
    ) -> None:
        """Choose the confidence below which the student says "no edit", maximising mean deltaChrF."""
        from nextedit.jsonl import read_examples
        from nextedit.predictors.abstain import (
            CalibrationError,
            choose_threshold,
            outcomes_of,
        )
        from nextedit.train.export import METADATA_FILE

        console = Console(stderr=True)
        try:
            outcomes = outcomes_of(read_examples(scored), provider)
        except (CalibrationError, OSError) as exc:
            console.print(f"error: {exc}")
            raise typer.Exit(2) from None
        best, tried = choose_threshold(outcomes, min_gain=min_gain)
        table = Table("threshold", "deltaChrF", "offered", "withheld", "no-edit P", "no-edit R",
                      title=f"{provider} on {scored} ({len(outcomes)} predictions)")
        step = max(1, len(tried) // 12)
        for c in sorted({*tried[::step], best}, key=lambda c: c.threshold):
            mark = " *" if c is best else ""
            fmt = (lambda x: "-" if x is None else f"{x:.2f}")
            table.add_row(f"{c.threshold:.3f}{mark}", f"{c.mean:.2f}", str(c.offered), str(c.withheld),
                          fmt(c.no_edit_precision), fmt(c.no_edit_recall))
        console.print(table)
        threshold = None if best.threshold == float("-inf") else round(best.threshold, 4)
        print(json.dumps({"provider": provider, "abstain_below": threshold, "mean_delta_chrf": best.mean,
                          "withheld": best.withheld, "predictions": len(outcomes)}))
        if write is not None:
            meta_path = write / METADATA_FILE
            if not meta_path.is_file():
                console.print(f"error: {meta_path}: no such file (is {write} an exported nextedit model?)")
                raise typer.Exit(2)
            meta = json.loads(meta_path.read_text())
            meta["abstain_below"] = threshold
            tmp = meta_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
            tmp.replace(meta_path)
            console.print(f"wrote abstain_below = {threshold} to {meta_path}")
