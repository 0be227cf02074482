"""The quickstart: the whole offline loop on this repository's own history, with a report at the end."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from nextedit.dataset.split import parse_specs, split_file
from nextedit.evaluate.running import evaluate
from nextedit.mine.config import MineConfig
from nextedit.mine.miner import mine
from nextedit.pipeline.engine import run_stage
from nextedit.pipeline.registry import get_stage

BASELINES = ("noop", "propagate")


class QuickstartError(RuntimeError):
    """The quickstart cannot run (no git repository, nothing mined, ...)."""


@dataclass
class QuickstartResult:
    """Where the quickstart wrote its files and what it measured."""

    out_dir: Path
    report: Path
    summary: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


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


def run_quickstart(out_dir: Path, *, repo: Path | None = None, fast: bool = False, seed: int = 0,
                   console: Console | None = None) -> QuickstartResult:
    """Mine -> context -> diagnostics -> validate -> split by time -> predict baselines -> evaluate."""
    console = console or Console(stderr=True)
    t0 = time.monotonic()
    root = git_root(repo or Path.cwd())
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}

    def step(title: str) -> None:
        console.rule(f"[bold]{title}")

    step(f"1/6 mine the git history of {root}")
    mined = out_dir / "mined.jsonl"
    cfg = MineConfig(max_commits=12 if fast else 400, samples_per_commit=2 if fast else 3, seed=seed,
                     workers=1 if fast else 0)
    mine(root, mined, cfg)
    counts["mined"] = _count(mined)
    if counts["mined"] < 2:
        raise QuickstartError(f"only {counts['mined']} example(s) mined from {root}: need a history with "
                              "a few commits touching code files")

    current = mined
    stages = [("context", {"repo": str(root)}), ("diagnostics", {"repo": str(root)}), ("validate", {})]
    for i, (name, config) in enumerate(stages, start=2):
        step(f"{i}/6 {name}")
        cls = get_stage(name)
        out = out_dir / f"{name}.jsonl"
        summary = run_stage(cls(cls.Config(**config)), current, out, concurrency=1)
        for line in summary.lines():
            console.print(line)
        counts[name] = _count(out)
        current = out

    step("5/6 split by time: the newest 25% of examples are held out")
    train, test = out_dir / "train.jsonl", out_dir / "test.jsonl"
    split_file(current, parse_specs(["train=75%", "test=rest"], out_dir), by="time", seed=seed)
    counts["train"], counts["test"] = _count(train), _count(test)
    if counts["test"] == 0:
        raise QuickstartError("the time split left no held-out examples")

    step("6/6 predict with the baselines and evaluate")
    report_dir = out_dir / "report"
    summary = evaluate([test], report_dir, providers=list(BASELINES), concurrency=1,
                       resamples=200 if fast else 1000, seed=seed, title="nextedit quickstart")
    return QuickstartResult(out_dir=out_dir, report=report_dir / "report.html", summary=summary,
                            counts=counts, seconds=time.monotonic() - t0)
