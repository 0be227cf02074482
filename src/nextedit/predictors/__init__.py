"""Predictors: things that propose the next edit (baselines, local models, HTTP endpoints), by provider string."""

from nextedit.predictors.base import (
    PREDICTORS,
    Predictor,
    PredictorError,
    get_predictor,
    parse_provider,
)

__all__ = ["PREDICTORS", "Predictor", "PredictorError", "get_predictor", "parse_provider"]
