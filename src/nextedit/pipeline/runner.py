"""In-memory pipelines: a list of Steps (a stage and its output file) run in order by one engine, each
output kept and reused when up to date; a pipeline TOML file loads into the same list."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nextedit.pipeline.engine import (
    RunError,
    RunFailed,
    RunSummary,
    _fingerprint,
    _read_json,
    file_sha256,
    run_stage,
    sidecar_paths,
)
from nextedit.pipeline.stage import SourceStage, Stage, config_hash

__all__ = ["Step", "reused_summary", "run_pipeline", "stop_if_failed", "total_spent", "up_to_date"]


@dataclass
class Step:
    """One step of a pipeline: a stage, where its output goes, and (optionally) where its input comes
    from (default: the previous step's output; a source stage reads its own input)."""

    stage: Stage
    output: Path
    input: Path | None = None
    concurrency: int | None = None
    ordered: bool = True
    label: str | None = None  # how a pipeline file named the stage and its output, for messages
    output_label: str | None = None

    @property
    def name(self) -> str:
        """The stage's name (as the pipeline file wrote it, when it came from one)."""
        return self.label or self.stage.name


def up_to_date(stage: Stage, input_path: Path | None, output_path: Path) -> tuple[bool, str]:
    """Is `output_path` a complete result of this stage (same version and config) over this input
    content? Returns (answer, reason)."""
    paths = sidecar_paths(output_path, getattr(stage, "side_output", None))
    manifest = _read_json(paths["manifest"])
    if manifest is None or not output_path.exists():
        return False, "no finished output"
    if paths["checkpoint"].exists():
        return False, "an interrupted run left a checkpoint"
    if (manifest.get("stage"), manifest.get("version")) != (stage.name, stage.version):
        return False, "stage version changed"
    if manifest.get("config_hash") != config_hash(stage.config):
        return False, "config changed"
    st = output_path.stat()
    out = manifest.get("output", {})
    if (out.get("size"), out.get("mtime_ns")) != (st.st_size, st.st_mtime_ns):
        return False, "output was modified"
    recorded = manifest.get("input", {})
    if isinstance(stage, SourceStage):
        return (True, "up to date") if recorded == stage.fingerprint() else (False, "input changed")
    assert input_path is not None
    fp = _fingerprint(input_path)
    same_file = all(recorded.get(k) == fp[k] for k in ("path", "size", "mtime_ns"))
    if not same_file and recorded.get("sha256") != file_sha256(input_path):
        return False, "input changed"
    return True, "up to date"


def reused_summary(output: Path) -> RunSummary:
    """The summary recorded by the run that produced an up-to-date output."""
    manifest = _read_json(sidecar_paths(output)["manifest"]) or {}
    recorded = {k: v for k, v in manifest.get("summary", {}).items() if k in RunSummary.__dataclass_fields__}
    recorded["top_failures"] = [tuple(x) for x in recorded.get("top_failures", ())]
    return RunSummary(**{**recorded, "reused": True, "seconds": 0.0, "spent_usd": 0.0})


def stop_if_failed(index: int, step: Step, summary: RunSummary, *, last: bool = False) -> None:
    """Raise RunFailed after a step whose input was damaged or whose every example failed (the later
    steps would only work on what is left of it; after the last step, the pipeline failed all the same)."""
    if summary.input_error or summary.all_failed:
        raise RunFailed(f"stage {index + 1} ({step.name}) " + (
            "stopped at a damaged input" if summary.input_error else
            f"failed for every example ({summary.failed}); see {summary.failed_output}")
            + ("" if last else "; the later stages were not run"))


def _with_budget(stage: Stage, left: float) -> Stage:
    """The same stage with its per-run budget (`max_cost_usd`) capped at what the pipeline has left."""
    fields = type(stage.config).model_fields
    if "max_cost_usd" not in fields:
        return stage
    mine = getattr(stage.config, "max_cost_usd", None)
    cap = left if mine is None else min(mine, left)
    return type(stage)(stage.config.model_copy(update={"max_cost_usd": max(cap, 0.0)}))


def run_pipeline(steps: Sequence[Step] | str | os.PathLike[str], *, input: str | os.PathLike[str] | None = None,
                 force: bool = False, cache: bool = True, cache_path: str | os.PathLike[str] | None = None,
                 progress: bool | None = None, concurrency: int | None = None, restart: bool = False,
                 engine: str | None = None, ray_address: str | None = None, max_cost_usd: float | None = None,
                 on_stage: Callable[[int, Step, str], None] | None = None,
                 on_done: Callable[[int, RunSummary], None] | None = None) -> list[RunSummary]:
    """Run steps in order; a step whose output is up to date is reused (not run) unless `force`.

    `steps` is a list of Steps, or the path of a pipeline TOML file (which also sets the input, cache,
    concurrency and engine unless given here). `input` feeds the first step that names none.
    `max_cost_usd` is one budget for every paid step together. `on_stage(index, step, status)` is told
    what happens to each step ("reused" or "running"), `on_done(index, summary)` when it is done.
    Every step is checked before any runs; after a step whose input was damaged or whose every example
    failed, RunFailed names it and the later steps are not run.
    """
    if isinstance(steps, (str, os.PathLike)):
        from nextedit.pipeline.pipeline_file import load_steps

        loaded = load_steps(steps)
        steps = loaded.steps
        cache_path = cache_path or loaded.cache
        concurrency = concurrency or loaded.concurrency
        engine = engine or loaded.engine
        ray_address = ray_address or loaded.ray_address
    engine = engine or "local"
    if engine not in ("local", "ray"):
        raise RunError(f"unknown engine {engine!r} (local or ray)")
    planned: list[tuple[Step, Path | None]] = []
    current = Path(input) if input is not None else None
    for i, step in enumerate(steps):
        src = None if isinstance(step.stage, SourceStage) else (step.input or current)
        if not isinstance(step.stage, SourceStage) and src is None:
            raise RunError(f"step {i + 1} ({step.name}): no input (give the pipeline an input)")
        if src is not None and Path(step.output).resolve() == Path(src).resolve():
            raise RunError(f"step {i + 1} ({step.name}): output is the same file as its input")
        missing = step.stage.missing_requirements()
        if missing:
            raise RunError("; ".join(missing))
        planned.append((step, Path(src) if src is not None else None))
        current = Path(step.output)

    summaries: list[RunSummary] = []
    spent = 0.0
    for i, (step, src) in enumerate(planned):
        out = Path(step.output)
        stage = step.stage
        if max_cost_usd is not None:
            stage = _with_budget(stage, max_cost_usd - spent)
        if not force and (src is None or src.exists()):
            fresh, _why = up_to_date(stage, src, out)
            if fresh:
                summary = reused_summary(out)
                if on_stage:
                    on_stage(i, step, "reused")
                summaries.append(summary)
                if on_done:
                    on_done(i, summary)
                stop_if_failed(i, step, summary, last=i == len(planned) - 1)
                continue
        if on_stage:
            on_stage(i, step, "running")
        summary = run_stage(stage, src, out, concurrency=step.concurrency or concurrency, cache=cache,
                            cache_path=cache_path, progress=progress, restart=restart, ordered=step.ordered,
                            engine=engine, ray_address=ray_address)
        spent += summary.spent_usd
        summaries.append(summary)
        if on_done:
            on_done(i, summary)
        stop_if_failed(i, step, summary, last=i == len(planned) - 1)
    return summaries


def total_spent(summaries: Sequence[RunSummary]) -> float:
    """Dollars spent on new requests by a pipeline's steps."""
    return sum(s.spent_usd for s in summaries)
