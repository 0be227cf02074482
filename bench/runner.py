"""Benchmark the local runner: examples/s and peak RSS of the validate stage and a trivial cached stage.

Usage: .venv/bin/python bench/runner.py [--sizes 100000,1000000] [--modes ...] [--workdir DIR] [--no-append]

For each size, generates that many normalised examples (~1 KB each: a snapshot, a history diff and an
expected patch), then runs every mode in a fresh subprocess and reads its peak RSS:
  baseline      a hand-written loop: read_examples -> JsonlWriter (pydantic parse + dump, no runner)
  validate      `validate` through run_stage, one process
  validate-j2   `validate` through run_stage, 2 worker processes
  trivial-cold  a stage that returns its input, empty cache (every result computed and stored)
  trivial-warm  the same stage again: every result from the SQLite cache
Ratios are against `baseline` from the same run. Peak RSS must stay flat from the smaller to the
larger size (streaming). Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import append_section, markdown_table

from nextedit.pipeline.stage import Stage
from nextedit.record import Example

MODES = ("baseline", "validate", "validate-j2", "trivial-cold", "trivial-warm")
ROOT = Path(__file__).resolve().parents[1]


class Trivial(Stage):
    """Returns the example unchanged (measures the runner and its cache, not a stage)."""

    name = "trivial"
    version = "1"
    reads = ("snapshot", "expected")

    def process(self, example: Example) -> Example:
        return example


def make_record(i: int) -> bytes:
    body = "".join(f"    total_{i} += item_{j}.count * {j}\n" for j in range(6))
    text = f"def restock_{i}(items):\n    total_{i} = 0\n{body}    return total_{i}\n"
    old = f"    total_{i} += item_0.count * 0\n"
    new = f"    total_{i} += item_0.count * 0 + 1\n"
    expected = (f"--- a/stock.py\n+++ b/stock.py\n@@ -2,3 +2,3 @@\n     total_{i} = 0\n-{old}+{new}"
                f"     total_{i} += item_1.count * 1\n")
    history = (f"--- a/stock.py\n+++ b/stock.py\n@@ -1,1 +1,1 @@\n-def restock(items):\n"
               f"+def restock_{i}(items):\n")
    # Written in normalised form (all defaults present), as `validate` writes records for later stages.
    return Example.model_validate({
        "id": f"bench-{i}", "source": {"kind": "synthetic", "tags": ["bench"]},
        "snapshot": {"path": "stock.py", "text": text, "cursor": 10,
                     "history": [{"path": "stock.py", "diff": history}]},
        "expected": [expected],
    }).to_json()


def generate(path: Path, n: int) -> None:
    with open(path, "wb", buffering=1 << 20) as fh:
        fh.writelines(make_record(i) + b"\n" for i in range(n))


def measure(mode: str, src: Path, work: Path) -> dict:
    """Run one mode in this process; return seconds and counts."""
    from nextedit.jsonl import JsonlWriter, read_examples
    from nextedit.pipeline import get_stage, run_stage

    out = work / f"{mode}.jsonl"
    cache = work / "cache.sqlite"
    t0 = time.perf_counter()
    if mode == "baseline":
        with JsonlWriter(out) as writer:
            for example in read_examples(src):
                writer.write(example)
        count = writer.count
    elif mode.startswith("validate"):
        summary = run_stage(get_stage("validate")(), src, out, concurrency=2 if mode.endswith("j2") else 1,
                            progress=False, cache=False)
        count = summary.processed
    else:
        summary = run_stage(Trivial(), src, out, concurrency=1, progress=False, cache_path=cache)
        count = summary.processed
        assert (summary.from_cache == count) == (mode == "trivial-warm"), summary
    seconds = time.perf_counter() - t0
    out.unlink(missing_ok=True)
    return {"mode": mode, "seconds": seconds, "count": count}


def child(mode: str, src: str, work: str) -> None:
    result = measure(mode, Path(src), Path(work))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["rss_mb"] = own / 1024
    result["worker_rss_mb"] = kids / 1024
    print(json.dumps(result))


def run_child(mode: str, src: Path, work: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(src), str(work)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    base = Path(args.workdir or tempfile.mkdtemp(prefix="nextedit-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sizes:
            work = base / f"n{n}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            src = work / "in.jsonl"
            t0 = time.perf_counter()
            generate(src, n)
            mb = src.stat().st_size / 1e6
            print(f"n={n}: generated {mb:.0f} MB in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            results = {}
            for mode in modes:
                r = run_child(mode, src, work)
                assert r["count"] == n, r
                results[mode] = r
                print(f"  {mode:<13} {n / r['seconds']:>9,.0f} ex/s  {r['seconds']:7.1f}s  "
                      f"RSS {r['rss_mb']:.0f} MB (workers {r['worker_rss_mb']:.0f} MB)", file=sys.stderr)
            base_rate = n / results["baseline"]["seconds"] if "baseline" in results else None
            for mode, r in results.items():
                rate = n / r["seconds"]
                rows.append((n, mode, rate, rate / base_rate if base_rate else None, r["rss_mb"],
                             r["worker_rss_mb"]))
    finally:
        if args.workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    table = markdown_table(
        [(f"{n:,}", mode, f"{rate:,.0f}", "" if ratio is None else f"{ratio:.2f}", f"{rss:.0f}",
          f"{wrss:.0f}" if wrss else "-") for n, mode, rate, ratio, rss, wrss in rows],
        headers=("examples", "mode", "examples/s", "vs baseline", "peak RSS main (MB)", "peak RSS worker (MB)"),
        align="rlrrrr")
    print("\n".join(table))
    if not args.no_append:
        append_section("runner", table, note=(" (each mode in a fresh process; the machine's 2 cores are shared, "
                                              "so rates are noisy: compare the ratios)"))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
