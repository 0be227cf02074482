"""The backbone: steps (Stage, SourceStage), the executor (local and Ray engines: resume, cache, quarantine,
progress, concurrency), in-memory pipelines and pipeline files."""

from nextedit.pipeline.engine import Result, RunError, RunSummary, run_stage
from nextedit.pipeline.registry import (
    STAGES,
    ConfigError,
    StageNotFound,
    get_stage,
    load_config,
)
from nextedit.pipeline.runner import Step, run_pipeline
from nextedit.pipeline.stage import (
    Emitted,
    NoConfig,
    SourceStage,
    Stage,
    StageError,
    config_hash,
)

__all__ = [
    "STAGES",
    "ConfigError",
    "Emitted",
    "NoConfig",
    "Result",
    "RunError",
    "RunSummary",
    "SourceStage",
    "Stage",
    "StageError",
    "StageNotFound",
    "Step",
    "config_hash",
    "get_stage",
    "load_config",
    "run_pipeline",
    "run_stage",
]
