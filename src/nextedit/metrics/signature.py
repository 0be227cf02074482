"""Metric signatures: versioned strings that say exactly how a score was computed (sacrebleu style)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Signature", "SignatureError", "parse_signature"]


class SignatureError(ValueError):
    """A signature string that does not follow `name:version|key=value|...`."""


@dataclass(frozen=True)
class Signature:
    """A parsed signature: metric name, version and parameters, e.g. `delta_chrf:v3|n=6|beta=0.5`."""

    name: str
    version: str
    params: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "|".join([f"{self.name}:{self.version}", *(f"{k}={v}" for k, v in self.params.items())])


def parse_signature(text: str) -> Signature:
    """Parse `name:version|key=value|...` (parameter order is kept); raise SignatureError otherwise."""
    head, *rest = text.strip().split("|")
    name, sep, version = head.partition(":")
    if not sep or not name or not version:
        raise SignatureError(f"signature {text!r}: expected 'name:version' before the first '|'")
    params: dict[str, str] = {}
    for part in rest:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SignatureError(f"signature {text!r}: parameter {part!r} is not key=value")
        params[key] = value
    return Signature(name, version, params)
