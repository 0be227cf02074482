"""Reference settle tracker: decides when a predicted-for region has gone quiet, for editor plugins to port.

The rules follow Zed's (reference zed-ep.md section 8.1). A prediction request tracks its editable
region (document character offsets and the region's text at request time). Every buffer edit is
reported with `edit(path, start, end, new_text, now)`, in offsets of the document *before* that
edit. The tracker keeps each region's text itself, so a plugin never has to read the buffer back:

- an edit wholly above a region (ends at or before its start) shifts the region by the edit's
  length change;
- an edit that overlaps the region (or inserts at either of its edges) is absorbed: the region
  grows or shrinks to cover the edit, its text is updated, and its quiet clock restarts;
- an edit wholly below a region leaves it alone.

`poll(now)` returns the regions that have been quiet for `quiet_s` seconds (no edit touching them)
and forgets them; a region that has not settled within `ttl_s` seconds of being tracked is
dropped (user kept editing: no signal), and so is one whose text grew beyond `max_chars` (the
region was obliterated by a huge edit). `next_poll(now)` says when polling is next worth it.
Time is whatever clock the caller uses (seconds, float); nothing here reads the clock.

A plugin that still offers the prediction `hold`s its region: a held region never settles or
expires (the user has not decided yet), and `release(request_id, now)` restarts both clocks at
the decision. `flush(now)` settles every region at once (the editor is quitting).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DroppedRegion", "PollResult", "SettleTracker", "SettledRegion", "TrackedRegion"]

#: Zed's constants: 10 s of quiet, 5 min to settle.
DEFAULT_QUIET_S = 10.0
DEFAULT_TTL_S = 300.0


@dataclass(frozen=True)
class SettledRegion:
    """A region that went quiet: its text now, and how long it had been quiet when polled."""

    request_id: str
    path: str
    text: str
    quiet_s: float
    start: int = 0
    end: int = 0
    edits: int = 0  # edits absorbed into the region since it was tracked


@dataclass(frozen=True)
class DroppedRegion:
    """A region given up on: `reason` is "ttl" (never quiet in time) or "too_large"."""

    request_id: str
    path: str
    reason: str


@dataclass
class PollResult:
    """Everything one poll decided."""

    settled: list[SettledRegion] = field(default_factory=list)
    dropped: list[DroppedRegion] = field(default_factory=list)


@dataclass
class TrackedRegion:
    """One pending capture: where the region is now, what it holds, and its clocks."""

    request_id: str
    path: str
    start: int
    end: int
    text: str
    tracked_at: float
    last_edit_at: float
    edits: int = 0
    held: bool = False

    def overlaps(self, start: int, end: int) -> bool:
        """Whether an edit replacing [start, end) touches this region (edge insertions count)."""
        if start == end or self.start == self.end:
            return self.start <= end and start <= self.end
        return start < self.end and self.start < end


class SettleTracker:
    """Tracks the editable regions of prediction requests until they settle (quiet) or expire (TTL)."""

    def __init__(self, quiet_s: float = DEFAULT_QUIET_S, ttl_s: float = DEFAULT_TTL_S,
                 max_chars: int | None = None) -> None:
        if quiet_s <= 0 or ttl_s <= 0:
            raise ValueError(f"quiet_s and ttl_s must be positive (got {quiet_s}, {ttl_s})")
        self.quiet_s = quiet_s
        self.ttl_s = ttl_s
        self.max_chars = max_chars
        self._regions: dict[str, TrackedRegion] = {}

    def __len__(self) -> int:
        return len(self._regions)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._regions

    def region(self, request_id: str) -> TrackedRegion | None:
        """The pending region of a request (None once settled, dropped or forgotten)."""
        return self._regions.get(request_id)

    def track(self, request_id: str, path: str, start: int, end: int, text: str, now: float) -> None:
        """Start tracking `text` = the document's [start, end) when the request was made.

        Tracking the same request id again replaces the earlier region.
        """
        if not 0 <= start <= end or end - start != len(text):
            raise ValueError(f"request {request_id}: region [{start}, {end}) does not match "
                             f"its text of {len(text)} characters")
        self._regions[request_id] = TrackedRegion(request_id, path, start, end, text, now, now)

    def edit(self, path: str, start: int, end: int, new_text: str, now: float) -> None:
        """Report a buffer edit: document [start, end) (offsets before the edit) became `new_text`."""
        if not 0 <= start <= end:
            raise ValueError(f"edit of {path}: bad range [{start}, {end})")
        delta = len(new_text) - (end - start)
        for region in self._regions.values():
            if region.path != path:
                continue
            if region.overlaps(start, end):
                lo = max(start, region.start) - region.start
                hi = min(end, region.end) - region.start
                region.text = region.text[:lo] + new_text + region.text[hi:]
                region.start = min(start, region.start)
                region.end = region.start + len(region.text)
                region.last_edit_at = now
                region.edits += 1
            elif end <= region.start:
                region.start += delta
                region.end += delta

    def hold(self, request_id: str) -> None:
        """Keep a region from settling or expiring until `release` (its prediction is still offered)."""
        region = self._regions.get(request_id)
        if region is not None:
            region.held = True

    def release(self, request_id: str, now: float) -> None:
        """The user decided on the prediction: the quiet and TTL clocks start again at `now`."""
        region = self._regions.get(request_id)
        if region is not None and region.held:
            region.held = False
            region.last_edit_at = max(region.last_edit_at, now)
            region.tracked_at = max(region.tracked_at, now)

    def flush(self, now: float) -> PollResult:
        """Settle every region now, held or not, quiet or not (the editor is quitting)."""
        result = PollResult()
        for request_id, region in list(self._regions.items()):
            del self._regions[request_id]
            if self.max_chars is not None and len(region.text) > self.max_chars:
                result.dropped.append(DroppedRegion(request_id, region.path, "too_large"))
                continue
            result.settled.append(SettledRegion(request_id, region.path, region.text,
                                                max(0.0, now - region.last_edit_at), region.start,
                                                region.end, region.edits))
        return result

    def forget(self, request_id: str) -> None:
        """Stop tracking a request (e.g. its buffer was closed); unknown ids are ignored."""
        self._regions.pop(request_id, None)

    def forget_path(self, path: str) -> None:
        """Stop tracking every region of a document (closed or reloaded from disk)."""
        for request_id in [r.request_id for r in self._regions.values() if r.path == path]:
            del self._regions[request_id]

    def poll_all(self, now: float) -> PollResult:
        """Settle the quiet regions and drop the expired ones (both leave the tracker)."""
        result = PollResult()
        for request_id, region in list(self._regions.items()):
            if region.held:
                continue
            settles_at = region.last_edit_at + self.quiet_s
            if settles_at <= now and settles_at <= region.tracked_at + self.ttl_s:
                del self._regions[request_id]
                if self.max_chars is not None and len(region.text) > self.max_chars:
                    result.dropped.append(DroppedRegion(request_id, region.path, "too_large"))
                    continue
                result.settled.append(SettledRegion(request_id, region.path, region.text,
                                                    now - region.last_edit_at, region.start,
                                                    region.end, region.edits))
            elif now >= region.tracked_at + self.ttl_s:
                del self._regions[request_id]
                result.dropped.append(DroppedRegion(request_id, region.path, "ttl"))
        return result

    def poll(self, now: float) -> list[SettledRegion]:
        """The regions that settled by `now` (expired ones are dropped silently; see `poll_all`)."""
        return self.poll_all(now).settled

    def next_poll(self, now: float) -> float | None:
        """The earliest time at which a poll can settle or drop something (None when idle)."""
        times = [min(r.last_edit_at + self.quiet_s, r.tracked_at + self.ttl_s) for r in self._regions.values()
                 if not r.held]
        return max(min(times), now) if times else None
