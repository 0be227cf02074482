"""A simulated feedback loop: scripted users drive a real `nextedit serve` over HTTP, their events become a
feedback dataset, KTO/DPO train new students, and held-out users measure them offline and online.

A scripted user asks for a prediction at each of their examples, accepts it when it matches the
example's mined next edit (deltaChrF against it at least `accept_threshold`), rejects it otherwise,
flips that decision with probability `noise`, and leaves it undecided with probability `ignore`; then
the region settles to the mined edit (so an accepted prediction that was not quite right is touched up).
Decisions are a pure function of (seed, user, example, predicted region): the same prediction gets the
same decision in every phase, so arms are compared on identical users and draws.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from nextedit import patch as patchlib
from nextedit.evaluate import bootstrap
from nextedit.metrics.chrf import delta_chrf
from nextedit.record import Example

__all__ = ["Interaction", "LoopConfig", "Policy", "SimUser", "acceptance", "drive", "expected_region",
           "make_users", "run_loop"]

API_KEY = "sim-key"


class Policy(BaseModel):
    """How scripted users decide."""

    accept_threshold: float = Field(50.0, ge=0, le=100, description="deltaChrF against the mined edit at or "
                                    "above which a user accepts")
    noise: float = Field(0.1, ge=0, le=1, description="chance a decision is flipped")
    ignore: float = Field(0.05, ge=0, le=1, description="chance a shown prediction gets no decision")
    quiet_s: float = 10.0
    seed: int = 0


@dataclass
class SimUser:
    """A scripted user and the examples they will edit."""

    id: str
    examples: list[Example]


@dataclass
class Interaction:
    """One predict request of a scripted user and what they did with the answer."""

    user: str
    example: str
    arm: str
    request_id: str
    shown: bool
    outcome: str | None  # accepted | rejected | ignored | None (nothing shown)
    match: float | None  # deltaChrF of the prediction against the mined edit
    region: str | None = None  # the editable region the prediction proposes (None: nothing shown)


def expected_region(example: Example) -> str | None:
    """The editable region after the example's (first) mined edit; the region itself when it expects no
    edit; None when the edit reaches outside the editable region."""
    snap = example.snapshot
    editable = snap.editable or (0, len(snap.text))
    if not example.expected:
        return snap.text[editable[0]:editable[1]]
    try:
        return patchlib.to_region(example.expected[0], snap.text, editable, start_line=snap.start_line)[1]
    except patchlib.PatchError:
        return None


def make_users(examples: Sequence[Example], n_users: int, seed: int = 0) -> list[SimUser]:
    """`n_users` users sharing the usable examples (a seeded shuffle dealt round robin)."""
    usable = [ex for ex in examples if expected_region(ex) is not None]
    random.Random(seed).shuffle(usable)
    users = [SimUser(f"sim-user-{i:03d}", []) for i in range(n_users)]
    for i, ex in enumerate(usable):
        users[i % n_users].examples.append(ex)
    return [u for u in users if u.examples]


def _draw(policy: Policy, *parts: str) -> random.Random:
    digest = hashlib.sha256("\x00".join((str(policy.seed), *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def decide(policy: Policy, user: str, example: Example, region: str) -> tuple[str, float, float]:
    """(outcome, seconds to decide, match) for a shown prediction whose editable region is `region`."""
    snap = example.snapshot
    start, end = snap.editable or (0, len(snap.text))
    want = expected_region(example)
    assert want is not None
    match = delta_chrf(snap.text, snap.text[:start] + want + snap.text[end:],
                       snap.text[:start] + region + snap.text[end:]).score
    rng = _draw(policy, user, example.id, region)
    accept = match >= policy.accept_threshold
    if rng.random() < policy.noise:
        accept = not accept
    if rng.random() < policy.ignore:
        return "ignored", 0.0, match
    return ("accepted" if accept else "rejected"), rng.uniform(0.3, 1.5) if accept else rng.uniform(0.5, 3.0), match


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def drive(url: str, users: Sequence[SimUser], policy: Policy, *, arm: str | None = None,
          api_key: str = API_KEY, progress: Callable[[int], None] | None = None) -> list[Interaction]:
    """Every user's examples through POST /v1/predict (asking for `arm` when given), then the user's
    shown / accepted / rejected / settled events through POST /v1/events (collectable, open source)."""
    import httpx

    out: list[Interaction] = []
    headers = {"Authorization": f"Bearer {api_key}"}
    clock = datetime.now(UTC)
    done = 0
    with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
        for user in users:
            for ex in user.examples:
                body = {"snapshot": ex.snapshot.model_dump(mode="json"), "user_id": user.id,
                        "client_id": f"{user.id}-{arm or 'assigned'}", "collectable": True, "open_source": True,
                        "arm": arm, "trigger": "simulation",
                        "source": {"repo": ex.source.repo, "revision": ex.source.revision,
                                   "license": ex.source.license}}
                answer = client.post("/v1/predict", json=body)
                answer.raise_for_status()
                data = answer.json()
                rid, pred = data["request_id"], data["prediction"]
                served = data["arm"]
                clock += timedelta(seconds=30)
                if pred is None:
                    out.append(Interaction(user.id, ex.id, served, rid, False, None, None))
                else:
                    snap = ex.snapshot
                    region = patchlib.to_region(pred["patch"], snap.text, snap.editable or (0, len(snap.text)),
                                                start_line=snap.start_line)[1]
                    outcome, wait, match = decide(policy, user.id, ex, region)
                    events = [{"type": "shown", "at": _iso(clock)}]
                    if outcome != "ignored":
                        events.append({"type": outcome, "at": _iso(clock + timedelta(seconds=wait)),
                                       **({"reason": "discarded"} if outcome == "rejected" else {})})
                    events.append({"type": "settled", "settled_text": expected_region(ex), "collectable": True,
                                   "quiet_s": policy.quiet_s, "at": _iso(clock + timedelta(seconds=wait + 12))})
                    for ev in events:
                        client.post("/v1/events", json={"request_id": rid, **ev}).raise_for_status()
                    out.append(Interaction(user.id, ex.id, served, rid, True, outcome, match, region))
                done += 1
                if progress is not None:
                    progress(done)
    return out


def acceptance(interactions: Sequence[Interaction], arms: Sequence[str], baseline: str, *,
               resamples: int = bootstrap.DEFAULT_RESAMPLES, seed: int = bootstrap.DEFAULT_SEED) -> dict[str, Any]:
    """Per arm: requests, shown, accepted, acceptance (accepted / shown) and accepted per request, each with
    a 95% interval over users, and the paired difference to `baseline` (same users, same examples)."""
    per: dict[str, dict[str, dict[str, float]]] = {a: defaultdict(lambda: defaultdict(float)) for a in arms}
    for it in interactions:
        if it.arm in per:
            row = per[it.arm][it.user]
            row["requests"] += 1
            row["shown"] += it.shown
            row["accepted"] += it.outcome == "accepted"
    users = sorted(set.intersection(*(set(per[a]) for a in arms))) if arms else []

    def col(arm: str, key: str) -> np.ndarray:
        return np.array([per[arm][u][key] for u in users], dtype=float)

    out: dict[str, Any] = {"users": len(users), "baseline": baseline, "arms": {}, "resamples": resamples}
    for arm in arms:
        req, shown, acc = col(arm, "requests"), col(arm, "shown"), col(arm, "accepted")
        entry: dict[str, Any] = {"requests": int(req.sum()), "shown": int(shown.sum()), "accepted": int(acc.sum()),
                                 "acceptance": float(acc.sum() / shown.sum()) if shown.sum() else None,
                                 "acceptance_ci": bootstrap.ratio_ci(acc, shown, resamples=resamples, seed=seed),
                                 "accepted_per_request": float(acc.sum() / req.sum()) if req.sum() else None,
                                 "accepted_per_request_ci": bootstrap.ratio_ci(acc, req, resamples=resamples,
                                                                               seed=seed)}
        if arm != baseline:
            b_shown, b_acc, b_req = col(baseline, "shown"), col(baseline, "accepted"), col(baseline, "requests")
            if entry["acceptance"] is not None and b_shown.sum():
                entry["acceptance_diff"] = entry["acceptance"] - float(b_acc.sum() / b_shown.sum())
                entry["acceptance_diff_ci"] = bootstrap.ratio_difference_ci(acc, shown, b_acc, b_shown,
                                                                           resamples=resamples, seed=seed)
            entry["accepted_per_request_diff"] = float((acc.sum() - b_acc.sum()) / b_req.sum()) if b_req.sum() \
                else None
            entry["accepted_per_request_diff_ci"] = bootstrap.ratio_ci(acc - b_acc, b_req, resamples=resamples,
                                                                       seed=seed)
        out["arms"][arm] = entry
    return out


class LoopConfig(BaseModel):
    """Sizes and settings of one simulated loop."""

    users: int = Field(24, ge=2)
    eval_users: float = Field(0.3, gt=0, lt=1, description="fraction of users held out (by the export's hash)")
    methods: list[str] = Field(default_factory=lambda: ["kto", "dpo"])
    policy: Policy = Field(default_factory=Policy)
    predictor_options: dict[str, Any] = Field(default_factory=dict, description="options of the local arms")
    preference: dict[str, Any] = Field(default_factory=dict, description="[preference] settings of training")
    max_length: int = 1024
    deadline_ms: float = 600_000.0
    resamples: int = 1000
    seed: int = 0


@dataclass
class LoopResult:
    """What one simulated loop measured."""

    users: dict[str, list[str]]
    collection: dict[str, Any]
    export: list[str]
    training: dict[str, dict[str, Any]]
    offline: dict[str, Any]
    online: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    interactions: list[dict[str, Any]] = field(default_factory=list)


def _serve_config(store: Path, arms: list[tuple[str, str]], loop: LoopConfig) -> Any:
    from nextedit.serve.config import ServeConfig

    return ServeConfig.model_validate({
        "store": str(store), "shared": "memory", "deadline_ms": loop.deadline_ms,
        "auth": {"api_keys": [API_KEY]},
        "arms": [{"name": name, "backend": backend, "model_version": name, "share": 1.0 if i == 0 else 0.0,
                  "options": loop.predictor_options} for i, (name, backend) in enumerate(arms)]})


def _split_salt(users: Sequence[SimUser], fraction: float) -> str:
    """The first salt `sim-N` whose hash split leaves users on both sides."""
    from nextedit.feedback.export import eval_user, user_key

    for n in range(1000):
        salt = f"sim-{n}"
        held = [eval_user(user_key(u.id, None, ""), fraction, salt) for u in users]
        if any(held) and not all(held):
            return salt
    raise ValueError("no split salt puts users on both sides")


def run_loop(examples: Sequence[Example], student: Path, work: Path, loop: LoopConfig, *,
             say: Callable[[str], None] = lambda s: None) -> LoopResult:
    """Collect events from every simulated user on the SFT student, export them split by user, train each
    method on the training users' records, then evaluate the new students online (the held-out users on
    arms of a real server) and offline (`feedback eval`'s metrics on the held-out users' records)."""
    from nextedit.feedback.export import (
        ExportStats,
        eval_user,
        export_feedback,
        user_key,
    )
    from nextedit.feedback.offline import Answer, evaluate_answers, recorded_answer
    from nextedit.jsonl import JsonlWriter
    from nextedit.serve.store import open_store
    from nextedit.serve.testing import ServerThread
    from nextedit.train.config import TrainConfig
    from nextedit.train.sft import train

    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    users = make_users(examples, loop.users, loop.seed)
    salt = _split_salt(users, loop.eval_users)
    held = {u.id for u in users if eval_user(user_key(u.id, None, ""), loop.eval_users, salt)}
    eval_users = [u for u in users if u.id in held]
    say(f"{len(users)} simulated users ({len(held)} held out), {sum(len(u.examples) for u in users)} examples")

    t0 = time.monotonic()
    with ServerThread(_serve_config(work / "events.db", [("sft", f"local:{student}")], loop)) as server:
        collected = drive(server.url, users, loop.policy)
    seconds["collect"] = time.monotonic() - t0
    say(f"collected {len(collected)} requests in {seconds['collect']:.0f} s")

    t0 = time.monotonic()
    stats = ExportStats()
    train_file, eval_file = work / "feedback.jsonl", work / "feedback.eval.jsonl"
    eval_records = []
    with JsonlWriter(train_file) as tw, JsonlWriter(eval_file) as ew:
        for rec in export_feedback(open_store(work / "events.db"), eval_users=loop.eval_users, salt=salt,
                                   stats=stats):
            (ew if rec.split == "eval" else tw).write(rec.model_dump(mode="json"))
            if rec.split == "eval":
                eval_records.append(rec)
    seconds["export"] = time.monotonic() - t0
    for line in stats.lines():
        say(line)

    training: dict[str, dict[str, Any]] = {}
    models: dict[str, Path] = {}
    for method in loop.methods:
        t0 = time.monotonic()
        config = TrainConfig.model_validate({
            "base_model": str(student), "output_dir": str(work / method), "method": method,
            "data": {"train": str(train_file), "max_length": loop.max_length},
            "preference": {"seed": loop.seed, **loop.preference}})
        result = train(config)
        seconds[f"train {method}"] = time.monotonic() - t0
        training[method] = {"steps": result.steps, "loss_first": result.train_loss_first,
                            "loss_last": result.train_loss_last, **(result.preference or {})}
        models[method] = Path(result.exported["merged"])
        say(f"{method}: {result.steps} steps in {seconds[f'train {method}']:.0f} s")

    t0 = time.monotonic()
    new_rows: list[Interaction] = []
    arms = [("sft", f"local:{student}"), *((m, f"local:{p}") for m, p in models.items())]
    with ServerThread(_serve_config(work / "eval-events.db", arms, loop)) as server:
        for method in models:
            new_rows += drive(server.url, eval_users, loop.policy, arm=method)
    seconds["online eval"] = time.monotonic() - t0
    # The SFT arm's answers for the held-out users are those of the collection (same model, greedy, same draws).
    online_rows = [it for it in collected if it.user in held] + new_rows
    online = acceptance(online_rows, ["sft", *models], "sft", resamples=loop.resamples, seed=loop.seed)
    # Offline: `feedback eval`'s metrics on the held-out users' records. Each new student's answer for a record
    # is its (greedy, deterministic) answer to the same snapshot in the online phase: no second generation.
    by_example = {(it.user, it.example, it.arm): it for it in new_rows}
    example_of = {it.request_id: (it.user, it.example) for it in collected}
    answers = {"sft (recorded)": [recorded_answer(r) for r in eval_records]}
    for method in models:
        answers[method] = []
        for rec in eval_records:
            it = by_example.get((*example_of[rec.request_id], method))
            answers[method].append(Answer(it.region if it is not None and it.region is not None else rec.original))
    offline = evaluate_answers(eval_records, answers, current="sft (recorded)", resamples=loop.resamples,
                               seed=loop.seed) if eval_records else {}
    return LoopResult(users={"train": [u.id for u in users if u.id not in held], "eval": sorted(held)},
                      collection=acceptance(collected, ["sft"], "sft", resamples=loop.resamples, seed=loop.seed),
                      export=stats.lines(), training=training, offline=offline, online=online, seconds=seconds,
                      interactions=[asdict(i) for i in (*collected, *new_rows)])
