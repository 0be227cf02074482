"""A prediction offered to the editor and its fate: follows the document's changes and tells whether
the user accepted it (the document now holds the predicted text), is typing along it, or diverged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rapidfuzz.distance import Indel

from nextedit.lsp.documents import Change
from nextedit.lsp.snapshot import Edit

Fate = Literal["accepted", "following", "diverged", "untouched"]


@dataclass
class Offer:
    """One prediction for one document: its edits in document char offsets, kept up to date."""

    request_id: str
    model_version: str | None
    arm: str | None
    uri: str
    path: str
    #: Document version the prediction was made for, and the cursor (char offset) it was asked at.
    version: int
    cursor: int
    #: The edits (document offsets, sorted) and the span [start, end) they cover: `old` -> `new`.
    edits: list[Edit]
    start: int
    end: int
    old: str
    new: str
    #: Editable region of the request (document offsets), its text before and with the prediction.
    region: tuple[int, int] = (0, 0)
    region_before: str = ""
    region_predicted: str = ""
    #: How it was shown ("inline_completion" / "code_action"), None until shown.
    shown: str | None = None
    reported: set[str] = field(default_factory=set)
    touched: bool = False
    #: The offer's own edits not applied yet (document offsets, kept current), while every change so far
    #: was one of them: a client applying a multi-edit code action edit by edit. None once the user typed.
    unapplied: list[Edit] | None = None
    #: Later requests that predicted the same edit while this offer stood (their regions settle with it).
    riders: list[str] = field(default_factory=list)
    #: The edit a jump led to (another file or lines away from the request's region): its events are marked
    #: as jump events, and it has no region of its own to settle.
    jump: bool = False

    def __post_init__(self) -> None:
        if self.unapplied is None:
            self.unapplied = list(self.edits)

    def own(self, change: Change) -> bool:
        """Whether `change` applies one of the offer's own edits (exactly), and keep the others current."""
        pending = self.unapplied
        if pending is None:
            return False
        hit = next((k for k, x in enumerate(pending)
                    if (x.start, x.end, x.text) == (change.start, change.end, change.text)), None)
        if hit is None:
            self.unapplied = None
            return False
        del pending[hit]
        self.unapplied = [x if x.end <= change.start else Edit(x.start + change.delta, x.end + change.delta, x.text)
                          for x in pending]
        return True

    def follow(self, change: Change) -> None:
        """Move the span along with a document change (offsets of the text before the change)."""
        s, e = self.start, self.end
        if change.end < s or (change.end == s and change.start < s):
            self.start, self.end = s + change.delta, e + change.delta
            self.edits = [Edit(x.start + change.delta, x.end + change.delta, x.text) for x in self.edits]
            return
        if change.start > e:
            return
        self.touched = True
        if change.start < s or change.end > e:
            # The change reaches past the span (e.g. an inline item replacing from the cursor): widen the
            # span to cover it, with the text it replaced outside the span on both sides of old and new.
            removed = change.removed
            before = removed[:max(0, s - change.start)]
            after = removed[len(removed) - (change.end - e):] if change.end > e else ""
            self.old = before + self.old + after
            self.new = before + self.new + after
            self.start = min(s, change.start)
            e = max(e, change.end)
        self.end = e + change.delta

    def fate(self, text: str) -> Fate:
        """What the document's current text says about this offer."""
        if not self.touched:
            return "untouched"
        current = text[self.start:self.end]
        if current == self.new:
            return "accepted"
        total = Indel.distance(self.old, self.new)
        if Indel.distance(self.old, current) + Indel.distance(current, self.new) == total:
            return "following"
        return "diverged"

    def current_edits(self, text: str) -> list[Edit]:
        """The edits that still turn the document into the predicted text (one span edit once typed into)."""
        if not self.touched:
            return list(self.edits)
        return [Edit(self.start, self.end, self.new)] if text[self.start:self.end] != self.new else []

    def result(self, text: str) -> str:
        """The document text with this offer applied."""
        out = text
        for e in reversed(self.current_edits(text)):
            out = out[:e.start] + e.text + out[e.end:]
        return out
