"""Small stages used by the runner tests (importable as `runner_stages:Class` with tests/ on sys.path)."""

from __future__ import annotations

import asyncio
import os
import random
import time

from pydantic import BaseModel

from nextedit.pipeline.stage import Stage, StageError
from nextedit.record import Example


class SimulatedCrash(BaseException):
    """Escapes the engine's per-record error handling, like a crash of the worker."""


class TagConfig(BaseModel):
    tag: str = "seen"
    delay: float = 0.0
    drop_every: int = 0  # drop examples whose number (from the id) is a multiple of this
    fail_every: int = 0  # StageError for these
    crash_every: int = 0  # a plain exception for these


def _number(example: Example) -> int:
    return int(example.id.rsplit("-", 1)[1])


class Tag(Stage):
    """Adds `config.tag` to source.tags; counts calls in stats."""

    name = "tag"
    version = "1"
    Config = TagConfig
    reads = ("snapshot",)
    kind = "cpu"

    def process(self, example: Example) -> Example | None:
        cfg: TagConfig = self.config  # type: ignore[assignment]
        self.stats["calls"] += 1
        n = _number(example)
        if cfg.delay:
            time.sleep(cfg.delay)
        if str(n) == os.environ.get("RUNNER_TEST_INTERRUPT_AT"):  # a simulated crash, not in the config
            raise KeyboardInterrupt
        flag = os.environ.get("RUNNER_TEST_CRASH_FILE")  # a file holding N: example N crashes its worker task
        if flag and os.path.exists(flag) and open(flag).read().strip() == str(n):  # noqa: SIM115
            raise SimulatedCrash(n)
        gate = os.environ.get("RUNNER_TEST_GATE_AT")  # "N": examples from N on wait (test kills the run)
        if gate is not None and n >= int(gate):
            time.sleep(3600)
        if cfg.drop_every and n % cfg.drop_every == 0:
            return None
        if cfg.fail_every and n % cfg.fail_every == 0:
            raise StageError(f"example {n} is not liked")
        if cfg.crash_every and n % cfg.crash_every == 0:
            raise ZeroDivisionError("division by zero")
        example.source.tags.append(cfg.tag)
        example.snapshot.text = example.snapshot.text.upper()
        return example


class AsyncTag(Stage):
    """An io stage: awaits a random short delay, then tags the example."""

    name = "async-tag"
    version = "1"
    Config = TagConfig
    reads = ("snapshot",)
    kind = "io"

    async def process(self, example: Example) -> Example | None:
        self.stats["calls"] += 1
        n = _number(example)
        await asyncio.sleep(random.random() * 0.01 + (0.05 if n % 10 == 0 else 0.0))
        if str(n) == os.environ.get("RUNNER_TEST_INTERRUPT_AT"):  # a simulated crash, not in the config
            await asyncio.sleep(0.3)  # the crash comes last: later examples finish (and are written) first
            raise KeyboardInterrupt
        cfg: TagConfig = self.config  # type: ignore[assignment]
        if cfg.fail_every and n % cfg.fail_every == 0:
            raise StageError(f"example {n} is not liked")
        example.source.tags.append(cfg.tag)
        return example


class Extra(Stage):
    """Mutates a nested unknown field in place (the record keeps unknown fields as they are)."""

    name = "extra"
    version = "1"
    reads = ("meta",)

    def process(self, example: Example) -> Example | None:
        example.meta["seen"] = example.meta.get("seen", 0) + 1  # type: ignore[attr-defined]
        return example


class Closing(Tag):
    """Writes a line to config.tag (a file path) when closed: one per process that ran it."""

    name = "closing"

    def close(self) -> None:
        with open(self.config.tag, "a") as fh:
            fh.write(f"{os.getpid()}\n")
