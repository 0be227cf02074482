"""Feedback records for the feedback tests: a rename in progress, predicted right (GOOD) or wrong (BAD)."""

from __future__ import annotations

from nextedit import patch as patchlib
from nextedit.feedback.records import FeedbackPrediction, FeedbackRecord
from nextedit.record import HistoryEvent, Settled, Snapshot

TEXT = "def restock(item, qty):\n    item.count += amount\n    log(item, amount)\n"
GOOD = TEXT.replace("amount", "qty")
BAD = TEXT.replace("amount", "count")
RENAME = ("@@ -1,3 +1,3 @@\n-def restock(item, amount):\n+def restock(item, qty):\n"
          "     item.count += amount\n     log(item, amount)\n")
#: Undoes the user's rename: a prediction with a reversal ratio of 1.
UNDO = TEXT.replace("qty", "amount")


def record(i: int, outcome: str, region: str, settled: str | None, *, user: str = "u-1") -> FeedbackRecord:
    """A feedback record for the rename snapshot whose prediction is `region`."""
    snap = Snapshot(path="stock.py", text=TEXT, cursor=20, history=[HistoryEvent(path="stock.py", diff=RENAME)])
    patch = patchlib.make(TEXT, region, path="stock.py")
    return FeedbackRecord(id=f"fb-{i}", request_id=f"r{i}", user=user, snapshot=snap,
                          prediction=FeedbackPrediction(patch=patch, region=region), outcome=outcome,
                          settled=Settled(text=settled) if settled is not None else None)
