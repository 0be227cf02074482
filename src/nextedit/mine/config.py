"""Options of `nextedit mine` (pydantic): which commits, how many samples, splitting and budget knobs."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from nextedit.mine.excerpt import CONTEXT_TOKENS, EDITABLE_TOKENS
from nextedit.mine.filters import FILE_KINDS

# Bumped whenever the examples mined from the same commit and options would change.
MINER_VERSION = "3"

FileKind = Literal["lock", "vendored", "generated", "minified"]


class FilterConfig(BaseModel):
    """Data-quality filters of `nextedit mine`; each one's count is in the mining log and `nextedit stats`.
    A number set to 0 turns its filter off."""

    model_config = ConfigDict(extra="forbid")

    skip_files: list[FileKind] = Field(default_factory=lambda: list(FILE_KINDS),
                                       description="kinds of changed files never mined")
    exclude: list[str] = Field(default_factory=list, description="globs of files never mined (reason: excluded)")
    whitespace_only: bool = Field(True, description="skip files whose change, and examples whose expected edit, "
                                                    "only touches whitespace or blank lines")
    rewrite_fraction: float = Field(0.8, ge=0.0, le=1.0, description="skip an existing file when the change "
                                    "removes at least this fraction of its lines (a rewrite, a move, a reformat)")
    rewrite_min_lines: int = Field(50, ge=1, description="... and at least this many lines")
    max_expected_lines: int = Field(30, ge=0, description="drop examples whose expected edit changes more lines "
                                    "(giant)")
    trivial_chars: int = Field(2, ge=0, description="drop examples whose expected edit only inserts or deletes "
                               "up to this many punctuation characters, nothing else (a bracket, a colon: "
                               "implied by the syntax)")
    near_duplicate: float = Field(0.8, ge=0.0, le=1.0, description="drop an example when its cursor window and "
                                  "expected edit are this similar (MinHash Jaccard) to one of an earlier commit")
    window_lines: int = Field(10, ge=0, description="lines around the cursor that the near-duplicate test compares")

    @classmethod
    def off(cls) -> FilterConfig:
        """Every data-quality filter turned off (files that are not code are still skipped)."""
        return cls(skip_files=[], whitespace_only=False, rewrite_fraction=0.0, max_expected_lines=0,
                   trivial_chars=0, near_duplicate=0.0)


def load_filters(path: str | Path | None, *, off: bool = False) -> FilterConfig:
    """Filter settings from a TOML file (its keys, or a [filters] table), over the defaults or, with
    `off`, over every filter turned off. ValueError naming the file and field when invalid."""
    from pydantic import ValidationError

    base = FilterConfig.off() if off else FilterConfig()
    if path is None:
        return base
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    data = data.get("filters", data)
    try:
        return FilterConfig.model_validate({**base.model_dump(), **data})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{path}: field {field}: {err['msg']}") from None


class MineConfig(BaseModel):
    """What to mine and how; the defaults are usable as they are."""

    model_config = ConfigDict(extra="forbid")

    rev_range: str | None = Field(None, description="git revision range, e.g. v1.0..main (default HEAD)")
    since: str | None = Field(None, description="only commits after this date (git --since syntax)")
    paths: list[str] = Field(default_factory=list, description="only files matching these globs")
    max_commits: int | None = Field(None, ge=1, description="look at the newest N non-merge commits only")
    samples_per_commit: int = Field(3, ge=1, description="examples per commit (distinct split points)")
    seed: int = 0
    min_changed_lines: int = Field(1, ge=0, description="skip commits changing fewer code lines")
    max_changed_lines: int = Field(1000, ge=1, description="skip commits changing more code lines")
    max_unit_lines: int = Field(8, ge=1, description="cut added blocks longer than this into paragraphs")
    group_lines: int = Field(8, ge=0, description="units this close (lines) form one history event / expected group")
    max_group_units: int = Field(3, ge=1, description="at most this many units in the expected edit")
    half_typing: float = Field(0.5, ge=0.0, le=1.0, description="chance to leave the next line half-typed")
    max_history_events: int = Field(10, ge=0, description="keep the newest N history events")
    editable_tokens: int = Field(EDITABLE_TOKENS, ge=1)
    context_tokens: int = Field(CONTEXT_TOKENS, ge=0)
    finished_examples: float = Field(0.0, ge=0.0, le=1.0, description="chance to also emit a no-edit example "
                                     "right after a sample whose expected edit completes the commit "
                                     "(nextedit.mine.finished)")
    jump_examples: float = Field(0.0, ge=0.0, le=1.0, description="chance to also emit a jump example per sample: "
                                 "the cursor at the last edit, no edit expected there, the next edit group "
                                 "elsewhere (nextedit.mine.locations, docs/jumps.md)")
    workers: int = Field(0, ge=0, description="processes (0: one per CPU)")
    filters: FilterConfig = Field(default_factory=FilterConfig, description="data-quality filters")

    def fingerprint(self) -> str:
        """sha256 of the options that shape each commit's examples (not which commits are mined)."""
        keep = self.model_dump(exclude={"rev_range", "since", "max_commits", "workers"})
        keep["version"] = MINER_VERSION
        return "sha256:" + hashlib.sha256(orjson.dumps(keep, option=orjson.OPT_SORT_KEYS)).hexdigest()
