"""The local engine: runs one Stage over a JSONL file, streaming, resumable after kill -9, cached, concurrent.

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
import shutil
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from nextedit.jsonl import DamagedInput, failed_path, failed_row, iter_lines
from nextedit.pipeline.cache import (
    DROPPED,
    OUTPUT,
    ResultCache,
    cache_key,
    default_cache_path,
)
from nextedit.pipeline.progress import ProgressReporter, make_progress
from nextedit.pipeline.stage import Stage, StageError, config_hash, stage_ref
from nextedit.record import Example, RecordError, parse_example

__all__ = ["RunError", "RunFailed", "RunSummary", "run_stage", "sidecar_paths", "top_failure_reasons"]

OK, DROP, FAIL = 0, 1, 2
CHECKPOINT_FORMAT = 1


class RunError(RuntimeError):
    """The run cannot start or was stopped (bad paths, output locked, --fail-fast); one line."""


class RunFailed(RunError):
    """A pipeline stopped after a stage whose input was damaged or whose every example failed."""


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


class _Handler:
    """Turns input lines into result tuples: parse, validate, look up the cache, call the stage."""

    def __init__(self, stage: Stage, input_name: str, cache: ResultCache | None):
        self.stage = stage
        self.input_name = input_name
        self.cache = cache if stage.cacheable else None
        self.cfg_hash = config_hash(stage.config)
        self.reads = tuple(stage.reads)
        self.is_async = inspect.iscoroutinefunction(stage.process)

    # -- helpers
    def _fail(self, line: int, raw: bytes, reason: str) -> tuple:
        row = failed_row(file=self.input_name, line=line, reason=reason, stage=self.stage.name, raw=raw)
        return (FAIL, line, orjson.dumps(row) + b"\n")

    def prepare(self, line: int, raw: bytes) -> tuple:
        """(FAIL, ...) or (None, line, raw, example, dict, key)."""
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
        return (None, line, raw, example, data, key)

    def _lineage(self, d: dict[str, Any], at: str, cached: bool) -> None:
        entry: dict[str, Any] = {"stage": self.stage.name, "version": self.stage.version,
                                 "config": self.cfg_hash, "at": at}
        if cached:
            entry["cached"] = True
        d.setdefault("lineage", []).append(entry)

    def from_cache(self, line: int, d: dict[str, Any], hit: tuple[int, bytes | None], at: str) -> tuple:
        """Rebuild the stage's result from a cached delta."""
        kind, value = hit
        if kind == DROPPED:
            return (DROP, line, True, None)
        delta = orjson.loads(value or b"{}")
        d.update(delta.get("set", {}))
        for k in delta.get("del", ()):
            d.pop(k, None)
        self._lineage(d, at, cached=True)
        return (OK, line, orjson.dumps(d) + b"\n", True, None)

    def finish(self, line: int, raw: bytes, d: dict[str, Any], key: str | None, out: Any, at: str) -> tuple:
        """Turn the stage's return value into a result (and the cache row to store)."""
        name, version = self.stage.name, self.stage.version
        if out is None:
            row = (key, name, version, DROPPED, None) if key else None
            return (DROP, line, False, row)
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
            row = (key, name, version, OUTPUT, orjson.dumps({"set": changed, "del": removed}))
        self._lineage(od, at, cached=False)
        return (OK, line, orjson.dumps(od) + b"\n", False, row)

    def _error_reason(self, exc: Exception) -> str:
        if isinstance(exc, StageError):
            return str(exc) or "StageError"
        return f"{type(exc).__name__}: {exc}"

    # -- sync chunks (inline or in a worker process)
    def run_chunk(self, items: list[tuple[int, bytes]]) -> tuple[list[tuple], dict[str, int], float]:
        """Results for a chunk of lines, the stage's stats since the last chunk, and seconds taken."""
        t0 = time.perf_counter()
        at = _now()
        prepared = [self.prepare(line, raw) for line, raw in items]
        keys = [p[5] for p in prepared if p[0] is None and p[5]]
        hits = self.cache.get_many(keys) if (self.cache is not None and keys) else {}
        results = []
        for p in prepared:
            if p[0] is not None:
                results.append(p)
                continue
            _, line, raw, example, d, key = p
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
        stats = dict(self.stage.stats)
        self.stage.stats.clear()
        return results, stats, time.perf_counter() - t0

    # -- one example under asyncio (io stages)
    async def run_one(self, line: int, raw: bytes, sem: asyncio.Semaphore,
                      executor: ThreadPoolExecutor | None) -> tuple:
        """The result for one line; the stage call runs under the semaphore."""
        p = self.prepare(line, raw)
        if p[0] is not None:
            return p
        _, line, raw, example, d, key = p
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


_WORKER: _Handler | None = None


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
    _WORKER = _Handler(stage, input_name, cache)
    multiprocessing.util.Finalize(None, stage.close, exitpriority=10)  # Stage.close() at worker exit


def _work_chunk(items: list[tuple[int, bytes]]) -> tuple[list[tuple], dict[str, int], float]:
    assert _WORKER is not None
    return _WORKER.run_chunk(items)


# ----------------------------------------------------------------------------------------------------
# Output side: partial files, checkpoints, finish


def sidecar_paths(output: str | os.PathLike[str]) -> dict[str, Path]:
    """The files a run keeps beside OUT: partial output, partial failures, checkpoint, manifest."""
    out = Path(output)
    failed = failed_path(out)
    return {
        "output": out,
        "failed": failed,
        "partial": out.with_name(out.name + ".partial"),
        "failed_partial": failed.with_name(failed.name + ".partial"),
        "checkpoint": out.with_name(out.name + ".checkpoint.json"),
        "manifest": out.with_name(out.name + ".manifest.json"),
    }


def _record_id(raw: bytes) -> str | None:
    try:
        rid = orjson.loads(raw).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return rid if isinstance(rid, str) else None


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

    COUNTS = ("processed", "from_cache", "failed", "dropped", "written")

    def __init__(self, paths: dict[str, Path], identity: dict[str, Any], cache: ResultCache | None,
                 *, checkpoint_every: float, commit_each: bool, fail_fast: bool):
        self.paths = paths
        self.identity = identity
        self.cache = cache
        self.checkpoint_every = checkpoint_every
        self.commit_each = commit_each
        self.fail_fast = fail_fast
        self.counts: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.line = 0  # every input line up to this one is done
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
        self._rows: list[tuple] | None = None  # cache rows of the chunk being emitted
        # Duplicate-id check (a stage's duplicate_ids() policy): id -> first input line written.
        self.dup_policy: str | None = None
        self.input_name = ""
        self.stage_name = ""
        self._ids: dict[str, int] = {}
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

    def resume(self, restart: bool) -> dict[str, Any] | None:
        """Pick up a compatible checkpoint (truncating torn tails) or start from scratch."""
        self.ready = True
        ck = None if restart else _read_json(self.paths["checkpoint"])
        if ck is not None and all(ck.get(k) == v for k, v in self.identity.items()) and not ck.get("complete"):
            out_bytes, failed_bytes = int(ck["out_bytes"]), int(ck["failed_bytes"])
            if (os.fstat(self._out.fileno()).st_size >= out_bytes
                    and os.fstat(self._failed.fileno()).st_size >= failed_bytes):
                self._truncate(out_bytes, failed_bytes)
                self._load_ids(out_bytes)
                self.line = int(ck["line"])
                self.skip = {int(x) for x in ck.get("done_after", ())}
                self.counts.update({k: int(ck["counts"].get(k, 0)) for k in self.COUNTS})
                self.stats.update(ck.get("stats", {}))
                self.resumed = self.counts["processed"] + self.counts["failed"]
                return ck
        self._truncate(0, 0)
        self.paths["checkpoint"].unlink(missing_ok=True)
        return None

    def _load_ids(self, size: int) -> None:
        """Resume: the ids already written (their first lines are not recorded; 0 stands for them)."""
        if self.dup_policy is None:
            return
        self._out.seek(0)
        for raw in self._out.read(size).splitlines():
            rid = _record_id(raw)
            if rid is not None:
                self._ids.setdefault(rid, 0)
        self._out.seek(size)

    def _duplicate(self, result: tuple) -> tuple:
        """`result` (OK), or the FAIL/DROP it becomes when its id was written before."""
        rid = _record_id(result[2])
        if rid is None:
            return result
        first = self._ids.setdefault(rid, result[1])
        if first == result[1]:
            return result
        self.stats["duplicate_id"] += 1
        if self.dup_policy == "keep":
            return result
        if self.dup_policy == "drop":
            return (DROP, result[1], result[3], result[4])
        where = f" (first at line {first})" if first else " (written before the run was resumed)"
        row = failed_row(file=self.input_name, line=result[1], stage=self.stage_name, raw=result[2],
                         reason=f"{self.input_name}:{result[1]}: field id: duplicate id {rid!r}{where}")
        return (FAIL, result[1], orjson.dumps(row) + b"\n")

    def _truncate(self, out_bytes: int, failed_bytes: int) -> None:
        for fh, size in ((self._out, out_bytes), (self._failed, failed_bytes)):
            fh.flush()
            fh.truncate(size)
            fh.seek(size)

    def emit(self, result: tuple) -> None:
        """Write one result (results arrive in input order)."""
        if self.dup_policy is not None and result[0] == OK:
            result = self._duplicate(result)
        kind, line = result[0], result[1]
        if kind == OK:
            self._out.write(result[2])
            self.counts["processed"] += 1
            self.counts["written"] += 1
            self.counts["from_cache"] += result[3]
            row = result[4]
        elif kind == DROP:
            self.counts["processed"] += 1
            self.counts["dropped"] += 1
            self.counts["from_cache"] += result[2]
            row = result[3]
        else:
            self._failed.write(result[2])
            self.counts["failed"] += 1
            row = None
            if self.fail_fast:
                self._mark(line)
                self.checkpoint()
                reason = orjson.loads(result[2])["reason"]
                raise RunError(f"stopped at the first failure (--fail-fast): {reason}")
        if row is not None and self.cache is not None:
            if self._rows is None:
                self.cache.put_many([row], commit=self.commit_each)
            else:
                self._rows.append(row)
        self._mark(line)
        self._dirty = True

    def quarantine(self, file: str, line: int, reason: str, stage: str) -> None:
        """Record a failure that belongs to no input record (a damaged input)."""
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

    def emit_many(self, results: list[tuple], stats: dict[str, int]) -> None:
        """Write a chunk of results, then commit the cache rows once."""
        self._rows = []
        try:
            for r in results:
                self.emit(r)
        finally:
            rows, self._rows = self._rows, None
            if self.cache is not None and rows:
                self.cache.put_many(rows, commit=True)
        self.stats.update(stats)

    def maybe_checkpoint(self) -> None:
        """Checkpoint when `checkpoint_every` seconds have passed since the last one."""
        if self._dirty and time.monotonic() - self._last_ck >= self.checkpoint_every:
            self.checkpoint()

    def checkpoint(self, *, complete: bool = False) -> None:
        """Make everything written so far durable, then record how far we got (atomically)."""
        if self.cache is not None:
            self.cache.put_many([], commit=True)
        for fh in (self._out, self._failed):
            fh.flush()
            os.fsync(fh.fileno())
        _write_json_atomic(self.paths["checkpoint"], {
            **self.identity, "format": CHECKPOINT_FORMAT, "line": self.line,
            "done_after": sorted(self._done | {x for x in self.skip if x > self.line}),
            "out_bytes": self._out.tell(), "failed_bytes": self._failed.tell(),
            "counts": dict(self.counts), "stats": dict(self.stats), "complete": complete,
        })
        self._last_ck = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        """Close the partial files (releases the lock)."""
        self.ready = False
        self._failed.close()
        self._out.close()


def _finalize(paths: dict[str, Path], ck: dict[str, Any]) -> None:
    """Idempotent end of a run: move partial files onto their final names, then drop the checkpoint."""
    if int(ck["failed_bytes"]) == 0:
        paths["failed_partial"].unlink(missing_ok=True)
        paths["failed"].unlink(missing_ok=True)  # a stale quarantine file from an older run
    elif paths["failed_partial"].exists():
        os.replace(paths["failed_partial"], paths["failed"])
    out, partial = paths["output"], paths["partial"]
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


def _reason_kind(reason: str) -> str:
    """A failure reason without its `file:line:` prefix and example id, so that equal causes group."""
    import re

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
    except OSError:
        return []
    return counts.most_common(limit)


def _rebuildable(cls: type[Stage]) -> bool:
    """Can a worker process import this stage class by its module:Class path?"""
    if cls.__module__ in ("__main__", "__mp_main__") or "<locals>" in cls.__qualname__:
        return False
    try:
        from nextedit.pipeline.registry import get_stage

        return get_stage(stage_ref(cls)) is cls
    except Exception:  # noqa: BLE001
        return False


def run_stage(stage: Stage, input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], *,
              concurrency: int | None = None, cache: bool = True,
              cache_path: str | os.PathLike[str] | None = None, progress: bool | None = None,
              restart: bool = False, fail_fast: bool = False, checkpoint_every: float = 2.0,
              ordered: bool = True, reporter: ProgressReporter | None = None) -> RunSummary:
    """Run `stage` over every record of `input_path` into `output_path` (resuming an interrupted run).

    concurrency: worker processes for kind="cpu" stages (default: CPU count; 1 runs inline), or
    in-flight examples for kind="io" stages (default 16). cache: look up and store results in the
    SQLite cache at `cache_path` (default `$NEXTEDIT_CACHE` or `.nextedit/cache.sqlite`).
    restart: ignore a checkpoint left by an interrupted run. ordered=False lets an io stage
    write each result as soon as it is ready (no waiting behind a slow example); resume still
    loses and repeats nothing.
    """
    t0 = time.monotonic()
    src, out = Path(input_path), Path(output_path)
    if not src.is_file():
        raise RunError(f"{src}: no such input file")
    if out.resolve() == src.resolve():
        raise RunError(f"-o {out} is the input file: choose another output (the input is read while "
                       "the output is written)")
    missing = stage.missing_requirements()
    if missing:
        raise RunError("; ".join(missing))
    paths = sidecar_paths(out)
    cfg_hash = config_hash(stage.config)
    identity = {"stage": stage.name, "version": stage.version, "config": cfg_hash,
                "input": _fingerprint(src)}
    use_cache = cache and stage.cacheable
    store = ResultCache(cache_path or default_cache_path()) if use_cache else None
    cls = type(stage)
    is_async = inspect.iscoroutinefunction(stage.process)
    io_mode = is_async or stage.kind == "io"

    # A run that was killed while finishing only needs its last steps redone.
    ck = None if restart else _read_json(paths["checkpoint"])
    if ck is not None and ck.get("complete") and all(ck.get(k) == v for k, v in identity.items()):
        if store is not None:
            store.close()
        _finalize(paths, ck)
        done = int(ck["counts"].get("processed", 0)) + int(ck["counts"].get("failed", 0))
        summary = _summary(stage, paths, ck["counts"], ck.get("stats", {}), resumed=done, t0=t0)
        _write_manifest(paths, stage, src, summary)
        paths["checkpoint"].unlink(missing_ok=True)
        return summary
    if ck is not None and not all(ck.get(k) == v for k, v in identity.items()):
        changed = [k for k, v in identity.items() if ck.get(k) != v]
        print(f"note: {out}: an interrupted run was found but its {', '.join(changed)} differ; "
              "starting over", file=sys.stderr)

    try:
        sink = _Sink(paths, identity, store, checkpoint_every=checkpoint_every,
                     commit_each=io_mode, fail_fast=fail_fast)
    except BaseException:
        if store is not None:
            store.close()
        raise
    sink.dup_policy = stage.duplicate_ids()
    sink.input_name, sink.stage_name = str(src), stage.name
    reporter = reporter or make_progress(progress)
    try:
        sink.resume(restart)
        total = _count_lines(src)
        reporter.start(stage.name, None if total is None else max(total - sink.line, 0))
        source = _Source(src, sink.line, sink.skip)
        sink.unordered = io_mode and not ordered
        base = sink.counts.copy()

        def report() -> None:
            c = sink.counts
            reporter.update(c["processed"] + c["failed"] - base["processed"] - base["failed"],
                            cached=c["from_cache"], failed=c["failed"], dropped=c["dropped"])

        if io_mode:
            asyncio.run(_run_io(stage, src, store, source, sink, report, concurrency or 16,
                                ordered=not sink.unordered))
        else:
            workers = concurrency if concurrency is not None else (os.cpu_count() or 1)
            small = (total - sink.line < 20000) if total is not None else src.stat().st_size < (2 << 20)
            if concurrency is None and small:
                workers = 1  # starting processes costs more than it saves
            if workers > 1 and not _rebuildable(cls):
                print(f"note: stage {stage.name} ({stage_ref(cls)}) cannot be imported by worker "
                      "processes; running it in this process", file=sys.stderr)
                workers = 1
            if workers > 1:
                _run_pool(stage, src, use_cache, store, source, sink, report, workers)
            else:
                _run_inline(_Handler(stage, str(src), store), source, sink, report)
        sink.stats.update(stage.stats)
        stage.stats.clear()
        if source.damage is not None:
            sink.quarantine(str(src), source.damage.line or 0, str(source.damage), stage.name)
        report()
        sink.checkpoint(complete=True)
    except BaseException:
        # Ctrl-C, --fail-fast or a bug: keep what is done so that a rerun resumes from here.
        try:
            if sink.ready:
                sink.checkpoint()
        finally:
            sink.close()
            reporter.stop()
            if store is not None:
                store.close()
            stage.close()
        raise
    sink.close()
    reporter.stop()
    if store is not None:
        store.close()
    stage.close()
    ck = _read_json(paths["checkpoint"])
    assert ck is not None
    _finalize(paths, ck)
    summary = _summary(stage, paths, sink.counts, sink.stats, resumed=sink.resumed, t0=t0)
    if source.damage is None:
        _write_manifest(paths, stage, src, summary)
    else:  # no manifest: a pipeline must not take this output for a complete one
        paths["manifest"].unlink(missing_ok=True)
        summary.input_error = (f"{source.damage}; the {summary.written} records before the damage were "
                               f"written to {out}")
    paths["checkpoint"].unlink(missing_ok=True)
    return summary


def _summary(stage: Stage, paths: dict[str, Path], counts: dict[str, int], stats: dict[str, int], *,
             resumed: int, t0: float) -> RunSummary:
    return RunSummary(
        stage=stage.name, output=str(paths["output"]),
        failed_output=str(paths["failed"]) if counts.get("failed") else None,
        processed=counts.get("processed", 0), from_cache=counts.get("from_cache", 0),
        failed=counts.get("failed", 0), dropped=counts.get("dropped", 0),
        written=counts.get("written", 0), resumed=resumed, seconds=time.monotonic() - t0,
        stats=dict(stats),
        top_failures=top_failure_reasons(paths["failed"]) if counts.get("failed") else [])


def _write_manifest(paths: dict[str, Path], stage: Stage, src: Path, summary: RunSummary) -> None:
    """Record what produced OUT (stage, version, config, input content hash) so pipelines can reuse it."""
    config = stage.config.model_dump(mode="json") if isinstance(stage.config, BaseModel) else {}
    _write_json_atomic(paths["manifest"], {
        "stage": stage.name, "version": stage.version, "config_hash": config_hash(stage.config),
        "config": config,
        "input": {**_fingerprint(src), "sha256": file_sha256(src)},
        "output": _fingerprint(paths["output"]),
        "summary": summary.to_dict(), "finished_at": _now(),
    })


def _run_inline(handler: _Handler, source: Iterator[tuple[int, bytes]], sink: _Sink, report) -> None:
    chunk: list[tuple[int, bytes]] = []
    size = 8
    for item in source:
        chunk.append(item)
        if len(chunk) >= size:
            results, stats, secs = handler.run_chunk(chunk)
            sink.emit_many(results, stats)
            size = _next_chunk_size(secs, len(chunk))
            chunk = []
            report()
            sink.maybe_checkpoint()
    if chunk:
        results, stats, _ = handler.run_chunk(chunk)
        sink.emit_many(results, stats)


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


def _run_pool(stage: Stage, src: Path, use_cache: bool, store: ResultCache | None,
              source: Iterator[tuple[int, bytes]], sink: _Sink, report, workers: int) -> None:
    config = stage.config.model_dump(mode="python")
    cache_path = str(store.path) if (use_cache and store is not None) else None
    ctx = _mp_context()
    pending: deque[tuple[Future, int]] = deque()
    size = 8
    max_inflight = workers * 3

    def drain_one() -> None:
        nonlocal size
        fut, n = pending.popleft()
        results, stats, secs = fut.result()
        sink.emit_many(results, stats)
        size = _next_chunk_size(secs, n, target=0.2)
        report()
        sink.maybe_checkpoint()

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(stage_ref(type(stage)), config, str(src), cache_path,
                                       os.getpid())) as pool:
        chunk: list[tuple[int, bytes]] = []
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


async def _run_io(stage: Stage, src: Path, store: ResultCache | None, source: Iterator[tuple[int, bytes]],
                  sink: _Sink, report, concurrency: int, *, ordered: bool = True) -> None:
    handler = _Handler(stage, str(src), store)
    sem = asyncio.Semaphore(concurrency)
    executor = None if handler.is_async else ThreadPoolExecutor(max_workers=concurrency)
    window = concurrency * 4
    pending: deque[asyncio.Task] = deque()

    def emit(result: tuple) -> None:
        sink.emit(result)
        if stage.stats:
            sink.stats.update(stage.stats)
            stage.stats.clear()
        report()
        sink.maybe_checkpoint()

    in_flight: set[asyncio.Future] = set()

    async def emit_some() -> None:
        nonlocal in_flight
        done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
        for result in sorted((t.result() for t in done), key=lambda r: r[1]):
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
