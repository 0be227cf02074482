"""Pipeline stages and the local runner: Stage protocol, registry, resumable cached engine, pipeline files."""

from nextedit.pipeline.engine import RunError, RunSummary, run_stage
from nextedit.pipeline.registry import (
    STAGES,
    ConfigError,
    StageNotFound,
    get_stage,
    load_config,
)
from nextedit.pipeline.stage import NoConfig, Stage, StageError, config_hash

__all__ = [
    "STAGES",
    "ConfigError",
    "NoConfig",
    "RunError",
    "RunSummary",
    "Stage",
    "StageError",
    "StageNotFound",
    "config_hash",
    "get_stage",
    "load_config",
    "run_stage",
]
