"""HTTP client of the language server for `nextedit serve` (/v1/predict, /v1/events): timeouts,
bearer token; every failure is logged (once per outage, not per keystroke) and never raised."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger("nextedit.lsp")

#: Called with (level, message) for messages worth showing to the user (window/logMessage).
Notify = Callable[[int, str], None]


def _quiet(level: int, message: str) -> None:
    log.log(level, message)


def _error_text(response: httpx.Response) -> str:
    """The server's {"error": ...} message, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("error", data))[:200] if isinstance(data, dict) else str(data)[:200]


class ServeClient:
    """Talks to one `nextedit serve`; methods return None/False instead of raising."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout_s: float = 2.0,
                 events_timeout_s: float = 5.0, notify: Notify = _quiet,
                 alert: Callable[[str], None] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s,
                                       transport=transport, trust_env=False)
        self.timeout_s = timeout_s
        self.events_timeout_s = events_timeout_s
        self.notify = notify
        #: Called with a message the user must see (a refused API key); shown once by the caller.
        self.alert = alert
        self._down: str | None = None
        self.failures = 0
        #: Why the last call failed: ("unauthorized" | "unreachable", detail), None after a success.
        self.last_error: tuple[str, str] | None = None

    def _failed(self, what: str, reason: str, kind: str = "unreachable") -> None:
        self.failures += 1
        self.last_error = (kind, reason)
        log.debug("%s failed: %s", what, reason)
        if self._down is None:
            self._down = reason
            self.notify(logging.WARNING, f"nextedit serve at {self.base_url}: {what} failed: {reason}")

    def _ok(self) -> None:
        self.last_error = None
        if self._down is not None:
            self._down = None
            self.notify(logging.INFO, f"nextedit serve at {self.base_url} answers again")

    async def _post(self, what: str, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        try:
            response = await self._http.post(path, json=body, timeout=timeout_s)
        except httpx.TimeoutException:
            self._failed(what, f"no answer within {timeout_s:g} s")
            return None
        except httpx.HTTPError as exc:
            self._failed(what, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return None
        if response.status_code in (401, 403):
            detail = f"HTTP {response.status_code}: {_error_text(response)}"
            self._failed(what, detail, "unauthorized")
            if self.alert is not None:
                self.alert(f"nextedit: the prediction server at {self.base_url} refused the API key ({detail}); "
                           "set NEXTEDIT_TOKEN or the `token` setting to one of its [auth] api_keys")
            return None
        if response.status_code != 200:
            self._failed(what, f"HTTP {response.status_code}: {response.text[:200]}")
            return None
        try:
            data = response.json()
        except ValueError:
            self._failed(what, f"answer is not JSON: {response.text[:200]!r}")
            return None
        if not isinstance(data, dict):
            self._failed(what, "answer is not a JSON object")
            return None
        self._ok()
        return data

    async def predict(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST /v1/predict; the answer, or None when the server fails (logged)."""
        data = await self._post("predict", "/v1/predict", body, self.timeout_s)
        if data is None:
            return None
        if not isinstance(data.get("request_id"), str) or not (
                data.get("prediction") is None or isinstance(data.get("prediction"), dict)):
            self._failed("predict", "answer lacks request_id or has a malformed prediction")
            return None
        return data

    async def event(self, body: dict[str, Any]) -> bool:
        """POST /v1/events; True once the server says the event is stored."""
        data = await self._post(f"{body.get('type', '?')} event", "/v1/events", body, self.events_timeout_s)
        return bool(data and data.get("ok"))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
