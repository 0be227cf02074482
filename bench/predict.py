"""Benchmark local prediction: ms per prediction and tokens/s with and without prompt-lookup decoding.

Usage: .venv/bin/python bench/predict.py [--model smollm2-135m-instruct] [--n 4] [--max-new-tokens 160]
Edit-style rewrites: functions from this repository's own source, with the instruct model asked to
rewrite each one with one identifier renamed (so most output tokens copy the prompt, as in next-edit
prediction). Greedy decoding, batch 1, same prompts for both runs; the outputs must be identical.
Reports ms per prediction and generated tokens/s, with the ratio against plain decoding (the
baseline, same run). Appends a section to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import ast
import os
import time
from pathlib import Path

from _report import append_text, markdown_table, section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent


def functions(n: int, max_lines: int = 24) -> list[tuple[str, str]]:
    """(source, name) of the first `n` top-level functions of 8-`max_lines` lines in src/nextedit."""
    out = []
    for path in sorted((ROOT / "src" / "nextedit").rglob("*.py")):
        text = path.read_text()
        for node in ast.parse(text).body:
            if isinstance(node, ast.FunctionDef) and 8 <= node.end_lineno - node.lineno + 1 <= max_lines:
                lines = text.splitlines()[node.lineno - 1:node.end_lineno]
                out.append(("\n".join(lines) + "\n", node.name))
                if len(out) >= n:
                    return out
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="embedded name, HF folder or .gguf")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--lookup-tokens", type=int, default=10)
    ap.add_argument("--dtype", choices=["auto", "bfloat16", "float32"], default="auto")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nextedit.train.base_models import resolve_base
    from nextedit.train.sft import bf16_supported, cpu_threads

    threads = cpu_threads("auto")
    model_dir = resolve_base(args.model)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    dtype = (torch.bfloat16 if bf16_supported() else torch.float32) if args.dtype == "auto" else \
        getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).eval()
    prompts = []
    for src, name in functions(args.n):
        msg = (f"Rewrite this Python function with `{name}` renamed to `{name}_v2`. "
               f"Answer with the code only.\n\n```python\n{src}```")
        ids = tok.apply_chat_template([{"role": "user", "content": msg}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
        prompts.append(ids)

    def run(lookup: bool) -> tuple[list[float], list[int], list[list[int]]]:
        ms, counts, outs = [], [], []
        for ids in prompts:
            kw = {"prompt_lookup_num_tokens": args.lookup_tokens} if lookup else {}
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=args.max_new_tokens, pad_token_id=tok.eos_token_id, **kw)
            ms.append((time.perf_counter() - t0) * 1000)
            new = out[0, ids.shape[1]:].tolist()
            counts.append(len(new))
            outs.append(new)
        return ms, counts, outs

    base_ms, base_n, base_out = run(False)
    pl_ms, pl_n, pl_out = run(True)
    same = sum(a == b for a, b in zip(base_out, pl_out, strict=True))
    rows = []
    for name, ms, n in (("plain greedy decoding (baseline)", base_ms, base_n),
                        (f"prompt lookup ({args.lookup_tokens} tokens)", pl_ms, pl_n)):
        rows.append((name, sum(ms) / len(ms), sum(n) / (sum(ms) / 1000)))
    base_tps = rows[0][2]
    table = markdown_table([(name, f"{ms:,.0f}", f"{tps:.1f}", f"{tps / base_tps:.2f}") for name, ms, tps in rows],
                           headers=("decoding", "ms per prediction", "tokens/s", "x baseline (tokens/s)"))
    text = section(
        "predict (local model, prompt lookup)",
        [*table, "", (f"Identical outputs: {same}/{len(prompts)} (greedy; in bf16 the verification pass scores "
                      "several tokens at once and rounding can flip near-ties, so texts may differ). Speed-up "
                      f"from prompt lookup: **{rows[1][2] / base_tps:.2f}x** tokens/s.")],
        extra=f"{threads} torch threads",
        command=f"python bench/predict.py --n {args.n}{'' if args.dtype == 'auto' else ' --dtype ' + args.dtype}",
        note=(f" (model {args.model}, {len(prompts)} rename rewrites of this repository's functions, greedy, "
              f"batch 1, {str(dtype).removeprefix('torch.')}, up to {args.max_new_tokens} new tokens; "
              f"{sum(base_n)} / {sum(pl_n)} tokens generated without / with lookup)"))
    print(text)
    if not args.no_append:
        append_text(text)


if __name__ == "__main__":
    main()
