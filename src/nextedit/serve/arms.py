"""Arm assignment: sticky by hashed user id for live arms, sampled by request for shadow arms."""

from __future__ import annotations

import hashlib

from nextedit.serve.config import ArmConfig, ServeConfig


def unit_hash(*parts: str) -> float:
    """A uniform number in [0, 1) from the SHA-256 of the parts (stable across processes and machines)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(config: ServeConfig, user_id: str, preferred: str | None = None) -> ArmConfig:
    """The live arm serving `user_id`: the preferred arm when it names a live arm, else by hash.

    Users are laid out on [0, 1) by hash(salt, user id) and arms take consecutive intervals in
    config order, so a user keeps their arm for as long as shares and order stay the same, and
    moving share from one arm to the next moves only the users at the boundary.
    """
    live = [a for a in config.arms if not a.shadow]
    if preferred:
        chosen = next((a for a in live if a.name == preferred), None)
        if chosen is not None:
            return chosen
    point = unit_hash(config.salt, "user", user_id)
    edge = 0.0
    for arm in live:
        edge += arm.share
        if point < edge:
            return arm
    return live[-1]


def shadow_arms(config: ServeConfig, request_id: str, live: ArmConfig) -> list[ArmConfig]:
    """The shadow arms that also run on this request (each samples `share` of requests)."""
    return [a for a in config.arms
            if a.shadow and a.name != live.name and unit_hash(config.salt, "shadow", a.name, request_id) < a.share]
