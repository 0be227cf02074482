"""The Stage protocol: a small class `Example -> Example | None` with a name, a version and a pydantic config."""

from __future__ import annotations

import importlib.util
from collections import Counter
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict

from nextedit.record import Example

__all__ = ["NoConfig", "Stage", "StageError", "config_hash", "stage_ref"]


class StageError(Exception):
    """Raised by `Stage.process` for an example the stage cannot handle; the runner quarantines the
    example in `<out>.failed.jsonl` with `str(error)` as the reason and goes on."""


class NoConfig(BaseModel):
    """The config of a stage that takes no options."""

    model_config = ConfigDict(extra="forbid")


class Stage:
    """Base class of pipeline stages. A stage knows nothing about files, threads or processes.

    Subclasses set `name`, `version` (bump it whenever outputs change: it keys the cache),
    `Config` (a pydantic model whose defaults make the stage usable), `reads` (the top-level record
    fields whose content the output depends on; empty means the whole record), `kind` ("cpu": run in
    a process pool, "io": run concurrently under asyncio) and `process()` (sync or `async def`).
    `self.stats` is a Counter a stage may bump; the runner sums it and prints it at the end.
    """

    name: ClassVar[str] = "stage"
    version: ClassVar[str] = "1"
    Config: ClassVar[type[BaseModel]] = NoConfig
    reads: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[Literal["cpu", "io"]] = "cpu"
    cacheable: ClassVar[bool] = True
    # Optional dependencies: (import name, what to pip install), checked before a run starts.
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, config: BaseModel | dict[str, Any] | None = None):
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = self.Config.model_validate(config)
        self.config = config
        self.stats: Counter[str] = Counter()

    def process(self, example: Example) -> Example | None:
        """Return the transformed example, or None to drop it; raise StageError to quarantine it."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (HTTP clients, models); called once when the run ends."""

    def duplicate_ids(self) -> Literal["fail", "drop", "keep"] | None:
        """What the runner does with an output whose id an earlier output of the run already had:
        quarantine it ("fail"), drop it, or keep it and count it ("keep"); None: no check."""
        return None

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """One line per optional dependency that is not installed, saying what to install."""
        return [f"stage {cls.name} needs the Python package {mod!r}: pip install {pip!r}"
                for mod, pip in cls.requires if importlib.util.find_spec(mod) is None]


def config_hash(config: BaseModel) -> str:
    """`sha256:<16 hex>` of the config's canonical JSON (sorted keys): recorded in lineage and cache keys."""
    import hashlib

    blob = orjson.dumps(config.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:16]


def stage_ref(cls: type[Stage]) -> str:
    """The importable `module:Class` path of a stage class (used to rebuild it in worker processes)."""
    return f"{cls.__module__}:{cls.__qualname__}"
