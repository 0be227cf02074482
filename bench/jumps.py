"""Location accuracy of the jump baselines on jump examples mined from real repositories.

Usage: .venv/bin/python bench/jumps.py [--repos /work/shared/data/repos] [--commits 80] [--student SPEC] [--no-append]
Clones each `*.bundle` into a temporary folder, mines its newest `--commits` commits with
`--jump-examples 1` (the cursor at the user's last edit, the next edit group elsewhere), and scores the
`jump` heuristic and the `jump:nearest` baseline on those jump examples: top-1 / top-3 within 3 lines,
within 0 and 10 lines, same file, and the share of jumps whose proposed edit is right. Ratios are against
`jump:nearest`, measured in the same run. `--student SPEC` adds a third predictor (any `get_predictor` provider
spec, e.g. a local model trained on jump rows) scored the same way, as a third figure in each cell.
Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from _report import append_section, markdown_table

from nextedit.metrics import score_prediction
from nextedit.mine.config import MineConfig
from nextedit.mine.miner import mine
from nextedit.predictors.base import get_predictor
from nextedit.record import parse_example

PROVIDERS = ("jump", "jump:nearest")
COLUMNS = ("location_top1", "location_top3", "location_within_10", "location_same_file", "jump_correct")
MEASURES = ("location_top1", "location_top3", "location_within_0", "location_within_10", "location_same_file")


def _rate(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else None


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _cell(values: list[float | None]) -> str:
    """One table cell: each provider's figure, in the providers' order."""
    return " / ".join(_fmt(v) for v in values)


def _ratios(overall: dict[str, dict[str, float | None]], provider: str) -> str:
    """A provider's top-1, top-3 and jump→correct as ratios against `jump:nearest`."""
    parts = []
    for m in ("location_top1", "location_top3", "jump_correct"):
        h, n = overall[provider][m], overall["jump:nearest"][m]
        parts.append(f"{m} {h / n:.2f}x" if h is not None and n else f"{m} n/a")
    return f"`{provider}` " + ", ".join(parts)


def bench_repo(bundle: Path, work: Path, commits: int, providers: tuple[str, ...] = PROVIDERS) -> dict:
    """Mine one bundle's jump examples and score both baselines on them."""
    clone = work / bundle.stem
    if not clone.exists():
        subprocess.run(["git", "clone", "-q", str(bundle), str(clone)], check=True)
    out = work / f"{bundle.stem}.jsonl"
    t0 = time.perf_counter()
    mine(clone, out, MineConfig(max_commits=commits, samples_per_commit=3, jump_examples=1.0, workers=1,
                                seed=0), progress=False)
    mine_s = time.perf_counter() - t0
    examples = [parse_example(line) for line in out.read_bytes().splitlines() if line.strip()]
    jumps = [ex for ex in examples if "jump" in ex.source.tags]
    result = {"repo": bundle.stem, "examples": len(examples), "jumps": len(jumps), "mine_s": mine_s,
              "other_file": sum("other-file" in ex.source.tags for ex in jumps), "providers": {}}
    for provider in providers:
        predictor = get_predictor(provider)
        rows = []
        t0 = time.perf_counter()
        for ex in jumps:
            ex = ex.model_copy(update={"predictions": asyncio.run(predictor.predict_async(ex))})
            rows.append(score_prediction(ex, 0).values)
        result["providers"][provider] = {
            "seconds": time.perf_counter() - t0,
            **{m: _rate(rows, m) for m in (*MEASURES, "jump_correct", "location_predicted")},
            "jumps_made": sum(1 for r in rows if r.get("jump_predicted")),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=Path, default=Path("/work/shared/data/repos"))
    parser.add_argument("--commits", type=int, default=80)
    parser.add_argument("--student", default=None,
                        help="a predictor provider spec (e.g. local:PATH) scored next to the baselines")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    providers = (*PROVIDERS, args.student) if args.student else PROVIDERS
    bundles = sorted(args.repos.glob("*.bundle"))
    if not bundles:
        print(f"no *.bundle in {args.repos}", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="nextedit-jumps-") as tmp:
        for bundle in bundles:
            r = bench_repo(bundle, Path(tmp), args.commits, providers)
            print(orjson.dumps(r).decode(), flush=True)
            results.append(r)
    rows = []
    totals: dict[str, dict[str, float]] = {p: {} for p in providers}
    n_all = sum(r["jumps"] for r in results)
    for r in results:
        rows.append([r["repo"], r["jumps"], r["other_file"],
                     *(_cell([r["providers"][p][m] for p in providers]) for m in COLUMNS)])
        for p in providers:
            for m in (*MEASURES, "jump_correct"):
                v = r["providers"][p][m]
                if v is not None:
                    weight = r["jumps"] if m != "jump_correct" else r["providers"][p]["jumps_made"]
                    totals[p][m] = totals[p].get(m, 0.0) + v * weight
                    totals[p][m + "_n"] = totals[p].get(m + "_n", 0.0) + weight
    overall = {p: {m: (totals[p][m] / totals[p][m + "_n"] if totals[p].get(m + "_n") else None)
                   for m in (*MEASURES, "jump_correct")} for p in providers}
    rows.append(["**all**", n_all, sum(r["other_file"] for r in results),
                 *(_cell([overall[p][m] for p in providers]) for m in COLUMNS)])
    ratio = [_ratios(overall, p) for p in providers if p != "jump:nearest"]
    lines = [
        (f"Jump examples: `mine --jump-examples 1`, newest {args.commits} commits per repository, 3 samples per "
        "commit; a jump example keeps the cursor at the user's last edit and expects the next edit group "
        "outside its editable region (other-file: in another file). Each cell: heuristic `jump` / baseline "
        "`jump:nearest` (nearest remaining occurrence of the renamed identifier)"
        + (f" / student `{args.student}`" if args.student else "") + ". top-1/top-3: within 3 lines of "
        "any remaining edit of the commit; jump→correct: share of the predicted jumps whose proposed edit changes "
        "only lines the real edit there changes (metric signature `location:v1`)."),
        "",
        *markdown_table(rows, ("repository", "jump examples", "other-file", "top-1", "top-3", "within 10 lines",
                               "same file", "jump→correct"), "lrrrrrrr"),
        "",
        (f"Against `jump:nearest` (all repositories): {'; '.join(ratio)}."
         + ("" if args.student else " Student location accuracy: pending (run with `--student SPEC`).")),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        append_section("Jump location accuracy (bench/jumps.py)", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
