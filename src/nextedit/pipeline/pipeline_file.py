"""Pipeline files: a thin TOML loader into in-memory Steps (`nextedit.pipeline.runner`), which run them."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nextedit.pipeline.engine import RunSummary
from nextedit.pipeline.registry import ConfigError, get_stage, validate_config
from nextedit.pipeline.runner import Step, up_to_date
from nextedit.pipeline.runner import run_pipeline as _run_steps

__all__ = ["LoadedPipeline", "PipelineFile", "StageSpec", "load_pipeline", "load_steps", "run_pipeline",
           "up_to_date"]


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
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
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


@dataclass
class LoadedPipeline:
    """A pipeline file turned into Steps, with its run options."""

    steps: list[Step]
    cache: Path | None
    concurrency: int | None
    engine: str
    ray_address: str | None


def load_steps(path: str | os.PathLike[str]) -> LoadedPipeline:
    """Read a pipeline file and build its Steps: every stage and config is validated (one-line errors naming
    the file and field) before anything runs."""
    pipeline_path = Path(path)
    spec = load_pipeline(pipeline_path)
    base = pipeline_path.parent

    def resolve(p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else base / q

    steps: list[Step] = []
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
        steps.append(Step(cls(config), out, input=src, concurrency=s.concurrency, label=s.name,
                          output_label=s.output))
        current = out
    return LoadedPipeline(steps, resolve(spec.cache) if spec.cache else None, spec.concurrency, spec.engine,
                          spec.ray_address)


def run_pipeline(path: str | os.PathLike[str] | Sequence[Step], **options: Any) -> list[RunSummary]:
    """Run a pipeline file (or a list of Steps); see `nextedit.pipeline.runner.run_pipeline`."""
    return _run_steps(path, **options)
