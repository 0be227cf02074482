"""The step protocol: a Stage (`Example -> Example | None`, or a training row) and a SourceStage (units -> records),
each with a name, a version and a pydantic config; the executor decides how and where they run."""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict

from nextedit.record import Example

__all__ = ["Emitted", "NoConfig", "SourceStage", "Stage", "StageError", "config_hash", "stage_ref"]


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
    `emits` is "record" (process returns an Example) or "row" (process returns any JSON object, e.g.
    a training row; no lineage, no cache).
    """

    name: ClassVar[str] = "stage"
    version: ClassVar[str] = "1"
    Config: ClassVar[type[BaseModel]] = NoConfig
    reads: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[Literal["cpu", "io"]] = "cpu"
    cacheable: ClassVar[bool] = True
    emits: ClassVar[Literal["record", "row"]] = "record"
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

    def collect_stats(self) -> dict[str, float]:
        """The counters bumped since the last call (the executor sums them into the run summary).
        A stage that spends money reports it as `spent_usd`."""
        out = dict(self.stats)
        self.stats.clear()
        return out

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


@dataclass
class Emitted:
    """What a SourceStage made of one unit: records for OUT, quarantine rows (`jsonl.failed_row`), and an
    optional row for the side log (e.g. mine's per-commit log)."""

    records: list[dict[str, Any] | bytes] = field(default_factory=list)  # bytes: already JSON
    failed: list[dict[str, Any]] = field(default_factory=list)
    log: dict[str, Any] | None = None


class SourceStage(Stage):
    """A step that reads its own input (git history, Zed files, traces) instead of a JSONL file.

    `units()` yields the work units in a stable order (commits, files); `emit(unit)` turns one unit
    into records. The executor runs `emit` inline or in worker processes, writes the results in unit
    order, and resumes an interrupted run after the last unit done. `fingerprint()` identifies the
    input (a changed input starts over). `side_output` names a side log `OUT.<name>.jsonl` of the
    `Emitted.log` rows.
    """

    cacheable: ClassVar[bool] = False
    side_output: ClassVar[str | None] = None

    def units(self) -> Iterable[Any]:
        """The units of work, in a stable order."""
        raise NotImplementedError

    def count(self) -> int | None:
        """How many units there are, when known cheaply (for the progress bar)."""
        return None

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the input (paths, revisions), for resume and manifests."""
        return {}

    def describe(self) -> str:
        """The input's name in quarantine rows."""
        return self.name

    def emit(self, unit: Any) -> Emitted:
        """Records and failures of one unit; an exception quarantines the unit with its message."""
        raise NotImplementedError

    def process(self, example: Any) -> Any:  # a source stage does not transform records
        raise TypeError(f"{self.name} is a source step: it reads its own input")
