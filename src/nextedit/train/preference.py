"""Preference training of an SFT student on feedback records with TRL: KTO (unpaired) or DPO (pairs).

KTO rows come straight from the explicit outcomes: an accepted prediction is desirable, a rejected one
undesirable, and (with `use_settled`) the settled text is desirable where it differs from the prediction
(the unchanged region when the user changed nothing: abstention where users rejected). DPO pairs the
settled text (or an accepted prediction for the same context) against a rejected prediction. SFT
examples can be mixed in (`sft_ratio`) to keep the student's supervised behaviour, and `beta` sets the
KL strength against the student, which is also the frozen reference.

Prompts and targets are rendered by the student's own format (from its nextedit.json), so a row's
prompt is the prompt `local:PATH` feeds the model for the same snapshot.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nextedit import patch as patchlib
from nextedit.feedback.records import FeedbackError, FeedbackRecord, read_feedback
from nextedit.record import Example, Snapshot
from nextedit.train.config import PreferenceConfig, TrainConfig

PREFERENCE_METHODS = ("kto", "dpo")


@dataclass
class PreferenceStats:
    """What became of the feedback records and SFT examples while building rows."""

    records: int = 0
    rows: int = 0
    desirable: int = 0
    undesirable: int = 0
    pairs: int = 0
    sft_rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def line(self, name: str) -> str:
        """One human line."""
        parts = (f"{self.desirable} desirable, {self.undesirable} undesirable" if not self.pairs
                 else f"{self.pairs} pairs")
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return (f"{name}: {self.rows} rows from {self.records} feedback records ({parts}; {self.sft_rows} SFT)"
                + (f"; skipped: {skipped}" if skipped else ""))


class Renderer:
    """Prompt and target texts of a snapshot and an edit, in a student format, within a token budget."""

    def __init__(self, fmt: Any, options: Any, tokenizer: Any, max_length: int) -> None:
        self.fmt, self.options, self.tokenizer, self.max_length = fmt, options, tokenizer, max_length

    def render(self, snapshot: Snapshot, patch: str, cursor: int | None = None) -> tuple[str, str] | None:
        """(prompt text, target text) of `patch` ("" = no edit); None when the format refuses the example."""
        from nextedit.formats import FormatError
        from nextedit.train.data import prompt_text

        example = Example(id="row", snapshot=snapshot, expected=[patch],
                          expected_cursors=[cursor] if cursor is not None else [])
        try:
            rendered = self.fmt.render(example, self.options, self.tokenizer)
        except FormatError:
            return None
        if rendered.target is None:
            return None
        return prompt_text(rendered, self.tokenizer), rendered.target

    def fits(self, prompt: str, *targets: str) -> bool:
        """Whether prompt + the longest target fit `max_length` tokens."""
        n = len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        longest = max(len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets)
        return n + longest + 1 <= self.max_length


def settled_patch(record: FeedbackRecord) -> str | None:
    """The patch from the record's snapshot to its settled region ("" when the user changed nothing); None
    without a settled text."""
    if record.settled is None:
        return None
    if record.settled.text == record.original:
        return ""
    snap = record.snapshot
    return patchlib.from_region(snap.text, snap.editable or (0, len(snap.text)), record.settled.text,
                                path=snap.path, start_line=snap.start_line)


def _settled_differs(record: FeedbackRecord) -> bool:
    return record.settled is not None and record.settled.text != record.prediction.region


def kto_rows(records: Iterable[FeedbackRecord], render: Renderer, pref: PreferenceConfig,
             stats: PreferenceStats) -> list[dict[str, Any]]:
    """Unpaired rows {prompt, completion, label}: accepted predictions desirable, rejected (and, when
    configured, ignored) ones undesirable, settled texts that differ from the prediction desirable."""
    rows: list[dict[str, Any]] = []
    for rec in records:
        stats.records += 1
        items: list[tuple[str, int | None, bool]] = []
        if rec.outcome == "accepted":
            items.append((rec.prediction.patch, rec.prediction.cursor, True))
        elif rec.outcome == "rejected" or (rec.outcome == "ignored" and pref.ignored == "undesirable"):
            items.append((rec.prediction.patch, rec.prediction.cursor, False))
        if pref.use_settled and _settled_differs(rec):
            items.append((settled_patch(rec) or "", None, True))
        if not items:
            stats.skipped[f"{rec.outcome} without a usable label"] += 1
            continue
        for patch, cursor, label in items:
            pair = render.render(rec.snapshot, patch, cursor)
            if pair is None:
                stats.skipped["refused by format"] += 1
                continue
            if not render.fits(pair[0], pair[1]):
                stats.skipped["too long"] += 1
                continue
            rows.append({"prompt": pair[0], "completion": pair[1], "label": label})
            stats.desirable += label
            stats.undesirable += not label
    stats.rows += len(rows)
    return rows


def context_key(snapshot: Snapshot) -> str:
    """Records with the same key saw the same prompt context (path, text, editable region, cursor, history)."""
    parts = [snapshot.path, snapshot.text, str(snapshot.editable), str(snapshot.cursor),
             *(h.diff for h in snapshot.history)]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def dpo_pairs(records: Iterable[FeedbackRecord], render: Renderer, pref: PreferenceConfig,
              stats: PreferenceStats) -> list[dict[str, Any]]:
    """Pairs {prompt, chosen, rejected}: per rejected prediction, the settled text (when it differs from the
    prediction), else an accepted prediction for the same context, is chosen."""
    records = list(records)
    stats.records += len(records)
    accepted: dict[str, list[FeedbackRecord]] = defaultdict(list)
    for rec in records:
        if rec.positive:
            accepted[context_key(rec.snapshot)].append(rec)
    rows: list[dict[str, Any]] = []
    for rec in records:
        negative = rec.outcome == "rejected" or (rec.outcome == "ignored" and pref.ignored == "undesirable")
        if not negative:
            continue
        chosen: tuple[str, int | None] | None = None
        if pref.use_settled and _settled_differs(rec):
            chosen = (settled_patch(rec) or "", None)
        else:
            for other in accepted.get(context_key(rec.snapshot), []):
                if other.prediction.region != rec.prediction.region:
                    chosen = (other.prediction.patch, other.prediction.cursor)
                    break
        if chosen is None:
            stats.skipped["rejected without a chosen side"] += 1
            continue
        good = render.render(rec.snapshot, *chosen)
        bad = render.render(rec.snapshot, rec.prediction.patch, rec.prediction.cursor)
        if good is None or bad is None:
            stats.skipped["refused by format"] += 1
            continue
        if good[1] == bad[1]:
            stats.skipped["no distinct chosen/rejected"] += 1
            continue
        if not render.fits(good[0], good[1], bad[1]):
            stats.skipped["too long"] += 1
            continue
        rows.append({"prompt": good[0], "chosen": good[1], "rejected": bad[1]})
    stats.pairs += len(rows)
    stats.rows += len(rows)
    return rows


def sft_mixture(path: Path, n: int, render: Renderer, method: str, seed: int,
                stats: PreferenceStats) -> list[dict[str, Any]]:
    """`n` rows from SFT examples (a random sample, seeded): KTO desirable rows, or DPO rows with the same
    chosen and rejected side (no preference gradient; the NLL term trains them)."""
    from nextedit.jsonl import read_examples

    if n <= 0:
        return []
    if not path.is_file():
        raise FeedbackError(f"{path}: no such file (preference.sft_data)")
    examples = list(read_examples(path, errors="skip"))
    random.Random(seed).shuffle(examples)
    rows: list[dict[str, Any]] = []
    for ex in examples:
        if len(rows) >= n:
            break
        pair = render.render(ex.snapshot, ex.expected[0] if ex.expected else "",
                             ex.expected_cursors[0] if ex.expected and ex.expected_cursors else None)
        if pair is None or not render.fits(*pair):
            stats.skipped["SFT example refused or too long"] += 1
            continue
        rows.append({"prompt": pair[0], "completion": pair[1], "label": True} if method == "kto"
                    else {"prompt": pair[0], "chosen": pair[1], "rejected": pair[1]})
    stats.sft_rows += len(rows)
    stats.desirable += len(rows) if method == "kto" else 0
    stats.rows += len(rows)
    return rows


def build_rows(path: Path, method: str, render: Renderer, pref: PreferenceConfig, *,
               sft: bool = True) -> tuple[list[dict[str, Any]], PreferenceStats]:
    """The rows of a feedback file for `method`, with the SFT mixture when `sft`, shuffled (seeded)."""
    stats = PreferenceStats()

    def bad(reason: str) -> None:
        stats.skipped["unreadable"] += 1

    records = read_feedback(path, on_error=bad)
    rows = kto_rows(records, render, pref, stats) if method == "kto" else dpo_pairs(records, render, pref, stats)
    if sft and pref.sft_data is not None and rows:
        rows += sft_mixture(pref.sft_data, round(pref.sft_ratio * len(rows)), render, method, pref.seed, stats)
    # KTO samples sequentially (its KL term pairs neighbours within a batch): shuffle here, seeded.
    random.Random(pref.seed).shuffle(rows)
    return rows, stats


def _weights(pref: PreferenceConfig, stats: PreferenceStats) -> tuple[float, float]:
    """KTO's desirable/undesirable weights; "auto" scales the rarer side up so both sides weigh the same."""
    d, u = max(stats.desirable, 1), max(stats.undesirable, 1)
    desirable = pref.desirable_weight if pref.desirable_weight != "auto" else min(max(u / d, 1.0), 10.0)
    undesirable = pref.undesirable_weight if pref.undesirable_weight != "auto" else min(max(d / u, 1.0), 10.0)
    return float(desirable), float(undesirable)


def trl_trainer(kind: str, model: Any, tokenizer: Any, rows: list[dict[str, Any]], *,
                eval_rows: list[dict[str, Any]] | None = None, output_dir: Path, beta: float, learning_rate: float,
                epochs: float, max_steps: int, batch_size: int, gradient_accumulation: int, bf16: bool,
                max_length: int, seed: int, peft_config: Any = None, **extra: Any) -> Any:
    """A TRL KTOTrainer (`kind` "kto": rows {prompt, completion, label}) or DPOTrainer ("dpo": rows {prompt,
    chosen, rejected}) logging every step, saving nothing, with the model's initial state as the reference;
    `extra` goes to its config (e.g. desirable_weight, loss_type)."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback

    if kind == "kto":
        from trl import KTOConfig as Config
        from trl import KTOTrainer as Trainer
    else:
        from trl import DPOConfig as Config
        from trl import DPOTrainer as Trainer
    args = Config(output_dir=str(output_dir), beta=beta, learning_rate=learning_rate, num_train_epochs=epochs,
                  max_steps=max_steps, per_device_train_batch_size=batch_size, per_device_eval_batch_size=batch_size,
                  gradient_accumulation_steps=gradient_accumulation, bf16=bf16, max_length=max_length,
                  logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, seed=seed, data_seed=seed,
                  gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(), dataloader_pin_memory=False,
                  **extra)
    trainer = Trainer(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(rows),
                      eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None, processing_class=tokenizer,
                      peft_config=peft_config)
    trainer.remove_callback(PrinterCallback)  # nextedit prints its own lines
    return trainer


def _student(config: TrainConfig) -> tuple[Path, Any, Any, dict[str, Any]]:
    """The student's folder, format, options and nextedit.json (the config's format settings win when set)."""
    from nextedit.formats import FormatOptions, get_format
    from nextedit.train.base_models import resolve_base
    from nextedit.train.export import read_metadata

    base_dir = resolve_base(config.base_model)
    meta = read_metadata(base_dir) or {}
    name = config.format if "format" in config.model_fields_set or not meta.get("format") else meta["format"]
    opts = dict(meta.get("format_options") or {})
    opts.update(config.format_options)
    return base_dir, get_format(name), FormatOptions(**opts), meta


def train_preference(config: TrainConfig, *, console: Any = None) -> Any:
    """Run KTO or DPO (config.method) from the SFT student `base_model`, export, write train.json."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM

    from nextedit.train.export import export_model, model_metadata
    from nextedit.train.sft import (
        TrainError,
        TrainResult,
        cpu_threads,
        load_tokenizer,
        use_bf16,
    )

    if config.distributed.world_size > 1:
        raise TrainError(f"method = {config.method!r} runs on one process; remove [distributed]")
    datasets.disable_progress_bars()
    say = console.print if console is not None else (lambda *a, **k: None)
    t0 = time.monotonic()
    pref, method, out = config.preference, config.method, config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    base_dir, fmt, options, meta = _student(config)
    tokenizer = load_tokenizer(base_dir)
    render = Renderer(fmt, options, tokenizer, config.data.max_length)
    try:
        rows, stats = build_rows(config.data.train, method, render, pref)
        eval_rows, eval_stats = (build_rows(config.data.eval, method, render, pref, sft=False)
                                 if config.data.eval is not None else ([], PreferenceStats()))
    except FeedbackError as exc:
        raise TrainError(str(exc)) from None
    say(stats.line("train"))
    if config.data.eval is not None:
        say(eval_stats.line("held-out"))
    if method == "kto" and (stats.desirable == 0 or stats.undesirable == 0):
        raise TrainError(f"{config.data.train}: KTO needs desirable and undesirable rows ({stats.line('train')})")
    if not rows:
        raise TrainError(f"{config.data.train}: no usable preference rows ({stats.line('train')})")
    if not torch.cuda.is_available():
        say(f"CPU threads: {cpu_threads(config.train.threads)}")
    bf16 = use_bf16(config.train.bf16)
    lora = pref.adapter == "lora"
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.bfloat16 if (bf16 and lora)
                                                 else torch.float32)
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                                 target_modules=config.lora.target_modules, task_type="CAUSAL_LM")
    extra: dict[str, Any] = {}
    if method == "kto":
        extra["desirable_weight"], extra["undesirable_weight"] = _weights(pref, stats)
    elif pref.sft_weight:
        extra.update(loss_type=["sigmoid", "sft"], loss_weights=[1.0, pref.sft_weight])
    trainer = trl_trainer(method, model, tokenizer, rows, eval_rows=eval_rows, output_dir=out / "checkpoints",
                          beta=pref.beta, learning_rate=pref.learning_rate, epochs=pref.epochs,
                          max_steps=pref.max_steps, batch_size=pref.batch_size,
                          gradient_accumulation=pref.gradient_accumulation, bf16=bf16,
                          max_length=config.data.max_length, seed=pref.seed, peft_config=peft_config, **extra)
    args = trainer.args
    summary: dict[str, Any] = {"method": method, "beta": pref.beta, "adapter": pref.adapter,
                               **{k: v for k, v in asdict(stats).items() if k != "skipped"},
                               "skipped": dict(stats.skipped)}
    if method == "kto":
        summary["desirable_weight"], summary["undesirable_weight"] = args.desirable_weight, args.undesirable_weight
    if eval_rows:
        summary["eval_before"] = _numbers(trainer.evaluate())
    say(f"{method}: training on {len(rows)} rows")
    trainer.train()
    history = [dict(h) for h in trainer.state.log_history]
    losses_seen = [h["loss"] for h in history if "loss" in h]
    if eval_rows:
        summary["eval_after"] = _numbers(trainer.evaluate())
    margin_key = "rewards/margins" if method == "dpo" else "kl"
    summary["last_" + margin_key.replace("rewards/", "reward_")] = next(
        (h[margin_key] for h in reversed(history) if margin_key in h), None)
    result = TrainResult(output_dir=str(out), base_model=str(config.base_model), method=method,
                         steps=trainer.state.global_step, train_rows=len(rows), eval_rows=len(eval_rows),
                         train_loss_first=losses_seen[0] if losses_seen else None,
                         train_loss_last=losses_seen[-1] if losses_seen else None,
                         eval_loss_before=(summary.get("eval_before") or {}).get("eval_loss"),
                         eval_loss_after=(summary.get("eval_after") or {}).get("eval_loss"), bf16=bf16,
                         log_history=history, preference=summary)
    # the threshold and candidate margin are recalibrated; the guard and the clean-code rule are kept as given
    kept = {k: v for k, v in meta.items() if k in ("max_reversal", "quiet_when_clean")}
    metadata = model_metadata(format_name=fmt.name, format_version=str(fmt.version),
                              format_options=options.model_dump(), base_model=str(config.base_model),
                              method=method, stop=list(fmt.stop),
                              extra={**kept, "train": {"steps": result.steps, "rows": len(rows), "method": method,
                                                       "beta": pref.beta, "student": str(base_dir)}})
    written = export_model(trainer.model, tokenizer, out, metadata, merged=config.export.merged,
                           adapter=config.export.adapter)
    result.exported = {k: str(v) for k, v in written.items()}
    result.seconds = time.monotonic() - t0
    say(f"{method}: {result.steps} steps, loss {result.train_loss_first} -> {result.train_loss_last}")
    (out / "train.json").write_text(json.dumps({**asdict(result), "config": config.model_dump(mode="json")},
                                               indent=2, default=str))
    return result


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items() if isinstance(v, (int, float))}
