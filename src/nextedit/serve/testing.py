"""Helpers to run a real server in-process on 127.0.0.1 (tests, benchmarks) and a cancellable slow predictor."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from nextedit.predictors import PREDICTORS, Predictor, get_predictor
from nextedit.record import Example, Prediction
from nextedit.serve.config import ServeConfig


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SleepPredictor(Predictor):
    """`sleep:MS`: works for MS milliseconds in 5 ms steps (stopping as soon as `cancel` is set),
    then answers like `propagate`. Records every call in `calls` so tests can see generation stop."""

    scheme = "sleep"
    calls: ClassVar[list[dict[str, Any]]] = []
    _lock = threading.Lock()

    def __init__(self, argument: str | None = None, **options: Any) -> None:
        super().__init__(None, **options)
        self.argument = argument
        self.ms = float(argument or 0)
        self._inner = get_predictor("propagate")

    def predict(self, example: Example, *, samples: int = 1, cancel: threading.Event | None = None) -> list[Prediction]:
        """Sleep (cancellably), then propagate."""
        record: dict[str, Any] = {"id": example.id, "steps": 0, "cancelled": False, "finished": False}
        with self._lock:
            self.calls.append(record)
        end = time.monotonic() + self.ms / 1000
        while time.monotonic() < end:
            if cancel is not None and cancel.is_set():
                record["cancelled"] = True
                return []
            time.sleep(0.005)
            record["steps"] += 1
        record["finished"] = True
        return self._inner.predict(example, samples=samples)


class CannedPredictor(Predictor):
    """`canned:KIND`: one fixed misbehaviour for every request, to exercise the server's reason codes.

    KIND: `error` (a parse error reported by the model), `garbage` (a patch that does not parse),
    `outside` (a patch that changes the first line, for snapshots whose editable region starts
    later), `raise` (the predictor raises).
    """

    scheme = "canned"

    def __init__(self, argument: str | None = None, **options: Any) -> None:
        super().__init__(None, **options)
        if argument not in ("error", "garbage", "outside", "raise"):
            raise ValueError(f"canned:{argument}: use error, garbage, outside or raise")
        self.argument = argument

    def predict(self, example: Example, *, samples: int = 1) -> list[Prediction]:
        """The canned answer."""
        if self.argument == "raise":
            raise RuntimeError("canned failure")
        if self.argument == "error":
            return [Prediction(provider=self.name, raw="<junk>", error="parse: no editable region markers")]
        if self.argument == "garbage":
            return [Prediction(provider=self.name, raw="x", patch="@@ garbage @@\n-x\n")]
        text = example.snapshot.text
        first = text.splitlines(keepends=True)[0]
        patch = f"@@ -1,1 +1,1 @@\n-{first}+changed {first}"
        return [Prediction(provider=self.name, raw=patch, patch=patch)]


def register_test_predictors() -> None:
    """Make `sleep:MS` and `canned:KIND` available to get_predictor (in this process)."""
    PREDICTORS.setdefault("sleep", "nextedit.serve.testing:SleepPredictor")
    PREDICTORS.setdefault("canned", "nextedit.serve.testing:CannedPredictor")


class ServerThread:
    """A uvicorn server for `config` on a free 127.0.0.1 port, in a background thread.

        with ServerThread(config) as server:
            httpx.post(server.url + "/v1/predict", ...)
    """

    def __init__(self, config: ServeConfig, *, config_path: str | None = None) -> None:
        import uvicorn

        from nextedit.serve.app import create_app

        self.port = free_port()
        self.app = create_app(config, config_path=config_path)
        self.state = self.app.state.nextedit
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:  # noqa: PYI034
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


class ServeProcess:
    """`nextedit serve CONFIG --workers N` as a real process (own session, so `kill()` is a kill -9 of
    the server and all its workers) on a free 127.0.0.1 port.

        with ServeProcess(config_path, workers=2) as server:
            httpx.post(server.url + "/v1/predict", ...)
    """

    def __init__(self, config_path: str | Path, *, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.config_path, self.workers = Path(config_path), workers
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.config_path.parent / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServeProcess:  # noqa: PYI034
        import httpx

        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nextedit", "serve", str(self.config_path), "--port", str(self.port),
                 "--workers", str(self.workers)], stdout=log, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True)
        deadline, spread = time.monotonic() + 60, None
        #: Worker pids seen answering /healthz (the kernel spreads new connections over the workers).
        self.pids: set[int] = set()
        while len(self.pids) < self.workers and (spread is None or time.monotonic() < spread):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"nextedit serve did not start: {self.log.read_text()[-2000:]}")
            try:
                with httpx.Client(timeout=2) as client:
                    self.pids.add(client.get(self.url + "/healthz").json()["pid"])
                spread = spread or time.monotonic() + 5  # then give the other workers a few seconds
            except (httpx.HTTPError, ValueError, KeyError):
                time.sleep(0.1)
        return self

    def kill(self) -> None:
        """kill -9 the server and its workers."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
