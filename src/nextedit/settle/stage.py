"""The `settle` pipeline stage: draw N candidates per example and measure each one's distance to the settled region.

The stage writes, per example, a `settle` field: every candidate's distance, the closest
candidate (its patch and cursor), the distance of "no edit" to the settled text, and sizes used for
the cost estimate. It decides nothing: keeping or dropping needs the whole run's distribution
(quantiles), which `nextedit.settle.band` does in a second pass. Candidates are not stored (50 per
example would dwarf the data) unless `keep_candidates` is set.

One class does the work for every predictor; it tells the executor whether its work is CPU in this
process (`scripted`, `noop`, `propagate`: worker processes) or waiting on a remote predictor (asyncio).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nextedit.pipeline.stage import Stage, StageError
from nextedit.predictors.base import Predictor, get_predictor, parse_provider
from nextedit.record import Example, Prediction
from nextedit.settle.distance import (
    METRICS,
    Metric,
    candidate_regions,
    distances,
    signature,
)

__all__ = ["CPU_SCHEMES", "SettleConfig", "SettleCpuStage", "SettleStage", "settle_candidates", "stage_for"]

#: Predictors that run in this process and spend CPU, not waiting: run them in worker processes.
CPU_SCHEMES = frozenset({"scripted", "noop", "propagate"})
#: Digits kept for stored distances (one character in a 100,000-character region is 1e-5).
DIGITS = 7


class SettleConfig(BaseModel):
    """Options of the settle stage."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field("noop", description="predictor drawing the candidates: local:PATH, "
                                              "openai-compatible:URL, teacher:SPEC, scripted:PATH, ...")
    samples: int = Field(50, ge=1, description="candidates drawn per example (one predictor call, n samples)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options for the predictor")
    metric: Metric = Field("levenshtein", description=f"distance: {', '.join(METRICS)}")
    keep_candidates: bool = Field(False, description="also store every candidate in predictions")


def _cost(predictions: list[Prediction]) -> float:
    return sum(p.usage.cost_usd for p in predictions if p.usage is not None)


def settle_candidates(example: Example, predictions: list[Prediction], config: SettleConfig) -> Example:
    """Measure the candidates against `example.settled` and record the result in `example.settle`."""
    if example.settled is None:
        raise StageError("example has no settled text (import traces with settled events first)")
    snap = example.snapshot
    start, end = snap.editable or (0, len(snap.text))
    original = snap.text[start:end]
    settled = example.settled.text
    regions = candidate_regions(example, predictions)
    valid = [i for i, r in enumerate(regions) if r is not None]
    found = distances(original, settled, [regions[i] for i in valid] + [original], config.metric)
    per_candidate: list[float | None] = [None] * len(regions)
    for i, d in zip(valid, found[:-1], strict=True):
        per_candidate[i] = round(float(d), DIGITS)
    best: dict[str, Any] | None = None
    if valid:
        # The closest candidate; ties go to the earliest sample.
        k = min(valid, key=lambda i: (per_candidate[i], i))
        pred = predictions[k]
        best = {"index": k, "distance": per_candidate[k], "patch": pred.patch or "", "cursor": pred.cursor}
    example.settle = {  # type: ignore[attr-defined]  # an extra record field
        "provider": config.provider,
        "metric": config.metric,
        "signature": signature(config.metric),
        "samples": len(predictions),
        "valid": len(valid),
        "distances": per_candidate,
        "best": best,
        "no_edit_distance": round(float(found[-1]), DIGITS),
        "cost_usd": round(_cost(predictions), 8),
        "chars": {"prompt": len(snap.text) + sum(len(h.diff) for h in snap.history)
                  + sum(len(r.text) for r in snap.related), "region": len(original)},
    }
    if config.keep_candidates:
        example.predictions = [*example.predictions, *predictions]
    return example


class SettleStage(Stage):
    """Draw `samples` candidates from a predictor and record their distances to the settled region.

    One class for every predictor: it declares a synchronous `process` for in-process predictors
    (kind "cpu": the executor may run it in worker processes) and an asynchronous one for remote
    predictors (kind "io": many examples in flight); the executor picks how to run it.
    """

    name = "settle"
    version = "2"
    Config = SettleConfig
    # The id keys the cache too: a scripted predictor answers per example id, so two examples with
    # the same snapshot and settled text may get different candidates.
    reads = ("id", "snapshot", "settled")
    kind = "io"

    def __init__(self, config: SettleConfig | dict[str, Any] | None = None):
        super().__init__(config)
        # An unknown provider raises PredictorError here, before any example is read.
        self.predictor: Predictor = get_predictor(self.config.provider, **self.config.options)
        self.version = f"{type(self).version}+{self.predictor.scheme}.{self.predictor.version}"
        scheme, _ = parse_provider(self.config.provider)
        in_process = scheme in CPU_SCHEMES
        self.kind = "cpu" if in_process else "io"  # type: ignore[misc]
        self.process = self.process_sync if in_process else self.process_async  # type: ignore[method-assign]

    def _record(self, example: Example, predictions: list[Prediction]) -> Example:
        out = settle_candidates(example, predictions, self.config)
        info = out.settle  # type: ignore[attr-defined]
        self.stats["candidates"] += info["samples"]
        self.stats["invalid_candidates"] += info["samples"] - info["valid"]
        if info["best"] is None:
            self.stats["no_valid_candidate"] += 1
        return out

    def _check(self, example: Example) -> None:
        if example.settled is None:
            raise StageError("example has no settled text (import traces with settled events first)")

    def _error(self, exc: Exception) -> StageError:
        return StageError(f"settle {self.predictor.name}: {type(exc).__name__}: {exc}")

    async def process_async(self, example: Example) -> Example:
        """Draw the candidates (awaiting remote predictors) and measure them."""
        self._check(example)
        try:
            predictions = await self.predictor.predict_async(example, samples=self.config.samples)
        except StageError:
            raise
        except Exception as exc:  # a predictor failure quarantines the example, the run goes on
            raise self._error(exc) from exc
        return self._record(example, predictions)

    def process_sync(self, example: Example) -> Example:
        """Draw the candidates of an in-process predictor and measure them."""
        self._check(example)
        try:
            result = self.predictor.predict(example, samples=self.config.samples)
        except StageError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc
        if not isinstance(result, list):
            raise StageError(f"settle {self.predictor.name}: predictor is asynchronous")
        return self._record(example, result)


#: The former name of the settle stage for in-process predictors (one class does both now).
SettleCpuStage = SettleStage


def stage_for(config: SettleConfig | dict[str, Any]) -> SettleStage:
    """The settle stage for a config (kept for callers of the two-class era)."""
    return SettleStage(config)
