"""Benchmark `nextedit train`: SmolLM2-135M LoRA training tokens/s with and without sequence packing.

Usage: .venv/bin/python bench/train.py [--examples FILE.jsonl] [--steps 6] [--no-append]
Trains the embedded SmolLM2-135M-Instruct with LoRA for the same number of steps on the same rows
twice (packing off = the baseline, packing on), and reports completion-masked training throughput as
non-padding tokens per second of training time, plus the ratio. Without --examples it mines a few
dozen examples from this repository first. Appends a section to BENCHMARKS.md.
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


def _run(examples: Path, out: Path, *, packing: bool, steps: int, threads: int | str) -> dict:
    from nextedit.train.config import TrainConfig
    from nextedit.train.sft import train

    cfg = TrainConfig.model_validate({
        "output_dir": str(out), "resume": False,
        "format_options": {"editable_tokens": 96, "context_tokens": 160, "related_tokens": 192,
                           "history_tokens": 192},
        "data": {"train": str(examples), "max_length": 768},
        "train": {"max_steps": steps, "batch_size": 4, "packing": packing, "logging_steps": 1,
                  "save_steps": 10_000, "threads": threads},
        "export": {"merged": False, "adapter": False},
    })
    r = train(cfg)
    return {"rows": r.train_rows, "steps": r.steps, "tokens": r.tokens_seen, "tok_s": r.tokens_per_s,
            "seconds": r.seconds, "loss": (r.train_loss_first, r.train_loss_last)}


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
        base = _run(examples, Path(tmp) / "nopack", packing=False, steps=args.steps, threads=threads)
        packed = _run(examples, Path(tmp) / "pack", packing=True, steps=args.steps, threads=threads)
    ratio = packed["tok_s"] / base["tok_s"] if base["tok_s"] and packed["tok_s"] else None
    rows = [("no packing (baseline)", base), ("packing (bfd)", packed)]
    table = markdown_table(
        [(name, r["steps"], f"{r['tokens']:,}", f"{r['tok_s']:.0f}",
          f"{(r['tok_s'] / base['tok_s']) if base['tok_s'] and r['tok_s'] else float('nan'):.2f}",
          f"{r['loss'][0]:.3f} -> {r['loss'][1]:.3f}") for name, r in rows],
        headers=("run", "steps", "non-padding tokens", "tokens/s", "x baseline", "train loss first -> last"))
    text = section(
        "train (SmolLM2-135M LoRA)",
        [*table, "", f"Packing / no packing throughput ratio: **{ratio:.2f}x** (same rows, same steps, same run)."],
        command=f"python bench/train.py --steps {args.steps}",
        note=f" (batch 4 x max 768 tokens, r=16, bf16 where supported, {base['rows']} rows)")
    print(text)
    if not args.no_append:
        append_text(text)


if __name__ == "__main__":
    main()
