"""Serve-time context: related code and diagnostics for an editor's snapshot, by the `context` and `diagnostics` stages' own code.

The editor's state stands in for "the repository at the revision": a live `WorkspaceIndex` of the
workspace folder, where every file the snapshot's history edited shows the text that history
starts from (as the revision's file does at training time) and other open documents show their
unsaved text. Retrieval (`with_related`) and linting (`with_diagnostics`) then run unchanged, so
a snapshot equivalent to a training example gets the same related excerpts and diagnostics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nextedit.context.diagnostics import (
    DiagnosticsConfig,
    DiagnosticsStage,
    with_diagnostics,
)
from nextedit.context.stage import ContextConfig, ContextStage, with_related
from nextedit.context.workspace import WorkspaceIndex
from nextedit.record import Snapshot


def load_stage_configs(context_path: str | Path | None,
                       diagnostics_path: str | Path | None) -> tuple[ContextConfig, DiagnosticsConfig]:
    """The stage configs from the same TOML files `nextedit run context/diagnostics --config` reads
    (defaults when None); ConfigError naming the file and field when one cannot be used."""
    from nextedit.pipeline.registry import load_config

    return (load_config(ContextStage, context_path),  # type: ignore[return-value]
            load_config(DiagnosticsStage, diagnostics_path))


@dataclass
class Timing:
    """Milliseconds spent by the last `fill`: syncing editor texts, retrieval, linting."""

    sync_ms: float = 0.0
    retrieve_ms: float = 0.0
    lint_ms: float = 0.0


@dataclass
class EditorContext:
    """Fills `related` and `diagnostics` of snapshots taken in one workspace folder."""

    root: Path
    context: ContextConfig = field(default_factory=ContextConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    related: bool = True
    lint: bool = True
    #: Rescan the disk (stat only; changed files are read) when the last scan is older than this.
    rescan_s: float = 30.0
    #: Workspace paths never read (the editor's excluded files).
    exclude: Callable[[str], bool] | None = None
    index: WorkspaceIndex = field(init=False)
    last: Timing = field(default_factory=Timing)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.index = WorkspaceIndex(self.root, self.context.index_settings(), exclude=self.exclude)

    def scan(self) -> int:
        """Index (or re-check) every workspace file on disk; the number of files whose text changed."""
        return self.index.scan()

    def fill(self, snapshot: Snapshot, texts: dict[str, str] | None = None) -> Snapshot:
        """The snapshot with related code and diagnostics as the context and diagnostics stages would add.

        `texts`: the editor's text for files that differ from the disk: for each file the snapshot's
        history edits, the text before its first edit in that history; for other open documents
        their current text. Files not named are read from disk.
        """
        texts = texts or {}
        t0 = time.perf_counter()
        with self.index.lock:
            if self.index.scanned_at is None or time.monotonic() - self.index.scanned_at > self.rescan_s:
                self.index.scan()
            self.index.set_texts(texts)
            t1 = time.perf_counter()
            out = with_related(snapshot, self.index.view, self.context) if self.related else snapshot
            base = self.index.text_of(snapshot.path)
        t2 = time.perf_counter()
        if self.lint:
            out = with_diagnostics(out, base, self.diagnostics)
        t3 = time.perf_counter()
        self.last = Timing(round((t1 - t0) * 1000, 3), round((t2 - t1) * 1000, 3), round((t3 - t2) * 1000, 3))
        return out
