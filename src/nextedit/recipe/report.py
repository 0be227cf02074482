"""What a recipe run reports: per eval set a table of providers and the student's paired bootstrap
differences against each of them, and the whole run as Markdown."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nextedit.record import Example


def provider_table(summary: dict[str, Any], scored: Iterable[Example]) -> list[dict[str, Any]]:
    """One row per provider: predictions, parse errors, deltaChrF and its interval, exact-lines F1,
    reversal ratio, no-edit precision and recall, checks passed, and the edits withheld as "no edit" per kind of
    reason (nextedit.predictors.abstain), from the scored examples the summary was built from."""
    from collections import Counter

    from nextedit.metrics.noedit import no_edit_summary
    from nextedit.predictors.abstain import reason_kind

    values: dict[str, list[dict[str, Any]]] = {}
    checks: dict[str, list[int]] = {}
    withheld: dict[str, Counter[str]] = {}
    for ex in scored:
        for s in ex.scores:
            values.setdefault(ex.predictions[s.prediction].provider, []).append(s.values)
        for i, pred in enumerate(ex.predictions):
            if pred.abstained:
                withheld.setdefault(pred.provider, Counter())[reason_kind(pred.abstained)] += 1
            mine = [c for c in ex.checks if c.prediction == i]
            if mine:
                passed, total = checks.get(pred.provider, [0, 0])
                checks[pred.provider] = [passed + all(c.passed for c in mine), total + 1]
    rows = []
    for name, stats in summary.get("providers", {}).items():
        noedit = no_edit_summary(values.get(name, []))
        passed, total = checks.get(name, [0, 0])
        rows.append({
            "provider": name,
            "predictions": stats["counts"]["predictions"],
            "parse_errors": stats["counts"].get("errors", 0),
            "delta_chrf": stats["means"].get("delta_chrf"),
            "delta_chrf_ci": stats.get("ci", {}).get("delta_chrf"),
            "exact_lines_f1": (stats.get("micro", {}).get("exact_lines") or {}).get("f1"),
            "reversal_ratio": stats["means"].get("reversal_ratio"),
            "no_edit_rate": stats.get("rates", {}).get("no_edit_predicted"),
            "no_edit_precision": noedit.silent_precision,
            "no_edit_recall": noedit.silent_recall,
            "checks_passed": passed / total if total else None,
            "withheld": dict(withheld.get(name, Counter()).most_common()),
        })
    return rows


def withheld_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per provider that withheld edits as "no edit": how many, and why."""
    return [f"{r['provider']} withheld {sum(r['withheld'].values())} of its edits as no edit: "
            + ", ".join(f"{why} {n}" for why, n in r["withheld"].items())
            for r in rows if r.get("withheld")]


def differences(summary_path: Path, roles: dict[str, str], resamples: int, seed: int) -> list[dict[str, Any]]:
    """Paired bootstrap differences student - each other provider (deltaChrF, exact-lines F1, reversal)."""
    from nextedit.evaluate.compare import compare

    student = [label for label, role in roles.items() if role == "student"]
    if not student:
        return []
    out = []
    for label, role in roles.items():
        if role == "student":
            continue
        result = compare([summary_path], baseline=label, resamples=resamples, seed=seed,
                         metrics=("delta_chrf", "exact_lines_f1", "reversal_ratio"))
        for d in result["differences"]:
            if d["run"] == student[0]:
                out.append({"against": label, **d["metrics"]})
    return out


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_HEADER = ("| provider | preds | parse errors | deltaChrF [95% CI] | exact-lines F1 | reversal | no-edit | "
                "no-edit P/R | checks passed |")
TABLE_RULE = "|---|---|---|---|---|---|---|---|---|"
DIFF_HEADER = "| student − | ΔdeltaChrF [95% CI] | Δexact-lines F1 [95% CI] | Δreversal [95% CI] |"


def render_markdown(name: str, result: Any) -> str:
    """The run's summary as Markdown: corpus, filters, split, training, and per eval set the providers'
    table and the student's paired differences."""
    lines = [f"# recipe {name}", ""]
    repos = result.counts.get("repositories", {})
    if repos:
        lines += ["| repository | commits | examples | filtered | mining s |", "|---|---|---|---|---|"]
        for repo, c in repos.items():
            filtered = ", ".join(f"{k} {v}" for k, v in sorted(c["filtered"].items(), key=lambda kv: -kv[1])) or "-"
            lines.append(f"| {repo} | {c['commits']} | {c['examples']} | {filtered} | {c['seconds']} |")
        lines.append("")
    filters = result.counts.get("filters", {})
    for key, title in (("filtered", "examples filtered"), ("skipped_files", "files skipped"),
                       ("skipped_commits", "commits skipped")):
        if filters.get(key):
            lines.append(f"{title}: " + ", ".join(f"{k} {v}" for k, v in
                                                   sorted(filters[key].items(), key=lambda kv: -kv[1])))
    splits = {k[6:]: v for k, v in result.counts.items() if k.startswith("split_")}
    if splits:
        lines += ["", "split by repository: " + "; ".join(
            f"{k} {v['examples']} ({', '.join(v['repos'])})" for k, v in splits.items())]
    if result.train:
        t = result.train
        lines += ["", (f"training: {t.get('method')} on {t.get('train_rows')} rows, {t.get('steps')} steps, "
                       f"held-out loss {_f(t.get('eval_loss_before'), 3)} -> {_f(t.get('eval_loss_after'), 3)}, "
                       f"{_f(t.get('seconds'), 0)} s")]
    for set_name, ev in result.evals.items():
        lines += ["", f"## {set_name} ({ev['examples']} examples)", "", TABLE_HEADER, TABLE_RULE]
        for r in ev["table"]:
            ci = r["delta_chrf_ci"]
            chrf = _f(r["delta_chrf"]) + (f" [{_f(ci[0])}, {_f(ci[1])}]" if ci else "")
            lines.append(f"| {r['provider']} | {r['predictions']} | {r['parse_errors']} | {chrf} | "
                         f"{_f(r['exact_lines_f1'], 3)} | {_f(r['reversal_ratio'], 3)} | {_f(r['no_edit_rate'])} | "
                         f"{_f(r['no_edit_precision'])}/{_f(r['no_edit_recall'])} | {_f(r['checks_passed'])} |")
        withheld = withheld_lines(ev["table"])
        if withheld:
            lines += ["", *withheld]
        if ev["differences"]:
            lines += ["", DIFF_HEADER, "|---|---|---|---|"]
            for d in ev["differences"]:
                cells = []
                for m in ("delta_chrf", "exact_lines_f1", "reversal_ratio"):
                    v = d.get(m)
                    cells.append("-" if v is None else f"{_f(v['difference'], 3)} [{_f(v['ci'][0], 3)}, "
                                 f"{_f(v['ci'][1], 3)}]" + (" *" if v["significant"] else ""))
                lines.append(f"| {d['against']} | " + " | ".join(cells) + " |")
            lines.append("")
            lines.append("\\* the paired 95% interval excludes 0")
    if result.notes:
        lines += ["", *(f"- {n}" for n in result.notes)]
    timings = ", ".join(f"{k} {v} s" for k, v in result.timings.items())
    lines += ["", f"time: {result.seconds:.0f} s ({timings})", ""]
    return "\n".join(lines)
