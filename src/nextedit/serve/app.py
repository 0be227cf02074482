"""The FastAPI application: /v1/predict, /v1/events, /metrics, /dashboard, /login and /admin/* (see docs/serving.md)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nextedit import patch as patchlib
from nextedit.languages import language_name
from nextedit.metrics.kept import kept_rate
from nextedit.record import Example, Snapshot
from nextedit.serve.arms import assign_arm, shadow_arms
from nextedit.serve.backends import BackendCancelled, BackendPool, BackendResult
from nextedit.serve.cancel import InflightRegistry
from nextedit.serve.config import ArmConfig, ServeConfig, ServeConfigError, load_config
from nextedit.serve.coordinator import Coordinator, RateLimited
from nextedit.serve.edits import char_edits
from nextedit.serve.metrics import ServeMetrics
from nextedit.serve.request_ids import RequestIds
from nextedit.serve.shared import open_shared, shared_url
from nextedit.serve.store import EventStore, open_store, utc_now

log = logging.getLogger("nextedit.serve")

M = TypeVar("M", bound=BaseModel)
REASONS = ("empty", "timeout", "parse_failed", "filtered", "cancelled", "error")
#: Locations an answer carries at most.
MAX_LOCATIONS = 10


class HTTPProblem(Exception):
    """An error answered as JSON {"error": message} with a 4xx status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class PredictRequest(BaseModel):
    """Body of POST /v1/predict."""

    model_config = ConfigDict(extra="ignore")
    snapshot: Snapshot
    client_id: str = Field(min_length=1, max_length=256)
    user_id: str = Field(min_length=1, max_length=256)
    arm: str | None = None
    #: The client may store code from this request (the user consented and the repository is open source).
    collectable: bool = False
    open_source: bool = False
    #: Document offset of snapshot.text[0], and {repo, revision, license}: kept with collectable requests.
    document_offset: int = Field(default=0, ge=0)
    source: dict[str, Any] | None = None
    trigger: str | None = Field(default=None, max_length=64)


class EventRequest(BaseModel):
    """Body of POST /v1/events."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["shown", "accepted", "rejected", "settled", "skipped"]
    #: Required for every type but `skipped` (attempts that never got a prediction have none to name).
    request_id: str | None = Field(default=None, min_length=1, max_length=128)
    client_id: str | None = Field(default=None, max_length=256)
    user_id: str | None = Field(default=None, max_length=256)
    arm: str | None = Field(default=None, max_length=128)
    model_version: str | None = Field(default=None, max_length=256)
    reason: str | None = Field(default=None, max_length=128)
    settled_text: str | None = None
    quiet_s: float | None = Field(default=None, ge=0)
    collectable: bool = False
    syntax_errors_before: int | None = Field(default=None, ge=0)
    syntax_errors_after: int | None = Field(default=None, ge=0)
    at: str | None = Field(default=None, max_length=64)
    #: An `accepted` event for a partial accept: the user took the next word or line of the prediction.
    partial: Literal["word", "line"] | None = None
    #: A `skipped` event: attempts without a prediction per reason decided in the editor.
    counts: dict[str, int] | None = None
    #: The event is about the prediction's jump (its `locations[0]`, outside the offered edit), not its edit.
    jump: bool | None = None


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def parse_body(model: type[M], body: bytes) -> M:
    """Validate a JSON body; malformed JSON is a 400, a bad field a 422 naming the field."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(400, f"malformed JSON body ({exc})") from None
    if not isinstance(data, dict):
        raise HTTPProblem(422, f"the body must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        msg = first["msg"].removeprefix("Value error, ")
        raise HTTPProblem(422, f"field {_field(tuple(first['loc']))}: {msg}") from None


class BodyLimit:
    """ASGI middleware answering 413 when a request body exceeds `limit` bytes (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _send_json(send, 413, {"error": f"request body over the limit of {self.limit} bytes"})
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPProblem(413, f"request body over the limit of {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


async def _send_json(send: Send, status: int, data: Any) -> None:
    body = orjson.dumps(data)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


#: Pages are static HTML with inline styles: no script may run, nothing loads from elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")


def html_response(html: str, status: int = 200) -> Response:
    """An HTML page with the Content-Security-Policy and companion headers."""
    return HTMLResponse(html, status_code=status, headers={
        "content-security-policy": CONTENT_SECURITY_POLICY, "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer", "x-frame-options": "DENY", "cache-control": "no-store"})


class RecentPredictions:
    """Live predictions remembered for a while (in memory only), so feedback events can be joined
    with the arm and the predicted region (kept rate) even when no code may be stored."""

    def __init__(self, ttl_s: float, max_items: int = 200_000) -> None:
        self.ttl_s, self.max_items = ttl_s, max_items
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def put(self, request_id: str, info: dict[str, Any]) -> None:
        """Remember a prediction."""
        self._items[request_id] = (time.monotonic(), info)
        self._items.move_to_end(request_id)
        self._expire()

    def get(self, request_id: str) -> dict[str, Any] | None:
        """A remembered prediction, or None when unknown or expired."""
        self._expire()
        item = self._items.get(request_id)
        return item[1] if item else None

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl_s
        while self._items and (len(self._items) > self.max_items or next(iter(self._items.values()))[0] < cutoff):
            self._items.popitem(last=False)


class ServerState:
    """Everything a running server holds: config, backends, store, in-flight requests, metrics."""

    def __init__(self, config: ServeConfig, *, config_path: Path | None = None,
                 store: EventStore | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.backends = BackendPool()
        self.backends.update(config.arms)
        self.store = store or open_store(config.store)
        self.inflight = InflightRegistry()
        self.coordinator = Coordinator(open_shared(shared_url(config.shared, self.store.url)), self.inflight,
                                       config_path=config_path, reload=self.reload)
        self.metrics = ServeMetrics()
        self.recent = RecentPredictions(config.remember_s)
        self.ids = RequestIds(config.auth.id_key())
        self.tasks: set[asyncio.Task[Any]] = set()
        self.reloads = 0

    def reload(self) -> ServeConfig:
        """Re-read the config file and switch arms and shares without a restart."""
        if self.config_path is None:
            raise ServeConfigError("this server was started without a config file; nothing to reload")
        fresh = load_config(self.config_path)
        changed = [k for k in ("store", "shared", "host", "port", "max_body_bytes") if getattr(fresh, k) != getattr(self.config, k)]
        if changed:
            raise ServeConfigError(f"{self.config_path}: {', '.join(changed)} cannot change on reload; restart the server")
        self.backends.update(fresh.arms)
        if fresh.auth.id_key() != self.config.auth.id_key():
            self.ids = RequestIds(fresh.auth.id_key())  # older ids are still found in memory or the store
        self.config = fresh
        self.recent.ttl_s = fresh.remember_s
        self.reloads += 1
        return fresh

    def spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def admit(state: ServerState, request: Request, user_id: str | None = None) -> None:
    """429 when the request is over a configured rate limit ([limits], counted across processes)."""
    try:
        await state.coordinator.admit(state.config.limits, _bearer(request), user_id)
    except RateLimited as exc:
        raise HTTPProblem(429, str(exc), {"retry-after": str(max(1, round(exc.retry_after_s)))}) from None


def require_api_key(state: ServerState, request: Request) -> None:
    """401 unless the request carries one of the configured API keys."""
    token = _bearer(request)
    keys = state.config.auth.keys()
    if not keys:
        raise HTTPProblem(401, "no API keys are configured on this server ([auth] api_keys); every request is refused")
    if token is None:
        raise HTTPProblem(401, "missing API key: send 'Authorization: Bearer <key>'")
    if not any(hmac.compare_digest(token, k) for k in keys):
        raise HTTPProblem(401, "invalid API key")


ADMIN_COOKIE = "nextedit_admin"


def admin_session(admin_token: str) -> str:
    """The admin cookie's value: derived from the token (the token itself never goes into a cookie)."""
    return hmac.new(admin_token.encode("utf-8"), b"nextedit dashboard session", hashlib.sha256).hexdigest()


def require_admin(state: ServerState, request: Request, *, cookie: bool = False) -> None:
    """401/403 unless the request carries the admin token in its Authorization header, or (for the
    pages a browser opens, `cookie=True`) the HttpOnly session cookie set by POST /login. A token
    in the URL is never accepted: URLs end up in logs, history and scripts' reach."""
    admin = state.config.auth.admin()
    if not admin:
        raise HTTPProblem(403, "no admin token is configured ([auth] admin_token); admin pages are disabled")
    token = _bearer(request)
    if token is None and cookie:
        session = request.cookies.get(ADMIN_COOKIE)
        if session is not None:
            if hmac.compare_digest(session, admin_session(admin)):
                return
            raise HTTPProblem(401, "the admin session has expired or the admin token changed: log in again at /login")
    if token is None:
        how = " or log in at /login" if cookie else ""
        raise HTTPProblem(401, f"missing admin token: send 'Authorization: Bearer <admin token>'{how}")
    if not hmac.compare_digest(token, admin):
        raise HTTPProblem(403, "invalid admin token")


def _outcome(result: BackendResult, snap: Snapshot) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """(reason, detail, prediction) for a finished backend call."""
    if result.error:
        return "parse_failed", result.error[:300], None
    try:
        if not result.patch or patchlib.is_empty(result.patch):
            return "empty", None, None
    except patchlib.PatchError as exc:
        return "parse_failed", f"the backend's patch does not parse: {exc}"[:300], None
    editable = snap.editable or (0, len(snap.text))
    try:
        before, after = patchlib.to_region(result.patch, snap.text, editable, start_line=snap.start_line)
    except patchlib.PatchError as exc:
        return "filtered", str(exc)[:300], None
    if before == after:
        return "empty", None, None
    new_text = snap.text[:editable[0]] + after + snap.text[editable[1]:]
    cursor = result.cursor if result.cursor is not None and 0 <= result.cursor <= len(new_text) else None
    return None, None, {
        "patch": result.patch,
        "edits": char_edits(before, after, offset=editable[0]),
        "cursor": cursor,
        "_before": before,
        "_after": after,
    }


def _locations(result: BackendResult | None) -> list[dict[str, Any]]:
    """The answer's `locations`: where the predictor expects the next edit (path relative to the workspace
    root, 0-based lines [start_line, end_line), the edit there as a hunk or None, score, reason), best first."""
    if result is None or result.error:
        return []
    return [loc.model_dump(mode="json") for loc in result.locations[:MAX_LOCATIONS]]


def _reversal(snap: Snapshot, after: str) -> float | None:
    from nextedit.metrics.reversal import reversal_ratio

    start, end = snap.editable or (0, len(snap.text))
    predicted = snap.text[:start] + after + snap.text[end:]
    try:
        return round(reversal_ratio(snap.text, predicted, snap.history, path=snap.path,
                                    start_line=snap.start_line), 4)
    except Exception:  # noqa: BLE001 - a metric must never fail logging
        return None


async def run_backend(state: ServerState, arm: ArmConfig, example: Example, cancel: threading.Event,
                      superseded: asyncio.Future[str] | None, deadline: float) -> tuple[BackendResult | None, str | None, str | None]:
    """Run one arm's backend under the deadline; (result, reason, detail) where reason is set on no result."""
    backend = state.backends.by_arm[arm.name]
    if backend.inline:  # a sub-millisecond baseline: call it now, no task and no loop round trip
        try:
            return await backend.predict(example, cancel), None, None
        except Exception as exc:  # noqa: BLE001 - a backend failure is an answer, not a 500
            return None, "error", f"{type(exc).__name__}: {str(exc)[:200]}"
    task = asyncio.ensure_future(backend.predict(example, cancel))
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    waiters: set[asyncio.Future[Any]] = {task}
    if superseded is not None:
        waiters.add(superseded)
    remaining = max(0.0, deadline - time.perf_counter())
    done, _ = await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        try:
            return task.result(), None, None
        except BackendCancelled:
            return None, "cancelled", "superseded by a newer request"
        except Exception as exc:  # noqa: BLE001 - a backend failure is an answer, not a 500
            log.warning("backend of arm %s failed: %s", arm.name, type(exc).__name__)
            return None, "error", f"{type(exc).__name__}: {str(exc)[:200]}"
    cancel.set()
    task.cancel()
    if superseded is not None and superseded in done:
        return None, "cancelled", f"superseded by request {superseded.result()}"
    return None, "timeout", f"no answer within {state.config.deadline_ms:g} ms"


def _predicted_event(state: ServerState, req: PredictRequest, request_id: str, arm: ArmConfig, model_version: str,
                     reason: str | None, detail: str | None, prediction: dict[str, Any] | None,
                     result: BackendResult | None, timing: dict[str, float], *, kind: str = "predicted",
                     live_arm: str | None = None) -> dict[str, Any]:
    snap = req.snapshot
    event: dict[str, Any] = {
        "type": kind, "at": utc_now(), "request_id": request_id, "client_id": req.client_id,
        "user_id": req.user_id, "arm": arm.name, "model_version": model_version,
        # The detail can quote model output (a patch line that does not parse): code, so kept only with consent.
        "outcome": reason or "ok", "reason": reason, "detail": detail if req.collectable else None,
        "trigger": req.trigger,
        "collectable": req.collectable, "language": language_name(snap.path),
        "deadline_ms": state.config.deadline_ms, **timing,
        "input_tokens": result.input_tokens if result else 0,
        "output_tokens": result.output_tokens if result else 0,
        "edit_count": len(prediction["edits"]) if prediction else 0,
        "edit_chars": sum(max(e["end"] - e["start"], len(e["text"])) for e in prediction["edits"]) if prediction else 0,
    }
    if locations := _locations(result):
        event["locations"] = len(locations)
    if live_arm:
        event["live_arm"] = live_arm
    if prediction is not None:
        event["reversal_ratio"] = _reversal(snap, prediction["_after"])
    if req.collectable:
        event.update(stored_code(state, snap, prediction, raw=result.raw if result is not None else None,
                                 detail=detail))
    return event


def stored_code(state: ServerState, snap: Snapshot, prediction: dict[str, Any] | None, *, raw: str | None = None,
                detail: str | None = None) -> dict[str, Any]:
    """The code a stored row keeps (snapshot, patch, cursor, regions, raw answer, detail), with secrets
    replaced by placeholders first unless `[privacy] scrub = false` (one Scrubber per row)."""
    out: dict[str, Any] = {"snapshot": snap.model_dump(mode="json")}
    if prediction is not None:
        out.update(patch=prediction["patch"], cursor=prediction["cursor"],
                   region_before=prediction["_before"], region_after=prediction["_after"])
    if raw is not None:
        out["raw"] = raw
    if detail is not None:
        out["detail"] = detail
    if not state.config.privacy.scrub:
        return out
    from nextedit.privacy.records import learn_snapshot, scrub_patch, scrub_snapshot
    from nextedit.privacy.scrub import Scrubber

    scrubber = Scrubber(entropy=state.config.privacy.entropy)
    learn_snapshot(scrubber, snap)
    clean = scrub_snapshot(scrubber, snap)
    out["snapshot"] = clean.model_dump(mode="json")
    if prediction is not None:
        out["patch"], out["cursor"] = scrub_patch(scrubber, prediction["patch"], snap, clean.text, prediction["cursor"])
        out["region_before"] = scrubber.scrub(prediction["_before"], path=snap.path)
        out["region_after"] = scrubber.scrub(prediction["_after"], path=snap.path)
    for key in ("raw", "detail"):
        if out.get(key):
            out[key] = scrubber.scrub(out[key], path=snap.path)
    out["secrets_scrubbed"] = scrubber.count
    return out


def _request_trace(state: ServerState, req: PredictRequest, at: str, request_id: str, arm: str, model_version: str,
                   reason: str | None, prediction: dict[str, Any] | None) -> dict[str, Any]:
    """The collectable request in the trace format of docs/traces.md (read by `nextedit import traces`),
    its code scrubbed of secrets (see `stored_code`)."""
    code = stored_code(state, req.snapshot, prediction)
    trace: dict[str, Any] = {"at": at, "request_id": request_id, "client_id": req.client_id, "user_id": req.user_id,
                             "arm": arm, "model_version": model_version, "reason": reason,
                             "collectable": req.collectable, "trigger": req.trigger}
    trace.update(type="request", snapshot=code["snapshot"], open_source=req.open_source,
                 prediction=None if prediction is None else {"patch": code["patch"], "cursor": code["cursor"]},
                 document_offset=req.document_offset)
    if "secrets_scrubbed" in code:
        trace["secrets_scrubbed"] = code["secrets_scrubbed"]
    if req.source:
        trace["source"] = req.source
    return trace


def _record_metrics(state: ServerState, arm: str, reason: str | None, timing: dict[str, float],
                    result: BackendResult | None) -> None:
    m = state.metrics
    m.requests.labels(arm, reason or "ok").inc()
    m.latency.labels(arm).observe(timing["total_ms"] / 1000)
    if result is not None:
        m.backend_latency.labels(arm).observe(result.backend_ms / 1000)
        if result.upstream_ms is not None:
            m.upstream_latency.labels(arm).observe(result.upstream_ms / 1000)
        m.tokens.labels(arm, "input").inc(result.input_tokens)
        m.tokens.labels(arm, "output").inc(result.output_tokens)
    if reason == "cancelled":
        m.cancellations.labels(arm).inc()


async def _run_shadow(state: ServerState, req: PredictRequest, request_id: str, arm: ArmConfig,
                      live: asyncio.Future[dict[str, Any] | None], live_arm: str) -> None:
    """Run a shadow arm on the request; log its outcome (and agreement with the live arm), return nothing."""
    t0 = time.perf_counter()
    backend = state.backends.by_arm.get(arm.name)
    if backend is None:
        return
    example = Example(id=request_id, snapshot=req.snapshot)
    cancel = threading.Event()
    result, reason, detail = await run_backend(state, arm, example, cancel, None, t0 + state.config.deadline_ms / 1000)
    prediction = None
    if result is not None:
        reason, detail, prediction = await asyncio.to_thread(_outcome, result, req.snapshot)
    timing = {"total_ms": round((time.perf_counter() - t0) * 1000, 3),
              "backend_ms": round(result.backend_ms, 3) if result else None,
              "upstream_ms": round(result.upstream_ms, 3) if result and result.upstream_ms is not None else None}
    live_prediction = await live
    event = _predicted_event(state, req, request_id, arm, backend.model_version, reason, detail, prediction,
                             result, timing, kind="shadow", live_arm=live_arm)
    live_after = live_prediction["_after"] if live_prediction else None
    shadow_after = prediction["_after"] if prediction else None
    event["agrees_with_live"] = live_after == shadow_after
    state.metrics.shadow.labels(arm.name, reason or "ok").inc()
    state.store.submit(event, "telemetry")


async def handle_predict(state: ServerState, request: Request) -> Response:
    """POST /v1/predict: the predicted edit, or no prediction with a reason code."""
    t0 = time.perf_counter()
    require_api_key(state, request)
    req = parse_body(PredictRequest, await request.body())
    await admit(state, request, req.user_id)
    config = state.config
    if req.arm is not None and (config.arm(req.arm) is None or config.arm(req.arm).shadow):
        req.arm = None  # an unknown or shadow preference falls back to assignment
    arm = assign_arm(config, req.user_id, req.arm)
    backend = state.backends.by_arm[arm.name]
    request_id = state.ids.issue(arm.name)
    deadline = t0 + config.deadline_ms / 1000
    snap = req.snapshot
    live_done: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
    for shadow in shadow_arms(config, request_id, arm):
        state.spawn(_run_shadow(state, req, request_id, shadow, live_done, arm.name))
    entry = state.coordinator.start_request(req.client_id, snap.path, request_id)
    state.metrics.inflight.inc()
    prediction = None
    try:
        t_parsed = time.perf_counter()
        example = Example(id=request_id, snapshot=snap)
        result, reason, detail = await run_backend(state, arm, example, entry.cancel, entry.superseded, deadline)
        t_backend = time.perf_counter()
        if result is not None:
            reason, detail, prediction = _outcome(result, snap)
            if prediction is not None and time.perf_counter() > deadline:
                reason, detail, prediction = "timeout", f"answer ready after the {config.deadline_ms:g} ms deadline", None
    finally:
        state.coordinator.finish_request(req.client_id, snap.path, entry)
        state.metrics.inflight.dec()
        if not live_done.done():
            live_done.set_result(prediction)  # shadows compare against it (None when this request failed)
    t_end = time.perf_counter()
    timing = {
        "total_ms": round((t_end - t0) * 1000, 3),
        "parse_ms": round((t_parsed - t0) * 1000, 3),
        "queue_ms": round(result.queue_ms, 3) if result else None,
        "backend_ms": round(result.backend_ms, 3) if result else round((t_backend - t_parsed) * 1000, 3),
        "upstream_ms": round(result.upstream_ms, 3) if result and result.upstream_ms is not None else None,
        "post_ms": round((t_end - t_backend) * 1000, 3),
    }
    _record_metrics(state, arm.name, reason, timing, result)
    info = {"arm": arm.name, "model_version": backend.model_version, "user_id": req.user_id,
            "client_id": req.client_id, "collectable": req.collectable, "path": snap.path}
    if prediction is not None:
        info.update(before=prediction["_before"], after=prediction["_after"])
    state.recent.put(request_id, info)
    await state.coordinator.remember(request_id, info, config.remember_s)  # other workers join events with it
    body = {
        "request_id": request_id, "model_version": backend.model_version, "arm": arm.name,
        "prediction": None if prediction is None else {k: v for k, v in prediction.items() if not k.startswith("_")},
        "reason": reason, "detail": detail, "timing": timing,
        "tokens": {"input": result.input_tokens if result else 0, "output": result.output_tokens if result else 0},
        "locations": _locations(result),
    }

    at = utc_now()

    def telemetry() -> dict[str, Any]:  # built on the store's writer thread, off the latency path
        event = _predicted_event(state, req, request_id, arm, backend.model_version, reason, detail,
                                 prediction, result, timing)
        event["at"] = at
        return event

    state.store.submit(telemetry, "telemetry")
    if req.collectable:
        state.store.submit(lambda: _request_trace(state, req, at, request_id, arm.name, backend.model_version,
                                                  reason, prediction), "requests")
    return _json(body)


def _kept(info: dict[str, Any] | None, settled_text: str) -> dict[str, Any] | None:
    if not info or "before" not in info or "after" not in info:
        return None
    kr = kept_rate(info["before"], info["after"], settled_text)
    return {
        "kept_rate": round(kr.kept_rate, 6), "recall_rate": round(kr.recall_rate, 6),
        "kept_bytes": kr.kept_chars + kr.correctly_deleted_chars,
        "candidate_bytes": kr.candidate_new_chars + kr.candidate_deleted_chars,
        "reference_bytes": kr.reference_new_chars + kr.reference_deleted_chars,
        "discarded_bytes": kr.discarded_chars, "signature": kr.signature,
    }


def _lookup_stored(state: ServerState, request_id: str) -> dict[str, Any] | None:
    rows = state.store.by_request(request_id, "telemetry", "predicted")
    if not rows:
        return None
    p = rows[-1].payload
    info = {k: p.get(k) for k in ("arm", "model_version", "user_id", "client_id", "collectable")}
    if p.get("region_before") is not None and p.get("region_after") is not None:
        info.update(before=p["region_before"], after=p["region_after"])
    if isinstance(p.get("snapshot"), dict):
        info["path"] = p["snapshot"].get("path")
    return info


async def issuer_of(state: ServerState, request_id: str, *, need_regions: bool = False) -> dict[str, Any] | None:
    """What the server knows of a request it issued (arm, model version, user, ...), or None when it
    did not issue it: from memory, else from a signed id (arm only), else from the store."""
    info = state.recent.get(request_id) or await state.coordinator.recall(request_id)
    if info is not None:
        return info
    signed = state.ids.arm_of(request_id, [a.name for a in state.config.arms])
    if signed is None or need_regions:
        info = await asyncio.to_thread(_lookup_stored, state, request_id)
    if info is None and signed is not None:
        info = {"arm": signed, "model_version": state.backends.by_arm[signed].model_version}
    return info


async def handle_event(state: ServerState, request: Request) -> Response:
    """POST /v1/events: store a feedback event durably, then acknowledge with its id."""
    require_api_key(state, request)
    ev = parse_body(EventRequest, await request.body())
    await admit(state, request)
    if ev.type == "skipped":
        return await _store_skipped(state, ev)
    if ev.request_id is None:
        raise HTTPProblem(422, "field request_id: required (the request_id from the /v1/predict answer)")
    if ev.type == "settled" and ev.settled_text is None:
        raise HTTPProblem(422, "field settled_text: required for a settled event")
    if ev.type == "rejected" and not ev.reason:
        ev.reason = "rejected"
    info = await issuer_of(state, ev.request_id, need_regions=ev.type == "settled")
    if info is None:
        state.metrics.events_rejected.labels("unknown_request").inc()
        raise HTTPProblem(422, f"field request_id: {ev.request_id[:80]!r} is not a request this server issued "
                               "(or it was forgotten); send the request_id from the /v1/predict answer")
    payload = ev.model_dump()
    payload["received_at"] = utc_now()
    payload["at"] = ev.at or payload["received_at"]
    # The arm and model version are the server's record of who served the request, never the client's word.
    payload["arm"], payload["model_version"] = info.get("arm"), info.get("model_version")
    for key in ("user_id", "client_id"):
        if info.get(key) is not None:
            payload[key] = info[key]
    payload["known_request"] = True
    if ev.type == "settled":
        payload["kept"] = await asyncio.to_thread(_kept, info, ev.settled_text or "")
        payload["settled_chars"] = len(ev.settled_text or "")
    table = "events"
    if ev.type == "settled" and not ev.collectable:
        payload["settled_text"] = None  # no code without consent; the kept rate is all the server keeps
        table = "telemetry"
    elif ev.type == "settled" and state.config.privacy.scrub and ev.settled_text:
        from nextedit.privacy.scrub import Scrubber

        scrubber = Scrubber(entropy=state.config.privacy.entropy)
        payload["settled_text"] = await asyncio.to_thread(scrubber.scrub, ev.settled_text, path=info.get("path"))
        payload["secrets_scrubbed"] = scrubber.count
    payload = {k: v for k, v in payload.items() if v is not None or k in ("reason", "arm", "model_version")}
    event_id = await state.store.append(payload, table)
    arm_label = payload["arm"] if state.config.arm(str(payload.get("arm"))) is not None else "other"
    state.metrics.events.labels(ev.type, arm_label).inc()
    out: dict[str, Any] = {"ok": True, "event_id": event_id, "table": table, "arm": payload.get("arm"),
                           "model_version": payload.get("model_version")}
    if ev.type == "settled":
        out["kept"] = payload.get("kept")  # None when the request had no prediction
    return _json(out)


async def _store_skipped(state: ServerState, ev: EventRequest) -> Response:
    """POST /v1/events with type `skipped`: counts per client-side reason, stored in telemetry (no code)."""
    from nextedit.serve.skipped import check_counts, skipped_payload

    problem = check_counts(ev.counts)
    if problem is not None:
        raise HTTPProblem(422, problem)
    payload = skipped_payload(ev.model_dump(), utc_now())
    event_id = await state.store.append(payload, "telemetry")
    for reason, n in (ev.counts or {}).items():
        state.metrics.skipped.labels(reason).inc(n)
    return _json({"ok": True, "event_id": event_id, "table": "telemetry"})


def create_app(config: ServeConfig, *, config_path: str | Path | None = None,
               store: EventStore | None = None) -> FastAPI:
    """Build the server app for a config (`config_path` enables /admin/reload)."""
    state = ServerState(config, config_path=Path(config_path) if config_path else None, store=store)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        state.store.start()
        await state.coordinator.start()
        try:
            yield
        finally:
            for task in list(state.tasks):
                task.cancel()
            await state.coordinator.close()
            state.backends.close()
            await asyncio.to_thread(state.store.close)

    app = FastAPI(title="nextedit serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.nextedit = state
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)

    @app.exception_handler(HTTPProblem)
    async def _problem(_request: Request, exc: HTTPProblem) -> Response:
        state.metrics.rejected_http.labels(str(exc.status)).inc()
        resp = _json({"error": exc.message}, status=exc.status)
        resp.headers.update(exc.headers or {})
        return resp

    @app.post("/v1/predict")
    async def predict(request: Request) -> Response:
        return await handle_predict(state, request)

    @app.post("/v1/events")
    async def events(request: Request) -> Response:
        return await handle_event(state, request)

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"ok": True, "arms": [a.name for a in state.config.arms], "reloads": state.reloads,
                      "pid": os.getpid()})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/admin/reload")
    async def reload(request: Request) -> Response:
        require_admin(state, request)
        try:
            fresh = await asyncio.to_thread(state.reload)
        except (ServeConfigError, Exception) as exc:  # noqa: BLE001 - the old config stays live
            raise HTTPProblem(422, f"reload refused, old config kept: {exc}") from None
        await state.coordinator.publish_config()  # the other workers and replicas reload too
        return _json({"ok": True, "arms": [a.model_dump() for a in fresh.arms]})

    @app.get("/admin/config")
    async def show_config(request: Request) -> Response:
        require_admin(state, request, cookie=True)
        return _json({"deadline_ms": state.config.deadline_ms, "arms": [
            {**a.model_dump(), "model_version": state.backends.by_arm[a.name].model_version}
            for a in state.config.arms]})

    @app.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        require_admin(state, request, cookie=True)
        from nextedit.serve.dashboard import render_dashboard

        since = request.query_params.get("since")
        html = await asyncio.to_thread(render_dashboard, state.store, state.config, since)
        return html_response(html)

    @app.get("/login")
    async def login_page() -> Response:
        from nextedit.serve.dashboard import render_login

        return html_response(render_login(None))

    @app.post("/login")
    async def login(request: Request) -> Response:
        from urllib.parse import parse_qs

        from nextedit.serve.dashboard import render_login

        admin = state.config.auth.admin()
        if not admin:
            raise HTTPProblem(403, "no admin token is configured ([auth] admin_token); admin pages are disabled")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        if not hmac.compare_digest(token, admin):
            state.metrics.rejected_http.labels("403").inc()
            return html_response(render_login("invalid admin token"), status=403)
        resp = Response(status_code=303, headers={"location": "/dashboard"})
        resp.set_cookie(ADMIN_COOKIE, admin_session(admin), httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https", max_age=12 * 3600)
        return resp

    @app.post("/logout")
    async def logout() -> Response:
        resp = Response(status_code=303, headers={"location": "/login"})
        resp.delete_cookie(ADMIN_COOKIE, path="/")
        return resp

    from nextedit.serve.openai_api import add_openai_routes

    add_openai_routes(app, state)
    return app
