"""The stage registry: stage name -> "module:Class", imported lazily; `module:Class` also works for user stages."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from nextedit.pipeline.stage import Stage

__all__ = ["STAGES", "ConfigError", "StageNotFound", "get_stage", "load_config"]

# To add a stage, add one line here.
STAGES: dict[str, str] = {
    "validate": "nextedit.pipeline.validate:Validate",
    "context": "nextedit.context.stage:ContextStage",
    "diagnostics": "nextedit.context.diagnostics:DiagnosticsStage",
    "predict": "nextedit.evaluate.stages:PredictStage",
    "score": "nextedit.evaluate.stages:ScoreStage",
    "abstain": "nextedit.evaluate.stages:AbstainStage",
    "teacher": "nextedit.teacher.stages:TeacherStage",
    "checks": "nextedit.teacher.stages:ChecksStage",
    "judge": "nextedit.teacher.stages:JudgeStage",
    "repair": "nextedit.teacher.stages:RepairStage",
    "distill": "nextedit.teacher.stages:DistillStage",
    "settle": "nextedit.settle.stage:SettleStage",
    "mine": "nextedit.mine.miner:MineStage",
    "format": "nextedit.formats.rows:FormatStage",
}


class StageNotFound(LookupError):
    """No stage by that name (or `module:Class` path that does not import)."""


class ConfigError(ValueError):
    """A stage config that does not validate; `str()` is one line naming the file and the field."""


def _import(ref: str, shown: str) -> type[Stage]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StageNotFound(f"stage {shown!r}: cannot import module {module_name!r} ({exc})") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise StageNotFound(f"stage {shown!r}: module {module_name!r} has no {attr!r}")
    if not (isinstance(obj, type) and issubclass(obj, Stage)):
        raise StageNotFound(f"stage {shown!r}: {ref} is not a nextedit.pipeline.Stage subclass")
    return obj


def get_stage(name: str) -> type[Stage]:
    """The stage class for a registered name, or for a `package.module:Class` path."""
    if name in STAGES:
        return _import(STAGES[name], name)
    if ":" in name:
        return _import(name, name)
    known = ", ".join(sorted(STAGES))
    raise StageNotFound(f"unknown stage {name!r} (known: {known}; or give a module:Class path)")


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(config)"


def validate_config(stage: type[Stage], data: dict[str, Any], *, where: str) -> BaseModel:
    """Validate a config mapping against the stage's Config; unknown keys are errors (typos)."""
    fields = stage.Config.model_fields
    for key in data:
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise ConfigError(f"{where}: field {key}: unknown option for stage {stage.name} (options: {known})")
    try:
        return stage.Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(f"{where}: field {_field(tuple(first['loc']))}: {first['msg']}") from None


def load_config(stage: type[Stage], path: str | Path | None) -> BaseModel:
    """Read a stage config from a TOML file (top-level keys are the options); defaults when no file."""
    if path is None:
        return stage.Config()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return validate_config(stage, data, where=str(path))
