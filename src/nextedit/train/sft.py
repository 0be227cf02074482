"""Supervised fine-tuning of a student (TRL SFTTrainer, loss on the completion only), LoRA or full, then export."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nextedit.train.config import TrainConfig
from nextedit.train.data import RowStats
from nextedit.train.resume import changed_settings, checkpoint_state, record

CHECKPOINTS = "checkpoints"


class TrainError(RuntimeError):
    """A training run that cannot start or finish (no usable rows, missing packages, ...)."""


@dataclass
class TrainResult:
    """What a training run wrote and measured (also saved as `output_dir/train.json`)."""

    output_dir: str
    base_model: str
    method: str
    steps: int = 0
    train_rows: int = 0
    eval_rows: int = 0
    train_loss_first: float | None = None
    train_loss_last: float | None = None
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    tokens_seen: int = 0
    tokens_per_s: float | None = None
    seconds: float = 0.0
    bf16: bool = False
    packing: bool = False
    resumed_from: str | None = None
    exported: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    dpo: dict[str, Any] | None = None
    preference: dict[str, Any] | None = None
    distributed: dict[str, Any] | None = None
    #: (trainable parameters, all parameters) when only the top layers train (train.trainable_layers)
    trainable: tuple[int, int] | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A short human summary."""
        out = [f"trained {self.method} on {self.train_rows} rows: {self.steps} steps in {self.seconds:.0f} s"
               + (f" ({self.tokens_per_s:,.0f} tokens/s)" if self.tokens_per_s else "")]
        if self.train_loss_first is not None:
            out.append(f"train loss {self.train_loss_first:.3f} -> {self.train_loss_last:.3f}")
        if self.eval_loss_before is not None or self.eval_loss_after is not None:
            before = "n/a" if self.eval_loss_before is None else f"{self.eval_loss_before:.3f}"
            after = "n/a" if self.eval_loss_after is None else f"{self.eval_loss_after:.3f}"
            out.append(f"held-out loss {before} -> {after} ({self.eval_rows} rows)")
        if self.preference:
            p = self.preference
            rows = (f"{p['pairs']} pairs" if p["method"] == "dpo"
                    else f"{p['desirable']} desirable / {p['undesirable']} undesirable")
            out.append(f"{p['method']} (beta {p['beta']}): {rows}, {p['sft_rows']} SFT rows")
        if self.distributed:
            d = self.distributed
            out.append(f"data-parallel on {d['world_size']} processes ({d['backend']}): "
                       + (f"results {d['results']}" if "results" in d else "all ranks ended with the same weights"))
        for kind, path in self.exported.items():
            out.append(f"{kind}: {path}")
        return out


def require_training_packages() -> None:
    """Raise TrainError naming the pip install when torch/transformers/peft/trl/datasets are missing."""
    import importlib.util

    missing = [m for m in ("torch", "transformers", "peft", "trl", "datasets", "accelerate")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise TrainError(f"training needs {', '.join(missing)}: pip install torch==2.13.0 "
                         "&& pip install 'nextedit[train]'")


def bf16_supported() -> bool:
    """Whether this machine computes bf16 natively (CUDA with bf16, or a CPU with AVX512-BF16 / AMX)."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def cpu_threads(setting: int | str = "auto", *, share: int = 1) -> int:
    """Set and return torch's CPU thread count (nextedit.cpu.free_cores)."""
    import torch

    from nextedit.cpu import free_cores

    n = free_cores(setting, share=share)
    torch.set_num_threads(n)
    return n


def use_bf16(setting: bool | str) -> bool:
    """Resolve the `bf16` config value ("auto" = where supported)."""
    return bf16_supported() if setting == "auto" else bool(setting)


def _console_callback(console: Any, total_steps_hint: int | None):
    from transformers import TrainerCallback

    class ConsoleLog(TrainerCallback):
        """Print one short line per log event."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or console is None:
                return
            parts = [f"step {state.global_step}/{state.max_steps or total_steps_hint or '?'}"]
            for key in ("loss", "eval_loss", "learning_rate"):
                if key in logs:
                    parts.append(f"{key} {logs[key]:.4g}")
            if len(parts) > 1:
                console.print("  " + "  ".join(parts))

    return ConsoleLog()


def _time_budget_callback(seconds: float, *, distributed: bool = False):
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        """Stop training at the first step end past the budget (the schedule's remaining steps are skipped).

        Data-parallel ranks agree on that step (any rank past the budget stops them all): a rank that
        stopped alone would leave the others waiting in the next gradient all-reduce.
        """

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            over = time.monotonic() - self.start > seconds
            if distributed:
                from nextedit.train.distributed import any_rank

                over = any_rank(over, args.device)
            if over:
                control.should_training_stop = True

    return TimeBudget()


def _lean_trainer(base: type) -> type:
    """`base` (TRL's SFTTrainer) whose loss projects only the positions with a label through the LM head.

    TRL's default loss scores every position (prompt included) on CPU and computes the entropy and
    top-1 accuracy over the full vocabulary each step, for metrics only; with completion-only loss
    most positions are prompt. This loss runs the backbone, keeps the hidden states of positions
    whose next token is a label, and takes the cross-entropy of those: the same loss and gradients.
    Under data parallelism the forward pass goes through the DDP wrapper (which all-reduces the
    gradients) and the backbone's output is taken with a forward hook.
    """
    import inspect

    import torch
    import torch.nn.functional as F

    class LeanSFTTrainer(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            causal = self.accelerator.unwrap_model(model)
            if hasattr(causal, "get_base_model"):  # PEFT: LoRA layers live inside the base model
                causal = causal.get_base_model()
            text_config = causal.config.get_text_config()
            if return_outputs or any(getattr(text_config, k, None) is not None for k in
                                     ("final_logit_softcapping", "logit_scale", "logits_scaling")):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            kwargs = {k: v for k, v in inputs.items() if k not in ("labels", "completion_mask", "assistant_masks")}
            if self.accelerator.num_processes > 1:
                hidden = _hidden_through_wrapper(model, causal, kwargs)
            else:
                hidden = causal.base_model(**kwargs, use_cache=False).last_hidden_state
            targets = labels[:, 1:]
            mask = targets != -100
            logits = causal.get_output_embeddings()(hidden[:, :-1][mask]).float()
            total = F.cross_entropy(logits, targets[mask], reduction="sum")
            count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
            loss = total / torch.as_tensor(count, device=total.device)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return loss

    def _hidden_through_wrapper(model, causal, kwargs):
        captured: list[Any] = []

        def keep(module, args, output):
            captured.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

        handle = causal.base_model.register_forward_hook(keep)
        try:  # the LM head runs on one position per row only; the loss re-projects the labelled ones
            few = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(causal.forward).parameters else {}
            model(**kwargs, use_cache=False, **few)
        finally:
            handle.remove()
        return captured[-1]

    return LeanSFTTrainer


def _checkpoint_to_resume(checkpoints: Path, config: TrainConfig) -> str | None:
    """The newest checkpoint to resume from, or None to start over; refuses, before any work, checkpoints written
    under other settings or past `train.max_steps`."""
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if not (found and config.resume):
        return None
    changed = changed_settings(checkpoints, config)
    if changed:
        raise TrainError(f"{checkpoints}: {Path(found).name} was trained under other settings "
                         f"({'; '.join(changed)}): pass --no-resume to start over, or use another output_dir")
    step = checkpoint_state(found).get("global_step", 0)
    if 0 < config.train.max_steps < step:
        raise TrainError(f"{found}: already at step {step}, past train.max_steps = {config.train.max_steps}: "
                         "raise max_steps, or pass --no-resume to start over")
    return found


def _start_over(checkpoints: Path, config: TrainConfig, say: Any) -> None:
    """Before the first step of a run from scratch: move earlier checkpoints to `checkpoints.old` (the trainer
    would otherwise rotate them with its own) and record this run's settings beside its checkpoints."""
    if checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*")):
        old = checkpoints.with_name(f"{checkpoints.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        checkpoints.rename(old)
        say(f"starting over: the previous checkpoints moved to {old}")
    record(checkpoints, config)


def load_tokenizer(base_dir: Path) -> Any:
    """The base model's tokenizer, with a pad token (the EOS token when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def train_top_layers(model: Any, layers: int) -> tuple[int, int]:
    """Freeze every weight of a causal LM except its top `layers` decoder layers, its final norm and an LM head
    not tied to the embeddings; returns (trainable, all) parameter counts. Backward then stops below those layers."""
    decoder = model.get_decoder()
    blocks = getattr(decoder, "layers", None)
    if blocks is None:
        raise TrainError(f"train.trainable_layers: {type(model).__name__} has no decoder layer list to choose from")
    if layers > len(blocks):
        raise TrainError(f"train.trainable_layers = {layers}, but the model has {len(blocks)} decoder layers")
    model.requires_grad_(False)
    keep = [*blocks[len(blocks) - layers:], getattr(decoder, "norm", None)]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not model.get_input_embeddings().weight:
        keep.append(head)
    for module in keep:
        if module is not None:
            module.requires_grad_(True)
    return (sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() for p in model.parameters()))


def _first_last(history: list[dict[str, Any]], key: str) -> tuple[float | None, float | None]:
    values = [h[key] for h in history if key in h]
    return (values[0], values[-1]) if values else (None, None)


def train(config: TrainConfig, *, console: Any = None) -> TrainResult:
    """Run SFT (and DPO when enabled), or preference training (method kto / dpo), as configured; export, write
    train.json; returns the result."""
    require_training_packages()
    if "ct2" in config.export.runtimes:
        import importlib.util

        if importlib.util.find_spec("ctranslate2") is None:  # fail now, not after training
            raise TrainError("[export] runtimes = [\"ct2\"] needs CTranslate2: pip install 'nextedit[cpu]'")
    if config.method in ("kto", "dpo"):
        from nextedit.train.preference import train_preference

        return train_preference(config, console=console)
    from nextedit.train import distributed as ddp

    if ddp.needs_launch(config.distributed):
        return ddp.launch(config, console=console)
    ddp.check(config.distributed)
    world = ddp.world_size()
    main_process = ddp.rank() == 0
    if not main_process:
        console = None
    import warnings

    import datasets
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from nextedit.formats import FormatOptions, get_format
    from nextedit.train.base_models import resolve_base
    from nextedit.train.data import sft_rows
    from nextedit.train.export import export_model, export_runtimes, model_metadata

    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    t0 = time.monotonic()
    say = console.print if console is not None else (lambda *a, **k: None)
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = _checkpoint_to_resume(out / CHECKPOINTS, config)
    base_dir = resolve_base(config.base_model)
    fmt = get_format(config.format)
    options = FormatOptions(**config.format_options)
    tokenizer = load_tokenizer(base_dir)
    if config.add_special_tokens:
        if config.method != "full":
            raise TrainError("add_special_tokens = true needs method = \"full\" (LoRA cannot learn new embeddings)")
        tokenizer.add_special_tokens({"additional_special_tokens": list(fmt.special_tokens)})

    data = config.data
    train_rows, train_stats = sft_rows(data.train, fmt, options, tokenizer, max_length=data.max_length,
                                       limit=data.max_examples)
    say(train_stats.line("train"))
    if not train_rows:
        raise TrainError(f"{data.train}: no usable training rows ({train_stats.line('train')})")
    eval_rows: list[dict[str, list[int]]] = []
    eval_stats = RowStats()
    if data.eval is not None:
        eval_rows, eval_stats = sft_rows(data.eval, fmt, options, tokenizer, max_length=data.max_length,
                                         limit=data.max_eval_examples)
        say(eval_stats.line("held-out"))

    bf16 = use_bf16(config.train.bf16)
    if not torch.cuda.is_available():
        say(f"CPU threads: {cpu_threads(config.train.threads, share=ddp.local_world_size())}")
    lora = config.method == "lora"
    # LoRA trains small fp32 adapters on a frozen base (bf16 base when bf16 is on); a full fine-tune keeps
    # fp32 master weights and runs the forward pass under bf16 autocast.
    dtype = torch.bfloat16 if (bf16 and lora) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype)
    if config.add_special_tokens:
        model.resize_token_embeddings(len(tokenizer))
    trainable = None
    if config.train.trainable_layers is not None:
        trainable = train_top_layers(model, config.train.trainable_layers)
        say(f"training the top {config.train.trainable_layers} decoder layers: {trainable[0]:,} of "
            f"{trainable[1]:,} weights")
        if config.train.gradient_checkpointing:
            model.enable_input_require_grads()  # checkpointed frozen layers would otherwise pass no gradient up
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                                 target_modules=config.lora.target_modules, task_type="CAUSAL_LM")
    sched = config.train
    has_eval = bool(eval_rows)
    # Data-parallel: the held-out loss before training is taken inside the training loop (eval_on_start). An
    # evaluate() call before train() marks the model as prepared, and accelerate then skips the DDP wrapper:
    # every rank would train alone.
    eval_on_start = world > 1 and has_eval and checkpoint is None
    args = SFTConfig(
        output_dir=str(out / CHECKPOINTS),
        learning_rate=sched.learning_rate,
        num_train_epochs=sched.epochs,
        max_steps=sched.max_steps,
        per_device_train_batch_size=sched.batch_size,
        per_device_eval_batch_size=sched.batch_size,
        gradient_accumulation_steps=sched.gradient_accumulation,
        warmup_steps=sched.warmup_ratio,
        lr_scheduler_type=sched.lr_scheduler,
        weight_decay=sched.weight_decay,
        bf16=bf16,
        max_length=data.max_length,
        packing=sched.packing,
        completion_only_loss=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=sched.eval_steps,
        save_strategy="steps",
        save_steps=sched.save_steps,
        save_total_limit=sched.save_total_limit,
        logging_steps=min(sched.logging_steps, sched.max_steps) if sched.max_steps > 0 else sched.logging_steps,
        seed=sched.seed,
        data_seed=sched.seed,
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(),
        # Always passed: TRL's SFTConfig defaults to True, which recomputes every forward pass during the
        # backward pass (about a third more work per step) even when the config says false.
        gradient_checkpointing=sched.gradient_checkpointing,
        # every trainable parameter takes part in the loss: no extra search of the graph for unused ones
        **({"ddp_backend": ddp.resolved_backend(config.distributed), "eval_on_start": eval_on_start,
            "ddp_find_unused_parameters": False} if world > 1 else {}),
    )
    trainer_class = SFTTrainer if sched.token_metrics else _lean_trainer(SFTTrainer)
    trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                         eval_dataset=Dataset.from_list(eval_rows) if has_eval else None,
                         processing_class=tokenizer, peft_config=peft_config,
                         callbacks=[_console_callback(console, None),
                                    *([_time_budget_callback(sched.max_seconds, distributed=world > 1)]
                                      if sched.max_seconds else [])])
    trainer.remove_callback(PrinterCallback)  # our ConsoleLog prints the short lines instead
    result = TrainResult(output_dir=str(out), base_model=str(config.base_model), method=config.method,
                         train_rows=train_stats.rows, eval_rows=eval_stats.rows, bf16=bf16, packing=sched.packing,
                         resumed_from=checkpoint, trainable=trainable,
                         skipped={f"train {k}": v for k, v in train_stats.skipped.items()}
                         | {f"eval {k}": v for k, v in eval_stats.skipped.items()})
    if has_eval and checkpoint is None and not eval_on_start:
        result.eval_loss_before = trainer.evaluate().get("eval_loss")
        say(f"  held-out loss before training: {result.eval_loss_before:.4g}")
    if checkpoint:
        say(f"resuming from {checkpoint}")
    if checkpoint is None and main_process:
        _start_over(out / CHECKPOINTS, config, say)
    t_train = time.monotonic()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = time.monotonic() - t_train
    trainer.save_model(str(out / CHECKPOINTS / "final"))
    history = [dict(h) for h in trainer.state.log_history]
    evals = [h for h in history if "eval_loss" in h]
    if has_eval:
        if evals and evals[-1].get("step") == trainer.state.global_step:
            result.eval_loss_after = evals[-1]["eval_loss"]
        else:
            result.eval_loss_after = trainer.evaluate().get("eval_loss")
            history = [dict(h) for h in trainer.state.log_history]
    if eval_on_start and evals:
        result.eval_loss_before = evals[0]["eval_loss"]
    result.log_history = history
    result.steps = trainer.state.global_step
    result.train_loss_first, result.train_loss_last = _first_last(history, "loss")
    result.tokens_seen = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    runtime = output.metrics.get("train_runtime") or train_seconds
    this_run = result.tokens_seen - (checkpoint_state(checkpoint).get("num_input_tokens_seen", 0) if checkpoint else 0)
    if this_run > 0 and runtime:
        result.tokens_per_s = this_run / runtime

    model = trainer.model
    if world > 1:
        result.distributed = {"world_size": world, "backend": ddp.resolved_backend(config.distributed),
                              "weights": ddp.same_weights_on_all_ranks(model)}
    metadata = model_metadata(format_name=fmt.name, format_version=str(fmt.version),
                              format_options=options.model_dump(), base_model=str(config.base_model),
                              method=config.method, stop=list(fmt.stop),
                              extra={"train": {"steps": result.steps, "rows": result.train_rows,
                                               "eval_loss": result.eval_loss_after, "dpo": bool(result.dpo)}})
    if config.dpo.enabled:
        from nextedit.train.dpo import run_dpo

        # The adapter export stays the SFT adapter (relative to the base model); merged/ holds SFT + DPO.
        written = export_model(model, tokenizer, out, metadata, merged=False, adapter=config.export.adapter) \
            if main_process else {}
        model, result.dpo = run_dpo(config, model, tokenizer, fmt, options, console=console)
        metadata["train"]["dpo"] = bool(result.dpo and result.dpo.get("rows"))
        if world > 1:
            result.distributed["weights"] = ddp.same_weights_on_all_ranks(model)
        if main_process:
            written |= export_model(model, tokenizer, out, metadata, merged=config.export.merged, adapter=False)
    elif main_process:
        written = export_model(model, tokenizer, out, metadata, merged=config.export.merged,
                               adapter=config.export.adapter)
    else:
        written = {}  # rank 0 exports; the other ranks hold the same weights
    if main_process and "merged" in written:
        written |= export_runtimes(written["merged"], out, config.export.runtimes,
                                   quantization=config.export.ct2_quantization,
                                   gguf_quantization=config.export.gguf_quantization)
    result.exported = {k: str(v) for k, v in written.items()}
    result.seconds = time.monotonic() - t0
    if main_process:
        (out / "train.json").write_text(json.dumps({**asdict(result), "config": config.model_dump(mode="json")},
                                                   indent=2, default=str))
    return result
