"""Benchmark the dataset commands (stats, split, dedup, show) on a generated examples file.

Usage: .venv/bin/python bench/dataset.py [--n 20000] [--no-append]
Generates N examples of Python-like code (40-line excerpts over a small vocabulary, 200
repositories, with 5% exact and 15% near duplicates), then runs each command as its own process
and reports wall time, examples/s and peak RSS, with the ratio to a baseline measured in the same
run: one process that only reads and validates every example (`read_examples`). Appends a section
to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import append_text, markdown_table, section

from nextedit.jsonl import JsonlWriter
from nextedit.record import Example

WORDS = ("order", "price", "total", "item", "user", "cart", "tax", "rate", "count", "value", "name", "index",
         "offset", "limit", "page", "score", "weight", "delta", "buffer", "cache", "token", "event", "state")
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _code(rng: random.Random, lines: int = 40) -> str:
    out = []
    for _ in range(lines):
        a, b, c = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
        out.append(rng.choice([
            f"    {a}_{b} = {c}.{a}({rng.randint(0, 999)})\n",
            f"    if {a} > {b}_{c}:\n",
            f"        return {a} + {c} * {rng.randint(0, 99)}\n",
            f"def {a}_{b}({c}, {a}_{rng.randint(0, 99)}):\n",
        ]))
    return "".join(out)


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Write n examples with some exact and near duplicates."""
    rng = random.Random(seed)
    originals: list[str] = []
    with JsonlWriter(path) as out:
        for i in range(n):
            roll = rng.random()
            if originals and roll < 0.05:
                text = rng.choice(originals)
            elif originals and roll < 0.20:
                lines = rng.choice(originals).splitlines(keepends=True)
                lines[rng.randrange(len(lines))] = _code(rng, 1)
                text = "".join(lines)
            else:
                text = _code(rng)
                originals.append(text)
            cursor = len("".join(text.splitlines(keepends=True)[:20]))
            out.write(Example.model_validate({
                "id": f"ex-{i}",
                "source": {"kind": "git", "repo": f"https://github.com/org/repo{rng.randrange(200)}",
                           "time": f"2026-{1 + i * 12 // n:02d}-{1 + i % 28:02d}T00:00:00Z"},
                "snapshot": {"path": f"pkg/mod{i % 50}.py", "text": text, "cursor": cursor},
                "expected": [(f"--- a/pkg/mod{i % 50}.py\n+++ b/pkg/mod{i % 50}.py\n@@ -21,0 +21,1 @@\n"
                              "+    log(total)\n")],
            }))


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run a command; return wall seconds, peak RSS in MB and its last output line."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{output}")
    lines = output.strip().splitlines()
    last = lines[-1] if lines and cmd[-1] != "--json" and "show" not in cmd else ""
    return seconds, usage.ru_maxrss / 1024, last


def main() -> None:
    """Generate, run, print the table and append it to BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    nextedit = str(BIN / "nextedit")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        generate(data, args.n)
        size_mb = data.stat().st_size / 1e6
        reader = "import sys\nfrom nextedit.jsonl import read_examples\nprint(sum(1 for _ in read_examples(sys.argv[1])))"
        base = timed([sys.executable, "-c", reader, str(data)])
        runs = {
            "stats --json": [nextedit, "stats", str(data), "--json"],
            "split train=80% test=rest (by repo)": [nextedit, "split", str(data), "train=80%", "test=rest",
                                                     "--out-dir", tmp],
            "split --by time": [nextedit, "split", str(data), "old=80%", "new=rest", "--by", "time",
                                "--out-dir", tmp],
            "dedup": [nextedit, "dedup", str(data), "-o", str(Path(tmp) / "dedup.jsonl")],
            "show --index N-1 (last example)": [nextedit, "show", str(data), "--index", str(args.n - 1)],
        }
        rows = [("read + validate every example (baseline)", *base)]
        for name, cmd in runs.items():
            rows.append((name, *timed(cmd)))

    table = markdown_table(
        [(name, f"{seconds:.2f}", f"{args.n / seconds:,.0f}", f"{seconds / base[0]:.2f}", f"{rss:.0f}",
          last.replace("|", "/")[:90]) for name, seconds, rss, last in rows],
        headers=("command", "wall s", "examples/s", "x baseline", "peak RSS MB", "result"))
    text = section("dataset commands", table, command=f"python bench/dataset.py --n {args.n}",
                   note=(f" ({args.n} examples, {size_mb:.1f} MB; "
                         "each command is its own process, startup included)"))
    print(text)
    if not args.no_append:
        append_text(text)


if __name__ == "__main__":
    main()
