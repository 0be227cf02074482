"""Running steps from commands (one stage, or predict -> score as one in-memory pipeline): summary lines, one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from nextedit.pipeline.engine import RunError, RunSummary, run_stage
from nextedit.pipeline.runner import Step, run_pipeline
from nextedit.pipeline.stage import Stage


def parse_options(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> dict (values parsed as JSON when they look like it, else strings)."""
    import orjson

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"option {item!r}: expected KEY=VALUE")
        try:
            out[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key] = value
    return out


def run(stage: Stage, src: Path, out: Path, *, concurrency: int | None, cache: bool, restart: bool = False,
        progress: bool | None = None, engine: str | None = None, ray_address: str | None = None) -> RunSummary:
    """Run a stage over a file, print the engine's summary lines to stderr; exit 1 on a run error, a
    damaged input or a run in which every example failed."""
    from nextedit.commands._outcome import finish

    try:
        summary = run_stage(stage, src, out, concurrency=concurrency, cache=cache, restart=restart,
                            progress=progress, engine=engine or "local", ray_address=ray_address)
    except RunError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finish(summary)
    return summary


def run_steps(steps: list[Step], src: Path, *, cache: bool, progress: bool | None = None,
              engine: str | None = None, ray_address: str | None = None) -> list[RunSummary]:
    """Run an in-memory pipeline over a file (every step runs), printing each step's summary lines to
    stderr; exit 1 on a run error."""
    def done(_i: int, summary: RunSummary) -> None:
        for line in summary.lines():
            typer.echo(line, err=True)

    try:
        return run_pipeline(steps, input=src, force=True, cache=cache, progress=progress, engine=engine,
                            ray_address=ray_address, on_done=done)
    except RunError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _slug(provider: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in provider)[:60]


def markdown_inputs(inputs: list[Path]) -> list[Path] | None:
    """The Zed Markdown eval files named by `inputs` (files or folders of .md), or None for JSONL input."""
    md: list[Path] = []
    other: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(q for q in p.glob("*.md") if q.name.lower() != "readme.md")
            if not found:
                raise typer.BadParameter(f"{p}: folder holds no Zed .md eval files")
            md += found
        elif p.suffix.lower() == ".md":
            if p.name.lower() != "readme.md":  # a folder's README (e.g. from a *.md glob) is no eval
                md.append(p)
        else:
            other.append(p)
    if md and other:
        raise typer.BadParameter("mix of Markdown and JSONL inputs: give either .md files/folders or one JSONL")
    return md or None


def import_markdown(files: list[Path], out: Path) -> int:
    """Convert Zed Markdown eval files into one JSONL of examples; bad files are reported and skipped.

    Returns how many examples were written; exits 1 when none could be imported.
    """
    from nextedit.jsonl import JsonlWriter
    from nextedit.sources.zed import Failure, read_zed_file

    failures: list[Failure] = []
    n = 0
    with JsonlWriter(out) as writer:
        for f in files:
            for example in read_zed_file(f, on_failure=failures.append):
                writer.write(example)
                n += 1
    for failure in failures:
        typer.echo(f"skipped: {failure.reason}", err=True)
    if n == 0:
        typer.echo("error: no example could be imported", err=True)
        raise typer.Exit(1)
    return n


def evaluate(inputs: list[Path], report_dir: Path, *, providers: list[str], samples: int = 1,
             options: dict[str, Any] | None = None, concurrency: int | None = None, cache: bool = True,
             resamples: int = 1000, seed: int = 0, title: str = "nextedit evaluation",
             engine: str | None = None, ray_address: str | None = None,
             baseline: str | None = None) -> dict[str, Any]:
    """predict (per provider) -> score -> summary.json + report.html in `report_dir`; returns the summary."""
    import orjson

    from nextedit.evaluate.report import write_report
    from nextedit.evaluate.stages import PredictStage, ScoreStage
    from nextedit.evaluate.summary import SummaryBuilder, summarize
    from nextedit.jsonl import read_examples
    from nextedit.predictors.base import PredictorError

    report_dir.mkdir(parents=True, exist_ok=True)
    md = markdown_inputs(inputs)
    if md is not None:
        src = report_dir / "examples.jsonl"
        n = import_markdown(md, src)
        typer.echo(f"imported {n} Zed eval files into {src}", err=True)
    elif len(inputs) != 1:
        raise typer.BadParameter("give one JSONL file (or Zed .md files / folders)")
    else:
        src = inputs[0]
    try:
        stages = [PredictStage({"provider": p, "samples": samples, "options": options or {}}) for p in providers]
    except PredictorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    names = [stage.predictor.name for stage in stages]
    if baseline is not None and names and baseline not in names:
        typer.echo(f"error: --baseline {baseline!r} is none of the providers: {', '.join(names)}", err=True)
        raise typer.Exit(2)
    steps = [Step(stage, report_dir / f"predictions.{_slug(stage.predictor.name)}.jsonl", concurrency=concurrency)
             for stage in stages]
    scored = report_dir / "scored.jsonl"
    steps.append(Step(ScoreStage(), scored, concurrency=concurrency))
    failed = sum(s.failed for s in run_steps(steps, src, cache=cache, engine=engine, ray_address=ray_address))
    builder = SummaryBuilder()
    for example in read_examples(scored):
        builder.add(example)
    try:
        summary = summarize(builder, input_name=", ".join(str(p) for p in inputs), resamples=resamples, seed=seed,
                            failed=failed, baseline=baseline)
    except ValueError as exc:  # a --baseline that names no provider of the run
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    tmp = report_dir / "summary.json.tmp"
    tmp.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(report_dir / "summary.json")
    write_report(summary, report_dir, title=title)
    return summary
