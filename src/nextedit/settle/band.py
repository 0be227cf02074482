"""The band pass: keep examples whose closest candidate is neither trivially close to the settled text nor far from it.

Reads the `settle` stage's output twice (streaming): once for the distribution of best distances
(the band may be set by quantiles of it), once to write kept examples to OUT and the others to
OUT.dropped.jsonl with the reason. A kept example's training target becomes its closest candidate
(`expected = [that patch]`), not the settled text; `settled` stays, and so does `rejected` (the
model's own output) unless it leads to the same region as the new target.

Decisions: `too_trivial` (best distance <= low), `too_noisy` (best distance > high), `kept`
(low < best <= high), `no_candidate` (no candidate applied).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nextedit.jsonl import JsonlWriter, read_dicts
from nextedit.pipeline.stage import config_hash

__all__ = [
    "DECISIONS",
    "Band",
    "BandSpec",
    "CostConfig",
    "apply_band",
    "classify",
    "distances_path",
    "dropped_path",
    "histogram_top",
    "resolve_band",
    "sidecar",
]

DECISIONS = ("kept", "too_trivial", "too_noisy", "no_candidate")
VERSION = "1"
HISTOGRAM_BINS = 50
NICE_TOPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


class BandSpec(BaseModel):
    """Where the band lies: absolute distances, or quantiles of the run's best distances (which win)."""

    model_config = ConfigDict(extra="forbid")

    low: float = Field(0.0, ge=0.0, le=1.0, description="best distance <= low is too trivial")
    high: float = Field(0.3, ge=0.0, le=1.0, description="best distance > high is too noisy")
    low_quantile: float | None = Field(None, ge=0.0, le=1.0, description="low = this quantile of the run")
    high_quantile: float | None = Field(None, ge=0.0, le=1.0, description="high = this quantile of the run")

    @model_validator(mode="after")
    def _ordered(self) -> BandSpec:
        if self.low_quantile is None and self.high_quantile is None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if (self.low_quantile is not None and self.high_quantile is not None
                and self.low_quantile > self.high_quantile):
            raise ValueError(f"low_quantile {self.low_quantile} is above high_quantile {self.high_quantile}")
        return self


class CostConfig(BaseModel):
    """Prices for the cost comparison: N teacher samples per example vs the candidates actually drawn."""

    model_config = ConfigDict(extra="forbid")

    teacher_samples: int = Field(10, ge=1, description="teacher samples per example in the comparison")
    teacher_input_price: float = Field(3.0, ge=0, description="USD per 1M teacher input tokens")
    teacher_output_price: float = Field(15.0, ge=0, description="USD per 1M teacher output tokens")
    teacher_prompt_tokens: int = Field(1500, ge=0, description="instruction tokens added to each teacher prompt")
    student_price_per_sample: float = Field(0.0, ge=0, description="USD per candidate when the predictor "
                                                                  "reports no cost (local student: 0)")
    chars_per_token: float = Field(3.0, gt=0, description="token estimate: characters per token")


@dataclass(frozen=True)
class Band:
    """The resolved band: keep `low < best distance <= high`."""

    low: float
    high: float
    mode: str  # "absolute", "quantile" or "mixed"
    spec: dict[str, Any] = field(default_factory=dict)


def resolve_band(best: np.ndarray, spec: BandSpec) -> Band:
    """The band for this run: absolute thresholds, with quantiles of `best` replacing them when given."""
    low, high = spec.low, spec.high
    has = best.size > 0
    if spec.low_quantile is not None and has:
        low = float(np.quantile(best, spec.low_quantile))
    if spec.high_quantile is not None and has:
        high = float(np.quantile(best, spec.high_quantile))
    quantiles = (spec.low_quantile is not None) + (spec.high_quantile is not None)
    mode = "quantile" if quantiles == 2 else "mixed" if quantiles == 1 else "absolute"
    return Band(low, high, mode, spec.model_dump())


def classify(distance: float | None, band: Band) -> str:
    """The decision for one example's best distance."""
    if distance is None:
        return "no_candidate"
    if distance <= band.low:
        return "too_trivial"
    if distance > band.high:
        return "too_noisy"
    return "kept"


def sidecar(out_path: str | os.PathLike[str], suffix: str) -> Path:
    """A file beside output `out_path`: `sidecar("out.jsonl", ".dropped.jsonl")` -> `out.dropped.jsonl`."""
    p = Path(out_path)
    for ext in (".jsonl.gz", ".jsonl", ".json"):
        if p.name.endswith(ext):
            return p.with_name(p.name[: -len(ext)] + suffix)
    return p.with_name(p.name + suffix)


def dropped_path(out_path: str | os.PathLike[str]) -> Path:
    """Where the dropped examples go: `out.jsonl` -> `out.dropped.jsonl`."""
    return sidecar(out_path, ".dropped.jsonl")


def distances_path(out_path: str | os.PathLike[str]) -> Path:
    """Where the settle stage's per-example distances go (the band pass reads it): `out.distances.jsonl`."""
    return sidecar(out_path, ".distances.jsonl")


def _best_distance(record: dict[str, Any], where: str) -> float | None:
    info = record.get("settle")
    if not isinstance(info, dict) or "best" not in info:
        raise ValueError(f"{where}: field settle: missing (run the settle stage first)")
    best = info["best"]
    return None if best is None else float(best["distance"])


def _teacher_cost(info: dict[str, Any], cost: CostConfig) -> float:
    chars = info.get("chars") or {}
    tokens_in = chars.get("prompt", 0) / cost.chars_per_token + cost.teacher_prompt_tokens
    tokens_out = chars.get("region", 0) / cost.chars_per_token
    return cost.teacher_samples * (tokens_in * cost.teacher_input_price
                                   + tokens_out * cost.teacher_output_price) / 1e6


def _sample(record: dict[str, Any]) -> dict[str, Any]:
    """What the report shows of one example."""
    info = record["settle"]
    snap = record["snapshot"]
    start, end = snap.get("editable") or (0, len(snap["text"]))
    best = info.get("best")
    return {"id": record.get("id"), "path": snap.get("path"), "distance": None if best is None else best["distance"],
            "no_edit_distance": info.get("no_edit_distance"), "original": snap["text"][start:end],
            "settled": (record.get("settled") or {}).get("text", ""),
            "best_patch": None if best is None else best["patch"], "valid": info.get("valid"),
            "samples": info.get("samples")}


def _same_region(snapshot: dict[str, Any], a: str, b: str) -> bool:
    """Whether two patches lead to the same editable region (False when either does not apply)."""
    from nextedit.patch import PatchError
    from nextedit.settle.distance import RegionApplier

    text = snapshot["text"]
    editable = tuple(snapshot.get("editable") or (0, len(text)))
    applier = RegionApplier(text, (editable[0], editable[1]), start_line=snapshot.get("start_line", 0))
    try:
        return applier.region(a) == applier.region(b)
    except PatchError:
        return False


def _target(record: dict[str, Any], band: Band, decision: str, lineage: dict[str, Any]) -> dict[str, Any]:
    info = record["settle"]
    info["decision"] = decision
    info["band"] = [band.low, band.high]
    if decision == "kept":
        best = info["best"]
        record["expected"] = [best["patch"]]
        record["expected_cursors"] = [best["cursor"]] if best.get("cursor") is not None else []
        record["scores"] = []  # they scored predictions against the old expected
        if record.get("rejected") and _same_region(record["snapshot"], record["rejected"], best["patch"]):
            # The model's own output is the new target: it is no longer a rejected answer.
            record["rejected"] = None
            info["rejected_cleared"] = True
    record.setdefault("lineage", []).append(lineage)
    return record


def apply_band(stage_output: str | os.PathLike[str], out: str | os.PathLike[str], spec: BandSpec, *,
               cost: CostConfig | None = None, samples_per_decision: int = 3, failed: int = 0,
               failed_output: str | None = None) -> dict[str, Any]:
    """Write kept examples to `out`, the others to `out.dropped.jsonl`; return the report summary.

    `failed` / `failed_output`: examples the settle stage quarantined (reported, not in the counts)."""
    cost = cost or CostConfig()
    src = Path(stage_output)
    bests: list[float] = []
    for line, record in read_dicts(src):
        d = _best_distance(record, f"{src}:{line}")
        if d is not None:
            bests.append(d)
    best = np.asarray(bests, dtype=np.float64)
    band = resolve_band(best, spec)
    lineage = {"stage": "settle-band", "version": VERSION,
               "config": config_hash(spec), "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    counts = dict.fromkeys(DECISIONS, 0)
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in DECISIONS}
    teacher_usd = student_usd = 0.0
    candidates = invalid = 0
    drop_out = dropped_path(out)
    with JsonlWriter(out) as kept, JsonlWriter(drop_out) as dropped:
        for line, record in read_dicts(src):
            d = _best_distance(record, f"{src}:{line}")
            decision = classify(d, band)
            counts[decision] += 1
            info = record["settle"]
            teacher_usd += _teacher_cost(info, cost)
            drawn = int(info.get("samples") or 0)
            candidates += drawn
            invalid += drawn - int(info.get("valid") or 0)
            student_usd += float(info.get("cost_usd") or 0.0) or drawn * cost.student_price_per_sample
            if len(samples[decision]) < samples_per_decision:
                samples[decision].append(_sample(record))
            row = _target(record, band, decision, lineage)
            (kept if decision == "kept" else dropped).write(orjson.dumps(row))
    top = histogram_top(best, band)
    clipped = np.clip(best, 0.0, top)
    hist, edges = np.histogram(clipped, bins=HISTOGRAM_BINS, range=(0.0, top))
    masks = {"too_trivial": best <= band.low, "too_noisy": best > band.high}
    masks["kept"] = ~(masks["too_trivial"] | masks["too_noisy"])
    by_decision = {k: [int(c) for c in np.histogram(clipped[m], bins=HISTOGRAM_BINS, range=(0.0, top))[0]]
                   for k, m in masks.items()}
    total = sum(counts.values())
    first = _first_settle_info(src)
    return {
        "input": str(src), "output": str(out), "dropped_output": str(drop_out),
        "created": lineage["at"], "version": VERSION,
        "provider": first.get("provider"), "metric": first.get("metric"), "signature": first.get("signature"),
        "band": asdict(band),
        "counts": {"examples": total, **counts, "candidates": candidates, "invalid_candidates": invalid,
                   "failed": failed},
        "failed_output": failed_output,
        "rates": {k: (counts[k] / total if total else None) for k in DECISIONS},
        "distances": _stats(best),
        "histogram": {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in hist],
                      "by_decision": by_decision},
        "samples": samples,
        "cost": {**cost.model_dump(), "teacher_usd": teacher_usd, "student_usd": student_usd,
                 "saved_usd": teacher_usd - student_usd,
                 "saved_per_example_usd": (teacher_usd - student_usd) / total if total else None},
    }


def histogram_top(best: np.ndarray, band: Band) -> float:
    """Right end of the histogram: a round number just above the 99th percentile and the band
    (distances pile up near 0 when regions are large, and a 0..1 axis would hide them)."""
    need = max(float(np.quantile(best, 0.99)) if best.size else 0.0, band.high if band.high < 1.0 else 0.0,
               band.low)
    for top in NICE_TOPS:
        if need * 1.05 <= top:
            return top
    return 1.0


def _first_settle_info(src: Path) -> dict[str, Any]:
    for _line, record in read_dicts(src):
        return record.get("settle") or {}
    return {}


def _stats(best: np.ndarray) -> dict[str, Any]:
    if best.size == 0:
        return {"n": 0}
    q = np.quantile(best, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"n": int(best.size), "mean": float(best.mean()), "min": float(best.min()), "max": float(best.max()),
            "p10": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]), "p90": float(q[4])}
