"""The `diagnostics` stage: lints the snapshot's file state (Python: ruff/pyflakes) and records messages near the cursor."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nextedit.context.diagnose import diagnose
from nextedit.context.lint import LintError
from nextedit.context.locate import locate
from nextedit.context.repo_files import RepoError, read_file, resolve
from nextedit.pipeline.stage import Stage, StageError
from nextedit.record import Example, Snapshot


class DiagnosticsConfig(BaseModel):
    """Options of the diagnostics stage."""

    model_config = ConfigDict(extra="forbid")

    repo: str | None = Field(None, description="local git repository; default: example.source.repo when local")
    repos_dir: str | None = Field(None, description="folder of clones: <repos_dir>/<owner>/<name> or <repos_dir>/<name>")
    revision: str | None = Field(None, description="revision used when the example has no source.revision")
    at: Literal["auto", "revision", "parent"] = Field(
        "auto", description="read files at the revision or its parent; auto: parent for git-mined examples")
    window: int = Field(20, ge=0, description="keep diagnostics within this many lines of the cursor")
    linter: Literal["auto", "ruff", "pyflakes"] = "auto"
    select: list[str] = Field(default_factory=lambda: ["E9", "F"], description="ruff rule selection")
    max_diagnostics: int = Field(20, ge=0)


def file_at_revision(example: Example, config: DiagnosticsConfig) -> str | None:
    """The cursor file at the example's revision, or None when the repository, revision or file is unavailable."""
    try:
        repo, revision = locate(example, repo=config.repo, revision=config.revision,
                                repos_dir=config.repos_dir, at=config.at)
        root, commit = resolve(repo, revision)
    except RepoError:
        return None
    return read_file(root, commit, example.snapshot.path)


def add_diagnostics(example: Example, config: DiagnosticsConfig | None = None) -> Example:
    """The example with snapshot.diagnostics set from a real linter (unchanged for unlinted languages)."""
    config = config or DiagnosticsConfig()
    snapshot = with_diagnostics(example.snapshot, file_at_revision(example, config), config)
    if snapshot is example.snapshot:
        return example
    return example.model_copy(update={"snapshot": snapshot})


def with_diagnostics(snapshot: Snapshot, file_text: str | None, config: DiagnosticsConfig) -> Snapshot:
    """The snapshot with diagnostics from a real linter; `file_text` is the cursor file before the
    snapshot's history (at the revision, or as the editor had it). Unchanged for unlinted languages."""
    found = diagnose(snapshot, file_text, window=config.window, linter=config.linter,
                     select=tuple(config.select), max_diagnostics=config.max_diagnostics)
    if found is None:
        return snapshot
    return snapshot.model_copy(update={"diagnostics": found})


class DiagnosticsStage(Stage):
    """Linter diagnostics near the cursor (Python via ruff, else pyflakes; other languages: none)."""

    name = "diagnostics"
    version = "1"
    Config = DiagnosticsConfig
    reads = ("source", "snapshot")
    kind = "cpu"

    def process(self, example: Example) -> Example:
        """Set snapshot.diagnostics; a linter that cannot run fails the example with the reason."""
        try:
            out = add_diagnostics(example, self.config)  # type: ignore[arg-type]
        except LintError as exc:
            raise StageError(f"diagnostics: {exc}") from None
        self.stats["diagnostics"] += len(out.snapshot.diagnostics)
        return out
