"""Secret scrubbing for text sent to LLM providers: detect-secrets plus nextedit's own patterns.

A `Scrubber` replaces each secret with a placeholder of its kind (`<SECRET_AWS_KEY_1>`); the same
value always gets the same placeholder within one Scrubber, so a whole conversation (teacher
prompt, repair message) stays consistent, and `unscrub` turns a model's answer back into the real
text before a patch is computed. detect-secrets (Yelp, maintained) supplies the provider-specific
detectors, the keyword detector (`password = "..."`) and the high-entropy string detectors; the
patterns below add private-key blocks, passwords in connection strings and API-key formats it
does not know (Anthropic, OpenAI project keys, Google, Hugging Face, bearer tokens).
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from dataclasses import dataclass

__all__ = ["PATTERNS", "Finding", "Scrubber", "find_secrets", "scrub"]

#: nextedit's own detectors: kind -> regex; the named group `s` (else the whole match) is the secret.
PATTERNS: dict[str, re.Pattern[str]] = {
    "PRIVATE_KEY": re.compile(
        r"(?P<s>-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z))"),
    "PASSWORD": re.compile(  # scheme://user:password@host
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]*:(?P<s>[^\s@'\"/]+)@"),
    "CONNECTION_PASSWORD": re.compile(  # Server=...;Password=...; (ADO/JDBC/ODBC style)
        r"(?i)(?:^|[;\"'\s])(?:password|pwd)\s*=\s*(?P<s>[^;\"'\s(),]+)(?=;|[\"'])"),
    "ANTHROPIC_KEY": re.compile(r"\b(?P<s>sk-ant-[A-Za-z0-9_\-]{20,})"),
    "OPENAI_KEY": re.compile(r"\b(?P<s>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,})"),
    "GOOGLE_KEY": re.compile(r"\b(?P<s>AIza[0-9A-Za-z_\-]{35})"),
    "HUGGINGFACE_TOKEN": re.compile(r"\b(?P<s>hf_[A-Za-z0-9]{30,})"),
    "BEARER_TOKEN": re.compile(r"(?i)\bbearer\s+(?P<s>[A-Za-z0-9_\-.=+/]{20,})"),
}

#: A literal each pattern's matches contain (lower-cased text): the regex runs only when it is there.
_GUARDS = {"PRIVATE_KEY": "private key", "PASSWORD": "://", "CONNECTION_PASSWORD": ("password", "pwd"),
           "ANTHROPIC_KEY": "sk-ant-", "OPENAI_KEY": "sk-", "GOOGLE_KEY": "aiza", "HUGGINGFACE_TOKEN": "hf_",
           "BEARER_TOKEN": "bearer"}

#: detect-secrets type -> placeholder kind.
_KINDS = {
    "AWS Access Key": "AWS_KEY", "Secret Keyword": "SECRET", "Private Key": "PRIVATE_KEY",
    "Basic Auth Credentials": "PASSWORD", "GitHub Token": "GITHUB_TOKEN", "GitLab Token": "GITLAB_TOKEN",
    "Slack Token": "SLACK_TOKEN", "Stripe Access Key": "STRIPE_KEY", "JSON Web Token": "JWT",
    "OpenAI Token": "OPENAI_KEY", "Base64 High Entropy String": "HIGH_ENTROPY",
    "Hex High Entropy String": "HIGH_ENTROPY", "NPM tokens": "NPM_TOKEN", "PyPI Token": "PYPI_TOKEN",
    "SendGrid API Key": "SENDGRID_KEY", "Twilio API Key": "TWILIO_KEY", "Discord Bot Token": "DISCORD_TOKEN",
    "Telegram Bot Token": "TELEGRAM_TOKEN", "Azure Storage Account access key": "AZURE_KEY",
}
_ENTROPY_TYPES = {"Base64 High Entropy String", "Hex High Entropy String"}
_SKIPPED_PLUGINS = {"IPPublicDetector"}  # a public IP address in code is not a secret
_PLACEHOLDER = re.compile(r"<SECRET_[A-Z0-9_]+_\d+>")
_MIN_GLOBAL = 8  # known values at least this long are replaced wherever they occur

_lock = threading.Lock()
_configured = False


@dataclass(frozen=True)
class Finding:
    """One secret: where it is in the text, its kind and its value."""

    start: int
    end: int
    kind: str
    value: str


def _configure() -> None:
    """Enable detect-secrets' plugins (its settings are process-global) once."""
    global _configured
    with _lock:
        if _configured:
            return
        from detect_secrets.core.plugins.util import (
            get_mapping_from_secret_type_to_class,
        )
        from detect_secrets.settings import configure_settings_from_baseline

        plugins = [{"name": cls.__name__} for cls in get_mapping_from_secret_type_to_class().values()
                   if cls.__name__ not in _SKIPPED_PLUGINS]
        configure_settings_from_baseline({"plugins_used": plugins})
        _configured = True


def _plugin_regexes() -> dict[str, list[re.Pattern[str]]]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    out: dict[str, list[re.Pattern[str]]] = {}
    for secret_type, cls in get_mapping_from_secret_type_to_class().items():
        denylist = getattr(cls, "denylist", None)
        if denylist:
            out[secret_type] = list(denylist)
    return out


_REGEXES: dict[str, list[re.Pattern[str]]] | None = None


def _spans_of(secret_type: str, value: str, line: str) -> list[tuple[int, int]]:
    """Where a detect-secrets finding sits in its line. Regex detectors report a capture group that
    may be only a prefix (GitHub's `ghp`): their own regexes are rerun to find the whole token."""
    global _REGEXES
    if _REGEXES is None:
        _REGEXES = _plugin_regexes()
    spans: list[tuple[int, int]] = []
    for rx in _REGEXES.get(secret_type, ()):
        for m in rx.finditer(line):
            groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i)]
            best = max(groups, key=lambda i: len(m.group(i)), default=0)
            g = best if best and len(m.group(best)) >= 8 else 0
            spans.append(m.span(g))
    if spans:
        return spans
    if not value:
        return []
    at = line.find(value)
    while at >= 0:
        spans.append((at, at + len(value)))
        at = line.find(value, at + len(value))
    return spans


def _detect(line: str) -> list[tuple[str, str]]:
    """(type, value) of detect-secrets findings in one line: its plugins and false-positive filters,
    like `detect_secrets.core.scan.scan_line` but without "eager search" (which flags every word)."""
    from detect_secrets.core import scan as ds

    _configure()
    ds.get_settings().disable_filters("detect_secrets.filters.common.is_invalid_file")
    context = ds.get_code_snippet(lines=[line], line_number=1)
    found = []
    for plugin in ds.get_plugins():
        for secret in ds._scan_line(plugin=plugin, filename="prompt.txt", line=line, line_number=0,
                                    context=context):
            if not ds._is_filtered_out(required_filter_parameters=["context"], filename=secret.filename,
                                       secret=secret.secret_value, plugin=plugin, line=line,
                                       context=context):
                found.append((secret.type, secret.secret_value or ""))
    return found


#: A line detect-secrets could flag has a long token run (keys, tokens, high-entropy strings), a secret
#: keyword, a URL or a PEM header; other lines (most code) skip the detectors.
_MAYBE = re.compile(r"[A-Za-z0-9+/=_\-.]{12,}|(?i:key|pass|pwd|secret|token|auth|contrase|cred|BEGIN)|://")


@functools.lru_cache(maxsize=65536)
def _scan_line(line: str, entropy: bool) -> tuple[tuple[int, int, str], ...]:
    if not _MAYBE.search(line):
        return ()
    found = []
    for secret_type, value in _detect(line):
        if secret_type in _ENTROPY_TYPES and not entropy:
            continue
        kind = _KINDS.get(secret_type) or re.sub(r"[^A-Z0-9]+", "_", secret_type.upper()).strip("_")
        for s, e in _spans_of(secret_type, value, line):
            found.append((s, e, kind))
    return tuple(found)


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_]")


def _widen(line: str, s: int, e: int) -> tuple[int, int]:
    """Grow a span over adjacent token characters: a fixed-length detector regex (GitHub's 36
    characters) must not leave the tail of a longer token behind."""
    while s > 0 and _TOKEN_CHAR.match(line[s - 1]) and _TOKEN_CHAR.match(line[s]):
        s -= 1
    while e < len(line) and _TOKEN_CHAR.match(line[e]) and _TOKEN_CHAR.match(line[e - 1]):
        e += 1
    return s, e


def find_secrets(text: str, *, entropy: bool = True) -> list[Finding]:
    """Every secret in `text`, without overlaps: nextedit's patterns win over detect-secrets' named
    detectors, then its keyword detector, then its high-entropy detectors; then longer spans win."""
    candidates: list[tuple[int, int, int, str]] = []  # (priority, start, end, kind)
    lower = text.lower()
    for kind, rx in PATTERNS.items():
        guard = _GUARDS.get(kind, ())
        if guard and not any(g in lower for g in ((guard,) if isinstance(guard, str) else guard)):
            continue
        for m in rx.finditer(text):
            s, e = m.span("s")
            if e > s:
                candidates.append((0, s, e, kind))
    offset = 0
    for line in text.split("\n"):
        if line.strip() and not _PLACEHOLDER.fullmatch(line.strip()):
            for s, e, kind in _scan_line(line, entropy):
                if e > s:
                    rank = {"SECRET": 2, "HIGH_ENTROPY": 3}.get(kind, 1)
                    s, e = _widen(line, s, e)
                    candidates.append((rank, offset + s, offset + e, kind))
        offset += len(line) + 1
    candidates.sort(key=lambda c: (c[0], -(c[2] - c[1]), c[1]))
    taken: list[Finding] = []
    for _, s, e, kind in candidates:
        if any(s < f.end and f.start < e for f in taken):
            continue
        if _PLACEHOLDER.fullmatch(text[s:e]):
            continue
        taken.append(Finding(s, e, kind, text[s:e]))
    taken.sort(key=lambda f: f.start)
    return taken


class Scrubber:
    """Replaces secrets by placeholders and back; one instance per conversation keeps them consistent."""

    def __init__(self, *, entropy: bool = True):
        self.entropy = entropy
        self.values: dict[str, str] = {}  # secret value -> placeholder
        self.kinds: Counter[str] = Counter()

    def _placeholder(self, kind: str, value: str) -> str:
        if value not in self.values:
            self.kinds[kind] += 1
            self.values[value] = f"<SECRET_{kind}_{self.kinds[kind]}>"
        return self.values[value]

    def scrub(self, text: str) -> str:
        """`text` with every secret found (and every long secret already known) replaced."""
        findings = find_secrets(text, entropy=self.entropy)
        out: list[str] = []
        last = 0
        for f in findings:
            out.append(text[last:f.start])
            out.append(self._placeholder(f.kind, f.value))
            last = f.end
        out.append(text[last:])
        result = "".join(out)
        for value, placeholder in sorted(self.values.items(), key=lambda kv: -len(kv[0])):
            if len(value) >= _MIN_GLOBAL and value in result:
                result = result.replace(value, placeholder)
        return result

    def unscrub(self, text: str) -> str:
        """Put the real values back in place of this scrubber's placeholders."""
        if not self.values or "<SECRET_" not in text:
            return text
        back = {p: v for v, p in self.values.items()}
        return _PLACEHOLDER.sub(lambda m: back.get(m.group(0), m.group(0)), text)

    @property
    def count(self) -> int:
        """How many distinct secrets were replaced so far."""
        return len(self.values)


def scrub(text: str, *, entropy: bool = True) -> str:
    """`text` with its secrets replaced by placeholders (a fresh Scrubber)."""
    return Scrubber(entropy=entropy).scrub(text)
