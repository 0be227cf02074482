"""The recipe file: its sections (pydantic), loading with file:line: field errors, and the checks that
can be made before any work (corpus present, held-out repositories among it, base model, format)."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nextedit.mine.config import FilterConfig, MineConfig
from nextedit.train.base_models import DEFAULT_BASE
from nextedit.train.config import DpoConfig, ExportConfig, LoraConfig, ScheduleConfig

STEPS = ("corpus", "mine", "context", "diagnostics", "validate", "split", "train", "predict", "report")
BASELINES = ("noop", "propagate")


class RecipeError(ValueError):
    """A recipe that cannot run (bad field, missing corpus, ...) or a step that failed; one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CorpusConfig(_Section):
    """Where the repositories come from and how they are mined."""

    sources: list[str] = Field(description="git bundles (*.bundle, cloned into OUT/repos) or git repositories, "
                                           "globs allowed; relative to the recipe file")
    only: list[str] = Field(default_factory=list, description="keep only the sources whose name matches one of "
                                                              "these (same matching as split.test_repos)")
    mine: dict[str, Any] = Field(default_factory=dict, description="MineConfig options per repository "
                                                                   "(max_commits, samples_per_commit, ...)")


class StageSection(_Section):
    """A pipeline stage of the recipe: on or off, and its options (the stage's own config)."""

    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)


class SplitConfig(_Section):
    """Split by repository: whole repositories held out."""

    test_repos: list[str] = Field(min_length=1, description="repositories held out for testing")
    dev_repos: list[str] = Field(default_factory=list, description="repositories held out for validation "
                                                                   "(training's held-out loss; else test)")


class TrainSection(_Section):
    """Format and fine-tuning: the knobs of nextedit.train.config.TrainConfig."""

    enabled: bool = True
    base_model: str = Field(DEFAULT_BASE, description="embedded name, HF folder or .gguf (relative: to the recipe)")
    format: str = "zeta1"
    format_options: dict[str, Any] = Field(default_factory=dict)
    method: Literal["lora", "full"] = "lora"
    add_special_tokens: bool = False
    max_length: int = Field(1024, ge=16, description="tokens per training row; longer rows are dropped")
    max_examples: int | None = Field(None, ge=1, description="train on at most this many examples")
    max_eval_examples: int | None = Field(32, ge=1, description="held-out loss on at most this many")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="learning_rate, max_steps, "
                                     "batch_size, seed, ... (TrainConfig.train)")
    dpo: DpoConfig = Field(default_factory=DpoConfig)
    export: ExportConfig = Field(default_factory=lambda: ExportConfig(merged=True, adapter=False))


class AbstainSection(_Section):
    """Abstention: answer "no edit" when the student is unsure (nextedit.predictors.abstain, docs/training.md)."""

    enabled: bool = True
    threshold: float | Literal["calibrate"] = Field(
        "calibrate", description="confidence below which the student predicts no edit; \"calibrate\" chooses it "
                                 "on a seeded sample of `calibration_examples` dev examples (never on a test set)")
    calibration_examples: int = Field(32, ge=1, description="dev examples predicted to choose the decision rules")
    max_reversal: float | Literal["calibrate"] | None = Field(
        "calibrate", description="withhold edits that undo more than this share (0..1) of the user's last edit "
                                 "(none: off); \"calibrate\" chooses it on the dev split with the threshold, among "
                                 "0, 0.1, 0.25, 0.5 and off (the strictest unless a looser one gains with a 95% "
                                 "interval above zero)")
    candidate_margin: float | Literal["calibrate"] = Field(
        "calibrate", description="nats by which the student's own answer must be likelier than a heuristic's "
                                 "candidate edit to be offered instead (0: the likelier wins; inf: the candidate "
                                 "first); \"calibrate\" chooses it on the dev split with the threshold, among 0, 2, 5 "
                                 "and inf (0 unless a larger one gains with a 95% interval above zero)")
    quiet_when_clean: bool = Field(
        False, description="withhold the student's own edits where the linter reports nothing near the cursor (files "
                           "nextedit lints: Python); helps a weakly trained student, costs a well-trained one "
                           "(docs/training.md, \"Abstention\")")

    @field_validator("max_reversal")
    @classmethod
    def _share(cls, v: float | str | None) -> float | str | None:
        if isinstance(v, float | int) and not 0 <= v <= 1:
            raise ValueError(f"must be between 0 and 1 or \"calibrate\", got {v}")
        return v

    @field_validator("candidate_margin")
    @classmethod
    def _margin(cls, v: float | str) -> float | str:
        if isinstance(v, float | int) and not v >= 0:
            raise ValueError(f"must be a number >= 0 (inf allowed) or \"calibrate\", got {v}")
        return v


class PredictSection(_Section):
    """Who predicts on the eval sets, and how."""

    max_examples: int = Field(64, ge=1, description="examples per eval set (a seeded sample)")
    student: dict[str, Any] = Field(default_factory=dict, description="decoding options of the student "
                                    "(max_new_tokens, temperature, top_p, prompt_lookup, dtype, threads)")
    base: bool = Field(True, description="also predict with the base model (same format and decoding)")
    baselines: list[str] = Field(default_factory=lambda: list(BASELINES))
    checks: bool = Field(True, description="run the deterministic checks on every prediction")
    resamples: int = Field(1000, ge=10, description="bootstrap resamples of the intervals")


class EvalSection(_Section):
    """The eval sets: the held-out repositories, and optionally Zed's eval files."""

    held_out: bool = True
    zed: list[str] = Field(default_factory=list, description="Zed .md eval files or folders (relative: to the "
                                                             "recipe)")


class Recipe(_Section):
    """A whole experiment."""

    name: str = "recipe"
    out_dir: str = Field("out/recipe", description="where everything goes (relative: to the recipe file)")
    data_dir: str = Field("../../shared/data", description="what `{data_dir}` stands for in paths (relative: to "
                          "the recipe file; overridden by --data-dir or $NEXTEDIT_DATA_DIR)")
    seed: int = 0
    workers: int = Field(0, ge=0, description="processes for mining and context (0: one per CPU)")
    corpus: CorpusConfig
    filters: FilterConfig = Field(default_factory=FilterConfig)
    context: StageSection = Field(default_factory=StageSection)
    diagnostics: StageSection = Field(default_factory=StageSection)
    split: SplitConfig
    train: TrainSection = Field(default_factory=TrainSection)
    predict: PredictSection = Field(default_factory=PredictSection)
    abstain: AbstainSection = Field(default_factory=AbstainSection)
    eval: EvalSection = Field(default_factory=EvalSection)

    # Set by load_recipe: the folder relative paths are resolved against.
    root: Path = Field(default=Path("."), exclude=True)

    def path(self, value: str) -> Path:
        """A recipe path: `{data_dir}`, `~` and $VARS expanded, relative ones resolved against the recipe's folder."""
        if "{data_dir}" in value:
            value = value.replace("{data_dir}", str(self.path(self.data_dir)))
        p = Path(os.path.expandvars(value)).expanduser()
        return p if p.is_absolute() else (self.root / p).resolve()


def load_recipe(path: str | Path, *, out_dir: str | Path | None = None,
                data_dir: str | Path | None = None) -> Recipe:
    """Read and validate a recipe; RecipeError naming the file, line and field of the first problem.
    `out_dir` and `data_dir` (else $NEXTEDIT_DATA_DIR) override the recipe's."""
    from nextedit.train.config import _line_of, read_toml

    path = Path(path)
    text, raw = read_toml(path, RecipeError)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        line = _line_of(text, loc)
        where = f"{path}:{line}" if line else str(path)
        raise RecipeError(f"{where}: field {'.'.join(map(str, loc)) or '(top level)'}: {err['msg']}") from None
    recipe.root = path.resolve().parent
    if out_dir is not None:
        recipe.out_dir = str(Path(out_dir).resolve())
    data_dir = data_dir if data_dir is not None else os.environ.get("NEXTEDIT_DATA_DIR")
    if data_dir:
        recipe.data_dir = str(Path(data_dir).expanduser().resolve())
    _check(recipe, path)
    return recipe


@dataclass(frozen=True)
class Source:
    """One repository of the corpus: its name, where it comes from, and the folder that is mined."""

    name: str
    origin: Path
    repo: Path
    bundle: bool


def sources(recipe: Recipe) -> list[Source]:
    """The corpus repositories, sorted by name (bundles are cloned to OUT/repos/NAME)."""
    from nextedit.dataset.split import repo_matches

    found: dict[str, Source] = {}
    out = recipe.path(recipe.out_dir)
    for pattern in recipe.corpus.sources:
        expanded = str(recipe.path(pattern))
        paths = sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]
        for p in map(Path, paths):
            bundle = p.suffix == ".bundle"
            name = re.sub(r"[^A-Za-z0-9._-]+", "-", p.name.removesuffix(".bundle").removesuffix(".git"))
            if recipe.corpus.only and not any(repo_matches(o, str(p)) for o in recipe.corpus.only):
                continue
            found[name] = Source(name, p, out / "repos" / name if bundle else p, bundle)
    return [found[k] for k in sorted(found)]


def _check(recipe: Recipe, path: Path) -> None:
    """What can be known before any work: sources exist, held-out repositories are among them, paths exist."""
    from nextedit.dataset.split import repo_matches

    for pattern in recipe.corpus.sources:
        expanded = str(recipe.path(pattern))
        if not (glob.glob(expanded) if glob.has_magic(expanded) else Path(expanded).exists()):
            raise RecipeError(f"{path}: field corpus.sources: {pattern!r} ({expanded}) matches nothing")
    srcs = sources(recipe)
    if not srcs:
        raise RecipeError(f"{path}: field corpus.only: no corpus repository matches {recipe.corpus.only}")
    try:
        MineConfig.model_validate({**recipe.corpus.mine, "filters": recipe.filters})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise RecipeError(f"{path}: field corpus.mine.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    for key in ("test_repos", "dev_repos"):
        for pattern in getattr(recipe.split, key):
            if not any(repo_matches(pattern, str(s.origin)) for s in srcs):
                raise RecipeError(f"{path}: field split.{key}: {pattern!r} matches none of the corpus "
                                  f"repositories ({', '.join(s.name for s in srcs)})")
    held = [s for s in srcs if any(repo_matches(p, str(s.origin))
                                   for p in recipe.split.test_repos + recipe.split.dev_repos)]
    if recipe.train.enabled and len(held) == len(srcs):
        raise RecipeError(f"{path}: field split: every corpus repository is held out; none is left to train on")
    for z in recipe.eval.zed:
        if not recipe.path(z).exists():
            raise RecipeError(f"{path}: field eval.zed: {recipe.path(z)} does not exist")
    if recipe.train.enabled:
        from nextedit.train.base_models import is_known_name

        base = recipe.train.base_model
        if not is_known_name(base) and not recipe.path(base).exists():
            raise RecipeError(f"{path}: field train.base_model: {base!r} is neither an embedded model name "
                              "nor an existing path")
        from nextedit.formats import get_format

        try:
            get_format(recipe.train.format)
        except (KeyError, ValueError) as exc:
            raise RecipeError(f"{path}: field train.format: {exc}") from None
