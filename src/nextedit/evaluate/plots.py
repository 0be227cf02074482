"""Geometry of the report's SVG plots (boxes, intervals, bars in pixels); the template draws and escapes them."""

from __future__ import annotations

import math
from typing import Any

LEFT, WIDTH, RIGHT, TOP = 160, 520, 150, 22
ROW = 30
PAIRED_LEFT, PAIRED_WIDTH, PAIRED_RIGHT = 120, 240, 140
LABEL_CHARS = 24
#: Metrics where a lower value is better (their paired differences are coloured the other way).
LOWER_IS_BETTER = frozenset({"reversal_ratio"})


def _label(name: str, chars: int = LABEL_CHARS) -> str:
    return name if len(name) <= chars else name[:chars - 1] + "…"


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / ticks if span > 0 else 1.0
    exp = 10 ** math.floor(math.log10(raw))
    return next(m * exp for m in (1, 2, 2.5, 5, 10) if m * exp >= raw)


def nice_ceiling(x: float) -> float:
    """The smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that is >= x (x > 0)."""
    exp = 10 ** math.floor(math.log10(x))
    return next(m * exp for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * exp >= x * (1 - 1e-12))


def _ticks(lo: float, hi: float, x: Any, count: int = 5) -> list[dict[str, Any]]:
    step = _nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    digits = 0
    while digits < 6 and abs(round(step, digits) - step) > 1e-9 * step:
        digits += 1
    out = []
    v = first
    while v <= hi + 1e-9 * max(1.0, abs(hi)):
        out.append({"x": x(v), "label": f"{0.0 if abs(v) < 1e-12 else v:.{digits}f}"})
        v += step
    return out


def _scale(lo: float, hi: float, left: float = LEFT, width: float = WIDTH) -> Any:
    span = hi - lo or 1.0
    return lambda v: left + (min(max(v, lo), hi) - lo) / span * width


def distribution(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Per-provider box plot of deltaChrF (p10-p90 whiskers, p25-p75 box, median) with the mean and its 95% CI."""
    stats = summary.get("plots", {}).get("delta_chrf") or {}
    if not stats:
        return None
    lo = min(0.0, *(q["min"] for q in stats.values()))
    hi = max(100.0, *(q["max"] for q in stats.values()))
    x = _scale(lo, hi)
    rows = []
    for i, (name, q) in enumerate(stats.items()):
        y = TOP + i * ROW + ROW / 2
        ci = summary["providers"].get(name, {}).get("ci", {}).get("delta_chrf")
        rows.append({"name": name, "label": _label(name), "y": y, "q": q,
                     "w_lo": x(q["p10"]), "w_hi": x(q["p90"]), "b_lo": x(q["p25"]), "b_hi": x(q["p75"]),
                     "med": x(q["p50"]), "mean": x(q["mean"]),
                     "ci": [x(ci[0]), x(ci[1])] if ci and None not in ci else None})
    height = TOP + len(rows) * ROW
    return {"width": LEFT + WIDTH + RIGHT, "height": height + 30, "rows": rows, "base": height,
            "ticks": _ticks(lo, hi, x), "left": LEFT, "right": LEFT + WIDTH}


def paired(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One panel per metric: each provider's paired difference from the baseline with its 95% CI, around 0."""
    p = summary.get("paired") or {}
    diffs: dict[str, dict[str, Any]] = p.get("differences") or {}
    panels = []
    for metric in p.get("metrics", []):
        entries = [(name, d[metric]) for name, d in diffs.items() if metric in d]
        if not entries:
            continue
        extent = max(abs(v) for _, d in entries for v in (d["difference"], *(c for c in d["ci"] if c is not None)))
        extent = nice_ceiling(extent * 1.05) if extent > 1e-9 else (10.0 if metric == "delta_chrf" else 0.1)
        x = _scale(-extent, extent, PAIRED_LEFT, PAIRED_WIDTH)
        rows = []
        for i, (name, d) in enumerate(entries):
            lo, hi = d["ci"]
            sign = -1 if metric in LOWER_IS_BETTER else 1
            tone = ("better" if sign * d["difference"] > 0 else "worse") if d["significant"] else "unclear"
            rows.append({"name": name, "label": _label(name, 17), "y": TOP + i * ROW + ROW / 2, "d": d,
                         "x": x(d["difference"]), "lo": x(lo) if lo is not None else None,
                         "hi": x(hi) if hi is not None else None, "tone": tone})
        height = TOP + len(rows) * ROW
        panels.append({"metric": metric, "width": PAIRED_LEFT + PAIRED_WIDTH + PAIRED_RIGHT, "height": height + 30,
                       "rows": rows, "base": height, "zero": x(0.0), "ticks": _ticks(-extent, extent, x, 4),
                       "left": PAIRED_LEFT, "right": PAIRED_LEFT + PAIRED_WIDTH,
                       "digits": 2 if metric == "delta_chrf" else 3})
    return panels


def latency(summary: dict[str, Any], height: int = 60) -> dict[str, Any] | None:
    """Small multiples: one latency histogram per provider over the same bins."""
    h = summary.get("plots", {}).get("latency_ms")
    if not h:
        return None
    edges = h["edges"]
    top = max((c for counts in h["counts"].values() for c in counts), default=0) or 1
    x = _scale(edges[0], edges[-1])
    bw = WIDTH / (len(edges) - 1)
    rows = []
    for i, (name, counts) in enumerate(h["counts"].items()):
        base = TOP + i * (height + 16) + height
        bars = [{"x": LEFT + j * bw, "w": max(bw - 1, 1), "h": c / top * height, "y": base - c / top * height,
                 "count": c, "lo": edges[j], "hi": edges[j + 1], "j": j} for j, c in enumerate(counts)]
        rows.append({"name": name, "label": _label(name), "base": base, "y": base - height / 2, "bars": bars})
    bottom = TOP + len(rows) * (height + 16)
    return {"width": LEFT + WIDTH + RIGHT, "height": bottom + 24, "rows": rows, "base": bottom - 16,
            "ticks": _ticks(edges[0], edges[-1], x), "left": LEFT, "right": LEFT + WIDTH, "top": top}
