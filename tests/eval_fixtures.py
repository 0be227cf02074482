"""Small scored datasets for the evaluation tests: renames in progress (propagate's home ground) and others."""

from __future__ import annotations

from nextedit import patch as patchlib
from nextedit.evaluate.stages import PredictStage, ScoreStage
from nextedit.record import Example, HistoryEvent, Snapshot

RENAME_DIFF = ("@@ -1,3 +1,3 @@\n-def restock(item, amount):\n+def restock(item, qty):\n"
               "     item.count += amount\n     log(item)\n")
RENAME_TEXT = "def restock(item, qty):\n    item.count += amount\n    log(item, amount)\n"
RUST_TEXT = "fn area(w: u32, h: u32) -> u32 {\n    w * h\n}\n"


def rename_example(i: int, *, path: str = "stock.py") -> Example:
    """The user renamed `amount` to `qty` in the signature; the body still says `amount`."""
    expected = patchlib.make(RENAME_TEXT, RENAME_TEXT.replace("amount", "qty"), path=path)
    return Example(id=f"rename-{i}", snapshot=Snapshot(path=path, text=RENAME_TEXT, cursor=20,
                                                       history=[HistoryEvent(path=path, diff=RENAME_DIFF)]),
                   expected=[expected])


def rust_example(i: int) -> Example:
    """An edit no baseline can guess (add a doc comment); only `noop`-style empty answers."""
    new = f"/// Area of rectangle {i}.\n" + RUST_TEXT
    return Example(id=f"rust-{i}", snapshot=Snapshot(path="geo/area.rs", text=RUST_TEXT, cursor=0),
                   expected=[patchlib.make(RUST_TEXT, new, path="geo/area.rs")])


def no_edit_example(i: int) -> Example:
    """Nothing should change here."""
    text = f"const answer{i} = 42;\n"
    return Example(id=f"quiet-{i}", snapshot=Snapshot(path="web/answer.ts", text=text, cursor=5), expected=[])


def dataset(n_rename: int = 6, n_rust: int = 4, n_quiet: int = 2) -> list[Example]:
    """Unscored examples of three languages."""
    return ([rename_example(i) for i in range(n_rename)] + [rust_example(i) for i in range(n_rust)]
            + [no_edit_example(i) for i in range(n_quiet)])


def predict_and_score(examples: list[Example], providers: tuple[str, ...] = ("noop", "propagate")) -> list[Example]:
    """Run the predict stages and the (real) score stage in memory, without files."""
    import asyncio

    stages = [PredictStage({"provider": p}) for p in providers]
    scorer = ScoreStage()
    out = []
    for ex in examples:
        for stage in stages:
            ex = asyncio.run(stage.process(ex))
        out.append(scorer.process(ex))
    return out
