"""Optional preference training (TRL DPO) after SFT: the expected patch is preferred over the rejected one.

Rows come from examples that carry a `rejected` patch (e.g. a prediction the user rejected). The SFT
model (LoRA merged in) is the frozen reference; DPO trains a fresh LoRA adapter (or all weights) on top.
"""

from __future__ import annotations

import time
from typing import Any

from nextedit.train.config import TrainConfig


def run_dpo(config: TrainConfig, model: Any, tokenizer: Any, fmt: Any, options: Any, *,
            console: Any = None) -> tuple[Any, dict[str, Any]]:
    """Train DPO on the config's training file; returns (the model to export, a summary dict).

    When no example has a usable rejected patch, the SFT model is returned unchanged.
    """
    from nextedit.train.data import dpo_rows
    from nextedit.train.preference import trl_trainer
    from nextedit.train.sft import use_bf16

    say = console.print if console is not None else (lambda *a, **k: None)
    rows, stats = dpo_rows(config.data.train, fmt, options, tokenizer, max_length=config.data.max_length,
                           limit=config.data.max_examples)
    say(stats.line("dpo"))
    if not rows:
        return model, {"rows": 0, "skipped": dict(stats.skipped)}
    lora = config.method == "lora"
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()  # the SFT model becomes the base and the frozen reference
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                                 target_modules=config.lora.target_modules, task_type="CAUSAL_LM")
    d = config.dpo
    t0 = time.monotonic()
    trainer = trl_trainer("dpo", model, tokenizer, rows, output_dir=config.output_dir / "dpo-checkpoints",
                          beta=d.beta, learning_rate=d.learning_rate, epochs=d.epochs, max_steps=d.max_steps,
                          batch_size=d.batch_size, gradient_accumulation=d.gradient_accumulation,
                          bf16=use_bf16(config.train.bf16), max_length=config.data.max_length,
                          seed=config.train.seed, peft_config=peft_config)
    trainer.train()
    history = [h for h in trainer.state.log_history if "loss" in h]
    summary = {"rows": stats.rows, "steps": trainer.state.global_step, "seconds": round(time.monotonic() - t0, 1),
               "loss_first": history[0]["loss"] if history else None,
               "loss_last": history[-1]["loss"] if history else None,
               "reward_margin_last": history[-1].get("rewards/margins") if history else None}
    say(f"dpo: {summary['steps']} steps, loss {summary['loss_first']} -> {summary['loss_last']}")
    return trainer.model, summary
