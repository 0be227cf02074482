"""Benchmark the local (non-LLM) work of the teacher stages per example: prompt, secret scrubbing, parsing, checks.

Usage: .venv/bin/python bench/teacher_local.py [--n 300] [--no-append]
Builds N examples from this package's own source files (a 60-line excerpt, a 20-line editable region,
a one-line rename in the history), then times on one core: rendering the teacher prompt (the
baseline), rendering + scrubbing it with an empty line cache (cold) and again (warm: files repeat
across examples of one repository), parsing a teacher answer into a patch, and running every check on
it. Appends a section to BENCHMARKS.md with each figure as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _report import append_text, markdown_table, section

from nextedit.privacy.scrub import Scrubber, _scan_line, find_secrets
from nextedit.record import Example, HistoryEvent, Prediction, Snapshot
from nextedit.teacher.checks import check_prediction
from nextedit.teacher.parse import parse_output, region_patch
from nextedit.teacher.prompt import MARK_END, MARK_START, build_prompt

ROOT = Path(__file__).resolve().parents[1]


def examples(n: int) -> list[Example]:
    """N excerpts of the package's source, each with a rename in the history and the cursor on it."""
    files = sorted((ROOT / "src" / "nextedit").rglob("*.py"))
    out: list[Example] = []
    i = 0
    while len(out) < n:
        path = files[i % len(files)]
        lines = path.read_text().splitlines(keepends=True)
        start = (i * 37) % max(len(lines) - 60, 1)
        excerpt = lines[start:start + 60]
        i += 1
        if len(excerpt) < 40:
            continue
        text = "".join(excerpt)
        ed0 = len("".join(excerpt[:20]))
        ed1 = len("".join(excerpt[:40]))
        row = 20
        line = excerpt[row]
        hist = f"@@ -{start + row + 1},1 +{start + row + 1},1 @@\n-{line.rstrip()}  # old\n+{line.rstrip()}\n"
        rel = str(path.relative_to(ROOT))
        out.append(Example(id=f"b{len(out)}", snapshot=Snapshot(
            path=rel, text=text, start_line=start, cursor=ed0 + len(line.rstrip()), editable=(ed0, ed1),
            history=[HistoryEvent(path=rel, diff=hist)])))
    return out


def answer(ex: Example) -> str:
    s, e = ex.snapshot.editable
    region = ex.snapshot.text[s:e].replace("self", "this", 1)
    return f"The user is editing.\n\n`````\n{MARK_START}\n{region}{MARK_END}\n`````\n"


def timed(fn, items) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t) / len(items) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = ap.parse_args()
    exs = examples(args.n)
    find_secrets("warm up = 'imports'")

    def scrubbed(ex: Example) -> None:
        p = build_prompt(ex)
        s = Scrubber()
        s.scrub(p.system)
        s.scrub(p.user)

    def parsed(ex: Example) -> None:
        ex.predictions = [Prediction(provider="teacher:x", raw=answer(ex))]
        patch, cursor = region_patch(ex.snapshot, parse_output(ex.predictions[0].raw))
        ex.predictions[0].patch, ex.predictions[0].cursor = patch, cursor

    base = timed(build_prompt, exs)
    _scan_line.cache_clear()
    cold = timed(scrubbed, exs)
    warm = timed(scrubbed, exs)
    parse_ms = timed(parsed, exs)
    checks_ms = timed(lambda ex: check_prediction(ex, 0), exs)
    tokens = sum(len(build_prompt(ex).user.encode()) for ex in exs) / len(exs) / 3
    rows = [
        ("render teacher prompt (baseline)", base),
        ("render + scrub, empty line cache", cold),
        ("render + scrub, warm line cache", warm),
        ("parse answer + patch", parse_ms),
        ("all checks (tree-sitter, reversal, tokens)", checks_ms),
    ]
    text = section(
        "teacher stages, local work per example",
        markdown_table([(name, f"{ms:.2f}", f"{ms / base:.1f}") for name, ms in rows],
                       headers=("step", "ms / example", "x baseline")),
        command=f"python bench/teacher_local.py --n {args.n}",
        note=(f" ({len(exs)} examples from the package source, prompt ~{tokens:.0f} tokens besides the system "
              "prompt; one core)"))
    print(text)
    if not args.no_append:
        append_text(text)
    sys.exit(0)


if __name__ == "__main__":
    main()
