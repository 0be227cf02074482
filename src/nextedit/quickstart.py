"""The quickstart: the whole offline loop on this repository's own history, with a report at the end.

mine -> context -> diagnostics -> validate -> split by time -> format + full fine-tune of SmolLM2-135M ->
predict the held-out examples (student, base model, noop, propagate) -> deterministic checks -> score ->
report. No network, API key or GPU; every step caches, so a re-run resumes.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from nextedit.cpu import free_cores
from nextedit.dataset.split import parse_specs, split_file
from nextedit.evaluate.quality import Abstention, margin_json
from nextedit.jsonl import copy_head, write_examples
from nextedit.mine.config import MineConfig
from nextedit.mine.miner import MineStage
from nextedit.pipeline.engine import RunSummary
from nextedit.pipeline.registry import get_stage
from nextedit.pipeline.runner import Step, run_pipeline

BASELINES = ("noop", "propagate")
STEPS = 8
BASE = "base (SmolLM2-135M)"
#: The student's decision rules are calibration's prior (nextedit.evaluate.quality.choose_rules): never abstain for
#: low confidence, the strictest reversal guard, and propagate's edit wherever it proposes one (margin inf). Choosing
#: them on dev costs ~35 s of the 10-minute budget (8 dev examples predicted), and a handful of examples never shows
#: the gain with its interval above zero that calibration needs to leave the prior (recipes calibrate on 32).
MAX_REVERSAL = "calibrate"
CANDIDATE_MARGIN = float("inf")


class QuickstartError(RuntimeError):
    """The quickstart cannot run (no git repository, nothing mined, ...)."""


@dataclass(frozen=True)
class Plan:
    """Sizes of one quickstart run (`full` or `fast`)."""

    max_commits: int
    samples_per_commit: int
    format_options: dict[str, Any]
    max_length: int
    train_steps: int
    batch_size: int
    gradient_accumulation: int
    learning_rate: float
    eval_loss_examples: int
    predict_examples: int
    max_new_tokens: int | None
    resamples: int
    #: chance of a no-edit example after a sample that completes its commit (nextedit.mine.finished)
    finished_examples: float = 0.3
    #: held-out examples (dev split) whose predictions choose the student's decision rules (0: calibration's prior)
    calibration_examples: int = 20
    #: the base model is evaluated on the first N evaluated examples only (its outputs are long and slow; 0: not)
    base_examples: int = 16
    #: "lora" or "full" (every weight; on CPU a full fine-tune of 135M runs more tokens/s than LoRA)
    method: str = "lora"
    #: a full fine-tune trains only this many top decoder layers (train.trainable_layers; None: every weight)
    trainable_layers: int | None = None
    #: the student's own edits are withheld where the linter reports nothing near the cursor. The 20-step student's
    #: own edits pay where the linter shows the code mid-change (an undefined name, a half-typed line) and are a coin
    #: toss where it lints clean, which is also where a commit's finished state (no edit expected) sits, and each
    #: wrong edit there costs 100 points (BENCHMARKS.md, "quiet where the code lints clean"); a recipe's
    #: better-trained student loses by it, so recipes leave it off
    quiet_when_clean: bool = True

    @property
    def student(self) -> str:
        """The student's name in tables and verdicts."""
        return f"student ({'LoRA' if self.method == 'lora' else 'full fine-tune'})"


# Sized for 10 minutes on 2 slow cores (a fresh clone took 9 min 54 s with 400 commits, 28 steps and 16 loss rows,
# and 9 min 53 s with 24 steps on 2026-12-07, when the newest commits made longer held-out regions): the student
# trains on ~40 rows whatever is mined, so 250 commits leave the data it sees unchanged. lr 3e-4: in 20 steps the
# student learns edits worth offering (1e-4: 3.1 points less on 129 held-out examples of this repository, 0.8 on 60
# of httpx; 6e-4: 2.3 less; BENCHMARKS.md, "the quickstart student's learning rate").
FULL = Plan(max_commits=250, samples_per_commit=3,
            format_options={"editable_tokens": 80, "context_tokens": 128, "related_tokens": 128,
                            "history_tokens": 128, "history_events": 3, "candidate": True},
            max_length=640, train_steps=20, batch_size=2, gradient_accumulation=1, learning_rate=3e-4,
            eval_loss_examples=8, predict_examples=60, max_new_tokens=None, resamples=1000,
            calibration_examples=0, base_examples=0, method="full")
FAST = Plan(max_commits=12, samples_per_commit=2,
            format_options={"editable_tokens": 96, "context_tokens": 48, "related_tokens": 0,
                            "history_tokens": 96, "history_events": 2, "diagnostics": False},
            max_length=768, train_steps=3, batch_size=1, gradient_accumulation=1, learning_rate=1e-4,
            eval_loss_examples=2, predict_examples=2, max_new_tokens=48, resamples=200, calibration_examples=2,
            base_examples=2, method="full")
STUDENT_FORMAT = "zeta1"


@dataclass
class QuickstartResult:
    """Where the quickstart wrote its files and what it measured."""

    out_dir: Path
    report: Path
    summary: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)


def git_root(path: Path) -> Path:
    """The top folder of the git work tree containing `path`."""
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        raise QuickstartError(f"{path} is not inside a git repository: run the quickstart from a "
                              "git checkout or pass --repo PATH") from None
    return Path(out)


def _count(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _train_student(out_dir: Path, train: Path, held_out: Path, plan: Plan, seed: int, threads: int,
                   console: Console) -> dict:
    """Fine-tune (plan.method) the embedded SmolLM2 on the training split on `threads` CPU threads (reused when the
    same config already ran)."""
    from nextedit.train.base_models import DEFAULT_BASE
    from nextedit.train.config import TrainConfig
    from nextedit.train.sft import train as run_train

    config = TrainConfig.model_validate({
        "base_model": DEFAULT_BASE, "output_dir": str(out_dir / "student"), "format": STUDENT_FORMAT,
        "format_options": plan.format_options, "method": plan.method,
        "data": {"train": str(train), "eval": str(held_out), "max_length": plan.max_length,
                 "max_eval_examples": plan.eval_loss_examples},
        "lora": {"r": 16, "alpha": 32},
        "train": {"max_steps": plan.train_steps, "batch_size": plan.batch_size,
                  "gradient_accumulation": plan.gradient_accumulation, "learning_rate": plan.learning_rate,
                  "packing": True, "eval_steps": plan.train_steps, "save_steps": plan.train_steps,
                  "logging_steps": max(plan.train_steps // 6, 1), "seed": seed, "warmup_ratio": 0.1,
                  "threads": threads, "trainable_layers": plan.trainable_layers},
        "export": {"merged": True, "adapter": True},
    })
    record = out_dir / "student" / "train.json"
    merged = out_dir / "student" / "merged" / "nextedit.json"
    if record.is_file() and merged.is_file():
        saved = json.loads(record.read_text())
        def same(cfg: dict) -> dict:  # the thread count changes speed, not the model
            return {**cfg, "train": {k: v for k, v in cfg.get("train", {}).items() if k != "threads"}}

        if same(saved.get("config") or {}) == same(config.model_dump(mode="json")):
            console.print("the student was already trained with this config: reusing it")
            return saved
    from nextedit.train.resume import changed_settings
    from nextedit.train.sft import CHECKPOINTS, TrainError

    if changed_settings(config.output_dir / CHECKPOINTS, config):  # another plan's checkpoints: start over
        console.print("the training config changed since the last run: training from the start")
        config = config.model_copy(update={"resume": False})
    try:
        result = run_train(config, console=console)
    except TrainError as exc:
        raise QuickstartError(f"fine-tuning failed: {exc}") from None
    for line in result.lines():
        console.print(line)
    return json.loads(record.read_text())


def _calibrate(student: Path, dev: Path, work: Path, plan: Plan, model_opts: dict[str, Any],
               console: Console) -> Abstention:
    """The student's decision rules (threshold, reversal guard, candidate margin), chosen on a sample of dev (or
    calibration's prior when `plan.calibration_examples` is 0) and stored with the model
    (nextedit.evaluate.quality.calibrate_student), reported in one line."""
    from nextedit.evaluate.quality import calibrate_student

    n = min(_count(dev), plan.calibration_examples)
    rules = calibrate_student(student, dev if n else None, work, limit=n, max_reversal=MAX_REVERSAL,
                              candidate_margin=CANDIDATE_MARGIN, options=model_opts,
                              quiet_when_clean=plan.quiet_when_clean)
    rules_on = ["change only whitespace", "repeat a line",
                *([] if rules.max_reversal is None else [f"undo more than {rules.max_reversal:g} of the last edit"]),
                *(["sit where the code near the cursor lints clean"] if rules.quiet_when_clean else [])]
    guard = ("withhold its own edits that " + ", ".join(rules_on[:-1]) + f" or {rules_on[-1]}"
             + ("; no reversal guard" if rules.max_reversal is None else ""))
    console.print((f"decision rules chosen on {n} dev examples: " if n else
                   "decision rules (calibration's prior; recipes choose them on dev): ")
                  + ("never abstain for low confidence" if rules.threshold is None
                     else f"withhold edits with confidence < {rules.threshold:.2f}") + f"; {guard}; "
                  + ("the likelier of its own answer and propagate's" if rules.candidate_margin == 0 else
                     "propagate's edit whenever it proposes one" if rules.candidate_margin == float("inf") else
                     f"propagate's edit unless its own is {rules.candidate_margin:g} nats likelier"))
    return rules


def _add_base(examples: list[Any], base: tuple[str, dict[str, Any]], eval_file: Path, report_dir: Path, plan: Plan,
              console: Console) -> int:
    """Predict and score the first `plan.base_examples` evaluated examples with the base model and add those
    predictions (and scores) to `examples`; returns how many examples failed."""
    from nextedit.evaluate.quality import merge_predictions
    from nextedit.evaluate.stages import PredictStage, ScoreStage
    from nextedit.jsonl import copy_head, read_examples

    head = report_dir / "base-examples.jsonl"
    copy_head(eval_file, head, plan.base_examples)
    provider, options = base
    steps = [Step(PredictStage({"provider": provider, "options": options}), report_dir / "predictions.base.jsonl",
                  concurrency=1),
             Step(ScoreStage(), report_dir / "scored.base.jsonl", concurrency=1)]
    summaries = run_pipeline(steps, input=head, force=True)
    console.print(f"{BASE}: " + "; ".join(summaries[0].lines()))
    merge_predictions(examples, read_examples(steps[-1].output))
    return sum(s.failed for s in summaries)


def _verdicts(examples: list[Any], plan: Plan, seed: int) -> list[str]:
    """One line per comparison: the student against noop and propagate (paired deltaChrF, 95% interval)."""
    from nextedit.evaluate.quality import compare_to_baselines, quality, verdict

    table = quality(examples, resamples=plan.resamples, seed=seed)
    return [verdict(plan.student, compare_to_baselines(table, plan.student, list(BASELINES),
                                                       resamples=plan.resamples, seed=seed))]


def checks_step(dst: Path) -> Step | None:
    """A step running the `checks` stage (nextedit.teacher.checks) on every prediction; None if it is not
    installed."""
    try:
        cls = get_stage("checks")
    except Exception:  # noqa: BLE001 - an optional part of the loop
        return None
    return Step(cls(cls.Config(providers=[])), dst, concurrency=1)


def _table(summary: dict[str, Any], scored: list[Any]) -> list[dict[str, Any]]:
    """One row per provider: the recipe's table (nextedit.recipe.report.provider_table: deltaChrF, exact-lines F1,
    reversal ratio, no-edit rate and precision/recall, checks passed) under the quickstart's names, with the p50
    latency."""
    from nextedit.recipe.report import provider_table

    rows = provider_table(summary, scored)
    for row in rows:
        row["errors"] = row.pop("parse_errors")
        row["latency_ms_p50"] = (summary["providers"][row["provider"]].get("latency_ms") or {}).get("p50")
    return rows


def run_quickstart(out_dir: Path, *, repo: Path | None = None, fast: bool = False, seed: int = 0,
                   console: Console | None = None, train: bool = True, plan: Plan | None = None) -> QuickstartResult:
    """Mine, check, split, fine-tune, predict (student, base, baselines), score and report; see the module doc.
    `plan` replaces the sizes of `fast` (experiments, benchmarks)."""
    console = console or Console(stderr=True)
    plan = plan or (FAST if fast else FULL)
    t0 = time.monotonic()
    root = git_root(repo or Path.cwd())
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    timings: dict[str, float] = {}
    notes: list[str] = []
    clock = [time.monotonic(), ""]

    def lap() -> None:
        if clock[1]:
            timings[str(clock[1])] = round(time.monotonic() - float(clock[0]), 1)

    def step(n: int, title: str) -> None:
        lap()
        clock[0], clock[1] = time.monotonic(), {6: "train", 7: "predict"}.get(n, title.split(":")[0])
        console.rule(f"[bold]{n}/{STEPS} {title}")

    mined = out_dir / "mined.jsonl"
    cfg = MineConfig(max_commits=plan.max_commits, samples_per_commit=plan.samples_per_commit, seed=seed,
                     finished_examples=plan.finished_examples)
    # mine -> context -> diagnostics -> validate: one in-memory pipeline (each output reused when up to date)
    prep = [Step(MineStage({**cfg.model_dump(exclude={"workers"}), "repo": str(root)}), mined,
                 concurrency=1 if fast else None)]
    for name, config in (("context", {"repo": str(root)}), ("diagnostics", {"repo": str(root)}), ("validate", {})):
        cls = get_stage(name)
        prep.append(Step(cls(cls.Config(**config)), out_dir / f"{name}.jsonl", concurrency=1))
    titles = [f"mine: the git history of {root}", "context", "diagnostics", "validate"]

    def prep_started(i: int, s: Step, status: str) -> None:
        step(i + 1, titles[i])

    def prep_done(i: int, summary: RunSummary) -> None:
        if i == 0:
            counts["mined"] = _count(mined)
            if counts["mined"] < 2:
                raise QuickstartError(f"only {counts['mined']} example(s) mined from {root}: need a history "
                                      "with a few commits touching code files")
            return
        for line in summary.lines():
            console.print(line)
        counts[prep[i].name] = _count(prep[i].output)

    run_pipeline(prep, on_stage=prep_started, on_done=prep_done)
    current = prep[-1].output

    step(5, "split: by time, the newest 25% of examples are held out (and 7% before them for validation)")
    train_file, dev, test = out_dir / "train.jsonl", out_dir / "dev.jsonl", out_dir / "test.jsonl"
    split_file(current, parse_specs(["train=68%", "dev=7%", "test=rest"], out_dir), by="time", seed=seed)
    counts["train"], counts["dev"], counts["test"] = _count(train_file), _count(dev), _count(test)
    if counts["test"] == 0:
        raise QuickstartError("the time split left no held-out examples")
    eval_file = out_dir / "eval.jsonl"
    counts["evaluated"] = copy_head(test, eval_file, plan.predict_examples)

    providers: list[tuple[str, dict[str, Any]]] = [(p, {}) for p in BASELINES]
    base: tuple[str, dict[str, Any]] | None = None
    train_record: dict[str, Any] = {}
    if train:
        step(6, f"format ({STUDENT_FORMAT}) and fine-tune SmolLM2-135M-Instruct ({plan.method}); set its decision rules")
        # one thread count for training, calibration and predictions (greedy outputs can change with it), taken
        # from the cores other processes leave idle now
        threads = free_cores()
        console.print(f"CPU threads for training and predictions: {threads} (the cores other processes leave idle)")
        train_record = _train_student(out_dir, train_file, dev, plan, seed, threads, console)
        model_opts: dict[str, Any] = {"threads": threads}
        if plan.max_new_tokens:
            model_opts["max_new_tokens"] = plan.max_new_tokens
        student_dir = out_dir / "student" / "merged"
        rules = _calibrate(student_dir, dev, out_dir / "calibration", plan, model_opts, console)
        train_record["abstain_below"] = rules.threshold
        train_record["max_reversal"] = rules.max_reversal
        train_record["candidate_margin"] = margin_json(rules.candidate_margin)
        train_record["quiet_when_clean"] = rules.quiet_when_clean
        providers = [(f"local:{student_dir}", {"label": plan.student, **model_opts}), *providers]
        if plan.base_examples:
            base = ("local:smollm2-135m-instruct", {"label": BASE, "format": STUDENT_FORMAT,
                                                    "format_options": plan.format_options, **model_opts})
    else:
        notes.append("training skipped (--no-train): only the baselines are evaluated")

    names = [o.get("label", p) for p, o in providers]
    if base is not None:
        names.append(f"{BASE} (first {min(plan.base_examples, counts['evaluated'])})")
    step(7, f"predict {counts['evaluated']} held-out examples: " + ", ".join(names))
    from nextedit.evaluate.stages import PredictStage, ScoreStage
    from nextedit.evaluate.summary import SummaryBuilder, summarize
    from nextedit.jsonl import read_examples

    report_dir = out_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    # predict (each provider) -> checks -> score: one in-memory pipeline
    steps = [Step(PredictStage({"provider": provider, "options": options}), report_dir / f"predictions.{k}.jsonl",
                  concurrency=1) for k, (provider, options) in enumerate(providers)]
    checks = checks_step(report_dir / "checked.jsonl")
    if checks is not None:
        steps.append(checks)
    else:
        notes.append("deterministic checks skipped: the `checks` stage (nextedit.teacher) is not installed")
    scored = report_dir / "scored.jsonl"
    steps.append(Step(ScoreStage(), scored, concurrency=1))

    def predict_started(i: int, s: Step, status: str) -> None:
        if i == len(steps) - 1:
            step(8, "score and report")

    def predict_done(i: int, summary: RunSummary) -> None:
        stage = steps[i].stage
        if isinstance(stage, PredictStage):
            console.print(f"{stage.predictor.name}: " + "; ".join(summary.lines()))

    summaries = run_pipeline(steps, input=eval_file, force=True, on_stage=predict_started, on_done=predict_done)
    failed = sum(s.failed for s in summaries if s.stage != "checks")
    examples = list(read_examples(scored))
    if base is not None:
        failed += _add_base(examples, base, eval_file, report_dir, plan, console)
        write_examples(scored, examples)  # scored.jsonl holds every provider's predictions
    builder = SummaryBuilder()
    for example in examples:
        builder.add(example)
    summary = summarize(builder, input_name=str(eval_file), resamples=plan.resamples, seed=seed, failed=failed)
    verdicts = _verdicts(examples, plan, seed) if train else []
    table = _table(summary, examples)
    summary["quickstart"] = {"counts": counts, "train": {k: v for k, v in train_record.items()
                                                          if k not in ("log_history", "config")},
                             "table": table, "notes": notes, "fast": fast, "verdicts": verdicts}
    import orjson

    from nextedit.evaluate.report import write_report

    tmp = report_dir / "summary.json.tmp"
    tmp.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(report_dir / "summary.json")
    write_report(summary, report_dir, title="nextedit quickstart")
    lap()
    return QuickstartResult(out_dir=out_dir, report=report_dir / "report.html", summary=summary, counts=counts,
                            seconds=time.monotonic() - t0, timings=timings, train=train_record, table=table,
                            notes=notes, verdicts=verdicts)
