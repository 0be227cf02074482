"""`nextedit metrics`: score one prediction from plain files, and list the metric signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

metrics_app = typer.Typer(help="Metrics outside a pipeline: score files, list signatures.",
                          no_args_is_help=True)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"{path}: cannot read the {what}: {exc}") from None


@metrics_app.command("diff")
def diff(
    base: Annotated[Path, typer.Option("--base", help="The text before the edit (the excerpt).")],
    actual_patch: Annotated[Path, typer.Option("--actual-patch", help="The predicted unified diff.")],
    expected_patch: Annotated[list[Path] | None, typer.Option(
        "--expected-patch", help="An expected unified diff (repeat for alternatives; none: no edit is right).")] = None,
    path: Annotated[str | None, typer.Option(
        "--path", help="File path for the language (default: the --base file name).")] = None,
    start_line: Annotated[int, typer.Option("--start-line", help="0-based file line of the excerpt's first line.")] = 0,
    variant: Annotated[str, typer.Option("--variant", help="delta-chrF variant: v3, v2 or v1.")] = "v3",
    as_json: Annotated[bool, typer.Option("--json", help="Print {values, signatures} as JSON.")] = False,
) -> None:
    """Every metric for one prediction of one text (like Zed's edit_prediction_metrics)."""
    from rich.console import Console
    from rich.table import Table

    from nextedit.metrics import ScoreError, score_prediction
    from nextedit.record import RecordError, parse_example

    text = _read(base, "base text")
    data = {
        "id": base.name,
        "snapshot": {"path": path or base.name, "text": text, "start_line": start_line, "cursor": 0},
        "expected": [_read(p, "expected patch") for p in expected_patch or []],
        "predictions": [{"provider": "file", "patch": _read(actual_patch, "actual patch")}],
    }
    try:
        score = score_prediction(parse_example(data, file=str(base)), 0, variant=variant)
    except (ScoreError, RecordError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(orjson.dumps({"values": score.values, "signatures": score.signatures},
                                option=orjson.OPT_INDENT_2).decode())
        return
    table = Table("metric", "value", title=f"{base.name} vs {actual_patch.name}")
    for key, value in score.values.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    console = Console()
    console.print(table)
    console.print(f"delta_chrf signature: {score.signatures['delta_chrf']}")


@metrics_app.command("signatures")
def signatures(
    variant: Annotated[str, typer.Option("--variant", help="delta-chrF variant: v3, v2 or v1.")] = "v3",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """The signature of every metric family `score` records (how each number is computed)."""
    from nextedit.metrics import VARIANTS
    from nextedit.metrics import signatures as metric_signatures

    if variant not in VARIANTS:
        raise typer.BadParameter(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")
    sigs = metric_signatures(variant)
    if as_json:
        typer.echo(orjson.dumps(sigs, option=orjson.OPT_INDENT_2).decode())
        return
    width = max(map(len, sigs))
    for name, sig in sigs.items():
        typer.echo(f"{name:<{width}}  {sig}")


def register(app: typer.Typer) -> None:
    """Add the `metrics` command group."""
    app.add_typer(metrics_app, name="metrics")
