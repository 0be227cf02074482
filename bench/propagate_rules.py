"""Does propagate gain by leaving alone a name the edit still writes? Replays propagate with and without the rule.

Usage: .venv/bin/python bench/propagate_rules.py NAME=EXAMPLES.jsonl ... [--runs NAME=SCORED.jsonl ...] [--no-append]

Each EXAMPLES file holds examples with expected edits (a recipe's `validated.jsonl` or `eval/*/examples.jsonl`, a
quickstart's `test.jsonl`). propagate (nextedit.predictors.baselines) is run twice on every example: as it is,
where a name the latest edit still writes as often as it removed it is not a rename, and with that rule off
(every one-for-one replacement is a rename, as before). Both are scored with nextedit's metrics against noop.
Reports per set the edits each proposes, deltaChrF, the paired bootstrap difference (rule on − rule off), and,
on the examples where the rule changes propagate's edit (mostly to no edit), what each arm and noop score there.
Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from _report import append_section, markdown_table
from candidate_margin import delta_chrf

from nextedit.evaluate.compare import paired_difference
from nextedit.jsonl import read_examples
from nextedit.metrics.score import ScoreError
from nextedit.predictors import baselines
from nextedit.predictors.abstain import clean_near_cursor
from nextedit.record import Example


@contextmanager
def rule_off() -> Iterator[None]:
    """propagate as it was before the rule: no name counts as still written."""
    kept = baselines._still_written
    baselines._still_written = lambda _blocks, _name: False
    try:
        yield
    finally:
        baselines._still_written = kept


def replay(examples: list[Example]) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Per arm ("rule on", "rule off", "noop", and the three restricted to the examples whose edit the rule
    changes, "changed: ..."): id -> deltaChrF; and the edits propagate proposes with the rule on and off."""
    proposer = baselines.PropagatePredictor()
    on = {ex.id: proposer.propose(ex) for ex in examples}
    with rule_off():
        off = {ex.id: proposer.propose(ex) for ex in examples}
    arms: dict[str, dict[str, float]] = {k: {} for k in ("rule on", "rule off", "noop")}
    arms.update({f"changed: {k}": {} for k in ("rule on", "rule off", "noop")})
    for ex in examples:
        try:
            scored = {arm: delta_chrf(ex, patch) for arm, patch in
                      (("rule on", on[ex.id]), ("rule off", off[ex.id]), ("noop", ""))}
        except ScoreError:  # no expected patch applies to the snapshot (as `nextedit score` leaves it out)
            continue
        for arm, value in scored.items():
            arms[arm][ex.id] = value
        if on[ex.id] != off[ex.id]:
            for k in ("rule on", "rule off", "noop"):
                arms[f"changed: {k}"][ex.id] = arms[k][ex.id]
    return arms, {"rule on": sum(map(bool, on.values())), "rule off": sum(map(bool, off.values()))}


def replay_run(examples: list[Example]) -> tuple[dict[str, dict[str, float]], int]:
    """Per arm ("noop", "propagate", "student", each "as recorded" and "replayed"): id -> deltaChrF; and how many
    examples needed the student's own answer (no edit assumed)."""
    proposer = baselines.PropagatePredictor()
    arms: dict[str, dict[str, float]] = {f"{who} {when}": {} for who in ("propagate", "student")
                                          for when in ("as recorded", "replayed")}
    arms["noop"] = {}
    unknown = 0
    for ex in examples:
        scores = {s.prediction: s.values for s in ex.scores}
        by = {p.provider: i for i, p in enumerate(ex.predictions)}
        student = next(i for name, i in by.items() if name.startswith("student"))
        recorded = {who: float(scores[i]["delta_chrf"]) for who, i in
                    (("noop", by["noop"]), ("propagate", by["propagate"]), ("student", student))}
        new = proposer.propose(ex)
        offered = ex.predictions[student]
        again = recorded["student"]
        if offered.candidate == "propagate" and new != offered.patch:
            if not new and not clean_near_cursor(ex):
                unknown += 1
            again = delta_chrf(ex, new)
        arms["noop"][ex.id] = recorded["noop"]
        arms["propagate as recorded"][ex.id] = recorded["propagate"]
        arms["propagate replayed"][ex.id] = (recorded["propagate"] if new == ex.predictions[by["propagate"]].patch
                                             else delta_chrf(ex, new))
        arms["student as recorded"][ex.id] = recorded["student"]
        arms["student replayed"][ex.id] = again
    return arms, unknown


def against(arms: dict[str, dict[str, float]], recorded: str, replayed: str) -> str:
    """The student's paired difference to a baseline, as recorded -> replayed."""
    before = paired_difference(arms[recorded], arms["student as recorded"])
    return f"{fmt(before)} -> {fmt(paired_difference(arms[replayed], arms['student replayed']))}"


def fmt(diff: dict | None) -> str:
    if diff is None:
        return "-"
    lo, hi = diff["ci"]
    return f"{diff['difference']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", metavar="NAME=EXAMPLES.jsonl")
    ap.add_argument("--runs", nargs="*", default=[], metavar="NAME=SCORED.jsonl",
                    help="recorded runs whose student is replayed with the rule")
    ap.add_argument("--no-append", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    rows = []
    for item in args.sets:
        name, sep, path = item.partition("=")
        if not sep:
            ap.error(f"{item!r}: expected NAME=EXAMPLES.jsonl")
        examples = list(read_examples(path))
        arms, edits = replay(examples)
        n = len(arms["rule on"])
        mean = {k: sum(v.values()) / len(v) if v else 0.0 for k, v in arms.items()}
        changed = arms["changed: noop"]
        no_edit = sum(1 for v in changed.values() if v)
        rows.append([name, n, f"{mean['noop']:.2f}", f"{mean['rule off']:.2f}", f"{mean['rule on']:.2f}",
                     fmt(paired_difference(arms["rule off"], arms["rule on"])),
                     f"{edits['rule off']} -> {edits['rule on']}", f"{len(changed)} ({no_edit})",
                     (f"{mean['changed: rule off']:.1f} / {mean['changed: rule on']:.1f} / "
                      f"{mean['changed: noop']:.1f}") if changed else "-"])
    headers = ("set", "examples", "noop", "propagate, rule off", "propagate, rule on", "on − off (95% CI)",
               "edits proposed (off -> on)", "changed (expect no edit)", "on the changed: off / on / noop")
    lines = markdown_table(rows, headers, "lrrrrrrr")
    run_rows = []
    for item in args.runs:
        name, sep, path = item.partition("=")
        if not sep:
            ap.error(f"--runs {item!r}: expected NAME=SCORED.jsonl")
        arms, unknown = replay_run(list(read_examples(path)))
        mean = {k: sum(v.values()) / len(v) for k, v in arms.items()}
        run_rows.append([name, len(arms["noop"]), f"{mean['noop']:.2f}",
                         f"{mean['propagate as recorded']:.2f} -> {mean['propagate replayed']:.2f}",
                         f"{mean['student as recorded']:.2f} -> {mean['student replayed']:.2f}",
                         against(arms, "noop", "noop"), against(arms, "propagate as recorded", "propagate replayed"),
                         unknown])
    if run_rows:
        lines += ["", *markdown_table(run_rows, ("run", "examples", "noop", "propagate", "student",
                                                 "student − noop", "student − propagate", "own answer needed"),
                                      "lrrrrllr")]
    print("\n".join(lines))
    if not args.no_append:
        intro = ("deltaChrF per example; the difference is a paired bootstrap over the set's examples. 'changed' "
                 "counts the examples where the rule changes propagate's edit (how many of them expect no edit); the "
                 "last column is the mean deltaChrF there.")
        append_section("quality: propagate leaves alone a name the edit still writes", [intro, "", *lines])


if __name__ == "__main__":
    main()
