"""How strict should the reversal guard be, should whitespace-only edits or edits that repeat a line be offered,
and should own edits be withheld where the code lints clean? Replays a student's recorded predictions.

Usage: .venv/bin/python bench/reversal_guard.py [--provider LABEL] NAME=SCORED.jsonl ...
           [--limits 0,0.1,0.25,0.5,none] [--current 0.5] [--references NAME=MINED.jsonl ...] [--quiet-when-clean]
           [--no-append]

Each SCORED file holds evaluated examples with the student's predictions (provider LABEL, e.g. a recipe's
`eval/held-out/scored.jsonl` or `calibration/scored.jsonl`). For every example the student's edit as the model
made it (an edit the guard withheld is restored; one withheld for low confidence stays withheld) is checked
against each limit: an edit undoing more than `limit` of the user's last edit is replaced by "no edit"
(`nextedit.predictors.abstain.guard`, which also withholds the model's own whitespace-only edits and edits that
put a line next to a copy of itself), then scored with nextedit's metrics. Three more rows replay `--current` with
whitespace-only edits offered (`allow_whitespace_only`), with edits that repeat a line offered
(`allow_repeated_lines`), and with the model's own edits withheld where the linter reported nothing near the
cursor (`quiet_when_clean`); with `--quiet-when-clean` every row withholds them (the quickstart's rules), so the
limits and the repeated-line rule are judged where the linter shows the code mid-change. `--references` counts
how many expected edits of mined examples repeat a line (what the repeated-line rule would withhold if the student
made exactly the edits people made). Reports deltaChrF, the mean reversal ratio and the edits offered per rule,
with the paired bootstrap differences against `--current` (a limit to compare with, e.g. the one calibration
chose) and against propagate, whose figures come from the same files. Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse

from _report import append_section, markdown_table

from nextedit.evaluate.compare import paired_difference
from nextedit.jsonl import read_examples
from nextedit.metrics.score import score_prediction
from nextedit.predictors.abstain import LOW_CONFIDENCE, guard, repeats_a_line, restore
from nextedit.record import Example, Prediction

#: The contender that replays the current limit with the model's own whitespace-only edits offered.
WHITESPACE = "current limit, whitespace-only edits offered"
#: The contender that replays the current limit with the model's own edits that repeat a line offered.
REPEATS = "current limit, edits that repeat a line offered"
#: The contender that replays the current limit with own edits withheld where the code near the cursor lints clean.
QUIET = "current limit, own edits withheld where the code lints clean"


def measure(example: Example, pred: Prediction) -> tuple[float, float]:
    """(deltaChrF, reversal ratio) of one prediction on `example`."""
    one = example.model_copy(update={"predictions": [pred], "scores": []})
    values = score_prediction(one, 0).values
    return float(values.get("delta_chrf") or 0.0), float(values.get("reversal_ratio") or 0.0)


def replay(examples: list[Example], provider: str, limits: list[float | None], current: float | None,
           quiet: bool = False) -> dict[str, dict[str, tuple[float, float, bool]]]:
    """Per contender ("propagate", "limit=L", the current limit with whitespace-only edits or edits that repeat a
    line offered, or with own edits withheld in clean code): example id -> (deltaChrF, reversal ratio, edit
    offered). With `quiet`, every contender withholds own edits in clean code (and the last one is left out)."""
    out: dict[str, dict[str, tuple[float, float, bool]]] = {"propagate": {}}
    out.update({label(lim): {} for lim in limits})
    out[WHITESPACE], out[REPEATS] = {}, {}
    if not quiet:
        out[QUIET] = {}
    for ex in examples:
        mine = [p for p in ex.predictions if p.provider == provider and not p.error]
        if not mine:
            continue
        bare = ex.model_copy(update={"predictions": [], "scores": []})
        made = mine[0] if (mine[0].abstained or "").startswith(LOW_CONFIDENCE) else restore(mine[0])
        for lim in limits:
            pred = guard(bare, made, max_reversal=lim, quiet_when_clean=quiet)
            out[label(lim)][ex.id] = (*measure(bare, pred), bool(pred.patch))
        for key, allowed in ((WHITESPACE, {"allow_whitespace_only": True}),
                             (REPEATS, {"allow_repeated_lines": True}), (QUIET, {})):
            if key in out:
                pred = guard(bare, made, max_reversal=current, quiet_when_clean=quiet or key == QUIET, **allowed)
                out[key][ex.id] = (*measure(bare, pred), bool(pred.patch))
        theirs = [p for p in ex.predictions if p.provider == "propagate"]
        if theirs:
            out["propagate"][ex.id] = (*measure(bare, theirs[0]), bool(theirs[0].patch))
    return out


def repeated_references(examples: list[Example]) -> tuple[int, int]:
    """(expected edits, those that repeat a line) over mined examples."""
    patches = [(ex, patch) for ex in examples for patch in ex.expected]
    return len(patches), sum(repeats_a_line(ex, patch) for ex, patch in patches)


def label(limit: float | None) -> str:
    return f"limit={'none' if limit is None else f'{limit:g}'}"


def fmt(d: dict | None) -> str:
    if d is None:
        return "-"
    mark = " *" if d["significant"] else ""
    return f"{d['difference']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]{mark}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", help="NAME=SCORED.jsonl")
    ap.add_argument("--provider", default="student", help="the provider label of the student's predictions")
    ap.add_argument("--limits", default="0,0.1,0.25,0.5,none")
    ap.add_argument("--current", default="0.5", help="the limit the others are compared with")
    ap.add_argument("--references", nargs="*", default=[], metavar="NAME=MINED.jsonl",
                    help="mined examples whose expected edits are checked for repeated lines")
    ap.add_argument("--quiet-when-clean", action="store_true",
                    help="every row withholds own edits where the code lints clean (as the quickstart's student does)")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()

    def parse(s: str) -> float | None:
        return None if s.strip() == "none" else float(s)

    limits = [parse(s) for s in args.limits.split(",")]
    current = parse(args.current)
    if current not in limits:
        limits.append(current)
    lines = [(f"The student's recorded predictions (provider `{args.provider}`) replayed under each reversal "
              "limit, its own whitespace-only edits and edits that repeat a line withheld except in the two rows "
              + ("that offer them; every row withholds its own edits where the code near the cursor lints clean "
                 "(`--quiet-when-clean`)" if args.quiet_when_clean else "that offer them; the last row also "
                 "withholds its own edits where the code near the cursor lints clean")
              + f". Differences are paired against limit {args.current} (`--current`) and against propagate; "
              "\\* the paired 95% interval excludes 0."), ""]
    for spec in args.sets:
        name, _, path = spec.partition("=")
        runs = replay(list(read_examples(path)), args.provider, limits, current, args.quiet_when_clean)
        base = {k: v[0] for k, v in runs[label(current)].items()}
        theirs = {k: v[0] for k, v in runs["propagate"].items()}
        rows = []
        for key, per in runs.items():
            if not per:
                continue
            n = len(per)
            scores = {k: v[0] for k, v in per.items()}
            diff = None if key in ("propagate", label(current)) else paired_difference(base, scores)
            vs = None if key == "propagate" or not theirs else paired_difference(theirs, scores)
            rows.append((key, n, f"{sum(scores.values()) / n:.2f}", f"{sum(v[1] for v in per.values()) / n:.4f}",
                         sum(v[2] for v in per.values()), fmt(diff), fmt(vs)))
        lines += [f"**{name}**", "", *markdown_table(rows, ("answer", "examples", "deltaChrF", "reversal ratio",
                                                          "edits offered", f"− limit {args.current}",
                                                          "− propagate"),
                                                   align="lrrrrrr"), ""]
    if args.references:
        rows = []
        for spec in args.references:
            name, _, path = spec.partition("=")
            total, repeated = repeated_references(list(read_examples(path)))
            rows.append((name, total, repeated, f"{100 * repeated / max(total, 1):.1f} %"))
        title = ("**Expected edits of mined examples that repeat a line** (`repeats_a_line`: the edit leaves more "
                 "lines next to an identical copy than the file had)")
        lines += [title, "",
                  *markdown_table(rows, ("examples", "expected edits", "repeat a line", "share"), align="lrrr"), ""]
    print("\n".join(lines))
    if not args.no_append:
        append_section("quality: how strict a reversal guard; whitespace-only edits, edits that repeat a line, own "
                       "edits where the code lints clean (reversal_guard replay)", lines)


if __name__ == "__main__":
    main()
