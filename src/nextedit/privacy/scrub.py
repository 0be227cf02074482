"""The secret scrubber: detect-secrets plus nextedit's own patterns, file-type aware, reversible.

A `Scrubber` replaces each secret with a placeholder of its kind (`<SECRET_AWS_KEY_1>`); the same
value always gets the same placeholder within one Scrubber, so a whole conversation (teacher
prompt, repair message) stays consistent, and `unscrub` turns a model's answer back into the real
text before a patch is computed. Pass the text's real `path`: detect-secrets then reads `.env`,
ini, YAML and credentials files with its config rules (unquoted `password = x`), and `learn()` lets
the pieces of an example be scanned with their own paths before the rendered prompt is scrubbed.

detect-secrets (Yelp, maintained) supplies the provider-specific detectors, the keyword detector
and the high-entropy string detectors; `PATTERNS` below add what it does not know: private-key
blocks, JWTs with their signature, URL and connection-string passwords, shell/.env assignments,
command-line flags, XML elements, and API-key formats (Anthropic, OpenAI, Google, Hugging Face,
...). A finding never spans a line break (a private key is replaced line by line), so scrubbing
keeps line numbers: diffs and diagnostics stay valid. See docs/privacy.md.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PATTERNS", "Finding", "OffsetMap", "Scrubber", "detector_filename", "find_secrets", "scrub"]

#: nextedit's own detectors: kind -> regex; the named group `s` is the secret.
PATTERNS: dict[str, re.Pattern[str]] = {
    # Only the key body is secret: the BEGIN/END lines stay, each body line gets its own placeholder.
    "PRIVATE_KEY": re.compile(
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?P<s>[\s\S]*?)"
        r"(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
    "JWT": re.compile(r"\b(?P<s>eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"),
    "PASSWORD": re.compile(  # scheme://user:password@host; a password may hold "/", a port may not
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"]*:(?P<s>(?!\d+(?:[/?#]|$))(?![{$%<])[^\s@'\"<>]+)@"),
    "CONNECTION_PASSWORD": re.compile(  # Server=..;Password=..; (ADO/JDBC/ODBC) and libpq "password=.. dbname=.."
        r"(?i)(?:^|[;\"'\s(])(?:password|pwd)\s*=\s*(?P<s>[^;\"'\s(),{}$%<][^;\"'\s(),]*)"
        r"(?=;|[\"']|\s+[A-Za-z_]+\s*=)"),
    "AWS_KEY": re.compile(
        r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*(?:=|:|=>)\s*[\"']?(?P<s>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"),
    # .env and shell: NAME=value (no spaces around "=" in either), optional export/diff marker.
    "ENV_SECRET": re.compile(
        r"(?m)^[+\- ]?[ \t]*(?:export[ \t]+|ENV[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<q>[\"']?)"
        r"(?P<s>[^\s\"'`$(){};#\\][^\s\"'`;]*)(?P=q)(?=\s|$|;)"),
    "CLI_SECRET": re.compile(  # --password=x, --token x, curl -u user:pass
        r"(?:^|\s)(?:--?(?P<name>password|passwd|token|api-key|apikey|secret|auth-token|access-token"
        r"|client-secret)(?:=|\s+)|(?:-u|--user)\s+[\"']?[^\s:\"']+:)(?P<q>[\"']?)"
        r"(?P<s>[^\s\"'$`{<-][^\s\"'`]*)(?P=q)"),
    # Code and JSON: a quoted value under a secret's name (`githubToken: "..."`, `"api_key": "..."`).
    "QUOTED_SECRET": re.compile(
        r"(?P<name>[A-Za-z_][\w.\-]*)[\"'\]]*\s*(?::=|=>|[:=])\s*(?P<q>[\"'`])(?P<s>[^\"'`\s]{8,})(?P=q)"),
    # Config files only (.env, ini, YAML, properties, credentials): `name = value`, `name: value` unquoted.
    "CONFIG_SECRET": re.compile(
        r"(?m)^[ \t]*(?:-[ \t]+)?(?P<name>[A-Za-z_][\w.\-]*)[ \t]*[=:][ \t]*(?P<q>[\"']?)"
        r"(?P<s>[^\s\"'#|>&*!{\[][^\s\"']*)(?P=q)[ \t]*(?:#.*)?$"),
    "XML_SECRET": re.compile(r"<(?P<name>[A-Za-z_][\w:.-]*)>(?P<s>[^<>\s]{4,})</(?P=name)>"),
    "XML_KEY_VALUE": re.compile(  # <add key="ApiKey" value="..."/>
        r"\bkey\s*=\s*[\"'](?P<name>[^\"']+)[\"']\s+value\s*=\s*[\"'](?P<s>[^\"']{4,})[\"']"),
    "AZURE_SAS": re.compile(r"[?&]sig=(?P<s>[A-Za-z0-9%/+=]{20,})"),
    "AUTH_HEADER": re.compile(
        r"(?i)authorization[\"']?\s*[:=,]\s*[\"']?(?:basic|token)\s+(?P<s>[A-Za-z0-9_\-.=+/]{16,})"),
    "ANTHROPIC_KEY": re.compile(r"\b(?P<s>sk-ant-[A-Za-z0-9_\-]{20,})"),
    "OPENAI_KEY": re.compile(r"\b(?P<s>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,})"),
    "GOOGLE_KEY": re.compile(r"\b(?P<s>AIza[0-9A-Za-z_\-]{35})"),
    "HUGGINGFACE_TOKEN": re.compile(r"\b(?P<s>hf_[A-Za-z0-9]{30,})"),
    "GITHUB_TOKEN": re.compile(r"\b(?P<s>github_pat_[A-Za-z0-9_]{40,}|gh[pousr]_[A-Za-z0-9]{36,})"),
    "SAAS_TOKEN": re.compile(
        r"\b(?P<s>(?:shpat|shpss|shpca|shppa)_[a-fA-F0-9]{32}|dop_v1_[a-f0-9]{64}|PMAK-[a-f0-9]{24}-[a-f0-9]{34}"
        r"|lin_api_[A-Za-z0-9]{40}|glpat-[A-Za-z0-9_\-]{20,}|xapp-\d-[A-Z0-9]+-\d+-[a-f0-9]+"
        r"|sntrys_[A-Za-z0-9+/=_]{40,}|dp\.(?:st|pt|ct)\.[a-z0-9_\-]+\.[A-Za-z0-9]{40,}"
        r"|rk_live_[A-Za-z0-9]{20,}|whsec_[A-Za-z0-9+/=]{24,}|npm_[A-Za-z0-9]{36})"),
    "BEARER_TOKEN": re.compile(r"(?i)\bbearer\s+(?P<s>[A-Za-z0-9_\-.=+/]{20,})"),
}

#: Literals (lower-cased text) one of which each pattern's matches contain: the regex runs only then.
_GUARDS: dict[str, tuple[str, ...]] = {
    "PRIVATE_KEY": ("private key",), "JWT": ("eyj",), "PASSWORD": ("://",), "CONNECTION_PASSWORD": ("password", "pwd"),
    "AWS_KEY": ("secret",), "ENV_SECRET": ("=",), "CLI_SECRET": ("-",), "XML_SECRET": ("</",),
    "XML_KEY_VALUE": ("value",), "QUOTED_SECRET": ("=", ":"), "CONFIG_SECRET": ("=", ":"), "AZURE_SAS": ("sig=",), "AUTH_HEADER": ("authorization",),
    "ANTHROPIC_KEY": ("sk-ant-",), "OPENAI_KEY": ("sk-",), "GOOGLE_KEY": ("aiza",), "HUGGINGFACE_TOKEN": ("hf_",),
    "GITHUB_TOKEN": ("github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "SAAS_TOKEN": ("shp", "dop_v1_", "pmak-", "lin_api_", "glpat-", "xapp-", "sntrys_", "dp.", "rk_live_", "whsec_", "npm_"),
    "BEARER_TOKEN": ("bearer",),
}

#: Name parts (split at "_", "-", "." and camelCase) that make an assignment a secret ...
_SECRET_WORDS = {"secret", "password", "passwd", "pass", "pwd", "token", "apikey", "credential", "credentials",
                 "passphrase", "privatekey", "accesskey", "secretkey", "auth"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("signing", "key"),
                 ("encryption", "key"), ("master", "key"), ("client", "secret"), ("auth", "key"), ("account", "key"),
                 ("service", "key"), ("license", "key"), ("app", "key"), ("session", "key")}
#: ... unless its last part says it holds something else (a file, a URL, a length, a name, ...).
_META_WORDS = {"file", "path", "dir", "url", "uri", "endpoint", "header", "name", "names", "ttl", "expiry", "expires",
               "length", "len", "timeout", "enabled", "type", "id", "ref", "env", "var", "count", "size", "prefix",
               "suffix", "field", "param", "key_name", "min", "max", "regex", "pattern", "policy", "mode", "version",
               "format", "algorithm", "alg", "hash", "scope", "scopes", "age", "lifetime", "rotation", "store",
               "provider", "method", "manager", "backend", "class", "required", "label", "hint", "location"}
_VALUE_WORDS = {"true", "false", "yes", "no", "none", "null", "nil", "on", "off", "undefined", "changeme", "xxx",
                "todo", "example", "redacted", "secret", "password", "required", "optional", "empty"}


def _name_parts(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [p for p in re.split(r"[_\-.:\s]+", spaced.lower()) if p]


def secret_name(name: str) -> bool:
    """True when a variable, key, flag or tag name says its value is a secret (`DB_PASSWORD`,
    `apiKey`, `client-secret`), and not metadata about one (`TOKEN_URL`, `secretName`)."""
    parts = _name_parts(name)
    if not parts or parts[-1] in _META_WORDS:
        return False
    return any(p in _SECRET_WORDS for p in parts) or any(pair in _SECRET_PAIRS for pair in itertools.pairwise(parts))


_CODE_REFERENCE = re.compile(r"[A-Za-z_]\w*(?:(?:\.|::|->)[A-Za-z_]\w*)*(?:\(.*|\[.*)?")


def _plausible_value(value: str) -> bool:
    """A value that can be a secret: not a placeholder, flag, number, path, URL or code reference."""
    v = value.strip().rstrip(",;")
    if len(v) < 4 or v.lower() in _VALUE_WORDS or v.isdigit() or "://" in v:
        return False
    if v[0] in "/~.$%{<[*(" or v.endswith((".pem", ".key", ".json", ".txt", ".crt", ")")):
        return False
    if _CODE_REFERENCE.fullmatch(v) and ("." in v or "(" in v or "::" in v or "->" in v or "[" in v):
        return False  # os.Getenv(, settings.SECRET_KEY, self.token, ENV['X']
    return not re.fullmatch(r"[a-z]+(?:[_-][a-z]+)*", v) or len(v) >= 12  # a plain lower-case word is a name


def _named_value(m: re.Match[str]) -> bool:
    return secret_name(m.group("name")) and _plausible_value(m.group("s"))


def _cli_value(m: re.Match[str]) -> bool:
    return _plausible_value(m.group("s"))


#: Extra checks on a pattern's match (name says secret, value looks like one).
_CHECKS: dict[str, Callable[[re.Match[str]], bool]] = {
    "ENV_SECRET": _named_value, "QUOTED_SECRET": _named_value, "CONFIG_SECRET": _named_value, "XML_SECRET": _named_value, "XML_KEY_VALUE": _named_value, "CLI_SECRET": _cli_value,
    "CONNECTION_PASSWORD": _cli_value,
}

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
_SKIPPED_TYPES = {"Private Key"}  # PATTERNS["PRIVATE_KEY"] takes the key body and leaves the BEGIN line
#: Placeholder kind of the patterns that find a value by its name: the keyword detector's.
_SHOWN_KIND = {"QUOTED_SECRET": "SECRET", "CONFIG_SECRET": "SECRET", "ENV_SECRET": "SECRET", "XML_SECRET": "SECRET",
               "XML_KEY_VALUE": "SECRET", "CLI_SECRET": "SECRET"}
_CONFIG_KINDS = {"CONFIG_SECRET"}  # run only on config files (an unquoted value in code is an expression)
#: Own patterns that read a value from its context (a name, a flag) rank with detect-secrets' keyword
#: detector, below its named detectors; the token formats above them win every overlap.
_CONTEXT_KINDS = {"QUOTED_SECRET", "CONFIG_SECRET", "CONNECTION_PASSWORD", "ENV_SECRET", "CLI_SECRET", "XML_SECRET", "XML_KEY_VALUE", "AUTH_HEADER",
                  "BEARER_TOKEN", "PASSWORD"}
_PLACEHOLDER = re.compile(r"<SECRET_[A-Z0-9_]+_\d+>")
_MIN_GLOBAL = 8  # known values this long are replaced wherever they occur; shorter ones only as whole tokens
_MIN_KNOWN = 4  # shorter findings are not remembered as known values

#: Files detect-secrets should read with its config rules (unquoted `key = value`), by name.
_CONFIG_FILE = re.compile(
    r"(?:^|/)(?:\.env(?:\.[^/]*)?|[^/]*\.env|\.envrc|credentials|\.npmrc|\.pypirc|\.netrc|\.pgpass|\.htpasswd"
    r"|\.git-credentials|\.s3cfg|\.boto|[^/]*\.(?:ini|cfg|conf|cnf|properties|toml|tfvars|envrc))$")

_lock = threading.Lock()
_configured = False


@dataclass(frozen=True)
class Finding:
    """One secret: where it is in the text, its kind and its value."""

    start: int
    end: int
    kind: str
    value: str


def detector_filename(path: str | None) -> str:
    """The file name detect-secrets is given for a text from `path`: config-like files (.env,
    credentials, .npmrc, ...) as `config.ini` so their unquoted values are read; None as plain text."""
    if not path:
        return "text"
    norm = path.replace("\\", "/")
    if _CONFIG_FILE.search(norm.lower()):
        return "config.ini"
    return norm


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


@functools.cache
def _plugin_regexes() -> dict[str, list[re.Pattern[str]]]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    out: dict[str, list[re.Pattern[str]]] = {}
    for secret_type, cls in get_mapping_from_secret_type_to_class().items():
        denylist = getattr(cls, "denylist", None)
        if denylist:
            out[secret_type] = list(denylist)
    return out


def _spans_of(secret_type: str, value: str, line: str) -> list[tuple[int, int]]:
    """Where a detect-secrets finding sits in its line. Regex detectors report a capture group that
    may be only a prefix (GitHub's `ghp`): their own regexes are rerun to find the whole token."""
    spans: list[tuple[int, int]] = []
    for rx in _plugin_regexes().get(secret_type, ()):
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


def _detect(line: str, filename: str) -> list[tuple[str, str]]:
    """(type, value) of detect-secrets findings in one line: its plugins and false-positive filters,
    like `detect_secrets.core.scan.scan_line` but without "eager search" (which flags every word)."""
    from detect_secrets.core import scan as ds

    _configure()
    ds.get_settings().disable_filters("detect_secrets.filters.common.is_invalid_file")
    context = ds.get_code_snippet(lines=[line], line_number=1)
    found = []
    for plugin in ds.get_plugins():
        for secret in ds._scan_line(plugin=plugin, filename=filename, line=line, line_number=0,
                                    context=context):
            if not ds._is_filtered_out(required_filter_parameters=["context"], filename=secret.filename,
                                       secret=secret.secret_value, plugin=plugin, line=line,
                                       context=context):
                found.append((secret.type, secret.secret_value or ""))
    return found


#: A line detect-secrets could flag has a long token run (keys, tokens, high-entropy strings), a secret
#: keyword, a URL or a PEM header; other lines (most code) skip the detectors.
_MAYBE = re.compile(r"[A-Za-z0-9+/=_\-.]{12,}|(?i:key|pass|pwd|secret|token|auth|contrase|cred|BEGIN)|://")
_KEY_BEFORE = re.compile(r"([A-Za-z_][\w.\-]*)[\"'\]]*\s*(?::=|=>|[:=])\s*[\"']?\s*$")


def _keyword_is_metadata(line: str, start: int) -> bool:
    """A keyword finding whose key names metadata (`secretName: app-tls`, `password_file = ...`)."""
    m = _KEY_BEFORE.search(line[:start])
    return bool(m) and not secret_name(m.group(1)) and _name_parts(m.group(1))[-1:] != ["secret"]


@functools.lru_cache(maxsize=65536)
def _scan_line(line: str, filename: str, entropy: bool) -> tuple[tuple[int, int, str], ...]:
    if not _MAYBE.search(line):
        return ()
    found = []
    for secret_type, value in _detect(line, filename):
        if (secret_type in _ENTROPY_TYPES and not entropy) or secret_type in _SKIPPED_TYPES:
            continue
        kind = _KINDS.get(secret_type) or re.sub(r"[^A-Z0-9]+", "_", secret_type.upper()).strip("_")
        for s, e in _spans_of(secret_type, value, line):
            if kind == "SECRET" and (_keyword_is_metadata(line, s) or not _plausible_value(line[s:e])):
                continue
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


def _line_pieces(text: str, s: int, e: int) -> list[tuple[int, int]]:
    """A span cut at line breaks, each piece stripped of surrounding blanks (empty pieces dropped)."""
    out = []
    pos = s
    for part in text[s:e].split("\n"):
        lo, hi = pos, pos + len(part)
        while lo < hi and text[lo] in " \t\r":
            lo += 1
        while hi > lo and text[hi - 1] in " \t\r":
            hi -= 1
        if hi > lo:
            out.append((lo, hi))
        pos += len(part) + 1
    return out


def _candidates(text: str, filename: str, entropy: bool) -> list[tuple[int, int, int, str]]:
    """(priority, start, end, kind) of every detector hit; lower priority wins an overlap."""
    candidates: list[tuple[int, int, int, str]] = []
    lower = text.lower()
    config = filename == "config.ini" or filename.endswith((".yaml", ".yml"))
    for kind, rx in PATTERNS.items():
        if not any(g in lower for g in _GUARDS.get(kind, ("",))) or (kind in _CONFIG_KINDS and not config):
            continue
        check = _CHECKS.get(kind)
        for m in rx.finditer(text):
            if check is not None and not check(m):
                continue
            rank = 2 if kind in _CONTEXT_KINDS else 0
            shown = _SHOWN_KIND.get(kind, kind)
            for s, e in _line_pieces(text, *m.span("s")):
                candidates.append((rank, s, e, shown))
    offset = 0
    for line in text.split("\n"):
        if line.strip() and not _PLACEHOLDER.fullmatch(line.strip()):
            for s, e, kind in _scan_line(line, filename, entropy):
                if e > s:
                    rank = {"SECRET": 2, "HIGH_ENTROPY": 3}.get(kind, 1)
                    s, e = _widen(line, s, e)
                    candidates.append((rank, offset + s, offset + e, kind))
        offset += len(line) + 1
    return candidates


def _resolve(text: str, candidates: list[tuple[int, int, int, str]]) -> list[Finding]:
    candidates.sort(key=lambda c: (c[0], -(c[2] - c[1]), c[1]))
    starts: list[int] = []
    taken: list[Finding] = []
    for _, s, e, kind in candidates:
        i = bisect.bisect_left(starts, s)
        if (i > 0 and taken[i - 1].end > s) or (i < len(taken) and taken[i].start < e):
            continue
        value = text[s:e]
        if _PLACEHOLDER.fullmatch(value):
            continue
        starts.insert(i, s)
        taken.insert(i, Finding(s, e, kind, value))
    return taken


def _is_body(line: str) -> bool:
    return line[:1] in ("+", "-", " ") and not line.startswith(("+++ ", "--- "))


def _diff_content(text: str) -> tuple[str, list[tuple[int, int]]]:
    """A unified diff's text with each body line's +/-/space marker removed, and for every line
    (its offset in that text, the offset of the same character in the diff)."""
    out, rows = [], []
    content = orig = 0
    for line in text.split("\n"):
        body = _is_body(line)
        rows.append((content, orig + body))
        out.append(line[1:] if body else line)
        content += len(line) - body + 1
        orig += len(line) + 1
    return "\n".join(out), rows


def find_secrets(text: str, *, path: str | None = None, entropy: bool = True, diff: bool = False) -> list[Finding]:
    """Every secret in `text` (from file `path`, which picks detect-secrets' rules), without overlaps:
    nextedit's patterns win over detect-secrets' named detectors, then its keyword detector, then its
    high-entropy detectors; then longer spans win. `diff`: `text` is a unified diff of that file
    (lines are read without their +/-/space marker). No finding spans a line break."""
    filename = detector_filename(path)
    if not diff:
        return _resolve(text, _candidates(text, filename, entropy))
    content, rows = _diff_content(text)
    starts = [r[0] for r in rows]
    out = []
    for f in _resolve(content, _candidates(content, filename, entropy)):
        cs, os_ = rows[bisect.bisect_right(starts, f.start) - 1]
        out.append(Finding(f.start - cs + os_, f.end - cs + os_, f.kind, f.value))
    return out


class OffsetMap:
    """Maps offsets of a text to offsets of its scrubbed version (an offset inside a replaced secret
    goes to the start of its placeholder, or to its end with `end=True`)."""

    def __init__(self, spans: list[tuple[int, int, int, int]]) -> None:
        self.spans = spans  # (old_start, old_end, new_start, new_end), sorted
        self._starts = [s[0] for s in spans]

    def __call__(self, offset: int, *, end: bool = False) -> int:
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0:
            return offset
        os_, oe, ns, ne = self.spans[i]
        if offset >= oe:
            return ne + (offset - oe)
        if offset == os_:
            return ns
        return ne if end else ns


class Scrubber:
    """Replaces secrets by placeholders and back; one instance per conversation keeps them consistent."""

    def __init__(self, *, entropy: bool = True):
        self.entropy = entropy
        self.values: dict[str, str] = {}  # secret value -> placeholder
        self.kinds: Counter[str] = Counter()
        self._known: re.Pattern[str] | None = None

    def _placeholder(self, kind: str, value: str) -> str:
        if value not in self.values:
            self.kinds[kind] += 1
            self.values[value] = f"<SECRET_{kind}_{self.kinds[kind]}>"
            self._known = None
        return self.values[value]

    def _known_spans(self, text: str) -> list[tuple[int, int, int, str]]:
        known = [v for v in self.values if len(v) >= _MIN_KNOWN and "\n" not in v]
        if not known:
            return []
        if self._known is None:
            alts = []
            for v in sorted(known, key=len, reverse=True):
                alts.append(re.escape(v) if len(v) >= _MIN_GLOBAL else rf"(?<![A-Za-z0-9_]){re.escape(v)}(?![A-Za-z0-9_])")
            self._known = re.compile("|".join(alts))
        return [(-1, m.start(), m.end(), "KNOWN") for m in self._known.finditer(text) if m.end() > m.start()]

    def findings(self, text: str, *, path: str | None = None, diff: bool = False) -> list[Finding]:
        """The secrets of `text` plus every occurrence of a value this scrubber already replaced."""
        found = find_secrets(text, path=path, entropy=self.entropy, diff=diff)
        known = self._known_spans(text)
        if not known:
            return found
        return _resolve(text, known + [(0, f.start, f.end, f.kind) for f in found])

    def learn(self, text: str, *, path: str | None = None, diff: bool = False) -> None:
        """Remember the secrets of `text` (read as file `path`) so that later `scrub` calls replace
        them wherever they occur, even without the context that revealed them."""
        for f in find_secrets(text, path=path, entropy=self.entropy, diff=diff):
            if len(f.value) >= _MIN_KNOWN:
                self._placeholder(f.kind, f.value)

    def scrub_mapped(self, text: str, *, path: str | None = None, diff: bool = False) -> tuple[str, OffsetMap]:
        """`scrub`, plus the map from offsets in `text` to offsets in the result."""
        out: list[str] = []
        spans: list[tuple[int, int, int, int]] = []
        last = new = 0
        for f in self.findings(text, path=path, diff=diff):
            kind = f.kind if f.kind != "KNOWN" else "SECRET"
            placeholder = self.values.get(f.value) or self._placeholder(kind, f.value)
            out.append(text[last:f.start])
            new += f.start - last
            out.append(placeholder)
            spans.append((f.start, f.end, new, new + len(placeholder)))
            new += len(placeholder)
            last = f.end
        out.append(text[last:])
        return "".join(out), OffsetMap(spans)

    def scrub(self, text: str, *, path: str | None = None, diff: bool = False) -> str:
        """`text` with every secret found (and every secret already known) replaced by its placeholder."""
        if not text:
            return text
        return self.scrub_mapped(text, path=path, diff=diff)[0]

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


def scrub(text: str, *, path: str | None = None, entropy: bool = True) -> str:
    """`text` with its secrets replaced by placeholders (a fresh Scrubber)."""
    return Scrubber(entropy=entropy).scrub(text, path=path)
