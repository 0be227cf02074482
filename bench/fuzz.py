"""Fuzz campaign over every parser that takes outside input; counts crashes per target.

Usage: .venv/bin/python bench/fuzz.py [--n 10000] [--target NAME ...] [--seed 0] [--no-append]
Runs each target of tests/fuzz_targets.py on N hypothesis-generated inputs (generation only, no
shrinking, no example database). A crash is an exception outside the target's documented domain
errors (for the server: a 5xx answer or an error body that is not JSON). Prints and appends to
BENCHMARKS.md per target: inputs, crashes, distinct crash sites, domain errors raised (the share of
inputs the parser rejected cleanly), and wall time; the first crash of each site is printed with
its input so it can be turned into a test.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

from _report import append_section, markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzz_targets import Target, targets, workdir
from hypothesis import HealthCheck, Phase, given, seed, settings


def _site(exc: BaseException) -> str:
    """Exception type and the innermost nextedit frame: one crash site."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "nextedit" in f.filename] or \
        traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


def campaign(target: Target, n: int, rng_seed: int) -> dict[str, object]:
    """Run one target on n inputs; count inputs, crashes (by site) and clean rejections."""
    counts: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    first: dict[str, str] = {}
    with workdir() as tmp, target.open(tmp) as run:

        @seed(rng_seed)
        @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(target.strategy)
        def drive(value: object) -> None:
            counts["inputs"] += 1
            try:
                run(value)
            except target.allowed:
                counts["rejected"] += 1
            except Exception as exc:  # noqa: BLE001 - counting every unexpected exception is the point
                site = _site(exc)
                sites[site] += 1
                if site not in first:
                    first[site] = f"{exc!r}\n  input: {value!r}"[:2000]

        t0 = time.perf_counter()
        drive()
        wall = time.perf_counter() - t0
    for site, text in first.items():
        print(f"  crash in {target.name}: {site}\n  {text}", file=sys.stderr)
    return {"inputs": counts["inputs"], "crashes": sum(sites.values()), "sites": len(sites),
            "rejected": counts["rejected"], "wall": wall, "site_names": sorted(sites)}


def main() -> None:
    """Run the campaign and append a section to BENCHMARKS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="inputs per target")
    ap.add_argument("--target", action="append", help="only these targets (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--note", default="", help="a paragraph appended under the table (e.g. the run before fixes)")
    args = ap.parse_args()
    chosen = [t for t in targets() if not args.target or t.name in args.target]
    rows = []
    total = 0
    for target in chosen:
        r = campaign(target, args.n, args.seed)
        total += int(r["crashes"])  # type: ignore[arg-type]
        rate = r["inputs"] / r["wall"] if r["wall"] else 0.0  # type: ignore[operator]
        print(f"{target.name:18} inputs {r['inputs']:>6}  crashes {r['crashes']:>5} ({r['sites']} sites)  "
              f"rejected {r['rejected']:>6}  {r['wall']:.1f} s  {rate:,.0f}/s", flush=True)
        rows.append((f"`{target.name}`", target.what, r["inputs"], r["crashes"],
                     ", ".join(r["site_names"]) or "–",  # type: ignore[arg-type]
                     f"{r['rejected'] / max(1, r['inputs']):.0%}", f"{r['wall']:.1f}", f"{rate:,.0f}"))
    print(f"total crashes: {total}")
    if not args.no_append:
        lines = markdown_table(rows, ("target", "what", "inputs", "crashes", "crash sites",
                                      "rejected with a domain error", "wall s", "inputs/s"), "llrrlrrr")
        lines += ["", (f"Total crashes: {total}. Inputs are hypothesis-generated (seed {args.seed}, generation "
                       "phase only): mutations of valid inputs made by our own code, fragment soups and random "
                       "text/bytes/JSON (tests/fuzz_targets.py). A crash is an exception other than the target's "
                       "documented domain error; for the server, a 5xx or a non-JSON error body. Inputs/s include "
                       "generating the input; the machine is shared and noisy.")]
        if args.note:
            lines += ["", args.note]
        append_section("fuzz", lines, note=" (one process, targets in turn)")


if __name__ == "__main__":
    main()
