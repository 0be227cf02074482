"""The Ray engine: the same steps on a Ray cluster, with the local engine's guarantees.

The driver cuts the input into shards of `shard_size` units with stable boundaries and runs each shard
as a Ray task (retried on another worker when a worker process or node dies; a stage error only
quarantines its record, as locally). Inside a task the same handler as the local engine parses,
validates, looks up the cache and calls the stage; each result is stored at once in a content-addressed
DirectoryCache that every node reaches (a shared folder or an object-store URL), so a task killed
halfway never pays for an LLM call twice. A finished shard leaves its output, failures and side log in
`OUT.parts/` (its completion marker is written last); a rerun skips finished shards, and the driver
joins the parts in input order into OUT. Paid stages share one budget and one rate limit: a single
actor that every worker's LLM client consults. Ray is imported only here (`pip install 'nextedit[ray]'`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from nextedit.jsonl import failed_row
from nextedit.pipeline.cache import DirectoryCache
from nextedit.pipeline.engine import (
    Chunk,
    Result,
    RunError,
    RunSummary,
    _count_lines,
    _finalize,
    _finish_manifest,
    _read_json,
    _Source,
    _summary,
    _units,
    _write_json_atomic,
    damaged_input_message,
    make_handler,
    plan_run,
)
from nextedit.pipeline.progress import ProgressReporter, make_progress
from nextedit.pipeline.stage import SourceStage, Stage, stage_ref

__all__ = ["DEFAULT_SHARD_SIZE", "default_cache_dir", "run_stage_ray"]

DEFAULT_SHARD_SIZE = 256
PARTS_FORMAT = 1


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RunError("the ray engine needs Ray: pip install 'nextedit[ray]'") from None
    return ray


def default_cache_dir() -> str:
    """`$NEXTEDIT_CACHE_DIR`, else `.nextedit/cache.d` under the current folder (absolute: workers have
    other working folders)."""
    env = os.environ.get("NEXTEDIT_CACHE_DIR")
    return env if env else str((Path(".nextedit") / "cache.d").resolve())


def _cache_location(cache_path: str | os.PathLike[str] | None) -> str:
    if cache_path is None:
        return default_cache_dir()
    text = str(cache_path)
    if text.endswith((".sqlite", ".sqlite3", ".db")):
        raise RunError(f"{text}: the ray engine keeps its cache in a folder or object-store URL that every "
                       "node can reach (e.g. --cache /shared/nextedit-cache/ or s3://bucket/cache), not SQLite")
    return text if "://" in text else str(Path(text).resolve())


def connect(address: str | None) -> Any:
    """Join (or start) the Ray cluster: `address` (auto, ray://HOST:PORT, HOST:PORT), else $RAY_ADDRESS,
    else a Ray on this machine. A session that already called ray.init() is used as it is."""
    ray = _ray()
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in ("PYTHONPATH", "NEXTEDIT_LLM_CACHE", "HF_HUB_OFFLINE") if k in os.environ}
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True,
                 log_to_driver=False, runtime_env={"env_vars": env} if env else None)
    return ray


# ----------------------------------------------------------------------------------------------------
# One budget and one rate limit for the whole cluster


class GovernorActor:
    """Held by one Ray actor: the run's dollars (spent, in flight, limit) and request/token buckets."""

    def __init__(self, limit: float | None, rpm: float | None, tpm: float | None):
        from nextedit.llm.ratelimit import RateLimiter

        self.limit = limit
        self.spent = 0.0
        self.reserved = 0.0
        self.limiter = RateLimiter(rpm, tpm)

    def reserve(self, usd: float) -> str | None:
        if self.limit is not None and self.spent + self.reserved + usd > self.limit:
            return (f"--max-cost-usd {self.limit:g} reached for the whole cluster (spent ${self.spent:.4f}, "
                    f"${self.reserved:.4f} in flight, next request up to ${usd:.4f})")
        self.reserved += usd
        return None

    def release(self, usd: float) -> None:
        self.reserved = max(self.reserved - usd, 0.0)

    def spend(self, usd: float) -> None:
        self.spent += usd

    def wait(self, tokens: float) -> float:
        return self.limiter.try_acquire(tokens)

    def pause(self, seconds: float) -> None:
        self.limiter.pause(seconds)

    def totals(self) -> dict[str, float]:
        return {"spent": self.spent, "reserved": self.reserved}


class _RemoteGovernor:
    """The nextedit.llm Governor of a worker: every call goes to the cluster's GovernorActor."""

    def __init__(self, handle: Any):
        self.handle = handle

    def _call(self, method: str, *args: Any) -> Any:
        ray = _ray()
        return ray.get(getattr(self.handle, method).remote(*args))

    def reserve(self, usd: float) -> str | None:
        return self._call("reserve", usd)

    def release(self, usd: float) -> None:
        self._call("release", usd)

    def spend(self, usd: float) -> None:
        self._call("spend", usd)

    def wait(self, tokens: float) -> float:
        return self._call("wait", tokens)

    def pause(self, seconds: float) -> None:
        self._call("pause", seconds)


def _governor_settings(stage: Stage) -> tuple[float | None, float | None, float | None] | None:
    """(budget, rpm, tpm) of a paid stage, or None for a stage that calls no LLM client."""
    cfg = stage.config
    client = getattr(cfg, "client", None)
    if not hasattr(cfg, "max_cost_usd") or client is None:
        return None
    return cfg.max_cost_usd, getattr(client, "rpm", None), getattr(client, "tpm", None)


# ----------------------------------------------------------------------------------------------------
# Work done on the workers

_HANDLERS: dict[str, Any] = {}


def _handler(ref: str, config: dict[str, Any], input_name: str, cache_url: str | None) -> Any:
    """The stage and handler of this worker process for one run (built once, reused by its shards)."""
    key = orjson.dumps([ref, config, input_name, cache_url], option=orjson.OPT_SORT_KEYS).decode()
    handler = _HANDLERS.get(key)
    if handler is None:
        from nextedit.pipeline.registry import get_stage

        cls = get_stage(ref)
        stage = cls(cls.Config.model_validate(config))
        handler = _HANDLERS[key] = make_handler(stage, input_name, DirectoryCache(cache_url) if cache_url else None)
    return handler


def _store(handler: Any, results: list[Result]) -> None:
    rows = [r.cache_row for r in results if r.cache_row is not None]
    cache = getattr(handler, "cache", None)
    if rows and cache is not None:
        cache.put_many(rows)


async def _run_io(handler: Any, units: list[tuple[int, bytes]], concurrency: int) -> list[Result]:
    sem = asyncio.Semaphore(concurrency)

    async def one(line: int, raw: bytes) -> Result:
        result = await handler.run_one(line, raw, sem, None)
        _store(handler, [result])  # at once: a task killed later does not pay for this call again
        return result

    try:
        return list(await asyncio.gather(*(one(line, raw) for line, raw in units)))
    finally:
        client = getattr(handler.stage, "_client", None)
        if client is not None:
            await client.aclose()


def _part_names(shard: int) -> dict[str, str]:
    base = f"shard-{shard:06d}"
    return {"out": f"{base}.jsonl", "failed": f"{base}.failed.jsonl", "log": f"{base}.log.jsonl",
            "done": f"{base}.done.json"}


def run_shard(ref: str, config: dict[str, Any], input_name: str, cache_url: str | None, parts_dir: str,
              shard: int, units: list[tuple[int, Any]], io_concurrency: int, governor: Any) -> dict[str, Any]:
    """Run one shard on a worker; write its parts, the completion marker last; return its counts."""
    from nextedit.llm.governor import set_governor

    set_governor(_RemoteGovernor(governor) if governor is not None else None)
    handler = _handler(ref, config, input_name, cache_url)
    stage = handler.stage
    stage.collect_stats()  # drop what a crashed earlier task of this worker left uncounted
    t0 = time.perf_counter()
    io_mode = not isinstance(stage, SourceStage) and (handler.is_async or stage.kind == "io")
    if io_mode:
        results = asyncio.run(_run_io(handler, units, io_concurrency))
        stats = stage.collect_stats()
    else:
        results, stats = [], Counter()
        for i in range(0, len(units), 16):  # small chunks: each one's cache rows are stored at once
            chunk: Chunk = handler.run_chunk(units[i:i + 16])
            _store(handler, chunk.results)
            results += chunk.results
            stats.update(chunk.stats)
        stats = dict(stats)
    names = _part_names(shard)
    parts = Path(parts_dir)
    for kind, data in (("out", b"".join(r.records for r in results)),
                       ("failed", b"".join(r.failures for r in results)),
                       ("log", b"".join(r.log for r in results))):
        if data:
            tmp = parts / f".{names[kind]}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, parts / names[kind])
    counts = Counter(units=len(results))
    first_failure = None
    for r in results:
        counts["processed"] += r.ok
        counts["written"] += r.written
        counts["failed"] += r.failed
        counts["dropped"] += r.dropped
        counts["from_cache"] += r.cached
        if r.failed and first_failure is None:
            first_failure = r.reason
    done = {"shard": shard, "counts": dict(counts), "stats": stats, "first_failure": first_failure,
            "seconds": time.perf_counter() - t0, "node": os.uname().nodename, "pid": os.getpid()}
    _write_json_atomic(parts / names["done"], done)
    return done


# ----------------------------------------------------------------------------------------------------
# The driver


def _shards(source: Any, size: int) -> Any:
    """(shard number, units) with stable boundaries: shard k holds units k*size+1 .. (k+1)*size."""
    batch: list[tuple[int, Any]] = []
    current = None
    for line, unit in source:
        k = (line - 1) // size
        if current is not None and k != current and batch:
            yield current, batch
            batch = []
        current = k
        batch.append((line, unit))
    if batch and current is not None:
        yield current, batch


def _prepare_parts(parts: Path, identity: dict[str, Any], restart: bool) -> None:
    recorded = _read_json(parts / "identity.json")
    if restart or recorded != identity:
        if recorded is not None and not restart:
            print(f"note: {parts}: parts of another run (stage, config or input differ); starting over",
                  file=sys.stderr)
        shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True, exist_ok=True)
    if not (parts / "identity.json").exists():
        _write_json_atomic(parts / "identity.json", identity)


def _join(parts: Path, shards: list[int], paths: dict[str, Path]) -> dict[str, int]:
    """Concatenate the shards' parts in order into the partial files; return their sizes."""
    sizes: dict[str, int] = {}
    targets = [("out", "partial", "out_bytes"), ("failed", "failed_partial", "failed_bytes")]
    if "log" in paths:
        targets.append(("log", "log_partial", "log_bytes"))
    for kind, target, size_key in targets:
        with open(paths[target], "wb") as dst:
            for k in shards:
                part = parts / _part_names(k)[kind]
                if part.exists():
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
            sizes[size_key] = dst.tell()
    return sizes


def run_stage_ray(stage: Stage, input_path: str | os.PathLike[str] | None, output_path: str | os.PathLike[str], *,
                  concurrency: int | None = None, cache: bool = True,
                  cache_path: str | os.PathLike[str] | None = None, progress: bool | None = None,
                  restart: bool = False, fail_fast: bool = False, checkpoint_every: float = 2.0,
                  reporter: ProgressReporter | None = None, address: str | None = None,
                  shard_size: int | None = None) -> RunSummary:
    """`run_stage` on a Ray cluster (see the module docstring). Shards in flight: twice the cluster's
    CPUs; `concurrency` is the in-flight examples per shard for io stages (default 16)."""
    t0 = time.monotonic()
    plan = plan_run(stage, input_path, output_path)
    paths, identity = plan.paths, plan.identity
    cls = type(stage)
    ref = stage_ref(cls)
    from nextedit.pipeline.engine import _rebuildable

    if not _rebuildable(cls):
        raise RunError(f"stage {stage.name} ({ref}) cannot be imported by Ray workers: define it in a module")
    use_cache = cache and stage.cacheable and stage.emits == "record"
    cache_url = _cache_location(cache_path) if use_cache else None
    if cache_url is not None:
        DirectoryCache(cache_url)  # create it (and fail early when it cannot be)
    size = shard_size or int(os.environ.get("NEXTEDIT_RAY_SHARD_SIZE", DEFAULT_SHARD_SIZE))
    parts = paths["output"].with_name(paths["output"].name + ".parts").resolve()
    identity = {**identity, "shard_size": size, "format": PARTS_FORMAT}
    paths["output"].parent.mkdir(parents=True, exist_ok=True)
    _prepare_parts(parts, identity, restart)

    ray = connect(address)
    config = stage.config.model_dump(mode="json")
    io_mode = not isinstance(stage, SourceStage) and (stage.kind == "io" or
                                                      asyncio.iscoroutinefunction(stage.process))
    governor = None
    settings = _governor_settings(stage)
    if settings is not None and any(x is not None for x in settings):
        actor = ray.remote(num_cpus=0)(GovernorActor)
        governor = actor.options(name=f"nextedit-governor-{uuid.uuid4().hex[:12]}").remote(*settings)
    task = ray.remote(num_cpus=1, max_retries=5, retry_exceptions=False)(run_shard)
    window = max(2 * int(ray.cluster_resources().get("CPU", 1)), 2)  # shards in flight
    io_concurrency = (concurrency or 16) if io_mode else 1

    reporter = reporter or make_progress(progress)
    total = plan.total if plan.total is not None else (None if plan.src is None else _count_lines(plan.src))
    reporter.start(stage.name, total)
    counts: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    shards: list[int] = []
    resumed = 0
    pending: dict[Any, int] = {}

    def absorb(done: dict[str, Any]) -> None:
        counts.update(done["counts"])
        stats.update(done["stats"])
        reporter.update(counts["units"], cached=counts["from_cache"], failed=counts["failed"],
                        dropped=counts["dropped"])
        if fail_fast and done["counts"].get("failed"):
            for ref_ in pending:
                ray.cancel(ref_, force=True)
            raise RunError(f"stopped at the first failure (--fail-fast): {done['first_failure']}")

    def wait_one() -> None:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for r in ready:
            pending.pop(r)
            absorb(ray.get(r))

    reader: _Source | None = None
    try:
        if isinstance(stage, SourceStage):
            source: Any = _units(stage, 0, set())
        else:
            assert plan.src is not None
            source = reader = _Source(plan.src, 0, set())
        for k, units in _shards(source, size):
            shards.append(k)
            marker = _read_json(parts / _part_names(k)["done"])
            if marker is not None:
                resumed += marker["counts"].get("units", 0)
                absorb(marker)
                continue
            pending[task.remote(ref, config, plan.input_name, cache_url, str(parts), k, units, io_concurrency,
                                governor)] = k
            while len(pending) >= window:
                wait_one()
        while pending:
            wait_one()
    finally:
        reporter.stop()
        if governor is not None:
            with contextlib.suppress(Exception):  # best effort: the actor dies with the job anyway
                ray.kill(governor)
    sizes = _join(parts, shards, paths)
    input_error = None
    if reader is not None and reader.damage is not None:  # quarantined after the records before it
        row = failed_row(file=plan.input_name, line=reader.damage.line or 0, reason=str(reader.damage),
                         stage=stage.name)
        with open(paths["failed_partial"], "ab") as fh:
            fh.write(orjson.dumps(row) + b"\n")
            sizes["failed_bytes"] = fh.tell()
        counts["failed"] += 1
        input_error = damaged_input_message(reader.damage, counts["written"], paths["output"])
    ck = {**sizes, "complete": True}
    _finalize(paths, ck)
    summary = _summary(stage, paths, counts, stats, resumed=resumed, t0=t0, engine="ray")
    _finish_manifest(paths, stage, plan, summary, input_error)
    shutil.rmtree(parts, ignore_errors=True)
    return summary
