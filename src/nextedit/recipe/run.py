"""Running a recipe step by step: clone and mine, enrich, split by repository, train, evaluate every
eval set; each step cached in the output folder so that a re-run resumes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from rich.console import Console

from nextedit.jsonl import copy_sample, write_if_changed
from nextedit.mine.config import MineConfig
from nextedit.recipe.config import (
    STEPS,
    Recipe,
    RecipeError,
    Source,
    load_recipe,
    sources,
)
from nextedit.recipe.report import differences, provider_table, render_markdown


@dataclass
class RecipeResult:
    """What a recipe run wrote and measured (also saved as OUT/recipe.json)."""

    out_dir: Path
    counts: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    evals: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"out_dir": str(self.out_dir), "counts": self.counts, "timings": self.timings,
                "train": self.train, "evals": self.evals, "notes": self.notes, "seconds": round(self.seconds, 1)}


def _count(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def content_sha256(path: Path) -> str:
    """sha256 of a JSONL file's records without their lineage (whose times change when a cached step re-runs)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                record = orjson.loads(line)
                record.pop("lineage", None)
                h.update(orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n")
    return h.hexdigest()


def clone(source: Source) -> None:
    """Clone a bundle into its folder (once; an existing clone is kept)."""
    if not source.bundle or (source.repo / ".git").exists():
        return
    tmp = source.repo.with_name(source.repo.name + ".cloning")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["git", "clone", "-q", str(source.origin), str(tmp)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RecipeError(f"git clone {source.origin} failed: {proc.stderr.strip().splitlines()[-1:]}")
    tmp.replace(source.repo)


class RecipeRun:
    """One run of a recipe; each step method reads the previous step's files and writes its own."""

    def __init__(self, recipe: Recipe, *, console: Console | None = None):
        self.recipe = recipe
        self.console = console or Console(stderr=True)
        self.out = recipe.path(recipe.out_dir)
        self.cache = self.out / "cache.sqlite"
        self.result = RecipeResult(self.out)
        self.workers = recipe.workers or os.cpu_count() or 1
        self._decoding: dict[str, Any] | None = None

    def decoding(self) -> dict[str, Any]:
        """The student's (and base model's) decoding options, `threads` resolved once for the whole run: greedy
        outputs can change with the thread count, so calibration and every eval set decode alike."""
        if self._decoding is None:
            from nextedit.cpu import free_cores

            options = dict(self.recipe.predict.student)
            options["threads"] = free_cores(options.get("threads", "auto"))
            self.result.notes.append(f"student decoding on {options['threads']} CPU threads")
            self._decoding = options
        return self._decoding

    def _stage(self, name: str, options: dict[str, Any], src: Path, dst: Path, concurrency: int = 1) -> Path:
        from nextedit.pipeline.engine import RunError, run_stage
        from nextedit.pipeline.registry import get_stage

        cls = get_stage(name)
        try:
            summary = run_stage(cls(cls.Config(**options)), src, dst, concurrency=concurrency,
                                cache_path=self.cache, progress=False)
        except (RunError, ValidationError) as exc:
            raise RecipeError(f"{name}: {exc}") from None
        for line in summary.lines():
            self.console.print(line)
        self.result.counts[name] = _count(dst)
        return dst

    # -- data

    def mine(self) -> Path:
        """Clone and mine every corpus repository; concatenate their examples into OUT/corpus.jsonl."""
        from nextedit.mine.gitlog import GitError
        from nextedit.mine.miner import mine

        per_repo: dict[str, Any] = {}
        parts: list[bytes] = []
        t0 = time.monotonic()
        for source in sources(self.recipe):
            clone(source)
            cfg = MineConfig.model_validate({"seed": self.recipe.seed, "workers": self.workers,
                                             **self.recipe.corpus.mine, "filters": self.recipe.filters})
            out = self.out / "mined" / f"{source.name}.jsonl"
            try:
                s = mine(source.repo, out, cfg, progress=False)
            except (GitError, ValueError, OSError) as exc:
                raise RecipeError(f"mine {source.name}: {exc}") from None
            examples = _count(out)
            per_repo[source.name] = {"examples": examples, "commits": s.commits, "seconds": round(s.seconds, 1),
                                     "filtered": dict(s.filtered), "resumed_commits": s.resumed}
            self.console.print(f"mine {source.name}: {examples} examples from {s.commits} commits "
                               f"({s.resumed} already done, {s.seconds:.1f} s)"
                               + ("; filtered " + ", ".join(f"{k} {v}" for k, v in s.filtered.most_common())
                                  if s.filtered else ""))
            if out.exists():
                parts.append(out.read_bytes())
        corpus = self.out / "corpus.jsonl"
        write_if_changed(corpus, b"".join(parts))
        self.result.counts["repositories"] = per_repo
        self.result.counts["mined"] = _count(corpus)
        self.result.counts["filters"] = self._filter_totals()
        self.result.timings["mine_all"] = round(time.monotonic() - t0, 1)
        if self.result.counts["mined"] == 0:
            raise RecipeError("no example was mined from the corpus")
        return corpus

    def _filter_totals(self) -> dict[str, dict[str, int]]:
        """Examples, files and commits dropped, per reason, summed over the repositories' mining logs."""
        from nextedit.mine.miner import read_mining_log

        totals: dict[str, dict[str, int]] = {"filtered": {}, "skipped_files": {}, "skipped_commits": {}}
        for source in sources(self.recipe):
            log = read_mining_log(self.out / "mined" / f"{source.name}.jsonl")
            for key, counts in totals.items():
                for reason, n in (log or {}).get(key, {}).items():
                    counts[reason] = counts.get(reason, 0) + n
        return totals

    def enrich(self, corpus: Path) -> Path:
        """context -> diagnostics -> validate."""
        current = corpus
        for name, section in (("context", self.recipe.context), ("diagnostics", self.recipe.diagnostics)):
            if section.enabled:
                current = self._stage(name, section.options, current, self.out / f"{name}.jsonl",
                                      concurrency=self.workers if name == "context" else 1)
        return self._stage("validate", {}, current, self.out / "validated.jsonl")

    def split(self, data: Path) -> dict[str, Path]:
        """Whole repositories held out: test (and dev) from the recipe, the rest is train."""
        from nextedit.dataset.split import SplitSpec, split_file

        split_dir = self.out / "split"
        tmp_dir = split_dir / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        pinned = {"test": self.recipe.split.test_repos}
        if self.recipe.split.dev_repos:
            pinned["dev"] = self.recipe.split.dev_repos
        names = ["train", *pinned]
        specs = [SplitSpec("train", tmp_dir / "train.jsonl", "rest")] + [
            SplitSpec(n, tmp_dir / f"{n}.jsonl", "count", 0.0) for n in pinned]
        try:
            summary = split_file(data, specs, by="repo", seed=self.recipe.seed, pinned=pinned)
        except ValueError as exc:
            raise RecipeError(f"split: {exc}") from None
        files = {}
        for name, part in zip(names, summary.parts, strict=True):
            write_if_changed(split_dir / f"{name}.jsonl", (tmp_dir / f"{name}.jsonl").read_bytes())
            files[name] = split_dir / f"{name}.jsonl"
            self.result.counts[f"split_{name}"] = {"examples": part.examples,
                                                   "repos": sorted(Path(r).name for r in part.repos)}
            self.console.print(f"{name}: {part.examples} examples from " + ", ".join(
                sorted(Path(r).name for r in part.repos)))
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if not _count(files["train"]):
            raise RecipeError("split: no training example is left after holding out the test repositories")
        return files

    # -- model

    def train_config(self, train: Path, held_out: Path) -> Any:
        """The TrainConfig of the student, its output folder named by a hash of the config and the data."""
        from nextedit.train.base_models import is_known_name
        from nextedit.train.config import TrainConfig

        t = self.recipe.train
        base = t.base_model if is_known_name(t.base_model) else str(self.recipe.path(t.base_model))
        raw = {"base_model": base, "format": t.format, "format_options": t.format_options, "method": t.method,
               "add_special_tokens": t.add_special_tokens,
               "data": {"train": str(train), "eval": str(held_out), "max_length": t.max_length,
                        "max_examples": t.max_examples, "max_eval_examples": t.max_eval_examples},
               "lora": t.lora.model_dump(), "train": t.schedule.model_dump(), "dpo": t.dpo.model_dump(),
               "export": t.export.model_dump(), "output_dir": "."}
        key = hashlib.sha256(orjson.dumps({"config": raw, "train": content_sha256(train)},
                                          option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
        raw["output_dir"] = str(self.out / f"student-{key}")
        return TrainConfig.model_validate(raw)

    def train(self, files: dict[str, Path]) -> Path:
        """Format + fine-tune (reused when this config already trained on these data); the merged model."""
        from nextedit.train.sft import TrainError
        from nextedit.train.sft import train as run_train

        config = self.train_config(files["train"], files.get("dev", files["test"]))
        record, merged = config.output_dir / "train.json", config.output_dir / "merged"
        if record.is_file() and (merged / "nextedit.json").is_file():
            self.console.print(f"the student was already trained with this config and data: {merged}")
        else:
            try:
                result = run_train(config, console=self.console)
            except TrainError as exc:
                raise RecipeError(f"train: {exc}") from None
            for line in result.lines():
                self.console.print(line)
        saved = json.loads(record.read_text())
        self.result.train = {k: v for k, v in saved.items() if k not in ("log_history", "config")}
        self.result.train["output_dir"] = str(config.output_dir)
        return merged

    # -- evaluation

    def eval_sets(self, files: dict[str, Path]) -> dict[str, Path]:
        """name -> examples file: a seeded sample of the held-out repositories; Zed's eval files imported."""
        sets: dict[str, Path] = {}
        n = self.recipe.predict.max_examples
        if self.recipe.eval.held_out:
            sets["held-out"] = self._sample(files["test"], self.out / "eval" / "held-out" / "examples.jsonl", n)
        if self.recipe.eval.zed:
            from nextedit.sources.zed import Failure, expand_inputs, read_zed

            failures: list[Failure] = []
            inputs = expand_inputs([self.recipe.path(z) for z in self.recipe.eval.zed])
            inputs = [p for p in inputs if p.name.lower() != "readme.md"]
            rows = [orjson.dumps(ex.to_dict()) + b"\n" for ex in read_zed(inputs, on_failure=failures.append)]
            for f in failures:
                self.console.print(f"zed import skipped: {f.reason}")
            if not rows:
                raise RecipeError("eval.zed: no example could be imported")
            imported = self.out / "eval" / "zed" / "imported.jsonl"
            write_if_changed(imported, b"".join(rows))
            sets["zed"] = self._sample(imported, self.out / "eval" / "zed" / "examples.jsonl", n)
        for name, path in sets.items():
            self.result.counts[f"eval_{name}"] = _count(path)
        return sets

    def _sample(self, src: Path, dst: Path, n: int) -> Path:
        """At most `n` examples of `src`, chosen by a seeded hash of their ids (file order kept)."""
        copy_sample(src, dst, n, seed=self.recipe.seed)
        return dst

    def providers(self, student: Path | None) -> list[tuple[str, dict[str, Any], str]]:
        """(provider string, options, role) of everyone who predicts."""
        p = self.recipe.predict
        out: list[tuple[str, dict[str, Any], str]] = []
        if student is not None:
            options = {"label": "student", **self.decoding()}
            out.append((f"local:{student}", options, "student"))
            if p.base:
                t = self.recipe.train
                base = t.base_model if student is None else json.loads(
                    (student / "nextedit.json").read_text()).get("base_model", t.base_model)
                from nextedit.train.base_models import is_known_name

                base = base if is_known_name(base) or Path(base).is_absolute() else str(self.recipe.path(base))
                out.append((f"local:{base}", {"label": "base", "format": t.format,
                                              "format_options": t.format_options, **self.decoding()}, "base"))
        out += [(b, {}, "baseline") for b in p.baselines]
        return out

    def calibrate(self, student: Path, files: dict[str, Path]) -> None:
        """Write the abstention rules into the student's nextedit.json (nextedit.evaluate.quality)."""
        from nextedit.evaluate.quality import calibrate_student

        a = self.recipe.abstain
        if not a.enabled:
            return
        dev = files.get("dev")
        if a.threshold == "calibrate" and (dev is None or _count(dev) == 0):
            self.result.notes.append("abstain: no dev split to calibrate on (set split.dev_repos): the "
                                     "student never withholds an edit for low confidence")
        rules = calibrate_student(student, dev, self.out / "calibration", limit=a.calibration_examples,
                                  max_reversal=a.max_reversal, options=self.decoding(),
                                  threshold=a.threshold, candidate_margin=a.candidate_margin,
                                  quiet_when_clean=a.quiet_when_clean)

        def how(setting: object) -> str:
            return "chosen on dev" if setting == "calibrate" else "given"

        self.result.notes.append(f"abstain: threshold {rules.threshold} ({how(a.threshold)}), reversal guard "
                                 f"{rules.max_reversal} ({how(a.max_reversal)}), candidate margin "
                                 f"{rules.candidate_margin:g} ({how(a.candidate_margin)})"
                                 + ("; own edits withheld where the code near the cursor lints clean"
                                    if rules.quiet_when_clean else ""))

    def evaluate(self, name: str, examples: Path, providers: list[tuple[str, dict[str, Any], str]]) -> dict:
        """Predict, check, score and summarise one eval set; the student against each other provider."""
        from nextedit.evaluate.report import write_report
        from nextedit.evaluate.summary import SummaryBuilder, summarize
        from nextedit.jsonl import read_examples
        folder = examples.parent
        current = examples
        for k, (provider, options, _) in enumerate(providers):
            current = self._stage("predict", {"provider": provider, "options": options}, current,
                                  folder / f"predictions.{k}.jsonl")
        if self.recipe.predict.checks:
            current = self._checks(current, folder / "checked.jsonl")
        scored = self._stage("score", {}, current, folder / "scored.jsonl")
        scored_examples = list(read_examples(scored))
        builder = SummaryBuilder()
        for ex in scored_examples:
            builder.add(ex)
        summary = summarize(builder, input_name=str(examples), resamples=self.recipe.predict.resamples,
                            seed=self.recipe.seed)
        write_if_changed(folder / "summary.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2
                                                                 | orjson.OPT_SERIALIZE_NUMPY))
        write_report(summary, folder, title=f"nextedit recipe {self.recipe.name}: {name}")
        labels = {options.get("label", provider): role for provider, options, role in providers}
        return {"examples": _count(examples), "table": provider_table(summary, scored_examples),
                "differences": differences(folder / "summary.json", labels, self.recipe.predict.resamples,
                                           self.recipe.seed),
                "report": str(folder / "report.html")}

    def _checks(self, src: Path, dst: Path) -> Path:
        """The deterministic checks of every prediction (skipped, with a note, when not installed)."""
        from nextedit.pipeline.registry import get_stage

        try:
            get_stage("checks")
        except Exception:  # noqa: BLE001 - an optional part of the loop
            self.result.notes.append("deterministic checks skipped: the `checks` stage is not installed")
            return src
        return self._stage("checks", {"providers": []}, src, dst)

    # -- the whole run

    def run(self, *, until: str | None = None) -> RecipeResult:
        """Every step in order (stopping after `until`); writes OUT/recipe.json and OUT/recipe.md."""
        t0 = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        stop = STEPS.index(until) if until else len(STEPS) - 1
        clock = [time.monotonic()]

        def lap(step: str) -> bool:
            now = time.monotonic()
            self.result.timings[step] = round(now - clock[0], 1)
            clock[0] = now
            return STEPS.index(step) >= stop

        def rule(title: str) -> None:
            self.console.rule(f"[bold]{self.recipe.name}: {title}")

        try:
            rule("mine the corpus")
            corpus = self.mine()
            if lap("mine"):
                return self._finish(t0)
            rule("context, diagnostics, validate")
            data = self.enrich(corpus)
            if lap("validate"):
                return self._finish(t0)
            rule("split by repository")
            files = self.split(data)
            if lap("split"):
                return self._finish(t0)
            student: Path | None = None
            if self.recipe.train.enabled:
                rule(f"format ({self.recipe.train.format}) and train ({self.recipe.train.method})")
                student = self.train(files)
                self.calibrate(student, files)
            else:
                self.result.notes.append("training off: only the baselines are evaluated")
            if lap("train"):
                return self._finish(t0)
            providers = self.providers(student)
            for name, examples in self.eval_sets(files).items():
                rule(f"predict, score and compare: {name}")
                self.result.evals[name] = self.evaluate(name, examples, providers)
            lap("report")
        finally:
            self._save(t0)
        return self._finish(t0)

    def _finish(self, t0: float) -> RecipeResult:
        self._save(t0)
        return self.result

    def _save(self, t0: float) -> None:
        self.result.seconds = time.monotonic() - t0
        data = self.result.to_dict()
        data["recipe"] = self.recipe.model_dump(mode="json")
        write_if_changed(self.out / "recipe.json", orjson.dumps(data, option=orjson.OPT_INDENT_2))
        write_if_changed(self.out / "recipe.md", render_markdown(self.recipe.name, self.result).encode())


def run_recipe(path: str | Path, *, out_dir: str | Path | None = None, until: str | None = None,
               console: Console | None = None) -> RecipeResult:
    """Load a recipe and run it (see the module doc)."""
    if until is not None and until not in STEPS:
        raise RecipeError(f"unknown step {until!r}: one of {', '.join(STEPS)}")
    return RecipeRun(load_recipe(path, out_dir=out_dir), console=console).run(until=until)
