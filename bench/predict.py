"""Benchmark local prediction per runtime: p50/p90 ms per prediction on the same held-out examples, identical outputs.

Usage: nice -n 10 .venv/bin/python bench/predict.py [--quickstart out/quickstart] [--n 16]
       [--runtimes transformers,transformers-float32,ct2-int8,ct2-float32,llama-q8_0,llama-f32]
       [--model DIR --examples FILE]

The model is the quickstart student (QUICKSTART/student/merged, held-out QUICKSTART/test.jsonl) when one exists,
else --model (default the embedded SmolLM2-135M-Instruct, format zeta1) on --examples. Each runtime is loaded and
warmed up once, then predicts every example (greedy, the predictor's defaults: prompt lookup where the runtime has
it, candidate scoring); the first runtime is the baseline. Where the time goes: prompt encoding (prefill, one
forward pass), decoding per output token, and candidate scoring. Keystrokes: the first prefix-caching runtime
(llama, else ct2 int8) encoding the prompt after a second character typed at the cursor, with and without the
prompt-prefix cache. Appends to BENCHMARKS.md.
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
    "llama-q8_0": {"runtime": "llama", "compute_type": "int8"},
    "llama-f32": {"runtime": "llama", "compute_type": "float32"},
    "llama-q8_0-nolookup": {"runtime": "llama", "compute_type": "int8", "prompt_lookup": False},
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


def renderable(examples, model: str, extra: dict, n: int) -> list:
    """The first `n` examples whose prompt renders in the model's format (the others never reach a runtime)."""
    from nextedit.formats import FormatError
    from nextedit.predictors import get_predictor
    from nextedit.predictors.runtimes import load_tokenizer

    predictor = get_predictor(f"local:{model}", **extra)
    tok = load_tokenizer(predictor.model_dir)
    out = []
    for ex in examples:
        try:
            predictor.format.render(ex.model_copy(update={"expected": []}), predictor.options, tok)
        except FormatError:
            continue
        out.append(ex)
        if len(out) >= n:
            break
    return out


class Arm:
    """One runtime: loaded and warmed up once, then timed per prediction (wall and CPU) and per generation."""

    def __init__(self, spec: str, options: dict, model: str, extra: dict, warm_up) -> None:
        from nextedit.predictors import get_predictor

        self.spec = spec
        self.predictor = get_predictor(f"local:{model}", **extra, **options)
        self.runtime = self.predictor.runtime()
        self.original = self.runtime.generate
        self._gen: list[float] = []
        self.runtime.generate = self._timed
        self.predictor.predict_sync(warm_up)  # kernels, stop-string tables
        self.total, self.cpu, self.gen, self.outs, self.n_in, self.n_out = [], [], [], [], [], []

    def _timed(self, *args, **kwargs):
        c0 = time.process_time()
        out = self.original(*args, **kwargs)
        self._gen.append((time.process_time() - c0) * 1000)
        return out

    def predict(self, ex) -> None:
        """One prediction: wall and CPU ms (render, generation, parsing, scoring), CPU ms of generation, output."""
        self._gen.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        pred = self.predictor.predict_sync(ex)[0]
        self.total.append((time.perf_counter() - t0) * 1000)
        self.cpu.append((time.process_time() - c0) * 1000)
        self.gen.append(sum(self._gen))
        self.outs.append(pred.raw)
        self.n_in.append(pred.usage.input_tokens if pred.usage else 0)
        self.n_out.append(pred.usage.output_tokens if pred.usage else 0)

    def prefill(self, examples: list) -> float:
        """CPU ms of one forward pass over a whole prompt (a one-token generation, no prefix reuse), mean."""
        from nextedit.train.data import encode_prompt

        tok, ms = self.runtime.tokenizer, []
        for ex in examples:
            ids = encode_prompt(self.predictor.format.render(ex.model_copy(update={"expected": []}),
                                                             self.predictor.options, tok), tok)
            if hasattr(self.runtime, "forget_prefix"):
                self.runtime.forget_prefix()
            c0 = time.process_time()
            self.original(ids, max_new_tokens=1, stop=[])
            ms.append((time.process_time() - c0) * 1000)
        return statistics.mean(ms)


def keystrokes(examples: list, model: str, extra: dict, options: dict) -> tuple[list[float], list[float], list[float]]:
    """CPU ms of a runtime (`options`) to encode the prompt of the second keystroke after a prediction (a one-token
    generation), with and without the prefix cache, and the share of the prompt served from the cache."""
    from nextedit.predictors import get_predictor
    from nextedit.train.data import encode_prompt

    cached = get_predictor(f"local:{model}", **options, prefix_cache=4, **extra)
    plain = get_predictor(f"local:{model}", **options, prefix_cache=0, **extra)
    rc, rp = cached.runtime(), plain.runtime()
    tok = rc.tokenizer

    def ids(ex) -> list[int]:
        return encode_prompt(cached.format.render(ex.model_copy(update={"expected": []}), cached.options, tok), tok)

    with_cache, without, share = [], [], []
    for ex in examples:
        rc.generate(ids(ex), max_new_tokens=1, stop=[])
        rc.generate(ids(typed(ex, "x")), max_new_tokens=1, stop=[])
        prompt = ids(typed(ex, "xy"))
        c0 = time.process_time()
        rc.generate(prompt, max_new_tokens=1, stop=[])
        c1 = time.process_time()
        rp.generate(prompt, max_new_tokens=1, stop=[])
        with_cache.append((c1 - c0) * 1000)
        without.append((time.process_time() - c1) * 1000)
        share.append(rc.reused / len(prompt))
    return with_cache, without, share


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

    from nextedit.cpu import free_cores
    from nextedit.jsonl import read_examples

    student = args.quickstart / "student" / "merged"
    model = args.model or (str(student) if (student / "nextedit.json").is_file() else "smollm2-135m-instruct")
    examples_file = args.examples or args.quickstart / "test.jsonl"
    if not examples_file.is_file():
        raise SystemExit(f"{examples_file}: no held-out examples; run `nextedit quickstart` or pass --examples")
    threads = free_cores(args.threads)  # the same for every runtime
    extra = {"threads": threads}
    if not (Path(model) / "nextedit.json").is_file():
        extra["format"] = args.format or "zeta1"
    examples = renderable(read_examples(examples_file), model, extra, args.n)
    specs = [s.strip() for s in args.runtimes.split(",") if s.strip()]
    from nextedit.train.sft import bf16_supported

    if not bf16_supported() and "transformers-float32" in specs and "transformers" in specs:
        specs.remove("transformers-float32")  # the default dtype is float32 here: the same runtime
    arms = [Arm(spec, RUNTIMES[spec], model, extra, examples[0]) for spec in specs]
    for i, ex in enumerate(examples):  # interleaved: load changes on a shared machine hit every runtime alike
        for arm in arms:
            arm.predict(ex)
        print(f"example {i + 1}/{len(examples)}: " + ", ".join(f"{a.spec} {a.total[-1]:,.0f} ms" for a in arms),
              flush=True)
    base = arms[0]
    f32 = next((a for a in arms if a.spec == "transformers-float32"), None) or \
        (base if base.spec == "transformers" and not bf16_supported() else None)
    rows = []
    for a in arms:
        prefill = a.prefill(examples[:4])
        per_token = [(g - prefill) / (n - 1) for g, n in zip(a.gen, a.n_out, strict=True) if n > 1]
        same = sum(x == y for x, y in zip(a.outs, base.outs, strict=True))
        same32 = sum(x == y for x, y in zip(a.outs, f32.outs, strict=True)) if f32 else None
        scoring = [c - g for c, g in zip(a.cpu, a.gen, strict=True)]
        label = a.spec + (f" ({'bf16' if bf16_supported() else 'float32'})" if a.spec == "transformers" else "")
        rows.append((label + (", baseline" if a is base else ""), f"{pct(a.total, .5):,.0f}", f"{pct(a.total, .9):,.0f}",
                     f"{pct(a.cpu, .5):,.0f}", f"{pct(base.cpu, .5) / pct(a.cpu, .5):.2f}", f"{prefill:,.0f}",
                     f"{statistics.median(per_token):.1f}", f"{statistics.median(scoring):,.0f}",
                     f"{same}/{len(examples)}", "–" if same32 is None else f"{same32}/{len(examples)}"))
    table = markdown_table(rows, headers=("runtime", "p50 ms", "p90 ms", "p50 CPU ms", "x baseline (CPU p50)",
                                          "prefill CPU ms", "CPU ms/output token", "scoring CPU ms (p50)",
                                          "identical to baseline", "identical to transformers float32"),
                           align="lrrrrrrrrr")
    n_in, n_out = base.n_in, base.n_out
    lines = [*table, "",
             (f"Prompts: median {statistics.median(n_in):.0f} tokens; outputs: median {statistics.median(n_out):.0f} "
              f"tokens (max {max(n_out)}). Runtimes run interleaved (each example on every runtime in turn); wall "
              "times (p50/p90 ms) include waiting for the CPU on this shared machine, CPU times (process time, all "
              "threads) do not. Prefill: one forward pass over a whole prompt (mean of 4); per output token: "
              "(generation - prefill) / (output tokens - 1), median; scoring: the candidate/confidence forward pass "
              "with rendering and parsing (prediction - generation).")]
    caching = next((s for s in specs if s.startswith("llama")), None) or ("ct2-int8" if any(
        s.startswith("ct2") for s in specs) else None)
    if args.keystrokes and caching:
        options = {k: v for k, v in RUNTIMES[caching].items() if k != "prompt_lookup"}
        with_cache, without, share = keystrokes(examples[:args.keystrokes], model, extra, options)
        lines += ["", (f"Keystrokes ({caching}, {len(with_cache)} examples; the prompt after a second character typed at "
                       f"the cursor, following a prediction and a first character): encoding it takes p50 "
                       f"{pct(with_cache, .5):,.0f} CPU ms with the prompt-prefix cache and {pct(without, .5):,.0f} "
                       f"without ({pct(without, .5) / pct(with_cache, .5):.2f}x); {statistics.mean(share):.0%} of the "
                       "prompt comes from the cache.")]
    text = section("predict: runtimes (local student, p50/p90 per prediction)", lines,
                   extra=f"{threads} threads per runtime",
                   note=f" (model {model}, {len(examples)} held-out examples from {examples_file}, greedy, batch 1, "
                        "warm model, prompt lookup on for transformers and llama, nice -n 10)")
    print(text)
    if not args.no_append:
        append_text(text)


if __name__ == "__main__":
    main()
