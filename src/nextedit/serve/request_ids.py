"""Signed request ids: `<random>.<HMAC(key, random, arm)>`, so an event can only name a request this
service issued, and the arm that served it is read from the id, never from the client."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

__all__ = ["RequestIds"]

_SHAPE = re.compile(r"^(?P<body>[A-Za-z-]*[0-9a-f]{32})\.(?P<sig>[0-9a-f]{32})$")


class RequestIds:
    """Issues and verifies request ids with one HMAC-SHA256 key (random when none is configured)."""

    def __init__(self, key: str | None = None) -> None:
        self._key = key.encode("utf-8") if key else secrets.token_bytes(32)

    def _sign(self, body: str, arm: str) -> str:
        return hmac.new(self._key, f"{body}\x1f{arm}".encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, arm: str, prefix: str = "") -> str:
        """A fresh id for a request served by `arm` (`prefix` e.g. "cmpl-" for OpenAI routes)."""
        body = prefix + secrets.token_hex(16)
        return f"{body}.{self._sign(body, arm)}"

    def arm_of(self, request_id: str, arms: Iterable[str]) -> str | None:
        """The arm among `arms` that this id was issued for, or None (not ours, altered, other key)."""
        m = _SHAPE.match(request_id)
        if not m:
            return None
        for arm in arms:
            if hmac.compare_digest(self._sign(m.group("body"), arm), m.group("sig")):
                return arm
        return None
