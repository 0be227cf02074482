"""`nextedit settle IN --provider P --samples 50 -o OUT`: keep examples whose closest candidate lands in the distance band."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from nextedit.commands.run import EngineOption, RayAddressOption
from nextedit.predictors.base import PredictorError


def register(app: typer.Typer) -> None:
    """Add the `settle` command."""

    @app.command("settle")
    def settle(
        input: Annotated[Path, typer.Argument(help="Examples with `settled` text (JSONL, .gz ok), e.g. "
                                                   "from `nextedit import traces`.")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Kept examples (target = closest "
                                                                     "candidate); dropped ones go to "
                                                                     "OUT.dropped.jsonl.")],
        provider: Annotated[str, typer.Option("--provider", "-p", help="Predictor drawing the candidates: "
                                              "local:PATH, openai-compatible:URL, teacher:SPEC, scripted:PATH, ...")] = "noop",
        samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Candidates per example.")] = 50,
        option: Annotated[list[str] | None, typer.Option("--option", help="Predictor option KEY=VALUE (repeatable).")] = None,
        metric: Annotated[str, typer.Option("--metric", help="Distance: levenshtein, levenshtein_change, kept_rate or delta_chrf.")] = "levenshtein",
        low: Annotated[float, typer.Option("--low", help="Best distance <= LOW is too trivial.")] = 0.0,
        high: Annotated[float, typer.Option("--high", help="Best distance > HIGH is too noisy.")] = 0.3,
        low_quantile: Annotated[float | None, typer.Option("--low-quantile", help="Set LOW to this quantile "
                                                            "of the run's best distances.")] = None,
        high_quantile: Annotated[float | None, typer.Option("--high-quantile", help="Set HIGH to this quantile "
                                                             "of the run's best distances.")] = None,
        teacher_samples: Annotated[int, typer.Option("--teacher-samples", help="Teacher samples per example in "
                                                     "the cost comparison.")] = 10,
        teacher_input_price: Annotated[float, typer.Option("--teacher-input-price", help="USD per 1M teacher "
                                                           "input tokens.")] = 3.0,
        teacher_output_price: Annotated[float, typer.Option("--teacher-output-price", help="USD per 1M teacher "
                                                            "output tokens.")] = 15.0,
        student_price: Annotated[float, typer.Option("--student-price", help="USD per candidate when the "
                                                     "predictor reports no cost.")] = 0.0,
        keep_candidates: Annotated[bool, typer.Option("--keep-candidates", help="Also store every candidate "
                                                      "in predictions (large).")] = False,
        concurrency: Annotated[int | None, typer.Option("--concurrency", "-j", help="Worker processes "
                                                        "(in-process predictors) or examples in flight.")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the result cache.")] = False,
        restart: Annotated[bool, typer.Option("--restart", help="Ignore a checkpoint of an interrupted run.")] = False,
        band_only: Annotated[bool, typer.Option("--band-only", help="Skip drawing candidates: apply the band to "
                                                "the OUT.distances.jsonl of an earlier run (try other "
                                                "thresholds without loading the predictor).")] = False,
        engine: EngineOption = None,
        ray_address: RayAddressOption = None,
    ) -> None:
        """Draw N candidates per example, measure each one's distance to the settled text, and keep the
        examples whose closest candidate is neither trivially close nor far (noise).

        Writes OUT (kept, expected = closest candidate), OUT.dropped.jsonl (with the reason),
        OUT.distances.jsonl (the resumable per-example stage output), OUT.report.html and
        OUT.summary.json.
        """
        from nextedit.evaluate.running import parse_options, run
        from nextedit.settle.band import (
            BandSpec,
            CostConfig,
            apply_band,
            distances_path,
        )
        from nextedit.settle.report import write_report
        from nextedit.settle.stage import SettleConfig, SettleStage

        stage_out = distances_path(output)
        if band_only and not stage_out.is_file():
            typer.echo(f"error: {stage_out}: no such file (run without --band-only first)", err=True)
            raise typer.Exit(2)
        try:
            band = BandSpec(low=low, high=high, low_quantile=low_quantile, high_quantile=high_quantile)
            cost = CostConfig(teacher_samples=teacher_samples, teacher_input_price=teacher_input_price,
                              teacher_output_price=teacher_output_price, student_price_per_sample=student_price)
            config = SettleConfig.model_validate({"provider": provider, "samples": samples, "metric": metric,
                                                  "options": parse_options(option or []),
                                                  "keep_candidates": keep_candidates})
            stage = None if band_only else SettleStage(config)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or "(options)"
            typer.echo(f"error: {field}: {first['msg']}", err=True)
            raise typer.Exit(2) from None
        except PredictorError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        failed, failed_output = 0, None
        if stage is not None:
            if concurrency is None and stage.kind == "cpu":
                concurrency = os.cpu_count() or 1  # 50 candidates per example: worth processes even for few
            ran = run(stage, input, stage_out, concurrency=concurrency, cache=not no_cache, restart=restart,
                      engine=engine, ray_address=ray_address)
            failed, failed_output = ran.failed, ran.failed_output
        try:
            summary = apply_band(stage_out, output, band, cost=cost, failed=failed, failed_output=failed_output)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        html, js = write_report(summary, output)
        c = summary["counts"]
        b = summary["band"]
        typer.echo(f"settle: {c['examples']} examples, band ({b['mode']}) {b['low']:.4f} < d <= {b['high']:.4f}: "
                   f"kept {c['kept']}, too trivial {c['too_trivial']}, too noisy {c['too_noisy']}, "
                   f"no candidate {c['no_candidate']}"
                   + (f"; failed {c['failed']} -> {summary['failed_output']}" if c["failed"] else ""), err=True)
        typer.echo(f"  cost: {summary['cost']['teacher_usd']:.2f} USD for {cost.teacher_samples} teacher samples "
                   f"per example vs {summary['cost']['student_usd']:.2f} USD drawn "
                   f"(saved {summary['cost']['saved_usd']:.2f})", err=True)
        typer.echo(f"  kept: {output}\n  dropped: {summary['dropped_output']}\n  report: {html}\n  summary: {js}",
                   err=True)


def run_import_traces(files: list[Path], output: Path, *, require_consent: bool, require_open_source: bool,
                      replay: bool, quiet_s: float, ttl_s: float) -> None:
    """`nextedit import traces`: write the examples, quarantine bad events, print what happened."""
    from rich.console import Console
    from rich.markup import escape

    from nextedit.jsonl import FailedWriter, JsonlWriter
    from nextedit.settle.traces import ImportStats, TraceError, import_traces

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for f in files:
        if not f.is_file():
            err.print(f"error: {escape(str(f))}: no such file", markup=False)
            raise typer.Exit(2)
    stats = ImportStats()
    shown = 0
    with FailedWriter(output, stage="import traces") as failed, JsonlWriter(output) as writer:

        def on_error(file: str, line: int, reason: str, raw: object) -> None:
            nonlocal shown
            if shown < 20:
                err.print(f"[red]error[/red] {escape(reason)}", markup=True)
            shown += 1
            failed.write(file=file, line=line, reason=reason, raw=raw if isinstance(raw, dict) else None)

        try:
            for example in import_traces(files, require_consent=require_consent,
                                         require_open_source=require_open_source, replay=replay,
                                         quiet_s=quiet_s, ttl_s=ttl_s, on_error=on_error, stats=stats):
                writer.write(example)
        except TraceError as exc:
            err.print(f"error: {escape(str(exc))}", markup=False)
            raise typer.Exit(1) from None
    err.print(f"imported {stats.examples} examples from {stats.requests} requests ({stats.events} events) -> {output}; "
              f"settled by event {stats.settled_by.get('event', 0)}, by replay {stats.settled_by.get('replay', 0)}; "
              f"skipped: no settled region {stats.no_settled}, not collectable {stats.not_consented}, "
              f"not open source {stats.not_open_source}, duplicates {stats.duplicates}"
              + (f"; {failed.count} bad events -> {failed.path}" if failed.count else ""), markup=False)
    if failed.count:
        raise typer.Exit(1)
