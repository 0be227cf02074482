"""`nextedit teacher IN -o OUT`: teacher -> checks -> [judge] -> repair -> distill, one in-memory pipeline."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from nextedit.commands.run import EngineOption, RayAddressOption


def _fail(message: str) -> typer.Exit:
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(2)


def _load(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _fail(f"{path}: {exc}") from None
    unknown = set(data) - {"teacher", "checks", "judge", "repair", "distill"}
    if unknown:
        raise _fail(f"{path}: field {min(unknown)}: unknown table (teacher, checks, judge, repair, distill)")
    return data


def register(app: typer.Typer) -> None:
    """Add the `teacher` command."""

    @app.command("teacher")
    def teacher(
        input: Annotated[Path, typer.Argument(help="Examples (JSONL, .gz ok).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Distilled examples (expected = the targets).")],
        provider: Annotated[str | None, typer.Option("--provider", "-p", help="anthropic:MODEL, openai:MODEL or "
                                                     "openai-compatible:URL#MODEL.")] = None,
        samples: Annotated[int | None, typer.Option("--samples", "-n", min=1, help="Teacher samples per example.")] = None,
        max_rounds: Annotated[int | None, typer.Option("--max-rounds", min=0,
                                                       help="Repair rounds (0: no repair; default 2).")] = None,
        max_cost_usd: Annotated[float | None, typer.Option("--max-cost-usd", min=0.0,
                                                           help="Budget for the whole chain, in dollars.")] = None,
        judge: Annotated[bool, typer.Option("--judge/--no-judge", help="Run the LLM judge before repair.")] = False,
        licenses: Annotated[str | None, typer.Option("--licenses", help="Comma-separated allow-list of "
                                                     "source.license values (others are never sent).")] = None,
        config: Annotated[Path | None, typer.Option("--config", help="TOML with tables teacher, checks, judge, "
                                                    "repair, distill (flags win).")] = None,
        concurrency: Annotated[int | None, typer.Option("--concurrency", "-j", min=1,
                                                        help="In-flight examples for the LLM stages.")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the stage cache.")] = False,
        progress: Annotated[bool | None, typer.Option("--progress/--no-progress")] = None,
        batch: Annotated[Path | None, typer.Option("--batch", help="Queue the requests as provider batch jobs "
                                                   "(half price) with their state in this folder; then "
                                                   "`nextedit batch collect DIR` and run again to finish.")] = None,
        estimate: Annotated[bool, typer.Option("--estimate", help="Print the estimated cost per 1,000 examples "
                                               "(from up to 500 input prompts) and stop: no request is made.")] = False,
        engine: EngineOption = None,
        ray_address: RayAddressOption = None,
    ) -> None:
        """Distil teacher targets: every intermediate file is kept beside OUT (OUT.teacher.jsonl, ...)."""
        from nextedit.pipeline.engine import RunError
        from nextedit.pipeline.registry import ConfigError, validate_config
        from nextedit.pipeline.runner import Step, run_pipeline, total_spent
        from nextedit.record import RecordError
        from nextedit.teacher.stages import (
            ChecksStage,
            DistillStage,
            JudgeStage,
            RepairStage,
            TeacherStage,
        )

        tables = _load(config)
        if estimate:
            _estimate(input, provider or tables.get("teacher", {}).get("provider"), samples or 1, judge,
                      0.0 if max_rounds == 0 else 0.2)
            return
        llm_flags: dict[str, Any] = {}
        if provider:
            llm_flags["provider"] = provider
        privacy = {"licenses": [x.strip() for x in licenses.split(",") if x.strip()]} if licenses else None
        checks_cfg = tables.get("checks", {})

        def cfg(name: str, extra: dict[str, Any]) -> dict[str, Any]:
            data = {**tables.get(name, {}), **extra}
            if privacy is not None and name in ("teacher", "judge", "repair"):
                data["privacy"] = {**data.get("privacy", {}), **privacy}
            if name in ("repair", "distill"):
                data.setdefault("checks", checks_cfg)
            if batch is not None and name in ("teacher", "judge", "repair"):
                data["client"] = {**data.get("client", {}), "batch_dir": str(batch)}
            return data

        plan: list[tuple[type, dict[str, Any]]] = [
            (TeacherStage, cfg("teacher", {**llm_flags, **({"samples": samples} if samples else {})})),
            (ChecksStage, checks_cfg),
        ]
        if judge:
            plan.append((JudgeStage, cfg("judge", llm_flags)))
        if max_rounds != 0:
            plan.append((RepairStage, cfg("repair", {**llm_flags, **({"max_rounds": max_rounds}
                                                                      if max_rounds else {})})))
        plan.append((DistillStage, cfg("distill", {})))

        # Configuration that cannot work (unknown provider, no API key, bad option) stops here,
        # before any request is made or any file is written.
        from nextedit.llm import preflight

        for cls, data in plan:
            try:
                checked = validate_config(cls, data, where=f"{config or 'flags'} [{cls.name}]")
                if cls.kind == "io" and hasattr(checked, "provider") and hasattr(checked, "client"):
                    preflight(checked.provider, **checked.client.model_dump())
            except (ConfigError, ValueError) as exc:
                raise _fail(str(exc)) from None
        if not input.is_file():
            raise _fail(f"{input}: no such input file")

        from nextedit.commands._outcome import finish

        steps: list[Step] = []
        try:
            for i, (cls, data) in enumerate(plan):
                last = i == len(plan) - 1
                out = output if last else output.with_name(f"{output.stem}.{cls.name}{output.suffix or '.jsonl'}")
                stage = cls(validate_config(cls, data, where=f"{config or 'flags'} [{cls.name}]"))
                steps.append(Step(stage, out, concurrency=concurrency if cls.kind == "io" else None))
            summaries = run_pipeline(steps, input=input, force=True, cache=not no_cache, progress=progress,
                                     max_cost_usd=max_cost_usd, engine=engine, ray_address=ray_address,
                                     on_done=lambda _i, summary: finish(summary))
        except (ConfigError, RunError, RecordError, ValueError) as exc:
            raise _fail(str(exc)) from None
        spent = total_spent(summaries)
        if spent:
            print(f"teacher chain: spent ${spent:.4f} on new requests", file=sys.stderr)


def _estimate(path: Path, provider: str | None, samples: int, judge: bool, repair_rate: float) -> None:
    """Print the cost estimate for the first 500 examples of `path`."""
    from itertools import islice

    from nextedit.jsonl import read_examples
    from nextedit.record import RecordError
    from nextedit.teacher.common import DEFAULT_PROVIDER
    from nextedit.teacher.cost import estimate_cost

    try:
        est = estimate_cost(islice(read_examples(path), 500), provider or DEFAULT_PROVIDER, samples=samples,
                            repair_rate=repair_rate, judge=judge)
    except (RecordError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    usd = "no price (local server?)" if est.usd_per_1000 is None else (
        f"${est.usd_per_1000:.2f} per 1,000 examples (batch API: ${est.usd_per_1000_batch:.2f})")
    print(f"{est.model}: {usd}; from {est.examples} examples: system {est.system_tokens} tokens (prompt-cached), "
          f"example {est.user_tokens:.0f} tokens, answer ~{est.answer_tokens:.0f} tokens, samples {samples}, "
          f"repair rate {repair_rate:.0%}{', judge' if judge else ''}")
