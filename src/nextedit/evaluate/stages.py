"""The `predict` and `score` pipeline stages: add predictions from a provider, add metric scores."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nextedit.pipeline.stage import Stage, StageError
from nextedit.predictors.base import Predictor, get_predictor
from nextedit.record import Example


class PredictConfig(BaseModel):
    """Options of the predict stage."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field("noop", description="provider string: noop, propagate, local:PATH, ...")
    samples: int = Field(1, ge=1, description="predictions per example")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options for the predictor")


def replace_predictions(example: Example, provider: str, new: list[Any]) -> Example:
    """Swap the example's predictions by `provider` for `new`, keeping scores and checks of the others.

    Scores and checks that point at a removed prediction are dropped; the rest are re-indexed.
    """
    mapping: dict[int, int] = {}
    kept = []
    for i, pred in enumerate(example.predictions):
        if pred.provider != provider:
            mapping[i] = len(kept)
            kept.append(pred)
    example.predictions = kept + list(new)
    scores = []
    for score in example.scores:
        if score.prediction in mapping:
            scores.append(score.model_copy(update={"prediction": mapping[score.prediction]}))
    example.scores = scores
    checks = []
    for check in example.checks:
        if check.prediction is None:
            checks.append(check)
        elif check.prediction in mapping:
            checks.append(check.model_copy(update={"prediction": mapping[check.prediction]}))
    example.checks = checks
    return example


class PredictStage(Stage):
    """Ask a predictor (by provider string) for `samples` predictions; replaces its earlier ones."""

    name = "predict"
    version = "1"
    Config = PredictConfig
    reads = ("id", "snapshot", "predictions", "scores", "checks")
    kind = "io"

    def __init__(self, config: PredictConfig | dict[str, Any] | None = None):
        super().__init__(config)
        # An unknown provider raises PredictorError here, before any example is read.
        self.predictor: Predictor = get_predictor(self.config.provider, **self.config.options)
        # The predictor's own version keys the cache too: a changed baseline is never served stale.
        self.version = f"{type(self).version}+{self.predictor.scheme}.{self.predictor.version}"

    async def process(self, example: Example) -> Example:
        """Add this provider's predictions to the example."""
        try:
            predictions = await self.predictor.predict_async(example, samples=self.config.samples)
        except StageError:
            raise
        except Exception as exc:  # a predictor failure quarantines the example, the run goes on
            raise StageError(f"predict {self.predictor.name}: {type(exc).__name__}: {exc}") from exc
        self.stats["predictions"] += len(predictions)
        self.stats["errors"] += sum(1 for p in predictions if p.error)
        return replace_predictions(example, self.predictor.name, predictions)


class ScoreConfig(BaseModel):
    """Options of the score stage (none yet: metric variants are fixed by their signatures)."""

    model_config = ConfigDict(extra="forbid")


def _metrics_version() -> str:
    """A short hash of every metric signature: cached scores are recomputed when any metric changes."""
    import hashlib

    import orjson

    from nextedit.metrics import SCORE_VERSION, SIGNATURES

    blob = orjson.dumps({"score": SCORE_VERSION, "signatures": SIGNATURES}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:10]


class ScoreStage(Stage):
    """Score every prediction against the best expected patch (replaces earlier scores)."""

    name = "score"
    version = f"1+metrics.{_metrics_version()}"
    Config = ScoreConfig
    reads = ("snapshot", "expected", "expected_cursors", "predictions")
    kind = "cpu"

    def process(self, example: Example) -> Example:
        """Set `example.scores` to one Score per prediction."""
        from nextedit.metrics import score_prediction

        scores = []
        for i in range(len(example.predictions)):
            try:
                scores.append(score_prediction(example, i))
            except Exception as exc:  # e.g. an expected patch that does not apply
                raise StageError(f"score prediction {i}: {type(exc).__name__}: {exc}") from exc
        self.stats["scored"] += len(scores)
        example.scores = scores
        return example


class AbstainConfig(BaseModel):
    """Which predictions to re-decide, and the rules (nextedit.predictors.abstain)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="apply to this provider's predictions only")
    abstain_below: float | None = Field(None, description="withhold edits whose confidence is below this")
    max_reversal: float | None = Field(None, ge=0, le=1, description="withhold edits that undo more than this "
                                                                      "share of the user's last edit")
    allow_whitespace_only: bool = Field(False, description="offer edits that change only whitespace")
    allow_repeated_lines: bool = Field(False, description="offer edits that leave a line next to a copy of itself")
    quiet_when_clean: bool = Field(False, description="withhold own edits where the linter reports nothing near the "
                                                      "cursor (nextedit.predictors.abstain.clean_near_cursor)")


class AbstainStage(Stage):
    """Re-apply abstention to recorded predictions (a calibrated threshold on predictions made earlier with
    `confidence` on); earlier abstentions are undone first, so the result depends only on this config.
    Re-score afterwards."""

    name = "abstain"
    version = "4"
    Config = AbstainConfig
    reads = ("snapshot", "predictions")
    kind = "cpu"

    def process(self, example: Example) -> Example:
        """Withhold (or restore) the provider's edits by the configured rules."""
        from nextedit.predictors.abstain import guard, restore

        cfg = self.config
        out = []
        for pred in example.predictions:
            if pred.provider == cfg.provider:
                pred = guard(example, restore(pred), abstain_below=cfg.abstain_below, max_reversal=cfg.max_reversal,
                             allow_whitespace_only=cfg.allow_whitespace_only,
                             allow_repeated_lines=cfg.allow_repeated_lines, quiet_when_clean=cfg.quiet_when_clean)
                self.stats["withheld" if pred.abstained else "offered"] += 1
            out.append(pred)
        example.predictions = out
        example.scores = []
        return example
