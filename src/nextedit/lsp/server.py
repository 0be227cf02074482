"""`nextedit lsp`: a language server (pygls, stdio) that asks `nextedit serve` for next-edit predictions
as the user types and offers them as inline completions, an "Apply predicted edit" code action and
hint diagnostics at the target lines, and a predicted edit elsewhere as "Go to next predicted edit";
partial accept, jumps, back-off, excluded files and a reason for every attempt without a prediction come
from the modules beside it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.capabilities import ServerCapabilitiesBuilder
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path

import nextedit
from nextedit.context.editor import EditorContext, load_stage_configs
from nextedit.locations import same_path
from nextedit.lsp.client import ServeClient
from nextedit.lsp.documents import Document, Encoding, PositionError
from nextedit.lsp.events import EventReporter
from nextedit.lsp.hints import hint_diagnostics
from nextedit.lsp.history import EditHistory
from nextedit.lsp.jump import (
    GOTO_COMMAND,
    GOTO_TITLE,
    Jump,
    JumpError,
    Target,
    line_range,
    pick,
    read_file,
    resolve,
    workspace_file,
)
from nextedit.lsp.offer import Offer
from nextedit.lsp.pacing import Pacer
from nextedit.lsp.partial import Part, partial_edit
from nextedit.lsp.settings import Settings
from nextedit.lsp.snapshot import (
    Edit,
    ExcerptError,
    PredictionShapeError,
    build_snapshot,
    prediction_edits,
    span,
    to_document,
)
from nextedit.lsp.status import StatusReporter, flush, flush_loop
from nextedit.lsp.workspace import workspace_source
from nextedit.pipeline.registry import ConfigError
from nextedit.privacy.exclude import ExcludeList
from nextedit.record import Snapshot
from nextedit.settle.tracker import SettleTracker

log = logging.getLogger("nextedit.lsp")

ACCEPT_COMMAND = "nextedit.accept"
ACCEPT_WORD_COMMAND = "nextedit.acceptWord"
ACCEPT_LINE_COMMAND = "nextedit.acceptLine"
DISMISS_COMMAND = "nextedit.dismiss"
ACTION_TITLE = "Apply predicted edit"
#: Triggers that pause during the back-off (an explicit request always goes through).
AUTOMATIC = frozenset({"buffer_edit", "prediction_accepted", "cursor"})
_LEVELS = {logging.ERROR: types.MessageType.Error, logging.WARNING: types.MessageType.Warning,
           logging.INFO: types.MessageType.Info}


class _Protocol(LanguageServerProtocol):
    """pygls' protocol without its own copy of the documents: nextedit keeps them (and never raises on
    a change to an unknown document or a range outside it; those are logged)."""

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


def in_root(uri: str, root: str | None) -> bool:
    """Whether a document URI is a file inside the workspace root."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or not root:
        return False
    fs = to_fs_path(uri) or unquote(parsed.path)
    try:
        Path(fs).resolve().relative_to(Path(root).resolve())
    except (ValueError, OSError):
        return False
    return True


def document_path(uri: str, root: str | None) -> str:
    """The path sent to the server for a document: relative to the workspace root when inside it,
    else only the file name (an absolute path would tell the server the user's directory layout)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and root:
        fs = to_fs_path(uri) or unquote(parsed.path)
        try:
            return Path(fs).resolve().relative_to(Path(root).resolve()).as_posix()
        except (ValueError, OSError):
            pass
    return PurePosixPath(unquote(parsed.path or uri)).name or uri


class NexteditLanguageServer(LanguageServer):
    """The language server: documents, edit history, the current prediction and its events."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("nextedit-lsp", nextedit.__version__, protocol_cls=_Protocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.cli_settings = settings
        self.settings = settings
        self.docs: dict[str, Document] = {}
        self.encoding: Encoding = "utf-16"
        self.inline_supported = False
        self.root: str | None = None
        self.history = EditHistory(max_events=settings.history_events, grouping_s=settings.grouping_s)
        self.tracker = SettleTracker(quiet_s=settings.settle_quiet_s, ttl_s=settings.settle_ttl_s)
        self.client: ServeClient | None = None
        self.events: EventReporter | None = None
        #: The prediction offered for each document, and every prediction still waiting to settle.
        self.offers: dict[str, Offer] = {}
        self.tracked: dict[str, Offer] = {}
        #: The prediction task of each document (coalesced: one at a time) and its (version, cursor).
        self._tasks: dict[str, asyncio.Task[Offer | None]] = {}
        self._task_keys: dict[str, tuple[int, int]] = {}
        self._settle_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._hint_tasks: dict[str, asyncio.Task[None]] = {}
        #: Documents showing hint diagnostics; an edit this server asked the client to apply, per document.
        self.hinted: set[str] = set()
        self._expected: dict[str, Edit] = {}
        #: Excluded documents and the pattern that excludes each; the document last edited or asked about.
        self.exclude = ExcludeList.configured(settings.exclude, settings.exclude_extra)
        self.excluded: dict[str, str] = {}
        self.active_uri: str | None = None
        self.pacer = Pacer(settings)
        self.status = StatusReporter(self._send_status, log_line=self.notify, show=self._show_error)
        self.last_arm: str | None = None
        self.requests = 0
        #: Repository URL, revision and license of the workspace (sent only with consent).
        self.source: dict[str, str] | None = None
        #: Related code and diagnostics from the workspace (None: no workspace folder, or both off).
        self.context: EditorContext | None = None
        self._inside: dict[str, bool] = {}
        self._context_failed = False
        #: The latest prediction's jump per document, a taken jump waiting for its target to open, and whether
        #: the client can show a document (window/showDocument).
        self.jumps: dict[str, Jump] = {}
        self._pending_jumps: dict[str, tuple[Jump, Target]] = {}
        self.show_document = False

    # ------------------------------------------------------------------ logging

    def notify(self, level: int, message: str) -> None:
        """Log a message here (stderr) and in the client's log (window/logMessage); never raises."""
        log.log(level, message)
        try:
            self.window_log_message(types.LogMessageParams(type=_LEVELS.get(level, types.MessageType.Log),
                                                           message=f"nextedit: {message}"))
        except Exception as exc:  # noqa: BLE001 - no transport yet / client gone: stderr has it
            log.debug("window/logMessage not sent: %s", exc)

    def _send_status(self, method: str, params: Any) -> None:
        self.protocol.notify(method, params)

    def _show(self, kind: types.MessageType, message: str) -> None:
        try:
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        except Exception as exc:  # noqa: BLE001
            log.debug("window/showMessage not sent: %s", exc)

    def _show_info(self, message: str) -> None:
        """A message the user asked for by running a command (window/showMessage, Info)."""
        self._show(types.MessageType.Info, message)

    def _show_error(self, message: str) -> None:
        """A message the user must see once (window/showMessage), also logged."""
        log.error(message)
        self._show(types.MessageType.Error, message)

    def report_server_error(self, error: Exception, source: Any) -> None:
        """pygls errors (unparseable messages, handler failures) go to the log, not a pop-up."""
        self.notify(logging.ERROR, f"{getattr(source, '__name__', source)}: {type(error).__name__}: {error}")

    # ------------------------------------------------------------------ lifecycle

    def configure(self, params: types.InitializeParams) -> None:
        """Settings from initializationOptions, the position encoding, inline support, and the clients."""
        settings, problems = self.cli_settings.merged(params.initialization_options)
        for problem in problems:
            self.notify(logging.WARNING, problem)
        self.settings = settings
        encoding = ServerCapabilitiesBuilder.choose_position_encoding(params.capabilities)
        self.encoding = str(encoding) if str(encoding) in ("utf-8", "utf-16", "utf-32") else "utf-16"  # type: ignore[assignment]
        td = params.capabilities.text_document
        self.inline_supported = settings.inline and td is not None and td.inline_completion is not None
        self.root = params.root_path or (to_fs_path(params.root_uri) if params.root_uri else None)
        if self.root is None and params.workspace_folders:
            self.root = to_fs_path(params.workspace_folders[0].uri)
        self.history = EditHistory(max_events=settings.history_events, grouping_s=settings.grouping_s)
        self.tracker = SettleTracker(quiet_s=settings.settle_quiet_s, ttl_s=settings.settle_ttl_s)
        try:
            self.exclude = ExcludeList.configured(settings.exclude, settings.exclude_extra)
        except ValueError as exc:
            self.notify(logging.WARNING, f"initializationOptions.exclude: {exc}; the default list is used")
            self.exclude = ExcludeList.configured(None)
        self.pacer = Pacer(settings)
        window = params.capabilities.window
        if settings.progress and window is not None and window.work_done_progress:
            self.status.progress = self.work_done_progress
        self.show_document = bool(window is not None and window.show_document is not None
                                  and window.show_document.support)
        self.source = workspace_source(self.root)
        self.context = self._make_context(settings)
        self.client = ServeClient(settings.server, token=settings.token, timeout_s=settings.timeout_s,
                                  notify=self.notify, alert=self.status.alert)
        self.events = EventReporter(self.client, client_id=settings.client_id, user_id=settings.user_id,
                                    collectable=settings.collectable)
        self.start_background()
        log.info("nextedit lsp: server %s, inline completions %s, encoding %s, consent %s",
                 settings.server, "on" if self.inline_supported else "off", self.encoding,
                 settings.collectable)

    def _make_context(self, settings: Settings) -> EditorContext | None:
        if self.root is None or not (settings.context or settings.diagnostics):
            return None
        try:
            context, diagnostics = load_stage_configs(settings.context_config, settings.diagnostics_config)
        except ConfigError as exc:
            self.notify(logging.WARNING, f"{exc}; predictions are requested without related code and diagnostics")
            return None
        return EditorContext(Path(self.root), context, diagnostics, related=settings.context,
                             lint=settings.diagnostics, exclude=lambda path: self.exclude.match(path) is not None)

    def start_background(self) -> None:
        """Start the settle poller (once) and the first index of the workspace."""
        if self._settle_task is None:
            self._settle_task = asyncio.ensure_future(self._settle_loop())
        if self._flush_task is None:
            self._flush_task = asyncio.ensure_future(flush_loop(self.status, self._post_skipped))
        if self.context is not None:
            asyncio.ensure_future(self._index_workspace(self.context))

    async def _index_workspace(self, context: EditorContext) -> None:
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(context.scan)
        except Exception as exc:  # noqa: BLE001 - predictions go on without context
            self.notify(logging.WARNING, f"indexing the workspace failed: {type(exc).__name__}: {exc}")
            return
        log.info("nextedit lsp: indexed %d workspace files in %.0f ms", context.index.n_files,
                 (time.perf_counter() - t0) * 1000)

    def file_changed(self, uri: str) -> None:
        """A file was saved or changed on disk: re-index it (in a thread; the editor's text wins while open)."""
        if self.context is None or not self._in_workspace(uri):
            return
        asyncio.ensure_future(asyncio.to_thread(self.context.index.update_from_disk, document_path(uri, self.root)))

    def _in_workspace(self, uri: str) -> bool:
        found = self._inside.get(uri)
        if found is None:
            found = self._inside[uri] = in_root(uri, self.root)
        return found

    def editor_texts(self) -> dict[str, str]:
        """What the workspace index shows instead of the disk: open documents' text, and for each file the
        edit history touches, its text before the oldest of those edits."""
        texts: dict[str, str] = {}
        outside: set[str] = set()
        for d in self.docs.values():
            if d.uri in self.excluded:
                continue
            if self._in_workspace(d.uri):
                texts[d.path] = d.text
            else:
                outside.add(d.path)  # named by file name only: never mistaken for a workspace file
        texts.update((p, t) for p, t in self.history.bases().items() if p not in outside)
        return texts

    async def with_context(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with related code and diagnostics from the workspace (unchanged when off or failing)."""
        if self.context is None:
            return snapshot
        try:
            filled = await asyncio.to_thread(self.context.fill, snapshot, self.editor_texts())
        except Exception as exc:  # noqa: BLE001 - a prediction without context beats none
            if not self._context_failed:
                self._context_failed = True
                self.notify(logging.WARNING, f"related code/diagnostics failed: {type(exc).__name__}: {exc}")
            return snapshot
        self._context_failed = False
        return filled

    async def stop(self) -> None:
        """On `shutdown`: cancel work in flight, close the offers still pending (shown ones are rejected
        as `shutdown`), settle every tracked region now, and send the queued events and skip counts."""
        for task in [*self._tasks.values(), *self._hint_tasks.values()]:
            task.cancel()
        for task in (self._settle_task, self._flush_task):
            if task is not None:
                task.cancel()
        for uri in list(self.offers):
            self._drop_offer(uri, "shutdown", clear=False)
        self._report_settled(self.tracker.flush(time.monotonic()))
        flush(self.status, self._post_skipped)
        if self.events is not None:
            await self.events.drain()
            self.events.close()
        if self.client is not None:
            await self.client.aclose()

    def _post_skipped(self, counts: dict[str, int]) -> bool:
        return self.events is not None and self.events.skipped(counts, self.last_arm or self.settings.arm)

    # ------------------------------------------------------------------ documents

    def open(self, params: types.DidOpenTextDocumentParams) -> None:
        """Start keeping a document."""
        td = params.text_document
        doc = Document(td.uri, document_path(td.uri, self.root), td.text, td.version, td.language_id, self.encoding)
        self.docs[td.uri] = doc
        self.active_uri = td.uri
        pattern = self.exclude.match(doc.path, to_fs_path(td.uri) or "")
        if pattern is not None:
            self.excluded[td.uri] = pattern
            self.notify(logging.INFO, f"{doc.path} matches the exclude pattern {pattern!r}: no prediction is asked "
                                      "for it and nothing of it is sent")
        else:
            self.excluded.pop(td.uri, None)
        pending = self._pending_jumps.pop(td.uri, None)
        if pending is not None:
            self._arrive(pending[0], doc, pending[1])

    def close(self, uri: str) -> None:
        """Forget a document, its pending settle regions and its prediction."""
        self._drop_offer(uri, "closed")
        self.docs.pop(uri, None)
        self.tracker.forget_path(uri)
        for rid in [rid for rid, o in self.tracked.items() if o.uri == uri]:
            del self.tracked[rid]
        task = self._tasks.pop(uri, None)
        if task is not None:
            task.cancel()
        self._task_keys.pop(uri, None)
        self.pacer.forget(uri)
        self.excluded.pop(uri, None)
        self._expected.pop(uri, None)
        self.jumps.pop(uri, None)
        self._pending_jumps.pop(uri, None)

    def change(self, params: types.DidChangeTextDocumentParams) -> None:
        """Apply a didChange: document text, the offer's fate, edit history, settle regions, next prediction."""
        uri = params.text_document.uri
        doc = self.docs.get(uri)
        if doc is None:
            self.notify(logging.WARNING, f"didChange for {uri}, which is not open; ignored")
            return
        now = time.monotonic()
        applied = []
        for i, change in enumerate(params.content_changes):
            before = doc.text
            try:
                if isinstance(change, types.TextDocumentContentChangePartial):
                    r = change.range
                    start = doc.offset_at(r.start.line, r.start.character)
                    end = doc.offset_at(r.end.line, r.end.character)
                    if end < start:
                        start, end = end, start
                    applied_change = doc.replace(start, end, change.text)
                else:
                    applied_change = doc.replace_all(change.text)
            except PositionError as exc:
                self.notify(logging.WARNING, f"didChange {uri} v{params.text_document.version} change {i}: "
                                             f"{exc}; the document may be out of sync until it is reopened")
                continue
            if applied_change is not None:
                applied.append((before, applied_change, doc.text))
        doc.version = params.text_document.version
        if not applied:
            return
        if uri in self.excluded:  # nothing of it goes into history, settle regions or requests
            self.schedule(uri, applied[-1][1].start + len(applied[-1][1].text), self.pacer.delay_s(uri))
            return
        offer = self.offers.get(uri)
        expected = self._expected.pop(uri, None)
        own = True  # every change applies an edit this server handed out (code action, partial accept)
        for _, c, _ in applied:
            mine = expected is not None and (c.start, c.end, c.text) == (expected.start, expected.end, expected.text)
            if offer is not None:
                mine = offer.own(c) or mine
                offer.follow(c)
            own = own and mine
        accepted = False
        if offer is not None:
            fate = offer.fate(doc.text)
            if fate == "accepted":
                accepted = offer.shown is not None or own
                if accepted:
                    if self.events is not None:
                        self.events.report("accepted", offer, reason="document")
                    self.pacer.accepted()
                self._retire_offer(uri)
            elif fate == "diverged":
                self._drop_offer(uri, "typed")
        for before, c, after in applied:
            self.history.record(doc.path, before, c, after, now, predicted=accepted or own)
            self.tracker.edit(uri, c.start, c.end, c.text, now)
        self._refresh_hints(uri)
        if own and not accepted:
            return  # the client is still applying the offer: no prediction for a half-applied edit
        if not own:
            self.pacer.changed(uri, now)
            self.active_uri = uri
        last = applied[-1][1]
        self.schedule(uri, last.start + len(last.text), self.pacer.delay_s(uri),
                      "prediction_accepted" if accepted else "buffer_edit")

    def _retire_offer(self, uri: str) -> Offer | None:
        """Stop offering the prediction of `uri` (decided): its region may settle, its hints go."""
        offer = self.offers.pop(uri, None)
        if offer is not None:
            self._release(offer, time.monotonic())
        self._clear_hints(uri)
        return offer

    def _release(self, offer: Offer, now: float) -> None:
        if offer.jump:
            return  # the edit a jump led to has no region of its own: the request's region settles on its own
        for request_id in (offer.request_id, *offer.riders):
            self.tracker.release(request_id, now)

    def _drop_offer(self, uri: str, reason: str, *, clear: bool = True) -> None:
        """Withdraw the offer of `uri`; a shown one not accepted is reported rejected for `reason`."""
        offer = self.offers.pop(uri, None)
        if offer is None:
            return
        now = time.monotonic()
        self._release(offer, now)
        if clear:
            self._clear_hints(uri)
        if offer.shown is not None and "accepted" not in offer.reported:
            if self.events is not None:
                self.events.report("rejected", offer, reason=reason)
            self.pacer.rejected(reason, now)

    # ------------------------------------------------------------------ predictions

    def schedule(self, uri: str, cursor: int, delay_s: float,
                 trigger: str = "buffer_edit") -> asyncio.Task[Offer | None] | None:
        """Ask for a prediction after `delay_s`, cancelling the one in flight for the same document
        (predict requests are coalesced per document); `trigger` says why."""
        doc = self.docs.get(uri)
        if doc is None:
            return None
        task = self._tasks.get(uri)
        if task is not None and not task.done():
            task.cancel()
        self._task_keys[uri] = (doc.version, cursor)
        task = self._tasks[uri] = asyncio.ensure_future(self._predict(uri, doc.version, cursor, delay_s, trigger))
        return task

    async def _predict(self, uri: str, version: int, cursor: int, delay_s: float, trigger: str) -> Offer | None:
        try:
            return await self._request(uri, version, cursor, delay_s, trigger)
        except asyncio.CancelledError:
            self.status.cancelled(uri)
            raise
        except Exception as exc:
            log.exception("prediction request failed")
            self.notify(logging.ERROR, f"prediction request failed: {type(exc).__name__}: {exc}")
            self.status.skipped(uri, "error", f"{type(exc).__name__}: {exc}")
            return None

    async def _request(self, uri: str, version: int, cursor: int, delay_s: float, trigger: str) -> Offer | None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if uri in self.excluded:
            self.status.skipped(uri, "excluded", self.excluded[uri])
            return None
        if trigger in AUTOMATIC and self.pacer.paused(time.monotonic()):
            self.status.skipped(uri, "backoff", str(self.pacer.rejections))
            if self._task_keys.get(uri) == (version, cursor):
                del self._task_keys[uri]  # nothing was asked: an explicit request here must ask
            return None
        doc = self.docs.get(uri)
        if doc is None or doc.version != version or self.client is None:
            return None
        try:
            built = build_snapshot(doc.text, cursor, doc.path, self.history.events(),
                                   editable_tokens=self.settings.editable_tokens,
                                   context_tokens=self.settings.context_tokens)
        except (ExcerptError, ValueError) as exc:
            log.info("no prediction for %s: %s", doc.path, exc)
            self.status.skipped(uri, "too_large", str(exc))
            return None
        snapshot = await self.with_context(built.snapshot)
        doc = self.docs.get(uri)
        if doc is None or doc.version != version:
            return None
        body = {"snapshot": snapshot.model_dump(mode="json"), "client_id": self.settings.client_id,
                "user_id": self.settings.user_id, "arm": self.settings.arm,
                "collectable": self.settings.collectable, "trigger": trigger,
                "document_offset": built.offset,
                "open_source": bool(self.source and "license" in self.source)}
        if self.settings.collectable and self.source:
            body["source"] = self.source
        self.requests += 1
        self.status.started(uri)
        answer = await self.client.predict(body)
        if answer is None:
            kind, detail = self.client.last_error or ("unreachable", "no answer")
            self.status.skipped(uri, kind, detail)
            return None
        self.status.clear_alert()
        self.last_arm = answer.get("arm") or self.last_arm
        request_id = answer["request_id"]
        doc = self.docs.get(uri)
        if doc is None or doc.version != version:
            self.status.skipped(uri, "stale", request_id=request_id, visible=False)
            return None
        jump = self._take_jump(answer, doc, built.editable)
        prediction = answer.get("prediction")
        if prediction is None:
            if jump is not None:
                self.status.offered(uri, request_id, f"next edit at {jump.label}")
            else:
                self.status.skipped(uri, str(answer.get("reason") or "empty"), answer.get("detail"), request_id)
            return None
        try:
            edits = prediction_edits(prediction, built.snapshot)
        except PredictionShapeError as exc:
            self.notify(logging.WARNING, f"prediction {request_id} ignored: {exc}")
            self.status.skipped(uri, "bad_prediction", str(exc), request_id)
            return None
        if not edits:
            if jump is not None:
                self.status.offered(uri, request_id, f"next edit at {jump.label}")
            else:
                self.status.skipped(uri, "no_change", request_id=request_id)
            return None
        offer = self._offer(answer, doc, cursor, built.editable, to_document(edits, built.offset))
        self.status.offered(uri, offer.request_id, f"line {doc.position_of(offer.start)[0] + 1}")
        if self._wants_hints(offer, doc):
            self._publish_hints_later(uri, offer)
        return offer

    @staticmethod
    def _new_offer(request_id: str, model_version: str | None, arm: str | None, doc: Document, cursor: int,
                   region: tuple[int, int], edits: list[Edit], **extra: Any) -> Offer:
        """An offer of `edits` (document offsets, sorted) for `doc` as it is now."""
        whole = span(edits, doc.text)
        predicted = doc.text
        for e in reversed(edits):
            predicted = predicted[:e.start] + e.text + predicted[e.end:]
        grown = len(predicted) - len(doc.text)
        return Offer(request_id=request_id, model_version=model_version, arm=arm, uri=doc.uri, path=doc.path,
                     version=doc.version, cursor=cursor, edits=edits, start=whole.start, end=whole.end,
                     old=doc.text[whole.start:whole.end], new=whole.text, region=region,
                     region_before=doc.text[region[0]:region[1]],
                     region_predicted=predicted[region[0]:region[1] + grown], **extra)

    def _offer(self, answer: dict[str, Any], doc: Document, cursor: int, region: tuple[int, int],
               edits: list[Edit]) -> Offer:
        offer = self._new_offer(answer["request_id"], answer.get("model_version"), answer.get("arm"), doc, cursor,
                                region, edits)
        self.tracker.track(offer.request_id, doc.uri, region[0], region[1], offer.region_before,
                           time.monotonic())
        self.tracked[offer.request_id] = offer
        current = self.offers.get(doc.uri)
        if current is not None and current.shown is not None and current.result(doc.text) == offer.result(doc.text):
            current.riders.append(offer.request_id)  # the same edit again: keep the one already on screen,
            self.tracker.hold(offer.request_id)     # and settle this request's region with its decision
            return current
        self._drop_offer(doc.uri, "replaced")
        self.offers[doc.uri] = offer
        self.tracker.hold(offer.request_id)  # no settling before the user decides
        return offer

    async def offer_for(self, uri: str, cursor: int, *, start: bool, trigger: str = "explicit") -> Offer | None:
        """The prediction for the document as it is now: its current one (kept across buffer switches
        while it still applies), the one in flight (waited for up to inline_wait_ms), or (when `start`)
        a new request at `cursor`. Held back until min_pause_ms have passed since the last change."""
        doc = self.docs.get(uri)
        if doc is None:
            return None
        self.active_uri = uri
        task = self._tasks.get(uri)
        key = self._task_keys.get(uri)
        in_flight = task is not None and not task.done() and key is not None and key[0] == doc.version
        offer = self.offers.get(uri)
        if not in_flight and start and (offer is None or not offer.current_edits(doc.text)) \
                and key != (doc.version, cursor):
            task = self.schedule(uri, cursor, 0.0, trigger)
            in_flight = task is not None
        if in_flight and task is not None:
            await asyncio.wait({task}, timeout=self.settings.inline_wait_ms / 1000)
        version = doc.version
        hold = self.pacer.hold_s(uri, time.monotonic())
        if hold > 0:
            await asyncio.sleep(hold)
        doc = self.docs.get(uri)
        offer = self.offers.get(uri)
        if doc is None or doc.version != version or offer is None or not offer.current_edits(doc.text):
            return None
        return offer

    def inline_item(self, offer: Offer, doc: Document, cursor: int) -> types.InlineCompletionItem | None:
        """The offer as an inline completion at `cursor`, when the LSP allows it: the item's range stays
        on the cursor's line and contains the cursor, and the text it covers before the cursor is a
        prefix of what it inserts (what the user typed is kept). Otherwise None (code action only)."""
        edits = offer.current_edits(doc.text)
        if not edits:
            return None
        whole = span(edits, doc.text)
        text = doc.text
        line_start = text.rfind("\n", 0, cursor) + 1
        line_end = text.find("\n", cursor)
        line_end = len(text) if line_end == -1 else line_end
        start, end = min(whole.start, cursor), max(whole.end, cursor)
        if start < line_start or end > line_end:
            return None
        insert = text[start:whole.start] + whole.text + text[whole.end:end]
        if not insert.startswith(text[start:cursor]):
            return None
        sl, sc = doc.position_of(start)
        el, ec = doc.position_of(end)
        return types.InlineCompletionItem(
            insert_text=insert,
            range=types.Range(types.Position(sl, sc), types.Position(el, ec)),
            command=types.Command(title="nextedit: prediction accepted", command=ACCEPT_COMMAND,
                                  arguments=[offer.request_id]))

    def code_action(self, offer: Offer, doc: Document) -> types.CodeAction | None:
        """The offer as a code action carrying the whole edit (which may lie away from the cursor).

        It carries no command: clients tell a CodeAction from a Command by its `command` field, and some
        (lsprotocol's converter among them) misread a CodeAction that has one. Acceptance is seen in
        the didChange that applies the edit."""
        edits = offer.current_edits(doc.text)
        if not edits:
            return None
        text_edits = []
        for e in edits:
            sl, sc = doc.position_of(e.start)
            el, ec = doc.position_of(e.end)
            text_edits.append(types.TextEdit(range=types.Range(types.Position(sl, sc), types.Position(el, ec)),
                                             new_text=e.text))
        return types.CodeAction(
            title=ACTION_TITLE, kind=types.CodeActionKind.QuickFix, is_preferred=True,
            edit=types.WorkspaceEdit(changes={doc.uri: text_edits}))

    def shown(self, offer: Offer, how: str) -> None:
        """Report that the offer reached the user's screen (once per prediction)."""
        if offer.shown is None:
            offer.shown = how
        if self.events is not None:
            self.events.report("shown", offer, reason=how)

    def accept_command(self, request_id: Any) -> None:
        """The client ran `nextedit.accept` after applying the prediction."""
        offer = None
        if isinstance(request_id, str):
            offer = next((o for o in self.offers.values() if o.request_id == request_id), None) \
                or self.tracked.get(request_id)
        if offer is None:
            self.notify(logging.INFO, f"{ACCEPT_COMMAND}: unknown or expired prediction {request_id!r}")
            return
        offer.reported.add("command")
        if self.events is not None:
            self.events.report("accepted", offer, reason="command")
        self.pacer.accepted()

    def _command_uri(self, args: tuple[Any, ...]) -> str | None:
        """The document a command names (a URI or {"uri": ...} argument), else the active one."""
        uri = args[0] if args and isinstance(args[0], str) else None
        if args and isinstance(args[0], dict):
            uri = args[0].get("uri") if isinstance(args[0].get("uri"), str) else None
        return uri or self.active_uri

    def _target(self, args: tuple[Any, ...]) -> tuple[Document, Offer] | None:
        """The document and offer a command names (a URI or {"uri": ...} argument), else the active one."""
        uri = self._command_uri(args)
        doc = self.docs.get(uri) if uri else None
        offer = self.offers.get(uri) if uri else None
        if doc is None or offer is None or not offer.current_edits(doc.text):
            return None
        return doc, offer

    async def accept_part(self, part: Part, args: tuple[Any, ...]) -> bool:
        """Apply the next word / line of the offer (workspace/applyEdit); reported as a partial accept."""
        found = self._target(args)
        if found is None:
            self.notify(logging.INFO, f"accept next {part}: no prediction is offered here")
            return False
        doc, offer = found
        whole = span(offer.current_edits(doc.text), doc.text)
        edit = partial_edit(doc.text, whole, part)
        complete = doc.text[:edit.start] + edit.text + doc.text[edit.end:] == offer.result(doc.text)
        if offer.shown is None:
            self.shown(offer, "command")
        if self.events is not None:
            self.events.report("accepted", offer, reason=f"partial_{part}" if not complete else "command",
                               partial=None if complete else part)
        self.pacer.accepted()
        self._expected[doc.uri] = edit
        sl, sc = doc.position_of(edit.start)
        el, ec = doc.position_of(edit.end)
        result = await self.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(
            edit=types.WorkspaceEdit(changes={doc.uri: [types.TextEdit(
                range=types.Range(types.Position(sl, sc), types.Position(el, ec)), new_text=edit.text)]}),
            label=f"nextedit: accept next {part}"))
        if not result.applied:
            self._expected.pop(doc.uri, None)
            self.notify(logging.INFO, f"accept next {part}: the editor did not apply the edit "
                                      f"({result.failure_reason or 'no reason given'})")
        return bool(result.applied)

    def partial_commands(self, offer: Offer, doc: Document) -> list[types.Command]:
        """"Accept next word / line" entries for the code action menu, when they take less than the whole offer
        (plain Commands: every client's code action menu runs them, no key binding needed)."""
        edits = offer.current_edits(doc.text)
        if not edits:
            return []
        whole = span(edits, doc.text)
        out = []
        for part, command in (("word", ACCEPT_WORD_COMMAND), ("line", ACCEPT_LINE_COMMAND)):
            e = partial_edit(doc.text, whole, part)  # type: ignore[arg-type]
            if doc.text[:e.start] + e.text + doc.text[e.end:] != offer.result(doc.text):
                out.append(types.Command(title=f"Accept next {part} of predicted edit", command=command,
                                         arguments=[doc.uri]))
        return out

    def dismiss(self, args: tuple[Any, ...]) -> None:
        """The user dismissed the offer (counts towards the back-off)."""
        found = self._target(args)
        if found is not None:
            self._drop_offer(found[1].uri, "dismissed")

    # ------------------------------------------------------------------ jumps

    def _take_jump(self, answer: dict[str, Any], doc: Document, region: tuple[int, int]) -> Jump | None:
        """Keep the answer's jump for the document (replacing the older one): its best location outside the
        editable region, when that lies in the workspace."""
        self.jumps.pop(doc.uri, None)
        location = pick(answer.get("locations"), doc.path, line_range(doc.text, region))
        if location is None:
            return None
        jump = Jump(request_id=answer["request_id"], model_version=answer.get("model_version"),
                    arm=answer.get("arm"), uri=doc.uri, location=location)
        try:
            self._jump_uri(jump)
        except JumpError as exc:
            log.info("jump of %s not offered: %s", answer["request_id"], exc)
            return None
        self.jumps[doc.uri] = jump
        return jump

    def _jump_uri(self, jump: Jump) -> str:
        """The URI of the file a jump leads to: an open document with its path, else the workspace file
        (JumpError when it leads outside the workspace or into an excluded file)."""
        for d in self.docs.values():
            if same_path(d.path, jump.path) and (d.uri == jump.uri or self._in_workspace(d.uri)):
                if d.uri in self.excluded:
                    raise JumpError("excluded", f"{jump.path} is excluded ({self.excluded[d.uri]!r})")
                return d.uri
        file = workspace_file(self.root, jump.path)
        pattern = self.exclude.match(jump.path, str(file))
        if pattern is not None:
            raise JumpError("excluded", f"{jump.path} is excluded ({pattern!r})")
        return file.as_uri()

    def _jump_target(self, jump: Jump) -> tuple[str, Target]:
        """The jump's target URI and its edit against the file's current text (the editor's, else the disk's)."""
        uri = self._jump_uri(jump)
        doc = self.docs.get(uri)
        text = doc.text if doc is not None else read_file(Path(to_fs_path(uri) or ""), jump.path)
        return uri, resolve(jump.location, text)

    def _drop_jump(self, jump: Jump, error: JumpError) -> None:
        """Withdraw a jump that can no longer be taken, with the reason (status, log, a rejected jump event)."""
        if self.jumps.get(jump.uri) is jump:
            del self.jumps[jump.uri]
        self.status.jump_dropped(jump.uri, error.reason, str(error), jump.request_id)
        if jump.shown is not None and self.events is not None:
            self.events.report("rejected", jump, reason=error.reason)

    def _jump_shown(self, jump: Jump, how: str) -> None:
        if jump.shown is None:
            jump.shown = how
        if self.events is not None:
            self.events.report("shown", jump, reason=how)

    def jump_action(self, uri: str) -> types.Command | None:
        """"Go to next predicted edit: path:line" for the code action menu, while the document's latest
        prediction has a jump that can still be taken (one that cannot is dropped with its reason)."""
        jump = self.jumps.get(uri)
        if jump is None:
            return None
        try:
            self._jump_target(jump)
        except JumpError as exc:
            self._drop_jump(jump, exc)
            return None
        self._jump_shown(jump, "code_action")
        return types.Command(title=f"{GOTO_TITLE}: {jump.label}", command=GOTO_COMMAND, arguments=[uri])

    async def go_to_jump(self, args: tuple[Any, ...]) -> bool:
        """Take the jump of the document a command names: the edit there becomes that document's offer (once
        it is open), and the client is asked to show it (window/showDocument, else a message naming it)."""
        uri = self._command_uri(args)
        jump = self.jumps.get(uri) if uri else None
        if jump is None:
            self._show_info("nextedit: no predicted edit elsewhere")
            return False
        try:
            target_uri, target = self._jump_target(jump)
        except JumpError as exc:
            self._drop_jump(jump, exc)
            self._show_info(f"nextedit: jump dropped: {exc}")
            return False
        del self.jumps[jump.uri]
        self._jump_shown(jump, "command")
        if self.events is not None:
            self.events.report("accepted", jump, reason="goto")
        self.pacer.accepted()
        doc = self.docs.get(target_uri)
        if doc is not None:
            self._arrive(jump, doc, target)
        else:
            self._pending_jumps[target_uri] = (jump, target)  # offered once the client opens it
        shown_doc = doc or Document(target_uri, jump.path, target.text, encoding=self.encoding)
        sl, sc = shown_doc.position_of(target.selection[0])
        el, ec = shown_doc.position_of(target.selection[1])
        if self.show_document:
            result = await self.window_show_document_async(types.ShowDocumentParams(
                uri=target_uri, take_focus=True,
                selection=types.Range(types.Position(sl, sc), types.Position(el, ec))))
            if result.success:
                return True
        self._show_info(f"nextedit: next predicted edit at {jump.path}:{sl + 1}")
        return True

    def _arrive(self, jump: Jump, doc: Document, target: Target) -> None:
        """Offer the edit a taken jump leads to in its (now open) document, checked against the document's
        text; one that no longer applies is dropped with its reason."""
        if doc.text != target.text:
            try:
                target = resolve(jump.location, doc.text)
            except JumpError as exc:
                self._drop_jump(jump, exc)
                return
        if not target.edits:
            return  # the location alone: nothing to offer there
        offer = self._new_offer(jump.request_id, jump.model_version, jump.arm, doc, target.selection[0],
                                target.selection, target.edits, jump=True, shown="jump", reported={"shown"})
        self._drop_offer(doc.uri, "replaced")
        self.offers[doc.uri] = offer
        self.status.offered(doc.uri, offer.request_id, f"line {doc.position_of(offer.start)[0] + 1}, from a jump")
        if self.settings.hints != "off":
            self._publish_hints_later(doc.uri, offer)

    # ------------------------------------------------------------------ hints

    def _wants_hints(self, offer: Offer, doc: Document) -> bool:
        mode = self.settings.hints
        if mode == "off":
            return False
        if mode == "always" or not self.inline_supported:
            return True
        return self.inline_item(offer, doc, min(offer.cursor, len(doc.text))) is None

    def _publish_hints_later(self, uri: str, offer: Offer) -> None:
        old = self._hint_tasks.pop(uri, None)
        if old is not None:
            old.cancel()
        self._hint_tasks[uri] = asyncio.ensure_future(self._publish_hints(uri, offer))

    async def _publish_hints(self, uri: str, offer: Offer) -> None:
        """Publish the offer's hints once the minimum pause has passed, if it is still offered."""
        while (hold := self.pacer.hold_s(uri, time.monotonic())) > 0:
            await asyncio.sleep(hold)
        doc = self.docs.get(uri)
        if doc is None or self.offers.get(uri) is not offer:
            return
        if self._send_hints(doc, offer):
            self.shown(offer, "hint")

    def _send_hints(self, doc: Document, offer: Offer) -> bool:
        edits = offer.current_edits(doc.text)
        if not edits:
            return False
        self.hinted.add(doc.uri)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=doc.uri, version=doc.version,
            diagnostics=hint_diagnostics(doc, edits, offer.request_id, ACTION_TITLE)))
        return True

    def _refresh_hints(self, uri: str) -> None:
        """After a change: move the hints along with the offer, or clear them when it is gone."""
        if uri not in self.hinted:
            return
        doc, offer = self.docs.get(uri), self.offers.get(uri)
        if doc is None or offer is None or not self._send_hints(doc, offer):
            self._clear_hints(uri)

    def _clear_hints(self, uri: str) -> None:
        task = self._hint_tasks.pop(uri, None)
        if task is not None:
            task.cancel()
        if uri in self.hinted:
            self.hinted.discard(uri)
            try:
                self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
            except Exception as exc:  # noqa: BLE001 - client gone
                log.debug("clearing hints of %s: %s", uri, exc)

    # ------------------------------------------------------------------ settle

    def _report_settled(self, result: Any) -> None:
        for dropped in result.dropped:
            self.tracked.pop(dropped.request_id, None)
        for region in result.settled:
            offer = self.tracked.pop(region.request_id, None)
            if offer is not None and self.events is not None:
                self.events.report("settled", offer, settled_text=region.text, quiet_s=round(region.quiet_s, 3))

    async def _settle_loop(self) -> None:
        while True:
            try:
                now = time.monotonic()
                due = self.tracker.next_poll(now)
                wait = 1.0 if due is None else min(max(due - now, 0.02), 1.0)
                await asyncio.sleep(wait)
                self._report_settled(self.tracker.poll_all(time.monotonic()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the poller must outlive any one bad region
                self.notify(logging.ERROR, f"settle poller: {type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)


def _guard(ls: NexteditLanguageServer, what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        log.exception("%s failed", what)
        ls.notify(logging.ERROR, f"{what} failed: {type(exc).__name__}: {exc}")
        return None


async def _guard_async(ls: NexteditLanguageServer, what: str, coro: Any) -> Any:
    try:
        return await coro
    except Exception as exc:
        log.exception("%s failed", what)
        ls.notify(logging.ERROR, f"{what} failed: {type(exc).__name__}: {exc}")
        return False


def build_server(settings: Settings) -> NexteditLanguageServer:
    """A language server with every handler registered (start it with `.start_io()`)."""
    server = NexteditLanguageServer(settings)

    @server.feature(types.INITIALIZE)
    def initialize(ls: NexteditLanguageServer, params: types.InitializeParams) -> None:
        _guard(ls, "initialize", ls.configure, params)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: NexteditLanguageServer, params: None) -> None:
        try:
            await ls.stop()
        except Exception as exc:  # noqa: BLE001
            log.warning("shutdown: %s", exc)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NexteditLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        _guard(ls, "didOpen", ls.open, params)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NexteditLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        _guard(ls, "didChange", ls.change, params)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: NexteditLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        _guard(ls, "didSave", ls.file_changed, params.text_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched(ls: NexteditLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            _guard(ls, "didChangeWatchedFiles", ls.file_changed, change.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NexteditLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        _guard(ls, "didClose", ls.close, params.text_document.uri)

    # pygls advertises inlineCompletionProvider only when given options.
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: NexteditLanguageServer,
                                params: types.InlineCompletionParams) -> types.InlineCompletionList:
        empty = types.InlineCompletionList(items=[])
        doc = ls.docs.get(params.text_document.uri)
        if doc is None or not ls.settings.inline:
            return empty
        cursor = doc.clamped_offset_at(params.position.line, params.position.character)
        try:
            invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
            offer = await ls.offer_for(doc.uri, cursor, start=True, trigger="explicit" if invoked else "cursor")
            if offer is None:
                return empty
            if offer.shown == "inline_completion" and not offer.touched and \
                    doc.position_of(cursor)[0] != doc.position_of(offer.start)[0]:
                ls._drop_offer(doc.uri, "cursor_moved")
                return empty
            item = ls.inline_item(offer, doc, cursor)
            if item is None:
                return empty
            ls.shown(offer, "inline_completion")
            return types.InlineCompletionList(items=[item])
        except Exception as exc:
            log.exception("inlineCompletion failed")
            ls.notify(logging.ERROR, f"inlineCompletion failed: {type(exc).__name__}: {exc}")
            return empty

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    async def code_action(ls: NexteditLanguageServer,
                          params: types.CodeActionParams) -> list[types.CodeAction | types.Command] | None:
        doc = ls.docs.get(params.text_document.uri)
        if doc is None:
            return None
        try:
            cursor = doc.clamped_offset_at(params.range.start.line, params.range.start.character)
            offer = await ls.offer_for(doc.uri, cursor, start=False)
            action = ls.code_action(offer, doc) if offer is not None else None
            actions: list[types.CodeAction | types.Command] = []
            if offer is not None and action is not None:
                ls.shown(offer, "code_action")
                actions = [action, *ls.partial_commands(offer, doc)]
            goto = ls.jump_action(doc.uri)
            if goto is not None:
                actions.append(goto)
            return actions or None
        except Exception as exc:
            log.exception("codeAction failed")
            ls.notify(logging.ERROR, f"codeAction failed: {type(exc).__name__}: {exc}")
            return None

    @server.command(ACCEPT_COMMAND)
    def accept(ls: NexteditLanguageServer, *args: Any) -> None:
        request_id = args[0] if args else None
        _guard(ls, ACCEPT_COMMAND, ls.accept_command, request_id)

    @server.command(ACCEPT_WORD_COMMAND)
    async def accept_word(ls: NexteditLanguageServer, *args: Any) -> bool:
        return await _guard_async(ls, ACCEPT_WORD_COMMAND, ls.accept_part("word", args))

    @server.command(ACCEPT_LINE_COMMAND)
    async def accept_line(ls: NexteditLanguageServer, *args: Any) -> bool:
        return await _guard_async(ls, ACCEPT_LINE_COMMAND, ls.accept_part("line", args))

    @server.command(GOTO_COMMAND)
    async def go_to_next_edit(ls: NexteditLanguageServer, *args: Any) -> bool:
        return await _guard_async(ls, GOTO_COMMAND, ls.go_to_jump(args))

    @server.command(DISMISS_COMMAND)
    def dismiss(ls: NexteditLanguageServer, *args: Any) -> None:
        _guard(ls, DISMISS_COMMAND, ls.dismiss, args)

    return server


def serve_stdio(settings: Settings) -> None:
    """Run the language server on stdin/stdout until the client exits."""
    build_server(settings).start_io()
