"""`nextedit feedback export|eval`: feedback datasets from the serve event store, and their offline evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

feedback_app = typer.Typer(help="Learn from users' accepts and rejects (docs/feedback.md).", no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)
MAX_SHOWN_ERRORS = 10


def register(app: typer.Typer) -> None:
    """Add the `feedback` command group."""
    app.add_typer(feedback_app, name="feedback")


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(f"[red]error[/red] {escape(message)}")
    return typer.Exit(code)


def eval_output_path(output: Path) -> Path:
    """`feedback.jsonl` -> `feedback.eval.jsonl` (the held-out users' records)."""
    name = output.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".eval" + suffix)
    return output.with_name(name + ".eval.jsonl")


@feedback_app.command("export")
def export(
    store: Annotated[str, typer.Option("--store", help="Event store of `nextedit serve`: SQLite path or "
                                                       "postgresql:// URL.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Feedback records of the training users "
                                                                "(JSONL, .gz ok).")],
    since: Annotated[str | None, typer.Option(help="Only requests and events at or after this ISO date/time.")] = None,
    eval_users: Annotated[float, typer.Option("--eval-users", help="Fraction of users held out (by a salted "
                                              "hash of the user): their records go to --eval-output.")] = 0.0,
    eval_output: Annotated[Path | None, typer.Option("--eval-output", help="Held-out users' records; default: "
                                                     "OUTPUT with .eval before .jsonl.")] = None,
    split_salt: Annotated[str | None, typer.Option("--split-salt", help="Salt of the user split hash (same "
                                                   "salt, same split on every export).")] = None,
    require_open_source: Annotated[bool, typer.Option("--require-open-source", help="Keep only requests from "
                                                      "open-source repositories.")] = False,
) -> None:
    """One record per shown prediction: prompt context (snapshot), prediction, explicit outcome (accepted,
    partially_accepted, rejected, ignored), time to decision and settled text; no user on both sides."""
    from nextedit.feedback.export import (
        DEFAULT_SPLIT_SALT,
        ExportStats,
        export_feedback,
        open_existing_store,
    )
    from nextedit.feedback.records import FeedbackError
    from nextedit.jsonl import JsonlWriter

    errors: list[str] = []
    stats = ExportStats()
    held_out = eval_output or eval_output_path(output)
    try:
        ev_store = open_existing_store(store)
        records = export_feedback(ev_store, since=since, eval_users=eval_users,
                                  salt=split_salt or DEFAULT_SPLIT_SALT, require_open_source=require_open_source,
                                  on_error=errors.append, stats=stats)
        with JsonlWriter(output) as train_out:
            if eval_users > 0:
                with JsonlWriter(held_out) as eval_out:
                    for rec in records:
                        (eval_out if rec.split == "eval" else train_out).write(rec.model_dump(mode="json"))
            else:
                for rec in records:
                    train_out.write(rec.model_dump(mode="json"))
    except FeedbackError as exc:
        raise _fail(str(exc)) from None
    for line in errors[:MAX_SHOWN_ERRORS]:
        _err.print(f"[yellow]skipped[/yellow] {escape(line)}")
    if len(errors) > MAX_SHOWN_ERRORS:
        _err.print(f"... and {len(errors) - MAX_SHOWN_ERRORS} more")
    for line in stats.lines():
        _err.print(escape(line))
    _err.print(f"train -> {output}" + (f"; eval -> {held_out}" if eval_users > 0 else ""))
    if errors:
        raise typer.Exit(1)
