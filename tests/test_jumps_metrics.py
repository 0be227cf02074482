"""Location metrics and the locations a Zed example holds (docs/jumps.md)."""

from __future__ import annotations

from nextedit.locations import hunk_rows, line_distance, patch_locations
from nextedit.metrics import (
    SIGNATURES,
    location_match,
    parse_signature,
    score_prediction,
)
from nextedit.patch import parse
from nextedit.record import Example, Location, Prediction, Snapshot
from nextedit.sources.zed_spec import example_to_spec, spec_to_example

TEXT = "".join(f"line{i} = old_name({i})\n" for i in range(30))
RENAME_B = "@@ -11,1 +11,1 @@\n-    old_name(x)\n+    new_name(x)\n"


def _snapshot() -> Snapshot:
    editable_end = TEXT.index("line6 ")
    return Snapshot(path="a.py", text=TEXT, cursor=10, editable=(0, editable_end))


def _example(*predictions: Prediction, locations: list[Location] | None = None) -> Example:
    expected = locations if locations is not None else [
        Location(path="b.py", start_line=10, end_line=11, patch=RENAME_B),
        Location(path="a.py", start_line=15, end_line=16, patch="@@ -16 +16 @@\n-line15 = old_name(15)\n+line15 = new_name(15)\n"),
    ]
    return Example(id="j", snapshot=_snapshot(), expected=[], locations=expected, predictions=list(predictions))


def test_distances_and_hunk_rows():
    a = Location(path="x", start_line=5, end_line=6)
    assert line_distance(a, Location(path="x", start_line=5, end_line=5)) == 0  # an insertion before line 5
    assert line_distance(a, Location(path="x", start_line=6, end_line=8)) == 1
    assert line_distance(a, Location(path="x", start_line=0, end_line=2)) == 4
    assert line_distance(a, Location(path="./x", start_line=5, end_line=6)) == 0
    assert line_distance(a, Location(path="y", start_line=5, end_line=6)) is None
    (h,) = parse("@@ -3,4 +3,5 @@\n a\n b\n-c\n+C\n+D\n d\n")[0].hunks
    assert hunk_rows(h) == (4, 5)
    (ins,) = parse("@@ -7,0 +8,1 @@\n+new\n")[0].hunks
    assert hunk_rows(ins) == (7, 7)
    two = patch_locations("--- a/a.py\n+++ b/a.py\n@@ -2 +2 @@\n-x\n+y\n--- a/b.py\n+++ b/b.py\n" + RENAME_B, "a.py")
    assert [(x.path, x.start_line, x.end_line) for x in two] == [("a.py", 1, 2), ("b.py", 10, 11)]


def test_location_match_top1_top3_and_jumps():
    ex = _example()
    exact = location_match(ex.locations, [Location(path="b.py", start_line=10, end_line=11, patch=RENAME_B)],
                           ex.snapshot)
    assert exact.within == {0: True, 3: True, 10: True} and exact.top3
    assert exact.jump is True and exact.jump_correct is True and exact.jump_expected is True
    near = location_match(ex.locations, [Location(path="a.py", start_line=12, end_line=13)], ex.snapshot)
    assert near.same_file and near.distance == 3 and near.within == {0: False, 3: True, 10: True}
    assert near.jump is True and near.jump_correct is False  # a location without an edit there
    wrong_edit = location_match(ex.locations, [Location(path="b.py", start_line=10, end_line=11,
                                                        patch="@@ -11 +11 @@\n-    old_name(x)\n+    nme(x)\n")],
                                ex.snapshot)
    assert wrong_edit.within[0] and wrong_edit.jump_correct is False
    ranked = location_match(ex.locations, [Location(path="c.py", start_line=0, end_line=1),
                                           Location(path="a.py", start_line=40, end_line=41),
                                           Location(path="b.py", start_line=11, end_line=12)], ex.snapshot)
    assert not ranked.same_file and not ranked.within[10] and ranked.top3
    here = location_match(ex.locations, [Location(path="a.py", start_line=2, end_line=3)], ex.snapshot)
    assert here.jump is False and here.jump_correct is None
    none = location_match(ex.locations, [], ex.snapshot)
    assert not none.predicted and none.jump is None and not none.top3


def test_score_reports_locations_only_for_examples_that_know_them():
    assert parse_signature(SIGNATURES["location"]).name == "location"
    pred = Prediction(provider="p", locations=[Location(path="b.py", start_line=10, end_line=11, patch=RENAME_B)])
    values = score_prediction(_example(pred), 0).values
    assert values["location_top1"] and values["location_within_0"] and values["jump_correct"] is True
    # A prediction without locations is placed by its patch's hunks (here: inside the editable region).
    patch = "@@ -2 +2 @@\n-line1 = old_name(1)\n+line1 = new_name(1)\n"
    values = score_prediction(_example(Prediction(provider="p", patch=patch)), 0).values
    assert values["location_predicted"] and values["jump_predicted"] is False and not values["location_top1"]
    plain = Example(id="p", snapshot=_snapshot(), expected=[patch], predictions=[Prediction(provider="p", patch=patch)])
    assert "location_top1" not in score_prediction(plain, 0).values


def test_zed_keeps_locations_in_multi_file_patches_and_ours_beside_them():
    multi = "--- a/a.py\n+++ b/a.py\n@@ -2 +2 @@\n-line1 = old_name(1)\n+line1 = new_name(1)\n" \
            "--- a/b.py\n+++ b/b.py\n" + RENAME_B
    ex = Example(id="m", snapshot=_snapshot(), expected=[multi],
                 locations=patch_locations(multi, "a.py"))
    spec = example_to_spec(ex)
    assert "nextedit" not in spec  # Zed's own multi-file patch says where
    back = spec_to_example(spec)
    assert [(x.path, x.start_line) for x in back.locations] == [("a.py", 1), ("b.py", 10)]
    jump = _example()
    spec = example_to_spec(jump)
    assert spec["nextedit"]["locations"][0]["path"] == "b.py"
    assert spec_to_example(spec).locations == jump.locations
