"""`nextedit run`, `nextedit pipeline` and `nextedit stages`: run stages over JSONL files (local or Ray engine)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from nextedit.record import RecordError


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def _print_summary(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


#: The engine options every command that runs steps takes (`--engine`, `--ray-address`).
EngineOption = Annotated[str | None, typer.Option("--engine", help="local (this machine, default) or ray "
                                                   "(a Ray cluster; pip install 'nextedit[ray]').")]
RayAddressOption = Annotated[str | None, typer.Option("--ray-address", help="Ray cluster: auto, ray://HOST:PORT "
                                                      "or HOST:PORT (default: $RAY_ADDRESS, else a local one).")]


def register(app: typer.Typer) -> None:
    """Add the `run`, `pipeline` and `stages` commands."""

    @app.command("run")
    def run(
        stage: Annotated[str, typer.Argument(help="A registered stage name (see `nextedit stages`) or module:Class.")],
        input: Annotated[Path, typer.Argument(help="Input JSONL (.gz is read transparently).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL (.gz compresses).")],
        config: Annotated[Path | None, typer.Option("--config", help="Stage options as a TOML file.")] = None,
        concurrency: Annotated[int | None, typer.Option("--concurrency", "-j", min=1,
                                               help="Worker processes (cpu stages) or in-flight examples (io).")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the result cache.")] = False,
        cache: Annotated[Path | None, typer.Option("--cache", help="Cache file (default $NEXTEDIT_CACHE or "
                                                                ".nextedit/cache.sqlite).")] = None,
        restart: Annotated[bool, typer.Option("--restart", help="Ignore the progress of an interrupted run.")] = False,
        fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed example.")] = False,
        progress: Annotated[bool | None, typer.Option("--progress/--no-progress",
                                             help="Progress bar (default: on a terminal only).")] = None,
        json_summary: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
        unordered: Annotated[bool, typer.Option("--unordered", help="io stages: write each result as soon as "
                                                "it is ready instead of in input order.")] = False,
        checkpoint_every: Annotated[float, typer.Option("--checkpoint-every", min=0.0,
                                                        help="Seconds between durable progress records.")] = 2.0,
        engine: EngineOption = None,
        ray_address: RayAddressOption = None,
    ) -> None:
        """Run one stage over a JSONL file: streaming, cached, resumable after a crash."""
        from nextedit.pipeline.engine import RunError, run_stage
        from nextedit.pipeline.registry import (
            ConfigError,
            StageNotFound,
            get_stage,
            load_config,
        )

        try:
            cls = get_stage(stage)
            stage_obj = cls(load_config(cls, config))
            summary = run_stage(stage_obj, input, output, concurrency=concurrency, cache=not no_cache,
                                cache_path=cache, progress=progress, restart=restart, fail_fast=fail_fast,
                                checkpoint_every=checkpoint_every, ordered=not unordered,
                                engine=engine or "local", ray_address=ray_address)
        except (StageNotFound, ConfigError, RunError, RecordError) as exc:
            raise _fail(str(exc)) from None
        from nextedit.commands._outcome import finish

        code = finish(summary, stop=False)
        if json_summary:
            print(orjson.dumps(summary.to_dict()).decode())
        if code:
            raise typer.Exit(code)

    @app.command("pipeline")
    def pipeline(
        file: Annotated[Path, typer.Argument(help="Pipeline TOML: input = ..., then [[stage]] name/output/config.")],
        force: Annotated[bool, typer.Option("--force", help="Run every stage even when its output is up to date.")] = False,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the result cache.")] = False,
        cache: Annotated[Path | None, typer.Option("--cache", help="Cache file (overrides the pipeline's).")] = None,
        progress: Annotated[bool | None, typer.Option("--progress/--no-progress",
                                             help="Progress bar (default: on a terminal only).")] = None,
        json_summary: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON on stdout.")] = False,
        engine: EngineOption = None,
        ray_address: RayAddressOption = None,
    ) -> None:
        """Run the stages of a pipeline file in order, reusing outputs that are up to date."""
        from nextedit.pipeline.engine import RunError, RunFailed
        from nextedit.pipeline.pipeline_file import run_pipeline
        from nextedit.pipeline.registry import ConfigError

        def on_stage(i: int, spec, status: str) -> None:
            print(f"[{i + 1}] {spec.name} -> {spec.output_label or spec.output}: {status}", file=sys.stderr)

        try:
            summaries = run_pipeline(file, force=force, cache=not no_cache, cache_path=cache,
                                     progress=progress, on_stage=on_stage, engine=engine,
                                     ray_address=ray_address,
                                     on_done=lambda i, summary: _print_summary(summary.lines()))
        except RunFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None
        except (ConfigError, RunError, RecordError) as exc:
            raise _fail(str(exc)) from None
        if json_summary:
            print(orjson.dumps([s.to_dict() for s in summaries]).decode())

    @app.command("cache")
    def cache_info(
        cache: Annotated[Path | None, typer.Option("--cache", help="Cache file (default $NEXTEDIT_CACHE or "
                                                                  ".nextedit/cache.sqlite).")] = None,
        clear: Annotated[bool, typer.Option("--clear", help="Delete stored results (all, or --stage's).")] = False,
        stage: Annotated[str | None, typer.Option("--stage", help="Only this stage.")] = None,
    ) -> None:
        """Show what the stage result cache holds (per stage and version), or clear it."""
        from nextedit.pipeline.cache import ResultCache, default_cache_path

        path = cache or default_cache_path()
        if not path.exists():
            raise _fail(f"{path}: no cache file yet (it is created by the first cached run)")
        store = ResultCache(path)
        try:
            if clear:
                print(f"deleted {store.clear(stage)} results from {path}")
                return
            print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
            for name, version, count, size in store.summary():
                if stage is None or name == stage:
                    print(f"  {name:<16} v{version:<4} {count:>9} results  {size / 1e6:8.1f} MB")
        finally:
            store.close()

    @app.command("stages")
    def stages() -> None:
        """List the registered stages: name, version, kind, what it does."""
        from nextedit.pipeline.registry import STAGES, get_stage

        for name in sorted(STAGES):
            try:
                cls = get_stage(name)
            except LookupError as exc:
                print(f"{name:<16} (unavailable: {exc})")
                continue
            doc = (cls.__doc__ or "").strip().splitlines()
            print(f"{name:<16} v{cls.version:<4} {cls.kind:<4} {doc[0] if doc else ''}")
