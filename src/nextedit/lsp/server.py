"""`nextedit lsp`: a language server (pygls, stdio) that asks `nextedit serve` for next-edit predictions
as the user types and offers them as inline completions or an "Apply predicted edit" code action."""

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
from nextedit.lsp.client import ServeClient
from nextedit.lsp.documents import Document, Encoding, PositionError
from nextedit.lsp.events import EventReporter
from nextedit.lsp.history import EditHistory
from nextedit.lsp.offer import Offer
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
from nextedit.lsp.workspace import workspace_source
from nextedit.pipeline.registry import ConfigError
from nextedit.record import Snapshot
from nextedit.settle.tracker import SettleTracker

log = logging.getLogger("nextedit.lsp")

ACCEPT_COMMAND = "nextedit.accept"
ACTION_TITLE = "Apply predicted edit"
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
        #: The prediction currently offered, and every prediction still waiting to settle.
        self.offer: Offer | None = None
        self.tracked: dict[str, Offer] = {}
        self._task: asyncio.Task[Offer | None] | None = None
        self._task_key: tuple[str, int, int] | None = None
        self._settle_task: asyncio.Task[None] | None = None
        self.requests = 0
        #: Repository URL, revision and license of the workspace (sent only with consent).
        self.source: dict[str, str] | None = None
        #: Related code and diagnostics from the workspace (None: no workspace folder, or both off).
        self.context: EditorContext | None = None
        self._inside: dict[str, bool] = {}
        self._context_failed = False

    # ------------------------------------------------------------------ logging

    def notify(self, level: int, message: str) -> None:
        """Log a message here (stderr) and in the client's log (window/logMessage); never raises."""
        log.log(level, message)
        try:
            self.window_log_message(types.LogMessageParams(type=_LEVELS.get(level, types.MessageType.Log),
                                                           message=f"nextedit: {message}"))
        except Exception as exc:  # noqa: BLE001 - no transport yet / client gone: stderr has it
            log.debug("window/logMessage not sent: %s", exc)

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
        self.source = workspace_source(self.root)
        self.context = self._make_context(settings)
        self.client = ServeClient(settings.server, token=settings.token, timeout_s=settings.timeout_s,
                                  notify=self.notify)
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
                             lint=settings.diagnostics)

    def start_background(self) -> None:
        """Start the settle poller (once) and the first index of the workspace."""
        if self._settle_task is None:
            self._settle_task = asyncio.ensure_future(self._settle_loop())
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
        """Cancel work in flight and send the queued events (on `shutdown`)."""
        if self._task is not None:
            self._task.cancel()
        if self._settle_task is not None:
            self._settle_task.cancel()
        if self.events is not None:
            await self.events.drain()
            self.events.close()
        if self.client is not None:
            await self.client.aclose()

    # ------------------------------------------------------------------ documents

    def open(self, params: types.DidOpenTextDocumentParams) -> None:
        """Start keeping a document."""
        td = params.text_document
        self.docs[td.uri] = Document(td.uri, document_path(td.uri, self.root), td.text, td.version,
                                     td.language_id, self.encoding)

    def close(self, uri: str) -> None:
        """Forget a document, its pending settle regions and its prediction."""
        self.docs.pop(uri, None)
        self.tracker.forget_path(uri)
        for rid in [rid for rid, o in self.tracked.items() if o.uri == uri]:
            del self.tracked[rid]
        if self.offer is not None and self.offer.uri == uri:
            self._drop_offer("closed")

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
        accepted = False
        offer = self.offer
        if offer is not None and offer.uri == uri:
            for _, c, _ in applied:
                offer.follow(c)
            fate = offer.fate(doc.text)
            if fate == "accepted":
                accepted = offer.shown is not None
                if accepted and self.events is not None:
                    self.events.report("accepted", offer, reason="document")
                self.offer = None
            elif fate == "diverged":
                self._drop_offer("typed")
        for before, c, after in applied:
            self.history.record(doc.path, before, c, after, now, predicted=accepted)
            self.tracker.edit(uri, c.start, c.end, c.text, now)
        last = applied[-1][1]
        self.schedule(uri, last.start + len(last.text), self.settings.debounce_ms / 1000,
                      "prediction_accepted" if accepted else "buffer_edit")

    def _drop_offer(self, reason: str) -> None:
        offer, self.offer = self.offer, None
        if offer is not None and offer.shown is not None and "accepted" not in offer.reported \
                and self.events is not None:
            self.events.report("rejected", offer, reason=reason)

    # ------------------------------------------------------------------ predictions

    def schedule(self, uri: str, cursor: int, delay_s: float,
                 trigger: str = "buffer_edit") -> asyncio.Task[Offer | None] | None:
        """Ask for a prediction after `delay_s`, cancelling the one in flight; `trigger` says why."""
        doc = self.docs.get(uri)
        if doc is None:
            return None
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task_key = (uri, doc.version, cursor)
        self._task = asyncio.ensure_future(self._predict(uri, doc.version, cursor, delay_s, trigger))
        return self._task

    async def _predict(self, uri: str, version: int, cursor: int, delay_s: float, trigger: str) -> Offer | None:
        try:
            return await self._request(uri, version, cursor, delay_s, trigger)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("prediction request failed")
            self.notify(logging.ERROR, f"prediction request failed: {type(exc).__name__}: {exc}")
            return None

    async def _request(self, uri: str, version: int, cursor: int, delay_s: float, trigger: str) -> Offer | None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        doc = self.docs.get(uri)
        if doc is None or doc.version != version or self.client is None:
            return None
        try:
            built = build_snapshot(doc.text, cursor, doc.path, self.history.events(),
                                   editable_tokens=self.settings.editable_tokens,
                                   context_tokens=self.settings.context_tokens)
        except (ExcerptError, ValueError) as exc:
            log.info("no prediction for %s: %s", doc.path, exc)
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
        answer = await self.client.predict(body)
        doc = self.docs.get(uri)
        if answer is None or doc is None or doc.version != version:
            return None
        prediction = answer.get("prediction")
        if prediction is None:
            log.debug("no prediction for %s: %s", doc.path, answer.get("reason"))
            return None
        try:
            edits = prediction_edits(prediction, built.snapshot)
        except PredictionShapeError as exc:
            self.notify(logging.WARNING, f"prediction {answer['request_id']} ignored: {exc}")
            return None
        if not edits:
            return None
        return self._offer(answer, doc, cursor, built.editable, to_document(edits, built.offset))

    def _offer(self, answer: dict[str, Any], doc: Document, cursor: int, region: tuple[int, int],
               edits: list[Edit]) -> Offer:
        whole = span(edits, doc.text)
        predicted = doc.text
        for e in reversed(edits):
            predicted = predicted[:e.start] + e.text + predicted[e.end:]
        grown = len(predicted) - len(doc.text)
        offer = Offer(request_id=answer["request_id"], model_version=answer.get("model_version"),
                      arm=answer.get("arm"), uri=doc.uri, path=doc.path, version=doc.version,
                      cursor=cursor, edits=edits, start=whole.start, end=whole.end,
                      old=doc.text[whole.start:whole.end], new=whole.text, region=region,
                      region_before=doc.text[region[0]:region[1]],
                      region_predicted=predicted[region[0]:region[1] + grown])
        self.tracker.track(offer.request_id, doc.uri, region[0], region[1], offer.region_before,
                           time.monotonic())
        self.tracked[offer.request_id] = offer
        current = self.offer
        if current is not None and current.uri == doc.uri and current.shown is not None \
                and current.result(doc.text) == offer.result(doc.text):
            return current  # the same edit again: keep the one already on screen
        self._drop_offer("replaced")
        self.offer = offer
        return offer

    async def offer_for(self, uri: str, cursor: int, *, start: bool, trigger: str = "explicit") -> Offer | None:
        """The prediction for the document as it is now: the current one, the one in flight (waited
        for up to inline_wait_ms), or (when `start`) a new request at `cursor`."""
        doc = self.docs.get(uri)
        if doc is None:
            return None
        task = self._task
        key = self._task_key
        in_flight = task is not None and not task.done() and key is not None and key[:2] == (uri, doc.version)
        if not in_flight and self.offer is not None and self.offer.uri == uri:
            return self.offer
        if not in_flight and start and key != (uri, doc.version, cursor):
            task = self.schedule(uri, cursor, 0.0, trigger)
            in_flight = task is not None
        if in_flight and task is not None:
            await asyncio.wait({task}, timeout=self.settings.inline_wait_ms / 1000)
        offer = self.offer
        doc = self.docs.get(uri)
        return offer if offer is not None and offer.uri == uri and doc is not None else None

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
            current = self.offer
            offer = current if current is not None and current.request_id == request_id \
                else self.tracked.get(request_id)
        if offer is None:
            self.notify(logging.INFO, f"{ACCEPT_COMMAND}: unknown or expired prediction {request_id!r}")
            return
        offer.reported.add("command")
        if self.events is not None:
            self.events.report("accepted", offer, reason="command")

    # ------------------------------------------------------------------ settle

    async def _settle_loop(self) -> None:
        while True:
            try:
                now = time.monotonic()
                due = self.tracker.next_poll(now)
                wait = 1.0 if due is None else min(max(due - now, 0.02), 1.0)
                await asyncio.sleep(wait)
                result = self.tracker.poll_all(time.monotonic())
                for dropped in result.dropped:
                    self.tracked.pop(dropped.request_id, None)
                for region in result.settled:
                    offer = self.tracked.pop(region.request_id, None)
                    if offer is not None and self.events is not None:
                        self.events.report("settled", offer, settled_text=region.text, quiet_s=region.quiet_s)
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
                ls._drop_offer("cursor_moved")
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
                          params: types.CodeActionParams) -> list[types.CodeAction] | None:
        doc = ls.docs.get(params.text_document.uri)
        if doc is None:
            return None
        try:
            cursor = doc.clamped_offset_at(params.range.start.line, params.range.start.character)
            offer = await ls.offer_for(doc.uri, cursor, start=False)
            action = ls.code_action(offer, doc) if offer is not None else None
            if offer is None or action is None:
                return None
            ls.shown(offer, "code_action")
            return [action]
        except Exception as exc:
            log.exception("codeAction failed")
            ls.notify(logging.ERROR, f"codeAction failed: {type(exc).__name__}: {exc}")
            return None

    @server.command(ACCEPT_COMMAND)
    def accept(ls: NexteditLanguageServer, *args: Any) -> None:
        request_id = args[0] if args else None
        _guard(ls, ACCEPT_COMMAND, ls.accept_command, request_id)

    return server


def serve_stdio(settings: Settings) -> None:
    """Run the language server on stdin/stdout until the client exits."""
    build_server(settings).start_io()
