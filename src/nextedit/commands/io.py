"""`nextedit import ...` and `nextedit export ...`: bring outside data in as records, and write it back.

The two typer groups are module-level (`import_app`, `export_app`), so another importer is one more
`@import_app.command("traces")` function here or in a module that imports these groups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from nextedit.jsonl import FailedWriter, JsonlWriter, read_examples
from nextedit.sources.zed import Failure, read_zed, write_zed

import_app = typer.Typer(help="Import outside data (Zed specs and evals, ...) as example records (JSONL).",
                         no_args_is_help=True)
export_app = typer.Typer(help="Export example records to outside formats (Zed Markdown evals or JSONL).",
                         no_args_is_help=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `import` and `export` command groups."""
    app.add_typer(import_app, name="import")
    app.add_typer(export_app, name="export")


@import_app.command("zed")
def import_zed(
    files: Annotated[list[Path], typer.Argument(help="Zed .md evals, ExampleSpec .jsonl/.jsonl.gz/.json "
                                                     "files, or folders holding them.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL of example records.")],
) -> None:
    """Read Zed ExampleSpec JSONL and Markdown eval files into example records.

    A bad file or row is reported (file, line, field) and written to OUT.failed.jsonl; the good
    ones are still imported. Exit status 1 when anything failed.
    """
    with FailedWriter(output, stage="import zed") as failed, JsonlWriter(output) as writer:

        def on_failure(failure: Failure) -> None:
            _err.print(f"[red]error[/red] {escape(failure.reason)}", markup=True)
            failed.write(file=failure.file, line=failure.line, reason=failure.reason, raw=failure.raw)

        for example in read_zed(files, on_failure=on_failure):
            writer.write(example)
    _err.print(f"imported {writer.count} examples -> {output}"
               + (f"; {failed.count} failed -> {failed.path}" if failed.count else ""))
    if failed.count:
        raise typer.Exit(1)


@export_app.command("zed")
def export_zed(
    records_path: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL of example records.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for .md files, or a .jsonl file.")],
    fmt: Annotated[str | None, typer.Option("--format", help="md (one file per example into OUTPUT) or "
                                                             "jsonl (Zed ExampleSpec rows); default from "
                                                             "OUTPUT's name.")] = None,
) -> None:
    """Write example records as Zed Markdown evals or Zed ExampleSpec JSONL."""
    if not records_path.is_file():
        _err.print(f"error: {records_path}: no such input file")
        raise typer.Exit(2)
    chosen = fmt or ("jsonl" if output.name.endswith((".jsonl", ".jsonl.gz")) else "md")
    if chosen not in ("md", "jsonl"):
        raise typer.BadParameter(f"unknown format {chosen!r} (use md or jsonl)", param_hint="--format")
    kind: Literal["md", "jsonl"] = "md" if chosen == "md" else "jsonl"
    if kind == "jsonl" and output.is_dir():
        # An existing folder takes one JSONL file named after the input.
        output = output / (records_path.name.removesuffix(".gz").removesuffix(".jsonl") + ".jsonl")
        if output.resolve() == records_path.resolve():
            _err.print(f"error: {output} would overwrite the input; give -o FILE.jsonl")
            raise typer.Exit(2)
    warnings: list[str] = []
    with FailedWriter(output, stage="export zed") as failed:
        records = read_examples(records_path, errors="skip", on_error=failed.on_error(str(records_path)))
        count = write_zed(records, output, fmt=kind, warn=warnings.append)
    for message in warnings:
        _err.print(f"[yellow]warning[/yellow] {escape(message)}", markup=True)
    _err.print(f"exported {count} examples -> {output}"
               + (f"; {failed.count} bad input lines -> {failed.path}" if failed.count else ""))
    if failed.count:
        raise typer.Exit(1)


@import_app.command("traces")
def import_traces_command(
    files: Annotated[list[Path], typer.Argument(help="Trace files: JSONL (.gz ok) or a SQLite event store "
                                                     "(table events with a JSON payload column).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL of example records.")],
    require_consent: Annotated[bool, typer.Option("--require-consent", help="Keep only requests marked "
                                                  "collectable (the user opted in).")] = False,
    require_open_source: Annotated[bool, typer.Option("--require-open-source", help="Keep only requests "
                                                      "from open-source repositories.")] = False,
    replay: Annotated[bool, typer.Option("--replay/--no-replay", help="Derive settled regions from edit "
                                         "events when a request has no settled event.")] = True,
    quiet_s: Annotated[float, typer.Option("--quiet-s", help="Replay: seconds of quiet that settle a region.")] = 10.0,
    ttl_s: Annotated[float, typer.Option("--ttl-s", help="Replay: seconds after which a region is given up.")] = 300.0,
) -> None:
    """Turn editor traces (request + settled pairs) into examples: settled text set, the settled
    diff as expected, the model's own output as rejected. See docs/traces.md for the format."""
    from nextedit.commands.settle import run_import_traces

    run_import_traces(files, output, require_consent=require_consent, require_open_source=require_open_source,
                      replay=replay, quiet_s=quiet_s, ttl_s=ttl_s)
