"""The executor: runs one step (a Stage over a JSONL file, or a SourceStage over its own units), streaming,
resumable after kill -9, cached, concurrent. It is the only place that creates worker processes.

Crash safety: results are appended to `OUT.partial` (failures to `<failed>.partial`); every couple of
seconds both are flushed and fsynced and `OUT.checkpoint.json` records (last input line done, bytes of
each partial). A rerun truncates the partials to those sizes, skips the input lines already done and
carries on; results computed after the last checkpoint come back from the cache. The finished file
replaces OUT by an atomic rename. Output order is the input order (bounded in-flight window).
"""

from __future__ import annotations

import asyncio
import fcntl
import gzip
import hashlib
import inspect
import multiprocessing
import multiprocessing.util
import os
import re
import shutil
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel

from nextedit.jsonl import (
    DamagedInput,
    failed_path,
    failed_row,
    iter_lines,
    remove_stale_temps,
)
from nextedit.pipeline.cache import (
    DROPPED,
    OUTPUT,
    ResultCache,
    cache_key,
    default_cache_path,
)
from nextedit.pipeline.progress import ProgressReporter, make_progress
from nextedit.pipeline.stage import (
    SourceStage,
    Stage,
    StageError,
    config_hash,
    stage_ref,
)
from nextedit.record import Example, RecordError, parse_example

__all__ = ["CacheRow", "Chunk", "Result", "RunError", "RunFailed", "RunSummary", "run_stage", "sidecar_paths",
           "top_failure_reasons"]

CHECKPOINT_FORMAT = 2


class CacheRow(NamedTuple):
    """One row to store in the result cache."""

    key: str
    stage: str
    version: str
    kind: int  # cache.OUTPUT or cache.DROPPED
    value: bytes | None


@dataclass(slots=True)
class Result:
    """What the executor got for one input unit (a JSONL line, or a source unit such as a commit)."""

    line: int  # the unit's number in input order (1-based)
    records: bytes = b""  # JSONL lines for OUT
    written: int = 0
    failures: bytes = b""  # quarantine rows
    failed: int = 0
    log: bytes = b""  # rows for the side log
    dropped: bool = False
    cached: bool = False
    cache_row: CacheRow | None = None
    reason: str | None = None  # the first failure's reason (for --fail-fast)

    @property
    def ok(self) -> bool:
        """Handled without failing as a whole (dropped and partly failed units count as handled)."""
        return self.failed == 0 or self.written > 0


@dataclass(slots=True)
class Chunk:
    """The results of a chunk of units, the stage's counters since the last chunk, and seconds taken."""

    results: list[Result]
    stats: dict[str, float]
    seconds: float


class RunError(RuntimeError):
    """The run cannot start or was stopped (bad paths, output locked, --fail-fast); one line."""


class RunFailed(RunError):
    """A pipeline stopped after a step whose input was damaged or whose every example failed."""


@dataclass
class RunSummary:
    """What a run did. Counts are cumulative over resumed runs; `resumed` is how many input records
    were already done by an interrupted earlier run."""

    stage: str
    output: str
    failed_output: str | None = None
    processed: int = 0  # handled without failure (written + dropped), cache hits included
    from_cache: int = 0
    failed: int = 0
    dropped: int = 0
    written: int = 0
    resumed: int = 0
    seconds: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)
    reused: bool = False  # pipeline: the output was complete and up to date, nothing ran
    spent_usd: float = 0.0  # dollars the stage spent on new paid requests (cumulative over resumes)
    engine: str = "local"
    input_error: str | None = None  # the input was damaged: everything before the damage was handled
    top_failures: list[tuple[str, int]] = field(default_factory=list)  # most common reasons, with counts

    @property
    def all_failed(self) -> bool:
        """Every example of the input failed (and there was at least one); examples only queued for a
        provider batch job (stats `batch_queued`) are waiting, not failed."""
        return self.failed > self.stats.get("batch_queued", 0) and self.processed == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for manifests and JSON output)."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The human summary printed at the end of a run."""
        done = self.processed + self.failed - self.resumed
        rate = done / self.seconds if self.seconds > 0 else 0.0
        out = [f"{self.stage}: processed {self.processed} (from cache {self.from_cache}), "
               f"failed {self.failed}, dropped {self.dropped}, written {self.written}"
               + (f", resumed after {self.resumed}" if self.resumed else "")
               + (" [reused, up to date]" if self.reused else f" in {self.seconds:.1f}s ({rate:,.0f} ex/s)")]
        if self.stats:
            out.append("  stats: " + ", ".join(f"{k}={v}" for k, v in sorted(self.stats.items())))
        if self.spent_usd:
            out.append(f"  spent: ${self.spent_usd:.4f} on new requests")
        out.append(f"  output: {self.output}")
        if self.failed_output:
            out.append(f"  failed: {self.failed_output}")
        if self.top_failures:
            out.append("  top failure reasons:")
            out += [f"  {count:>7} x {reason}" for reason, count in self.top_failures]
        if self.written == 0 and not self.reused:
            out.append(f"warning: {self.output} is empty: no example was written")
        if self.input_error:
            out.append(f"error: {self.input_error}")
        return out


# ----------------------------------------------------------------------------------------------------
# Per-example work (runs in the main process or in worker processes)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _RecordHandler:
    """Turns input lines into Results: parse, validate, look up the cache, call the stage."""

    def __init__(self, stage: Stage, input_name: str, cache: Any):
        self.stage = stage
        self.input_name = input_name
        self.rows = stage.emits == "row"
        self.cache = cache if (stage.cacheable and not self.rows) else None
        self.cfg_hash = config_hash(stage.config)
        self.reads = tuple(stage.reads)
        self.is_async = inspect.iscoroutinefunction(stage.process)

    # -- helpers
    def _fail(self, line: int, raw: bytes, reason: str) -> Result:
        row = failed_row(file=self.input_name, line=line, reason=reason, stage=self.stage.name, raw=raw)
        return Result(line, failures=orjson.dumps(row) + b"\n", failed=1, reason=reason)

    def prepare(self, line: int, raw: bytes) -> Result | tuple[Example, dict[str, Any], str | None]:
        """A failed Result, or (example, the input as a dict, cache key)."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self._fail(line, raw, f"{self.input_name}:{line}: malformed JSON ({exc})")
        try:
            example = parse_example(data, file=self.input_name, line=line)
        except RecordError as exc:
            return self._fail(line, raw, str(exc))
        # The input as read keys the cache and is what a cached delta applies to. (Validation
        # does not change it: the record model copies what it keeps.)
        key = None
        if self.cache is not None:
            fields = ({f: data.get(f) for f in self.reads} if self.reads
                      else {k: v for k, v in data.items() if k != "lineage"})
            key = cache_key(self.stage.name, self.stage.version, self.cfg_hash, fields)
        return (example, data, key)

    def _lineage(self, d: dict[str, Any], at: str, cached: bool) -> None:
        entry: dict[str, Any] = {"stage": self.stage.name, "version": self.stage.version,
                                 "config": self.cfg_hash, "at": at}
        if cached:
            entry["cached"] = True
        d.setdefault("lineage", []).append(entry)

    def from_cache(self, line: int, d: dict[str, Any], hit: tuple[int, bytes | None], at: str) -> Result:
        """Rebuild the stage's result from a cached delta."""
        kind, value = hit
        if kind == DROPPED:
            return Result(line, dropped=True, cached=True)
        delta = orjson.loads(value or b"{}")
        d.update(delta.get("set", {}))
        for k in delta.get("del", ()):
            d.pop(k, None)
        self._lineage(d, at, cached=True)
        return Result(line, records=orjson.dumps(d) + b"\n", written=1, cached=True)

    def finish(self, line: int, raw: bytes, d: dict[str, Any], key: str | None, out: Any, at: str) -> Result:
        """Turn the stage's return value into a Result (with the cache row to store)."""
        name, version = self.stage.name, self.stage.version
        if out is None:
            return Result(line, dropped=True,
                          cache_row=CacheRow(key, name, version, DROPPED, None) if key else None)
        if self.rows:
            if isinstance(out, BaseModel):
                out = out.model_dump(mode="json")
            if not isinstance(out, dict):
                return self._fail(line, raw, f"stage {name} returned {type(out).__name__}, expected a dict")
            return Result(line, records=orjson.dumps(out) + b"\n", written=1)
        if isinstance(out, dict):
            try:
                out = parse_example(out, file=self.input_name, line=line)
            except RecordError as exc:
                return self._fail(line, raw, f"stage {name} returned an invalid record: {exc}")
        if not isinstance(out, Example):
            return self._fail(line, raw, f"stage {name} returned {type(out).__name__}, "
                                         "expected an Example or None")
        od = out.to_dict()
        row = None
        if key:
            # Diff against a fresh parse: the stage may have mutated objects shared with `d`.
            d = orjson.loads(raw)
            changed = {k: v for k, v in od.items() if k != "lineage" and (k not in d or d[k] != v)}
            removed = [k for k in d if k not in od and k != "lineage"]
            row = CacheRow(key, name, version, OUTPUT, orjson.dumps({"set": changed, "del": removed}))
        self._lineage(od, at, cached=False)
        return Result(line, records=orjson.dumps(od) + b"\n", written=1, cache_row=row)

    def _error_reason(self, exc: Exception) -> str:
        if isinstance(exc, StageError):
            return str(exc) or "StageError"
        return f"{type(exc).__name__}: {exc}"

    # -- sync chunks (inline, in a worker process or in a Ray task)
    def run_chunk(self, items: list[tuple[int, bytes]]) -> Chunk:
        """Results for a chunk of lines."""
        t0 = time.perf_counter()
        at = _now()
        prepared = [(line, raw, self.prepare(line, raw)) for line, raw in items]
        keys = [p[2] for _, _, p in prepared if isinstance(p, tuple) and p[2]]
        hits = self.cache.get_many(keys) if (self.cache is not None and keys) else {}
        results = []
        for line, raw, p in prepared:
            if isinstance(p, Result):
                results.append(p)
                continue
            example, d, key = p
            hit = hits.get(key) if key else None
            if hit is not None:
                results.append(self.from_cache(line, d, hit, at))
                continue
            try:
                out = self.stage.process(example)
            except Exception as exc:  # noqa: BLE001 - any stage error quarantines one example
                results.append(self._fail(line, raw, self._error_reason(exc)))
                continue
            results.append(self.finish(line, raw, d, key, out, at))
        return Chunk(results, self.stage.collect_stats(), time.perf_counter() - t0)

    # -- one example under asyncio (io stages)
    async def run_one(self, line: int, raw: bytes, sem: asyncio.Semaphore,
                      executor: ThreadPoolExecutor | None) -> Result:
        """The result for one line; the stage call runs under the semaphore."""
        p = self.prepare(line, raw)
        if isinstance(p, Result):
            return p
        example, d, key = p
        at = _now()
        hit = self.cache.get(key) if (self.cache is not None and key) else None
        if hit is not None:
            return self.from_cache(line, d, hit, at)
        async with sem:
            try:
                if self.is_async:
                    out = await self.stage.process(example)
                else:
                    out = await asyncio.get_running_loop().run_in_executor(executor, self.stage.process,
                                                                           example)
            except Exception as exc:  # noqa: BLE001 - any stage error quarantines one example
                return self._fail(line, raw, self._error_reason(exc))
        return self.finish(line, raw, d, key, out, _now())


class _UnitHandler:
    """Turns the units of a SourceStage (commits, files) into Results."""

    def __init__(self, stage: SourceStage):
        self.stage = stage
        self.input_name = stage.describe()

    def one(self, line: int, unit: Any) -> Result:
        """The Result of one unit; an exception quarantines the unit."""
        try:
            emitted = self.stage.emit(unit)
        except Exception as exc:  # noqa: BLE001 - one bad unit must not stop a long run
            reason = str(exc) if isinstance(exc, StageError) else f"{type(exc).__name__}: {exc}"
            row = failed_row(file=self.input_name, line=line, reason=reason, stage=self.stage.name,
                             raw=unit if isinstance(unit, (bytes, dict)) else None)
            return Result(line, failures=orjson.dumps(row) + b"\n", failed=1, reason=reason)
        records = b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in emitted.records)
        failures = b"".join(orjson.dumps(f) + b"\n" for f in emitted.failed)
        return Result(line, records=records, written=len(emitted.records), failures=failures,
                      failed=len(emitted.failed),
                      log=orjson.dumps(emitted.log) + b"\n" if emitted.log is not None else b"",
                      reason=emitted.failed[0].get("reason") if emitted.failed else None)

    def run_chunk(self, items: list[tuple[int, Any]]) -> Chunk:
        """Results for a chunk of units."""
        t0 = time.perf_counter()
        results = [self.one(line, unit) for line, unit in items]
        return Chunk(results, self.stage.collect_stats(), time.perf_counter() - t0)


def make_handler(stage: Stage, input_name: str, cache: Any) -> _RecordHandler | _UnitHandler:
    """The handler that runs `stage` on chunks of units (used by every engine)."""
    if isinstance(stage, SourceStage):
        return _UnitHandler(stage)
    return _RecordHandler(stage, input_name, cache)


_WORKER: _RecordHandler | _UnitHandler | None = None


def _exit_with_parent(parent: int) -> None:
    """Worker processes end when the runner dies (even by kill -9) instead of lingering."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _init_worker(ref: str, config: dict[str, Any], input_name: str, cache_path: str | None,
                 parent: int) -> None:
    global _WORKER
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    from nextedit.pipeline.registry import get_stage

    cls = get_stage(ref)
    cache = ResultCache(cache_path, readonly=True) if cache_path else None
    stage = cls(cls.Config.model_validate(config))
    _WORKER = make_handler(stage, input_name, cache)
    multiprocessing.util.Finalize(None, stage.close, exitpriority=10)  # Stage.close() at worker exit


def _work_chunk(items: list[tuple[int, Any]]) -> Chunk:
    assert _WORKER is not None
    return _WORKER.run_chunk(items)


# ----------------------------------------------------------------------------------------------------
# Output side: partial files, checkpoints, finish


def sidecar_paths(output: str | os.PathLike[str], side: str | None = None) -> dict[str, Path]:
    """The files a run keeps beside OUT: partial output, partial failures, checkpoint, manifest (and,
    for a step with a side log, `OUT.<side>.jsonl` and its partial)."""
    out = Path(output)
    failed = failed_path(out)
    paths = {
        "output": out,
        "failed": failed,
        "partial": out.with_name(out.name + ".partial"),
        "failed_partial": failed.with_name(failed.name + ".partial"),
        "checkpoint": out.with_name(out.name + ".checkpoint.json"),
        "manifest": out.with_name(out.name + ".manifest.json"),
    }
    if side:
        log = failed.with_name(failed.name.removesuffix(".failed.jsonl") + f".{side}.jsonl")
        paths["log"] = log
        paths["log_partial"] = log.with_name(log.name + ".partial")
    return paths


def _record_id(raw: bytes) -> str | None:
    try:
        rid = orjson.loads(raw).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return rid if isinstance(rid, str) else None


class DuplicateIds:
    """A stage's duplicate-id policy (`Stage.duplicate_ids()`) over one run's output, in output order:
    a record whose id an earlier record had is quarantined ("fail"), dropped ("drop") or kept ("keep");
    each is counted in the stat `duplicate_id`."""

    def __init__(self, policy: str, input_name: str, stage_name: str):
        self.policy, self.input_name, self.stage_name = policy, input_name, stage_name
        self.first: dict[str, int] = {}  # id -> the input line that wrote it first (0: before a resume)
        self.found = 0

    def load(self, data: bytes) -> None:
        """Ids already written (by an interrupted run being resumed)."""
        for raw in data.splitlines():
            rid = _record_id(raw)
            if rid is not None:
                self.first.setdefault(rid, 0)

    def check(self, result: Result) -> Result:
        """`result`, or a copy whose records with an id written before are failed, dropped or counted."""
        if not result.records:
            return result
        keep: list[bytes] = []
        failures: list[bytes] = []
        found = 0
        for raw in result.records.splitlines(keepends=True):
            rid = _record_id(raw)
            if rid is None or rid not in self.first:
                if rid is not None:
                    self.first[rid] = result.line
                keep.append(raw)
                continue
            found += 1
            if self.policy == "keep":
                keep.append(raw)
            elif self.policy == "fail":
                first = self.first[rid]
                where = f" (first at line {first})" if first else " (written before the run was resumed)"
                reason = f"{self.input_name}:{result.line}: field id: duplicate id {rid!r}{where}"
                row = failed_row(file=self.input_name, line=result.line, stage=self.stage_name,
                                 raw=raw.rstrip(b"\n"), reason=reason)
                failures.append(orjson.dumps(row) + b"\n")
        if not found:
            return result
        self.found += found
        if self.policy == "keep":
            return result
        written = len(keep)
        return replace(result, records=b"".join(keep), written=written,
                       failures=result.failures + b"".join(failures), failed=result.failed + len(failures),
                       dropped=result.dropped or (written == 0 and not failures and not result.failed),
                       reason=result.reason or (orjson.loads(failures[0])["reason"] if failures else None))


def _fingerprint(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


class _Sink:
    """Writes results in input order to the partial files and keeps the checkpoint current."""

    COUNTS = ("processed", "from_cache", "failed", "dropped", "written", "units")

    def __init__(self, paths: dict[str, Path], identity: dict[str, Any], cache: Any,
                 *, checkpoint_every: float, commit_each: bool, fail_fast: bool):
        self.paths = paths
        self.identity = identity
        self.cache = cache
        self.checkpoint_every = checkpoint_every
        self.commit_each = commit_each
        self.fail_fast = fail_fast
        self.counts: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.line = 0  # every input unit up to this one is done
        # Unordered runs (io stages only): lines still in flight in input order, and lines done
        # beyond `line`; `skip` holds the latter as recorded by an interrupted run.
        self.unordered = False
        self._order: deque[int] = deque()
        self._done: set[int] = set()
        self.skip: set[int] = set()
        self.resumed = 0
        self._last_ck = time.monotonic()
        self._dirty = False
        self.ready = False  # set once resume() has put the partial files in a known state
        self._rows: list[CacheRow] | None = None  # cache rows of the chunk being emitted
        self.duplicates: DuplicateIds | None = None  # the stage's duplicate-id check, if it has one
        self.input_error: str | None = None  # the input was damaged (recorded in the last checkpoint)
        # Lock the partial output (released by the kernel even on kill -9) before touching anything.
        paths["partial"].parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(paths["partial"], os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(f"{paths['output']}: another run is writing this output right now") from None
        self._out = os.fdopen(fd, "r+b", buffering=1 << 20)
        self._failed = open(paths["failed_partial"], "a+b", buffering=1 << 16)  # noqa: SIM115
        self._log = open(paths["log_partial"], "a+b", buffering=1 << 16) if "log" in paths else None  # noqa: SIM115

    def _files(self) -> list[tuple[str, Any]]:
        files = [("out_bytes", self._out), ("failed_bytes", self._failed)]
        if self._log is not None:
            files.append(("log_bytes", self._log))
        return files

    def resume(self, restart: bool) -> dict[str, Any] | None:
        """Pick up a compatible checkpoint (truncating torn tails) or start from scratch."""
        self.ready = True
        ck = None if restart else _read_json(self.paths["checkpoint"])
        if ck is not None and all(ck.get(k) == v for k, v in self.identity.items()) and not ck.get("complete"):
            sizes = {name: int(ck.get(name, 0)) for name, _ in self._files()}
            if all(os.fstat(fh.fileno()).st_size >= sizes[name] for name, fh in self._files()):
                self._truncate(sizes)
                self._load_ids(sizes["out_bytes"])
                self.line = int(ck["line"])
                self.skip = {int(x) for x in ck.get("done_after", ())}
                counts = ck["counts"]
                self.counts.update({k: int(counts.get(k, 0)) for k in self.COUNTS})
                if "units" not in counts:  # a checkpoint of format 1
                    self.counts["units"] = self.counts["processed"] + self.counts["failed"]
                self.stats.update(ck.get("stats", {}))
                self.resumed = self.counts["units"]
                return ck
        self._truncate({})
        self.paths["checkpoint"].unlink(missing_ok=True)
        return None

    def _load_ids(self, size: int) -> None:
        """Resume: the ids already in the partial output (for the duplicate-id check)."""
        if self.duplicates is None or not size:
            return
        self._out.flush()
        self._out.seek(0)
        self.duplicates.load(self._out.read(size))
        self._out.seek(size)

    def _truncate(self, sizes: dict[str, int]) -> None:
        for name, fh in self._files():
            size = sizes.get(name, 0)
            fh.flush()
            fh.truncate(size)
            fh.seek(size)

    def emit(self, result: Result) -> None:
        """Write one result (results arrive in input order)."""
        if self.duplicates is not None:
            found = self.duplicates.found
            result = self.duplicates.check(result)
            if self.duplicates.found != found:
                self.stats["duplicate_id"] += self.duplicates.found - found
        c = self.counts
        if result.records:
            self._out.write(result.records)
        if result.failures:
            self._failed.write(result.failures)
        if result.log and self._log is not None:
            self._log.write(result.log)
        c["units"] += 1
        c["processed"] += result.ok
        c["written"] += result.written
        c["failed"] += result.failed
        c["dropped"] += result.dropped
        c["from_cache"] += result.cached
        if result.failed and self.fail_fast:
            self._mark(result.line)
            self.checkpoint()
            raise RunError(f"stopped at the first failure (--fail-fast): {result.reason}")
        row = result.cache_row
        if row is not None and self.cache is not None:
            if self._rows is None:
                self.cache.put_many([row], commit=self.commit_each)
            else:
                self._rows.append(row)
        self._mark(result.line)
        self._dirty = True

    def quarantine(self, file: str, line: int, reason: str, stage: str) -> None:
        """Record a failure that belongs to no input unit (a damaged input)."""
        self._failed.write(orjson.dumps(failed_row(file=file, line=line, reason=reason, stage=stage)) + b"\n")
        self.counts["failed"] += 1
        self._dirty = True

    def submitted(self, line: int) -> None:
        """An unordered run started work on this line."""
        self._order.append(line)

    def _mark(self, line: int) -> None:
        if not self.unordered:
            self.line = line
            return
        self._done.add(line)
        while self._order and self._order[0] in self._done:
            self.line = self._order.popleft()
            self._done.discard(self.line)

    def emit_many(self, chunk: Chunk) -> None:
        """Write a chunk of results, then commit the cache rows once."""
        self._rows = []
        try:
            for r in chunk.results:
                self.emit(r)
        finally:
            rows, self._rows = self._rows, None
            if self.cache is not None and rows:
                self.cache.put_many(rows, commit=True)
        self.stats.update(chunk.stats)

    def maybe_checkpoint(self) -> None:
        """Checkpoint when `checkpoint_every` seconds have passed since the last one."""
        if self._dirty and time.monotonic() - self._last_ck >= self.checkpoint_every:
            self.checkpoint()

    def checkpoint(self, *, complete: bool = False) -> None:
        """Make everything written so far durable, then record how far we got (atomically)."""
        if self.cache is not None:
            self.cache.put_many([], commit=True)
        for _, fh in self._files():
            fh.flush()
            os.fsync(fh.fileno())
        _write_json_atomic(self.paths["checkpoint"], {
            **self.identity, "format": CHECKPOINT_FORMAT, "line": self.line,
            "done_after": sorted(self._done | {x for x in self.skip if x > self.line}),
            **{name: fh.tell() for name, fh in self._files()},
            "counts": dict(self.counts), "stats": dict(self.stats), "complete": complete,
            **({"input_error": self.input_error} if self.input_error else {}),
        })
        self._last_ck = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        """Close the partial files (releases the lock)."""
        self.ready = False
        for _, fh in reversed(self._files()):
            fh.close()


def _finalize(paths: dict[str, Path], ck: dict[str, Any]) -> None:
    """Idempotent end of a run: move partial files onto their final names, then drop the checkpoint."""
    if int(ck["failed_bytes"]) == 0:
        paths["failed_partial"].unlink(missing_ok=True)
        paths["failed"].unlink(missing_ok=True)  # a stale quarantine file from an older run
    elif paths["failed_partial"].exists():
        os.replace(paths["failed_partial"], paths["failed"])
    if "log" in paths and paths["log_partial"].exists():
        os.replace(paths["log_partial"], paths["log"])
    out, partial = paths["output"], paths["partial"]
    remove_stale_temps(out)  # left by a run killed (kill -9) while compressing OUT
    if partial.exists():
        if out.name.endswith(".gz"):
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            with open(partial, "rb") as src, open(tmp, "wb") as raw:
                with gzip.GzipFile(filename=out.name[:-3], mode="wb", fileobj=raw, compresslevel=6) as gz:
                    shutil.copyfileobj(src, gz, 1 << 20)
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(tmp, out)
            partial.unlink()
        else:
            os.replace(partial, out)


def _count_lines(path: Path) -> int | None:
    if path.name.endswith(".gz"):
        return None
    n = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


# ----------------------------------------------------------------------------------------------------
# The run


class _Source:
    """The input lines still to do; a damaged input ends the iteration and is kept in `damage`."""

    def __init__(self, path: Path, after_line: int, skip: set[int]):
        self.path, self.after_line, self.skip = path, after_line, skip
        self.damage: DamagedInput | None = None

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        try:
            for line, raw in iter_lines(self.path):
                if line > self.after_line and line not in self.skip:
                    yield line, raw
        except DamagedInput as exc:
            self.damage = exc


def damaged_input_message(damage: DamagedInput, written: int, output: Path) -> str:
    """The summary's `input_error` for a run that stopped at a damaged input."""
    return f"{damage}; the {written} records before the damage were written to {output}"


def _reason_kind(reason: str) -> str:
    """A failure reason without its `file:line:` prefix and example id, so that equal causes group."""
    reason = re.sub(r"^\S+?:\d+: ", "", reason)
    reason = re.sub(r"\bexample \S+?: ", "", reason)
    return reason if len(reason) <= 200 else reason[:197] + "..."


def top_failure_reasons(failed_file: str | os.PathLike[str], limit: int = 3) -> list[tuple[str, int]]:
    """The most common reasons in a quarantine file (grouped without file, line and id), with counts."""
    counts: Counter[str] = Counter()
    try:
        for _, raw in iter_lines(failed_file):
            try:
                reason = orjson.loads(raw).get("reason")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(reason, str):
                counts[_reason_kind(reason)] += 1
    except (OSError, DamagedInput):
        return []
    return counts.most_common(limit)


def _units(stage: SourceStage, after: int, skip: set[int]) -> Iterator[tuple[int, Any]]:
    for i, unit in enumerate(stage.units(), start=1):
        if i > after and i not in skip:
            yield i, unit


def _rebuildable(cls: type[Stage]) -> bool:
    """Can a worker process import this stage class by its module:Class path?"""
    if cls.__module__ in ("__main__", "__mp_main__") or "<locals>" in cls.__qualname__:
        return False
    try:
        from nextedit.pipeline.registry import get_stage

        return get_stage(stage_ref(cls)) is cls
    except Exception:  # noqa: BLE001
        return False


@dataclass
class _Plan:
    """What a run needs to know before it starts (shared by the engines)."""

    stage: Stage
    src: Path | None  # None for a source stage
    paths: dict[str, Path]
    identity: dict[str, Any]
    input_name: str
    total: int | None


def plan_run(stage: Stage, input_path: str | os.PathLike[str] | None,
             output_path: str | os.PathLike[str]) -> _Plan:
    """Check the step can run (input exists, requirements installed) and work out its files and identity."""
    missing = stage.missing_requirements()
    out = Path(output_path)
    if isinstance(stage, SourceStage):
        if missing:
            raise RunError("; ".join(missing))
        paths = sidecar_paths(out, stage.side_output)
        fp = stage.fingerprint()
        return _Plan(stage, None, paths, {"stage": stage.name, "version": stage.version,
                                          "config": config_hash(stage.config), "input": fp},
                     stage.describe(), stage.count())
    if input_path is None:
        raise RunError(f"stage {stage.name} reads a JSONL input: give one")
    src = Path(input_path)
    if not src.is_file():
        raise RunError(f"{src}: no such input file")
    if out.resolve() == src.resolve():
        raise RunError(f"-o {out} is the input file: choose another output (the input is read while "
                       "the output is written)")
    if missing:
        raise RunError("; ".join(missing))
    return _Plan(stage, src, sidecar_paths(out), {"stage": stage.name, "version": stage.version,
                                                  "config": config_hash(stage.config),
                                                  "input": _fingerprint(src)},
                 str(src), _count_lines(src))


def run_stage(stage: Stage, input_path: str | os.PathLike[str] | None, output_path: str | os.PathLike[str], *,
              concurrency: int | None = None, cache: bool = True,
              cache_path: str | os.PathLike[str] | None = None, progress: bool | None = None,
              restart: bool = False, fail_fast: bool = False, checkpoint_every: float = 2.0,
              ordered: bool = True, reporter: ProgressReporter | None = None,
              engine: str = "local", ray_address: str | None = None) -> RunSummary:
    """Run `stage` over every record of `input_path` (or, for a SourceStage, over its own units; pass
    None) into `output_path`, resuming an interrupted run.

    concurrency: worker processes for kind="cpu" stages (default: CPU count; 1 runs inline), or
    in-flight examples for kind="io" stages (default 16). cache: look up and store results in the
    cache at `cache_path` (default `$NEXTEDIT_CACHE` or `.nextedit/cache.sqlite`; a directory or URL
    for the ray engine). restart: ignore a checkpoint left by an interrupted run. ordered=False lets an
    io stage write each result as soon as it is ready (no waiting behind a slow example); resume
    still loses and repeats nothing. engine: "local" (this machine) or "ray" (a Ray cluster at
    `ray_address`; needs `pip install 'nextedit[ray]'`).
    """
    if engine == "ray":
        from nextedit.pipeline.ray_engine import run_stage_ray

        return run_stage_ray(stage, input_path, output_path, concurrency=concurrency, cache=cache,
                             cache_path=cache_path, progress=progress, restart=restart, fail_fast=fail_fast,
                             checkpoint_every=checkpoint_every, reporter=reporter, address=ray_address)
    if engine != "local":
        raise RunError(f"unknown engine {engine!r} (local or ray)")
    t0 = time.monotonic()
    plan = plan_run(stage, input_path, output_path)
    paths, identity = plan.paths, plan.identity
    use_cache = cache and stage.cacheable and stage.emits == "record"
    store = ResultCache(cache_path or default_cache_path()) if use_cache else None
    cls = type(stage)
    is_source = isinstance(stage, SourceStage)
    is_async = inspect.iscoroutinefunction(stage.process)
    io_mode = not is_source and (is_async or stage.kind == "io")

    # A run that was killed while finishing only needs its last steps redone.
    ck = None if restart else _read_json(paths["checkpoint"])
    if ck is not None and ck.get("complete") and all(ck.get(k) == v for k, v in identity.items()):
        if store is not None:
            store.close()
        stage.close()
        _finalize(paths, ck)
        done = int(ck["counts"].get("units", int(ck["counts"].get("processed", 0))
                                    + int(ck["counts"].get("failed", 0))))
        summary = _summary(stage, paths, ck["counts"], ck.get("stats", {}), resumed=done, t0=t0)
        _finish_manifest(paths, stage, plan, summary, ck.get("input_error"))
        paths["checkpoint"].unlink(missing_ok=True)
        return summary
    if ck is not None and not all(ck.get(k) == v for k, v in identity.items()):
        changed = [k for k, v in identity.items() if ck.get(k) != v]
        print(f"note: {paths['output']}: an interrupted run was found but its {', '.join(changed)} differ; "
              "starting over", file=sys.stderr)

    try:
        sink = _Sink(paths, identity, store, checkpoint_every=checkpoint_every,
                     commit_each=io_mode, fail_fast=fail_fast)
    except BaseException:
        if store is not None:
            store.close()
        raise
    policy = stage.duplicate_ids()
    if policy is not None:
        sink.duplicates = DuplicateIds(policy, plan.input_name, stage.name)
    reporter = reporter or make_progress(progress)
    closed = False
    reader: _Source | None = None
    try:
        sink.resume(restart)
        total = plan.total
        reporter.start(stage.name, None if total is None else max(total - sink.line, 0))
        if is_source:
            source: Iterator[tuple[int, Any]] = _units(stage, sink.line, sink.skip)  # type: ignore[arg-type]
        else:
            assert plan.src is not None
            source = reader = _Source(plan.src, sink.line, sink.skip)
        sink.unordered = io_mode and not ordered
        base = sink.counts.copy()

        def report() -> None:
            c = sink.counts
            reporter.update(c["units"] - base["units"], cached=c["from_cache"], failed=c["failed"],
                            dropped=c["dropped"])

        if io_mode:
            asyncio.run(_run_io(stage, plan.input_name, store, source, sink, report, concurrency or 16,
                                ordered=not sink.unordered))
        else:
            workers = concurrency if concurrency is not None else (os.cpu_count() or 1)
            if plan.src is not None:
                small = (total - sink.line < 20000) if total is not None else plan.src.stat().st_size < (2 << 20)
                if concurrency is None and small:
                    workers = 1  # starting processes costs more than it saves
            if workers > 1 and not _rebuildable(cls):
                print(f"note: stage {stage.name} ({stage_ref(cls)}) cannot be imported by worker "
                      "processes; running it in this process", file=sys.stderr)
                workers = 1
            if workers > 1:
                _run_pool(stage, plan.input_name, use_cache, store, source, sink, report, workers)
            else:
                _run_inline(make_handler(stage, plan.input_name, store), source, sink, report)
        closed = True
        stage.close()  # before the last counters: closing may settle what the stage spent
        sink.stats.update(stage.collect_stats())
        if reader is not None and reader.damage is not None:
            sink.quarantine(plan.input_name, reader.damage.line or 0, str(reader.damage), stage.name)
            sink.input_error = damaged_input_message(reader.damage, sink.counts["written"], paths["output"])
        report()
        sink.checkpoint(complete=True)
    except BaseException:
        # Ctrl-C, --fail-fast or a bug: keep what is done so that a rerun resumes from here.
        try:
            if not closed:
                stage.close()
                sink.stats.update(stage.collect_stats())
            if sink.ready:
                sink.checkpoint()
        finally:
            sink.close()
            reporter.stop()
            if store is not None:
                store.close()
        raise
    sink.close()
    reporter.stop()
    if store is not None:
        store.close()
    ck = _read_json(paths["checkpoint"])
    assert ck is not None
    _finalize(paths, ck)
    summary = _summary(stage, paths, sink.counts, sink.stats, resumed=sink.resumed, t0=t0)
    _finish_manifest(paths, stage, plan, summary, sink.input_error)
    paths["checkpoint"].unlink(missing_ok=True)
    return summary


def _finish_manifest(paths: dict[str, Path], stage: Stage, plan: _Plan, summary: RunSummary,
                     input_error: str | None) -> None:
    """Write the manifest of a finished run; a run stopped by a damaged input gets `input_error` and no
    manifest instead (a pipeline must not take its output for a complete one)."""
    if input_error is None:
        _write_manifest(paths, stage, plan, summary)
    else:
        paths["manifest"].unlink(missing_ok=True)
        summary.input_error = input_error


def _summary(stage: Stage, paths: dict[str, Path], counts: dict[str, int], stats: dict[str, float], *,
             resumed: int, t0: float, engine: str = "local") -> RunSummary:
    stats = dict(stats)
    spent = float(stats.pop("spent_usd", 0.0))
    return RunSummary(
        stage=stage.name, output=str(paths["output"]),
        failed_output=str(paths["failed"]) if counts.get("failed") else None,
        processed=counts.get("processed", 0), from_cache=counts.get("from_cache", 0),
        failed=counts.get("failed", 0), dropped=counts.get("dropped", 0),
        written=counts.get("written", 0), resumed=resumed, seconds=time.monotonic() - t0,
        stats={k: int(v) if float(v).is_integer() else v for k, v in stats.items()},  # type: ignore[misc]
        spent_usd=round(spent, 8), engine=engine,
        top_failures=top_failure_reasons(paths["failed"]) if counts.get("failed") else [])


def input_fingerprint(plan: _Plan) -> dict[str, Any]:
    """The manifest's record of the input: path, size, mtime and content hash (or a source's fingerprint)."""
    if plan.src is None:
        return dict(plan.identity["input"])
    return {**_fingerprint(plan.src), "sha256": file_sha256(plan.src)}


def _write_manifest(paths: dict[str, Path], stage: Stage, plan: _Plan, summary: RunSummary) -> None:
    """Record what produced OUT (stage, version, config, input content hash) so pipelines can reuse it."""
    config = stage.config.model_dump(mode="json") if isinstance(stage.config, BaseModel) else {}
    _write_json_atomic(paths["manifest"], {
        "stage": stage.name, "version": stage.version, "config_hash": config_hash(stage.config),
        "config": config,
        "input": input_fingerprint(plan),
        "output": _fingerprint(paths["output"]),
        "summary": summary.to_dict(), "finished_at": _now(),
    })


def _run_inline(handler: _RecordHandler | _UnitHandler, source: Iterator[tuple[int, Any]], sink: _Sink,
                report) -> None:
    chunk: list[tuple[int, Any]] = []
    size = 8
    for item in source:
        chunk.append(item)
        if len(chunk) >= size:
            done = handler.run_chunk(chunk)
            sink.emit_many(done)
            size = _next_chunk_size(done.seconds, len(chunk))
            chunk = []
            report()
            sink.maybe_checkpoint()
    if chunk:
        sink.emit_many(handler.run_chunk(chunk))


def _next_chunk_size(seconds: float, n: int, target: float = 0.1) -> int:
    per = seconds / max(n, 1)
    return max(1, min(512, int(target / per) if per > 0 else 512))


def _mp_context() -> multiprocessing.context.BaseContext:
    """spawn (clean workers, no inherited threads or SQLite handles), unless the main program has
    no file that spawn could re-import (stdin, REPL): then fork."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is None or not os.path.exists(main_file):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _run_pool(stage: Stage, input_name: str, use_cache: bool, store: ResultCache | None,
              source: Iterator[tuple[int, Any]], sink: _Sink, report, workers: int) -> None:
    """Chunks of units in worker processes; results written in input order (a bounded window)."""
    config = stage.config.model_dump(mode="python")
    cache_path = str(store.path) if (use_cache and store is not None) else None
    ctx = _mp_context()
    pending: deque[tuple[Future, int]] = deque()
    size = 8
    max_inflight = workers * 3

    def drain_one() -> None:
        nonlocal size
        fut, n = pending.popleft()
        done: Chunk = fut.result()
        sink.emit_many(done)
        size = _next_chunk_size(done.seconds, n, target=0.2)
        report()
        sink.maybe_checkpoint()

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(stage_ref(type(stage)), config, input_name, cache_path,
                                       os.getpid())) as pool:
        chunk: list[tuple[int, Any]] = []
        for item in source:
            chunk.append(item)
            if len(chunk) >= size:
                pending.append((pool.submit(_work_chunk, chunk), len(chunk)))
                chunk = []
                while len(pending) >= max_inflight or (pending and pending[0][0].done()):
                    drain_one()
        if chunk:
            pending.append((pool.submit(_work_chunk, chunk), len(chunk)))
        while pending:
            drain_one()


async def _run_io(stage: Stage, input_name: str, store: ResultCache | None, source: Iterator[tuple[int, bytes]],
                  sink: _Sink, report, concurrency: int, *, ordered: bool = True) -> None:
    handler = _RecordHandler(stage, input_name, store)
    sem = asyncio.Semaphore(concurrency)
    executor = None if handler.is_async else ThreadPoolExecutor(max_workers=concurrency)
    window = concurrency * 4
    pending: deque[asyncio.Task] = deque()

    def emit(result: Result) -> None:
        sink.emit(result)
        if stage.stats:
            sink.stats.update(stage.collect_stats())
        report()
        sink.maybe_checkpoint()

    in_flight: set[asyncio.Future] = set()

    async def emit_some() -> None:
        nonlocal in_flight
        done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for result in sorted((t.result() for t in done), key=lambda r: r.line):
            emit(result)

    try:
        for line, raw in source:
            task = asyncio.ensure_future(handler.run_one(line, raw, sem, executor))
            if not ordered:
                sink.submitted(line)
                in_flight.add(task)
                if len(in_flight) >= window:
                    await emit_some()
                continue
            pending.append(task)
            if len(pending) >= window:
                emit(await pending.popleft())
            while pending and pending[0].done():
                emit(pending.popleft().result())
        while pending:
            emit(await pending.popleft())
        while in_flight:
            await emit_some()
    finally:
        for task in (*pending, *in_flight):
            task.cancel()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
