"""Benchmark local prediction per runtime: p50/p90 ms per prediction on the same held-out examples, identical outputs.

Usage: nice -n 10 .venv/bin/python bench/predict.py [--quickstart out/quickstart] [--n 16]
       [--runtimes transformers,transformers-float32,ct2-int8,ct2-float32] [--model DIR --examples FILE]

The model is the quickstart student (QUICKSTART/student/merged, held-out QUICKSTART/test.jsonl) when one exists,
else --model (default the embedded SmolLM2-135M-Instruct, format zeta1) on --examples. Each runtime is loaded and
warmed up once, then predicts every example (greedy, the predictor's defaults: prompt lookup where the runtime has
it, candidate scoring); the first runtime is the baseline. Where the time goes: prompt encoding (prefill, one
forward pass), decoding per output token, and candidate scoring. Keystrokes: ct2 int8 on the same example with
one and two characters typed at the cursor, with and without the prompt-prefix cache. Appends to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from _report import append_text, markdown_table, section

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: name -> local predictor options
RUNTIMES = {
    "transformers": {"runtime": "transformers"},
    "transformers-float32": {"runtime": "transformers", "dtype": "float32"},
    "transformers-nolookup": {"runtime": "transformers", "prompt_lookup": False},
    "ct2-int8": {"runtime": "ct2", "compute_type": "int8"},
    "ct2-int8_float32": {"runtime": "ct2", "compute_type": "int8_float32"},
    "ct2-float32": {"runtime": "ct2", "compute_type": "float32"},
}


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, by linear interpolation."""
    values = sorted(values)
    if len(values) == 1:
        return values[0]
    pos = q * (len(values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def typed(example, chars: str):
    """The example after the user typed `chars` at the cursor (no new history event: the next keystroke)."""
    snap = example.snapshot
    text = snap.text[:snap.cursor] + chars + snap.text[snap.cursor:]
    return example.model_copy(update={"snapshot": snap.model_copy(update={"text": text,
                                                                          "cursor": snap.cursor + len(chars)})})


def measure(spec: str, options: dict, examples: list, model: str, extra: dict) -> dict:
    """Load one runtime, warm it up, predict every example; latency and where it goes."""
    from nextedit.predictors import get_predictor

    predictor = get_predictor(f"local:{model}", **extra, **options)
    t0 = time.perf_counter()
    runtime = predictor.runtime()
    load_s = time.perf_counter() - t0
    gen_ms: list[float] = []
    original = runtime.generate

    def timed(*args, **kwargs):
        out = original(*args, **kwargs)
        gen_ms.append(out.ms)
        return out

    runtime.generate = timed
    predictor.predict_sync(examples[0])  # warm-up: kernels, stop-string tables
    gen_ms.clear()
    total, outs, n_in, n_out = [], [], [], []
    for ex in examples:
        t0 = time.perf_counter()
        pred = predictor.predict_sync(ex)[0]
        total.append((time.perf_counter() - t0) * 1000)  # wall: render, generation, parsing, scoring
        outs.append(pred.raw)
        n_in.append(pred.usage.input_tokens if pred.usage else 0)
        n_out.append(pred.usage.output_tokens if pred.usage else 0)
    # Prefill: one forward pass over the prompt (a one-token generation), on the first examples.
    prefill = []
    for ex in examples[:4]:
        from nextedit.train.data import encode_prompt

        tok = runtime.tokenizer
        ids = encode_prompt(predictor.format.render(ex.model_copy(update={"expected": []}), predictor.options, tok),
                            tok)
        if getattr(runtime, "prefix_cache", 0):
            runtime._last = []  # no prefix reuse: a cold prompt
        prefill.append(original(ids, max_new_tokens=1, stop=[]).ms)
    per_token = [(g - statistics.mean(prefill)) / max(1, n - 1) for g, n in zip(gen_ms, n_out, strict=True)]
    return {"spec": spec, "total": total, "gen": gen_ms, "outs": outs, "n_in": n_in, "n_out": n_out,
            "prefill": statistics.mean(prefill), "per_token": statistics.median(per_token), "load_s": load_s}


def keystrokes(examples: list, model: str, extra: dict) -> tuple[list[float], list[float], int]:
    """ct2 int8 latency of the second keystroke after a prediction, with and without the prefix cache."""
    from nextedit.predictors import get_predictor

    cached = get_predictor(f"local:{model}", runtime="ct2", compute_type="int8", prefix_cache=4, **extra)
    plain = get_predictor(f"local:{model}", runtime="ct2", compute_type="int8", prefix_cache=0, **extra)
    cached.predict_sync(examples[0])
    plain.predict_sync(examples[0])
    with_cache, without, same = [], [], 0
    for ex in examples:
        cached.predict_sync(ex)
        cached.predict_sync(typed(ex, "x"))
        a = cached.predict_sync(typed(ex, "xy"))[0]
        b = plain.predict_sync(typed(ex, "xy"))[0]
        with_cache.append(a.latency_ms)
        without.append(b.latency_ms)
        same += a.raw == b.raw
    return with_cache, without, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quickstart", type=Path, default=Path("out/quickstart"), help="a quickstart output folder")
    ap.add_argument("--model", default=None, help="model folder or name (default: the quickstart student)")
    ap.add_argument("--format", default=None, help="prompt format when the model folder names none (zeta1)")
    ap.add_argument("--examples", type=Path, default=None, help="held-out examples (default: QUICKSTART/test.jsonl)")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--runtimes", default="transformers,transformers-float32,ct2-int8,ct2-float32")
    ap.add_argument("--threads", default="auto", help="CPU threads for every runtime (auto: idle cores at start)")
    ap.add_argument("--keystrokes", type=int, default=6, help="examples for the keystroke measure (0: skip)")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()

    from nextedit.jsonl import read_examples
    from nextedit.train.sft import free_cores

    student = args.quickstart / "student" / "merged"
    model = args.model or (str(student) if (student / "nextedit.json").is_file() else "smollm2-135m-instruct")
    examples_file = args.examples or args.quickstart / "test.jsonl"
    if not examples_file.is_file():
        raise SystemExit(f"{examples_file}: no held-out examples; run `nextedit quickstart` or pass --examples")
    threads = free_cores(args.threads)  # the same for every runtime
    extra = {"threads": threads}
    if not (Path(model) / "nextedit.json").is_file():
        extra["format"] = args.format or "zeta1"
    examples = [ex for ex, _ in zip(read_examples(examples_file), range(args.n), strict=False)]
    specs = [s.strip() for s in args.runtimes.split(",") if s.strip()]
    results = []
    for spec in specs:
        r = measure(spec, RUNTIMES[spec], examples, model, extra)
        print(f"{spec}: p50 {pct(r['total'], .5):,.0f} ms, p90 {pct(r['total'], .9):,.0f} ms", flush=True)
        results.append(r)
    base = results[0]
    f32 = next((r for r in results if r["spec"] == "transformers-float32"), None)
    rows = []
    for r in results:
        same = sum(a == b for a, b in zip(r["outs"], base["outs"], strict=True))
        same32 = sum(a == b for a, b in zip(r["outs"], f32["outs"], strict=True)) if f32 else None
        decide = [t - g for t, g in zip(r["total"], r["gen"], strict=True)]
        rows.append((r["spec"] + (" (baseline)" if r is base else ""), f"{pct(r['total'], .5):,.0f}",
                     f"{pct(r['total'], .9):,.0f}", f"{pct(base['total'], .5) / pct(r['total'], .5):.2f}",
                     f"{r['prefill']:,.0f}", f"{r['per_token']:.1f}", f"{statistics.median(decide):,.0f}",
                     f"{same}/{len(examples)}", "–" if same32 is None else f"{same32}/{len(examples)}"))
    table = markdown_table(rows, headers=("runtime", "p50 ms", "p90 ms", "x baseline (p50)", "prefill ms",
                                          "ms/output token", "scoring ms (p50)", "identical to baseline",
                                          "identical to transformers float32"), align="lrrrrrrrr")
    n_in, n_out = base["n_in"], base["n_out"]
    lines = [*table, "",
             (f"Prompts: median {statistics.median(n_in):.0f} tokens; outputs: median {statistics.median(n_out):.0f} "
              f"tokens (max {max(n_out)}). Prefill: one forward pass over a whole prompt (mean of 4); ms/output token: "
              "(generation - prefill) / (output tokens - 1), median; scoring: the candidate/confidence forward pass "
              "with rendering and parsing (total - generation).")]
    if args.keystrokes and any(s.startswith("ct2") for s in specs):
        with_cache, without, same = keystrokes(examples[:args.keystrokes], model, extra)
        lines += ["", (f"Keystrokes (ct2 int8, {len(with_cache)} examples, the second character typed at the cursor "
                       f"after a prediction): p50 {pct(with_cache, .5):,.0f} ms with the prompt-prefix cache, "
                       f"{pct(without, .5):,.0f} ms without ({pct(without, .5) / pct(with_cache, .5):.2f}x); identical "
                       f"outputs {same}/{len(with_cache)}.")]
    text = section("predict: runtimes (local student, p50/p90 per prediction)", lines,
                   extra=f"{threads} threads per runtime",
                   note=f" (model {model}, {len(examples)} held-out examples from {examples_file}, greedy, batch 1, "
                        "warm model, prompt lookup on for transformers, nice -n 10)")
    print(text)
    if not args.no_append:
        append_text(text)


if __name__ == "__main__":
    main()
