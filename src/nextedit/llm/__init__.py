"""LLM access for teacher, repair and judges: one async client over Anthropic, OpenAI and
OpenAI-compatible servers, with a shared request cache, rate limits, retries, costs and batch jobs."""

from nextedit.llm.cache import RequestCache, cache_key, default_cache_path
from nextedit.llm.client import (
    ClientOptions,
    LLMClient,
    get_client,
    parse_spec,
    preflight,
    total_spent_usd,
)
from nextedit.llm.prices import PriceTable, load_prices
from nextedit.llm.types import (
    BatchQueued,
    BudgetExceeded,
    ChatRequest,
    Completion,
    LLMError,
    Usage,
)

__all__ = [
    "BatchQueued", "BudgetExceeded", "ChatRequest", "ClientOptions", "Completion", "LLMClient", "LLMError",
    "PriceTable", "RequestCache", "Usage", "cache_key", "default_cache_path", "get_client", "load_prices",
    "parse_spec", "preflight", "total_spent_usd",
]
