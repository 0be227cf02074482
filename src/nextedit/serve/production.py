"""Per-arm production figures from the event store: acceptance, kept rate, latency, verdicts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from nextedit.serve.config import ServeConfig
from nextedit.serve.stats import (
    Difference,
    RatioEstimate,
    cluster_bootstrap_diff,
    compare_ratios,
    percentile,
    ratio_delta,
    sample_ratio_mismatch,
)
from nextedit.serve.store import EventStore

SRM_ALPHA = 0.001


@dataclass
class _User:
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    rejected: int = 0
    settled: int = 0
    kept_bytes: float = 0.0
    candidate_bytes: float = 0.0
    latencies: list[float] = field(default_factory=list)


@dataclass
class _Arm:
    users: dict[str, _User] = field(default_factory=lambda: defaultdict(_User))
    model_versions: set[str] = field(default_factory=set)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    input_tokens: int = 0
    output_tokens: int = 0
    reversal: list[float] = field(default_factory=list)
    syntax_delta: list[int] = field(default_factory=list)
    reject_reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    agreement: list[bool] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    partial: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    jumps: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _jump_key(kind: str, reason: str | None) -> str:
    """Which jump count an event about a jump adds to: shown, taken (the user went there), applied (the edit
    there was accepted) or rejected."""
    if kind == "accepted":
        return "taken" if reason == "goto" else "applied"
    return kind


@dataclass
class ArmReport:
    """Everything the report and the dashboard show for one arm."""

    name: str
    control: bool
    shadow: bool
    share: float | None
    model_versions: list[str]
    users: int
    requests: int
    shown: int
    accepted: int
    rejected: int
    settled: int
    outcomes: dict[str, int]
    acceptance: RatioEstimate
    kept: RatioEstimate
    shown_per_request: RatioEstimate
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None
    input_tokens_per_request: float | None
    output_tokens_per_request: float | None
    no_edit_rate: float | None
    reversal_rate: float | None
    mean_reversal_ratio: float | None
    syntax_error_delta: float | None
    reject_reasons: dict[str, int]
    agreement_with_live: float | None
    acceptance_vs_control: Difference | None = None
    acceptance_bootstrap: tuple[float, float] | None = None
    kept_vs_control: Difference | None = None
    verdict: str = "control"
    #: Accepted predictions whose acceptance was partial ("word" / "line" -> count); they count as
    #: accepted, and their kept rate comes from the settled text like every other.
    partial_accepted: dict[str, int] = field(default_factory=dict)
    #: "Go to next predicted edit" (events marked `jump`, not counted above): shown, taken (the user went
    #: there), applied (the edit there was accepted), rejected; and taken / shown.
    jumps: dict[str, int] = field(default_factory=dict)
    jump_acceptance: float | None = None


@dataclass
class ProductionReport:
    """The production report: per-arm figures, the sample-ratio check and the verdict method."""

    since: str | None
    generated_at: str
    control: str | None
    arms: list[ArmReport]
    srm_p: float | None
    srm_ok: bool
    events: int
    #: Prediction attempts the editors ended without a prediction, by reason (`skipped` events), all arms.
    skipped: dict[str, int] = field(default_factory=dict)
    method: str = ("acceptance = accepted / shown, ratio of sums over users; 95% interval by the delta method "
                   "with users as clusters (cluster bootstrap shown as a check); fixed horizon, so decide the "
                   "end date before reading the verdict")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data."""
        return asdict(self)


def _rate(num: float, den: float) -> float | None:
    return num / den if den else None


def production_report(store: EventStore, config: ServeConfig | None = None, since: str | None = None) -> ProductionReport:
    """Aggregate the store's events (from `since`, ISO date or time) into a per-arm report."""
    arms: dict[str, _Arm] = defaultdict(_Arm)
    shadow_names: set[str] = set()
    skipped: dict[str, int] = defaultdict(int)
    n_events = 0
    for ev in store.events(since=since):
        n_events += 1
        p = ev.payload
        arm_name, kind = p.get("arm"), p.get("type")
        if kind == "skipped":
            for reason, n in (p.get("counts") or {}).items():
                skipped[str(reason)] += int(n)
            continue
        if not arm_name:
            continue
        arm = arms[arm_name]
        if p.get("model_version"):
            arm.model_versions.add(str(p["model_version"]))
        user = str(p.get("user_id") or "?")
        if kind in ("predicted", "shadow"):
            if kind == "shadow":
                shadow_names.add(arm_name)
                if p.get("agrees_with_live") is not None:
                    arm.agreement.append(bool(p["agrees_with_live"]))
            u = arm.users[user]
            u.requests += 1
            outcome = p.get("outcome") or "ok"
            arm.outcomes[outcome] += 1
            if p.get("total_ms") is not None:
                u.latencies.append(float(p["total_ms"]))
                arm.latencies.append(float(p["total_ms"]))
            arm.input_tokens += int(p.get("input_tokens") or 0)
            arm.output_tokens += int(p.get("output_tokens") or 0)
            if p.get("reversal_ratio") is not None:
                arm.reversal.append(float(p["reversal_ratio"]))
        elif kind in ("shown", "accepted", "rejected") and p.get("jump"):
            arm.jumps[_jump_key(kind, p.get("reason"))] += 1
        elif kind in ("shown", "accepted", "rejected", "settled"):
            u = arm.users[user]
            setattr(u, kind, getattr(u, kind) + 1)
            if kind == "rejected":
                arm.reject_reasons[str(p.get("reason") or "rejected")] += 1
            if kind == "accepted" and p.get("partial"):
                arm.partial[str(p["partial"])] += 1
            if kind == "settled" and p.get("kept"):
                u.kept_bytes += float(p["kept"].get("kept_bytes") or 0)
                u.candidate_bytes += float(p["kept"].get("candidate_bytes") or 0)
            before, after = p.get("syntax_errors_before"), p.get("syntax_errors_after")
            if before is not None and after is not None:
                arm.syntax_delta.append(int(after) - int(before))

    configured = {a.name: a for a in config.arms} if config else {}
    control_name = config.control.name if config else None
    names = list(configured) + sorted(n for n in arms if n not in configured)
    per_user: dict[str, list[_User]] = {}
    reports: list[ArmReport] = []
    for name in names:
        arm = arms.get(name) or _Arm()
        cfg = configured.get(name)
        users = list(arm.users.values())
        per_user[name] = users
        requests = sum(u.requests for u in users)
        shown = sum(u.shown for u in users)
        answered = sum(v for k, v in arm.outcomes.items() if k in ("ok", "empty"))
        reports.append(ArmReport(
            name=name, control=name == control_name, shadow=bool(cfg.shadow) if cfg else name in shadow_names,
            share=cfg.share if cfg else None, model_versions=sorted(arm.model_versions),
            users=len(users), requests=requests, shown=shown, accepted=sum(u.accepted for u in users),
            rejected=sum(u.rejected for u in users), settled=sum(u.settled for u in users),
            outcomes=dict(arm.outcomes),
            acceptance=ratio_delta([u.accepted for u in users], [u.shown for u in users]),
            kept=ratio_delta([u.kept_bytes for u in users], [u.candidate_bytes for u in users]),
            shown_per_request=ratio_delta([u.shown for u in users], [u.requests for u in users]),
            latency_p50=percentile(arm.latencies, 50), latency_p90=percentile(arm.latencies, 90),
            latency_p99=percentile(arm.latencies, 99),
            input_tokens_per_request=_rate(arm.input_tokens, requests),
            output_tokens_per_request=_rate(arm.output_tokens, requests),
            no_edit_rate=_rate(arm.outcomes.get("empty", 0), answered),
            reversal_rate=_rate(sum(1 for r in arm.reversal if r > 0.5), len(arm.reversal)),
            mean_reversal_ratio=_rate(sum(arm.reversal), len(arm.reversal)),
            syntax_error_delta=_rate(sum(arm.syntax_delta), len(arm.syntax_delta)),
            reject_reasons=dict(arm.reject_reasons),
            agreement_with_live=_rate(sum(arm.agreement), len(arm.agreement)),
            partial_accepted=dict(arm.partial),
            jumps=dict(arm.jumps), jump_acceptance=_rate(arm.jumps.get("taken", 0), arm.jumps.get("shown", 0)),
        ))
    if control_name is None:
        control_name = next((r.name for r in reports if not r.shadow), None)
        for r in reports:
            r.control = r.name == control_name
    live = [r for r in reports if not r.shadow]
    srm_p = None
    if config and len(live) > 1:
        srm_p = sample_ratio_mismatch([r.users for r in live], [r.share or 0.0 for r in live])
    srm_ok = srm_p is None or srm_p >= SRM_ALPHA
    control = next((r for r in reports if r.name == control_name), None)
    for r in reports:
        if r.shadow:
            r.verdict = "shadow"
        elif r is control:
            r.verdict = "control"
        elif control is not None:
            r.acceptance_vs_control = compare_ratios(r.acceptance, control.acceptance)
            r.kept_vs_control = compare_ratios(r.kept, control.kept)
            cu, tu = per_user[control.name], per_user[r.name]
            r.acceptance_bootstrap = cluster_bootstrap_diff(
                [u.accepted for u in tu if u.shown], [u.shown for u in tu if u.shown],
                [u.accepted for u in cu if u.shown], [u.shown for u in cu if u.shown])
            r.verdict = r.acceptance_vs_control.verdict if srm_ok else "no verdict (sample ratio mismatch)"
    generated = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return ProductionReport(since=since, generated_at=generated, control=control_name, arms=reports,
                            srm_p=srm_p, srm_ok=srm_ok, events=n_events, skipped=dict(sorted(skipped.items())))
