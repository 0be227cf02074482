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
    model_version: Annotated[list[str] | None, typer.Option("--model-version", help="Keep only predictions "
                                                            "served by this model version (repeatable).")] = None,
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
                                  model_versions=set(model_version) if model_version else None,
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


def _fmt_ci(entry: dict | None, digits: int, signed: bool = False) -> str:
    if entry is None:
        return "–"
    sign = "+" if signed else ""
    ci = entry.get("ci")
    text = f"{entry['mean']:{sign}.{digits}f}"
    return text + (f" [{ci[0]:{sign}.{digits}f}, {ci[1]:{sign}.{digits}f}]" if ci else "")


def print_offline_table(result: dict, console: Console) -> None:
    """Means per model, then paired differences against the current student, as rich tables."""
    from rich.table import Table

    from nextedit.feedback.offline import METRICS
    from nextedit.tables import print_table

    table = Table(title=f"held-out users: {result['users']} users, {result['records']} records "
                        f"({', '.join(f'{n} {k}' for k, n in result['outcomes'].items())})")
    table.add_column("model")
    for _, label in METRICS.values():
        table.add_column(label)
    table.add_column("errors")
    for name, m in result["models"].items():
        table.add_row(escape(name) + (" (current)" if name == result["current"] else ""),
                      *(_fmt_ci(m[k], 2 if k == "delta_chrf" else 3) for k in METRICS), str(m["errors"]))
    print_table(table, console)
    for name, paired in result["paired"].items():
        diff = Table(title=f"{escape(name)} - {escape(result['current'])} (paired, {result['interval']})")
        diff.add_column("metric")
        diff.add_column("difference [95% CI]")
        diff.add_column("records")
        diff.add_column("verdict")
        for key, (_, label) in METRICS.items():
            d = paired.get(key)
            diff.add_row(label, _fmt_ci(d, 2 if key == "delta_chrf" else 3, signed=True),
                         str(d["records"]) if d else "0", d.get("verdict", "–") if d else "–")
        print_table(diff, console)


@feedback_app.command("eval")
def evaluate(
    records_file: Annotated[Path, typer.Argument(help="Held-out users' feedback records (`feedback export "
                                                      "--eval-users`).")],
    candidate: Annotated[list[str], typer.Option("--candidate", "-p", help="New student(s): provider string, "
                                                 "e.g. local:runs/kto/merged (repeatable).")],
    current: Annotated[str, typer.Option("--current", help="The current student: `recorded` (the logged "
                                         "predictions) or a provider string.")] = "recorded",
    option: Annotated[list[str] | None, typer.Option("--option", help="Predictor option KEY=VALUE for every "
                                                     "re-run model (repeatable).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Evaluate the first N records.")] = None,
    resamples: Annotated[int, typer.Option("--resamples", min=100, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the result as JSON here.")] = None,
) -> None:
    """Before any rollout: how often each candidate reproduces rejected predictions, abstains where users
    rejected, keeps accepted ones, its deltaChrF against the settled text and its reversal ratio, each
    paired against the current student with intervals over users."""
    import orjson

    from nextedit.evaluate.running import parse_options
    from nextedit.feedback.offline import (
        RECORDED,
        evaluate_answers,
        predict_answers,
        recorded_answer,
    )
    from nextedit.feedback.records import FeedbackError, read_feedback
    from nextedit.predictors import PredictorError, get_predictor

    try:
        records = list(read_feedback(records_file))
        options = parse_options(option or [])
        models = {name: None if name == RECORDED else get_predictor(name, **options)
                  for name in dict.fromkeys([current, *candidate])}
    except (FeedbackError, PredictorError, ValueError) as exc:
        raise _fail(str(exc)) from None
    records = records[:limit] if limit else records
    if not records:
        raise _fail(f"{records_file}: no feedback records")
    answers = {}
    for name, predictor in models.items():
        if predictor is None:
            answers[name] = [recorded_answer(r) for r in records]
            continue
        _err.print(f"predicting {len(records)} records with {escape(name)} ...")
        answers[name] = predict_answers(records, predictor)
    result = evaluate_answers(records, answers, current=current, resamples=resamples, seed=seed)
    print_offline_table(result, _out)
    if json_out:
        json_out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
