"""Which checkpoints a training run may resume: the settings that shape the weights must match the ones that wrote them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nextedit.train.config import TrainConfig

#: The settings a checkpoint was written under, beside the checkpoints.
RUN_CONFIG = "run-config.json"

#: Settings a resumed run may change: how long it runs, what it logs, writes and exports, and on what hardware.
MAY_CHANGE = frozenset({
    "output_dir", "resume", "export", "distributed",
    "train.max_steps", "train.epochs", "train.max_seconds", "train.threads", "train.eval_steps",
    "train.save_steps", "train.save_total_limit", "train.logging_steps", "train.token_metrics",
    "data.eval", "data.max_eval_examples",
})


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "format_options":
            flat |= _flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def fingerprint(config: TrainConfig) -> dict[str, Any]:
    """The settings that shape the trained weights (every key outside MAY_CHANGE), flattened to dotted names."""
    flat = _flatten(config.model_dump(mode="json"))
    return {k: v for k, v in flat.items() if not any(k == m or k.startswith(f"{m}.") for m in MAY_CHANGE)}


def record(checkpoints: Path, config: TrainConfig) -> None:
    """Write the settings of a run that starts from scratch beside its checkpoints."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / RUN_CONFIG).write_text(json.dumps(fingerprint(config), indent=1, sort_keys=True))


def changed_settings(checkpoints: Path, config: TrainConfig) -> list[str]:
    """'key: old -> new' for each setting that differs from the run that wrote the checkpoints (none recorded: [])."""
    path = checkpoints / RUN_CONFIG
    if not path.is_file():
        return []
    before = json.loads(path.read_text())
    now = fingerprint(config)
    return [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(before.keys() | now.keys())
            if before.get(k) != now.get(k)]


def checkpoint_state(checkpoint: str | Path) -> dict[str, Any]:
    """The trainer state saved in a checkpoint folder (step, tokens seen); {} when it has none."""
    path = Path(checkpoint) / "trainer_state.json"
    return json.loads(path.read_text()) if path.is_file() else {}
