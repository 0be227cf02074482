"""`nextedit format IN --format F -o OUT`: render examples as prompt/completion rows of a student format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `format` command."""

    @app.command("format")
    def format_(
        input: Annotated[Path, typer.Argument(help="Examples JSONL file (.gz ok).")],
        fmt: Annotated[str, typer.Option("--format", "-f", help="Student format: zeta1, seed-multi-region, "
                                                               "sweep or chat.")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Where the rows go (JSONL, .gz ok).")],
        diagnostics: Annotated[bool, typer.Option("--diagnostics/--no-diagnostics",
                                                  help="Show the snapshot's diagnostics.")] = True,
        history_events: Annotated[int, typer.Option("--history-events", min=0,
                                                    help="At most this many recent edits.")] = 6,
        editable_tokens: Annotated[int, typer.Option("--editable-tokens", min=1,
                                                     help="Token budget of the editable region.")] = 350,
        context_tokens: Annotated[int, typer.Option("--context-tokens", min=0,
                                                    help="Token budget of the code around it.")] = 1024,
        related_tokens: Annotated[int, typer.Option("--related-tokens", min=0,
                                                    help="Token budget of related code and diagnostics.")] = 1024,
        history_tokens: Annotated[int, typer.Option("--history-tokens", min=0,
                                                    help="Token budget of the edit history.")] = 1024,
        candidate: Annotated[bool, typer.Option("--candidate/--no-candidate", help="Show the propagate heuristic's "
                                                "edit of the editable region as a hint.")] = False,
        tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="Count tokens with this tokenizer "
                                                      "(tokenizer.json or a model folder); else bytes/3.")] = None,
        empty_as_no_edit: Annotated[bool, typer.Option("--empty-as-no-edit",
                                                       help="Examples without expected patches train "
                                                            "'no edit' (else they are refused).")] = False,
        check: Annotated[bool, typer.Option("--check/--no-check", help="Refuse rows whose target does not "
                                            "parse back to expected[0].")] = True,
        scrub: Annotated[bool, typer.Option("--scrub/--no-scrub", help="Replace secrets by placeholders in every "
                                            "text before rows are written (docs/privacy.md).")] = False,
        parquet: Annotated[Path | None, typer.Option("--parquet", help="Also write the rows as Parquet.")] = None,
        hf_dataset: Annotated[Path | None, typer.Option("--hf-dataset",
                                                        help="Also save a Hugging Face dataset folder.")] = None,
    ) -> None:
        """Render every example as {id, format, format_version, prompt, completion[, messages]}; refused
        examples go to OUT.failed.jsonl with the reason."""
        from pydantic import ValidationError

        from nextedit.formats import FormatError, FormatOptions, get_format
        from nextedit.formats.export import ExportError, to_hf_dataset, to_parquet
        from nextedit.formats.rows import format_file, load_tokenizer

        if output.resolve() == input.resolve():
            typer.echo(f"error: -o {output} is the input file: formatting would replace the examples "
                       "with rows; choose another output", err=True)
            raise typer.Exit(2)
        try:
            student = get_format(fmt)
            options = FormatOptions(diagnostics=diagnostics, history_events=history_events,
                                    editable_tokens=editable_tokens, context_tokens=context_tokens,
                                    related_tokens=related_tokens, history_tokens=history_tokens,
                                    candidate=candidate)
            tok = load_tokenizer(tokenizer) if tokenizer else None
            summary = format_file(input, output, student, options, tok, empty_as_no_edit=empty_as_no_edit,
                                  check=check, scrub=scrub)
            line = f"{summary.written} rows ({student.name} v{student.version}) -> {output}"
            if summary.refused:
                line += f"; {summary.refused} refused -> {summary.failed}"
            typer.echo(line)
            if parquet is not None:
                typer.echo(f"{to_parquet(output, parquet)} rows -> {parquet}")
            if hf_dataset is not None:
                n = to_hf_dataset(output, hf_dataset, parquet_path=parquet)
                typer.echo(f"{n} rows -> {hf_dataset} (datasets.load_from_disk)")
        except (FormatError, ExportError, ValidationError, ValueError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
