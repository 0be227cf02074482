"""Model prices (a TOML table, editable defaults in prices.toml plus user overrides) and cost of a call."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["ModelPrice", "PriceTable", "load_prices"]


class ModelPrice(BaseModel):
    """US dollars per million tokens."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None


class PriceTable(BaseModel):
    """Prices by model name plus the Batch API discount."""

    batch_discount: float = 0.5
    models: dict[str, ModelPrice] = {}

    def find(self, model: str) -> ModelPrice | None:
        """Exact name, else the longest listed name that `model` starts with, else None."""
        if model in self.models:
            return self.models[model]
        best = max((name for name in self.models if model.startswith(name)), key=len, default=None)
        return self.models[best] if best else None

    def cost(self, model: str, *, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0,
             cache_write_tokens: int = 0, batch: bool = False) -> float | None:
        """Dollars for one call; input_tokens counts every prompt token (cached ones included).
        None when the model has no price."""
        price = self.find(model)
        if price is None:
            return None
        plain = max(input_tokens - cached_input_tokens - cache_write_tokens, 0)
        read = price.cache_read if price.cache_read is not None else price.input
        write = price.cache_write if price.cache_write is not None else price.input
        usd = (plain * price.input + cached_input_tokens * read + cache_write_tokens * write
               + output_tokens * price.output) / 1e6
        return usd * (self.batch_discount if batch else 1.0)


def _parse(data: dict[str, Any], source: str) -> PriceTable:
    try:
        return PriceTable.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{source}: field {field}: {first['msg']}") from None


def load_prices(override: str | Path | None = None) -> PriceTable:
    """The packaged defaults, with entries from the `override` TOML file replacing or adding models."""
    text = resources.files("nextedit.llm").joinpath("prices.toml").read_text()
    table = _parse(tomllib.loads(text), "nextedit/llm/prices.toml")
    if override is None:
        return table
    path = Path(override)
    try:
        extra = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: {err}") from None
    merged = {"batch_discount": extra.get("batch_discount", table.batch_discount),
              "models": {**{k: v.model_dump() for k, v in table.models.items()}, **extra.get("models", {})}}
    return _parse(merged, str(path))
