"""Settings of `nextedit lsp`: command-line defaults, overridden by the client's initializationOptions."""

from __future__ import annotations

import getpass
import hashlib
import platform
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel


def pseudonymous_user() -> str:
    """A stable id for this OS user on this machine that does not reveal the name (sha256 prefix)."""
    try:
        who = f"{getpass.getuser()}@{platform.node()}"
    except Exception:  # noqa: BLE001 - no user name available (containers): any stable value will do
        who = platform.node()
    return hashlib.sha256(who.encode()).hexdigest()[:16]


class Settings(BaseModel):
    """Everything the language server can be told; camelCase keys work in initializationOptions too."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    server: str = "http://127.0.0.1:8765"
    token: str | None = None
    client_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    user_id: str = Field(default_factory=pseudonymous_user)
    #: Consent to data collection: the server may keep the code of requests and settled regions.
    collectable: bool = False
    arm: str | None = None
    debounce_ms: int = Field(default=100, ge=0)
    timeout_s: float = Field(default=2.0, gt=0)
    #: How long an inlineCompletion request waits for a prediction still in flight.
    inline_wait_ms: int = Field(default=1500, ge=0)
    settle_quiet_s: float = Field(default=10.0, gt=0)
    settle_ttl_s: float = Field(default=300.0, gt=0)
    history_events: int = Field(default=10, ge=0)
    grouping_s: float = Field(default=1.0, ge=0)
    editable_tokens: int = Field(default=350, gt=0)
    context_tokens: int = Field(default=1024, ge=0)
    #: Offer predictions through textDocument/inlineCompletion when the client supports it.
    inline: bool = True
    #: Send related code from the workspace (definitions + BM25, as the `context` stage retrieves it).
    context: bool = True
    #: Send linter diagnostics of the current file (as the `diagnostics` stage computes them).
    diagnostics: bool = True
    #: The TOML files given to `nextedit run context/diagnostics --config` when the model's data was
    #: made (same budgets at serve time as at training time); default: the stages' defaults.
    context_config: str | None = None
    diagnostics_config: str | None = None
    #: Files never sent anywhere (gitignore-style globs; None: privacy/exclude.py's default list),
    #: and patterns added after the list (`!pattern` takes a file back).
    exclude: list[str] | None = None
    exclude_extra: list[str] = Field(default_factory=list)
    #: Minimum pause in typing before a prediction is shown (requests may start earlier).
    min_pause_ms: int = Field(default=0, ge=0)
    #: Wait longer than debounce_ms when changes keep coming at a steady pace (an editor that batches
    #: its didChange messages), up to max_debounce_ms: one request per pause, not one per batch.
    coalesce: bool = True
    max_debounce_ms: int = Field(default=600, ge=0)
    #: After this many rejected predictions in a row, suggestions pause for backoff_s seconds (doubling
    #: with each further rejection, at most backoff_max_s); 0 turns the back-off off.
    backoff_after: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=5.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    #: Show the offer as a hint diagnostic at its lines: "auto" (when it cannot be shown inline),
    #: "always" or "off".
    hints: Literal["auto", "always", "off"] = "auto"
    #: Report each prediction's outcome through $/progress when the client supports it.
    progress: bool = True

    def merged(self, options: Any) -> tuple[Settings, list[str]]:
        """These settings with a client's initializationOptions applied, and one message per bad key."""
        if options is None:
            return self, []
        if not isinstance(options, dict):
            return self, [f"initializationOptions is not an object ({type(options).__name__}); ignored"]
        nested = options.get("nextedit")
        if isinstance(nested, dict):
            options = nested
        problems: list[str] = []
        data = self.model_dump()
        fields = {name: name for name in type(self).model_fields}
        fields.update({to_camel(name): name for name in type(self).model_fields})
        for key, value in options.items():
            name = fields.get(key)
            if name is None:
                problems.append(f"initializationOptions.{key}: unknown setting; ignored")
                continue
            candidate = {**data, name: value}
            try:
                type(self).model_validate(candidate)
            except ValidationError as exc:
                msg = exc.errors()[0].get("msg", "invalid")
                problems.append(f"initializationOptions.{key}: {msg}; ignored")
                continue
            data = candidate
        return type(self).model_validate(data), problems
