"""Benchmark `nextedit train`: SmolLM2-135M LoRA training tokens/s against a bare torch loop.

Usage: .venv/bin/python bench/train.py [--examples FILE.jsonl] [--steps 4] [--method lora|full]
                                      [--batch 4] [--max-length 768] [--runs all|lean|packing]
                                      [--top-layers 8,15] [--no-append]
Trains the embedded SmolLM2-135M-Instruct (LoRA, or a full fine-tune with --method full) for the same
number of steps on the same rows:
a bare torch loop (forward, backward, AdamW; the baseline), `nextedit train` without packing (batches
of padded rows), with TRL's per-step token metrics on (entropy and token accuracy over the full
vocabulary, the trainer's behaviour before they became optional), and with packing (`--runs lean`: the
bare loop and the unpacked default only; `--runs packing`: packed, padded, and one row per forward pass
with the batch as gradient accumulation); with `--method full --top-layers N,...`, also the unpacked
default training only the top N decoder layers (`train.trainable_layers`). Reports non-padding tokens per
second of wall time, and per CPU-second of the steady steps (steps 2 to N-1; with and without padding),
each as a ratio to the bare loop. Use `--threads 1` on a shared machine: the CPU figures then do not depend
on its load. Without --examples it mines a few dozen examples from this repository first. Appends a section
to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _report import append_text, markdown_table, section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent


def _examples(tmp: Path) -> Path:
    from nextedit.mine.config import MineConfig
    from nextedit.mine.miner import mine

    out = tmp / "mined.jsonl"
    mine(ROOT, out, MineConfig(max_commits=60, samples_per_commit=2, seed=0, workers=1))
    return out


FORMAT_OPTIONS = {"editable_tokens": 96, "context_tokens": 160, "related_tokens": 192, "history_tokens": 192}
MAX_LENGTH = 768
BATCH = 4
METHOD = "lora"


def _config(examples: Path, out: Path, *, packing: bool, steps: int, threads: int | str,
            token_metrics: bool = False, trainable_layers: int | None = None, rows_per_pass: int | None = None):
    from nextedit.train.config import TrainConfig

    return TrainConfig.model_validate({
        "output_dir": str(out), "resume": False, "format_options": FORMAT_OPTIONS, "method": METHOD,
        "data": {"train": str(examples), "max_length": MAX_LENGTH},
        "train": {"max_steps": steps, "batch_size": rows_per_pass or BATCH,
                  "gradient_accumulation": BATCH // (rows_per_pass or BATCH), "packing": packing, "logging_steps": 1,
                  "save_steps": 10_000, "threads": threads, "token_metrics": token_metrics,
                  "trainable_layers": trainable_layers},
        "export": {"merged": False, "adapter": False},
    })


def _run(examples: Path, out: Path, *, packing: bool, steps: int, threads: int | str,
         token_metrics: bool = False, trainable_layers: int | None = None, rows_per_pass: int | None = None) -> dict:
    import time

    import transformers

    from nextedit.train.sft import train

    # CPU time from the start of one training step to the start of the next (the step, the optimizer, logging,
    # loading the next batch), steadier than wall time on a shared machine; the bare loop is timed the same way.
    marks: list[tuple[float, int]] = []
    original = transformers.Trainer.training_step

    def timed(self, model, inputs, *args, **kwargs):
        mask, numel = inputs.get("attention_mask"), int(inputs["input_ids"].numel())
        marks.append((time.process_time(), int(mask.sum()) if mask is not None else numel, numel))
        return original(self, model, inputs, *args, **kwargs)

    transformers.Trainer.training_step = timed
    try:
        r = train(_config(examples, out, packing=packing, steps=steps, threads=threads,
                          token_metrics=token_metrics, trainable_layers=trainable_layers,
                          rows_per_pass=rows_per_pass))
    finally:
        transformers.Trainer.training_step = original
    return {"rows": r.train_rows, "steps": r.steps, "tokens": r.tokens_seen, "tok_s": r.tokens_per_s,
            "tok_cpu_s": _steady_rate(marks), "padded_cpu_s": _steady_rate(marks, padded=True), "seconds": r.seconds,
            "loss": (r.train_loss_first, r.train_loss_last), "bf16": r.bf16}


def _steady_rate(marks: list[tuple[float, int, int]], *, padded: bool = False) -> float:
    """Tokens per CPU-second of the steps after the first (warm-up) and before the last (no next mark):
    `marks` holds (CPU time at the start of a step, its non-padding tokens, its tokens with padding)."""
    if len(marks) < 3:
        raise SystemExit("--steps must be at least 3 (the first step warms up, the last has no end mark)")
    return sum(m[2 if padded else 1] for m in marks[1:-1]) / (marks[-1][0] - marks[1][0])


def _bare_loop(examples: Path, *, steps: int, threads: int | str) -> dict:
    """Forward, backward and AdamW on the same model, adapters (LoRA) or weights (full), rows, batch size and
    precision."""
    import time

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from nextedit.formats import FormatOptions, get_format
    from nextedit.train.base_models import resolve_base
    from nextedit.train.sft import cpu_threads, load_tokenizer, use_bf16

    cfg = _config(examples, Path("."), packing=False, steps=steps, threads=threads)
    base_dir = resolve_base(cfg.base_model)
    tokenizer = load_tokenizer(base_dir)
    from nextedit.train.data import sft_rows

    rows, _ = sft_rows(cfg.data.train, get_format(cfg.format), FormatOptions(**cfg.format_options), tokenizer,
                       max_length=MAX_LENGTH)
    bf16 = use_bf16(cfg.train.bf16)
    cpu_threads(cfg.train.threads)
    torch.manual_seed(0)
    lora = METHOD == "lora"  # as `nextedit train`: a bf16 base under LoRA, fp32 weights under autocast when full
    model = AutoModelForCausalLM.from_pretrained(str(base_dir),
                                                 dtype=torch.bfloat16 if (bf16 and lora) else torch.float32)
    if lora:
        model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha,
                                                 lora_dropout=cfg.lora.dropout,
                                                 target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.learning_rate)
    pad = tokenizer.pad_token_id
    tokens, losses, marks = 0, [], []
    t0 = time.monotonic()
    for step in range(steps):
        batch = [rows[(step * BATCH + k) % len(rows)] for k in range(BATCH)]
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in batch])
        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in batch])
        labels = torch.tensor([[t if m else -100 for t, m in zip(r["input_ids"], r["completion_mask"])]
                               + [-100] * (width - len(r["input_ids"])) for r in batch])
        marks.append((time.process_time(), int(mask.sum()), int(ids.numel())))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        losses.append(float(loss.detach()))
    seconds = time.monotonic() - t0
    return {"rows": len(rows), "steps": steps, "tokens": tokens, "tok_s": tokens / seconds,
            "tok_cpu_s": _steady_rate(marks), "padded_cpu_s": _steady_rate(marks, padded=True), "seconds": seconds,
            "loss": (losses[0], losses[-1]), "bf16": bf16}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=Path, help="examples JSONL (default: mine this repository)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--method", choices=("lora", "full"), default="lora")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=768)
    ap.add_argument("--runs", choices=("all", "lean", "packing"), default="all",
                    help="lean: only the bare loop and `nextedit train` with its defaults but no packing; "
                         "packing: packed, padded, and one row per forward pass (the batch as accumulation)")
    ap.add_argument("--top-layers", default="",
                    help="with --method full: also time training only the top N decoder layers, for each N listed")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    tops = [int(n) for n in args.top_layers.split(",") if n.strip()]
    if tops and args.method != "full":
        ap.error("--top-layers needs --method full")
    global METHOD, BATCH, MAX_LENGTH
    METHOD, BATCH, MAX_LENGTH = args.method, args.batch, args.max_length
    threads = args.threads if args.threads == "auto" else int(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        examples = args.examples or _examples(Path(tmp))
        bare = _bare_loop(examples, steps=args.steps, threads=threads)
        runs = [("bare torch loop (baseline)", bare)]
        variants = [("nextedit train, no packing", {"packing": False}),
                    ("nextedit train, no packing, token metrics on (TRL default)",
                     {"packing": False, "token_metrics": True}),
                    ("nextedit train, packing (default)", {"packing": True})]
        if args.runs == "lean":
            variants = variants[:1]
        elif args.runs == "packing":
            variants = [variants[2], variants[0],
                        (f"nextedit train, no packing, 1 row x {BATCH} accumulated",
                         {"packing": False, "rows_per_pass": 1})]
        variants += [(f"nextedit train, no packing, top {n} layers", {"packing": False, "trainable_layers": n})
                     for n in tops]
        for name, kw in variants:
            runs.append((name, _run(examples, Path(tmp) / name.replace(" ", "_"), steps=args.steps,
                                    threads=threads, **kw)))
    base, base_cpu = bare["tok_s"], bare["tok_cpu_s"]
    table = markdown_table(
        [(name, r["steps"], f"{r['tokens']:,}", f"{r['tok_s']:.0f}", f"{r['tok_s'] / base:.2f}",
          f"{r['tok_cpu_s']:.1f}", f"{r['tok_cpu_s'] / base_cpu:.2f}",
          f"{r['padded_cpu_s']:.1f}", f"{r['padded_cpu_s'] / bare['padded_cpu_s']:.2f}",
          f"{r['loss'][0]:.3f} -> {r['loss'][1]:.3f}") for name, r in runs],
        headers=("run", "steps", "non-padding tokens", "tokens/s (wall)", "x bare loop (wall)",
                 "tokens per CPU-s", "x bare loop (CPU)", "tokens with padding per CPU-s", "x bare loop",
                 "train loss first -> last"),
        align="lrrrrrrrrl")
    what = "LoRA r=16 all-linear" if METHOD == "lora" else "full fine-tune"
    text = section(
        f"train (SmolLM2-135M {'LoRA' if METHOD == 'lora' else 'full fine-tune'}) vs a bare torch loop",
        [*table, "",
         (f"Goal: `nextedit train` >= 0.8x the bare loop's tokens/s. Same rows, {what}, batch {BATCH}, "
          "same precision; by default the trainer projects only the completion positions through the LM head "
          "and skips TRL's per-step entropy/token-accuracy over the full vocabulary (`train.token_metrics`). "
          "CPU columns: tokens per second of process time (all threads) from the start of the second step to "
          "the start of the last (step, optimizer, logging, next batch; the first step warms up); with "
          "`--threads 1` they do not depend on how busy a shared machine is, unlike the wall columns, which "
          "cover every step. The trainer shuffles rows and the bare loop takes them in order, so batches pad "
          "differently: tokens with padding (what the forward and backward passes compute) compare the work "
          "per CPU-second; non-padding tokens also count what padding costs.")],
        command=(f"python bench/train.py --steps {args.steps} --method {METHOD} --batch {BATCH} "
                 f"--max-length {MAX_LENGTH} --runs {args.runs} --threads {args.threads}"
                 + (f" --top-layers {args.top_layers}" if tops else "")),
        note=f" (batch {BATCH} x max {MAX_LENGTH} tokens, bf16={bare['bf16']}, {bare['rows']} rows)")
    print(text)
    if not args.no_append:
        append_text(text)


if __name__ == "__main__":
    main()
