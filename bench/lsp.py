"""Benchmark `nextedit lsp`'s own work per keystroke and per prediction request, in process.

Usage: .venv/bin/python bench/lsp.py [--lines 1000 10000] [--keys 2000] [--no-append]
For files of N lines of Python-like code, types `--keys` characters at random places (UTF-16
positions converted, document updated, edit history grouped), and builds the snapshot a prediction
request would send (history diffs rendered + excerpt cut). Baseline, measured in the same run: a
whole-file `patch.make(before, after)` for the same open history group, which is what rendering
the history would cost without diffing only the changed lines. Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from _report import append_text, markdown_table, section

from nextedit import patch as patchlib
from nextedit.lsp.documents import Document
from nextedit.lsp.history import EditHistory
from nextedit.lsp.snapshot import build_snapshot

WORDS = ["item", "count", "total", "value", "index", "result", "width", "height", "offset", "limit"]


def _text(rng: random.Random, lines: int) -> str:
    out = []
    for i in range(lines):
        a, b = rng.choice(WORDS), rng.choice(WORDS)
        out.append(rng.choice([f"def {a}_{i}({b}):", f"    {a} = {b} + {i}", f"    return {a}  # 😀 {b}", ""]))
    return "\n".join(out) + "\n"


def run(lines: int, keys: int, seed: int = 0) -> dict[str, float]:
    rng = random.Random(seed)
    doc = Document("file:///bench.py", "bench.py", _text(rng, lines))
    history = EditHistory()
    row = lines // 2
    t_key = 0.0
    t = 0.0
    for k in range(keys):
        if k % 50 == 0:  # move elsewhere now and then: a new history group
            row = rng.randrange(lines)
            t += 2.0
        start = time.perf_counter()
        end_of_row = doc.line_starts()[row + 1] - 1
        line, col = doc.position_of(end_of_row)  # what the client sends (UTF-16)
        before = doc.text
        offset = doc.offset_at(line, col)
        change = doc.replace(offset, offset, rng.choice("abcdefgh"))
        history.record(doc.path, before, change, doc.text, t)
        t_key += time.perf_counter() - start
        t += 0.1
    cursor = doc.line_starts()[row]
    reps = 50
    start = time.perf_counter()
    for _ in range(reps):
        build_snapshot(doc.text, cursor, doc.path, history.events())
    t_request = (time.perf_counter() - start) / reps
    group = history._open
    assert group is not None
    start = time.perf_counter()
    for _ in range(reps):
        patchlib.make(group.before, group.after, path=doc.path)
    t_baseline = (time.perf_counter() - start) / reps
    start = time.perf_counter()
    for _ in range(reps):
        history.events()
    t_history = (time.perf_counter() - start) / reps
    start = time.perf_counter()
    for _ in range(reps):
        patchlib.line_offsets(doc.text)
    t_lines = (time.perf_counter() - start) / reps
    return {"lines_baseline_us": t_lines * 1e6, "lines": lines, "chars": len(doc.text), "per_key_us": t_key / keys * 1e6,
            "request_ms": t_request * 1000, "history_ms": t_history * 1000, "baseline_ms": t_baseline * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    rows = [run(n, args.keys) for n in args.lines]
    headers = ("file lines (chars)", "per keystroke", "baseline: line table rebuilt", "keystroke / baseline",
               "snapshot + history per request", "history render", "baseline: whole-file diff of the open group",
               "history / baseline")
    table = markdown_table([(f"{r['lines']:,} ({r['chars']:,})", f"{r['per_key_us']:.0f} µs",
                             f"{r['lines_baseline_us']:.0f} µs", f"{r['per_key_us'] / r['lines_baseline_us']:.2f}",
                             f"{r['request_ms']:.2f} ms", f"{r['history_ms']:.2f} ms", f"{r['baseline_ms']:.2f} ms",
                             f"{r['history_ms'] / r['baseline_ms']:.2f}") for r in rows], headers=headers)
    text = section("lsp", table,
                   command=f"python bench/lsp.py --lines {' '.join(map(str, args.lines))} --keys {args.keys}",
                   note=(f" (in process; {args.keys} keystrokes, a new history group every 50; a keystroke = "
                         "UTF-16 position conversion, document update, history grouping)"))
    print(text)
    if not args.no_append:
        append_text(text)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
