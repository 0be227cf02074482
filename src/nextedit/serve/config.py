"""The server's TOML configuration (arms, deadline, store, tokens), validated with pydantic."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: The request-id key `nextedit serve --workers N` shares with its workers when the config has none.
WORKERS_ID_KEY_ENV = "NEXTEDIT_SERVE_ID_KEY"


class ServeConfigError(ValueError):
    """A configuration file that cannot be used; `str()` names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArmConfig(_Strict):
    """One experiment arm: which backend answers, with what share of users (or requests, for shadows)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    #: A predictor provider string: "propagate", "noop", "local:PATH", "openai-compatible:URL", ...
    backend: str = Field(min_length=1)
    #: Student prompt format (formats registry); passed to the predictor as option `format` when set.
    format: str | None = None
    #: Reported with every response and event; defaults to "<backend>@v<predictor version>".
    model_version: str | None = None
    #: Live arm: share of users (live shares sum to 1). Shadow arm: share of requests it also runs on.
    share: float = Field(default=0.0, ge=0.0, le=1.0)
    shadow: bool = False
    control: bool = False
    #: Extra keyword options for the predictor (e.g. {max_tokens = 128}).
    options: dict[str, Any] = Field(default_factory=dict)
    #: Added latency before the backend runs (cancellable); for load tests and drills, 0 in production.
    delay_ms: float = Field(default=0.0, ge=0.0)


class AuthConfig(_Strict):
    """Bearer tokens: API keys for /v1/*, one admin token for /dashboard and /admin/*."""

    api_keys: list[str] = Field(default_factory=list)
    api_keys_env: str | None = None
    admin_token: str | None = None
    admin_token_env: str | None = None
    #: Key that signs request ids (HMAC), so any worker or replica holding it knows an id it did not
    #: store is one this service issued, and for which arm. Default: a random key per process.
    request_id_key: str | None = None
    request_id_key_env: str | None = None

    def keys(self) -> set[str]:
        """Every accepted API key (inline ones plus the comma-separated env variable)."""
        keys = {k for k in self.api_keys if k}
        if self.api_keys_env:
            keys |= {k.strip() for k in os.environ.get(self.api_keys_env, "").split(",") if k.strip()}
        return keys

    def admin(self) -> str | None:
        """The admin token (env variable wins over the inline value)."""
        if self.admin_token_env and os.environ.get(self.admin_token_env):
            return os.environ[self.admin_token_env]
        return self.admin_token or None

    def id_key(self) -> str | None:
        """The request-id signing key (env variable wins over the inline value), or None."""
        if self.request_id_key_env and os.environ.get(self.request_id_key_env):
            return os.environ[self.request_id_key_env]
        # `nextedit serve --workers N` hands its workers one key when the config names none.
        return self.request_id_key or os.environ.get(WORKERS_ID_KEY_ENV) or None


class PrivacyConfig(_Strict):
    """What the server keeps: secrets in stored code (collected requests, predictions, settled text)
    are replaced by placeholders before anything is written (nextedit.privacy; docs/privacy.md)."""

    scrub: bool = True
    #: Also scrub high-entropy quoted strings (detect-secrets' entropy detectors).
    entropy: bool = True


class LimitsConfig(_Strict):
    """Rate limits, counted across every worker and replica through the shared state (0 = off)."""

    #: Every /v1 request, per API key.
    requests_per_key_per_minute: int = Field(default=0, ge=0)
    #: POST /v1/predict, per user id.
    predict_per_user_per_minute: int = Field(default=0, ge=0)


class ServeConfig(_Strict):
    """Everything `nextedit serve CONFIG.toml` needs."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    #: End-to-end budget per predict request; past it the answer is reason "timeout".
    deadline_ms: float = Field(default=300.0, gt=0)
    #: Event store: a SQLite file path (or sqlite:///PATH) or a postgresql:// URL.
    store: str = "nextedit-events.db"
    #: Cross-process state (supersession, kept-rate join, reloads, rate limits): "memory" (one
    #: process), a SQLite file, or a postgresql:// URL. Default: the store's PostgreSQL, else a
    #: SQLite side file `<store>-shared.db` (docs/serving.md, "Scaling out").
    shared: str | None = None
    #: Salt of the user hash that assigns arms; change it to re-randomise users for a new experiment.
    salt: str = "nextedit"
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    #: How long a prediction is remembered for kept-rate computation when its settled event arrives.
    remember_s: float = Field(default=900.0, gt=0)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    arms: list[ArmConfig] = Field(min_length=1)

    @field_validator("arms")
    @classmethod
    def _check_arms(cls, arms: list[ArmConfig]) -> list[ArmConfig]:
        names = [a.name for a in arms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"arm names must be unique (repeated: {', '.join(dupes)})")
        live = [a for a in arms if not a.shadow]
        if not live:
            raise ValueError("at least one arm must be live (shadow = false)")
        total = sum(a.share for a in live)
        if len(live) == 1 and total == 0:
            live[0].share = 1.0
        elif abs(total - 1.0) > 1e-6:
            raise ValueError(f"live arm shares must sum to 1 (they sum to {total:g})")
        controls = [a.name for a in arms if a.control]
        if any(a.control and a.shadow for a in arms):
            raise ValueError("a shadow arm cannot be the control arm")
        if len(controls) > 1:
            raise ValueError(f"only one arm can be the control (got {', '.join(controls)})")
        if not controls:
            live[0].control = True
        return arms

    @property
    def control(self) -> ArmConfig:
        """The control arm (the first live arm when none is marked)."""
        return next(a for a in self.arms if a.control)

    def arm(self, name: str) -> ArmConfig | None:
        """The arm called `name`, if any."""
        return next((a for a in self.arms if a.name == name), None)


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(config)"


def parse_config(data: dict[str, Any], *, source: str = "config") -> ServeConfig:
    """Validate a config dict; errors name the source and the field."""
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        msg = first["msg"].removeprefix("Value error, ")
        raise ServeConfigError(f"{source}: field {_where(tuple(first['loc']))}: {msg}") from None


def load_config(path: str | Path) -> ServeConfig:
    """Read and validate a serve config TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ServeConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ServeConfigError(f"{path}: invalid TOML ({exc})") from None
    config = parse_config(data, source=str(path))
    config.store = resolve_store(config.store, path.parent)
    if config.shared and config.shared != "memory":
        config.shared = resolve_store(config.shared, path.parent)
    return config


def resolve_store(store: str, base: Path) -> str:
    """A relative SQLite store path (plain or sqlite:///) taken against `base`, the config file's
    folder, as every other config resolves its paths; URLs and absolute paths stay as they are."""
    prefix = "sqlite:///" if store.startswith("sqlite:///") else ""
    rest = store[len(prefix):]
    if (not prefix and "://" in store) or not rest or Path(rest).is_absolute():
        return store
    return prefix + str(base / rest)
