"""Benchmark nextedit.metrics: full metric set per prediction, and delta-chrF vs sacrebleu chrF.

Usage: .venv/bin/python bench/metrics.py [--n 10000] [--size 2048] [--no-append]
Generates N (original, expected, prediction) triples of ~SIZE bytes of Python-like code with a
recent-history event, scores each with `score_prediction` on one core, and times delta-chrF
against sacrebleu's sentence chrF on the same strings. Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import random
import time

from _report import append_section, markdown_table, print_rows

from nextedit import patch as P
from nextedit.metrics import delta_chrf, score_prediction
from nextedit.record import Example, parse_example

WORDS = ["item", "count", "total", "value", "index", "result", "buffer", "config", "parser", "token", "stream", "node", "request", "response", "cache", "handler", "width", "height", "offset", "limit", "name", "path"]


def _line(rng: random.Random) -> str:
    a, b, c = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
    return rng.choice([
        f"    {a} = {b}.{c}({rng.randint(0, 99)})",
        f"    if {a} > {b}:",
        f"        return {a} + {c}",
        f"    for {a} in {b}:",
        f"        {a}.append({b}[{rng.randint(0, 9)}])",
        f"def {a}_{b}({c}, {a}):",
        "",
        f"    # update the {a} of {b}",
    ])


def _text(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    n = 0
    while n < size:
        lines.append(_line(rng))
        n += len(lines[-1]) + 1
    return "\n".join(lines) + "\n"


def _edit(rng: random.Random, text: str, row: int) -> str:
    """A small edit at `row`: rename a word, insert a line, delete a line or append a call."""
    lines = text.split("\n")
    row = min(row, len(lines) - 2)
    kind = rng.random()
    if kind < 0.4:
        old = next((w for w in WORDS if w in lines[row]), None)
        lines[row] = lines[row].replace(old, rng.choice(WORDS), 1) if old else lines[row] + " x"
    elif kind < 0.7:
        lines.insert(row + 1, _line(rng))
    elif kind < 0.85:
        del lines[row]
    else:
        lines[row] = lines[row] + f".{rng.choice(WORDS)}()"
    return "\n".join(lines)


def make_examples(n: int, size: int, seed: int = 0) -> list[Example]:
    """N examples, each with one history event, one expected patch and one prediction: 35 % exact,
    25 % expected plus another edit, 20 % a different edit, 10 % undoing the history, 10 % no edit."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        before = _text(rng, size)
        row = rng.randrange(5, max(6, before.count("\n") - 5))
        text = _edit(rng, before, row)
        expected_text = _edit(rng, text, row + rng.randint(-2, 2))
        r = rng.random()
        if r < 0.35:
            predicted = expected_text
        elif r < 0.6:
            predicted = _edit(rng, expected_text, row + rng.randint(-3, 3))
        elif r < 0.8:
            predicted = _edit(rng, text, row + rng.randint(-3, 3))
        elif r < 0.9:
            predicted = before  # undoes the user's edit
        else:
            predicted = text  # no edit
        path = "src/mod.py"
        out.append(parse_example({
            "id": f"bench-{k}",
            "snapshot": {"path": path, "text": text, "start_line": 40, "cursor": 0,
                         "history": [{"path": path, "diff": P.make(before, text, path=path, start_line=40)}]},
            "expected": [P.make(text, expected_text, path=path, start_line=40)],
            "predictions": [{"provider": "bench", "patch": P.make(text, predicted, path=path, start_line=40),
                             "cursor": rng.randint(0, len(predicted))}],
        }))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--no-append", action="store_true", help="print only, do not append to BENCHMARKS.md")
    args = ap.parse_args()

    t0 = time.perf_counter()
    examples = make_examples(args.n, args.size)
    gen_s = time.perf_counter() - t0
    avg_bytes = sum(len(e.snapshot.text.encode()) for e in examples) / len(examples)

    t0 = time.process_time()
    for ex in examples:
        score_prediction(ex, 0)
    full_s = time.process_time() - t0

    import sacrebleu

    triples = []
    for ex in examples:
        o = ex.snapshot.text
        triples.append((o, P.apply(ex.expected[0], o, start_line=40),
                        P.apply(ex.predictions[0].patch or "", o, start_line=40)))
    chrf = sacrebleu.metrics.CHRF()  # plain chrF: char n=6, word n=0, beta=2
    t0 = time.process_time()
    for o, e, a in triples:
        delta_chrf(o, e, a)
    ours_s = time.process_time() - t0
    t0 = time.process_time()
    for o, e, a in triples:
        chrf.sentence_score(a, [e])
    sb_s = time.process_time() - t0

    sub = triples[:1000]  # the definition on full texts is slow: a subset is enough for a ratio
    t0 = time.process_time()
    for o, e, a in sub:
        delta_chrf(o, e, a)
    sub_windowed_s = time.process_time() - t0
    t0 = time.process_time()
    for o, e, a in sub:
        delta_chrf(o, e, a, windowed=False)
    sub_full_s = time.process_time() - t0

    n = len(examples)
    rows = [
        ("examples", f"{n} (avg {avg_bytes:.0f} bytes; generated in {gen_s:.1f} s)"),
        ("full metric set (score_prediction)", (f"{n / full_s:,.0f} predictions/s on one core "
                                               f"({1e3 * full_s / n:.3f} ms each)")),
        ("delta_chrf v3 per pair", f"{1e6 * ours_s / n:.1f} µs"),
        ("sacrebleu chrF per pair (same strings)", f"{1e6 * sb_s / n:.1f} µs"),
        ("delta_chrf time / sacrebleu chrF time", f"{ours_s / sb_s:.3f}"),
        (f"delta_chrf windowed / full-text time ({len(sub)} pairs)", f"{sub_windowed_s / sub_full_s:.3f}"),
    ]
    print_rows(rows)
    if args.no_append:
        return
    append_section("metrics", [
        *markdown_table(rows), "",
        ("Target: full set >= 1,000 predictions/s on one core. Predictions: 35 % exact, 25 % expected "
         "plus another edit, 20 % a different edit, 10 % undo the user's last edit, 10 % no edit. "
         "delta-chrF counts only n-grams touching the change; sacrebleu's chrF and the full-text "
         "delta-chrF count every n-gram of the ~2 KB texts."),
    ], note=" (CPU time of one process)")


if __name__ == "__main__":
    main()
