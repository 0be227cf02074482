"""The scrubber applied to records: snapshots, patches and whole examples, each text read with its own path.

Every piece is first `learn`ed with its real path (so a `.env` in the related excerpts or a YAML
diff in the history is read with the right rules), then scrubbed; offsets (cursor, editable region,
expected cursors) are mapped onto the scrubbed text, and patches are rebuilt against the scrubbed
text so they still apply. Placeholders are consistent within one Scrubber: use one per record.
"""

from __future__ import annotations

from typing import Any

from nextedit import patch as patchlib
from nextedit.privacy.scrub import OffsetMap, Scrubber
from nextedit.record import Example, Prediction, Snapshot

__all__ = ["learn_example", "learn_snapshot", "scrub_example", "scrub_patch", "scrub_snapshot",
           "scrub_snapshot_data"]


def learn_snapshot(scrubber: Scrubber, snap: Snapshot) -> None:
    """Remember the secrets of every text of a snapshot, each read as its own file."""
    scrubber.learn(snap.text, path=snap.path)
    for event in snap.history:
        scrubber.learn(event.diff, path=event.path, diff=True)
    for excerpt in snap.related:
        scrubber.learn(excerpt.text, path=excerpt.path)
    for diag in snap.diagnostics:
        scrubber.learn(diag.message)


def learn_example(scrubber: Scrubber, example: Example) -> None:
    """`learn_snapshot` plus the expected patches, the settled text and the predictions."""
    snap = example.snapshot
    learn_snapshot(scrubber, snap)
    for patch in example.expected:
        scrubber.learn(patch, path=snap.path, diff=True)
    if example.settled is not None:
        scrubber.learn(example.settled.text, path=snap.path)
    for pred in example.predictions:
        if pred.patch:
            scrubber.learn(pred.patch, path=snap.path, diff=True)


def _scrub_text(scrubber: Scrubber, snap: Snapshot) -> tuple[str, OffsetMap]:
    return scrubber.scrub_mapped(snap.text, path=snap.path)


def scrub_snapshot(scrubber: Scrubber, snap: Snapshot) -> Snapshot:
    """The snapshot with its text, history, related excerpts and diagnostics scrubbed; the cursor and
    the editable region point at the same places in the scrubbed text."""
    text, offsets = _scrub_text(scrubber, snap)
    return _with_text(scrubber, snap, text, offsets)


def _with_text(scrubber: Scrubber, snap: Snapshot, text: str, offsets: OffsetMap) -> Snapshot:
    start, end = snap.editable or (0, len(snap.text))
    editable = (offsets(start), offsets(end, end=True))
    cursor = min(max(offsets(snap.cursor), editable[0]), editable[1])
    return snap.model_copy(update={
        "text": text, "cursor": cursor, "editable": editable,
        "history": [h.model_copy(update={"diff": scrubber.scrub(h.diff, path=h.path, diff=True)})
                    for h in snap.history],
        "related": [r.model_copy(update={"text": scrubber.scrub(r.text, path=r.path)}) for r in snap.related],
        "diagnostics": [d.model_copy(update={"message": scrubber.scrub(d.message)}) for d in snap.diagnostics],
    })


def scrub_patch(scrubber: Scrubber, patch: str, snap: Snapshot, scrubbed_text: str,
                cursor: int | None = None) -> tuple[str, int | None]:
    """A patch against `snap.text` turned into one against `scrubbed_text` (the scrubbed snapshot
    text), and `cursor` (an offset into the patched text) mapped the same way. A patch that does not
    apply is scrubbed as a diff, line by line."""
    try:
        new = patchlib.apply(patch, snap.text, start_line=snap.start_line)
    except patchlib.PatchError:
        return scrubber.scrub(patch, path=snap.path, diff=True), cursor
    new_scrubbed, offsets = scrubber.scrub_mapped(new, path=snap.path)
    out = patchlib.make(scrubbed_text, new_scrubbed, path=snap.path, start_line=snap.start_line)
    return out, (None if cursor is None else offsets(min(cursor, len(new))))


def scrub_example(example: Example, scrubber: Scrubber | None = None) -> Example:
    """A copy of the example with every text scrubbed: snapshot, expected patches (and cursors),
    settled text, predictions (raw, patch, cursor). One Scrubber for the whole record."""
    scrubber = scrubber or Scrubber()
    learn_example(scrubber, example)
    snap = example.snapshot
    text, offsets = _scrub_text(scrubber, snap)
    new_snap = _with_text(scrubber, snap, text, offsets)
    expected, cursors = [], []
    for i, patch in enumerate(example.expected):
        cursor = example.expected_cursors[i] if i < len(example.expected_cursors) else None
        p, c = scrub_patch(scrubber, patch, snap, text, cursor)
        expected.append(p)
        cursors.append(c)
    update: dict[str, Any] = {"snapshot": new_snap, "expected": expected,
                              "expected_cursors": cursors if example.expected_cursors else []}
    if example.settled is not None:
        update["settled"] = example.settled.model_copy(update={"text": scrubber.scrub(example.settled.text,
                                                                                      path=snap.path)})
    update["predictions"] = [_scrub_prediction(scrubber, p, snap, text) for p in example.predictions]
    return example.model_copy(update=update)


def _scrub_prediction(scrubber: Scrubber, pred: Prediction, snap: Snapshot, text: str) -> Prediction:
    update: dict[str, Any] = {}
    if pred.raw:
        update["raw"] = scrubber.scrub(pred.raw, path=snap.path)
    if pred.patch:
        update["patch"], update["cursor"] = scrub_patch(scrubber, pred.patch, snap, text, pred.cursor)
    if pred.error:
        update["error"] = scrubber.scrub(pred.error)
    return pred.model_copy(update=update)


def scrub_snapshot_data(scrubber: Scrubber, data: dict[str, Any]) -> dict[str, Any]:
    """`scrub_snapshot` for a snapshot as plain JSON data (what the server stores)."""
    snap = Snapshot.model_validate(data)
    learn_snapshot(scrubber, snap)
    return scrub_snapshot(scrubber, snap).model_dump(mode="json")
