"""One budget and one rate limit for every LLM client of a run, wherever its workers are: a process-wide hook
that the Ray engine points at one cluster actor. Local runs leave it unset (each client keeps its own)."""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["Governor", "current", "set_governor", "wait_turn"]


class Governor(Protocol):
    """What a client asks before, during and after each paid request."""

    def reserve(self, usd: float) -> str | None:
        """Hold `usd` of the budget for a request: None when granted, else why not (budget reached)."""

    def release(self, usd: float) -> None:
        """Give back a reservation (the request finished or failed)."""

    def spend(self, usd: float) -> None:
        """Count dollars actually spent."""

    def wait(self, tokens: float) -> float:
        """Seconds to wait before a request of about `tokens` may start; 0 means start now (it is counted)."""

    def pause(self, seconds: float) -> None:
        """Nobody starts a request for `seconds` (a provider's Retry-After)."""


_CURRENT: list[Governor | None] = [None]


def set_governor(governor: Governor | None) -> None:
    """Make every LLM client of this process consult `governor` (None: back to per-client limits)."""
    _CURRENT[0] = governor


def current() -> Governor | None:
    """The governor of this process, if any."""
    return _CURRENT[0]


async def wait_turn(governor: Governor, tokens: float) -> None:
    """Wait until the governor lets one request of about `tokens` start."""
    while True:
        wait = governor.wait(tokens)
        if wait <= 0:
            return
        await asyncio.sleep(min(wait, 5.0))
