"""Options of `nextedit mine` (pydantic): which commits, how many samples, splitting and budget knobs."""

from __future__ import annotations

import hashlib

import orjson
from pydantic import BaseModel, ConfigDict, Field

from nextedit.mine.excerpt import CONTEXT_TOKENS, EDITABLE_TOKENS

# Bumped whenever the examples mined from the same commit and options would change.
MINER_VERSION = "1"


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
    workers: int = Field(0, ge=0, description="processes (0: one per CPU)")

    def fingerprint(self) -> str:
        """sha256 of the options that shape each commit's examples (not which commits are mined)."""
        keep = self.model_dump(exclude={"rev_range", "since", "max_commits", "workers"})
        keep["version"] = MINER_VERSION
        return "sha256:" + hashlib.sha256(orjson.dumps(keep, option=orjson.OPT_SORT_KEYS)).hexdigest()
