"""Batch API jobs (Anthropic Message Batches, OpenAI Batch) with explicit state on disk: one JSON
job file per provider batch, holding its requests by cache key, the provider batch id, status and
times. `collect` writes finished results into the request cache, so a normal run then finds them."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, Field, ValidationError

from nextedit.llm.client import LLMClient, get_client
from nextedit.llm.provider_base import ProviderResult
from nextedit.llm.types import BudgetExceeded, ChatRequest, LLMError

__all__ = ["BatchJob", "CollectResult", "collect_job", "job_files", "load_job", "refresh_job", "save_job",
           "submit_requests"]

JobStatus = Literal["pending", "submitted", "ended", "collected", "failed", "expired", "canceled"]
MAX_BATCH = 10_000
T = TypeVar("T")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BatchJob(BaseModel):
    """The state of one provider batch. `items` maps the provider's custom_id to (cache key, sample)."""

    version: int = 1
    job_id: str
    spec: str
    model: str
    base_url: str | None = None
    cache_path: str | None = None
    provider_batch_id: str | None = None
    status: JobStatus = "pending"
    created_at: str = Field(default_factory=_now)
    submitted_at: str | None = None
    last_checked_at: str | None = None
    ended_at: str | None = None
    collected_at: str | None = None
    requests: dict[str, ChatRequest] = {}
    items: dict[str, tuple[str, int]] = {}
    counts: dict[str, int] = {}
    stored: int = 0
    errors: dict[str, str] = {}
    error: str | None = None


def save_job(job: BatchJob, path: Path) -> None:
    """Write the job file atomically (temp file + rename), so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(job.model_dump(mode="json"), option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def load_job(path: Path) -> BatchJob:
    """Read a job file; a bad one raises ValueError naming the file and field."""
    try:
        return BatchJob.model_validate(orjson.loads(Path(path).read_bytes()))
    except orjson.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON job file ({err})") from None
    except ValidationError as err:
        first = err.errors()[0]
        raise ValueError(f"{path}: field {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def job_files(path: Path) -> list[Path]:
    """The job file itself, or every `*.batch.json` in a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        return sorted(path.glob("*.batch.json"))
    if not path.exists():
        raise ValueError(f"{path}: no such job file or folder")
    return [path]


def client_for(job: BatchJob, client: LLMClient | None = None) -> LLMClient:
    """The given client, or one rebuilt from the job (API keys come from the environment)."""
    if client is not None:
        return client
    options: dict[str, Any] = {"cache_path": job.cache_path}
    if job.base_url and not job.spec.startswith("openai-compatible:"):
        options["base_url"] = job.base_url
    made = get_client(job.spec, **options)
    _OPENED.append(made)
    return made


def _custom_id(key: str, sample: int, samples: int) -> str:
    # Anthropic allows 64 characters of [A-Za-z0-9_-]: the whole sha256 hex when one sample.
    return key if samples == 1 else f"{key[:56]}-{sample}"


async def submit_requests(client: LLMClient, requests: list[ChatRequest], job_dir: Path, *,
                          max_batch: int = MAX_BATCH) -> list[Path]:
    """Submit requests not already cached as provider batches (one job file each); returns the files.
    The job file is written before the provider call, then updated with the batch id."""
    todo: dict[str, ChatRequest] = {}
    for req in requests:
        key = client.key(req)
        if key not in todo and (client.cache is None or not client.cache.has(key)):
            todo[key] = req
    if not todo:
        return []
    if client.options.max_cost_usd is not None:
        bound = sum(client.upper_bound_usd(r, r.model or client.model, batch=True) * r.n for r in todo.values())
        left = client.options.max_cost_usd - client.spent_usd
        if bound > left:
            raise BudgetExceeded(f"--max-cost-usd {client.options.max_cost_usd:g}: this batch may cost up to "
                                 f"${bound:.4f}, ${left:.4f} left; nothing submitted")
    keys = list(todo)
    paths: list[Path] = []
    for start in range(0, len(keys), max_batch):
        chunk = keys[start:start + max_batch]
        job = BatchJob(job_id=time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8], spec=client.spec,
                       model=client.model, base_url=client.provider.base_url,
                       cache_path=str(client.cache.path) if client.cache is not None else None,
                       requests={k: todo[k] for k in chunk})
        items: list[tuple[str, ChatRequest]] = []
        for key in chunk:
            req = todo[key]
            samples = 1 if client.provider.supports_n else req.n
            one = req if client.provider.supports_n else req.model_copy(update={"n": 1})
            for s in range(samples):
                cid = _custom_id(key, s, samples)
                job.items[cid] = (key, s)
                items.append((cid, one.model_copy(update={"model": req.model or client.model})))
        path = Path(job_dir) / f"{job.job_id}.batch.json"
        save_job(job, path)
        try:
            job.provider_batch_id = await client.provider.submit_batch(items, client.model)
        except LLMError as err:
            job.status, job.error = "failed", f"submit failed: {err.message}"
            save_job(job, path)
            raise LLMError(f"{path}: {job.error}", status=err.status) from err
        job.status, job.submitted_at = "submitted", _now()
        save_job(job, path)
        paths.append(path)
    return paths


async def refresh_job(path: Path, client: LLMClient | None = None) -> BatchJob:
    """Ask the provider where a submitted batch stands and record it in the job file."""
    job = load_job(path)
    if job.status != "submitted" or not job.provider_batch_id:
        return job
    state = await client_for(job, client).provider.batch_state(job.provider_batch_id)
    job.last_checked_at, job.counts = _now(), state.counts
    if state.status != "in_progress":
        job.status = "ended" if state.status == "ended" else state.status  # type: ignore[assignment]
        job.ended_at = _now()
    save_job(job, path)
    return job


class CollectResult(BaseModel):
    """What one `collect` did to one job file."""

    path: str
    status: str
    stored: int = 0
    errored: int = 0


async def collect_job(path: Path, client: LLMClient | None = None) -> CollectResult:
    """Download an ended batch's results into the request cache (batch prices); record item errors.
    Expired and canceled batches give what finished. A job still in progress is left as it is."""
    job = await refresh_job(path, client)
    if job.status not in ("ended", "expired", "canceled"):
        return CollectResult(path=str(path), status=job.status, stored=job.stored, errored=len(job.errors))
    llm = client_for(job, client)
    try:
        rows = await llm.provider.batch_results(job.provider_batch_id or "")
    except LLMError as err:
        if job.status == "ended":
            raise
        rows = []  # an expired or canceled batch may have no results at all
        job.error = f"no results: {err.message}"
    samples: dict[str, dict[int, ProviderResult]] = {}
    for cid, outcome in rows:
        if cid not in job.items:
            continue
        key, sample = job.items[cid]
        if isinstance(outcome, LLMError):
            job.errors[key] = outcome.message
        else:
            samples.setdefault(key, {})[sample] = outcome
    stored = 0
    for key, req in job.requests.items():
        got = samples.get(key, {})
        want = 1 if llm.provider.supports_n else req.n
        if key in job.errors or len(got) < want:
            job.errors.setdefault(key, f"{len(got)} of {want} samples came back")
            continue
        model = req.model or job.model
        results = [got[i] for i in sorted(got)]
        completion = llm.combine(model, results, 0.0, batch=True)
        if llm.cache is not None:
            llm.cache.put(key, llm.provider.cache_name, model, req, completion)
        llm.add_spent(completion.usage.cost_usd)
        stored += 1
    job.stored, job.status, job.collected_at = stored, "collected", _now()
    save_job(job, path)
    return CollectResult(path=str(path), status=job.status, stored=stored, errored=len(job.errors))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run for the CLI: also closes the HTTP connections the loop opened."""

    async def main() -> T:
        try:
            return await coro
        finally:
            await _close_loop_clients()

    return asyncio.run(main())


_OPENED: list[LLMClient] = []


async def _close_loop_clients() -> None:
    while _OPENED:
        await _OPENED.pop().aclose()
