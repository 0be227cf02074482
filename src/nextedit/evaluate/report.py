"""The self-contained HTML report (inline CSS, SVG plots, one small filter script) and the console table of a summary."""

from __future__ import annotations

import base64
import hashlib
import math
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
from rich.console import Console
from rich.table import Table

#: Headline metrics of the summary table: (label, JSON pointer below a provider, digits, CI key).
HEADLINE: list[tuple[str, str, int, str | None]] = [
    ("deltaChrF", "means/delta_chrf", 2, "delta_chrf"),
    ("exact-lines F1 (micro)", "micro/exact_lines/f1", 3, "exact_lines_micro_f1"),
    ("exact-lines P (micro)", "micro/exact_lines/precision", 3, None),
    ("exact-lines R (micro)", "micro/exact_lines/recall", 3, None),
    ("reversal ratio", "means/reversal_ratio", 3, "reversal_ratio"),
    ("kept rate", "means/kept_rate", 3, "kept_rate"),
    ("recall rate", "means/recall_rate", 3, "recall_rate"),
    ("no edit predicted", "rates/no_edit_predicted", 3, None),
    ("wrong editable region", "rates/wrong_editable_region", 3, None),
    ("isolated whitespace", "rates/isolated_whitespace", 3, None),
    ("braces disbalance", "means/braces_disbalance", 3, None),
    ("cursor exact match", "rates/cursor_exact_match", 3, None),
    ("location top-1 (±3 lines)", "rates/location_top1", 3, None),
    ("location top-3 (±3 lines)", "rates/location_top3", 3, None),
    ("jumps leading to a correct edit", "rates/jump_correct", 3, None),
]
#: Console columns: (header, JSON pointer below a provider, digits, CI key).
CONSOLE: list[tuple[str, str, int, str | None]] = [
    ("deltaChrF", "means/delta_chrf", 2, "delta_chrf"),
    ("EL-F1", "micro/exact_lines/f1", 3, "exact_lines_micro_f1"),
    ("reversal", "means/reversal_ratio", 3, None),
    ("kept", "means/kept_rate", 3, None),
    ("no-edit", "rates/no_edit_predicted", 2, None),
    ("wrong-ER", "rates/wrong_editable_region", 2, None),
]
HISTOGRAM_TITLES = {"delta_chrf": "deltaChrF", "reversal_ratio": "reversal ratio", "kept_rate": "kept rate",
                    "exact_lines_f1": "exact-lines F1"}
#: The report's only script: the per-example filter. The page's Content-Security-Policy allows exactly this
#: text (by its SHA-256), so nothing else can run even if a value slipped past escaping.
FILTER_JS = """
(function () {
  var prov = document.getElementById("f-provider"), out = document.getElementById("f-outcome");
  var count = document.getElementById("f-count");
  function apply() {
    var p = prov.value, o = out.value, shown = 0;
    document.querySelectorAll(".ex").forEach(function (ex) {
      var hit = false;
      ex.querySelectorAll(".pred").forEach(function (pr) {
        var ok = (p === "*" || pr.dataset.provider === p) &&
                 (o === "*" || pr.dataset.outcome.split(" ").indexOf(o) >= 0);
        pr.classList.toggle("match", ok && (p !== "*" || o !== "*"));
        hit = hit || ok;
      });
      ex.hidden = !hit;
      if (hit) { shown++; }
    });
    count.textContent = String(shown);
  }
  prov.addEventListener("change", apply);
  out.addEventListener("change", apply);
  apply();
})();
"""
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(FILTER_JS.encode()).digest()).decode()


def escape_part(part: Any) -> str:
    """One JSON-pointer reference token (RFC 6901: `~` -> `~0`, `/` -> `~1`)."""
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(*parts: Any) -> str:
    """A JSON pointer from raw parts; a part that already holds `/`-joined tokens is kept as is."""
    return "/" + "/".join(str(p) if isinstance(p, Pointer) else escape_part(p) for p in parts)


class Pointer(str):
    """A pre-joined pointer fragment (its `/` are separators, not part of a name)."""


def resolve(document: Any, ptr: str) -> Any:
    """The value at a JSON pointer (list indices as numbers); KeyError when absent."""
    node = document
    for raw in ptr.lstrip("/").split("/") if ptr not in ("", "/") else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def lookup(document: Any, *parts: Any) -> Any:
    """Like `resolve` on `pointer(*parts)`, but None when the value is absent."""
    try:
        return resolve(document, pointer(*parts))
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def fmt(value: Any, digits: int = 3) -> str:
    """A number as shown in reports ("–" when missing)."""
    if value is None or isinstance(value, str):
        return "–" if value is None else value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nextedit.evaluate", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters["fmt"] = fmt
    env.globals.update(pointer=pointer, lookup=lookup, Pointer=Pointer, max=max, min=min, escape_part=escape_part,
                       headline=HEADLINE, histogram_titles=HISTOGRAM_TITLES,
                       filter_js=markupsafe.Markup(FILTER_JS), script_hash=SCRIPT_HASH)
    return env


def render_html(summary: dict[str, Any], *, title: str = "nextedit evaluation") -> str:
    """The report HTML of a summary JSON (every shown number carries its JSON pointer in `data-ptr`)."""
    from nextedit.evaluate import plots

    summary = {"plots": {}, "paired": {}, "views": {"baseline": None, "total": 0, "examples": []}, **summary}
    return _environment().get_template("report.html.j2").render(
        s=summary, title=title, dist=plots.distribution(summary), paired_panels=plots.paired(summary),
        lat=plots.latency(summary))


def write_report(summary: dict[str, Any], out_dir: str | Path, *, title: str = "nextedit evaluation") -> Path:
    """Write `report.html` into `out_dir`; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_html(summary, title=title), encoding="utf-8")
    tmp.replace(path)
    return path


def console_table(summary: dict[str, Any]) -> Table:
    """A rich table: one row per provider with the headline metrics and 95% CIs."""
    table = Table(title=f"nextedit eval: {summary.get('input') or ''}".strip(), show_lines=False)
    table.add_column("provider", style="bold")
    table.add_column("preds", justify="right")
    columns = CONSOLE
    for label, *_ in columns:
        table.add_column(label, justify="right")
    for name, stats in summary.get("providers", {}).items():
        cells = [name, str(stats["counts"]["predictions"])]
        for _label, key, digits, ci in columns:
            value = lookup(stats, Pointer(key))
            text = fmt(value, digits)
            interval = stats.get("ci", {}).get(ci) if ci else None
            if interval and value is not None:
                text += f" [{fmt(interval[0], digits)}, {fmt(interval[1], digits)}]"
            cells.append(text)
        table.add_row(*cells)
    return table


def print_console(summary: dict[str, Any], console: Console | None = None) -> None:
    """Print the console table and the metric signatures."""
    from nextedit.tables import print_table

    console = console or Console()
    print_table(console_table(summary), console)
    sigs = summary.get("signatures", {})
    for metric in ("delta_chrf", "exact_lines", "reversal", "kept_rate"):
        if metric in sigs:
            sig = sigs[metric] if isinstance(sigs[metric], str) else " ; ".join(sigs[metric])
            console.print(f"  {sig}", style="dim", soft_wrap=True, highlight=False, markup=False)
    console.print("  (all metric signatures are in summary.json)", style="dim")
    failed = summary.get("totals", {}).get("failed_examples")
    if failed:
        console.print(f"warning: {failed} examples failed a stage and are not in these numbers "
                      "(see the .failed.jsonl files in the report folder)", style="yellow", highlight=False)
