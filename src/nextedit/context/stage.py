"""The `context` stage: fills snapshot.related with definitions and BM25 chunks from the repo at the revision."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nextedit.context.index import IndexSettings, RevisionIndex, index_cache, load_index
from nextedit.context.locate import locate
from nextedit.context.repo_files import RepoError
from nextedit.context.retrieve import RetrieveSettings, retrieve
from nextedit.pipeline.stage import Stage, StageError
from nextedit.record import Example, Snapshot

OUR_SOURCES = ("definition", "bm25")


class ContextConfig(BaseModel):
    """Options of the context stage (defaults follow Zed's BM25 parameters, section 2.8)."""

    model_config = ConfigDict(extra="forbid")

    repo: str | None = Field(None, description="local git repository; default: example.source.repo when local")
    repos_dir: str | None = Field(None, description="folder of clones: <repos_dir>/<owner>/<name> or <repos_dir>/<name>")
    revision: str | None = Field(None, description="revision used when the example has no source.revision")
    at: Literal["auto", "revision", "parent"] = Field(
        "auto", description="read files at the revision or its parent; auto: parent for git-mined examples")
    sources: list[Literal["definition", "bm25"]] = Field(default_factory=lambda: ["definition", "bm25"])
    max_tokens: int = Field(2048, ge=0, description="budget for all snippets, tokens = UTF-8 bytes / 3")
    max_snippets: int = Field(16, ge=0)
    max_per_file: int = Field(4, ge=1)
    identifier_window: int = Field(20, ge=0, description="lines around the cursor whose identifiers are resolved")
    max_definitions_per_identifier: int = Field(2, ge=1)
    max_definition_snippets: int = Field(8, ge=0, description="at most this many definition candidates")
    unreachable_unique: bool = Field(False, description="also use names defined once but not imported")
    ambiguous_limit: int = Field(8, ge=1, description="skip identifiers defined in more places than this")
    definition_max_lines: int = Field(24, ge=1, description="longer definitions are cut to this many lines")
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    chunk_lines: int = Field(40, ge=2)
    chunk_overlap: int = Field(10, ge=0)
    bm25_top_k: int = Field(12, ge=0)
    bm25_max_per_file: int = Field(3, ge=1)
    query_window: int = Field(20, ge=0)
    max_history_queries: int = Field(8, ge=0)
    max_file_bytes: int = Field(1_000_000, ge=1)
    cache_size: int = Field(4, ge=1, description="per-revision indexes kept in memory (LRU)")
    keep_existing: bool = Field(True, description="keep related entries from other sources (ours are replaced)")

    def index_settings(self) -> IndexSettings:
        """The settings that shape the per-revision index."""
        return IndexSettings(max_file_bytes=self.max_file_bytes, chunk_lines=self.chunk_lines,
                             chunk_overlap=self.chunk_overlap, k1=self.bm25_k1, b=self.bm25_b,
                             definitions="definition" in self.sources, bm25="bm25" in self.sources)

    def retrieve_settings(self) -> RetrieveSettings:
        """The settings of retrieval and budget fitting."""
        return RetrieveSettings(
            sources=tuple(self.sources), max_tokens=self.max_tokens, max_snippets=self.max_snippets,
            max_per_file=self.max_per_file, identifier_window=self.identifier_window,
            max_definitions_per_identifier=self.max_definitions_per_identifier,
            max_definition_snippets=self.max_definition_snippets,
            unreachable_unique=self.unreachable_unique,
            ambiguous_limit=self.ambiguous_limit, definition_max_lines=self.definition_max_lines,
            query_window=self.query_window, max_history_queries=self.max_history_queries,
            bm25_top_k=self.bm25_top_k, bm25_max_per_file=self.bm25_max_per_file)


def add_context(example: Example, config: ContextConfig | None = None) -> Example:
    """The example with snapshot.related filled from its repository; RepoError when the repo is unavailable."""
    config = config or ContextConfig()
    repo, revision = locate(example, repo=config.repo, revision=config.revision,
                            repos_dir=config.repos_dir, at=config.at)
    cache = index_cache()
    cache.maxsize = config.cache_size
    index = load_index(repo, revision, config.index_settings(), cache)
    snapshot = with_related(example.snapshot, index, config)
    return example.model_copy(update={"snapshot": snapshot})


def with_related(snapshot: Snapshot, index: RevisionIndex, config: ContextConfig) -> Snapshot:
    """The snapshot with our related excerpts retrieved from `index` (a revision's or a live workspace's)
    under the config's budgets; entries from other sources kept in front when `keep_existing`."""
    found = retrieve(index, snapshot, config.retrieve_settings())
    kept = [r for r in snapshot.related if r.source not in OUR_SOURCES] if config.keep_existing else []
    offset = max((r.rank for r in kept), default=-1) + 1
    for r in found:
        r.rank += offset
    return snapshot.model_copy(update={"related": kept + found})


class ContextStage(Stage):
    """Related code for each example: tree-sitter definitions of nearby identifiers, then BM25 chunks."""

    name = "context"
    version = "1"
    Config = ContextConfig
    reads = ("source", "snapshot")
    kind = "cpu"

    def process(self, example: Example) -> Example:
        """Fill snapshot.related; an unavailable repository or revision fails the example."""
        try:
            out = add_context(example, self.config)  # type: ignore[arg-type]
        except RepoError as exc:
            raise StageError(f"context: {exc}") from None
        for r in out.snapshot.related:
            if r.source in OUR_SOURCES:
                self.stats[f"{r.source}_snippets"] += 1
        return out
