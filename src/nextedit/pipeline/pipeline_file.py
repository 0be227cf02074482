"""Pipeline files: several stages in order from one TOML file, each output kept and reused when up to date."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextedit.pipeline.engine import (
    RunFailed,
    RunSummary,
    _read_json,
    file_sha256,
    run_stage,
    sidecar_paths,
)
from nextedit.pipeline.registry import ConfigError, get_stage, validate_config
from nextedit.pipeline.stage import Stage, config_hash

__all__ = ["PipelineFile", "StageSpec", "load_pipeline", "run_pipeline", "up_to_date"]


class StageSpec(BaseModel):
    """One `[[stage]]` table: which stage, where its output goes, its options."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    output: str = Field(min_length=1)
    input: str | None = None  # default: the previous stage's output (the pipeline input for the first)
    config: dict[str, Any] = Field(default_factory=dict)
    concurrency: int | None = Field(None, ge=1)


class PipelineFile(BaseModel):
    """A whole pipeline file. Relative paths are relative to the file's folder."""

    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1)
    cache: str | None = None
    concurrency: int | None = Field(None, ge=1)
    stage: list[StageSpec] = Field(min_length=1)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_pipeline(path: str | os.PathLike[str]) -> PipelineFile:
    """Read and validate a pipeline TOML file; errors are one line naming the file and field."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such pipeline file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        return PipelineFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(f"{path}: field {_loc(tuple(first['loc']))}: {first['msg']}") from None


def up_to_date(stage: Stage, input_path: Path, output_path: Path) -> tuple[bool, str]:
    """Is `output_path` a complete result of this stage (same version and config) over this input
    content? Returns (answer, reason)."""
    paths = sidecar_paths(output_path)
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
    st = input_path.stat()
    same_file = (recorded.get("path"), recorded.get("size"), recorded.get("mtime_ns")) == (
        str(input_path.resolve()), st.st_size, st.st_mtime_ns)
    if not same_file and recorded.get("sha256") != file_sha256(input_path):
        return False, "input changed"
    return True, "up to date"


def run_pipeline(path: str | os.PathLike[str], *, force: bool = False, cache: bool = True,
                 cache_path: str | os.PathLike[str] | None = None, progress: bool | None = None,
                 on_stage: Callable[[int, StageSpec, str], None] | None = None,
                 on_done: Callable[[int, RunSummary], None] | None = None) -> list[RunSummary]:
    """Run every stage of a pipeline file in order; a stage whose output is up to date is reused
    (not run) unless `force`. `on_stage(index, spec, status)` is told what happens to each stage
    ("reused" or "running"), `on_done(index, summary)` when it is done."""
    pipeline_path = Path(path)
    spec = load_pipeline(pipeline_path)
    base = pipeline_path.parent

    def resolve(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else base / q

    # Validate every stage and config before running anything.
    planned: list[tuple[StageSpec, Stage, Path, Path]] = []
    current = resolve(spec.input)
    for i, s in enumerate(spec.stage):
        where = f"{pipeline_path}: stage[{i}] ({s.name})"
        try:
            cls = get_stage(s.name)
        except LookupError as exc:
            raise ConfigError(f"{pipeline_path}: field stage[{i}].name: {exc}") from None
        config = validate_config(cls, s.config, where=f"{where} config")
        src = resolve(s.input) if s.input else current
        out = resolve(s.output)
        if out.resolve() == src.resolve():
            raise ConfigError(f"{pipeline_path}: field stage[{i}].output: same file as the stage's input")
        planned.append((s, cls(config), src, out))
        current = out

    cache_file = cache_path or (resolve(spec.cache) if spec.cache else None)
    summaries: list[RunSummary] = []
    for i, (s, stage, src, out) in enumerate(planned):
        if not force and src.exists():
            fresh, _why = up_to_date(stage, src, out)
            if fresh:
                manifest = _read_json(sidecar_paths(out)["manifest"]) or {}
                recorded = manifest.get("summary", {})
                summary = RunSummary(**{**recorded, "reused": True, "seconds": 0.0})
                if on_stage:
                    on_stage(i, s, "reused")
                summaries.append(summary)
                if on_done:
                    on_done(i, summary)
                continue
        if on_stage:
            on_stage(i, s, "running")
        summaries.append(run_stage(stage, src, out, concurrency=s.concurrency or spec.concurrency,
                                   cache=cache, cache_path=cache_file, progress=progress))
        if on_done:
            on_done(i, summaries[-1])
        done = summaries[-1]
        if done.input_error or done.all_failed:
            raise RunFailed(f"stage {i + 1} ({s.name}) " + (
                "stopped at a damaged input" if done.input_error else
                f"failed for every example ({done.failed}); see {done.failed_output}")
                + "; the later stages were not run")
    return summaries
