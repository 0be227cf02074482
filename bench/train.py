"""Benchmark `nextedit train`: SmolLM2-135M LoRA training tokens/s against a bare torch loop.

Usage: .venv/bin/python bench/train.py [--examples FILE.jsonl] [--steps 4] [--no-append]
Trains the embedded SmolLM2-135M-Instruct with LoRA for the same number of steps on the same rows:
a bare torch loop (forward, backward, AdamW; the baseline), `nextedit train` without packing (same
batches of 4 padded rows), with TRL's per-step token metrics on (entropy and token accuracy over the
full vocabulary, the trainer's behaviour before they became optional), and with packing. Reports
non-padding tokens per second of training time and the ratio to the bare loop. Without --examples
it mines a few dozen examples from this repository first. Appends a section to BENCHMARKS.md.
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


def _config(examples: Path, out: Path, *, packing: bool, steps: int, threads: int | str,
            token_metrics: bool = False):
    from nextedit.train.config import TrainConfig

    return TrainConfig.model_validate({
        "output_dir": str(out), "resume": False, "format_options": FORMAT_OPTIONS,
        "data": {"train": str(examples), "max_length": MAX_LENGTH},
        "train": {"max_steps": steps, "batch_size": BATCH, "packing": packing, "logging_steps": 1,
                  "save_steps": 10_000, "threads": threads, "token_metrics": token_metrics},
        "export": {"merged": False, "adapter": False},
    })


def _run(examples: Path, out: Path, *, packing: bool, steps: int, threads: int | str,
         token_metrics: bool = False) -> dict:
    from nextedit.train.sft import train

    r = train(_config(examples, out, packing=packing, steps=steps, threads=threads, token_metrics=token_metrics))
    return {"rows": r.train_rows, "steps": r.steps, "tokens": r.tokens_seen, "tok_s": r.tokens_per_s,
            "seconds": r.seconds, "loss": (r.train_loss_first, r.train_loss_last), "bf16": r.bf16}


def _bare_loop(examples: Path, *, steps: int, threads: int | str) -> dict:
    """Forward, backward and AdamW on the same model, LoRA adapters, rows, batch size and precision."""
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
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.bfloat16 if bf16 else torch.float32)
    model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                             target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.learning_rate)
    pad = tokenizer.pad_token_id
    tokens, losses = 0, []
    t0 = time.monotonic()
    for step in range(steps):
        batch = [rows[(step * BATCH + k) % len(rows)] for k in range(BATCH)]
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.tensor([r["input_ids"] + [pad] * (width - len(r["input_ids"])) for r in batch])
        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in batch])
        labels = torch.tensor([[t if m else -100 for t, m in zip(r["input_ids"], r["completion_mask"])]
                               + [-100] * (width - len(r["input_ids"])) for r in batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        losses.append(float(loss.detach()))
    seconds = time.monotonic() - t0
    return {"rows": len(rows), "steps": steps, "tokens": tokens, "tok_s": tokens / seconds, "seconds": seconds,
            "loss": (losses[0], losses[-1]), "bf16": bf16}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=Path, help="examples JSONL (default: mine this repository)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    threads = args.threads if args.threads == "auto" else int(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        examples = args.examples or _examples(Path(tmp))
        bare = _bare_loop(examples, steps=args.steps, threads=threads)
        runs = [("bare torch loop (baseline)", bare)]
        for name, kw in [("nextedit train, no packing", {"packing": False}),
                         ("nextedit train, no packing, token metrics on (TRL default)",
                          {"packing": False, "token_metrics": True}),
                         ("nextedit train, packing (default)", {"packing": True})]:
            runs.append((name, _run(examples, Path(tmp) / name.replace(" ", "_"), steps=args.steps,
                                    threads=threads, **kw)))
    base = bare["tok_s"]
    table = markdown_table(
        [(name, r["steps"], f"{r['tokens']:,}", f"{r['tok_s']:.0f}", f"{r['tok_s'] / base:.2f}",
          f"{r['loss'][0]:.3f} -> {r['loss'][1]:.3f}") for name, r in runs],
        headers=("run", "steps", "non-padding tokens", "tokens/s", "x bare loop", "train loss first -> last"),
        align="lrrrrl")
    text = section(
        "train (SmolLM2-135M LoRA) vs a bare torch loop",
        [*table, "",
         ("Goal: `nextedit train` >= 0.8x the bare loop's tokens/s. Same rows, LoRA r=16 all-linear, batch 4, "
          "same precision; by default the trainer projects only the completion positions through the LM head "
          "and skips TRL's per-step entropy/token-accuracy over the full vocabulary (`train.token_metrics`).")],
        command=f"python bench/train.py --steps {args.steps}",
        note=f" (batch {BATCH} x max {MAX_LENGTH} tokens, bf16={bare['bf16']}, {bare['rows']} rows)")
    print(text)
    if not args.no_append:
        append_text(text)


if __name__ == "__main__":
    main()
